"""Construction-time checks of handler classes and server hooks.

A server awaits some hooks and calls others without ``await`` (design docs,
"Why some hooks are async and others are not"). A hook written the other way
(the stdlib's plain ``def verify_request`` ported as is, an ``async def
handle_error``) would otherwise fail at every request with a cryptic
``object bool can't be used in 'await' expression``, or never run at all.
These checks make it a :exc:`TypeError` in the constructor instead, naming
the hook and what to write.

They must never reject working code, so a function is only judged when its
kind is certain: ``async def`` (or marked as a coroutine function), an
``async def`` containing ``yield``, or a plain ``def`` that is not a wrapper.
A wrapper (``functools.wraps`` sets ``__wrapped__``) around an ``async def``
usually returns a coroutine, but on Python 3.11 nothing says so; anything
else that is callable (a ``functools.partial``, a callable object...) is
accepted too.
"""

from __future__ import annotations

import inspect
import math
from typing import Final, Literal

__all__ = [
    "check_factory",
    "check_handler_attributes",
    "check_handler_hooks",
    "check_server_hooks",
]

_Kind = Literal["async", "async generator", "sync", "unknown"]

#: Hooks the server awaits.
_ASYNC_SERVER_HOOKS: Final = (
    "get_request",
    "verify_request",
    "process_request",
    "process_request_task",
    "finish_request",
    "shutdown_request",
    "close_request",
    "handle_timeout",
    "service_actions",
    "sendto",
)
#: Hooks the server calls without ``await``, and why.
_SYNC_SERVER_HOOKS: Final = {
    "server_bind": "the constructor calls it",
    "server_activate": "the constructor calls it",
    "server_close": "'with server:' and finally blocks call it",
    "handle_error": "it is called inside the except block, so that sys.exc_info() "
    "is the error being handled",
}


def _kind(func: object) -> _Kind:
    if inspect.iscoroutinefunction(func):
        return "async"
    if inspect.isasyncgenfunction(func):
        return "async generator"
    if inspect.isfunction(func) and not hasattr(func, "__wrapped__"):
        return "sync"  # a plain def (or a generator function): certainly not awaitable
    return "unknown"


def _async_hook_error(owner: str, name: str, kind: _Kind, awaited_by: str) -> TypeError | None:
    if kind == "sync":
        return TypeError(
            f"{owner}.{name} must be defined with 'async def': {awaited_by} awaits {name}()"
        )
    if kind == "async generator":
        return TypeError(
            f"{owner}.{name} is an async generator ('async def' with 'yield' in its "
            f"body), but {awaited_by} awaits {name}() as a coroutine: remove the yield"
        )
    return None


def check_handler_hooks(handler_class: type, *, derived: bool) -> None:
    """``setup``/``handle``/``finish``/``run`` of a handler class must be
    awaitable. ``derived``: the class derives from BaseRequestHandler (else
    it is duck-typed and needs an async ``run``)."""
    owner = handler_class.__qualname__
    if not derived and not callable(getattr(handler_class, "run", None)):
        raise TypeError(
            f"{owner} is not a request handler: derive it from "
            "trio_socketserver.BaseRequestHandler (or StreamRequestHandler, "
            "DatagramRequestHandler) and define 'async def handle(self)', or give it an "
            "'async def run(self)' that serves the request"
        )
    hooks = ("setup", "handle", "finish", "run") if derived else ("run",)
    for hook in hooks:
        error = _async_hook_error(
            owner,
            hook,
            _kind(getattr(handler_class, hook)),
            "the server",
        )
        if error is not None:
            raise error


def check_factory(factory: object, server_name: str) -> None:
    """A ``RequestHandlerClass`` that is not a class is a factory, called as
    ``factory(request, client_address, server)`` without ``await``: it must
    return a handler. Reject what certainly does not."""
    name = getattr(factory, "__qualname__", repr(factory))
    if inspect.isbuiltin(factory):
        # Built-in functions (print, len...) never return a handler.
        raise TypeError(
            f"{server_name} needs a request handler class (a BaseRequestHandler subclass), "
            f"not the built-in {name}"
        )
    if _kind(factory) in ("async", "async generator"):
        raise TypeError(
            f"{name} is defined with 'async def', but {server_name} calls "
            "RequestHandlerClass(request, client_address, server) without await and needs "
            "the handler it returns: make the factory a plain def (the handler's run() "
            "is what is awaited)"
        )


def check_server_hooks(server_class: type) -> None:
    """Each hook of ``server_class`` is async or not as the server calls it."""
    owner = server_class.__qualname__
    for hook in _ASYNC_SERVER_HOOKS:
        func = getattr(server_class, hook, None)
        if func is None:
            continue
        awaited_by = "DatagramRequestHandler.finish" if hook == "sendto" else "the server"
        error = _async_hook_error(owner, hook, _kind(func), awaited_by)
        if error is not None:
            raise error
    for hook, reason in _SYNC_SERVER_HOOKS.items():
        func = getattr(server_class, hook, None)
        if _kind(func) in ("async", "async generator"):
            raise TypeError(
                f"{owner}.{hook} must be a plain 'def', not 'async def': {reason}, "
                "without await (the coroutine would never run)"
            )


def _plain_value(cls: type, name: str) -> tuple[bool, object]:
    """The class attribute ``name`` when it is a plain value (not a property
    or other descriptor, which only an instance can evaluate)."""
    try:
        value = inspect.getattr_static(cls, name)
    except AttributeError:
        return False, None
    if hasattr(type(value), "__get__"):
        return False, None
    return True, value


def check_handler_attributes(handler_class: type) -> None:
    """A StreamRequestHandler's ``rbufsize``, ``wbufsize`` and ``timeout``
    class attributes, checked once at server construction instead of failing
    every request in ``setup()``."""
    owner = handler_class.__qualname__
    for name in ("rbufsize", "wbufsize"):
        plain, value = _plain_value(handler_class, name)
        if not plain:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"{owner}.{name} must be an int (-1: default size, 0: unbuffered, "
                f"or a size in bytes), not {value!r}"
            )
        if value < -1:
            raise ValueError(
                f"{owner}.{name} must be -1 (default size), 0 (unbuffered) or a size "
                f"in bytes, not {value!r}"
            )
    plain, timeout = _plain_value(handler_class, "timeout")
    if plain and timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(
                f"{owner}.timeout must be None (no limit) or a number of seconds, not {timeout!r}"
            )
        if math.isnan(timeout) or timeout < 0:
            raise ValueError(
                f"{owner}.timeout must be None (no limit) or a number of seconds >= 0, "
                f"not {timeout!r}"
            )
