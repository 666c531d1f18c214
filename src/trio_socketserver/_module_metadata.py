"""fixup_module_metadata: public objects report the public module they are
re-exported from (``trio_socketserver.X``, ``trio_socketserver.sync.X``) in
tracebacks, reprs and docs, as trio's ``fixup_module_metadata`` does."""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping

__all__ = ["fixup_module_metadata"]


def fixup_module_metadata(
    module_name: str, namespace: Mapping[str, object], names: Iterable[str]
) -> None:
    """Set ``__module__`` to ``module_name`` on the classes and functions
    among ``names`` that are defined in its private submodules (re-exported
    objects from elsewhere, such as the stdlib's handlers, keep theirs)."""
    for name in names:
        obj = namespace[name]
        if isinstance(obj, (type, types.FunctionType)) and obj.__module__.startswith(
            module_name + "."
        ):
            obj.__module__ = module_name
