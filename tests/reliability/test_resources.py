"""Resources that run out: file descriptors (a real ``RLIMIT_NOFILE``), the
concurrency cap, and memory over a soak.

* **EMFILE under load.** A server in a subprocess (lowering the limit inside
  pytest would break pytest) gets room for a few more descriptors than it
  holds, then ``form.clients`` clients connect at once and hold their
  connections. ``accept()`` fails with EMFILE while they hold: the server
  must log it and back off (its CPU time stays a small part of the wall
  time), not crash, and pick up every waiting client once descriptors are
  freed. A datagram server needs no descriptor per request, so there the
  limit reaches only a handler that opens a file: each such error is
  reported through ``handle_error`` and every datagram is still answered.
* **The cap reached.** ``max_concurrent_requests`` / ``max_threads`` small,
  many more clients than the cap, handlers held on a gate: no more than the
  cap run at once, the server takes no more requests than the cap while
  they are held (the rest wait in the kernel: backlog or socket buffer), and
  every one is served once the gate opens.
* **Memory soak.** ``form.soak`` requests in small batches; RSS, descriptors,
  threads and live Python objects sampled after a warm-up and after the soak.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
import sys
import textwrap
import threading
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import trio_socketserver as ts
import trio_socketserver.sync as sync

from ..short_paths import short_temporary_directory
from .children import OPEN_FDS, Spawned, spawned
from .harness import (
    API,
    APIS,
    CLIENT_DEADLINE,
    DATAGRAMS,
    ECHO,
    STREAMS,
    TRANSPORTS,
    Form,
    Handlers,
    Outcome,
    Running,
    Snapshot,
    Tally,
    Transport,
    checked_request,
    close_client,
    load,
    receive_reply,
    running,
    try_connect,
)
from .report import Row

#: UDP requests sent at once where the server takes them slower than they
#: come (held at its cap, or reporting an error for each): those waiting
#: sit in its socket's receive buffer (212992 bytes by default, about 256
#: small loopback datagrams here), and what overflows it the kernel drops,
#: which is not the server's to prevent. Unix datagram senders instead wait
#: for room (the receiver's queue is bounded by net.unix.max_dgram_qlen),
#: so they need no such bound.
UDP_HELD = 128


def clients_for(transport: Transport, form: Form) -> int:
    """Requests to send at once to a server slower than its clients."""
    return min(form.clients, UDP_HELD) if transport == "udp" else form.clients


# --- EMFILE: a server in a subprocess with a real RLIMIT_NOFILE ----------------

#: Descriptors a stream server may open beyond those it holds once serving.
SPARE_FDS = 8

#: The child: argv is api, transport, spare descriptors, Unix socket path.
#: Prints its address once serving with the limit lowered, serves until a
#: line (or EOF) on stdin, then prints a JSON report: what it leaked
#: (descriptors, threads, the socket file) and the EMFILE errors its
#: datagram handlers reported.
CHILD = OPEN_FDS + textwrap.dedent(
    """
    import errno, json, logging, os, resource, socket, sys, threading

    api, transport, spare, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(name)s %(levelname)s %(message)s")
    stream = transport in ("tcp", "unix")
    bind = ("127.0.0.1", 0) if transport in ("tcp", "udp") else path
    lock = threading.Lock()
    emfile_errors = [0]

    fillers = []

    def lower_limit(address):
        # Room for exactly `spare` more descriptors: the limit is one above
        # the highest descriptor allowed, so fill the gaps below it first.
        top = max(open_fds())
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1 + spare, hard))
        while True:
            try:
                fd = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                break  # no gap, no spare
            if fd > top:
                os.close(fd)
                break
            fillers.append(fd)
        print(json.dumps(address), flush=True)

    class NotesErrors:
        # Server mixin: counts the EMFILE errors among those it handles.
        def handle_error(self, request, client_address):
            exc = sys.exc_info()[1]
            if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
                with lock:
                    emfile_errors[0] += 1
            super().handle_error(request, client_address)

    before_fds, before_threads = open_fds(), set(threading.enumerate())

    if api == "async":
        import trio
        import trio_socketserver as ts

        class Hold(ts.StreamRequestHandler):
            async def handle(self):
                await self.wfile.write(await self.rfile.readline())
                await self.rfile.read()  # hold the descriptor until the client closes

        class OpensAFile(ts.DatagramRequestHandler):
            async def handle(self):
                self.wfile.write(self.rfile.read())  # sent by finish(), even if we raise
                open(os.devnull).close()

        base = {"tcp": ts.ConcurrentTCPServer, "unix": ts.ConcurrentUnixStreamServer,
                "udp": ts.ConcurrentUDPServer, "unixdgram": ts.ConcurrentUnixDatagramServer}

        class Server(NotesErrors, base[transport]):
            request_queue_size = socket.SOMAXCONN

        async def main():
            stdin = trio.lowlevel.FdStream(os.dup(0))
            server = Server(bind, Hold if stream else OpensAFile)
            async with stdin, server, trio.open_nursery() as nursery:
                await nursery.start(server.serve_forever)
                lower_limit(server.server_address)
                await stdin.receive_some()
                await server.shutdown()

        trio.run(main)
    else:
        import trio_socketserver.sync as socketserver

        class Hold(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(self.rfile.readline())
                self.rfile.read()

        class OpensAFile(socketserver.DatagramRequestHandler):
            def handle(self):
                self.wfile.write(self.rfile.read())
                open(os.devnull).close()

        base = {"tcp": socketserver.ThreadingTCPServer,
                "unix": socketserver.ThreadingUnixStreamServer,
                "udp": socketserver.ThreadingUDPServer,
                "unixdgram": socketserver.ThreadingUnixDatagramServer}

        class Server(NotesErrors, base[transport]):
            request_queue_size = socket.SOMAXCONN
            limited = False

            def service_actions(self):
                # Once serving: trio's loop holds its descriptors by now.
                if not self.limited:
                    self.limited = True
                    lower_limit(self.server_address)

        server = Server(bind, Hold if stream else OpensAFile)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,))
        thread.start()
        sys.stdin.readline()
        server.shutdown()
        thread.join()
        server.server_close()

    for fd in fillers:
        os.close(fd)
    after_fds = open_fds()
    leaks = [f"child fd {fd} ({what})" for fd, what in after_fds.items()
             if before_fds.get(fd) != what]
    leaks += [f"child thread {t.name!r}" for t in set(threading.enumerate()) - before_threads]
    if not isinstance(bind, tuple) and os.path.exists(path):
        leaks.append("child socket file")
    print(json.dumps({"leaks": leaks, "emfile_errors": emfile_errors[0]}), flush=True)
    """
)

BACKOFF = re.compile(r"get_request\(\) failed with EMFILE .*retrying in ([0-9.]+) seconds")

#: Watch the child's CPU time while EMFILE persists until it has backed off
#: this long (the delays double from 10 ms: 0.01 + ... + 0.32 = 0.63 s of
#: back-off before this one is logged).
WATCH_UNTIL_DELAY = 0.64
#: A busy accept loop burns one core (ratio about 1.0); backing off, the
#: child only logs a line now and then (ratio about 0.01). Generous, for a
#: loaded machine where the child's own scheduling is not the question.
MAX_CPU_RATIO = 0.5


class _Lines:
    """Lines from a child's output stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def readline(self) -> str:
        """The next line; "" at EOF."""
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                line, self._buffer = bytes(self._buffer), bytearray()
                return line.decode()
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode() + "\n"


