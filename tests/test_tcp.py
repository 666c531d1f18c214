"""TCP servers over real loopback sockets (IPv4 and IPv6)."""

from __future__ import annotations

import socket
from typing import Any, ClassVar

import pytest
import trio

import trio_socketserver as ts

from .conftest import (
    blocking_tcp_roundtrip,
    has_ipv6,
    receive_all,
    receive_exactly,
    tcp_connect,
)

HOSTS = [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6")),
]


class UpperEcho(ts.TCPRequestHandler):
    async def handle(self) -> None:
        data = await self.request.receive_some(1024)
        await self.request.send_all(data.upper())


class LineUpper(ts.StreamRequestHandler[ts.IPAddress, ts.TCPServer]):
    async def handle(self) -> None:
        async for line in self.rfile:
            await self.wfile.write(line.upper())


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("server_class", [ts.TCPServer, ts.ConcurrentTCPServer])
async def test_echo_ipv4_and_ipv6(
    host: str, server_class: type[ts.TCPServer], nursery: trio.Nursery, no_fd_leak: None
) -> None:
    with server_class((host, 0), UpperEcho) as server:
        assert server.server_address[0] == host
        assert server.server_address[1] != 0, "port 0 must be resolved to the bound port"
        expected_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        assert server.address_family == expected_family
        assert server.socket.family == expected_family
        await nursery.start(server.serve_forever)
        reply = await trio.to_thread.run_sync(
            blocking_tcp_roundtrip, server.server_address[:2], b"hello"
        )
        assert reply == b"HELLO"
        await server.shutdown()


async def test_stream_request_handler_lines_and_iteration(nursery: trio.Nursery) -> None:
    with ts.TCPServer(("127.0.0.1", 0), LineUpper) as server:
        await nursery.start(server.serve_forever)
        reply = await trio.to_thread.run_sync(
            blocking_tcp_roundtrip, server.server_address, b"one\ntwo\nthree"
        )
        assert reply == b"ONE\nTWO\nTHREE"
        await server.shutdown()


class ReadApi(ts.StreamRequestHandler[Any, Any]):
    rbufsize = 0  # unbuffered: nothing read past what is asked for

    async def handle(self) -> None:
        header = await self.rfile.readline()
        size = int(header)
        body = await self.rfile.read(size)
        # What is left on the connection was never read into a buffer:
        rest = await self.request.receive_some(100)
        await self.wfile.write(b"%d|%s|%s" % (size, body, rest))


async def test_unbuffered_rfile_reads_nothing_extra(nursery: trio.Nursery) -> None:
    with ts.TCPServer(("127.0.0.1", 0), ReadApi) as server:
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        async with stream:
            await stream.send_all(b"5\nhellotail")
            reply = await receive_all(stream)
        assert reply == b"5|hello|tail"
        await server.shutdown()


class BufferedWriter(ts.StreamRequestHandler[Any, Any]):
    wbufsize = 1 << 16

    async def handle(self) -> None:
        for i in range(3):
            await self.wfile.write(b"part%d;" % i)
        # Still inside the request; finish() will flush the buffered writes.
        # (A failing assert here reaches handle_error; the test checks errors.)
        assert self.server.statistics().active_requests == 1


async def test_buffered_wfile_flushed_on_finish(nursery: trio.Nursery) -> None:
    with ts.TCPServer(("127.0.0.1", 0), BufferedWriter) as server:
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        async with stream:
            assert await receive_all(stream) == b"part0;part1;part2;"
        await server.shutdown()
        assert server.statistics().errors == 0


class SlowClientGuard(ts.StreamRequestHandler[Any, Any]):
    timeout = 5
    outcome: ClassVar[list[str]] = []

    async def handle(self) -> None:
        try:
            await self.rfile.readline()
        except TimeoutError:
            self.outcome.append("timeout")
            raise


