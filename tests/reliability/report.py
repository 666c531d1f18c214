"""The reliability suite's pytest plugin: its options, the ``form`` and
``row`` fixtures, leak accounting per scenario, and the table.

Loaded from tests/conftest.py (pytest reads options only from the root
conftest). Every test under tests/reliability gets the ``reliability``
marker; ``nox -s tests`` deselects them and ``nox -s reliability`` runs
them::

    nox -s reliability                    # the short form (CI)
    nox -s reliability -- --form=long     # the long form

Each scenario takes the ``row`` fixture and records what it held, what it
injected and what it lost. The fixture snapshots descriptors, threads and
child processes before the scenario and after it (after its trio run has
ended, so trio's own descriptors are gone) and fails the scenario for any
difference. The result column is the scenario's pytest outcome: a scenario
asserts its own targets (still serving, nothing lost), so ``ok`` means they
held.
"""

from __future__ import annotations

import datetime
import resource
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import attrs
import pytest

from .harness import FORMS, Form, Snapshot

_ROWS = pytest.StashKey[list["Row"]]()
_HERE = Path(__file__).parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability", "the reliability suite (tests/reliability)")
    group.addoption(
        "--form",
        choices=sorted(FORMS),
        default="short",
        help="how hard the reliability suite pushes: short (CI) or long",
    )
    group.addoption(
        "--table",
        metavar="PATH",
        default=None,
        help="also write the reliability table to PATH (reStructuredText)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_ROWS] = []
    _ensure_descriptors(FORMS[config.getoption("form")])


def _ensure_descriptors(form: Form) -> None:
    """Raise the soft RLIMIT_NOFILE to what ``form`` needs, up to the hard
    limit. Where even the hard limit is lower, the long form stops here with
    what to do: otherwise its load scenarios run out of descriptors, and the
    server's (correct) EMFILE back-off shows up as clients refused, which
    reads like a server bug."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= form.fds:
        return
    if hard == resource.RLIM_INFINITY or hard >= form.fds:
        resource.setrlimit(resource.RLIMIT_NOFILE, (form.fds, hard))
        return
    if form.name != "short":
        raise pytest.UsageError(
            f"the reliability suite's {form.name} form holds up to {form.fds} file "
            f"descriptors at once, but RLIMIT_NOFILE allows {soft} (hard limit {hard}): "
            f"raise it (ulimit -n {form.fds}) or use --form=short"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.reliability)


@attrs.define
class Row:
    """One line of the table."""

    scenario: str
    load: str = ""
    faults: str = ""
    result: str = ""
    lost: int | None = None
    leaks: list[str] = attrs.Factory(list)
    failed: bool = False

    def record(self, *, load: str, faults: str, result: str, lost: int) -> None:
        """What the scenario held, injected, saw and lost."""
        self.load, self.faults, self.result, self.lost = load, faults, result, lost

    def add_leaks(self, leaks: list[str]) -> None:
        """Leaks measured elsewhere (a server in a subprocess)."""
        self.leaks.extend(leaks)


@pytest.fixture
def form(request: pytest.FixtureRequest) -> Form:
    return FORMS[request.config.getoption("form")]


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Iterator[Row]:
    """This scenario's row; fails the scenario if it leaks."""
    item = request.node
    entry = Row(scenario=item.name.removeprefix("test_"))
    request.config.stash[_ROWS].append(entry)
    before = Snapshot.take()
    yield entry
    entry.add_leaks(Snapshot.take().leaks_since(before))
    assert not entry.leaks, f"leaked: {entry.leaks}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    entry = getattr(item, "funcargs", {}).get("row")
    if isinstance(entry, Row) and report.failed:
        entry.failed = True
        if not entry.result or report.when == "call":
            crash = getattr(report.longrepr, "reprcrash", None)
            entry.result = str(getattr(crash, "message", f"error in {report.when}"))
    return report


_COLUMNS = ("scenario", "load held", "faults injected", "result", "lost", "leaks")


def _cells(entry: Row) -> tuple[str, ...]:
    result = ("FAIL: " if entry.failed else "ok: ") + (entry.result or "-")
    return (
        entry.scenario,
        entry.load or "-",
        entry.faults or "-",
        result.splitlines()[0][:160],
        "?" if entry.lost is None else str(entry.lost),
        ", ".join(entry.leaks) if entry.leaks else "none",
    )


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    rows = config.stash[_ROWS]
    if not rows:
        return
    form = config.getoption("form")
    terminalreporter.section(f"reliability table ({form} form)")
    cells = [_COLUMNS, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_COLUMNS))]
    for line in cells:
        terminalreporter.write_line(
            " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
        )
    path = config.getoption("table")
    if path:
        Path(path).write_text(_rst(rows, form, path))
        terminalreporter.write_line(f"table written to {path}")


def _rst(rows: list[Row], form: str, path: str) -> str:
    command = f"nox -s reliability -- --form={form} --table={path}"
    lines = [
        f".. Produced by ``{command}`` on {datetime.date.today().isoformat()},",
        f"   Python {sys.version.split()[0]}. Do not edit: rerun the command.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: auto",
        "",
    ]
    for line in [_COLUMNS, *(_cells(r) for r in rows)]:
        first, *rest = (c.replace("|", "/").replace("*", "\\*") for c in line)
        lines.append(f"   * - {first}")
        lines.extend(f"     - {c}" for c in rest)
    return "\n".join(lines) + "\n"