@attrs.define(eq=False)
class Child:
    """A server in a subprocess, and what it logged."""

    process: Spawned
    stdin: trio.lowlevel.FdStream
    stdout: _Lines
    target: Running
    #: The back-off delays of every EMFILE logged so far, in order.
    delays: list[float] = attrs.Factory(list)
    #: The last lines of its log.
    tail: deque[str] = attrs.Factory(lambda: deque(maxlen=100))
    _logged: trio.Event = attrs.Factory(trio.Event)

    async def read_log(self, stderr: _Lines) -> None:
        while line := await stderr.readline():
            self.tail.append(line)
            if match := BACKOFF.search(line):
                self.delays.append(float(match.group(1)))
            self._logged.set()
            self._logged = trio.Event()

    async def wait_logged(self) -> None:
        """Wait until the child logs something."""
        await self._logged.wait()

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the child so far (all its threads)."""
        stat = Path(f"/proc/{self.process.popen.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stop(self) -> dict[str, Any]:
        """Ask the child to shut down; return its report."""
        await self.stdin.send_all(b"stop\n")
        with trio.fail_after(CLIENT_DEADLINE):
            line = await self.stdout.readline()
            code = await self.process.wait()
        assert code == 0, f"server exited with {code}:\n{''.join(self.tail)}"
        assert line, "server printed no report"
        report: dict[str, Any] = json.loads(line)
        return report


@asynccontextmanager
async def child_server(api: API, transport: Transport, spare: int) -> AsyncIterator[Child]:
    """Serve in a subprocess with room for ``spare`` more descriptors.

    Started by :func:`.children.spawned`, not with
    ``trio.lowlevel.open_process``, which spawns in a cached trio worker
    thread that the leak check would see."""
    with short_temporary_directory(prefix="tss-rel-emfile-") as tmp:
        client_dir = Path(tmp) / "clients"
        client_dir.mkdir()
        path = str(Path(tmp) / "srv.sock")
        argv = [sys.executable, "-c", CHILD, api, transport, str(spare), path]
        async with spawned(argv, stdin=True) as process:
            assert process.stdin is not None
            lines = _Lines(process.stdout)
            target = Running(api, transport, None, None, client_dir)
            child = Child(process, process.stdin, lines, target)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child.read_log, _Lines(process.stderr))
                with trio.fail_after(CLIENT_DEADLINE):
                    first = await lines.readline()
                assert first, f"server did not start:\n{''.join(child.tail)}"
                raw = json.loads(first)
                target.address = tuple(raw) if isinstance(raw, list) else raw
                yield child


async def held_request(
    srv: Running, payload: bytes, release: trio.Event, tally: Tally, deadline: float
) -> None:
    """A request that keeps its connection open after the reply until
    ``release`` (so the server's descriptor for it stays in use)."""
    sock = await try_connect(srv, deadline)
    if sock is None:
        tally.add("refused")
        return
    try:
        outcome: Outcome
        outcome, reply = await receive_reply(
            srv, sock, len(payload), deadline=deadline, send=payload
        )
        if outcome == "served" and reply != payload:
            outcome = "closed"
        tally.add(outcome)
        if outcome == "served":
            with trio.move_on_after(deadline):
                await release.wait()
    finally:
        close_client(sock)


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_emfile_under_load(api: API, transport: Transport, row: Row, form: Form) -> None:
    n = form.clients
    release = trio.Event()
    tally = Tally()
    async with child_server(api, transport, SPARE_FDS) as child:
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(
                    held_request,
                    child.target,
                    b"held %d\n" % i,
                    release,
                    tally,
                    2 * CLIENT_DEADLINE,
                )
            # Follow the child's log as it is written until it has backed
            # off for a while, every descriptor it may open held by a client.
            # CPU time is measured from its first EMFILE.
            cpu_start, wall_start = child.cpu_seconds(), trio.current_time()
            with trio.move_on_after(CLIENT_DEADLINE):
                while not child.delays or child.delays[-1] < WATCH_UNTIL_DELAY:
                    seen = len(child.delays)
                    await child.wait_logged()
                    if not seen and child.delays:
                        cpu_start, wall_start = child.cpu_seconds(), trio.current_time()
            cpu = child.cpu_seconds() - cpu_start
            wall = trio.current_time() - wall_start
            held = tally.served
            delays = list(child.delays)
            assert delays, f"no EMFILE logged: {held} served, {cpu:.2f}s CPU in {wall:.2f}s"
            assert delays[-1] >= WATCH_UNTIL_DELAY, (
                f"no back-off to {WATCH_UNTIL_DELAY}s: {len(delays)} EMFILE logged, "
                f"last delays {delays[-4:]}, {cpu:.2f}s CPU in {wall:.2f}s"
            )
            # Free the descriptors: the clients served so far close.
            release.set()
        await child.target.assert_serving()
        report = await child.stop()
    row.add_leaks(report["leaks"])
    reported = len(child.delays)
    row.record(
        load=f"{n} clients at once holding their connections",
        faults=f"RLIMIT_NOFILE: room for {SPARE_FDS} more fds",
        result=(
            f"{held} held at the limit; {reported} EMFILE logged, back-off to "
            f"{delays[-1]:.2f}s at {cpu / wall:.0%} CPU; then {tally}"
        ),
        lost=tally.lost,
    )
    assert all(a < b for a, b in itertools.pairwise(delays)), f"no back-off: {delays}"
    assert cpu <= MAX_CPU_RATIO * wall, f"busy loop: {cpu:.2f}s CPU in {wall:.2f}s"
    assert 0 < held <= SPARE_FDS, f"{held} served while EMFILE persisted"
    assert tally.served == n, tally


@pytest.mark.parametrize("transport", DATAGRAMS)
@pytest.mark.parametrize("api", APIS)
async def test_emfile_in_datagram_handler(
    api: API, transport: Transport, row: Row, form: Form
) -> None:
    """A datagram server holds no descriptor per request, so at the limit
    it serves on; a handler that opens a file fails, and that is reported."""
    n = clients_for(transport, form)
    async with child_server(api, transport, 0) as child:
        tally = await load(child.target, n)
        await child.target.assert_serving()
        report = await child.stop()
    row.add_leaks(report["leaks"])
    errors = report["emfile_errors"]
    row.record(
        load=f"{n} datagrams at once",
        faults="RLIMIT_NOFILE: handler opens a file per datagram",
        result=f"{tally}; {errors} handler EMFILE errors reported",
        lost=tally.lost,
    )
    assert tally.served == n, tally
    assert errors == n + 3, f"{errors} EMFILE errors reported for {n + 3} datagrams"


# --- The concurrency cap reached -------------------------------------------------

#: ``max_concurrent_requests`` (async) or ``max_threads`` (sync).
CAP = 4


class Gate:
    """Counts the handlers running (from any thread) and holds them until
    :meth:`open`. Created inside the test's trio run."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.entered = 0
        #: Requests the server took (counted in ``verify_request``).
        self.taken = 0
        #: Set (in the test's trio run) once ``cap`` handlers run at once.
        self.full = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._opened = threading.Event()
        self._opened_trio = trio.Event()

    def take(self) -> None:
        with self._lock:
            self.taken += 1

    def enter(self) -> None:
        with self._lock:
            self.active += 1
            self.entered += 1
            self.peak = max(self.peak, self.active)
            full = self.active >= self.cap
        if full:
            self._token.run_sync_soon(self.full.set)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    async def wait_async(self) -> None:
        await self._opened_trio.wait()

    def wait_sync(self) -> None:
        # Bounded, so that a failing test cannot leave a handler thread
        # behind for ever; the test opens the gate long before.
        self._opened.wait(4 * CLIENT_DEADLINE)

    def open(self) -> None:
        """Called in the test's trio run."""
        self._opened.set()
        self._opened_trio.set()


def gated(gate: Gate) -> Handlers:
    """Echo handlers of both APIs that wait at ``gate`` before replying."""

    class AsyncStream(ts.StreamRequestHandler):
        timeout = 4 * CLIENT_DEADLINE

        async def handle(self) -> None:
            line = await self.rfile.readline()
            gate.enter()
            try:
                await gate.wait_async()
                await self.wfile.write(line)
            finally:
                gate.leave()

    class AsyncDatagram(ts.DatagramRequestHandler):
        async def handle(self) -> None:
            gate.enter()
            try:
                await gate.wait_async()
                self.wfile.write(self.rfile.read())
            finally:
                gate.leave()

    class SyncStream(sync.StreamRequestHandler):
        timeout = 4 * CLIENT_DEADLINE

        def handle(self) -> None:
            line = self.rfile.readline()
            gate.enter()
            try:
                gate.wait_sync()
                self.wfile.write(line)
            finally:
                gate.leave()

    class SyncDatagram(sync.DatagramRequestHandler):
        def handle(self) -> None:
            gate.enter()
            try:
                gate.wait_sync()
                self.wfile.write(self.rfile.read())
            finally:
                gate.leave()

    return Handlers(AsyncStream, AsyncDatagram, SyncStream, SyncDatagram)


class AsyncCountsTaken:
    """Counts, in ``verify_request``, every request the server takes."""

    gate: Gate

    async def verify_request(self, request: Any, client_address: Any) -> bool:
        self.gate.take()
        return True


class SyncCountsTaken:
    gate: Gate

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.gate.take()
        return True


async def counted_request(
    srv: Running, payload: bytes, tally: Tally, sent: list[int], all_sent: trio.Event, n: int
) -> None:
    """:func:`harness.request`, noting when the request has been sent."""
    deadline = 4 * CLIENT_DEADLINE  # it waits at the gate first
    sock = await try_connect(srv, deadline)
    if sock is None:
        tally.add("refused")
        return

    def note_sent() -> None:
        sent[0] += 1
        if sent[0] == n:
            all_sent.set()

    try:
        outcome: Outcome
        outcome, reply = await receive_reply(
            srv, sock, len(payload), deadline=deadline, send=payload, on_sent=note_sent
        )
        if outcome == "served" and reply != payload:
            outcome = "closed"
        tally.add(outcome)
    finally:
        close_client(sock)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("api", APIS)
async def test_cap_reached(api: API, transport: Transport, row: Row, form: Form) -> None:
    n = clients_for(transport, form)
    gate = Gate(CAP)
    tally = Tally()
    sent = [0]
    all_sent = trio.Event()
    base = AsyncCountsTaken if api == "async" else SyncCountsTaken
    async with running(api, transport, gated(gate), cap=CAP, base=base, gate=gate) as srv:
        try:
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    payload = b"capped %d\n" % i
                    nursery.start_soon(counted_request, srv, payload, tally, sent, all_sent, n)
                with trio.fail_after(CLIENT_DEADLINE):
                    await gate.full.wait()
                    # A Unix datagram sender waits for room in the server's
                    # queue, so not all of those can have been sent yet.
                    if transport != "unixdgram":
                        await all_sent.wait()
                    # Every client has sent or waits to; let the server take
                    # whatever it would take.
                    await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                taken_at_cap, active_at_cap = gate.taken, gate.active
                gate.open()
        finally:
            gate.open()
        await srv.assert_serving()
    row.record(
        load=f"{n} requests at once, cap {CAP}",
        faults="handlers held until released",
        result=(
            f"{active_at_cap} running, {taken_at_cap} taken while held; "
            f"peak {gate.peak}; then {tally}"
        ),
        lost=tally.lost,
    )
    assert gate.peak <= CAP, f"{gate.peak} handlers ran at once with a cap of {CAP}"
    assert active_at_cap == CAP, f"{active_at_cap} handlers running at the cap"
    assert taken_at_cap == CAP, f"{taken_at_cap} requests taken with {CAP} handlers held"
    assert tally.served == n, tally
    assert gate.entered == n + 3


# --- Memory soak -------------------------------------------------------------------

#: Clients at once during the soak, each making requests one after another.
SOAK_BATCH = 8
#: RSS growth allowed over the soak: the allocator's and the interpreter's
#: noise after a warm-up (arenas, trio's run queues, free lists) measured
#: here under 0.5 MB at either form, so 10 MB is generous; a per-request
#: leak of 1 KB is 30 MB over the long form's 30,000 requests and is
#: caught. The short form's 2,000 requests are too few for RSS to catch
#: 1 KB each; the object count below catches a leaked container per
#: request at either scale.
RSS_BOUND_KB = 10 * 1024
#: Growth in live (gc-tracked) Python objects allowed over the soak: at
#: least ``OBJECTS_FLOOR`` (measured noise: -1,600 to +350, the top with the
#: machine loaded, where the sync server's pool started a few more threads
#: of about 100 objects each), or one object per 20 requests. A leak of one
#: object per request is caught at either form (2,000 or 30,000).
OBJECTS_BOUND_PER_REQUEST = 0.05
OBJECTS_FLOOR = 1000


@attrs.frozen
class Usage:
    """What this process uses: RSS, descriptors and threads, live objects."""

    rss_kb: int
    snapshot: Snapshot
    objects: int

    @classmethod
    def take(cls) -> Usage:
        gc.collect()
        status = Path("/proc/self/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return cls(int(match.group(1)), Snapshot.take(), len(gc.get_objects()))


class Ended:
    """Counts requests whose ``shutdown_request`` has returned (their
    connection closed), from any thread; created in the test's trio run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self._token = trio.lowlevel.current_trio_token()
        self._target = 0
        self._reached: trio.Event | None = None

    def add(self) -> None:
        with self._lock:
            self.count += 1
            reached = self._reached if self.count == self._target else None
        if reached is not None:
            self._token.run_sync_soon(reached.set)

    async def wait_for(self, n: int) -> None:
        """Wait until ``n`` requests have ended."""
        reached = trio.Event()
        with self._lock:
            if self.count >= n:
                return
            self._target, self._reached = n, reached
        with trio.fail_after(CLIENT_DEADLINE):
            await reached.wait()


class AsyncCountsEnded(ts.BaseServer[Any, Any]):
    ended: Ended

    async def shutdown_request(self, request: Any) -> None:
        await super().shutdown_request(request)
        self.ended.add()


class SyncCountsEnded(sync.BaseServer):
    ended: Ended

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.ended.add()


async def soak(srv: Running, n: int, tally: Tally) -> None:
    """``n`` requests, ``SOAK_BATCH`` clients at once."""
    remaining = [n]

    async def client() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            tally.add(await checked_request(srv, b"soak %d\n" % remaining[0]))

    async with trio.open_nursery() as nursery:
        for _ in range(SOAK_BATCH):
            nursery.start_soon(client)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
@pytest.mark.parametrize("api", APIS)
async def test_memory_soak(api: API, transport: Transport, row: Row, form: Form) -> None:
    n = form.soak
    warm_up = max(500, n // 10)
    ended = Ended()
    base = AsyncCountsEnded if api == "async" else SyncCountsEnded
    warm, tally = Tally(), Tally()
    threads_at_start = len(threading.enumerate())
    async with running(api, transport, ECHO, base=base, ended=ended) as srv:
        # Sampled when every request so far has ended on the server's side
        # too (its handler returned, its connection closed).
        await soak(srv, warm_up, warm)
        await ended.wait_for(warm.served)
        before = Usage.take()
        await soak(srv, n, tally)
        await ended.wait_for(warm.served + tally.served)
        after = Usage.take()
        await srv.assert_serving()
    rss = after.rss_kb - before.rss_kb
    objects = after.objects - before.objects
    fds = len(after.snapshot.fds) - len(before.snapshot.fds)
    threads = len(after.snapshot.threads) - len(before.snapshot.threads)
    server_threads = len(after.snapshot.threads) - threads_at_start
    what = "connections" if transport == "tcp" else "datagrams"
    row.record(
        load=f"{n} {what}, {SOAK_BATCH} at a time",
        faults=f"none (after {warm_up} to warm up)",
        result=(
            f"{tally}; RSS {rss / 1024:+.1f} MB, objects {objects:+d}, "
            f"fds {fds:+d}, threads {threads:+d} (server's: {server_threads})"
        ),
        lost=tally.lost,
    )
    assert tally.served == n, tally
    leaks = [
        leak
        for leak in after.snapshot.leaks_since(before.snapshot)
        if not leak.startswith("thread")
    ]
    assert not leaks, f"held after the soak but not before: {leaks}"
    # The sync server keeps its idle pool threads (up to MAX_IDLE, for
    # IDLE_TIMEOUT): as many as ever ran at once, which a soak can raise by
    # one now and then after the warm-up. Bounded by the clients at once,
    # not by the requests: a handler may still be ending (or, starved of the
    # GIL, a few) when its client starts the next request; serve_forever has
    # a thread of its own. A leaked thread per request would be thousands.
    most = 0 if api == "async" else 1 + 4 * SOAK_BATCH
    assert server_threads <= most, f"the server holds {server_threads} threads after the soak"
    assert rss <= RSS_BOUND_KB, f"RSS grew {rss} kB over {n} requests"
    assert objects <= max(OBJECTS_FLOOR, n * OBJECTS_BOUND_PER_REQUEST), (
        f"{objects} more live objects after {n} requests"
    )
