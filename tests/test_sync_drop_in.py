"""Stdlib behaviours found missing by a differential review (the same script
against ``socketserver`` and ``trio_socketserver.sync``), each pinned here
over real sockets: listening-socket timeouts, ``serve_forever(poll_interval)``
values, request objects that are not sockets, ``handle_request``'s return
value, accept errors about one client, the program's own signal handlers,
what a forked child is handed, and fresh threads per request on request.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest

import trio_socketserver.sync as sync
from trio_socketserver.sync._engine import _DirectWait

from .sync_helpers import CLIENT_TIMEOUT, datagram_roundtrip, serving, stream_roundtrip

pytestmark = pytest.mark.filterwarnings("ignore:.*forking the fork helper:RuntimeWarning")

#: A timeout no test waits out: a loop blocked for it shows as a hung test.
HOUR = 3600.0


class Echo(sync.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class EchoDatagram(sync.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read())


@contextmanager
def default_timeout(seconds: float | None) -> Iterator[None]:
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def _roundtrip(server: Any, payload: bytes) -> bytes:
    if server.socket_type == socket.SOCK_DGRAM:
        return datagram_roundtrip(server.server_address, payload)
    return stream_roundtrip(server.server_address, payload)


# -- a timeout on the listening socket -----------------------------------------------


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("name", ["TCPServer", "ThreadingTCPServer", "UDPServer"])
@pytest.mark.parametrize("how", ["settimeout", "setdefaulttimeout"])
def test_a_listening_socket_timeout_never_blocks_the_loop(name: str, how: str) -> None:
    # With a timeout, CPython waits for it inside accept()/recvfrom() even on
    # a non-blocking descriptor: the loop would then sit in accept() for an
    # hour after each request, and shutdown() (in serving's exit) would hang.
    handler = EchoDatagram if name == "UDPServer" else Echo
    with default_timeout(HOUR if how == "setdefaulttimeout" else None):
        server = getattr(sync, name)(("127.0.0.1", 0), handler)
    if how == "settimeout":
        server.socket.settimeout(HOUR)  # the stdlib's idiom for handle_request()
    with serving(server):
        for i in range(3):
            assert _roundtrip(server, b"x%d\n" % i) == b"x%d\n" % i
    assert server.socket.fileno() == -1


@pytest.mark.parametrize("how", ["settimeout", "setdefaulttimeout"])
def test_accepted_sockets_get_the_stdlibs_timeout(how: str) -> None:
    seen: dict[str, float | None] = {}

    def handler_for(label: str) -> type[socketserver.BaseRequestHandler]:
        class Report(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                seen[label] = self.request.gettimeout()
                self.request.sendall(b"ok")

        return Report

    for label, module in (("stdlib", socketserver), ("sync", sync)):
        with default_timeout(HOUR if how == "setdefaulttimeout" else None):
            server = module.TCPServer(("127.0.0.1", 0), handler_for(label))
            if how == "settimeout":
                server.socket.settimeout(HOUR)
            with server:
                thread = threading.Thread(target=server.handle_request)
                thread.start()
                assert stream_roundtrip(server.server_address, b"") == b"ok"
                thread.join(CLIENT_TIMEOUT)
    assert seen["sync"] == seen["stdlib"]
    assert seen["sync"] == (HOUR if how == "setdefaulttimeout" else None)


# -- serve_forever(poll_interval) ------------------------------------------------


def test_poll_interval_none_serves_without_idle_service_actions() -> None:
    server = sync.TCPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, args=(None,))
    thread.start()
    try:
        assert stream_roundtrip(server.server_address, b"a\n") == b"a\n"
    finally:
        server.shutdown()
        thread.join(CLIENT_TIMEOUT)
        server.server_close()
    assert not thread.is_alive()


@pytest.mark.parametrize("interval", [0, 0.0, -1])
def test_poll_interval_zero_or_less_runs_service_actions_while_idle(interval: float) -> None:
    idle = threading.Event()

    class Server(sync.TCPServer):
        def service_actions(self) -> None:
            idle.set()

    server = Server(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, args=(interval,))
    thread.start()
    try:
        assert idle.wait(CLIENT_TIMEOUT)
        assert stream_roundtrip(server.server_address, b"b\n") == b"b\n"
    finally:
        server.shutdown()
        thread.join(CLIENT_TIMEOUT)
        server.server_close()


@pytest.mark.parametrize(
    ("value", "error"), [("0.5", TypeError), (True, TypeError), (math.nan, ValueError)]
)
def test_poll_interval_that_select_would_refuse(value: object, error: type[Exception]) -> None:
    with (
        sync.TCPServer(("127.0.0.1", 0), Echo) as server,
        pytest.raises(error, match="poll_interval must be a number of seconds or None"),
    ):
        server.serve_forever(value)  # type: ignore[arg-type]


# -- request objects and return values --------------------------------------------


class _Wrapped:
    """A get_request() override's request: close() and shutdown(), no fileno()."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.closed = False

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self.closed = True
        self._sock.close()


