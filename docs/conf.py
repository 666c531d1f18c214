"""Sphinx configuration for the trio-socketserver documentation.

Build (warnings are errors, unresolved references too):

    python -m sphinx -n -W --keep-going -b html docs docs/_build/html

Only sphinx.ext.autodoc and sphinx.ext.napoleon are used. The builds run
without network access, so there is no intersphinx: references to trio's and
the standard library's objects cannot be resolved and are ignored by the
``nitpick_ignore_regex`` entries below (they still render, as code).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext import napoleon
from sphinx.pycode import ModuleAnalyzer

import trio_socketserver

project = "trio-socketserver"
author = "trio-socketserver developers"
copyright = "trio-socketserver developers"
release = trio_socketserver.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    # The docstrings in src/ use Google-style "Args:" / "Attributes:" sections.
    "sphinx.ext.napoleon",
]

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Do not repeat a base class's docstring on an override that has none: the
# base's text is often wrong for the override (StreamRequestHandler.setup does
# not "do nothing"), and ConnectionStream's methods would repeat trio's long
# HalfCloseableStream documentation.
autodoc_inherit_docstrings = False
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}

primary_domain = "py"
highlight_language = "python3"
exclude_patterns = ["_build"]

html_theme = "alabaster"
html_theme_options = {
    "description": "Python's socketserver contract on trio",
    "fixed_sidebar": True,
}
html_static_path: list[str] = []

# -- Unresolvable references ----------------------------------------------------
# Without intersphinx (no network), nothing outside this project can be linked.
nitpick_ignore_regex = [
    # trio and the standard library, named in signatures and docstrings.
    (r"py:.*", r"trio(\..*)?"),
    (r"py:.*", r"(socket|io|logging|os|typing)\..*"),
    # ConnectionStream inherits the docstrings of trio.abc.HalfCloseableStream's
    # methods, which refer to trio's classes by their short names.
    (r"py:.*", r"(AsyncResource|ReceiveStream|SendStream|Stream|HalfCloseableStream)(\..*)?"),
    # The type variables the generic classes are parameterised with (private;
    # described in the reference's introduction).
    (r"py:.*", r"(trio_socketserver\._typevars\.)?(Request|Address|Server)T(_contra)?"),
    # The sentinel type of "use the server's attribute" defaults (DEFAULT).
    (r"py:class", r"trio_socketserver\._server\._Default"),
]


# -- Public names for private paths ---------------------------------------------
# trio_socketserver re-exports every public name from a private module and
# sets __module__ to "trio_socketserver" on the classes. Subscripted generics
# created inside the private modules (the bases "ConcurrencyMixIn[Any, Any]",
# the aliases such as TCPRequestHandler) still carry the private module, so
# Sphinx asks for e.g. "trio_socketserver._concurrency.ConcurrencyMixIn".
# Resolve such a reference to the public name when there is one.

_PRIVATE_PATH = re.compile(r"trio_socketserver\._\w+\.(?P<name>\w+)(?P<rest>(\.\w+)*)")


def _resolve_private_path(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: Any
) -> Any:
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    match = _PRIVATE_PATH.fullmatch(target)
    if match is None or match["name"] not in trio_socketserver.__all__:
        return None
    public = f"trio_socketserver.{match['name']}{match['rest']}"
    domain: Any = env.get_domain("py")
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], public, node, contnode
    )


# -- Source comments of re-exported objects ----------------------------------------
# Autodoc reads "#:" comments (class attributes such as BaseServer.grace_period,
# the type aliases) and the source order of members from the module named by
# __module__, here "trio_socketserver", whose __init__.py only re-exports.
# Give its (cached) analyzer the comments and source order of the private
# modules that define the public names.


def _private_modules() -> list[str]:
    names = []
    for info in pkgutil.iter_modules(trio_socketserver.__path__):
        if info.name == "__main__":
            continue  # importing it would run the command-line interface
        names.append(f"trio_socketserver.{info.name}")
        importlib.import_module(names[-1])
    return names


def _merge_private_source_comments() -> dict[str, list[str]]:
    """Merge into the package's analyzer; return the module-level comments of
    public names (the type aliases), by name."""
    public = ModuleAnalyzer.for_module("trio_socketserver")
    public.analyze()
    module_comments: dict[str, list[str]] = {}
    for module in _private_modules():
        analyzer = ModuleAnalyzer.for_module(module)
        analyzer.analyze()
        for (namespace, name), lines in analyzer.attr_docs.items():
            if namespace.split(".")[0] in trio_socketserver.__all__:
                public.attr_docs.setdefault((namespace, name), lines)
            elif namespace == "" and name in trio_socketserver.__all__:
                module_comments[name] = list(lines)
        offset = len(public.tagorder)
        for tag, order in analyzer.tagorder.items():
            public.tagorder.setdefault(tag, offset + order)
    return module_comments


_ALIAS_COMMENTS = _merge_private_source_comments()


def _alias_docstring(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """A type alias (IPAddress = tuple[str, int] | ...) has no docstring of its
    own: autodoc would show the one of tuple or types.UnionType. Use its "#:"
    comment instead."""
    short = name.removeprefix("trio_socketserver.")
    if what == "data" and short in _ALIAS_COMMENTS:
        lines[:] = _ALIAS_COMMENTS[short]


def _napoleon_except_attributes(
    app: Sphinx, what: Any, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    # Napoleon reads the first line of an attribute's documentation as
    # "type: description" (the Google style for attributes). The attribute
    # comments in src are prose ("Read buffer size: ``-1`` default size, ..."),
    # and none is written in that style: apply napoleon to everything else
    # (the "Args:" and "Attributes:" sections of classes and functions).
    if what not in ("attribute", "data", "property"):
        napoleon._process_docstring(app, what, name, obj, options, lines)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("missing-reference", _resolve_private_path)
    app.connect("autodoc-process-docstring", _alias_docstring, priority=400)
    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_except_attributes)
    return {"parallel_read_safe": True}