async def test_handler_timeout_bounds_a_silent_client(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    SlowClientGuard.outcome = []
    with ts.TCPServer(("127.0.0.1", 0), SlowClientGuard) as server:
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        async with stream:
            await stream.send_all(b"no newline, then silence")
            # The server gives up on us after `timeout` and closes the connection.
            assert await receive_all(stream) == b""
        assert SlowClientGuard.outcome == ["timeout"]
        assert "TimeoutError" in caplog.text
        await server.shutdown()


class NoDelay(ts.StreamRequestHandler[Any, Any]):
    disable_nagle_algorithm = True

    async def handle(self) -> None:
        value = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await self.wfile.write(b"nodelay=%d" % bool(value))


async def test_disable_nagle_algorithm(nursery: trio.Nursery) -> None:
    with ts.TCPServer(("127.0.0.1", 0), NoDelay) as server:
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        async with stream:
            assert await receive_all(stream) == b"nodelay=1"
        await server.shutdown()


async def test_handle_request_serves_exactly_one(no_fd_leak: None) -> None:
    with ts.TCPServer(("127.0.0.1", 0), UpperEcho) as server:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle_request)
            stream = await tcp_connect(server.server_address)
            async with stream:
                await stream.send_all(b"once")
                assert await receive_exactly(stream, 4) == b"ONCE"
        assert server.statistics().requests_received == 1


class TimeoutServer(ts.TCPServer):
    timeout = 3.0
    timeouts = 0

    async def handle_timeout(self) -> None:
        self.timeouts += 1


async def test_handle_request_timeout_calls_handle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with TimeoutServer(("127.0.0.1", 0), UpperEcho) as server:
        start = trio.current_time()
        await server.handle_request()
        assert server.timeouts == 1
        assert trio.current_time() - start == pytest.approx(3.0)
        assert server.statistics().requests_received == 0


