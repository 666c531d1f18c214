"""shutdown() and server_close() of the blocking servers: immediate, safe
from anywhere, and nothing left behind (threads, fds, child processes).

A missed wake-up here would be a hang; pytest-timeout turns that into a
failure. ``poll_interval`` is set to an hour where a test shows that
shutdown does not poll."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import trio_socketserver.sync as sync

from .sync_helpers import CLIENT_TIMEOUT, read_to_eof, serving, stream_roundtrip

# Other tests leave idle threads behind (trio's worker-thread cache, pooled
# handler threads retiring), so the fork helper's warning about forking a
# threaded process can fire here; test_forking_warns_in_a_threaded_process
# checks the warning itself.
pytestmark = pytest.mark.filterwarnings("ignore:.*forking the fork helper:RuntimeWarning")


HOUR = 3600.0


class UpperLines(sync.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


class Blocked(sync.BaseRequestHandler):
    """Signals that it started, then blocks reading from its client."""

    started: threading.Semaphore
    ended: list[bytes]

    def handle(self) -> None:
        type(self).started.release()
        type(self).ended.append(self.request.recv(100))


@pytest.fixture
def blocked() -> type[Blocked]:
    class Handler(Blocked):
        started = threading.Semaphore(0)
        ended: list[bytes] = []  # noqa: RUF012

    return Handler


def _serve_in_thread(server: Any, poll_interval: float = HOUR) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,))
    thread.start()
    return thread


def _connect(address: Any) -> socket.socket:
    return socket.create_connection(address, timeout=CLIENT_TIMEOUT)


@contextmanager
def _stopped_with_a_blocked_handler(server: Any, blocked: type[Blocked]) -> Iterator[socket.socket]:
    """Serve, connect a client whose handler then blocks reading from it,
    and stop serving (shutdown() returns: the handler is in its own thread).
    Yields the client; server_close() is the test's to call."""
    with _connect(server.server_address) as client:
        thread = _serve_in_thread(server)
        assert blocked.started.acquire(timeout=CLIENT_TIMEOUT)
        server.shutdown()
        thread.join(CLIENT_TIMEOUT)
        yield client


# -- shutdown() ------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("name", ["TCPServer", "ThreadingTCPServer", "UDPServer"])
def test_shutdown_does_not_poll(name: str) -> None:
    with getattr(sync, name)(("127.0.0.1", 0), UpperLines) as server:
        thread = _serve_in_thread(server, poll_interval=HOUR)
        server.shutdown()  # would wait an hour if it polled
        thread.join(CLIENT_TIMEOUT)
        assert not thread.is_alive()


def test_shutdown_before_serve_forever_returns_and_stops_the_next_serve() -> None:
    with sync.TCPServer(("127.0.0.1", 0), UpperLines) as server:
        server.shutdown()  # the stdlib hangs here
        server.shutdown()
        server.serve_forever(HOUR)  # returns at once, as the request is pending
        thread = _serve_in_thread(server)  # and the request was consumed
        assert stream_roundtrip(server.server_address, b"still\n") == b"STILL\n"
        server.shutdown()
        thread.join(CLIENT_TIMEOUT)


def test_shutdown_twice_and_from_two_threads() -> None:
    with sync.ThreadingTCPServer(("127.0.0.1", 0), UpperLines) as server:
        thread = _serve_in_thread(server)
        others = [threading.Thread(target=server.shutdown) for _ in range(3)]
        for other in others:
            other.start()
        server.shutdown()
        for other in [*others, thread]:
            other.join(CLIENT_TIMEOUT)
            assert not other.is_alive()
        server.shutdown()  # after serve_forever returned: returns at once


