"""Development sessions. `nox` (no arguments) runs the whole test suite:
tests, typecheck, lint and docs. Tool versions are pinned in pyproject.toml's
[dependency-groups]; sessions use the interpreter nox runs with (no
interpreter downloads), except `nox -s tests_newer`, which runs the tests on
the newer Pythons found on PATH."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "tests_oldest", "reliability", "typecheck", "lint", "docs"]
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, *groups: str, editable: bool = False) -> None:
    requirements: list[str] = []
    for group in groups:
        requirements.extend(nox.project.dependency_groups(PYPROJECT, group))
    if requirements:
        session.install(*requirements)
    session.install(*(["-e", "."] if editable else ["."]))


@nox.session
def tests(session: nox.Session) -> None:
    """pytest over real loopback sockets (the installed package, not src/).
    The reliability suite has a session of its own."""
    _install(session, "test")
    session.run("pytest", "-m", "not reliability", *session.posargs)


#: The oldest runtime dependencies pyproject.toml claims to support.
OLDEST = ["trio==0.25.0", "attrs==23.2.0"]


@nox.session
def tests_oldest(session: nox.Session) -> None:
    """pytest against the oldest trio and attrs that pyproject.toml allows."""
    _install(session, "test")
    session.install(*OLDEST)
    session.run("pytest", "-m", "not reliability", *session.posargs)


#: Newer Pythons the package claims (requires-python >= 3.11); not in the
#: default sessions, since a fresh machine may not have them on PATH.
NEWER_PYTHONS = ["3.12", "3.13"]


@nox.session(python=NEWER_PYTHONS)
def tests_newer(session: nox.Session) -> None:
    """pytest, unit tests and the reliability suite's short form, on each
    newer Python found on PATH as pythonX.Y (``nox -s tests_newer``)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def reliability(session: nox.Session) -> None:
    """The reliability suite (tests/reliability): faults, bad input and load
    against real servers; prints the table. Short form by default (CI);
    ``nox -s reliability -- --form=long --table=docs/reliability_table.inc``
    for the long form and the table the docs publish."""
    _install(session, "test")
    session.run("pytest", "tests/reliability", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src, tests and the typing tests (tests/typing)."""
    _install(session, "typecheck", editable=True)
    session.run("mypy", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def docs(session: nox.Session) -> None:
    """Sphinx, with warnings as errors."""
    _install(session, "docs")
    session.run(
        "sphinx-build", "-n", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against peers (python bench/run.py --help for options)."""
    _install(session, "bench")
    session.run("python", "bench/run.py", *session.posargs)
