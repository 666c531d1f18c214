"""The reliability suite's building blocks: servers of both APIs over all
four transports, clients that account for every request, and leak snapshots.

A scenario is an async test. Sync-adapter servers run ``serve_forever`` in a
thread of their own (with their own trio loop, as a blocking program would),
so one scenario body drives either API::

    async def test_x(api, transport, row, form):
        async with running(api, transport, ECHO) as srv:
            tally = await load(srv, form.clients)
            ...
            await srv.assert_serving()
        row.record(load=..., faults=..., lost=tally.lost)

What counts:

* **served**: the client got its full reply.
* **closed**: the server closed (EOF or reset) the connection before the
  reply: acceptable only where a scenario says so (a deadline expired, a
  handler failed), because the client learns at once.
* **lost**: neither within the deadline: the request hangs. Always a defect.
* **refused**: never accepted (connect failed): the kernel's backpressure,
  not a lost request. Datagrams have no such signal, see :func:`datagram`.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import trio

import trio_socketserver as ts
import trio_socketserver.sync as sync
from trio_socketserver._readiness import DISPATCHER_NAME

from ..short_paths import short_temporary_directory
from ..sync_helpers import child_states

API = Literal["async", "sync"]
Transport = Literal["tcp", "udp", "unix", "unixdgram"]
APIS: tuple[API, ...] = ("async", "sync")
TRANSPORTS: tuple[Transport, ...] = ("tcp", "udp", "unix", "unixdgram")
STREAMS: tuple[Transport, ...] = ("tcp", "unix")
DATAGRAMS: tuple[Transport, ...] = ("udp", "unixdgram")

T = TypeVar("T")

#: How long any single client operation may wait before its request counts
#: as lost. Generous: on a loaded 2-core CI machine a healthy reply takes
#: milliseconds; only a hang reaches this.
CLIENT_DEADLINE = 15.0


# --- The scale of a run -------------------------------------------------------


@attrs.frozen
class Form:
    """How hard a run pushes. ``short`` runs in CI on every change (about a
    minute for the whole suite); ``long`` is for a release or a suspicion."""

    name: str
    #: Well-behaved requests held in flight at once by load scenarios.
    clients: int
    #: Misbehaving clients a fault scenario opens at once.
    faults: int
    #: Connections a soak makes one after another.
    soak: int
    #: Examples a hypothesis property runs.
    examples: int
    #: File descriptors the test process may hold at once: clients, faults
    #: and the server's side of each, with room to spare (measured: the whole
    #: short form passes at 1,024, Linux's usual soft limit; the long form's
    #: Unix load rows fail at 1,024 and pass at 1,536; the whole long form
    #: passes at 2,048).
    fds: int


SHORT = Form("short", clients=100, faults=50, soak=2_000, examples=25, fds=1024)
LONG = Form("long", clients=500, faults=300, soak=30_000, examples=300, fds=2048)
FORMS = {form.name: form for form in (SHORT, LONG)}


# --- Handlers: one behaviour, both APIs ---------------------------------------


@attrs.frozen
class Handlers:
    """The same behaviour as an async and a sync handler class, for stream
    and datagram transports."""

    async_stream: Any
    async_datagram: Any
    sync_stream: Any
    sync_datagram: Any

    def pick(self, api: API, transport: Transport) -> Any:
        stream = transport in STREAMS
        if api == "async":
            return self.async_stream if stream else self.async_datagram
        return self.sync_stream if stream else self.sync_datagram


class AsyncLineEcho(ts.StreamRequestHandler):
    """Echo each line until EOF."""

    timeout = CLIENT_DEADLINE

    async def handle(self) -> None:
        async for line in self.rfile:
            await self.wfile.write(line)


class AsyncDatagramEcho(ts.DatagramRequestHandler):
    async def handle(self) -> None:
        self.wfile.write(self.rfile.read())


class SyncLineEcho(sync.StreamRequestHandler):
    timeout = CLIENT_DEADLINE

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class SyncDatagramEcho(sync.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read())


#: The well-behaved service every scenario checks before and after its faults.
ECHO = Handlers(AsyncLineEcho, AsyncDatagramEcho, SyncLineEcho, SyncDatagramEcho)


# --- Servers ------------------------------------------------------------------

_ASYNC_CLASSES: dict[tuple[Transport, bool], Any] = {
    ("tcp", False): ts.TCPServer,
    ("udp", False): ts.UDPServer,
    ("unix", False): ts.UnixStreamServer,
    ("unixdgram", False): ts.UnixDatagramServer,
    ("tcp", True): ts.ConcurrentTCPServer,
    ("udp", True): ts.ConcurrentUDPServer,
    ("unix", True): ts.ConcurrentUnixStreamServer,
    ("unixdgram", True): ts.ConcurrentUnixDatagramServer,
}
_SYNC_CLASSES: dict[tuple[Transport, bool], Any] = {
    ("tcp", False): sync.TCPServer,
    ("udp", False): sync.UDPServer,
    ("unix", False): sync.UnixStreamServer,
    ("unixdgram", False): sync.UnixDatagramServer,
    ("tcp", True): sync.ThreadingTCPServer,
    ("udp", True): sync.ThreadingUDPServer,
    ("unix", True): sync.ThreadingUnixStreamServer,
    ("unixdgram", True): sync.ThreadingUnixDatagramServer,
}


def server_class(
    api: API,
    transport: Transport,
    *,
    concurrent: bool = True,
    cap: int | None = None,
    daemon: bool = False,
    grace: float | None = 30.0,
    base: type[Any] | None = None,
    **attributes: Any,
) -> type[Any]:
    """A server class for ``api`` and ``transport`` with the generic knobs
    mapped onto each API's own names: ``cap`` is ``max_concurrent_requests``
    (async) or ``max_threads`` (sync), ``daemon`` is ``daemon_requests`` or
    ``daemon_threads``. ``base`` (a mixin class) goes first in the MRO, so a
    scenario can override hooks.

    The servers listen with the system's largest backlog unless a scenario
    sets ``request_queue_size``: with the stdlib's default of 5, a burst of
    100 simultaneous TCP connects leaves some waiting 15 s and more for the
    kernel to retransmit a dropped handshake (measured here: 24 of 100 did),
    which tests the kernel's timers, not the server. The backlog scenarios
    set it small on purpose."""
    table = _ASYNC_CLASSES if api == "async" else _SYNC_CLASSES
    cls = table[transport, concurrent]
    knobs: dict[str, Any] = {
        "grace_period": grace,
        "allow_reuse_address": True,
        "request_queue_size": socket.SOMAXCONN,
    }
    if concurrent:
        if api == "async":
            knobs.update(max_concurrent_requests=cap, daemon_requests=daemon)
        else:
            knobs.update(max_threads=cap, daemon_threads=daemon)
    knobs.update(attributes)
    bases = (base, cls) if base is not None else (cls,)
    return type(f"{cls.__name__}UnderTest", bases, knobs)


@attrs.define(eq=False)
class Running:
    """A server being served, and how to reach it."""

    api: API
    transport: Transport
    server: Any
    address: Any
    #: Where Unix datagram clients bind their own sockets.
    client_dir: Path
    stopped: bool = False

    @property
    def stream(self) -> bool:
        return self.transport in STREAMS

    async def shutdown(self, **grace_period: float | None) -> None:
        """Ask for shutdown (from another thread, for a sync server) and wait
        until ``serve_forever`` has returned. ``grace_period=``, if given,
        overrides the server's for this shutdown (for a sync server, whose
        ``shutdown()`` takes no arguments, by setting the attribute that
        ``server_close()`` reads)."""
        self.stopped = True
        if self.api == "async":
            await self.server.shutdown(**grace_period)
        else:
            if "grace_period" in grace_period:
                self.server.grace_period = grace_period["grace_period"]
            await in_thread(self.server.shutdown)

    async def assert_serving(self, n: int = 3) -> None:
        """The server still answers well-behaved requests."""
        for i in range(n):
            payload = b"probe %d\n" % i
            outcome, reply = await request(self, payload)
            assert outcome == "served", f"server no longer serving: {outcome} ({reply!r})"
            assert reply == payload


@asynccontextmanager
async def running(
    api: API,
    transport: Transport,
    handlers: Handlers | type[Any],
    *,
    server_cls: type[Any] | None = None,
    **knobs: Any,
) -> AsyncIterator[Running]:
    """Serve ``handlers`` (or one handler class) until the block ends; then
    shut down (if the block did not), close, and check that the server left
    no socket file and, for the async API, no task behind."""
    cls = server_cls if server_cls is not None else server_class(api, transport, **knobs)
    handler = handlers.pick(api, transport) if isinstance(handlers, Handlers) else handlers
    with short_temporary_directory(prefix="tss-rel-") as tmp:
        tmp_dir = Path(tmp)
        client_dir = tmp_dir / "clients"
        client_dir.mkdir()
        bind: Any = ("127.0.0.1", 0) if transport in ("tcp", "udp") else str(tmp_dir / "srv.sock")
        if api == "async":
            tasks_before = len(live_tasks())
            server = cls(bind, handler)
            async with server, trio.open_nursery() as nursery:
                await nursery.start(server.serve_forever)
                srv = Running(api, transport, server, server.server_address, client_dir)
                yield srv
                if not srv.stopped:
                    await srv.shutdown()
            assert len(live_tasks()) <= tasks_before, "a task outlived the server"
        else:
            server = cls(bind, handler)
            thread = threading.Thread(
                target=server.serve_forever, name="serve_forever", daemon=True
            )
            thread.start()
            srv = Running(api, transport, server, server.server_address, client_dir)
            try:
                yield srv
            finally:
                if not srv.stopped:
                    await srv.shutdown()
                await in_thread(thread.join, CLIENT_DEADLINE)
                alive = thread.is_alive()
                await in_thread(server.server_close)
            assert not alive, "serve_forever did not return after shutdown()"
        assert_nothing_left(tmp_dir)


def assert_nothing_left(tmp_dir: Path) -> None:
    """A server's temporary directory (as :func:`running` lays it out) holds
    no socket file of the server's, and its ``clients`` folder no client's."""
    leftover = [p.name for p in tmp_dir.iterdir() if p.name != "clients"]
    assert not leftover, f"socket files left behind: {leftover}"
    assert not list((tmp_dir / "clients").iterdir()), "a client socket file was left behind"


# --- Clients ------------------------------------------------------------------

Outcome = Literal["served", "closed", "lost", "refused"]


@attrs.define
class Tally:
    """Outcomes of many requests."""

    served: int = 0
    closed: int = 0
    lost: int = 0
    refused: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def total(self) -> int:
        return self.served + self.closed + self.lost + self.refused

    def __str__(self) -> str:
        parts = [f"{self.served} served"]
        parts += [
            f"{n} {k}"
            for k, n in (("closed", self.closed), ("lost", self.lost), ("refused", self.refused))
            if n
        ]
        return ", ".join(parts)


async def connect(srv: Running, *, source: str | None = None) -> trio.socket.SocketType:
    """A connected client socket (stream) or a bound one (datagram).
    ``source``: a local IP address to bind a TCP or UDP client to first."""
    if srv.transport == "unix":
        return await _connect_unix_stream(srv.address)
    kind = socket.SOCK_STREAM if srv.stream else socket.SOCK_DGRAM
    if srv.transport == "unixdgram":
        fd, path = tempfile.mkstemp(dir=srv.client_dir, suffix=".sock")
        os.close(fd)
        os.unlink(path)
        sock = _bound(socket.AF_UNIX, kind, path)
    elif source is not None:
        sock = _bound(socket.AF_INET, kind, (source, 0))
    else:
        sock = trio.socket.socket(socket.AF_INET, kind)
    try:
        await sock.connect(srv.address)
    except BaseException:
        close_client(sock)
        raise
    return sock


def _bound(family: int, kind: int, address: Any) -> trio.socket.SocketType:
    """A trio socket bound to ``address`` by the stdlib socket: trio binds
    Unix paths in a worker thread, which the leak check would see."""
    plain = socket.socket(family, kind)
    try:
        plain.bind(address)
    except BaseException:
        plain.close()
        raise
    return trio.socket.from_stdlib_socket(plain)


async def try_connect(
    srv: Running, deadline: float = CLIENT_DEADLINE, *, source: str | None = None
) -> trio.socket.SocketType | None:
    """:func:`connect` within ``deadline``; None if refused (the connect
    failed or did not finish in time)."""
    try:
        with trio.fail_after(deadline):
            return await connect(srv, source=source)
    except (OSError, trio.TooSlowError):
        return None


async def _connect_unix_stream(path: str) -> trio.socket.SocketType:
    """Connect as a blocking client does. When a Unix listener's backlog is
    full, a non-blocking connect() fails with EAGAIN (connect(2)) where a
    blocking one waits for room; trio's connect treats that EAGAIN as "in
    progress" and returns an unconnected socket. So connect blocking, in a
    thread, bounded by SO_SNDTIMEO (which bounds that wait)."""
    plain = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        plain.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(CLIENT_DEADLINE), 0)
        )
        await in_thread(plain.connect, path)
    except BaseException:
        plain.close()
        raise
    return trio.socket.from_stdlib_socket(plain)


def close_client(sock: socket.socket | trio.socket.SocketType, *, any_unix: bool = False) -> None:
    """Close a client socket, removing a Unix datagram client's file (with
    ``any_unix``, the file of any bound Unix socket, stream ones too)."""
    if sock.family == socket.AF_UNIX and (any_unix or sock.type == socket.SOCK_DGRAM):
        try:
            name = sock.getsockname()
        except OSError:
            name = None
        if name:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
    sock.close()


async def request(
    srv: Running, payload: bytes = b"ping\n", *, deadline: float = CLIENT_DEADLINE
) -> tuple[Outcome, bytes]:
    """One well-behaved request: send ``payload`` (a stream request is one
    line; the reply is expected to echo it), wait for the whole reply."""
    sock = await try_connect(srv, deadline)
    if sock is None:
        return "refused", b""
    try:
        return await receive_reply(srv, sock, len(payload), deadline=deadline, send=payload)
    finally:
        close_client(sock)


#: What becomes of a request once its client is connected.
Replied = Literal["served", "closed", "lost"]


async def receive_reply(
    srv: Running,
    sock: trio.socket.SocketType,
    size: int,
    *,
    deadline: float = CLIENT_DEADLINE,
    send: bytes | None = None,
    on_sent: Callable[[], object] | None = None,
    gone: tuple[int, ...] = (errno.ECONNRESET, errno.EPIPE, errno.ECONNREFUSED),
) -> tuple[Replied, bytes]:
    """Send ``send`` (if given; then call ``on_sent``, if given) on the
    connected ``sock``, then wait, at most ``deadline`` for both, for a reply
    of ``size`` bytes (stream) or one datagram: "closed" if the server closed
    the connection before the whole reply (EOF, or an ``OSError`` whose errno
    is in ``gone``; any other is raised), "lost" if the deadline passed
    first."""
    with trio.move_on_after(deadline):
        try:
            if send is not None:
                await sock.send(send)
                if on_sent is not None:
                    on_sent()
            if not srv.stream:
                return "served", await sock.recv(65536)
            reply = bytearray()
            while len(reply) < size:
                chunk = await sock.recv(65536)
                if not chunk:
                    return "closed", bytes(reply)
                reply += chunk
            return "served", bytes(reply)
        except OSError as exc:
            if exc.errno in gone:
                return "closed", b""
            raise
    return "lost", b""


async def checked_request(srv: Running, payload: bytes) -> Outcome:
    """:func:`request`, whose reply, if served, must echo ``payload``."""
    outcome, reply = await request(srv, payload)
    if outcome == "served" and reply != payload:
        raise AssertionError(f"wrong reply {reply!r} to {payload!r}")
    return outcome


#: UDP requests a load keeps in flight at most. A UDP socket's default
#: receive buffer (212,992 bytes here) holds about 250 small datagrams; past
#: that the kernel drops them before any server sees them (RcvbufErrors in
#: /proc/net/snmp rose by 486 when the long form sent 500 at once). That is
#: not a request the server lost, and a client cannot tell it from one, so
#: loads stay below it. Unix datagram senders wait for room instead.
UDP_IN_FLIGHT = 100


async def load(
    srv: Running, n: int, *, payload: bytes = b"load %d\n", limit: int | None = None
) -> Tally:
    """``n`` well-behaved requests at once (UDP: at most UDP_IN_FLIGHT at a
    time; any transport: at most ``limit``, if given); every reply checked."""
    tally = Tally()
    if limit is None:
        limit = UDP_IN_FLIGHT if srv.transport == "udp" else n
    limiter = trio.CapacityLimiter(max(limit, 1))

    async def one(i: int) -> None:
        data = payload % i if b"%d" in payload else payload
        async with limiter:
            tally.add(await checked_request(srv, data))

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return tally


# --- Threads ------------------------------------------------------------------


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in a fresh thread that ends with it. (trio's own
    ``to_thread`` keeps idle workers cached for seconds, which a leak check
    could not tell from ours.) Not cancellable: the call runs to its end."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn(*args))
        except BaseException as exc:
            error.append(exc)
        finally:
            token.run_sync_soon(done.set)

    thread = threading.Thread(target=run, name=f"in_thread:{getattr(fn, '__name__', fn)}")
    thread.start()
    with trio.CancelScope(shield=True):
        await done.wait()
    thread.join()
    if error:
        raise error[0]
    return result[0]


# --- Leaks --------------------------------------------------------------------


def live_tasks() -> list[trio.lowlevel.Task]:
    """Every task of the current trio run, except the readiness poller's
    dispatcher, which belongs to the run (started by the first connection
    that waits, it lives until the run ends), not to any server."""
    found: list[trio.lowlevel.Task] = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        if task.name != DISPATCHER_NAME:
            found.append(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


def _open_fds() -> dict[int, str]:
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # listdir's own descriptor, closed again
    return fds


@attrs.frozen
class Snapshot:
    """What this process holds: descriptors, threads, children."""

    fds: dict[int, str]
    threads: frozenset[threading.Thread]
    children: frozenset[int]
    zombies: frozenset[int]

    @classmethod
    def take(cls) -> Snapshot:
        children = child_states()
        return cls(
            _open_fds(),
            frozenset(threading.enumerate()),
            frozenset(pid for pid, state in children.items() if state != "Z"),
            frozenset(pid for pid, state in children.items() if state == "Z"),
        )

    def leaks_since(self, before: Snapshot) -> list[str]:
        """What is held now that was not held ``before``, as descriptions."""
        leaks = [f"fd {fd} ({what})" for fd, what in self.fds.items() if before.fds.get(fd) != what]
        leaks += [f"thread {t.name!r}" for t in self.threads - before.threads if t.is_alive()]
        leaks += [f"child process {pid}" for pid in self.children - before.children]
        leaks += [f"unreaped child {pid}" for pid in self.zombies - before.zombies]
        return leaks


@contextmanager
def rlimit_nofile(soft: int) -> Iterator[None]:
    """Lower this process's soft RLIMIT_NOFILE for the block."""
    import resource

    old_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (old_soft, hard))
