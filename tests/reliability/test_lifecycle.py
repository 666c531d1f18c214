"""Lifecycle under load: ``shutdown()``, Ctrl-C (SIGINT) and SIGTERM while
hundreds of requests are in flight, async and sync, graceful, with a
deadline, and daemon.

Every request here is *held*: its client sends a line, the handler reads it
and acknowledges it (one byte, ``+``) and then waits mid-request, so the
client knows from the wire that its request is in flight before the test
stops the server. How a handler waits is said by the line's first word:

``go``
    on the stream, for the client's second line, which the client sends
    only when the test releases it (after shutdown has begun); then it
    echoes its first line: *served*.
``stall``
    on the stream too, but the client never sends the second line: only a
    deadline (cancellation, or a sync server shutting the connection down)
    ends it: *closed*.
``sleep`` (async only)
    on nothing (``trio.sleep_forever()``): a wait that only cancellation
    ends.
``auto`` (async only)
    until shutdown begins (``server.wait_shutting_down()``), then echoes.

Datagram handlers acknowledge with a datagram and reply when shutdown
begins (async) or when ``server_close()`` begins (sync), so each reply is
in flight exactly while the server closes.

The deadlines are made deterministic where the library allows it: with a
deadline, the released (``go``) requests complete first, and only then is the
deadline set (a second ``shutdown(grace_period=...)`` for the async API,
which can only shorten the grace; ``server_close()`` with ``grace_period``
for a sync server, whose grace starts there). Only the subprocess
scenarios with a grace period race their ``go`` requests against it: they
get 1.5 s for a loopback round trip.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import pytest
import trio

import trio_socketserver as ts
import trio_socketserver.sync as sync

from ..short_paths import short_temporary_directory
from ..test_examples import _Output
from .children import OPEN_FDS, Spawned, spawned
from .harness import (
    API,
    APIS,
    CLIENT_DEADLINE,
    DATAGRAMS,
    STREAMS,
    Form,
    Handlers,
    Outcome,
    Running,
    Tally,
    Transport,
    close_client,
    in_thread,
    running,
    try_connect,
)
from .report import Row

#: The handler's acknowledgement: the request is in flight.
ACK = b"+"
#: A released client's second line.
GO = b"go\n"
#: A grace period long enough for every in-flight request (graceful).
LONG_GRACE = 30.0
#: The short grace period of the in-process deadline scenarios.
DEADLINE = 0.5
#: The grace period of the subprocess deadline scenarios.
CHILD_GRACE = 1.5
#: What a stop may take beyond its grace period before it counts as stuck.
#: Generous: only a hang reaches it.
SLACK = 10.0

Kind = Literal["go", "stall", "sleep", "auto"]


# --- Handlers: hold the request mid-way ---------------------------------------


class AsyncHeld(ts.StreamRequestHandler):
    """Acknowledge the line, then hold the request as its kind says."""

    async def handle(self) -> None:
        line = await self.rfile.readline()
        if not line:
            return
        await self.wfile.write(ACK)
        kind = line.split(b" ", 1)[0]
        if kind == b"sleep":
            await trio.sleep_forever()
        elif kind == b"auto":
            await self.server.wait_shutting_down()
        elif not await self.rfile.readline():
            return
        await self.wfile.write(line)


class AsyncHeldDatagram(ts.DatagramRequestHandler):
    """Acknowledge the datagram; reply once shutdown has begun."""

    async def handle(self) -> None:
        await self.socket.sendto(ACK, self.client_address)
        await self.server.wait_shutting_down()
        self.wfile.write(self.packet)


class SyncHeld(sync.StreamRequestHandler):
    """Acknowledge the line; echo it after the client's second line. Blocked
    in socket I/O, so a sync server past its grace can unblock it."""

    # A safety net only: a handler the server failed to unblock errs out
    # (and its client counts as lost) instead of holding the test forever.
    timeout = 2 * CLIENT_DEADLINE

    def handle(self) -> None:
        line = self.rfile.readline()
        if not line:
            return
        self.wfile.write(ACK)
        if self.rfile.readline():
            self.wfile.write(line)


class SyncHeldDatagram(sync.DatagramRequestHandler):
    """Acknowledge the datagram; reply once ``server_close()`` has begun."""

    def handle(self) -> None:
        self.socket.sendto(ACK, self.client_address)
        server: Any = self.server
        server.closing.wait(CLIENT_DEADLINE)  # bounded: a safety net
        self.wfile.write(self.packet)


HELD = Handlers(AsyncHeld, AsyncHeldDatagram, SyncHeld, SyncHeldDatagram)

if TYPE_CHECKING:
    _SyncBase = sync.BaseServer
else:
    _SyncBase = object


class SignalsClose(_SyncBase):
    """A sync server mixin: ``closing`` is set when ``server_close()`` begins."""

    closing: threading.Event

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closing = threading.Event()
        super().__init__(*args, **kwargs)

    def server_close(self) -> None:
        self.closing.set()
        super().server_close()


# --- Clients: hold requests in flight -----------------------------------------


@attrs.define(eq=False)
class Held:
    """Requests held in flight, by kind, and what became of them."""

    counts: dict[str, int]
    #: Set by the test: ``go`` clients send their second line.
    released: trio.Event = attrs.Factory(trio.Event)
    #: Every client is in flight (acknowledged) or failed to get there.
    settled: trio.Event = attrs.Factory(trio.Event)
    acked: int = 0
    unsettled: int = 0
    tallies: dict[str, Tally] = attrs.Factory(dict)
    #: Datagrams sent and not yet acknowledged, at most: beyond the server
    #: socket's receive buffer the kernel drops them before the server ever
    #: takes them (datagrams have no backpressure), which is not what these
    #: scenarios test. Every request still ends up in flight at once.
    admission: trio.Semaphore = attrs.Factory(lambda: trio.Semaphore(64))
    remaining: dict[str, int] = attrs.Factory(dict)
    done: dict[str, trio.Event] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        self.unsettled = self.total
        for kind, count in self.counts.items():
            self.tallies[kind] = Tally()
            self.remaining[kind] = count
            self.done[kind] = trio.Event()
            if not count:
                self.done[kind].set()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def settle(self, acked: bool) -> None:
        self.acked += acked
        self.unsettled -= 1
        if not self.unsettled:
            self.settled.set()

    def finish(self, kind: str, outcome: Outcome) -> None:
        self.tallies[kind].add(outcome)
        self.remaining[kind] -= 1
        if not self.remaining[kind]:
            self.done[kind].set()

    @property
    def lost(self) -> int:
        return sum(t.lost for t in self.tallies.values())

    def expect(self, **outcomes: Outcome) -> None:
        """Assert what became of every request of each kind."""
        for kind, outcome in outcomes.items():
            expected = Tally(**{outcome: self.counts[kind]})
            assert self.tallies[kind] == expected, f"{kind} requests: {self}"

    def __str__(self) -> str:
        parts = []
        for kind, tally in self.tallies.items():
            counts = attrs.asdict(tally)
            parts.append(f"{kind}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
        return "; ".join(parts)


@attrs.define
class _Ticket:
    held: Held
    acked: bool = False

    def ack(self) -> None:
        self.acked = True
        self.held.settle(True)


async def held_client(srv: Running, held: Held, kind: str, i: int) -> None:
    ticket = _Ticket(held)
    outcome: Outcome = "lost"
    try:
        outcome = await _exchange(srv, ticket, kind, b"%s %d\n" % (kind.encode(), i))
    finally:
        if not ticket.acked:
            held.settle(False)
        held.finish(kind, outcome)


async def _exchange(srv: Running, ticket: _Ticket, kind: str, line: bytes) -> Outcome:
    sock = await try_connect(srv)
    if sock is None:
        return "refused"
    try:
        if srv.stream:
            return await _stream_exchange(sock, ticket, kind, line)
        return await _datagram_exchange(sock, ticket, line)
    except OSError as exc:
        if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNREFUSED):
            return "closed"
        raise
    finally:
        close_client(sock)


async def _stream_exchange(
    sock: trio.socket.SocketType, ticket: _Ticket, kind: str, line: bytes
) -> Outcome:
    with trio.move_on_after(CLIENT_DEADLINE) as scope:
        await sock.send(line)
        ack = await sock.recv(1)
    if scope.cancelled_caught:
        return "lost"
    if ack != ACK:
        assert not ack, f"{line!r} got {ack!r} instead of the acknowledgement"
        return "closed"
    ticket.ack()
    if kind == "go":
        await ticket.held.released.wait()
        await sock.send(GO)
    reply = bytearray()
    with trio.move_on_after(CLIENT_DEADLINE) as scope:
        while len(reply) < len(line):
            chunk = await sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    if scope.cancelled_caught:
        return "lost"
    if not reply:
        return "closed"
    assert reply == line, f"wrong reply {bytes(reply)!r} to {line!r}"
    return "served"


async def _datagram_exchange(sock: trio.socket.SocketType, ticket: _Ticket, line: bytes) -> Outcome:
    with trio.move_on_after(CLIENT_DEADLINE) as scope:
        async with ticket.held.admission:
            await sock.send(line)
            ack = await sock.recv(65536)
    if scope.cancelled_caught:
        return "lost"
    assert ack == ACK, f"{line!r} got {ack!r} instead of the acknowledgement"
    ticket.ack()
    with trio.move_on_after(CLIENT_DEADLINE) as scope:
        reply = await sock.recv(65536)
    if scope.cancelled_caught:
        return "lost"
    assert reply == line, f"wrong reply {reply!r} to {line!r}"
    return "served"


async def hold(srv: Running, nursery: trio.Nursery, **counts: int) -> Held:
    """Start ``counts`` clients of each kind; return once all are in flight."""
    held = Held(counts)
    for kind, count in counts.items():
        for i in range(count):
            nursery.start_soon(held_client, srv, held, kind, i)
    with trio.fail_after(2 * CLIENT_DEADLINE):
        await held.settled.wait()
    assert held.acked == held.total, f"only {held.acked} of {held.total} got in flight: {held}"
    return held


def split(n: int, *kinds: str) -> dict[str, int]:
    """``n`` requests shared out among ``kinds`` (the first gets the rest)."""
    share = n // len(kinds)
    counts = dict.fromkeys(kinds, share)
    counts[kinds[0]] += n - share * len(kinds)
    return counts


def handler_threads(server: Any) -> list[threading.Thread]:
    prefix = f"{type(server).__name__}-handler"
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def join_all(threads: list[threading.Thread], timeout: float) -> list[str]:
    """Join ``threads`` within ``timeout`` in all; the names of those still alive."""
    end = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


# --- shutdown() in process --------------------------------------------------------


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_shutdown_graceful_under_load(
    api: API, transport: Transport, row: Row, form: Form
) -> None:
    """Grace long enough: every request in flight when shutdown begins is
    released only after that, and completes."""
    async with (
        running(api, transport, HELD, grace=LONG_GRACE) as srv,
        trio.open_nursery() as nursery,
    ):
        held = await hold(srv, nursery, go=form.clients)
        start = trio.current_time()
        with trio.fail_after(LONG_GRACE + SLACK):
            if api == "async":
                async with trio.open_nursery() as stopper:
                    stopper.start_soon(srv.shutdown)
                    await srv.server.wait_shutting_down()
                    held.released.set()
            else:
                # serve_forever returns at once; the handler threads
                # hold their requests, and server_close() waits for them.
                await srv.shutdown()
                async with trio.open_nursery() as closer:
                    closer.start_soon(in_thread, srv.server.server_close)
                    held.released.set()
        took = trio.current_time() - start
    held.expect(go="served")
    stop = "shutdown()" if api == "async" else "shutdown() + server_close()"
    row.record(
        load=f"{held.total} requests in flight",
        faults=f"{stop}, grace {LONG_GRACE:g} s; released after shutdown began",
        result=f"{held}; {stop} returned in {took:.2f} s",
        lost=held.lost,
    )


@pytest.mark.parametrize("transport", DATAGRAMS)
@pytest.mark.parametrize("api", APIS)
async def test_shutdown_graceful_datagrams_under_load(
    api: API, transport: Transport, row: Row, form: Form, request: pytest.FixtureRequest
) -> None:
    """Datagram replies in flight while the server stops are not lost: the
    handlers reply when shutdown begins (async) or when server_close()
    begins (sync), before the socket they reply on is closed."""
    base = SignalsClose if api == "sync" else None
    async with (
        running(api, transport, HELD, grace=LONG_GRACE, base=base) as srv,
        trio.open_nursery() as nursery,
    ):
        held = await hold(srv, nursery, auto=form.clients)
        start = trio.current_time()
        with trio.fail_after(LONG_GRACE + SLACK):
            await srv.shutdown()
            if api == "sync":
                await in_thread(srv.server.server_close)
        took = trio.current_time() - start
    held.expect(auto="served")
    when = "as shutdown begins" if api == "async" else "as server_close() begins"
    row.record(
        load=f"{held.total} datagrams in flight",
        faults=f"shutdown() + server_close(); replies sent {when}",
        result=f"{held}; returned in {took:.2f} s",
        lost=held.lost,
    )


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_shutdown_deadline_under_load(
    api: API, transport: Transport, row: Row, form: Form
) -> None:
    """A short grace: the requests that finish in time are served, the rest
    are cancelled (async) or unblocked by their connections being shut down
    (sync), and the caller returns within the grace period."""
    kinds = ("go", "stall", "sleep") if api == "async" else ("go", "stall")
    async with running(api, transport, HELD, grace=None) as srv, trio.open_nursery() as nursery:
        held = await hold(srv, nursery, **split(form.clients, *kinds))
        if api == "async":
            async with trio.open_nursery() as stopper:
                stopper.start_soon(srv.shutdown)  # grace None: waits
                await srv.server.wait_shutting_down()
                held.released.set()
                with trio.fail_after(CLIENT_DEADLINE):
                    await held.done["go"].wait()
                start = trio.current_time()
                with trio.fail_after(DEADLINE + SLACK):
                    # A later call can only shorten the grace: now DEADLINE.
                    await srv.server.shutdown(grace_period=DEADLINE)
                took = trio.current_time() - start
        else:
            await srv.shutdown()
            held.released.set()
            with trio.fail_after(CLIENT_DEADLINE):
                await held.done["go"].wait()
            srv.server.grace_period = DEADLINE
            start = trio.current_time()
            with trio.fail_after(DEADLINE + SLACK):
                await in_thread(srv.server.server_close)
            took = trio.current_time() - start
    sleep: dict[str, Outcome] = {"sleep": "closed"} if api == "async" else {}
    held.expect(go="served", stall="closed", **sleep)
    how = "cancelled" if api == "async" else "connections shut down"
    call = "shutdown(grace_period=...)" if api == "async" else "server_close()"
    row.record(
        load=f"{held.total} requests in flight",
        faults=f"grace {DEADLINE:g} s; {held.counts['go']} finish first, the rest never do",
        result=f"{held}; rest {how}; {call} returned in {took:.2f} s",
        lost=held.lost,
    )


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_shutdown_daemon_under_load(
    api: API, transport: Transport, row: Row, form: Form
) -> None:
    """daemon_requests / daemon_threads: shutdown cancels (async) or
    server_close() unblocks (sync) every request at once."""
    kinds = ("stall", "sleep") if api == "async" else ("stall",)
    async with (
        running(api, transport, HELD, daemon=True, grace=LONG_GRACE) as srv,
        trio.open_nursery() as nursery,
    ):
        held = await hold(srv, nursery, **split(form.clients, *kinds))
        start = trio.current_time()
        with trio.fail_after(SLACK):  # "at once": far less than the grace
            await srv.shutdown()
            if api == "sync":
                await in_thread(srv.server.server_close)
        took = trio.current_time() - start
        if api == "sync":
            # Daemon threads are not waited for; unblocked, they end by themselves.
            alive = await in_thread(join_all, handler_threads(srv.server), CLIENT_DEADLINE)
            assert not alive, f"daemon handler threads still running: {alive}"
    sleep: dict[str, Outcome] = {"sleep": "closed"} if api == "async" else {}
    held.expect(stall="closed", **sleep)
    call = "shutdown()" if api == "async" else "shutdown() + server_close()"
    row.record(
        load=f"{held.total} requests in flight",
        faults=f"daemon, grace {LONG_GRACE:g} s ignored; none would finish",
        result=f"{held}; {call} returned in {took:.2f} s",
        lost=held.lost,
    )


if TYPE_CHECKING:
    _AsyncDatagramBase = ts.ConcurrentUnixDatagramServer
else:
    _AsyncDatagramBase = object


class SmallSendBuffer(_AsyncDatagramBase):
    """An async datagram server mixin: a send buffer of a few replies."""

    def server_activate(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        super().server_activate()


async def test_datagram_reply_burst_on_a_full_send_buffer(row: Row, form: Form) -> None:
    """Replies that find the server's send buffer full wait for room (as a
    blocking sendto() does in the sync adapter) instead of failing. (Found
    by this suite: concurrent handlers replying on the shared trio socket
    failed with trio.BusyResourceError; DatagramServer.sendto takes turns.)"""
    faults = "SO_SNDBUF 4 KB; every handler replies at once as shutdown begins"
    async with (
        running("async", "unixdgram", HELD, grace=LONG_GRACE, base=SmallSendBuffer) as srv,
        trio.open_nursery() as nursery,
    ):
        held = await hold(srv, nursery, auto=form.clients)
        with trio.fail_after(LONG_GRACE + SLACK):
            await srv.shutdown()
        # At once: a failed handler's client would wait CLIENT_DEADLINE.
        errors = srv.server.statistics().errors
        assert errors == 0, f"{errors} of {held.total} handlers failed (replies dropped)"
    held.expect(auto="served")
    row.record(
        load=f"{form.clients} datagrams in flight (async, unixdgram)",
        faults=faults,
        result=str(held),
        lost=held.lost,
    )


# --- Signals to a server in a subprocess --------------------------------------------

#: What every child program starts with: it snapshots its descriptors, and
#: ``report_leftovers()`` prints, as its last line, what it still holds
#: (threads get a bounded join first, as interpreter exit would wait for them).
_PRELUDE = (
    OPEN_FDS
    + """