def test_a_shutdown_that_loses_a_race_does_not_stop_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two shutdown() calls race to stop one run; the loser reaches the
    engine only after that run has ended and the next serve_forever() has
    begun. It must not stop the new run (found by the reliability suite's
    state machine: a serve_forever() that returned at its first request).
    The loser is held at the exact point, so the interleaving is certain."""
    with sync.TCPServer(("127.0.0.1", 0), UpperLines) as server:
        engine = server._engine
        real = engine.begin_shutdown_threadsafe
        holding, release = threading.Event(), threading.Event()

        def held_for_the_loser(token: Any) -> None:
            if threading.current_thread().name == "loser":
                holding.set()
                assert release.wait(CLIENT_TIMEOUT)
            real(token)

        monkeypatch.setattr(engine, "begin_shutdown_threadsafe", held_for_the_loser)
        first = _serve_in_thread(server)
        assert stream_roundtrip(server.server_address, b"one\n") == b"ONE\n"  # trio runs
        loser = threading.Thread(target=server.shutdown, name="loser")
        loser.start()
        assert holding.wait(CLIENT_TIMEOUT)  # the loser holds the first run's token
        server.shutdown()  # the winner
        first.join(CLIENT_TIMEOUT)
        assert not first.is_alive()
        second = _serve_in_thread(server)
        assert stream_roundtrip(server.server_address, b"two\n") == b"TWO\n"
        release.set()
        loser.join(CLIENT_TIMEOUT)
        assert not loser.is_alive()
        # Three requests queued at once: the engine takes queued requests in
        # its drain loop, where a stale stop would end the run at the first.
        clients = [_connect(server.server_address) for _ in range(3)]
        for n, client in enumerate(clients):
            client.sendall(b"still %d\n" % n)
            client.shutdown(socket.SHUT_WR)
        for n, client in enumerate(clients):
            with client:
                assert read_to_eof(client) == b"STILL %d\n" % n
        assert second.is_alive()
        server.shutdown()
        second.join(CLIENT_TIMEOUT)


def test_a_stop_delivered_as_the_previous_run_ended_does_not_stop_the_next() -> None:
    """A shutdown() from another thread reaches the loop as a callback; when
    the run was ending anyway, the callback can arrive after serve_forever
    has returned inside the engine. What it leaves behind (the engine's own
    stop flag, set) must not end the next run (found by the reliability
    state machine: restart, then a probe that nobody served)."""
    with sync.TCPServer(("127.0.0.1", 0), UpperLines) as server:
        first = _serve_in_thread(server)
        assert stream_roundtrip(server.server_address, b"one\n") == b"ONE\n"
        server.shutdown()
        first.join(CLIENT_TIMEOUT)
        server._engine._shutdown_requested = True  # the late callback's trace
        second = _serve_in_thread(server)
        assert stream_roundtrip(server.server_address, b"two\n") == b"TWO\n"
        assert second.is_alive()
        server.shutdown()
        second.join(CLIENT_TIMEOUT)
        assert not second.is_alive()


@pytest.mark.usefixtures("no_leak")
def test_shutdown_from_inside_a_handler_of_a_sequential_server() -> None:
    class Stopper(sync.StreamRequestHandler):
        def handle(self) -> None:
            self.server.shutdown()  # the stdlib deadlocks here
            self.wfile.write(b"stopping\n")

    with sync.TCPServer(("127.0.0.1", 0), Stopper) as server:
        thread = _serve_in_thread(server)
        assert stream_roundtrip(server.server_address, b"") == b"stopping\n"
        thread.join(CLIENT_TIMEOUT)
        assert not thread.is_alive(), "serve_forever returned after the handler"


@pytest.mark.usefixtures("no_leak")
def test_server_close_from_inside_a_handler() -> None:
    class Closer(sync.StreamRequestHandler):
        def handle(self) -> None:
            self.server.server_close()
            self.wfile.write(b"closed\n")

    server = sync.TCPServer(("127.0.0.1", 0), Closer)
    thread = _serve_in_thread(server)
    assert stream_roundtrip(server.server_address, b"") == b"closed\n"
    thread.join(CLIENT_TIMEOUT)
    assert not thread.is_alive()
    assert server.socket.fileno() == -1


def test_shutdown_from_service_actions() -> None:
    class Server(sync.UDPServer):
        def service_actions(self) -> None:
            self.shutdown()

    with Server(("127.0.0.1", 0), sync.DatagramRequestHandler) as server:
        server.serve_forever(0.01)  # returns: service_actions stopped it


@pytest.mark.usefixtures("no_leak")
def test_shutdown_waits_for_the_running_sequential_handler(blocked: type[Blocked]) -> None:
    server = sync.TCPServer(("127.0.0.1", 0), blocked)
    thread = _serve_in_thread(server)
    with _connect(server.server_address) as client:
        assert blocked.started.acquire(timeout=CLIENT_TIMEOUT)
        stopper = threading.Thread(target=server.shutdown)
        stopper.start()
        stopper.join(0.2)
        assert stopper.is_alive(), "shutdown() waits for the handler (as the stdlib does)"
        client.sendall(b"done")
        stopper.join(CLIENT_TIMEOUT)
        assert not stopper.is_alive()
    thread.join(CLIENT_TIMEOUT)
    server.server_close()
    assert blocked.ended == [b"done"]


@pytest.mark.usefixtures("no_leak")
def test_grace_period_unblocks_a_sequential_handler(blocked: type[Blocked]) -> None:
    server = sync.TCPServer(("127.0.0.1", 0), blocked)
    server.grace_period = 0.05
    thread = _serve_in_thread(server)
    with _connect(server.server_address) as client:
        assert blocked.started.acquire(timeout=CLIENT_TIMEOUT)
        server.shutdown()  # after 0.05 s the handler's connection is shut down
        assert read_to_eof(client) == b""
    thread.join(CLIENT_TIMEOUT)
    server.server_close()
    assert blocked.ended == [b""], "the handler saw EOF and returned"


# -- server_close() of ThreadingMixIn ----------------------------------------------------


@pytest.mark.usefixtures("no_leak")
def test_block_on_close_waits_for_handler_threads(blocked: type[Blocked]) -> None:
    server = sync.ThreadingTCPServer(("127.0.0.1", 0), blocked)
    with serving(server), _connect(server.server_address) as client:
        assert blocked.started.acquire(timeout=CLIENT_TIMEOUT)
        server.shutdown()  # returns at once: the handler runs in its own thread
        closer = threading.Thread(target=server.server_close)
        closer.start()
        closer.join(0.2)
        assert closer.is_alive(), "server_close() waits (block_on_close)"
        client.sendall(b"bye")
        closer.join(CLIENT_TIMEOUT)
        assert not closer.is_alive()
    assert blocked.ended == [b"bye"]


@pytest.mark.usefixtures("no_leak")
def test_grace_period_bounds_server_close(blocked: type[Blocked]) -> None:
    server = sync.ThreadingTCPServer(("127.0.0.1", 0), blocked)
    server.grace_period = 0.05
    with _stopped_with_a_blocked_handler(server, blocked) as client:
        server.server_close()  # after 0.05 s: unblocked, then joined
        assert read_to_eof(client) == b""
    assert blocked.ended == [b""]


@pytest.mark.usefixtures("no_fd_leak")
def test_daemon_threads_do_not_wait_and_are_unblocked(blocked: type[Blocked]) -> None:
    class Server(sync.ThreadingTCPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), blocked)
    with _stopped_with_a_blocked_handler(server, blocked) as client:
        [worker] = [t for t in threading.enumerate() if t.name.startswith("Server-handler")]
        assert worker.daemon
        server.server_close()  # returns without waiting...
        assert read_to_eof(client) == b""  # ...and the handler's connection is shut down
        worker.join(CLIENT_TIMEOUT)
        assert not worker.is_alive()


@pytest.mark.usefixtures("no_fd_leak")
def test_block_on_close_false_does_not_wait(blocked: type[Blocked]) -> None:
    class Server(sync.ThreadingTCPServer):
        block_on_close = False

    server = Server(("127.0.0.1", 0), blocked)
    with _stopped_with_a_blocked_handler(server, blocked) as client:
        server.server_close()  # returns while the handler still runs
        [worker] = [t for t in threading.enumerate() if t.name.startswith("Server-handler")]
        assert worker.is_alive()
        client.sendall(b"later")
        worker.join(CLIENT_TIMEOUT)
    assert blocked.ended == [b"later"]


@pytest.mark.usefixtures("no_leak")
def test_max_threads_stops_accepting_at_the_cap(blocked: type[Blocked]) -> None:
    class Server(sync.ThreadingTCPServer):
        max_threads = 2

    server = Server(("127.0.0.1", 0), blocked)
    with serving(server):
        clients = [_connect(server.server_address) for _ in range(3)]
        try:
            assert blocked.started.acquire(timeout=CLIENT_TIMEOUT)
            assert blocked.started.acquire(timeout=CLIENT_TIMEOUT)
            # The third connection waits in the kernel's backlog, unaccepted.
            assert not blocked.started.acquire(timeout=0.2)
            clients[0].sendall(b"free")
            assert blocked.started.acquire(timeout=CLIENT_TIMEOUT), "accepted once a slot freed"
            clients[1].sendall(b"x")
            clients[2].sendall(b"y")
        finally:
            for c in clients:
                c.close()
    assert sorted(blocked.ended) == [b"free", b"x", b"y"]


def test_max_threads_is_validated() -> None:
    class Server(sync.ThreadingTCPServer):
        max_threads = 0

    with (
        Server(("127.0.0.1", 0), UpperLines) as server,
        pytest.raises(ValueError, match="max_threads must be None or an int >= 1"),
    ):
        server.serve_forever()


# -- ForkingMixIn ---------------------------------------------------------------------------


class SlowPid(sync.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()  # until the client says go
        self.wfile.write(b"%d\n" % os.getpid())


@pytest.mark.usefixtures("no_leak")
def test_forking_max_children_and_reaping() -> None:
    class Server(sync.ForkingTCPServer):
        max_children = 2

    server = Server(("127.0.0.1", 0), SlowPid)
    with serving(server):
        clients = [_connect(server.server_address) for _ in range(3)]
        try:
            for c in clients:
                c.sendall(b"go\n")
            pids = {int(read_to_eof(c)) for c in clients}
        finally:
            for c in clients:
                c.close()
    assert len(pids) == 3
    assert os.getpid() not in pids
    assert not server.active_children


@pytest.mark.usefixtures("no_leak")
def test_forking_server_close_waits_then_terminates_after_grace() -> None:
    class Server(sync.ForkingTCPServer):
        grace_period = 0.05

    server = Server(("127.0.0.1", 0), SlowPid)
    with _connect(server.server_address) as client:
        thread = _serve_in_thread(server)
        client.sendall(b"")  # connected; the child blocks reading
        # Wait until a child exists, by asking the server through the wire:
        # a second client gets served, proving the loop runs.
        with _connect(server.server_address) as probe:
            probe.sendall(b"go\n")
            assert int(read_to_eof(probe)) != os.getpid()
        server.shutdown()
        thread.join(CLIENT_TIMEOUT)
        server.server_close()  # the blocked child gets SIGTERM after the grace period
        assert read_to_eof(client) == b""


def test_forking_handler_error_goes_to_handle_error_in_the_child(
    capfd: pytest.CaptureFixture[str],
) -> None:
    class Boom(sync.BaseRequestHandler):
        def handle(self) -> None:
            raise ValueError("child exploded")

    server = sync.ForkingTCPServer(("127.0.0.1", 0), Boom)
    with serving(server):
        assert stream_roundtrip(server.server_address, b"") == b""
        assert stream_roundtrip(server.server_address, b"") == b""
    assert capfd.readouterr().err.count("ValueError: child exploded") == 2


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_forking_warns_in_a_threaded_process() -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    # On 3.12+ os.fork() itself also warns (DeprecationWarning, the same
    # hazard in Python's words); ours comes first and says what to do.
    python_warns = (
        pytest.warns(DeprecationWarning, match="multi-threaded")
        if sys.version_info >= (3, 12)
        else contextlib.nullcontext()
    )
    try:
        with (
            python_warns,
            pytest.warns(RuntimeWarning, match="create the server before starting threads"),
            sync.ForkingTCPServer(("127.0.0.1", 0), SlowPid),
        ):
            pass
    finally:
        release.set()
        other.join()


# -- Ctrl-C in a blocking script -------------------------------------------------------------

_SCRIPT = textwrap.dedent(
    """
    import sys
    import trio_socketserver.sync as socketserver

    class Blocked(socketserver.BaseRequestHandler):
        def handle(self):
            print("HANDLING", flush=True)
            self.request.recv(100)

    class Server(socketserver.{server}):
        {setting}

    with Server(("127.0.0.1", 0), Blocked) as server:
        print("READY", server.server_address[1], flush=True)
        server.serve_forever()
    """
)


@pytest.mark.parametrize(
    ("server", "setting", "signals"),
    [
        # Interrupts the handler itself, as in the stdlib.
        ("TCPServer", "", 1),
        # Stops serving; server_close() unblocks the handler after the grace period.
        ("ThreadingTCPServer", "grace_period = 0.05", 1),
        # Stops serving; server_close() waits (block_on_close) until a second
        # Ctrl-C, which unblocks the handler.
        ("ThreadingTCPServer", "", 2),
    ],
)
def test_ctrl_c_stops_cleanly(server: str, setting: str, signals: int) -> None:
    script = _SCRIPT.format(server=server, setting=setting or "pass")
    with subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            ready = proc.stdout.readline().split()
            assert ready[:1] == ["READY"], proc.stderr.read()
            port = int(ready[1])
            with _connect(("127.0.0.1", port)) as client:
                assert proc.stdout.readline() == "HANDLING\n"
                proc.send_signal(signal.SIGINT)
                if signals == 2:
                    _wait_refused(port)  # serve_forever has ended and closed the socket
                    proc.send_signal(signal.SIGINT)
                assert read_to_eof(client) == b"", "the handler's connection was closed"
            # An uncaught KeyboardInterrupt ends Python by SIGINT (since 3.8).
            assert proc.wait(CLIENT_TIMEOUT) == -signal.SIGINT
            assert "KeyboardInterrupt" in proc.stderr.read()
        finally:
            proc.kill()


def _wait_refused(port: int) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT).close()
        except ConnectionRefusedError:
            return


# -- interpreter exit without server_close() ------------------------------------------------

_EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    import trio_socketserver.sync as socketserver
    from trio_socketserver.sync import _workers

    _workers.IDLE_TIMEOUT = 3600.0  # an idle thread that delayed exit would hang here
    started = threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            data = self.request.recv(100)
            if data == b"wait":
                started.set()
                data = self.request.recv(100)  # the main thread exits meanwhile
                print("HANDLER DONE", data.decode(), flush=True)
            self.request.sendall(data)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    print("READY", server.server_address[1], flush=True)
    sys.stdin.readline()
    started.wait()
    server.shutdown()
    thread.join()
    print("MAIN EXIT", flush=True)  # no server_close(), as many scripts do
    """
)


