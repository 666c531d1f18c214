"""Request handlers: BaseRequestHandler, StreamRequestHandler,
DatagramRequestHandler.

The stdlib runs a handler from its constructor. A constructor cannot await,
so here the server constructs the handler and then awaits :meth:`run`, which
keeps the stdlib's order exactly: ``setup()``, then ``handle()``, then
``finish()`` in a ``finally`` (so it runs when ``handle`` raises or is
cancelled).

A cancelled handler's ``finish()`` is called inside the cancelled scope:
bookkeeping runs, but any ``await`` in it raises :exc:`trio.Cancelled` again.
Cleanup that must still do I/O belongs in
``with trio.move_on_after(t, shield=True):``.
"""

from __future__ import annotations

import io
import socket
from typing import Any, ClassVar, Generic, TypeAlias

import trio

from ._buffered import StreamReader, StreamWriter
from ._connection_stream import ConnectionStream
from ._log import SERVER_LOGGER
from ._typevars import AddressT, RequestT, ServerT

__all__ = [
    "BaseRequestHandler",
    "DatagramRequest",
    "DatagramRequestHandler",
    "StreamRequestHandler",
]

#: A datagram server's ``request``: the packet and the server's socket (reply
#: with ``await socket.sendto(data, client_address)``), as in the stdlib.
DatagramRequest: TypeAlias = tuple[bytes, trio.socket.SocketType]


class BaseRequestHandler(Generic[RequestT, AddressT, ServerT]):
    """Base class for request handlers; override :meth:`handle`.

    One instance serves one request: a connection for stream servers, a
    datagram for datagram servers. Generic in the request, client address and
    server types; an unparameterised subclass uses ``Any`` for all three
    (as typeshed does for the stdlib).

    Attributes:
      request: the request (a :class:`ConnectionStream` for stream servers,
        a ``(bytes, trio socket)`` pair for datagram servers).
      client_address: the client's address.
      server: the server instance handling the request.
    """

    #: Which kind of server this handler is written for. ``"stream"``,
    #: ``"datagram"``, or ``None`` for either. Servers check it at
    #: construction so that a mismatch fails early and clearly.
    transport_kind: ClassVar[str | None] = None

    request: RequestT
    client_address: AddressT
    server: ServerT

    def __init__(self, request: RequestT, client_address: AddressT, server: ServerT) -> None:
        self.request = request
        self.client_address = client_address
        self.server = server

    async def run(self) -> None:
        """Serve the request: ``setup()``, ``handle()``, then ``finish()``
        (always, as in the stdlib's constructor)."""
        await self.setup()
        try:
            await self.handle()
        finally:
            await self.finish()

    async def setup(self) -> None:
        """Called before :meth:`handle`. Does nothing by default."""

    async def handle(self) -> None:
        """Serve the request. Does nothing by default."""

    async def finish(self) -> None:
        """Called after :meth:`handle`, even if it raised or was cancelled."""


class StreamRequestHandler(BaseRequestHandler[ConnectionStream, AddressT, ServerT]):
    """A handler for stream servers with ``rfile``/``wfile`` set up.

    ``self.rfile`` is a :class:`StreamReader` (``await rfile.readline()``,
    ``await rfile.read(n)``, ``async for line in rfile``) and ``self.wfile``
    a :class:`StreamWriter` (``await wfile.write(data)``). The class
    attributes mean what they mean in the stdlib.
    """

    transport_kind: ClassVar[str | None] = "stream"

    #: Read buffer size. ``-1`` is the default size, ``0`` unbuffered (never
    #: reads past what was asked for).
    rbufsize: ClassVar[int] = -1
    #: Write buffer size. ``0`` (the default) sends each write at once.
    wbufsize: ClassVar[int] = 0
    #: Seconds each read or write may take before :exc:`TimeoutError`;
    #: ``None`` for no limit; ``0`` does only what needs no waiting (as a
    #: non-blocking socket). Set it for servers exposed to slow or silent
    #: clients. Checked when the server is constructed.
    timeout: ClassVar[float | None] = None
    #: Set ``TCP_NODELAY`` on TCP connections (ignored for Unix sockets).
    disable_nagle_algorithm: ClassVar[bool] = False

    connection: ConnectionStream
    rfile: StreamReader
    wfile: StreamWriter

    async def setup(self) -> None:
        self.connection = self.request
        if self.disable_nagle_algorithm and self._is_tcp():
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = StreamReader(self.connection, self.rbufsize, self.timeout)
        self.wfile = StreamWriter(self.connection, self.wbufsize, self.timeout)

    def _is_tcp(self) -> bool:
        return self.connection.family in (socket.AF_INET, socket.AF_INET6)

    async def finish(self) -> None:
        # As the stdlib: flush what the handler wrote, ignoring a client that
        # has gone away; then close both files (not the connection: the
        # server's shutdown_request does that).
        rfile = getattr(self, "rfile", None)
        if rfile is not None:
            rfile.close()
        wfile = getattr(self, "wfile", None)
        if wfile is not None and not wfile.closed:
            try:
                await wfile.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, TimeoutError):
                pass


class DatagramRequestHandler(BaseRequestHandler[DatagramRequest, AddressT, ServerT]):
    """A handler for datagram servers with ``rfile``/``wfile`` over the packet.

    ``self.packet`` holds the datagram and ``self.rfile`` reads it;
    whatever the handler writes to ``self.wfile`` is sent back to
    ``client_address`` in one datagram when the handler finishes (as in the
    stdlib, an empty reply is sent too).
    """

    transport_kind: ClassVar[str | None] = "datagram"

    packet: bytes
    socket: trio.socket.SocketType
    rfile: io.BytesIO
    wfile: io.BytesIO

    async def setup(self) -> None:
        self.packet, self.socket = self.request
        self.rfile = io.BytesIO(self.packet)
        self.wfile = io.BytesIO()

    async def finish(self) -> None:
        address: Any = self.client_address
        if address is None:
            # A Unix datagram client that never bound its socket has no
            # address: there is nowhere to send a reply (the stdlib fails with
            # a TypeError here). Drop it, visibly.
            SERVER_LOGGER.debug("no reply sent: the client socket is unbound")
            return
        sendto = getattr(self.server, "sendto", None)  # DatagramServer.sendto takes turns
        if sendto is None:
            await self.socket.sendto(self.wfile.getvalue(), address)
        else:
            await sendto(self.wfile.getvalue(), address)