import json, os, signal, socket, sys, threading

def _children():
    me, kids = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[1] == me:
                kids.append(int(entry))
    return kids

_BEFORE = open_fds()

def report_leftovers():
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    for thread in others:
        thread.join(10)
    leaks = [f"fd {fd} ({what})" for fd, what in open_fds().items() if _BEFORE.get(fd) != what]
    leaks += [f"thread {t.name!r}" for t in others if t.is_alive()]
    leaks += [f"child process {pid}" for pid in _children()]
    print("LEFTOVERS", json.dumps(leaks), flush=True)
"""
)

_ASYNC_HANDLER = """
import trio
import trio_socketserver as ts

class Held(ts.StreamRequestHandler):
    async def handle(self):
        line = await self.rfile.readline()
        if not line:
            return
        await self.wfile.write(b"+")
        kind = line.split(b" ", 1)[0]
        if kind == b"sleep":
            await trio.sleep_forever()
        elif kind == b"auto":
            await self.server.wait_shutting_down()
        elif not await self.rfile.readline():
            return
        await self.wfile.write(line)

Server = type("Server", (getattr(ts, SERVER_CLASS),), {"daemon_requests": DAEMON})
"""

#: trio_socketserver.serve(): SIGINT/SIGTERM start a graceful shutdown, a
#: second signal cancels what is left.
ASYNC_SERVE = (
    _PRELUDE
    + _ASYNC_HANDLER
    + """