class Recorder(ts.TCPServer):
    """Records the stdlib hooks in the order they are called."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: list[str] = []
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        self.calls.append("server_bind")
        super().server_bind()

    def server_activate(self) -> None:
        self.calls.append("server_activate")
        super().server_activate()

    async def get_request(self) -> tuple[ts.ConnectionStream, ts.IPAddress]:
        self.calls.append("get_request")
        return await super().get_request()

    async def verify_request(self, request: ts.ConnectionStream, address: ts.IPAddress) -> bool:
        self.calls.append("verify_request")
        return True

    async def process_request(self, request: ts.ConnectionStream, address: ts.IPAddress) -> None:
        self.calls.append("process_request")
        await super().process_request(request, address)

    async def finish_request(self, request: ts.ConnectionStream, address: ts.IPAddress) -> None:
        self.calls.append("finish_request")
        await super().finish_request(request, address)

    async def shutdown_request(self, request: ts.ConnectionStream) -> None:
        self.calls.append("shutdown_request")
        await super().shutdown_request(request)

    async def close_request(self, request: ts.ConnectionStream) -> None:
        self.calls.append("close_request")
        await super().close_request(request)

    def server_close(self) -> None:
        self.calls.append("server_close")
        super().server_close()


async def test_hooks_called_in_stdlib_order() -> None:
    with Recorder(("127.0.0.1", 0), UpperEcho) as server:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle_request)
            stream = await tcp_connect(server.server_address)
            async with stream:
                await stream.send_all(b"x")
                assert await receive_exactly(stream, 1) == b"X"
    assert server.calls == [
        "server_bind",
        "server_activate",
        "get_request",
        "verify_request",
        "process_request",
        "finish_request",
        "shutdown_request",
        "close_request",
        "server_close",
    ]


class Refuser(ts.TCPServer):
    async def verify_request(self, request: ts.ConnectionStream, address: ts.IPAddress) -> bool:
        return False


async def test_verify_request_false_closes_the_connection(nursery: trio.Nursery) -> None:
    with Refuser(("127.0.0.1", 0), UpperEcho) as server:
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        async with stream:
            await stream.send_all(b"let me in")
            # Never handled: the connection is shut down without a reply.
            assert await receive_all(stream) == b""
        await server.shutdown()


async def test_bind_and_activate_false_then_manual() -> None:
    server = ts.TCPServer(("127.0.0.1", 0), UpperEcho, bind_and_activate=False)
    with server:
        with pytest.raises(RuntimeError, match="server_bind"):
            await server.serve_forever()
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        assert server.server_address[1] != 0
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert server.fileno() == server.socket.fileno() >= 0
    assert server.fileno() == -1


async def test_async_context_manager_closes() -> None:
    async with ts.ConcurrentTCPServer(("127.0.0.1", 0), UpperEcho) as server:
        assert isinstance(server, ts.ConcurrentTCPServer)
        fd = server.fileno()
        assert fd >= 0
    assert server.fileno() == -1
    with pytest.raises(RuntimeError, match="closed server"):
        await server.serve_forever()


class Read1(ts.StreamRequestHandler[Any, Any]):
    async def handle(self) -> None:
        line = await self.rfile.readline()  # buffers whatever else arrived
        rest = await self.rfile.read1(3)  # served from the buffer, at most 3
        assert await self.rfile.read1(0) == b""
        tail = await self.rfile.read()  # the rest, to EOF
        assert await self.rfile.read1(10) == b""  # at EOF
        await self.wfile.write(b"%s|%s|%s" % (line, rest, tail))


async def test_read1_contract(nursery: trio.Nursery) -> None:
    with ts.TCPServer(("127.0.0.1", 0), Read1) as server:
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        async with stream:
            await stream.send_all(b"head\nabcdefgh")
            await stream.send_eof()
            assert await receive_all(stream) == b"head\n|abc|defgh"
        await server.shutdown()


class ZeroTimeout(ts.StreamRequestHandler[Any, Any]):
    timeout = 0
    second_read: ClassVar[list[str]] = []

    async def handle(self) -> None:
        line = await self.rfile.readline()
        await self.wfile.write(b"got " + line)
        try:
            await self.rfile.readline()  # nothing more was sent: would have to wait
        except TimeoutError:
            type(self).second_read.append("timed out")


async def test_zero_timeout_reads_what_is_already_received(no_fd_leak: None) -> None:
    # timeout=0 is the stdlib's non-blocking socket: what needs no waiting
    # succeeds, what would wait raises TimeoutError at once.
    ZeroTimeout.second_read = []
    # Connected and sent before the server accepts: the line is in the
    # kernel's receive buffer when the handler first reads.
    with (
        ts.TCPServer(("127.0.0.1", 0), ZeroTimeout) as server,
        socket.create_connection(server.server_address[:2], timeout=10) as client,
    ):
        client.sendall(b"hello\n")
        with trio.fail_after(10):
            await server.handle_request()
        assert client.recv(100) == b"got hello\n"
    assert ZeroTimeout.second_read == ["timed out"]


@pytest.mark.parametrize("server_class", [ts.TCPServer, ts.UDPServer])
@pytest.mark.parametrize(
    ("address", "error", "match"),
    [
        (("[::1]", 0), ValueError, r"host '\[::1\]' is in brackets: .*\('::1', 0\)"),
        (("127.0.0.1", 0, 0, 0), ValueError, r"with the IPv4 host '127.0.0.1': write"),
        (("127.0.0.1", 0, 0), ValueError, r"with the IPv4 host '127.0.0.1': write"),
        (("::1", 0, -1, 0), ValueError, r"flowinfo must be between 0 and 1048575"),
        (("::1", 0, 2**20, 0), ValueError, r"flowinfo must be between 0 and 1048575"),
        (("nonexistent.invalid", 0), socket.gaierror, r"host 'nonexistent.invalid' is not"),
        (("256.1.1.1", 0), socket.gaierror, r"cannot bind to \('256.1.1.1', 0\): host"),
    ],
)
def test_bad_ip_addresses_are_named_in_the_error(
    server_class: Any, address: Any, error: type[Exception], match: str, no_fd_leak: None
) -> None:
    with pytest.raises(error, match=match):
        server_class(address, ts.BaseRequestHandler)


@pytest.mark.parametrize("server_class", [ts.TCPServer, ts.UDPServer])
@pytest.mark.parametrize(
    "address",
    [
        (b"127.0.0.1", 0),
        (bytearray(b"127.0.0.1"), 0),
        pytest.param(("::1", 0, 0), marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6")),
        pytest.param(("::1", 0, 0, 0), marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6")),
    ],
)
def test_addresses_the_socket_module_binds_are_accepted(
    server_class: Any, address: Any, no_fd_leak: None
) -> None:
    # As in the stdlib: a bytes host, and IPv6 3- and 4-tuples.
    with server_class(address, ts.BaseRequestHandler) as server:
        assert server.server_address[1] != 0
        expected = socket.AF_INET6 if len(address) > 2 else socket.AF_INET
        assert server.socket.family == expected


def test_instance_address_family_is_obeyed(no_fd_leak: None) -> None:
    if not has_ipv6():
        pytest.skip("no IPv6")

    class Dual(ts.TCPServer):
        def __init__(self, address: Any, handler: Any, family: int) -> None:
            self.address_family = family
            super().__init__(address, handler)

    # "" binds all interfaces of the family set on the instance: IPv6 here.
    with Dual(("", 0), ts.BaseRequestHandler, socket.AF_INET6) as server:
        assert server.socket.family == socket.AF_INET6
