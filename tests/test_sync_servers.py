"""The blocking servers over real sockets: every transport, sequential,
threading and forking, the error policy and the request hooks."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

import trio_socketserver.sync as sync

from .conftest import has_ipv6
from .sync_helpers import (
    CLIENT_TIMEOUT,
    datagram_roundtrip,
    read_to_eof,
    serving,
    stream_roundtrip,
)

# Other tests leave idle threads behind (trio's worker-thread cache, pooled
# handler threads retiring), so the fork helper's warning about forking a
# threaded process can fire here; test_forking_warns_in_a_threaded_process
# checks the warning itself.
pytestmark = pytest.mark.filterwarnings("ignore:.*forking the fork helper:RuntimeWarning")


class UpperLines(sync.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


class UpperDatagram(sync.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


class PidDatagram(sync.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(str(os.getpid()).encode())


STREAM = ["TCPServer", "ThreadingTCPServer", "ForkingTCPServer"]
UNIX_STREAM = ["UnixStreamServer", "ThreadingUnixStreamServer", "ForkingUnixStreamServer"]
DATAGRAM = ["UDPServer", "ThreadingUDPServer", "ForkingUDPServer"]
UNIX_DATAGRAM = ["UnixDatagramServer", "ThreadingUnixDatagramServer", "ForkingUnixDatagramServer"]


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("name", STREAM)
def test_tcp_echo(name: str) -> None:
    server = getattr(sync, name)(("127.0.0.1", 0), UpperLines)
    with serving(server):
        for i in range(5):
            assert stream_roundtrip(server.server_address, b"a%d\nb\n" % i) == b"A%d\nB\n" % i


@pytest.mark.usefixtures("no_leak")
@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")
@pytest.mark.parametrize("name", STREAM)
def test_tcp_echo_ipv6(name: str) -> None:
    server = getattr(sync, name)(("::1", 0), UpperLines)
    with serving(server):
        assert server.server_address[0] == "::1"
        assert stream_roundtrip(server.server_address, b"six\n") == b"SIX\n"


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("name", UNIX_STREAM)
def test_unix_stream_echo(name: str, sock_path: str) -> None:
    server = getattr(sync, name)(sock_path, UpperLines)
    with serving(server):
        assert server.server_address == sock_path
        assert stream_roundtrip(sock_path, b"unix\n") == b"UNIX\n"
    assert not os.path.exists(sock_path), "server_close() leaves no socket file"


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("name", DATAGRAM)
def test_udp_echo(name: str) -> None:
    server = getattr(sync, name)(("127.0.0.1", 0), UpperDatagram)
    with serving(server):
        for i in range(5):
            assert datagram_roundtrip(server.server_address, b"d%d" % i) == b"D%d" % i


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("name", UNIX_DATAGRAM)
def test_unix_datagram_echo(name: str, sock_path: str) -> None:
    server = getattr(sync, name)(sock_path, UpperDatagram)
    with serving(server):
        reply = datagram_roundtrip(sock_path, b"dgram", bind_path=sock_path + ".client")
        assert reply == b"DGRAM"
    assert not os.path.exists(sock_path)


@pytest.mark.usefixtures("no_leak")
def test_forking_serves_in_other_processes() -> None:
    server = sync.ForkingUDPServer(("127.0.0.1", 0), PidDatagram)
    with serving(server):
        pids = {int(datagram_roundtrip(server.server_address, b"?")) for _ in range(3)}
    assert os.getpid() not in pids
    assert len(pids) == 3, "each request gets its own process"
    assert not server.active_children


@pytest.mark.usefixtures("no_leak")
def test_threading_reuses_threads() -> None:
    names: list[str] = []

    class Name(sync.BaseRequestHandler):
        def handle(self) -> None:
            names.append(threading.current_thread().name)
            self.request.sendall(b"ok")

    server = sync.ThreadingTCPServer(("127.0.0.1", 0), Name)
    with serving(server):
        for _ in range(5):
            assert stream_roundtrip(server.server_address, b"") == b"ok"
    assert len(names) == 5
    assert threading.main_thread().name not in names
    assert len(set(names)) < 5, "sequential requests reuse a pooled thread"


def test_sequential_handlers_run_in_the_serving_thread() -> None:
    seen: list[threading.Thread] = []

    class Where(sync.BaseRequestHandler):
        def handle(self) -> None:
            seen.append(threading.current_thread())

    server = sync.TCPServer(("127.0.0.1", 0), Where)
    with serving(server) as thread:
        stream_roundtrip(server.server_address, b"")
    assert seen == [thread], "like the stdlib: thread-bound objects keep working"


# -- the error policy -------------------------------------------------------------------


class Boom(sync.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        if line.startswith(b"boom"):
            raise ValueError("boom from the handler")
        self.wfile.write(line)


@pytest.mark.parametrize("name", ["TCPServer", "ThreadingTCPServer"])
def test_handler_error_is_printed_and_serving_goes_on(
    name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    server = getattr(sync, name)(("127.0.0.1", 0), Boom)
    with serving(server):
        assert stream_roundtrip(server.server_address, b"boom\n") == b""
        assert stream_roundtrip(server.server_address, b"fine\n") == b"fine\n"
    err = capfd.readouterr().err
    assert "-" * 40 + "\nException occurred during processing of request from ('127.0.0.1'," in err
    assert "ValueError: boom from the handler" in err


def test_handle_error_gets_request_and_address() -> None:
    reported: list[tuple[Any, Any]] = []

    class Server(sync.TCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            reported.append((request, client_address))

    server = Server(("127.0.0.1", 0), Boom)
    with (
        serving(server),
        socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT) as c,
    ):
        c.sendall(b"boom\n")
        assert read_to_eof(c) == b""
        port = c.getsockname()[1]
    [(request, address)] = reported
    assert isinstance(request, socket.socket)
    assert address == ("127.0.0.1", port)
    assert request.fileno() == -1, "the request was shut down after the error"


def test_base_exception_propagates_from_serve_forever() -> None:
    class Exit(sync.BaseRequestHandler):
        def handle(self) -> None:
            raise SystemExit(3)

    outcome: list[BaseException] = []
    with sync.TCPServer(("127.0.0.1", 0), Exit) as server:

        def run() -> None:
            try:
                server.serve_forever()
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        assert stream_roundtrip(server.server_address, b"") == b"", "connection closed"
        thread.join(CLIENT_TIMEOUT)
    assert len(outcome) == 1
    assert isinstance(outcome[0], SystemExit)
    assert outcome[0].code == 3


def test_verify_request_false_shuts_the_request_down() -> None:
    handled: list[Any] = []
    shut: list[Any] = []

    class Picky(sync.TCPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            return False

        def shutdown_request(self, request: Any) -> None:
            shut.append(request)
            super().shutdown_request(request)

    class Never(sync.BaseRequestHandler):
        def handle(self) -> None:
            handled.append(self)

    server = Picky(("127.0.0.1", 0), Never)
    with serving(server):
        assert stream_roundtrip(server.server_address, b"") == b""
    assert handled == []
    assert len(shut) == 1


def test_verify_request_raising_is_handled_not_fatal(capfd: pytest.CaptureFixture[str]) -> None:
    class Raises(sync.TCPServer):
        calls = 0

        def verify_request(self, request: Any, client_address: Any) -> bool:
            Raises.calls += 1
            if Raises.calls == 1:
                raise RuntimeError("verify exploded")
            return True

    server = Raises(("127.0.0.1", 0), UpperLines)
    with serving(server):
        assert stream_roundtrip(server.server_address, b"") == b""
        assert stream_roundtrip(server.server_address, b"y\n") == b"Y\n"
    assert "RuntimeError: verify exploded" in capfd.readouterr().err


def test_handle_error_raising_does_not_stop_the_server(caplog: pytest.LogCaptureFixture) -> None:
    class Server(sync.TCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            raise RuntimeError("handle_error exploded")

    server = Server(("127.0.0.1", 0), Boom)
    with serving(server):
        assert stream_roundtrip(server.server_address, b"boom\n") == b""
        assert stream_roundtrip(server.server_address, b"ok\n") == b"ok\n"
    assert "handle_error raised" in caplog.text


# -- handle_request, timeout, service_actions -------------------------------------------


def test_handle_request_serves_one() -> None:
    with sync.TCPServer(("127.0.0.1", 0), UpperLines) as server:
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        assert stream_roundtrip(server.server_address, b"one\n") == b"ONE\n"
        thread.join(CLIENT_TIMEOUT)
        assert not thread.is_alive()


def test_handle_request_timeout_calls_handle_timeout() -> None:
    timeouts: list[bool] = []

    class Server(sync.UDPServer):
        timeout = 0.01

        def handle_timeout(self) -> None:
            timeouts.append(True)

    with Server(("127.0.0.1", 0), UpperDatagram) as server:
        server.handle_request()
        server.handle_request()
    assert timeouts == [True, True]


def test_service_actions_after_each_request() -> None:
    calls: list[int] = []

    class Server(sync.UDPServer):
        def service_actions(self) -> None:
            calls.append(len(calls))

    server = Server(("127.0.0.1", 0), UpperDatagram)
    # An hour's poll_interval: every call seen here follows a request.
    with serving(server, poll_interval=3600):
        for _ in range(4):
            datagram_roundtrip(server.server_address, b"x")
        # The fourth reply was sent after the third request's service_actions.
        assert len(calls) >= 3


def test_service_actions_while_idle() -> None:
    idle = threading.Event()

    class Server(sync.UDPServer):
        def service_actions(self) -> None:
            idle.set()

    server = Server(("127.0.0.1", 0), UpperDatagram)
    with serving(server, poll_interval=0.01):
        assert idle.wait(CLIENT_TIMEOUT), "service_actions runs every poll_interval"


def test_service_actions_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Server(sync.UDPServer):
        def service_actions(self) -> None:
            raise RuntimeError("actions exploded")

    server = Server(("127.0.0.1", 0), UpperDatagram)
    with serving(server):
        assert datagram_roundtrip(server.server_address, b"q") == b"Q"
        assert datagram_roundtrip(server.server_address, b"r") == b"R"
    assert "service_actions raised" in caplog.text


def test_overridden_get_request_is_used() -> None:
    taken: list[Any] = []

    class Server(sync.TCPServer):
        def get_request(self) -> Any:
            conn, address = self.socket.accept()
            taken.append(address)
            return conn, address

    server = Server(("127.0.0.1", 0), UpperLines)
    with serving(server):
        assert stream_roundtrip(server.server_address, b"a\n") == b"A\n"
        assert stream_roundtrip(server.server_address, b"b\n") == b"B\n"
    assert len(taken) == 2


def test_socket_is_blocking_outside_serving() -> None:
    with sync.TCPServer(("127.0.0.1", 0), UpperLines) as server:
        assert server.socket.getblocking()
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        assert stream_roundtrip(server.server_address, b"a\n") == b"A\n"
        server.shutdown()
        thread.join(CLIENT_TIMEOUT)
        assert os.get_blocking(server.socket.fileno()), "blocking again after serve_forever"
        assert server.socket.gettimeout() is None


# -- datagrams ----------------------------------------------------------------------------


def test_oversized_datagram_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    class Small(sync.UDPServer):
        max_packet_size = 16

    server = Small(("127.0.0.1", 0), UpperDatagram)
    with serving(server), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(CLIENT_TIMEOUT)
        c.sendto(b"x" * 17, server.server_address)
        c.sendto(b"y" * 16, server.server_address)
        assert c.recv(100) == b"Y" * 16, "the whole datagram is served, the oversized one not"
    assert server.truncated_datagrams == 1
    assert "larger than max_packet_size" in caplog.text


def test_get_request_called_directly_blocks_for_the_datagram_after_a_dropped_one() -> None:
    """Outside the engine, get_request() is blocking as the stdlib's is: after
    dropping an oversized datagram it reads the next one without
    MSG_DONTWAIT (with it, an empty queue would raise BlockingIOError where
    the stdlib waits). Inside the engine the next read must not block."""

    class Small(sync.UDPServer):
        max_packet_size = 16

    flags_seen: list[int] = []

    class Recording:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def recvfrom(self, size: int, flags: int = 0) -> tuple[bytes, Any]:
            flags_seen.append(flags)
            return self.sock.recvfrom(size, flags)

    with (
        Small(("127.0.0.1", 0), UpperDatagram) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c,
    ):
        c.sendto(b"x" * 17, server.server_address)
        c.sendto(b"z", server.server_address)
        real = server.socket
        server.socket = Recording(real)  # type: ignore[assignment]
        try:
            (data, _), _ = server.get_request()
        finally:
            server.socket = real
        assert data == b"z"
        assert server.truncated_datagrams == 1
        assert flags_seen == [0, 0]


# -- Unix socket files ----------------------------------------------------------------------


def test_stale_unix_socket_file_is_replaced(sock_path: str) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock_path)
    stale.close()  # a crashed server's file: nobody listens
    server = sync.UnixStreamServer(sock_path, UpperLines)
    with serving(server):
        assert stream_roundtrip(sock_path, b"new\n") == b"NEW\n"


def test_regular_file_is_never_deleted(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("precious")
    with pytest.raises(FileExistsError, match="is not a socket"):
        sync.UnixStreamServer(str(path), UpperLines)
    assert path.read_text() == "precious"


def test_handle_request_at_the_thread_cap_waits_for_a_free_thread() -> None:
    started = threading.Semaphore(0)

    class Held(sync.BaseRequestHandler):
        def handle(self) -> None:
            started.release()
            self.request.sendall(self.request.recv(100).upper())

    class Server(sync.ThreadingTCPServer):
        max_threads = 1

    with Server(("127.0.0.1", 0), Held) as server:
        first = socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT)
        second = socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT)
        with first, second:
            server.handle_request()  # hands the first connection to the only thread
            assert started.acquire(timeout=CLIENT_TIMEOUT)
            waiter = threading.Thread(target=server.handle_request)
            waiter.start()  # at the cap: waits for the thread (in trio), not accepting
            first.sendall(b"one")
            assert first.recv(100) == b"ONE"
            waiter.join(CLIENT_TIMEOUT)
            assert not waiter.is_alive()
            assert started.acquire(timeout=CLIENT_TIMEOUT), "the second was taken after"
            second.sendall(b"two")
            assert second.recv(100) == b"TWO"


def test_handle_request_with_an_overridden_get_request() -> None:
    class Server(sync.UDPServer):
        def get_request(self) -> Any:
            (data, sock), address = super().get_request()
            return (data.replace(b"a", b"b"), sock), address

    with Server(("127.0.0.1", 0), UpperDatagram) as server:
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        assert datagram_roundtrip(server.server_address, b"aaa") == b"BBB"
        thread.join(CLIENT_TIMEOUT)


# -- the stdlib handlers' options, on our sockets ------------------------------------------


@pytest.mark.parametrize("name", ["TCPServer", "ThreadingTCPServer"])
def test_stream_handler_timeout_bounds_a_silent_client(
    name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    class Impatient(sync.StreamRequestHandler):
        timeout = 0.05

        def handle(self) -> None:
            self.rfile.readline()

    server = getattr(sync, name)(("127.0.0.1", 0), Impatient)
    with serving(server), socket.create_connection(server.server_address) as silent:
        silent.settimeout(CLIENT_TIMEOUT)
        assert read_to_eof(silent) == b"", "the handler gave up and the connection closed"
    assert "TimeoutError: timed out" in capfd.readouterr().err


def test_stream_handler_nagle_and_buffered_wfile() -> None:
    seen: list[int] = []

    class Buffered(sync.StreamRequestHandler):
        disable_nagle_algorithm = True
        wbufsize = 65536  # a buffered wfile: flushed by finish()

        def handle(self) -> None:
            seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            self.wfile.write(self.rfile.readline().upper())

    server = sync.TCPServer(("127.0.0.1", 0), Buffered)
    with serving(server):
        assert stream_roundtrip(server.server_address, b"flush me\n") == b"FLUSH ME\n"
    assert seen == [1]


def test_requests_are_real_blocking_sockets() -> None:
    kinds: list[tuple[type, float | None, bool]] = []

    class Inspect(sync.BaseRequestHandler):
        def handle(self) -> None:
            sock = self.request
            kinds.append((type(sock), sock.gettimeout(), os.get_blocking(sock.fileno())))

    server = sync.ThreadingTCPServer(("127.0.0.1", 0), Inspect)
    with serving(server):
        stream_roundtrip(server.server_address, b"")
    assert kinds == [(socket.socket, None, True)]


# -- Rule 6 of the engine: waiting in poll(2) while trio is idle ---------------------


def test_the_direct_wait_is_available_on_this_trio() -> None:
    """The engine's poll(2) wait reads private attributes of trio's run; on
    every trio version we test (nox -s tests_oldest too) they must be there,
    or the optimisation would silently be lost."""
    import trio

    from trio_socketserver.sync._engine import _DirectWait

    async def probe() -> bool:
        with socket.socket() as s:
            return _DirectWait.for_current_run(s.fileno()) is not None

    assert trio.run(probe)


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("name", ["TCPServer", "ThreadingTCPServer", "UDPServer"])
def test_serving_without_the_direct_wait(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where trio's internals differ, the engine waits through trio only."""
    from trio_socketserver.sync._engine import _DirectWait

    monkeypatch.setattr(_DirectWait, "for_current_run", classmethod(lambda cls, fd: None))
    handler = UpperDatagram if name == "UDPServer" else UpperLines
    server = getattr(sync, name)(("127.0.0.1", 0), handler)
    with serving(server, poll_interval=3600.0):
        for i in range(3):
            if name == "UDPServer":
                assert datagram_roundtrip(server.server_address, b"x%d" % i) == b"X%d" % i
            else:
                assert stream_roundtrip(server.server_address, b"x%d\n" % i) == b"X%d\n" % i
