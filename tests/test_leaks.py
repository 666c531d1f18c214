"""Nothing outlives server_close(): no fd, no task, no Unix socket file,
for every transport, with requests in flight at shutdown."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
import trio
import trio.testing

import trio_socketserver as ts

from .conftest import open_fds, receive_exactly


class Busy(ts.BaseRequestHandler[Any, Any, Any]):
    """Stream: greet and hold. Datagram: reply, then hold the task."""

    async def handle(self) -> None:
        if isinstance(self.request, ts.ConnectionStream):
            await self.request.send_all(b"hi")
        else:
            _, sock = self.request
            await sock.sendto(b"hi", self.client_address)
        await trio.sleep_forever()


async def _in_flight(server: ts.SocketServer[Any, Any], path: str | None) -> list[Any]:
    """Open 5 requests that are all being handled; return the client objects."""
    clients: list[Any] = []
    for i in range(5):
        if server.socket_type == socket.SOCK_STREAM:
            address: Any = server.server_address
            if path:
                stream = await trio.open_unix_socket(path)
            else:
                stream = await trio.open_tcp_stream(address[0], address[1])
            assert await receive_exactly(stream, 2) == b"hi"
            clients.append(stream)
        else:
            family = socket.AF_UNIX if path else socket.AF_INET
            dgram = trio.socket.socket(family, socket.SOCK_DGRAM)
            if path:
                await dgram.bind(f"{path}.c{i}")
            target: Any = path or server.server_address
            await dgram.sendto(b"x", target)
            assert await dgram.recv(10) == b"hi"
            clients.append(dgram)
    return clients


@pytest.mark.parametrize(
    "server_class",
    [
        ts.ConcurrentTCPServer,
        ts.ConcurrentUDPServer,
        ts.ConcurrentUnixStreamServer,
        ts.ConcurrentUnixDatagramServer,
    ],
)
async def test_nothing_outlives_server_close(
    server_class: type[ts.SocketServer[Any, Any]],
    sock_path: str,
    autojump_clock: trio.testing.MockClock,
) -> None:
    before_fds = open_fds()
    is_unix = server_class.address_family == socket.AF_UNIX
    address: Any = sock_path if is_unix else ("127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        server = server_class(address, Busy)
        with server:
            server.grace_period = 2
            await nursery.start(server.serve_forever)
            clients = await _in_flight(server, sock_path if is_unix else None)
            assert server.statistics().active_requests == 5
            await server.shutdown()
            assert server.statistics().active_requests == 0
            await trio.testing.wait_all_tasks_blocked()
            assert not nursery.child_tasks, "serve_forever did not return"
    for client in clients:
        if isinstance(client, trio.socket.SocketType):
            client.close()
        else:
            await client.aclose()
    for i in range(5):
        if os.path.exists(f"{sock_path}.c{i}"):
            os.unlink(f"{sock_path}.c{i}")
    assert not os.path.exists(sock_path)
    assert open_fds() <= before_fds, "file descriptors leaked"
