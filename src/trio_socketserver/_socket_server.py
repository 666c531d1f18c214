"""SocketServer: the part every socket-based server shares.

It owns the socket: creates it in the constructor, binds and activates it
(the stdlib's ``server_bind``/``server_activate`` hooks, synchronous because
the constructor calls them), exposes it, and closes it in ``server_close``
(a datagram server that is serving closes it only when ``serve_forever``
returns, since its handlers reply through it).

The socket is kept twice over the same object: ``self.socket`` is the
:mod:`trio.socket` object users see (its I/O methods are ``async``), and the
engine keeps the underlying stdlib socket for non-blocking fast paths. Both
refer to one kernel socket; closing either closes it.

Unix socket files are managed here (see ``_unix_path``): a stale file left by
a dead server is replaced, anything that is not a socket is never deleted, a
live server's socket is never stolen, and the file this server bound is
removed on close.
"""

from __future__ import annotations

import socket as _socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import trio

from . import _unix_path
from ._addresses import bind_ip
from ._connection_stream import FAIRNESS_INTERVAL, _in_trio_run
from ._server import BaseServer
from ._typevars import AddressT, RequestT

if TYPE_CHECKING:
    from typing import Self

    from ._protocols import HandlerFactory

__all__ = ["SocketServer", "bind_and_activate_or_close"]


class _Bindable(Protocol):
    def server_bind(self) -> None: ...
    def server_activate(self) -> None: ...
    def server_close(self) -> None: ...


def bind_and_activate_or_close(server: _Bindable) -> None:
    """The stdlib constructor's contract (``bind_and_activate=True``): bind,
    activate, and close the server if either fails. Shared by the async and
    the blocking servers."""
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise


class SocketServer(BaseServer[RequestT, AddressT]):
    """A server that listens on one socket. Base of the four socket servers;
    not used directly.

    Class attributes, with the stdlib's meaning and defaults:
    ``address_family``, ``socket_type``, ``allow_reuse_address``,
    ``allow_reuse_port``, ``request_queue_size``.
    """

    address_family: int = _socket.AF_INET
    socket_type: int = _socket.SOCK_STREAM
    request_queue_size: int = 5
    allow_reuse_address: bool = False
    allow_reuse_port: bool = False

    #: Servers on AF_UNIX keep track of the file they bound.
    _unix_file: _unix_path.BoundFile | None = None

    socket: trio.socket.SocketType

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: HandlerFactory[RequestT, AddressT, Self],
        bind_and_activate: bool = True,
    ) -> None:
        server_address = self._check_address(server_address)
        super().__init__(server_address, RequestHandlerClass)
        self.address_family = self._family_for(server_address)
        self._sock = _socket.socket(self.address_family, self.socket_type)
        self.socket = trio.socket.from_stdlib_socket(self._sock)  # also sets non-blocking
        self._bound = False
        self._activated = False
        if bind_and_activate:
            bind_and_activate_or_close(self)

    # -- subclass responsibilities ---------------------------------------------------

    def _check_address(self, server_address: Any) -> Any:
        return server_address

    def _family_for(self, server_address: Any) -> int:
        return self.address_family

    # -- the stdlib hooks ---------------------------------------------------------------

    def server_bind(self) -> None:
        """Bind the socket (applying ``allow_reuse_address``/``allow_reuse_port``)
        and store the real bound address in ``server_address``."""
        sock = self._sock
        if (
            self.allow_reuse_address
            and hasattr(_socket, "SO_REUSEADDR")
            and self.address_family != _socket.AF_UNIX
        ):
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if (
            self.allow_reuse_port
            and hasattr(_socket, "SO_REUSEPORT")
            and self.address_family != _socket.AF_UNIX
        ):
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        address: Any = self.server_address
        if self.address_family == _socket.AF_UNIX:
            self._unix_file = _unix_path.bind(sock, address)
        else:
            bind_ip(sock, address, type(self).__name__)
        self.server_address = sock.getsockname()
        self._bound = True

    def server_activate(self) -> None:
        """Make the socket ready for requests (stream servers: ``listen``)."""
        self._activated = True

    #: Whether handlers send their replies through the server's socket
    #: (datagram servers), so that it must stay open while they run.
    _replies_on_server_socket: ClassVar[bool] = False

    def server_close(self) -> None:
        """Close the socket (removing a Unix socket file this server created).
        A running ``serve_forever`` begins shutdown. Idempotent.

        While serving, a datagram server's socket is closed when
        ``serve_forever`` returns instead, since the handlers still in their
        grace period reply through it; it takes no new request meanwhile
        (phase 1). A stream server's listening socket is closed at once,
        which refuses the connections still in its backlog."""
        super().server_close()
        if not (self._serving and self._replies_on_server_socket):
            self._close_socket()
        # The socket file goes at once either way: a client can no longer
        # reach a server that stopped taking requests, and replies go out
        # through the bound socket, not through the path.
        if self._unix_file is not None:
            self._unix_file.remove()
            self._unix_file = None

    def _close_socket(self) -> None:
        if self._sock.fileno() != -1:
            if _in_trio_run():
                trio.lowlevel.notify_closing(self._sock)
            self._sock.close()

    def _serving_ended(self) -> None:
        if self._closed:  # server_close() while serving left the socket open
            self._close_socket()

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self._sock.fileno()

    # -- taking requests ---------------------------------------------------------

    def _take_ready(self) -> tuple[RequestT, AddressT] | None:
        """Take a request that is already queued (accept a connection,
        receive a datagram) without waiting; ``None`` when there is none."""
        raise NotImplementedError

    def _ready_taker_for(self) -> Callable[[], tuple[RequestT, AddressT] | None] | None:
        # The engine's scope-free fast path may only replace get_request when
        # get_request is this one; an override is user code and is awaited.
        return self._take_ready if type(self).get_request is SocketServer.get_request else None

    async def get_request(self) -> tuple[RequestT, AddressT]:
        """Wait for and take the next request: accept a connection (stream
        servers) or receive a datagram (datagram servers).

        Takes a queued request without yielding, yielding at least every
        ``FAIRNESS_INTERVAL`` requests; after the queue was found empty it
        waits for readability before trying again instead of repeating a
        failing syscall."""
        if self._queue_empty:
            self._queue_empty = False
            await self._wait_for_socket()
        else:
            await self._fair_checkpoint()
        while (taken := self._take_ready()) is None:
            await self._wait_for_socket()
        return taken

    async def _wait_for_socket(self) -> None:
        self._budget = FAIRNESS_INTERVAL  # waiting is a full checkpoint
        await trio.lowlevel.wait_readable(self._sock)

    def _check_ready(self, what: str) -> None:
        if not (self._bound and self._activated) or self._sock.fileno() == -1:
            raise RuntimeError(
                f"{what} needs a bound and activated server: construct it with "
                "bind_and_activate=True, or call server_bind() and server_activate() first"
            )
