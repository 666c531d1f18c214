"""Constructing, running and inspecting servers, as users write it.

Type-checked by ``nox -s typecheck`` (mypy --strict); never executed.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol, TypeVar, assert_type, cast

import trio

import trio_socketserver as ts
from trio_socketserver import (
    ConcurrentTCPServer,
    ConcurrentUDPServer,
    ConcurrentUnixDatagramServer,
    ConcurrentUnixStreamServer,
    ConnectionStream,
    IPAddress,
    ServerStatistics,
    StreamRequestHandler,
    TCPServer,
    UDPServer,
    UnixAddress,
    UnixDatagramServer,
    UnixStreamServer,
)


class TCPHandler(ts.TCPRequestHandler):
    async def handle(self) -> None: ...


class LineHandler(StreamRequestHandler[IPAddress, TCPServer]):
    async def handle(self) -> None: ...


class ConcurrentOnlyHandler(
    ts.BaseRequestHandler[ConnectionStream, IPAddress, ConcurrentTCPServer]
):
    async def handle(self) -> None:
        assert_type(self.server.max_concurrent_requests, int | None)


class UDPHandler(ts.UDPRequestHandler):
    async def handle(self) -> None: ...


class DatagramEcho(ts.DatagramRequestHandler[IPAddress, UDPServer]):
    async def handle(self) -> None: ...


class UnixHandler(ts.UnixStreamRequestHandler):
    async def handle(self) -> None: ...


class UnixDatagramHandler(ts.UnixDatagramRequestHandler):
    async def handle(self) -> None: ...


class AnyHandler(ts.BaseRequestHandler):
    async def handle(self) -> None: ...


# -- nursery.start --------------------------------------------------------------
# trio types `Nursery.start` as returning Any, so `await nursery.start(f)` is
# Any whatever `f` reports. What the server does pin is the type it reports
# through `task_status`; `start` below recovers it the way a typed helper in
# user code would.

T_co = TypeVar("T_co", covariant=True)


class Startable(Protocol[T_co]):
    def __call__(self, *, task_status: trio.TaskStatus[T_co] = ...) -> Awaitable[None]: ...


async def start(nursery: trio.Nursery, fn: Startable[T_co]) -> T_co:
    return cast(T_co, await nursery.start(fn))


# -- construction ---------------------------------------------------------------------


def construct() -> None:
    tcp = TCPServer(("127.0.0.1", 0), TCPHandler)
    assert_type(tcp, TCPServer)
    assert_type(tcp.server_address, IPAddress)
    assert_type(tcp.server_address, tuple[str, int] | tuple[str, int, int, int])
    assert_type(tcp.statistics(), ServerStatistics)
    assert_type(tcp.statistics().active_requests, int)
    assert_type(tcp.fileno(), int)
    assert_type(tcp.socket, trio.socket.SocketType)
    tcp.server_close()

    assert_type(TCPServer(("127.0.0.1", 0), LineHandler, bind_and_activate=False), TCPServer)
    assert_type(TCPServer(("::1", 0, 0, 0), TCPHandler), TCPServer)

    concurrent = ConcurrentTCPServer(("::1", 0, 0, 0), TCPHandler)
    assert_type(concurrent, ConcurrentTCPServer)
    assert_type(concurrent.server_address, IPAddress)
    assert_type(concurrent.max_concurrent_requests, int | None)
    assert_type(ConcurrentTCPServer(("127.0.0.1", 0), ConcurrentOnlyHandler), ConcurrentTCPServer)

    udp = UDPServer(("127.0.0.1", 0), UDPHandler)
    assert_type(udp, UDPServer)
    assert_type(udp.server_address, IPAddress)
    assert_type(udp.max_packet_size, int)
    assert_type(UDPServer(("127.0.0.1", 0), DatagramEcho), UDPServer)
    assert_type(ConcurrentUDPServer(("127.0.0.1", 0), DatagramEcho), ConcurrentUDPServer)

    unix = UnixStreamServer("/tmp/x.sock", UnixHandler)
    assert_type(unix, UnixStreamServer)
    assert_type(unix.server_address, UnixAddress)
    assert_type(unix.server_address, str | bytes)
    assert_type(UnixStreamServer(b"\0abstract", UnixHandler), UnixStreamServer)
    assert_type(ConcurrentUnixStreamServer("/tmp/x.sock", UnixHandler), ConcurrentUnixStreamServer)

    unixgram = UnixDatagramServer("/tmp/x.sock", UnixDatagramHandler)
    assert_type(unixgram.server_address, UnixAddress)
    assert_type(
        ConcurrentUnixDatagramServer("/tmp/x.sock", UnixDatagramHandler),
        ConcurrentUnixDatagramServer,
    )

    # An unparameterised handler (everything Any) fits every server.
    TCPServer(("127.0.0.1", 0), AnyHandler)
    UDPServer(("127.0.0.1", 0), AnyHandler)
    UnixStreamServer("/tmp/x.sock", AnyHandler)
    UnixDatagramServer("/tmp/x.sock", AnyHandler)


def contravariance() -> None:
    # A handler written for TCPServer serves any TCPServer subclass: the
    # factory's server parameter is contravariant.
    ConcurrentTCPServer(("127.0.0.1", 0), TCPHandler)
    ConcurrentTCPServer(("127.0.0.1", 0), LineHandler)
    ConcurrentUDPServer(("127.0.0.1", 0), UDPHandler)
    ConcurrentUnixStreamServer("/tmp/x.sock", UnixHandler)
    ConcurrentUnixDatagramServer("/tmp/x.sock", UnixDatagramHandler)

    class MyServer(ts.ConcurrencyMixIn[Any, Any], TCPServer):
        max_concurrent_requests = 100

    assert_type(MyServer(("127.0.0.1", 0), TCPHandler), MyServer)


def handler_factories() -> None:
    # RequestHandlerClass may be any callable returning something with
    # `async def run()`, e.g. a function closing over configuration.
    def factory(request: ConnectionStream, address: IPAddress, server: TCPServer) -> TCPHandler:
        return TCPHandler(request, address, server)

    TCPServer(("127.0.0.1", 0), factory)
    ConcurrentTCPServer(("127.0.0.1", 0), factory)
    handler_class: ts.HandlerFactory[ConnectionStream, IPAddress, TCPServer] = TCPHandler
    TCPServer(("127.0.0.1", 0), handler_class)


# -- running --------------------------------------------------------------------------


async def run() -> None:
    async with trio.open_nursery() as nursery:
        server = TCPServer(("127.0.0.1", 0), TCPHandler)
        assert_type(await start(nursery, server.serve_forever), TCPServer)
        started: TCPServer = await nursery.start(server.serve_forever)
        assert_type(await nursery.start(server.serve_forever), Any)  # trio: start() -> Any
        assert_type(await start(nursery, started.serve_forever), TCPServer)

        concurrent = ConcurrentTCPServer(("127.0.0.1", 0), TCPHandler)
        assert_type(await start(nursery, concurrent.serve_forever), ConcurrentTCPServer)
        unix = UnixStreamServer("/tmp/x.sock", UnixHandler)
        assert_type(await start(nursery, unix.serve_forever), UnixStreamServer)

        await server.shutdown()
        await server.shutdown(grace_period=5)
        await server.shutdown(grace_period=None)
        assert_type(server.shutting_down, bool)
        await server.wait_shutting_down()

    async with TCPServer(("127.0.0.1", 0), TCPHandler) as s:
        assert_type(s, TCPServer)
        await s.serve_forever()
        await s.serve_forever(poll_interval=0.1)
    async with ConcurrentUDPServer(("127.0.0.1", 0), UDPHandler) as c:
        assert_type(c, ConcurrentUDPServer)
        await c.handle_request()
    with UnixStreamServer("/tmp/x.sock", UnixHandler) as u:
        assert_type(u, UnixStreamServer)


# -- serve() ----------------------------------------------------------------------------


async def serve_tcp(
    *, task_status: trio.TaskStatus[ts.SocketServer[Any, Any]] = trio.TASK_STATUS_IGNORED
) -> None:
    # Forwarding task_status, as a wrapper around serve() does.
    await ts.serve(("127.0.0.1", 0), TCPHandler, task_status=task_status)


async def run_serve() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(ts.serve, ("127.0.0.1", 0), TCPHandler)
        await nursery.start(ts.serve, "/tmp/x.sock", UnixHandler)
        await nursery.start(ts.serve, ("127.0.0.1", 0), DatagramEcho)
        # serve() reports the server it built (its class depends on the
        # arguments, so statically it is a SocketServer[Any, Any]).
        assert_type(await start(nursery, serve_tcp), ts.SocketServer[Any, Any])
        nursery.start_soon(ts.serve, ("127.0.0.1", 0), TCPHandler)
        await ts.serve(
            ("127.0.0.1", 0),
            TCPHandler,
            server_class=ConcurrentTCPServer,
            max_concurrent_requests=100,
            grace_period=10,
            handle_signals=False,
        )
        await ts.serve(Path("/tmp/x.sock"), UnixHandler, grace_period=None)


def main() -> None:
    trio.run(ts.serve, ("127.0.0.1", 8000), TCPHandler)
