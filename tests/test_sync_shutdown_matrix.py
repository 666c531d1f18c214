"""The shutdown matrix: in-flight blocking handlers x how the server is
stopped, for every stream transport and concurrency model. After each cell
nothing may be left: no thread, file descriptor, child process or socket
file, and every client's connection has ended (served or closed).

Modes:
  graceful  shutdown() + server_close(); the clients then finish their
            requests, which the handlers complete (block_on_close waits).
  deadline  grace_period set: server_close() unblocks the handlers stuck in
            socket I/O once it has passed.
  daemon    daemon_threads: server_close() does not wait, and the handlers'
            connections are shut down at once.
Ctrl-C is covered, per model, by test_sync_shutdown.test_ctrl_c_stops_cleanly.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

import trio_socketserver.sync as sync

from .sync_helpers import CLIENT_TIMEOUT, client_family, read_to_eof

pytestmark = pytest.mark.filterwarnings("ignore:.*forking the fork helper:RuntimeWarning")

IN_FLIGHT = 3


class Reply(sync.BaseRequestHandler):
    """Says it started (a byte), blocks until its client sends, replies."""

    def handle(self) -> None:
        self.request.sendall(b"+")
        data = self.request.recv(100)
        if data:
            self.request.sendall(data.upper())


def _server(model: str, transport: str, mode: str, path: str) -> Any:
    prefix = {"sequential": "", "threading": "Threading", "forking": "Forking"}[model]
    base = getattr(sync, prefix + ("TCPServer" if transport == "tcp" else "UnixStreamServer"))

    class Server(base):  # type: ignore[misc, valid-type]
        pass

    if mode == "deadline":
        Server.grace_period = 0.05
    if mode == "daemon":
        Server.daemon_threads = True  # meaningless for the others: they must still end
    address = ("127.0.0.1", 0) if transport == "tcp" else path
    return Server(address, Reply)


def _connect(address: Any) -> socket.socket:
    s = socket.socket(client_family(address), socket.SOCK_STREAM)
    s.settimeout(CLIENT_TIMEOUT)
    s.connect(address)
    return s


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("mode", ["graceful", "deadline", "daemon"])
@pytest.mark.parametrize("transport", ["tcp", "unix"])
@pytest.mark.parametrize("model", ["sequential", "threading", "forking"])
def test_shutdown_with_requests_in_flight(
    model: str, transport: str, mode: str, sock_path: str
) -> None:
    server = _server(model, transport, mode, sock_path)
    threads_before = set(threading.enumerate())
    serving = threading.Thread(target=server.serve_forever, args=(3600,))
    serving.start()
    in_flight = 1 if model == "sequential" else IN_FLIGHT
    clients = [_connect(server.server_address) for _ in range(in_flight)]
    try:
        for c in clients:
            assert c.recv(1) == b"+", "every handler is running"
        closer = threading.Thread(target=lambda: (server.shutdown(), server.server_close()))
        closer.start()
        if mode == "graceful" or (mode == "daemon" and model != "threading"):
            # Nothing is cut: the handlers finish their requests.
            for i, c in enumerate(clients):
                c.sendall(b"req%d" % i)
                assert c.recv(100) == b"REQ%d" % i
        else:
            # Unblocked by server_close(): the connection ends unanswered.
            for c in clients:
                assert read_to_eof(c) == b""
        closer.join(CLIENT_TIMEOUT)
        assert not closer.is_alive(), "shutdown() and server_close() returned"
        serving.join(CLIENT_TIMEOUT)
        assert not serving.is_alive()
        for c in clients:
            assert read_to_eof(c) == b"", "and then the connection is closed"
    finally:
        for c in clients:
            c.close()
    # daemon_threads: server_close() did not wait, but the handlers it
    # unblocked end by themselves.
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(CLIENT_TIMEOUT)
        assert not thread.is_alive()
    assert server.socket.fileno() == -1
    if transport == "unix":
        assert not os.path.exists(sock_path), "the socket file is removed"
