"""The program's own Python signal handlers while the engine's loop runs.

CPython runs a Python-level signal handler in the main thread, between two
bytecodes of whatever runs there. The stdlib's serve loop is plain Python, so
an exception from such a handler -- ``sys.exit()`` in a SIGTERM handler (the
usual pattern in containers), a custom SIGINT handler raising
``KeyboardInterrupt`` -- simply propagates out of ``serve_forever()``, and a
handler calling ``server.shutdown()`` just sets a flag. While the engine's
``trio.run`` is in the main thread, the same handler may instead run inside
trio's scheduler, where an exception corrupts the run (trio then reports an
abandoned run and broken nurseries) and touching the server's cancel scopes
is not allowed.

For the length of a run this module wraps every Python-level handler the
program installed:

Rule 1. A signal arriving while the loop thread runs blocking calls (a
    request's hooks and handler, ``service_actions``, the engine's own
    ``poll()``; :class:`Direct` marks them), outside trio's KI-protected
    functions, calls the program's handler at once, exactly where the stdlib
    would (inside a running handler of a sequential server, say): what it
    raises propagates from there, through frames that are all running.
Rule 2. A signal arriving anywhere else is handed to a task of the run,
    which calls the handler at once; what it raises ends the run and
    propagates out of ``serve_forever()`` as itself. Elsewhere means trio's
    scheduler, and coroutine code too: trio's own Ctrl-C rule (raise at once
    in code not KI-protected) is not safe enough there. Python runs signal
    handlers when a frame resumes, so an exception can land in a coroutine
    just resumed while the coroutine it awaits is still suspended, holding
    cancel scopes and nurseries that then never exit (trio reports "Nursery
    stack corrupted"; seen on Python 3.13).
Rule 3. Only the handlers installed before ``trio.run`` starts are wrapped
    (:func:`program_handlers` takes them then), and each is restored when
    the run ends unless the program replaced it meanwhile. SIGINT with
    Python's default handler is left out: ``trio.run`` replaces it with its
    own Ctrl-C handler, which must not be wrapped (it would then run in a
    task, with a stale frame, instead of deciding where it was called).
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, ClassVar, TypeVar

import trio

from .._server import _raise_single

__all__ = ["Direct", "program_handlers", "run_deferring_signals"]

_T = TypeVar("_T")


class Direct:
    """Rule 1's mark: ``on`` while the main thread runs blocking calls, where
    a signal handler may run (and raise) at once. Only the main thread runs
    signal handlers, so one flag serves; a loop in another thread marks a
    flag of its own (:meth:`for_this_thread`), which nothing reads, so that
    it never says "blocking calls" while the main thread is elsewhere. The
    engine sets its mark inline on its per-request path, which
    :meth:`calls` would slow down."""

    on: ClassVar[bool] = False

    @staticmethod
    def for_this_thread() -> Any:
        """The object whose ``on`` the calling thread's loop sets."""
        if threading.current_thread() is threading.main_thread():
            return Direct
        return _Unread()

    @staticmethod
    @contextmanager
    def calls() -> Iterator[None]:
        mark = Direct.for_this_thread()
        outer = mark.on
        mark.on = True
        try:
            yield
        finally:
            mark.on = outer


class _Unread:
    """A loop's mark outside the main thread (see Direct.for_this_thread)."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


_Handler = Callable[[int, FrameType | None], Any]
_Call = tuple[_Handler, int, "FrameType | None"]


def program_handlers() -> dict[int, _Handler]:
    """The program's Python-level signal handlers, taken before ``trio.run``
    (Rule 3); none outside the main thread, where no handler runs."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    found: dict[int, _Handler] = {}
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        # SIG_DFL, SIG_IGN, None (not set from Python) and Python's default
        # SIGINT handler (trio's to replace) are not the program's.
        if callable(handler) and handler is not signal.default_int_handler:
            found[signum] = handler
    return found


async def run_deferring_signals(
    handlers: dict[int, _Handler], fn: Callable[[], Awaitable[_T]]
) -> _T:
    """Await ``fn()`` with ``handlers`` (from :func:`program_handlers`)
    wrapped, as the module docstring says; with none, just await it."""
    if not handlers:
        return await fn()
    send, receive = trio.open_memory_channel[_Call](math.inf)
    token = trio.lowlevel.current_trio_token()
    wrapped = _wrap_handlers(handlers, token, send)
    if not wrapped:
        return await fn()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_call_handlers, receive)
            result = await fn()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        _raise_single(group)
    finally:
        _restore(wrapped)
        # Signals handed over after the dispatcher stopped (Rule 2): their
        # handlers still run, here in the main task, before the run ends.
        while True:
            try:
                handler, signum, frame = receive.receive_nowait()
            except trio.WouldBlock:
                break
            handler(signum, frame)
    return result


async def _call_handlers(receive: trio.MemoryReceiveChannel[_Call]) -> None:
    async for handler, signum, frame in receive:
        handler(signum, frame)  # Rule 2: raises as an exception of the run


def _wrap_handlers(
    handlers: dict[int, _Handler],
    token: trio.lowlevel.TrioToken,
    send: trio.MemorySendChannel[_Call],
) -> list[tuple[int, _Handler, _Handler]]:
    wrapped = []
    for signum, handler in handlers.items():
        if signal.getsignal(signum) is not handler:
            continue  # replaced since (by trio.run, or by the program)
        wrapper = _deferring(handler, token, send)
        signal.signal(signum, wrapper)
        wrapped.append((signum, handler, wrapper))
    return wrapped


def _deferring(
    handler: _Handler, token: trio.lowlevel.TrioToken, send: trio.MemorySendChannel[_Call]
) -> _Handler:
    def deferring(signum: int, frame: FrameType | None) -> Any:
        # Rule 1; inside trio's own (KI-protected) functions called from a
        # hook, such as notify_closing() in server_close(), Rule 2.
        if Direct.on and not trio.lowlevel.currently_ki_protected():
            return handler(signum, frame)
        try:
            # Unbounded and never closed while wrapped: send_nowait cannot
            # raise in trio's system context, where run_sync_soon calls it.
            token.run_sync_soon(send.send_nowait, (handler, signum, frame))
        except trio.RunFinishedError:
            return handler(signum, frame)  # the run is over: nothing to protect
        return None

    deferring.__wrapped__ = handler  # type: ignore[attr-defined]
    return deferring


def _restore(wrapped: list[tuple[int, _Handler, _Handler]]) -> None:
    for signum, handler, wrapper in wrapped:
        if signal.getsignal(signum) is wrapper:  # Rule 3
            signal.signal(signum, handler)