@pytest.mark.usefixtures("no_leak")
def test_a_request_without_fileno_is_closed_as_the_stdlib_closes_it(
    capfd: pytest.CaptureFixture[str],
) -> None:
    taken: list[_Wrapped] = []

    class Server(sync.TCPServer):
        def get_request(self) -> tuple[Any, Any]:
            sock, address = self.socket.accept()
            taken.append(_Wrapped(sock))
            return taken[-1], address

    class Upper(sync.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(self.request.recv(100).upper())

    server = Server(("127.0.0.1", 0), Upper)
    with serving(server):
        assert stream_roundtrip(server.server_address, b"one") == b"ONE"
        assert stream_roundtrip(server.server_address, b"two") == b"TWO"
    assert [w.closed for w in taken] == [True, True]
    assert "Exception occurred" not in capfd.readouterr().err


def test_handle_request_returns_what_handle_timeout_returns() -> None:
    class Server(sync.UDPServer):
        timeout = 0.0

        def handle_timeout(self) -> Any:
            return "timed out"

    with Server(("127.0.0.1", 0), EchoDatagram) as server:
        result: object = server.handle_request()  # type: ignore[func-returns-value]
    assert result == "timed out"


# -- accept errors about one client ------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), TimeoutError("handshake")],
    ids=["SSLError", "TimeoutError"],
)
def test_an_accept_error_about_one_client_is_skipped_at_once(
    error: OSError, caplog: pytest.LogCaptureFixture
) -> None:
    # A get_request() that wraps connections in TLS raises these when a
    # client fails its handshake (port scanners, health checks). The stdlib
    # skips it; so do we, without the back-off meant for EMFILE and without
    # an ERROR record per client.
    failures = [error]

    class Server(sync.TCPServer):
        def get_request(self) -> tuple[Any, Any]:
            sock, address = self.socket.accept()
            if failures:
                sock.close()
                raise failures.pop()
            return sock, address

    server = Server(("127.0.0.1", 0), Echo)
    with caplog.at_level(logging.DEBUG, logger="trio_socketserver"), serving(server):
        with socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT) as bad:
            assert bad.recv(1) == b""  # closed by get_request
        assert stream_roundtrip(server.server_address, b"good\n") == b"good\n"
    records = [r for r in caplog.records if "get_request() failed" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.DEBUG]
    assert "for one client" in records[0].getMessage()
    assert "retrying" not in records[0].getMessage()


# -- the program's own signal handlers (sync/_signals.py) -----------------------------------


@contextmanager
def signal_handler(signum: int, handler: Any) -> Iterator[None]:
    before = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, before)


def _exit_with(code: int) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        sys.exit(code)

    return handler


