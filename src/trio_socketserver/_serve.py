"""serve(): one coroutine from an address and a handler to a running server.

``trio.run(serve, ("127.0.0.1", 8000), Handler)`` is the whole program:
it picks the server class, binds, logs where it listens, serves with a
handler task per request, and turns SIGINT/SIGTERM into a graceful shutdown
(the first signal starts it with the grace period; a second one cancels the
remaining handlers at once). It also follows the ``task_status`` protocol:
``server = await nursery.start(serve, address, Handler)``.

Choosing the server class:

============================  ==========================  ==============================
address                       handler                      server
============================  ==========================  ==============================
``(host, port)``              stream or base handler      :class:`ConcurrentTCPServer`
``(host, port)``              ``DatagramRequestHandler``  :class:`ConcurrentUDPServer`
path (``str``/``PathLike``)   stream or base handler      :class:`ConcurrentUnixStreamServer`
path                          ``DatagramRequestHandler``  :class:`ConcurrentUnixDatagramServer`
============================  ==========================  ==============================

Pass ``server_class=`` to choose another (e.g. ``ConcurrentUDPServer`` for a
``BaseRequestHandler`` that reads datagrams).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
from typing import Any

import trio

from ._concurrency import (
    ConcurrentTCPServer,
    ConcurrentUDPServer,
    ConcurrentUnixDatagramServer,
    ConcurrentUnixStreamServer,
)
from ._log import SERVE_LOGGER
from ._server import _DEFAULT, BaseServer, _check_grace_period, _Default
from ._socket_server import SocketServer

__all__ = ["check_max_concurrent_requests", "describe_address", "pick_server_class", "serve"]


def check_max_concurrent_requests(value: object, what: str = "max_concurrent_requests") -> None:
    """Raise unless ``value`` is ``None`` or an ``int >= 1`` (a valid cap)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be None (no cap) or an int >= 1, not {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be None (no cap) or an int >= 1, not {value!r}")


def _check_cap_for(cls: object, cap: object) -> None:
    """Validate the cap serve() will apply, before anything is bound: an
    invalid one would otherwise only fail in the accept loop, after
    ``task_status.started()`` has told the caller the server is running."""
    # Looked up on the class, not by issubclass(ConcurrencyMixIn): a server
    # class of the user's own with a max_concurrent_requests attribute has a cap too.
    default = getattr(cls, "max_concurrent_requests", _NO_CAP)
    if cap is not None:
        check_max_concurrent_requests(cap)
        if default is _NO_CAP:
            name = getattr(cls, "__qualname__", repr(cls))
            raise TypeError(
                f"max_concurrent_requests={cap!r}: {name} has no concurrency cap (it "
                "handles one request at a time); use a ConcurrencyMixIn server such as "
                "ConcurrentTCPServer, or leave max_concurrent_requests out"
            )
    elif default is not _NO_CAP and isinstance(cls, type):
        # The class's own value (a subclass may set one) is checked as early.
        check_max_concurrent_requests(default, f"{cls.__qualname__}.max_concurrent_requests")


_NO_CAP: Any = object()


def pick_server_class(address: object, handler_class: object) -> type[SocketServer[Any, Any]]:
    """The server class :func:`serve` uses for ``address`` and ``handler_class``."""
    kind = getattr(handler_class, "transport_kind", None)
    if isinstance(address, tuple):
        return ConcurrentUDPServer if kind == "datagram" else ConcurrentTCPServer
    if isinstance(address, (str, bytes, os.PathLike)):
        if kind == "datagram":
            return ConcurrentUnixDatagramServer
        return ConcurrentUnixStreamServer
    raise TypeError(f"serve() needs a (host, port) tuple or a Unix socket path, not {address!r}")


def describe_address(server: BaseServer[Any, Any]) -> str:
    """``tcp://127.0.0.1:8000``, ``udp://[::1]:53``, ``unix:/run/x.sock``..."""
    address = server.server_address
    datagram = getattr(server, "socket_type", None) == socket.SOCK_DGRAM
    if isinstance(address, tuple):
        host = address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"{'udp' if datagram else 'tcp'}://{host}:{address[1]}"
    text = os.fsdecode(address) if isinstance(address, (str, bytes)) else str(address)
    return f"{'unixgram' if datagram else 'unix'}:{text}"


async def serve(
    address: Any,
    RequestHandlerClass: Any,
    *,
    server_class: type[SocketServer[Any, Any]] | None = None,
    max_concurrent_requests: int | None = None,
    grace_period: float | _Default | None = _DEFAULT,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[SocketServer[Any, Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``RequestHandlerClass`` on ``address`` until shut down.

    Args:
      address: ``(host, port)`` or a Unix socket path.
      RequestHandlerClass: an async handler class.
      server_class: the server class; by default chosen from the address and
        the handler (see the module docs).
      max_concurrent_requests: cap on concurrent handlers (``None``: no cap).
        Checked before anything is bound: :exc:`TypeError` unless ``None`` or
        an ``int``, :exc:`ValueError` below 1, :exc:`TypeError` for a server
        class without a cap (not a :class:`ConcurrencyMixIn`).
      grace_period: seconds handlers get to finish after the first signal or
        ``shutdown()``; default: the server class's ``grace_period``.
      handle_signals: turn SIGINT/SIGTERM into graceful shutdown (only
        possible in the main thread; ignored elsewhere).

    Returns when the server has shut down (by signal, by
    ``server.shutdown()``, or by cancellation) and its socket is closed.
    """
    if grace_period is not _DEFAULT:
        _check_grace_period(grace_period)
    cls = (
        server_class
        if server_class is not None
        else pick_server_class(address, RequestHandlerClass)
    )
    _check_cap_for(cls, max_concurrent_requests)
    server = cls(address, RequestHandlerClass)
    with server:
        if max_concurrent_requests is not None:
            server.max_concurrent_requests = max_concurrent_requests  # type: ignore[attr-defined]
        if not isinstance(grace_period, _Default):
            server.grace_period = grace_period
        SERVE_LOGGER.info(
            "serving %s on %s",
            getattr(RequestHandlerClass, "__qualname__", RequestHandlerClass),
            describe_address(server),
        )
        signals = handle_signals and threading.current_thread() is threading.main_thread()
        if signals:
            _SignalHub.of_this_run().add(server)
        try:
            # serve_forever reports task_status.started(server) itself.
            await server.serve_forever(task_status=task_status)
        finally:
            if signals:
                _SignalHub.of_this_run().discard(server)
        SERVE_LOGGER.info("stopped serving on %s", describe_address(server))


class _SignalHub:
    """SIGINT/SIGTERM for every serve() of one trio run.

    Invariant: at most one signal receiver per run, open exactly while some
    serve() handles signals, and every such server sees every signal. One
    receiver per serve() would break both halves: trio gives a signal to the
    receiver opened last only (so with a TCP and a UDP serve() in one
    program, Ctrl-C would stop one of them), and receivers closed in another
    order than they were opened restore each other's handlers, leaving a
    dead one installed after the run. So the receiver lives in a system task
    of the run, started by the first serve() and ended by the last. A hub
    started while the previous one is still closing its receiver waits for
    that before opening its own, so receivers never overlap.
    """

    _run_var: trio.lowlevel.RunVar[_SignalHub | None] = trio.lowlevel.RunVar(
        "trio_socketserver_signal_hub", default=None
    )
    _last_closed: trio.lowlevel.RunVar[trio.Event | None] = trio.lowlevel.RunVar(
        "trio_socketserver_signal_hub_closed", default=None
    )

    def __init__(self, after: trio.Event | None) -> None:
        #: The servers, each with the number of signals it has seen.
        self._servers: dict[BaseServer[Any, Any], int] = {}
        self._scope = trio.CancelScope()
        self._after = after
        self._closed = trio.Event()

    @classmethod
    def of_this_run(cls) -> _SignalHub:
        hub = cls._run_var.get()
        if hub is None:
            hub = cls(after=cls._last_closed.get())
            cls._run_var.set(hub)
            cls._last_closed.set(hub._closed)
            trio.lowlevel.spawn_system_task(hub._receive, name="trio_socketserver signals")
        return hub

    def add(self, server: BaseServer[Any, Any]) -> None:
        self._servers[server] = 0

    def discard(self, server: BaseServer[Any, Any]) -> None:
        self._servers.pop(server, None)
        if not self._servers:
            # The last one: close the receiver (restoring the handlers it
            # replaced); a later serve() starts a new hub.
            self._scope.cancel()
            if self._run_var.get() is self:
                self._run_var.set(None)

    async def _receive(self) -> None:
        # A system task: what it raises would crash the whole run.
        try:
            with self._scope:
                if self._after is not None:
                    await self._after.wait()
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
                    async for signum in received:
                        self._deliver_to_all(signal.Signals(signum).name)
        finally:
            self._closed.set()

    def _deliver_to_all(self, name: str) -> None:
        for server in list(self._servers):
            try:
                self._deliver(server, name)
            except Exception:
                SERVE_LOGGER.exception("shutting down %r on %s failed", server, name)

    def _deliver(self, server: BaseServer[Any, Any], name: str) -> None:
        count = self._servers[server] = self._servers[server] + 1
        where = describe_address(server) if isinstance(server, SocketServer) else repr(server)
        if count == 1:
            grace = server.grace_period
            SERVE_LOGGER.warning(
                "%s received: shutting down %s (in-flight requests get %s); "
                "send it again to stop at once",
                name,
                where,
                "unlimited time" if grace is None or math.isinf(grace) else f"{grace:g} s",
            )
            server._begin_shutdown(_DEFAULT)
        else:
            SERVE_LOGGER.warning(
                "%s received again: cancelling in-flight requests on %s", name, where
            )
            server._begin_shutdown(0)
