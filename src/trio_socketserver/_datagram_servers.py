"""UDPServer and UnixDatagramServer: one datagram per request.

``request`` is ``(data, socket)`` as in the stdlib, where ``socket`` is the
server's :mod:`trio.socket` object: reply with
``await self.server.sendto(reply, client_address)``, which concurrent
handlers can call at once (``await socket.sendto(...)`` works too, but when
the send buffer is full trio lets only one task wait on a socket).

Oversized datagrams: the stdlib reads ``max_packet_size`` bytes and silently
serves the truncated start of a larger datagram as if it were whole. Here
the server reads one byte more than ``max_packet_size``; a datagram that
fills it was truncated, so it is dropped and logged instead of served, and
counted in the server's ``truncated_datagrams`` attribute.
"""

from __future__ import annotations

import socket as _socket
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from ._addresses import (
    IPAddress,
    UnixAddress,
    UnixBindAddress,
    UnixClientAddress,
    check_ip_address,
    check_unix_address,
    family_for_ip_address,
)
from ._handlers import BaseRequestHandler, DatagramRequest
from ._log import SERVER_LOGGER
from ._socket_server import SocketServer
from ._typevars import AddressT

if TYPE_CHECKING:
    from typing import Self

    from ._protocols import HandlerFactory

__all__ = [
    "DatagramServer",
    "UDPRequestHandler",
    "UDPServer",
    "UnixDatagramRequestHandler",
    "UnixDatagramServer",
]


class DatagramServer(SocketServer[DatagramRequest, AddressT]):
    """A datagram server: each datagram is a request, handled by a handler."""

    socket_type: int = _socket.SOCK_DGRAM
    #: Largest datagram served; larger ones are dropped and logged.
    max_packet_size: int = 8192
    _transport_kind: ClassVar[str | None] = "datagram"
    # Handlers reply with sendto() on self.socket: server_close() while
    # serving leaves it open until the last handler is done.
    _replies_on_server_socket: ClassVar[bool] = True
    truncated_datagrams: int = 0

    def _take_ready(self) -> tuple[DatagramRequest, AddressT] | None:
        limit = self.max_packet_size
        while True:
            try:
                data, address = self._sock.recvfrom(limit + 1)
            except BlockingIOError:
                return None
            if len(data) <= limit:
                return (data, self.socket), address
            self._dropped(address)

    #: Whether handlers may reply at the same time (ConcurrencyMixIn), so
    #: that :meth:`sendto` must take turns.
    _concurrent_replies: ClassVar[bool] = False
    _send_lock: trio.Lock | None = None

    async def sendto(self, data: bytes, address: Any) -> None:
        """Send ``data`` to ``address`` from the server's socket; what
        :class:`DatagramRequestHandler` replies with.

        Safe from concurrent handlers: when the socket's send buffer is
        full, trio lets only one task wait to send on a socket (the others
        would fail with :exc:`trio.BusyResourceError` and their replies be
        lost), so in a concurrent server the handlers take turns."""
        if not self._concurrent_replies:
            await self.socket.sendto(data, address)
            return
        lock = self._send_lock
        if lock is None:
            lock = self._send_lock = trio.Lock()
        async with lock:
            await self.socket.sendto(data, address)

    def _dropped(self, address: object) -> None:
        self.truncated_datagrams += 1
        SERVER_LOGGER.warning(
            "%s: dropped a datagram from %r larger than max_packet_size (%d bytes)",
            type(self).__name__,
            address,
            self.max_packet_size,
        )


class UDPServer(DatagramServer[IPAddress]):
    """A UDP server, one datagram at a time: ``UDPServer((host, port), Handler)``."""

    address_family: int = _socket.AF_INET

    def __init__(
        self,
        server_address: IPAddress,
        RequestHandlerClass: HandlerFactory[DatagramRequest, IPAddress, Self],
        bind_and_activate: bool = True,
    ) -> None:
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def _check_address(self, server_address: Any) -> IPAddress:
        return check_ip_address(server_address, type(self).__name__)

    def _family_for(self, server_address: IPAddress) -> int:
        # The instance's family, as in the stdlib: a subclass may set
        # self.address_family before calling __init__.
        return family_for_ip_address(server_address, self.address_family)

    server_address: IPAddress


class UnixDatagramServer(DatagramServer[UnixClientAddress]):
    """A Unix datagram socket server: ``UnixDatagramServer(path, Handler)``.

    ``client_address`` is ``None`` for a client that never bound its socket
    (such a client cannot be replied to)."""

    address_family: int = _socket.AF_UNIX

    def __init__(
        self,
        server_address: UnixBindAddress,
        RequestHandlerClass: HandlerFactory[DatagramRequest, UnixClientAddress, Self],
        bind_and_activate: bool = True,
    ) -> None:
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def _check_address(self, server_address: Any) -> UnixAddress:
        return check_unix_address(server_address, type(self).__name__)

    server_address: UnixAddress


#: Base for handlers of UDP servers: ``request`` is ``(bytes, trio socket)``.
UDPRequestHandler = BaseRequestHandler[DatagramRequest, IPAddress, UDPServer]
#: Base for handlers of Unix datagram servers.
UnixDatagramRequestHandler = BaseRequestHandler[
    DatagramRequest, UnixClientAddress, UnixDatagramServer
]