import functools, logging
logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                    format="%(name)s %(levelname)s %(message)s")

async def main():
    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(
            ts.serve, ADDRESS, Held, server_class=Server, grace_period=GRACE))
        print("listening on", json.dumps(server.server_address), flush=True)

trio.run(main)
report_leftovers()
"""
)

#: A plain serve_forever() program: Ctrl-C is trio's KeyboardInterrupt.
ASYNC_PLAIN = (
    _PRELUDE
    + _ASYNC_HANDLER
    + """
async def main():
    async with Server(ADDRESS, Held) as server:
        print("listening on", json.dumps(server.server_address), flush=True)
        await server.serve_forever()

try:
    trio.run(main)
finally:
    report_leftovers()
"""
)

#: A blocking stdlib-style script; optionally SIGTERM calls shutdown() from
#: its signal handler (a deadlock in the stdlib: the handler runs in the
#: thread that runs serve_forever).
SYNC_SCRIPT = (
    _PRELUDE
    + """
import trio_socketserver.sync as socketserver

class Held(socketserver.StreamRequestHandler):
    timeout = 60

    def handle(self):
        line = self.rfile.readline()
        if not line:
            return
        self.wfile.write(b"+")
        if self.rfile.readline():
            self.wfile.write(line)

class Server(getattr(socketserver, SERVER_CLASS)):
    allow_reuse_address = True
    request_queue_size = socket.SOMAXCONN
    grace_period = GRACE
    daemon_threads = DAEMON

