"""What handler authors write, and the types they see.

Type-checked by ``nox -s typecheck`` (mypy --strict); never executed.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Coroutine
from typing import Any, assert_type

import trio

import trio_socketserver as ts
from trio_socketserver import (
    BaseRequestHandler,
    ConnectionStream,
    DatagramRequestHandler,
    IPAddress,
    StreamReader,
    StreamRequestHandler,
    StreamWriter,
    TCPServer,
    UDPServer,
    UnixAddress,
    UnixClientAddress,
    UnixDatagramServer,
    UnixStreamServer,
)

# -- the address aliases ------------------------------------------------------

assert_type(("127.0.0.1", 80), tuple[str, int])
ip4: IPAddress = ("127.0.0.1", 80)
ip6: IPAddress = ("::1", 80, 0, 0)
unix_path: UnixAddress = "/tmp/x.sock"
unix_abstract: UnixAddress = b"\0name"
unbound_client: UnixClientAddress = None


# -- TCP ------------------------------------------------------------------------


class TCPHandler(ts.TCPRequestHandler):
    async def handle(self) -> None:
        assert_type(self.request, ConnectionStream)
        assert_type(self.client_address, tuple[str, int] | tuple[str, int, int, int])
        assert_type(self.client_address, IPAddress)
        assert_type(self.server, TCPServer)
        assert_type(self.server.server_address, IPAddress)
        assert_type(await self.request.receive_some(), bytes)
        await self.request.send_all(b"data")
        host, port, *_ = self.client_address
        assert_type(host, str)
        assert_type(port, int)


class TCPStreamHandler(StreamRequestHandler[IPAddress, TCPServer]):
    async def setup(self) -> None:
        await super().setup()

    async def handle(self) -> None:
        assert_type(self.request, ConnectionStream)
        assert_type(self.connection, ConnectionStream)
        assert_type(self.client_address, IPAddress)
        assert_type(self.server, TCPServer)
        assert_type(self.rfile, StreamReader)
        assert_type(self.wfile, StreamWriter)
        assert_type(await self.rfile.readline(), bytes)
        assert_type(await self.rfile.read(10), bytes)
        assert_type(await self.rfile.readlines(), list[bytes])
        # `write` is an `async def`: calling it gives a coroutine of the
        # number of bytes written, which is an Awaitable[int].
        # (`_ =` because assert_type returns its argument, and a coroutine
        # left unused is an error of its own.)
        pending = self.wfile.write(b"hello\n")
        _ = assert_type(pending, Coroutine[Any, Any, int])
        awaitable: Awaitable[int] = pending
        assert_type(await awaitable, int)
        assert_type(await self.wfile.write(bytearray(b"x")), int)
        await self.wfile.writelines([b"a", b"b"])
        await self.wfile.flush()
        async for line in self.rfile:
            assert_type(line, bytes)

    async def finish(self) -> None:
        await super().finish()


class TunedStreamHandler(StreamRequestHandler[IPAddress, TCPServer]):
    # The stdlib's class attributes, overridable as there.
    rbufsize = 0
    wbufsize = 8192
    timeout = 5.0
    disable_nagle_algorithm = True


# -- UDP ------------------------------------------------------------------------


class UDPHandler(ts.UDPRequestHandler):
    async def handle(self) -> None:
        assert_type(self.request, tuple[bytes, trio.socket.SocketType])
        assert_type(self.request, ts.DatagramRequest)
        data, sock = self.request
        assert_type(data, bytes)
        assert_type(sock, trio.socket.SocketType)
        assert_type(self.client_address, IPAddress)
        assert_type(self.server, UDPServer)
        await sock.sendto(data, self.client_address)


class UDPDatagramHandler(DatagramRequestHandler[IPAddress, UDPServer]):
    async def handle(self) -> None:
        assert_type(self.request, tuple[bytes, trio.socket.SocketType])
        assert_type(self.packet, bytes)
        assert_type(self.socket, trio.socket.SocketType)
        assert_type(self.rfile, io.BytesIO)
        assert_type(self.wfile, io.BytesIO)
        assert_type(self.client_address, IPAddress)
        assert_type(self.server, UDPServer)
        assert_type(self.rfile.read(), bytes)
        assert_type(self.wfile.write(self.packet.upper()), int)


# -- Unix -----------------------------------------------------------------------


class UnixStreamHandler(ts.UnixStreamRequestHandler):
    async def handle(self) -> None:
        assert_type(self.request, ConnectionStream)
        assert_type(self.client_address, str | bytes)
        assert_type(self.client_address, UnixAddress)
        assert_type(self.server, UnixStreamServer)
        assert_type(self.server.server_address, UnixAddress)


class UnixLineHandler(StreamRequestHandler[UnixAddress, UnixStreamServer]):
    async def handle(self) -> None:
        assert_type(self.client_address, UnixAddress)
        assert_type(await self.rfile.readline(), bytes)


class UnixDatagramHandler(ts.UnixDatagramRequestHandler):
    async def handle(self) -> None:
        assert_type(self.request, tuple[bytes, trio.socket.SocketType])
        assert_type(self.client_address, str | bytes | None)
        assert_type(self.client_address, UnixClientAddress)
        assert_type(self.server, UnixDatagramServer)
        assert_type(self.server.server_address, UnixAddress)


class UnixDatagramEcho(DatagramRequestHandler[UnixClientAddress, UnixDatagramServer]):
    async def handle(self) -> None:
        assert_type(self.client_address, UnixClientAddress)
        assert_type(self.packet, bytes)
        assert_type(self.rfile, io.BytesIO)


# -- unparameterised, as typeshed's socketserver ------------------------------------
# The type variables default to Any (PEP 696), so strict mode accepts a bare
# BaseRequestHandler base (no "missing type parameters") and everything is Any.


class UntypedHandler(BaseRequestHandler):
    async def handle(self) -> None:
        assert_type(self.request, Any)
        assert_type(self.client_address, Any)
        assert_type(self.server, Any)


class UntypedStreamHandler(StreamRequestHandler):
    async def handle(self) -> None:
        assert_type(self.request, ConnectionStream)
        assert_type(self.client_address, Any)
        assert_type(self.server, Any)
        assert_type(await self.rfile.readline(), bytes)


class UntypedDatagramHandler(DatagramRequestHandler):
    async def handle(self) -> None:
        assert_type(self.request, tuple[bytes, trio.socket.SocketType])
        assert_type(self.client_address, Any)
        assert_type(self.packet, bytes)


# -- the hooks --------------------------------------------------------------------


class AllHooks(ts.TCPRequestHandler):
    async def setup(self) -> None:
        await super().setup()

    async def handle(self) -> None:
        await self.server.wait_shutting_down()
        assert_type(self.server.shutting_down, bool)

    async def finish(self) -> None:
        with trio.move_on_after(1, shield=True):
            await self.request.send_all(b"bye")
        await super().finish()


async def run_directly(handler: TCPHandler) -> None:
    # What a server does with a handler: construct it, await run().
    assert_type(await handler.run(), None)
    runner: ts.RequestHandler = handler
    await runner.run()