def test_idle_pool_threads_do_not_delay_exit_but_running_handlers_are_waited_for() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _EXIT_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdin is not None
        try:
            port = int(proc.stdout.readline().split()[1])
            address = ("127.0.0.1", port)
            for _ in range(3):  # leaves idle pooled threads behind
                with _connect(address) as c:
                    c.sendall(b"ping")
                    assert c.recv(100) == b"ping"
            with _connect(address) as busy:
                busy.sendall(b"wait")
                proc.stdin.write("go\n")
                proc.stdin.flush()
                assert proc.stdout.readline() == "MAIN EXIT\n"
                # A non-daemon handler still running keeps the process alive
                # (stdlib semantics): it finishes its request, then exit.
                busy.sendall(b"last")
                assert proc.stdout.readline() == "HANDLER DONE last\n"
                assert busy.recv(100) == b"last"
            assert proc.wait(CLIENT_TIMEOUT) == 0
        finally:
            proc.kill()


# -- fork() inside a handler --------------------------------------------------------------


class ForkAndReturn(sync.BaseRequestHandler):
    """Forks; the child *returns* from the request (a bug in the handler)."""

    children: list[int]
    forked: threading.Semaphore

    def handle(self) -> None:
        # Reply first: the child's shutdown_request() (SHUT_WR on the shared
        # connection) would otherwise race with the parent's reply.
        self.request.sendall(b"parent")
        pid = os.fork()
        if pid != 0:
            type(self).children.append(pid)
            type(self).forked.release()