try:
    with Server(ADDRESS, Held) as server:
        if ON_SIGTERM:
            signal.signal(signal.SIGTERM, lambda *args: server.shutdown())
        print("listening on", json.dumps(server.server_address), flush=True)
        try:
            server.serve_forever()
        finally:
            print("stopped serving", flush=True)
finally:
    report_leftovers()
"""
)

_SERVER_CLASSES = {
    ("async", "tcp"): "ConcurrentTCPServer",
    ("async", "unix"): "ConcurrentUnixStreamServer",
    ("sync", "tcp"): "ThreadingTCPServer",
    ("sync", "unix"): "ThreadingUnixStreamServer",
}


@attrs.frozen
class Program:
    """A server program in a subprocess, and how it is stopped."""

    name: str
    api: API
    source: str
    transport: Transport
    signum: signal.Signals
    #: Send the signal again once the released requests are done.
    twice: bool = False
    grace: float | None = None
    daemon: bool = False
    on_sigterm: bool = False
    #: Kinds of requests held in flight, and what must become of each.
    expect: tuple[tuple[Kind, Outcome], ...] = ()
    #: What the program prints once it has taken the (first) signal:
    #: (stream, text in a line); None: nothing to wait for.
    marker: tuple[Literal["out", "err"], str] | None = None
    exit_status: int = 0

    def header(self, address: Any) -> str:
        return textwrap.dedent(
            f"""\
            ADDRESS = {address!r}
            SERVER_CLASS = {_SERVER_CLASSES[self.api, self.transport]!r}
            GRACE = {self.grace!r}
            DAEMON = {self.daemon!r}
            ON_SIGTERM = {self.on_sigterm!r}
            """
        )


_SIGINT_EXIT = -signal.SIGINT  # an uncaught KeyboardInterrupt ends Python by SIGINT
PROGRAMS: list[Any] = [
    Program(
        "async-serve-SIGINT-twice",
        "async",
        ASYNC_SERVE,
        "tcp",
        signal.SIGINT,
        twice=True,
        expect=(("go", "served"), ("stall", "closed"), ("sleep", "closed")),
        marker=("err", "SIGINT received: shutting down"),
    ),
    Program(
        "async-serve-SIGTERM-grace",
        "async",
        ASYNC_SERVE,
        "unix",
        signal.SIGTERM,
        grace=CHILD_GRACE,
        expect=(("auto", "served"), ("stall", "closed"), ("sleep", "closed")),
        marker=("err", "SIGTERM received: shutting down"),
    ),
    Program(
        "async-serve-SIGTERM-twice",
        "async",
        ASYNC_SERVE,
        "unix",
        signal.SIGTERM,
        twice=True,
        expect=(("go", "served"), ("stall", "closed"), ("sleep", "closed")),
        marker=("err", "SIGTERM received: shutting down"),
    ),
    Program(
        "async-serve-SIGINT-daemon",
        "async",
        ASYNC_SERVE,
        "tcp",
        signal.SIGINT,
        daemon=True,
        expect=(("stall", "closed"), ("sleep", "closed")),
    ),
    Program(
        "async-serve_forever-SIGINT",
        "async",
        ASYNC_PLAIN,
        "unix",
        signal.SIGINT,
        expect=(("stall", "closed"), ("sleep", "closed")),
        exit_status=_SIGINT_EXIT,
    ),
    pytest.param(
        Program(
            "sync-SIGINT-twice",
            "sync",
            SYNC_SCRIPT,
            "tcp",
            signal.SIGINT,
            twice=True,
            expect=(("go", "served"), ("stall", "closed")),
            marker=("out", "stopped serving"),
            exit_status=_SIGINT_EXIT,
        ),
    ),
    pytest.param(
        Program(
            "sync-SIGINT-grace",
            "sync",
            SYNC_SCRIPT,
            "unix",
            signal.SIGINT,
            grace=CHILD_GRACE,
            expect=(("go", "served"), ("stall", "closed")),
            marker=("out", "stopped serving"),
            exit_status=_SIGINT_EXIT,
        ),
    ),
    Program(
        "sync-SIGINT-daemon",
        "sync",
        SYNC_SCRIPT,
        "tcp",
        signal.SIGINT,
        daemon=True,
        expect=(("stall", "closed"),),
        marker=("out", "stopped serving"),
        exit_status=_SIGINT_EXIT,
    ),
    Program(
        "sync-SIGTERM-shutdown-tcp",
        "sync",
        SYNC_SCRIPT,
        "tcp",
        signal.SIGTERM,
        grace=CHILD_GRACE,
        on_sigterm=True,
        expect=(("go", "served"), ("stall", "closed")),
        marker=("out", "stopped serving"),
    ),
    Program(
        "sync-SIGTERM-shutdown-unix",
        "sync",
        SYNC_SCRIPT,
        "unix",
        signal.SIGTERM,
        grace=CHILD_GRACE,
        on_sigterm=True,
        expect=(("go", "served"), ("stall", "closed")),
        marker=("out", "stopped serving"),
    ),
]


@attrs.frozen
class Child:
    """A server program running in a subprocess."""

    process: Spawned
    stdout: _Output
    stderr: _Output

    def send_signal(self, signum: signal.Signals) -> None:
        self.process.popen.send_signal(signum)

    async def wait(self) -> int:
        return await self.process.wait()


@asynccontextmanager
async def start_child(argv: list[str]) -> AsyncIterator[tuple[Child, str]]:
    """Start a server program; yield it and what followed "listening on " in
    its first line. Afterwards whatever is left of it is killed.

    Not tests.test_examples.start_program: trio's open_process spawns in a
    trio worker thread, which then idles for 10 s and which the row's leak
    check counts. Here the child is started by :func:`.children.spawned`
    (no trio worker thread, its pipes trio FdStreams, its exit awaited on a
    pidfd)."""
    async with spawned(argv, env=_child_env()) as process:
        child = Child(process, _Output(process.stdout), _Output(process.stderr))
        with trio.fail_after(2 * CLIENT_DEADLINE):
            line = (await child.stdout.readline()).decode()
        if not line.startswith("listening on "):
            with trio.fail_after(CLIENT_DEADLINE):
                rest = (await child.stderr.read_rest()).decode()
            pytest.fail(f"the program printed {line!r} instead of its address; stderr:\n{rest}")
        yield child, line.removeprefix("listening on ").strip()


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "error"}


def _address(printed: str) -> Any:
    value = json.loads(printed)
    return tuple(value) if isinstance(value, list) else value


def _bind_address(transport: Transport, tmp: Path) -> Any:
    return ("127.0.0.1", 0) if transport == "tcp" else str(tmp / "srv.sock")


def _leftovers(out: str) -> list[str]:
    lines = [line for line in out.splitlines() if line.startswith("LEFTOVERS ")]
    assert lines, f"the program did not report its leftovers; stdout:\n{out}"
    leaks: list[str] = json.loads(lines[-1].removeprefix("LEFTOVERS "))
    return [f"in the server process: {leak}" for leak in leaks]


@pytest.mark.parametrize(
    "program", PROGRAMS, ids=lambda p: p.name if isinstance(p, Program) else None
)
async def test_signal_under_load(program: Program, row: Row, form: Form) -> None:
    """A signal to a server program with hundreds of requests in flight:
    every client sees its reply or a clean close, the program exits within
    its grace period (plus slack) and leaves nothing behind."""
    kinds = tuple(kind for kind, _ in program.expect)
    with short_temporary_directory(prefix="tss-lc-") as tmp_dir:
        tmp = Path(tmp_dir)
        bind = _bind_address(program.transport, tmp)
        argv = [sys.executable, "-c", program.header(bind) + program.source]
        async with start_child(argv) as (process, printed):
            stdout, stderr = process.stdout, process.stderr
            srv = Running(program.api, program.transport, None, _address(printed), tmp)
            outputs: dict[str, str] = {}
            bound = (program.grace or 0.0) + SLACK
            async with trio.open_nursery() as nursery:
                held = await hold(srv, nursery, **split(form.clients, *kinds))
                start = trio.current_time()
                process.send_signal(program.signum)
                with trio.fail_after(bound):
                    if program.marker is not None:
                        stream, text = program.marker
                        output = stdout if stream == "out" else stderr
                        seen: list[str] = []
                        while text not in (line := (await output.readline()).decode()):
                            assert line, f"exited before {text!r}: {''.join(seen)}"
                            seen.append(line)
                        outputs[stream] = "".join(seen) + line
                    held.released.set()
                    if program.twice:
                        await held.done["go"].wait()
                        process.send_signal(program.signum)
                    async with trio.open_nursery() as readers:

                        async def collect(name: str, output: Any) -> None:
                            rest = (await output.read_rest()).decode()
                            outputs[name] = outputs.get(name, "") + rest

                        readers.start_soon(collect, "out", stdout)
                        readers.start_soon(collect, "err", stderr)
                    status = await process.wait()
                took = trio.current_time() - start
        err = outputs["err"]
        row.add_leaks(_leftovers(outputs["out"]))
        socket_files = [p.name for p in tmp.iterdir()]
    assert held.lost == 0 and all(  # noqa: PT018 (one message for both)
        held.tallies[kind] == Tally(**{outcome: held.counts[kind]})
        for kind, outcome in program.expect
    ), f"{held}; the server's stderr:\n{err}"
    assert status == program.exit_status, f"exit status {status}; stderr:\n{err}"
    assert "Exception ignored" not in err, err
    assert "Warning" not in err, err
    if program.exit_status == 0:
        assert "Traceback" not in err, err
    assert not socket_files, f"left behind: {socket_files}"
    times = " twice" if program.twice else ""
    grace = "none" if program.grace is None else f"{program.grace:g} s"
    options = ", daemon" if program.daemon else ""
    options += ", SIGTERM handler calls shutdown()" if program.on_sigterm else ""
    row.record(
        load=f"{held.total} requests in flight ({program.transport}, subprocess)",
        faults=f"{program.signum.name}{times}; grace {grace}{options}",
        result=f"{held}; exit {status} after {took:.2f} s",
        lost=held.lost,
    )


#: SIGTERM -> shutdown() while serve_forever() is starting its loop. The
#: signal is raised from fileno(), which serve_forever() calls as it starts
#: (a public hook in that window), so the timing is exact; a service
#: manager's SIGTERM right after start lands there too (seen: a SIGTERM
#: sent as soon as the address is printed hangs the program the same way).
SYNC_SIGTERM_AT_START = (
    _PRELUDE
    + """
