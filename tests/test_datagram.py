"""UDP and Unix datagram servers over real sockets."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
import trio
import trio.testing

import trio_socketserver as ts

from .conftest import has_ipv6, udp_roundtrip

HOSTS = [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6")),
]


class UpperUDP(ts.UDPRequestHandler):
    async def handle(self) -> None:
        data, sock = self.request
        await sock.sendto(data.upper(), self.client_address)


class UpperFile(ts.DatagramRequestHandler[Any, Any]):
    async def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("handler", [UpperUDP, UpperFile])
@pytest.mark.parametrize("server_class", [ts.UDPServer, ts.ConcurrentUDPServer])
async def test_udp_upper_echo(
    host: str,
    handler: Any,
    server_class: type[ts.UDPServer],
    nursery: trio.Nursery,
    no_fd_leak: None,
) -> None:
    with server_class((host, 0), handler) as server:
        assert server.server_address[1] != 0
        await nursery.start(server.serve_forever)
        data, peer = await udp_roundtrip(server.server_address, b"hello")
        assert data == b"HELLO"
        assert isinstance(peer, tuple)
        assert peer[1] == server.server_address[1]
        await server.shutdown()


async def test_oversized_datagram_is_dropped_and_reported(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    class Small(ts.UDPServer):
        max_packet_size = 16

    with Small(("127.0.0.1", 0), UpperFile) as server:
        await nursery.start(server.serve_forever)
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            await client.connect(server.server_address)
            await client.send(b"x" * 17)  # one byte too many: truncated -> dropped
            await client.send(b"y" * 16)  # exactly the limit: served
            with trio.fail_after(10):
                assert await client.recv(100) == b"Y" * 16
        assert server.truncated_datagrams == 1
        assert server.statistics().requests_received == 1
        assert "larger than max_packet_size (16 bytes)" in caplog.text
        await server.shutdown()


class Counter(ts.DatagramRequestHandler[Any, Any]):
    async def handle(self) -> None:
        self.wfile.write(b"%d" % len(self.packet))


async def test_unix_datagram_server(sock_path: str, nursery: trio.Nursery) -> None:
    with ts.ConcurrentUnixDatagramServer(sock_path, Counter) as server:
        assert server.server_address == sock_path
        await nursery.start(server.serve_forever)
        client_path = sock_path + ".client"
        with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            await client.bind(client_path)  # bound, so the server can reply
            await client.sendto(b"12345", sock_path)
            with trio.fail_after(10):
                data, peer = await client.recvfrom(100)
        assert (data, peer) == (b"5", sock_path)
        await server.shutdown()


async def test_unix_datagram_client_address_none_when_unbound(
    sock_path: str, nursery: trio.Nursery
) -> None:
    seen: list[object] = []
    got = trio.Event()

    class Record(ts.UnixDatagramRequestHandler):
        async def handle(self) -> None:
            seen.append(self.client_address)
            got.set()

    with ts.UnixDatagramServer(sock_path, Record) as server:
        await nursery.start(server.serve_forever)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.sendto(b"anonymous", sock_path)
        await got.wait()
        await server.shutdown()
    assert seen == [None]


async def test_unbound_unix_client_gets_no_reply_and_no_error(
    sock_path: str, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    with ts.UnixDatagramServer(sock_path, Counter) as server:
        await nursery.start(server.serve_forever)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as anonymous:
            anonymous.sendto(b"nobody can answer me", sock_path)
        # The server keeps serving: a bound client still gets its reply.
        with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            await client.bind(sock_path + ".c")
            await client.sendto(b"abc", sock_path)
            with trio.fail_after(10):
                assert await client.recv(10) == b"3"
        await server.shutdown()
    assert server.statistics().requests_received == 2
    assert server.statistics().errors == 0
    assert "Exception occurred" not in caplog.text


@pytest.mark.parametrize(
    "server_class", [ts.UDPServer, ts.ConcurrentUDPServer, ts.ConcurrentUnixDatagramServer]
)
async def test_server_close_while_serving_lets_handlers_reply_in_the_grace_period(
    server_class: type[ts.DatagramServer[Any]],
    sock_path: str,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    no_fd_leak: None,
) -> None:
    # server_close() starts the shutdown; the handlers still running get the
    # grace period, and a datagram handler replies through the server's
    # socket: that socket must stay open until they are done.
    started, release = trio.Event(), trio.Event()

    class RepliesLate(ts.DatagramRequestHandler[Any, Any]):
        async def handle(self) -> None:
            started.set()
            await release.wait()
            self.wfile.write(b"late:" + self.packet)

    unix = issubclass(server_class, ts.UnixDatagramServer)
    family = socket.AF_UNIX if unix else socket.AF_INET
    with trio.socket.socket(family, socket.SOCK_DGRAM) as client:
        await client.bind(sock_path + ".c" if unix else ("127.0.0.1", 0))
        server = server_class(sock_path if unix else ("127.0.0.1", 0), RepliesLate)
        with server:
            await nursery.start(server.serve_forever)
            address: Any = server.server_address
            await client.sendto(b"x", address)
            await started.wait()
        # Left the with block: server_close() began the shutdown.
        assert server.shutting_down
        if unix:  # no new requests: the socket file is gone at once
            assert not os.path.exists(sock_path)
        release.set()
        with trio.fail_after(10):
            assert await client.recv(100) == b"late:x"
            await server.shutdown()  # waits for serve_forever to return
    assert server.fileno() == -1, "closed once serve_forever returned"
    assert server.statistics().errors == 0
    assert "Exception occurred" not in caplog.text