@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_a_forked_child_never_runs_the_parents_loop(capfd: pytest.CaptureFixture[str]) -> None:
    class Handler(ForkAndReturn):
        children: list[int] = []  # noqa: RUF012
        forked = threading.Semaphore(0)

    server = sync.TCPServer(("127.0.0.1", 0), Handler)
    with serving(server, poll_interval=HOUR):
        assert stream_roundtrip(server.server_address, b"") == b"parent"
        assert Handler.forked.acquire(timeout=CLIENT_TIMEOUT)
        [child] = Handler.children
        _, status = os.waitpid(child, 0)
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 1, "the child exited instead of serving"
        # The parent's loop still gets its wake-ups: it serves, and the
        # shutdown() from this thread (run_sync_soon) reaches it.
        assert stream_roundtrip(server.server_address, b"") == b"parent"
        assert Handler.forked.acquire(timeout=CLIENT_TIMEOUT)
    for pid in Handler.children[1:]:
        os.waitpid(pid, 0)
    assert "returned into serve_forever(); it exits now" in capfd.readouterr().err


def test_a_childs_server_close_leaves_the_parents_unix_socket_file(sock_path: str) -> None:
    with sync.UnixStreamServer(sock_path, UpperLines) as server:
        pid = os.fork()
        if pid == 0:
            try:
                server.server_close()  # the child's copy
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert os.path.exists(sock_path), "only the process that bound it removes it"
    assert not os.path.exists(sock_path)


def test_server_close_returns_only_after_handler_threads_have_ended() -> None:
    # A profile hook holds each pool thread as its work function returns,
    # so a join that only waited for the pool's bookkeeping would return
    # while the thread still runs (the stdlib join()s each thread).
    released = threading.Event()

    def hold_at_exit(frame: Any, event: str, arg: object) -> None:
        if event == "return" and frame.f_code.co_name == "_work":
            released.wait(CLIENT_TIMEOUT)

    server = sync.ThreadingTCPServer(("127.0.0.1", 0), UpperLines)
    thread = _serve_in_thread(server)
    threading.setprofile(hold_at_exit)  # for threads started from now on
    try:
        assert stream_roundtrip(server.server_address, b"hi\n") == b"HI\n"
        [worker] = [t for t in threading.enumerate() if t.name.endswith("-handler-1")]
        server.shutdown()
        thread.join(CLIENT_TIMEOUT)
        closer = threading.Thread(target=server.server_close)
        closer.start()
        closer.join(0.2)
        assert closer.is_alive(), "server_close() waits for the thread's real end"
        released.set()
        closer.join(CLIENT_TIMEOUT)
        assert not closer.is_alive()
        assert not worker.is_alive()
    finally:
        released.set()
        threading.setprofile(None)