import trio_socketserver.sync as socketserver

class Server(socketserver.ThreadingTCPServer):
    armed = False

    def fileno(self):
        if self.armed:
            self.armed = False
            signal.raise_signal(signal.SIGTERM)
        return super().fileno()

with Server(("127.0.0.1", 0), socketserver.StreamRequestHandler) as server:
    signal.signal(signal.SIGTERM, lambda *args: server.shutdown())
    print("listening on", json.dumps(server.server_address), flush=True)
    server.armed = True
    server.serve_forever()  # shutdown() was asked for: returns at once
    print("stopped serving", flush=True)
report_leftovers()
"""
)

#: How long the startup-window program may take to exit: it has nothing to
#: wait for, so anything near this is a hang.
STARTUP_EXIT_BOUND = 5.0


async def test_sigterm_shutdown_while_serve_forever_starts(row: Row, form: Form) -> None:
    """A SIGTERM handler calling shutdown() runs in the serving thread;
    shutdown() promises not to wait there (it would wait for itself). Found
    by this suite: it used to hang when the signal landed before the loop
    had published its thread."""
    argv = [sys.executable, "-c", SYNC_SIGTERM_AT_START]
    async with start_child(argv) as (process, _):
        with trio.fail_after(STARTUP_EXIT_BOUND):
            out = (await process.stdout.read_rest()).decode()
            status = await process.wait()
    row.add_leaks(_leftovers(out))
    assert "stopped serving" in out
    assert status == 0
    row.record(
        load="none (serve_forever() starting)",
        faults="SIGTERM handler calls shutdown() during serve_forever()'s start",
        result="serve_forever() returned at once; exit 0",
        lost=0,
    )


#: The sync script, with Ctrl-C landing right after the server hands its
#: last request to a handler thread: the window the SIGINT rows hit
#: intermittently under load (inside WorkerPool.submit's thread.start(),
#: after the new thread has taken the request), made exact by raising the
#: signal from process_request once super() has handed the request off.
SYNC_SIGINT_AFTER_HAND_OFF = SYNC_SCRIPT.replace(
    "    daemon_threads = DAEMON\n",
    """    daemon_threads = DAEMON
    handed_off = 0

    def process_request(self, request, client_address):
        super().process_request(request, client_address)
        self.handed_off += 1
        if self.handed_off == INTERRUPT_AFTER:
            signal.raise_signal(signal.SIGINT)
