"""TCPServer and UnixStreamServer: one connection per request.

``get_request`` (in :mod:`._socket_server`) accepts without yielding when a
connection is already waiting and yields at least every
``FAIRNESS_INTERVAL`` requests, so a burst of connections cannot starve the
handlers already running. Each accepted connection becomes a
:class:`ConnectionStream`.

Unlike the stdlib, ``UnixStreamServer`` is not a subclass of ``TCPServer``
here: both derive from :class:`StreamServer`, so that each can state its own
address type (an IP tuple versus a path) to the type checker.
"""

from __future__ import annotations

import socket as _socket
from typing import TYPE_CHECKING, Any, ClassVar

from ._addresses import (
    IPAddress,
    UnixAddress,
    UnixBindAddress,
    check_ip_address,
    check_unix_address,
    family_for_ip_address,
)
from ._connection_stream import ConnectionStream
from ._handlers import BaseRequestHandler
from ._socket_server import SocketServer
from ._typevars import AddressT

if TYPE_CHECKING:
    from typing import Self

    from ._protocols import HandlerFactory

__all__ = [
    "StreamServer",
    "TCPRequestHandler",
    "TCPServer",
    "UnixStreamRequestHandler",
    "UnixStreamServer",
]


class StreamServer(SocketServer[ConnectionStream, AddressT]):
    """A connection-oriented server: accepts connections, hands each to a
    handler as a :class:`ConnectionStream`, closes it afterwards."""

    socket_type: int = _socket.SOCK_STREAM
    _transport_kind: ClassVar[str | None] = "stream"

    def server_activate(self) -> None:
        """Listen, with a backlog of ``request_queue_size``."""
        self._sock.listen(self.request_queue_size)
        super().server_activate()

    def _take_ready(self) -> tuple[ConnectionStream, AddressT] | None:
        try:
            conn, address = self._sock.accept()
        except BlockingIOError:
            return None
        return ConnectionStream(conn), address

    async def shutdown_request(self, request: ConnectionStream) -> None:
        """Send EOF to the client (``SHUT_WR``), then :meth:`close_request`."""
        try:
            request._sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass  # already disconnected or closed: nothing to shut down
        await self.close_request(request)

    async def close_request(self, request: ConnectionStream) -> None:
        """Close the connection."""
        request.close()


class TCPServer(StreamServer[IPAddress]):
    """A TCP server, one request per connection, one request at a time.

    ``TCPServer((host, port), Handler)``; an IPv6 host (``"::1"``) or a
    4-tuple address selects ``AF_INET6``.
    """

    address_family: int = _socket.AF_INET

    def __init__(
        self,
        server_address: IPAddress,
        RequestHandlerClass: HandlerFactory[ConnectionStream, IPAddress, Self],
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


class UnixStreamServer(StreamServer[UnixAddress]):
    """A Unix stream socket server: ``UnixStreamServer(path, Handler)``."""

    address_family: int = _socket.AF_UNIX

    def __init__(
        self,
        server_address: UnixBindAddress,
        RequestHandlerClass: HandlerFactory[ConnectionStream, UnixAddress, Self],
        bind_and_activate: bool = True,
    ) -> None:
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    def _check_address(self, server_address: Any) -> UnixAddress:
        return check_unix_address(server_address, type(self).__name__)

    server_address: UnixAddress


#: Base for handlers of TCP servers: ``request`` is a :class:`ConnectionStream`,
#: ``client_address`` an IP address tuple, ``server`` a :class:`TCPServer`.
TCPRequestHandler = BaseRequestHandler[ConnectionStream, IPAddress, TCPServer]
#: Base for handlers of Unix stream servers (``client_address`` is a path,
#: usually ``""`` since clients rarely bind).
UnixStreamRequestHandler = BaseRequestHandler[ConnectionStream, UnixAddress, UnixStreamServer]