def _serve_then_signal(server: Any, signum: int) -> threading.Thread:
    """A client thread: one request (so the server is serving), then the
    signal, arriving while the serving main thread waits for the next."""

    def client() -> None:
        assert _roundtrip(server, b"ping\n") == b"ping\n"
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=client)
    thread.start()
    return thread


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("name", ["TCPServer", "ThreadingTCPServer", "UDPServer"])
@pytest.mark.parametrize("wait", ["direct", "trio"])
def test_sys_exit_in_a_sigterm_handler_while_idle_leaves_a_reusable_server(
    name: str, wait: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # "trio": the loop waits in trio's epoll_wait, KI-protected code, where
    # the handler is handed to a task (Rule 2); "direct": in the engine's own
    # poll() (Rule 6 of the engine), unprotected, where it runs at once.
    if wait == "trio":
        monkeypatch.setattr(_DirectWait, "for_current_run", classmethod(lambda cls, fd: None))
    assert threading.current_thread() is threading.main_thread()
    handler = EchoDatagram if name == "UDPServer" else Echo
    exit_7 = _exit_with(7)
    with getattr(sync, name)(("127.0.0.1", 0), handler) as server:
        with signal_handler(signal.SIGTERM, exit_7):
            client = _serve_then_signal(server, signal.SIGTERM)
            with pytest.raises(SystemExit) as raised:
                server.serve_forever(HOUR)
            client.join(CLIENT_TIMEOUT)
            assert raised.value.code == 7
            assert signal.getsignal(signal.SIGTERM) is exit_7  # restored
        # The same server serves again.
        with serving(server):
            assert _roundtrip(server, b"again\n") == b"again\n"
    err = capfd.readouterr().err
    assert "Trio" not in err, err
    assert "Traceback" not in err, err


@pytest.mark.usefixtures("no_leak")
def test_only_the_programs_handlers_are_wrapped_not_trios_ctrl_c() -> None:
    # Rule 3: trio.run replaces Python's default SIGINT handler with its own,
    # which decides from where it is called: wrapping it would defer Ctrl-C
    # to a task with a stale frame (seen as a lost Ctrl-C on trio 0.25).
    seen: dict[str, Any] = {}
    exit_7 = _exit_with(7)

    class Look(sync.StreamRequestHandler):
        def handle(self) -> None:  # runs in the serving (main) thread
            seen["SIGINT"] = signal.getsignal(signal.SIGINT)
            seen["SIGTERM"] = signal.getsignal(signal.SIGTERM)
            self.server.shutdown()

    with (
        sync.TCPServer(("127.0.0.1", 0), Look) as server,
        signal_handler(signal.SIGINT, signal.default_int_handler),
        signal_handler(signal.SIGTERM, exit_7),
    ):
        client = threading.Thread(target=stream_roundtrip, args=(server.server_address, b""))
        client.start()
        server.serve_forever(HOUR)
        client.join(CLIENT_TIMEOUT)
        assert signal.getsignal(signal.SIGTERM) is exit_7
    assert getattr(seen["SIGTERM"], "__wrapped__", None) is exit_7
    assert seen["SIGINT"] is not signal.default_int_handler  # trio's
    assert not hasattr(seen["SIGINT"], "__wrapped__")


@pytest.mark.usefixtures("no_leak")
def test_a_signal_handler_calling_shutdown_stops_serve_forever() -> None:
    with sync.ThreadingTCPServer(("127.0.0.1", 0), Echo) as server:
        calls: list[int] = []

        def stop(signum: int, frame: FrameType | None) -> None:
            calls.append(signum)
            server.shutdown()  # from the serving thread: starts it and returns

        with signal_handler(signal.SIGUSR1, stop):
            client = _serve_then_signal(server, signal.SIGUSR1)
            server.serve_forever(HOUR)  # returns: the stdlib would deadlock here
            client.join(CLIENT_TIMEOUT)
    assert calls == [signal.SIGUSR1]


@pytest.mark.usefixtures("no_leak")
def test_a_signal_during_a_sequential_handler_interrupts_it_as_in_the_stdlib() -> None:
    # Rule 1: unprotected code (the handler) sees the exception at once.
    def run(module: Any) -> list[str]:
        steps: list[str] = []

        class Signals(module.StreamRequestHandler):  # type: ignore[misc]
            def handle(self) -> None:
                self.rfile.readline()
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("after kill")  # not reached: SystemExit comes first

            def finish(self) -> None:
                steps.append("finish")
                super().finish()

        replies: list[bytes] = []
        with (
            module.TCPServer(("127.0.0.1", 0), Signals) as server,
            signal_handler(signal.SIGTERM, _exit_with(3)),
        ):
            thread = threading.Thread(
                target=lambda: replies.append(stream_roundtrip(server.server_address, b"x\n"))
            )
            thread.start()
            with pytest.raises(SystemExit):
                server.serve_forever(0.05)
            thread.join(CLIENT_TIMEOUT)
        assert replies == [b""]  # the connection was closed, not left open
        return steps

    assert run(sync) == run(socketserver) == ["finish"]


# -- ForkingMixIn: what a child is handed -------------------------------------------------


def _report_timeout_handler() -> type[socketserver.BaseRequestHandler]:
    class Report(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            fd = self.request.fileno()
            text = f"{self.request.gettimeout()} {os.get_blocking(fd)}"
            self.request.sendall(text.encode())

    return Report


@pytest.mark.usefixtures("no_leak")
def test_a_forked_child_gets_the_request_timeout_that_get_request_set() -> None:
    # Before: the child rebuilt a socket without the timeout, over the same
    # (non-blocking) descriptor, and read early end-of-file from a slow client.
    replies = {}
    for label, module in (("stdlib", socketserver), ("sync", sync)):

        class Server(module.ForkingTCPServer):  # type: ignore[name-defined,misc]
            def get_request(self) -> tuple[Any, Any]:
                sock, address = self.socket.accept()
                sock.settimeout(5.0)
                return sock, address

        with Server(("127.0.0.1", 0), _report_timeout_handler()) as server:
            thread = threading.Thread(target=server.handle_request)
            thread.start()
            replies[label] = stream_roundtrip(server.server_address, b"")
            thread.join(CLIENT_TIMEOUT)
    assert replies["sync"] == replies["stdlib"] == b"5.0 False"


@pytest.mark.usefixtures("no_leak")
def test_a_forking_server_refuses_a_request_that_is_more_than_a_socket() -> None:
    # An ssl.SSLSocket's TLS session cannot cross to the child with its
    # descriptor: the child would read ciphertext. A clear error instead.
    class Wrapped(socket.socket):
        pass

    errors: list[BaseException | None] = []
    wrap = [True]

    class Server(sync.ForkingTCPServer):
        def get_request(self) -> tuple[Any, Any]:
            sock, address = self.socket.accept()
            if wrap.pop() if wrap else False:
                return Wrapped(fileno=sock.detach()), address
            return sock, address

        def handle_error(self, request: Any, client_address: Any) -> None:
            errors.append(sys.exc_info()[1])

    with Server(("127.0.0.1", 0), Echo) as server:
        for _ in range(2):
            thread = threading.Thread(target=server.handle_request)
            thread.start()
            if not errors:
                # Nothing sent: closing a connection with unread data resets it.
                assert stream_roundtrip(server.server_address, b"") == b""
            else:
                assert stream_roundtrip(server.server_address, b"plain\n") == b"plain\n"
            thread.join(CLIENT_TIMEOUT)
    (error,) = errors
    assert isinstance(error, TypeError)
    assert "only a plain socket.socket" in str(error)
    assert "Wrapped" in str(error)
    assert "ThreadingMixIn" in str(error)


# -- ThreadingMixIn.reuse_threads ------------------------------------------------------------


@pytest.mark.usefixtures("no_leak")
def test_reuse_threads_false_gives_every_request_a_new_thread() -> None:
    local = threading.local()
    seen: list[tuple[str, bool]] = []

    class Handler(sync.StreamRequestHandler):
        def handle(self) -> None:
            seen.append((threading.current_thread().name, hasattr(local, "user")))
            local.user = self.rfile.readline()
            self.wfile.write(local.user)

    class Server(sync.ThreadingTCPServer):
        reuse_threads = False

    server = Server(("127.0.0.1", 0), Handler)
    with serving(server):
        for i in range(3):
            assert stream_roundtrip(server.server_address, b"u%d\n" % i) == b"u%d\n" % i
    assert [fresh for _, fresh in seen] == [False, False, False]
    assert len({name for name, _ in seen}) == 3


@pytest.mark.usefixtures("no_leak")
def test_only_a_loop_in_the_main_thread_marks_blocking_calls() -> None:
    # Signal handlers run in the main thread only: a server serving in
    # another thread must not make them run at once while the main thread
    # is inside trio (the mark would say "blocking calls" for the wrong thread).
    from trio_socketserver.sync._signals import Direct

    seen: list[bool] = []

    class Look(sync.StreamRequestHandler):
        def handle(self) -> None:
            seen.append(Direct.on)
            self.wfile.write(self.rfile.readline())

    server = sync.TCPServer(("127.0.0.1", 0), Look)
    with serving(server):  # serve_forever in a thread of its own
        assert stream_roundtrip(server.server_address, b"a\n") == b"a\n"
    with sync.TCPServer(("127.0.0.1", 0), Look) as main:

        def client() -> None:
            assert stream_roundtrip(main.server_address, b"b\n") == b"b\n"
            main.shutdown()

        thread = threading.Thread(target=client)
        thread.start()
        main.serve_forever(HOUR)  # here, in the main thread
        thread.join(CLIENT_TIMEOUT)
    assert seen == [False, True]
    assert Direct.on is False