""",
)


async def test_sigint_right_after_hand_off(row: Row, form: Form) -> None:
    """Ctrl-C lands just as the last of hundreds of requests is handed to
    its thread: that request is the thread's now; server_close() (no grace
    limit) waits for it, and it completes like the others."""
    n = form.clients
    program = Program(
        "sync-SIGINT-after-hand-off", "sync", SYNC_SIGINT_AFTER_HAND_OFF, "tcp", signal.SIGINT
    )
    with short_temporary_directory(prefix="tss-lc-") as tmp_dir:
        tmp = Path(tmp_dir)
        header = program.header(_bind_address("tcp", tmp)) + f"INTERRUPT_AFTER = {n}\n"
        async with start_child([sys.executable, "-c", header + program.source]) as (
            process,
            printed,
        ):
            srv = Running("sync", "tcp", None, _address(printed), tmp)
            async with trio.open_nursery() as nursery:
                held = await hold(srv, nursery, go=n)
                with trio.fail_after(SLACK):
                    while "stopped serving" not in (await process.stdout.readline()).decode():
                        pass
                    held.released.set()
                    out = (await process.stdout.read_rest()).decode()
                    err = (await process.stderr.read_rest()).decode()
                    status = await process.wait()
    row.add_leaks(_leftovers(out))
    assert held.tallies["go"] == Tally(served=n), f"{held}; the server's stderr:\n{err}"
    assert "Exception occurred" not in err, err
    assert status == _SIGINT_EXIT
    row.record(
        load=f"{n} requests in flight (tcp, subprocess)",
        faults="SIGINT right after the last hand-off to a handler thread; grace none",
        result=f"{held}; exit {status}",
        lost=held.lost,
    )
