"""Random lifecycle sequences: a hypothesis state machine that creates,
binds, activates, serves, shuts down and closes servers of both APIs over
all four transports, in random orders, from random threads and tasks, and
checks the documented state after every step.

What each step may expect is what the APIs document (module docstring of
``trio_socketserver._server``, docs/design.rst "The three shutdown phases",
docs/sync.rst "Shutdown"), written down as a small model (:class:`Subject`):

* ``shutdown()`` while serving returns once ``serve_forever`` has returned;
  while not serving it returns at once, and the next ``serve_forever``
  returns at once (the shutdown is *pending*); from inside a handler it
  starts the shutdown and returns.
* ``server_close()`` is idempotent; while serving it shuts down first (sync:
  waits for ``serve_forever``; async: only starts it); it closes the socket
  and removes the Unix socket file. A connection still in the backlog is
  then refused (the client learns at once); a datagram still queued has no
  such signal and is abandoned by its client.
* A closed server refuses ``serve_forever``/``handle_request`` with
  ``RuntimeError``; so does a second ``serve_forever`` while one runs, and
  (async) a server that is not bound and activated.
* Requests sent while serving are answered; requests sent while not serving
  wait in the kernel and are answered by the next ``serve_forever`` or
  ``handle_request`` (one each, oldest first).
* Requests in flight when shutdown begins complete (the grace period), and
  async ``shutdown()``, sync ``server_close()`` and async ``serve_forever``
  return only after them.

Hosting. Async servers must outlive a step, so they live in a trio loop in a
background thread (:class:`Host`), driven with ``trio.from_thread.run``;
every client runs there too. Sync servers run ``serve_forever`` in their own
thread, as a blocking program does. The machine itself runs in a worker
thread, so that a call it makes directly (a sync ``shutdown()`` "from the
test thread") is watched by the pytest thread: a step that has not returned
after :data:`WATCHDOG` seconds fails the test as a deadlock. Every other
blocking call runs in a fresh thread joined with :data:`STEP_DEADLINE`, and
every call into trio runs under ``trio.fail_after``.

Reproducibility. The short form (CI) runs ``derandomize=True``: the same
sequences on every run, so a red CI reproduces with the same command and is
never a lucky seed. The long form draws new sequences on every run, so it
explores beyond the CI set; a failure prints hypothesis's seed. Neither
writes a ``.hypothesis`` database into the checkout (``database=None``).
``deadline=None``: a step's duration is bounded by this file's own deadlines
(which fail as deadlocks), not by hypothesis's per-example timing, which a
loaded CI machine would trip.
"""

from __future__ import annotations

import collections
import functools
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import attrs
import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import trio_socketserver as ts
import trio_socketserver.sync as sync

from ..short_paths import short_temporary_directory
from .harness import (
    API,
    APIS,
    CLIENT_DEADLINE,
    STREAMS,
    TRANSPORTS,
    Form,
    Handlers,
    Running,
    Snapshot,
    Transport,
    assert_nothing_left,
    close_client,
    connect,
    in_thread,
    live_tasks,
    receive_reply,
    request,
    server_class,
)
from .report import Row

T = TypeVar("T")

#: The most any single blocking call of a step may take. Healthy calls take
#: milliseconds; only a deadlock reaches this.
STEP_DEADLINE = 20.0
#: The most a whole step may take before the pytest thread calls it a
#: deadlock (a step makes a few bounded calls one after another).
WATCHDOG = 4 * STEP_DEADLINE
#: How long a request sent while the server is not serving waits for its
#: reply: longer than any sequence lasts, so that it never times out on its
#: own; the sequence resolves it (served, refused at close, or abandoned).
WAITING_DEADLINE = 600.0
#: How long a request sent while serving may wait for its reply before it
#: counts as lost (healthy: milliseconds). Shorter than the harness's
#: CLIENT_DEADLINE because a failing sequence is replayed many times while
#: hypothesis shrinks it.
REPLY_DEADLINE = 10.0
#: Steps per sequence, by form.
STEPS = {"short": 60, "long": 100}
#: handle_request()'s timeout when no request is waiting, so that it times out.
IDLE_TIMEOUT = 0.05
#: Steps a closed server is still driven before it can only be replaced.
CLOSED_STEPS = 2
#: Requests waiting (sent while not serving) at most at once.
MAX_WAITING = 3

#: A request whose handler calls ``self.server.shutdown()`` before replying.
SHUTDOWN_LINE = b"shutdown\n"

Phase = Literal["new", "bound", "ready", "closed"]
Origin = Literal["test thread", "fresh thread", "trio task"]
ORIGINS: tuple[Origin, ...] = ("test thread", "fresh thread", "trio task")
Closing = Literal["server_close", "with", "with raising"]
CLOSINGS: tuple[Closing, ...] = ("server_close", "with", "with raising")
WaitOutcome = Literal["served", "closed", "lost", "abandoned"]


class Deadlock(AssertionError):
    """A step did not return within its deadline."""


class _Marker(Exception):
    """Raised inside a ``with server:`` block; must come out of it."""


# --- Handlers: echo, and shut the server down on request ----------------------


class AsyncStreamEcho(ts.StreamRequestHandler):
    timeout = CLIENT_DEADLINE

    async def handle(self) -> None:
        async for line in self.rfile:
            if line == SHUTDOWN_LINE:
                await self.server.shutdown()  # Rule 3: returns, does not wait
            await self.wfile.write(line)


class AsyncDatagramEcho(ts.DatagramRequestHandler):
    async def handle(self) -> None:
        data = self.rfile.read()
        if data == SHUTDOWN_LINE:
            await self.server.shutdown()
        self.wfile.write(data)


class SyncStreamEcho(sync.StreamRequestHandler):
    timeout = CLIENT_DEADLINE

    def handle(self) -> None:
        for line in self.rfile:
            if line == SHUTDOWN_LINE:
                self.server.shutdown()
            self.wfile.write(line)


class SyncDatagramEcho(sync.DatagramRequestHandler):
    def handle(self) -> None:
        data = self.rfile.read()
        if data == SHUTDOWN_LINE:
            self.server.shutdown()
        self.wfile.write(data)


LIFECYCLE = Handlers(AsyncStreamEcho, AsyncDatagramEcho, SyncStreamEcho, SyncDatagramEcho)


class AsyncCountsTimeouts:
    """Mixin: counts handle_timeout() calls."""

    timeouts = 0

    async def handle_timeout(self) -> None:
        self.timeouts += 1


class SyncCountsTimeouts:
    timeouts = 0

    def handle_timeout(self) -> None:
        self.timeouts += 1


# --- Bounded calls --------------------------------------------------------------


def bounded(fn: Callable[[], T], what: str, deadline: float = STEP_DEADLINE) -> T:
    """Call ``fn`` in a fresh thread; fail as a deadlock if it has not
    returned within ``deadline`` (the thread is a daemon: left behind, it
    cannot hold the test process)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, name=f"lifecycle:{what}", daemon=True)
    thread.start()
    thread.join(deadline)
    if thread.is_alive():
        raise Deadlock(f"{what} did not return within {deadline:g} s")
    if error:
        raise error[0]
    return result[0]


def wait_event(event: threading.Event, what: str, deadline: float = STEP_DEADLINE) -> None:
    if not event.wait(deadline):
        raise Deadlock(f"{what} did not happen within {deadline:g} s")


def in_own_trio_run(fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` called from a task of a trio run of its own (a blocking call
    made by a trio program in another thread)."""

    def run() -> T:
        async def task() -> T:
            return fn()

        return trio.run(task)

    return run


class Host:
    """A trio loop in a background thread: hosts async servers, their
    ``serve_forever`` tasks, and every client."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self.token: trio.lowlevel.TrioToken | None = None
        self.nursery: trio.Nursery | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="lifecycle-host", daemon=True)
        self._thread.start()
        wait_event(self._ready, "the host loop starting")
        self.baseline_tasks = self.call_sync(lambda: len(live_tasks()))

    def _main(self) -> None:
        try:
            trio.run(self._run)
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    async def _run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()  # clients still waiting, if a step failed

    def call(self, afn: Callable[[], Awaitable[T]], deadline: float = STEP_DEADLINE) -> T:
        """Run ``afn`` in the host loop and return its result."""

        async def run() -> T:
            with trio.fail_after(deadline):
                return await afn()

        return trio.from_thread.run(run, trio_token=self.token)

    def call_sync(self, fn: Callable[[], T]) -> T:
        return trio.from_thread.run_sync(fn, trio_token=self.token)

    def spawn(self, afn: Callable[[], Awaitable[object]]) -> None:
        """Start ``afn`` as a task of the host's nursery."""

        def start() -> None:
            assert self.nursery is not None
            self.nursery.start_soon(afn)

        self.call_sync(start)

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            stop = self._stop
            self.call_sync(stop.set)
        self._thread.join(STEP_DEADLINE)
        assert not self._thread.is_alive(), "the host loop did not end"
        if self.error is not None:
            raise self.error


# --- Clients ---------------------------------------------------------------------


@attrs.define(eq=False)
class Waiting:
    """A request sent while the server was not serving: it waits in the
    kernel (the listen backlog, or the socket's receive queue)."""

    payload: bytes
    sent: threading.Event = attrs.Factory(threading.Event)
    done: threading.Event = attrs.Factory(threading.Event)
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    outcome: WaitOutcome | None = None
    reply: bytes = b""
    error: BaseException | None = None

    async def run(self, srv: Running) -> None:
        try:
            with self.scope:
                sock = await connect(srv)
                try:
                    await sock.send(self.payload)
                    self.sent.set()
                    self.outcome, self.reply = await receive_reply(
                        srv, sock, len(self.payload), deadline=WAITING_DEADLINE
                    )
                finally:
                    close_client(sock)
            if self.scope.cancelled_caught:
                self.outcome = "abandoned"
        except Exception as exc:
            self.error = exc
        finally:
            self.sent.set()
            self.done.set()

    def result(self, what: str) -> WaitOutcome:
        wait_event(self.done, what)
        if self.error is not None:
            raise AssertionError(f"{what}: the client failed: {self.error!r}") from self.error
        assert self.outcome is not None
        return self.outcome


@attrs.define(eq=False)
class Session:
    """A request in flight: the client sent a first line and got its echo
    (so a handler is running, waiting for the next line), and holds the
    connection until released; then it sends a last line and expects its
    echo, even if a shutdown began meanwhile (phase 2, the grace period)."""

    opened: threading.Event = attrs.Factory(threading.Event)
    release: trio.Event = attrs.Factory(trio.Event)
    #: Set just before the last line is sent: the handler cannot have
    #: finished before this.
    last_sent: threading.Event = attrs.Factory(threading.Event)
    done: threading.Event = attrs.Factory(threading.Event)
    first: tuple[WaitOutcome, bytes] | None = None
    last: tuple[WaitOutcome, bytes] | None = None
    error: BaseException | None = None

    async def run(self, srv: Running) -> None:
        try:
            sock = await connect(srv)
            try:
                await sock.send(b"first\n")
                self.first = await receive_reply(srv, sock, 6, deadline=REPLY_DEADLINE)
                self.opened.set()
                await self.release.wait()
                self.last_sent.set()
                await sock.send(b"last\n")
                self.last = await receive_reply(srv, sock, 5, deadline=REPLY_DEADLINE)
            finally:
                close_client(sock)
        except Exception as exc:
            self.error = exc
        finally:
            self.opened.set()
            self.done.set()


# --- The model -------------------------------------------------------------------


@attrs.define(eq=False)
class Serving:
    """One serve_forever() call in progress (or just returned)."""

    done: threading.Event = attrs.Factory(threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None  # sync servers
    #: Called where serve_forever() has just returned (in its thread or task).
    on_return: Callable[[], None] | None = None

    def returned(self) -> None:
        if self.on_return is not None:
            self.on_return()
        self.done.set()


@attrs.define(eq=False)
class Subject:
    """A server under test and what the documentation says its state is."""

    api: API
    transport: Transport
    concurrent: bool
    server: Any
    srv: Running
    tmp: tempfile.TemporaryDirectory[str]
    #: The socket file (Unix transports).
    path: Path | None
    phase: Phase
    serving: Serving | None = None
    #: shutdown() calls made while not serving (any: the next
    #: serve_forever() returns at once).
    pending_shutdown: int = 0
    waiting: list[Waiting] = attrs.Factory(list)
    sessions: list[Session] = attrs.Factory(list)
    timeouts: int = 0
    #: Steps taken since the server was closed.
    closed_for: int = 0

    @property
    def stream(self) -> bool:
        return self.transport in STREAMS

    def describe(self) -> str:
        kind = "concurrent" if self.concurrent else "sequential"
        return f"{self.api} {kind} {self.transport} server"


@attrs.define
class Tallies:
    """What all sequences of one test did, for the table."""

    examples: int = 0
    steps: int = 0
    servers: int = 0
    shutdowns: int = 0
    closes: int = 0
    served: int = 0
    refused_at_close: int = 0
    abandoned: int = 0
    lost: int = 0
    rejected: int = 0
    timeouts: int = 0
    #: Steps run, by rule.
    rules: collections.Counter[str] = attrs.Factory(collections.Counter)


@attrs.define
class Watch:
    """The step running now, for the pytest thread's watchdog."""

    step: str | None = None
    since: float = 0.0

    def overdue(self) -> str | None:
        step, since = self.step, self.since
        if step is not None and time.monotonic() - since > WATCHDOG:
            return step
        return None


def step(fn: Callable[..., None]) -> Callable[..., None]:
    """Count the step and show it to the watchdog."""

    @functools.wraps(fn)
    def wrapper(self: LifecycleMachine, **kwargs: Any) -> None:
        self.watch.step, self.watch.since = f"{fn.__name__}({kwargs})", time.monotonic()
        self.tallies.steps += 1
        self.tallies.rules[fn.__name__] += 1
        try:
            fn(self, **kwargs)
        finally:
            self.watch.step = None
        if self.subject is not None and self.subject.phase == "closed":
            self.subject.closed_for += 1

    return wrapper


class LifecycleMachine(RuleBasedStateMachine):
    """One server at a time (created, driven, retired), many per sequence."""

    tallies: ClassVar[Tallies]
    watch: ClassVar[Watch]

    def __init__(self) -> None:
        super().__init__()
        self.before = Snapshot.take()
        self.host = Host()
        self.subject: Subject | None = None
        self._threads: list[threading.Thread] = []
        self.tallies.examples += 1

    # -- preconditions ---------------------------------------------------------------

    def _live(self) -> bool:
        """There is a server to drive. A closed one is driven for a few
        steps (closing again, serving refused), then only replaced, so that
        sequences spend their steps on servers that serve."""
        s = self.subject
        return s is not None and (s.phase != "closed" or s.closed_for < CLOSED_STEPS)

    def _has(self, *phases: Phase) -> bool:
        s = self.subject
        return self._live() and s is not None and s.phase in phases

    def _idle(self, *phases: Phase) -> bool:
        return self._has(*phases) and self.subject is not None and self.subject.serving is None

    def _is_serving(self) -> bool:
        """Serving, with no request held in flight (so that stopping it does
        not wait for the machine itself)."""
        s = self.subject
        return s is not None and s.serving is not None and not s.sessions

    def _unheld(self) -> bool:
        s = self.subject
        return self._live() and s is not None and not s.sessions

    # -- creating, binding, activating -------------------------------------------------

    @precondition(lambda self: self.subject is None or self.subject.phase == "closed")
    @rule(
        api=st.sampled_from(APIS),
        transport=st.sampled_from(TRANSPORTS),
        concurrent=st.booleans(),
        bind_and_activate=st.booleans(),
        serve=st.booleans(),
    )
    @step
    def create(
        self, api: API, transport: Transport, concurrent: bool, bind_and_activate: bool, serve: bool
    ) -> None:
        """A new server (replacing a closed one), serving at once if ``serve``
        and ``bind_and_activate``."""
        if self.subject is not None:
            self._forget(self.subject)
        tmp = short_temporary_directory(prefix="tss-life-")
        client_dir = Path(tmp.name) / "clients"
        client_dir.mkdir()
        path = None if transport in ("tcp", "udp") else Path(tmp.name) / "srv.sock"
        address: Any = ("127.0.0.1", 0) if path is None else str(path)
        base = AsyncCountsTimeouts if api == "async" else SyncCountsTimeouts
        cls = server_class(api, transport, concurrent=concurrent, base=base)
        handler = LIFECYCLE.pick(api, transport)
        if api == "async":
            server = self.host.call_sync(lambda: cls(address, handler, bind_and_activate))
        else:
            server = cls(address, handler, bind_and_activate)
        srv = Running(api, transport, server, server.server_address, client_dir)
        phase: Phase = "ready" if bind_and_activate else "new"
        self.subject = Subject(api, transport, concurrent, server, srv, tmp, path, phase)
        self.tallies.servers += 1
        if bind_and_activate:
            self._check_bound()
            if serve:
                self._serve(0.5)

    def _check_bound(self) -> None:
        s = self._subject()
        s.srv.address = s.server.server_address
        if s.path is None:
            assert s.server.server_address[1] != 0, "server_address is not the bound port"
        else:
            assert s.path.exists(), "server_bind() did not create the socket file"

    @precondition(lambda self: self._has("new"))
    @rule()
    @step
    def server_bind(self) -> None:
        s = self._subject()
        self._on_loop(s, s.server.server_bind)
        s.phase = "bound"
        self._check_bound()

    @precondition(lambda self: self._has("bound"))
    @rule()
    @step
    def server_activate(self) -> None:
        s = self._subject()
        self._on_loop(s, s.server.server_activate)
        s.phase = "ready"

    def _call_api(self, s: Subject, method: str, what: str) -> None:
        """Call a blocking (sync) or async method: in the host loop for an
        async server, in a fresh thread for a sync one, bounded either way."""
        fn = getattr(s.server, method)
        if s.api == "async":
            self.host.call(fn)
        else:
            bounded(fn, what)

    def _on_loop(self, s: Subject, fn: Callable[[], T]) -> T:
        """Call a synchronous method where the API expects it: in the host
        loop for an async server, in this thread for a sync one."""
        return self.host.call_sync(fn) if s.api == "async" else fn()

    # -- serving ------------------------------------------------------------------------

    @precondition(lambda self: self._idle("ready"))
    @rule(poll_interval=st.sampled_from([0.5, 0.01]))
    @step
    def serve_forever(self, poll_interval: float) -> None:
        self._serve(poll_interval)

    def _serve(self, poll_interval: float) -> None:
        s = self._subject()
        s.serving = self._start_serving(s, poll_interval)
        if s.pending_shutdown:
            # Documented: the next serve_forever returns at once; requests
            # waiting in the kernel stay there.
            s.pending_shutdown = 0
            self._serve_returned(s, "serve_forever() after a pending shutdown()")
            assert all(not w.done.is_set() for w in s.waiting), "served despite the shutdown"
            return
        self._probe(s)
        for w in s.waiting:
            self._expect_served(w, "a request sent before serving")
        s.waiting.clear()

    def _start_serving(self, s: Subject, poll_interval: float, *, wait: bool = True) -> Serving:
        serving = Serving()
        server = s.server
        if s.api == "async":

            async def serve(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
                try:
                    await server.serve_forever(poll_interval, task_status=task_status)
                except Exception as exc:
                    serving.error = exc
                finally:
                    serving.returned()

            async def start() -> None:
                assert self.host.nursery is not None
                if wait:
                    await self.host.nursery.start(serve)
                else:
                    self.host.nursery.start_soon(serve)

            self.host.call(start)
        else:

            def run() -> None:
                try:
                    server.serve_forever(poll_interval)
                except BaseException as exc:
                    serving.error = exc
                finally:
                    serving.returned()

            serving.thread = threading.Thread(target=run, name="serve_forever", daemon=True)
            serving.thread.start()
        return serving

    def _serve_returned(self, s: Subject, what: str, *, already: bool = False) -> None:
        """serve_forever has returned (``already``: by the time the call that
        stopped it returned), without an error."""
        serving = s.serving
        assert serving is not None
        if already and s.api == "async":
            # The async serve task records its return in the same scheduling
            # step as serve_forever returns, before shutdown()'s waiter runs.
            assert serving.done.is_set(), f"{what} returned before serve_forever() did"
        wait_event(serving.done, f"serve_forever() returning after {what}")
        if serving.thread is not None:
            # The sync serve thread ends with the call; shutdown() waited for
            # the call itself, so the join is immediate.
            serving.thread.join(STEP_DEADLINE)
            assert not serving.thread.is_alive()
        assert serving.error is None, f"serve_forever() raised {serving.error!r}"
        s.serving = None

    def _probe(self, s: Subject, payload: bytes = b"probe\n") -> None:
        outcome, reply = self.host.call(lambda: request(s.srv, payload, deadline=REPLY_DEADLINE))
        assert (outcome, reply) == ("served", payload), f"not served while serving: {outcome}"
        self.tallies.served += 1

    def _expect_served(self, w: Waiting, what: str) -> None:
        outcome = w.result(what)
        assert (outcome, w.reply) == ("served", w.payload), f"{what}: {outcome} {w.reply!r}"
        self.tallies.served += 1

    @precondition(lambda self: self._serving_held())
    @rule(n=st.integers(1, 3), hold=st.booleans())
    @step
    def send_requests(self, n: int, hold: bool) -> None:
        """Requests sent while serving are answered; with ``hold``, one more
        is left in flight where the server can serve others meanwhile."""
        s = self._subject()
        if hold and self._can_hold():
            self._hold()

        async def many() -> list[tuple[str, bytes]]:
            results: list[tuple[str, bytes]] = []

            async def one(i: int) -> None:
                payload = b"request %d\n" % i
                results.append(await request(s.srv, payload, deadline=REPLY_DEADLINE))

            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(one, i)
            return results

        results = self.host.call(many)
        assert sorted(results) == [("served", b"request %d\n" % i) for i in range(n)], results
        self.tallies.served += n

    @precondition(lambda self: self._idle("ready") and len(self._subject().waiting) < MAX_WAITING)
    @rule()
    @step
    def send_while_not_serving(self) -> None:
        """A request the server cannot take yet: it waits in the kernel."""
        s = self._subject()
        w = Waiting(b"waiting %d\n" % len(s.waiting))
        srv = s.srv
        self.host.spawn(lambda: w.run(srv))
        wait_event(w.sent, "sending a request")
        if w.error is not None:
            raise AssertionError(f"could not send while not serving: {w.error!r}")
        s.waiting.append(w)

    @precondition(
        lambda self: self._serving_held() or self._has("closed") or self._has_unready_async()
    )
    @rule()
    @step
    def serve_forever_out_of_order(self) -> None:
        """serve_forever() where it must not serve: while serving, on a closed
        server, (async) on one not bound and activated."""
        s = self._subject()
        if s.phase == "closed" and s.api == "sync" and s.pending_shutdown and s.serving is None:
            # docs/sync.rst: the next serve_forever() returns immediately
            # after a shutdown() made while nothing was serving.
            bounded(s.server.serve_forever, "serve_forever() on a closed server")
            s.pending_shutdown = 0
            return
        if s.serving is not None:
            match = "already"
        elif s.phase == "closed":
            match = "closed"
        else:
            match = "bound and activated"
        with pytest.raises(RuntimeError, match=match):
            self._call_api(s, "serve_forever", "serve_forever() out of order")
        self.tallies.rejected += 1
        if s.serving is not None:
            self._probe(s)  # the running one is unaffected

    def _serving_held(self) -> bool:
        """Serving, with or without requests held in flight."""
        return self.subject is not None and self.subject.serving is not None

    def _quiet(self) -> bool:
        s = self._subject()
        return not s.waiting and not s.pending_shutdown

    def _has_unready_async(self) -> bool:
        s = self.subject
        return s is not None and s.api == "async" and s.phase in ("new", "bound")

    @precondition(lambda self: self._handle_request_allowed())
    @rule(
        timeout=st.sampled_from([IDLE_TIMEOUT, CLIENT_DEADLINE, None]),
        shutdown_inside=st.booleans(),
    )
    @step
    def handle_request(self, timeout: float | None, shutdown_inside: bool) -> None:
        s = self._subject()
        if s.waiting:
            target = s.waiting[0]  # the kernel's queues are first in, first out
        elif shutdown_inside:
            target = Waiting(SHUTDOWN_LINE)
            srv = s.srv
            self.host.spawn(lambda: target.run(srv))
            wait_event(target.sent, "sending the shutdown request")
        else:
            target = None
            timeout = IDLE_TIMEOUT  # nothing will come: it must time out
        s.server.timeout = timeout
        self._call_api(s, "handle_request", "handle_request()")
        if target is None:
            s.timeouts += 1
            self.tallies.timeouts += 1
        else:
            self._expect_served(target, "a request taken by handle_request()")
            if target.payload == SHUTDOWN_LINE:
                s.pending_shutdown += 1  # shutdown() while not serving
            else:
                s.waiting.pop(0)
        assert s.server.timeouts == s.timeouts, "handle_timeout() calls"
        assert all(not w.done.is_set() for w in s.waiting), "handle_request() took two requests"

    def _handle_request_allowed(self) -> bool:
        s = self.subject
        if s is None or s.serving is not None:
            return False
        return s.phase == "ready"

    # handle_request on a closed server is its own rule (simpler model).
    @precondition(lambda self: self._idle("closed"))
    @rule()
    @step
    def handle_request_closed(self) -> None:
        s = self._subject()
        s.server.timeout = IDLE_TIMEOUT
        with pytest.raises(RuntimeError, match="closed"):
            self._call_api(s, "handle_request", "handle_request() on a closed server")
        self.tallies.rejected += 1

    # -- shutting down ------------------------------------------------------------------

    @precondition(lambda self: self._unheld() and self._subject().pending_shutdown < 2)
    @rule(
        origin=st.sampled_from(ORIGINS),
        grace=st.sampled_from(["default", None, 0.0, 5.0]),
    )
    @step
    def shutdown(self, origin: Origin, grace: str | float | None) -> None:
        s = self._subject()
        self.tallies.shutdowns += 1
        was_serving = s.serving is not None
        self._call_shutdown(s, origin, grace)
        if was_serving:
            self._serve_returned(s, f"shutdown() from the {origin}", already=True)
        else:
            s.pending_shutdown += 1  # documented: may be called more than once

    def _call_shutdown(self, s: Subject, origin: Origin, grace: str | float | None) -> None:
        server = s.server
        what = f"shutdown() from the {origin}"
        if s.api == "async":
            kwargs: dict[str, Any] = {} if grace == "default" else {"grace_period": grace}

            async def shut() -> None:
                await server.shutdown(**kwargs)

            self._async_from(origin, shut, what)
        elif origin == "test thread":
            server.shutdown()  # watched by the pytest thread
        elif origin == "fresh thread":
            bounded(server.shutdown, what)
        else:
            bounded(in_own_trio_run(server.shutdown), what)

    def _async_from(self, origin: Origin, afn: Callable[[], Awaitable[None]], what: str) -> None:
        """Run ``afn`` in the host loop, called from ``origin``."""
        host = self.host
        if origin == "test thread":
            host.call(afn)
        elif origin == "fresh thread":
            bounded(lambda: host.call(afn), what)
        else:
            finished = threading.Event()
            error: list[BaseException] = []

            async def task() -> None:
                try:
                    with trio.fail_after(STEP_DEADLINE):
                        await afn()
                except Exception as exc:
                    error.append(exc)
                finally:
                    finished.set()

            host.spawn(task)
            wait_event(finished, what, 2 * STEP_DEADLINE)
            if error:
                raise error[0]

    @precondition(lambda self: self._is_serving())
    @rule(origin=st.sampled_from(ORIGINS))
    @step
    def restart(self, origin: Origin) -> None:
        """shutdown(), then serve_forever() again at once: shutdown() has
        returned only after serve_forever() did, so the new one serves
        (an early return would make it fail with "already running")."""
        s = self._subject()
        self.tallies.shutdowns += 1
        old = s.serving
        assert old is not None
        self._call_shutdown(s, origin, "default")
        s.serving = self._start_serving(s, 0.5)
        self._probe(s)
        wait_event(old.done, "the old serve_forever() returning")
        assert old.error is None, f"serve_forever() raised {old.error!r}"

    @precondition(lambda self: self._is_serving())
    @rule()
    @step
    def shutdown_inside_handler(self) -> None:
        """A handler calls shutdown(): it returns (no deadlock), the handler
        replies, and serve_forever returns."""
        s = self._subject()
        self.tallies.shutdowns += 1
        self._probe(s, SHUTDOWN_LINE)
        self._serve_returned(s, "shutdown() inside a handler")

    @precondition(lambda self: self._idle("ready") and self._quiet())
    @rule(origin=st.sampled_from(ORIGINS))
    @step
    def serve_and_shutdown_at_once(self, origin: Origin) -> None:
        """shutdown() racing with serve_forever() starting: whichever wins,
        serve_forever returns and no shutdown is left pending (design.rst:
        a shutdown that races with start-up is never lost).

        Only without a pending shutdown (which would end serve_forever before
        the racing call, leaving that one pending) and with no request
        waiting (which serve_forever may or may not take first)."""
        s = self._subject()
        self.tallies.shutdowns += 1
        s.serving = self._start_serving(s, 0.5, wait=False)
        self._call_shutdown(s, origin, "default")
        self._serve_returned(s, f"shutdown() from the {origin} racing start-up")
        s.pending_shutdown = 0
        # Not pending: a new serve_forever serves (the next steps check it).

    # -- requests in flight across a shutdown ------------------------------------------

    @precondition(lambda self: self._can_hold())
    @rule()
    @step
    def hold_request(self) -> None:
        """Open a request and keep it in flight (concurrent stream servers:
        a sequential one would serve nothing else meanwhile)."""
        self._hold()

    def _hold(self) -> None:
        s = self._subject()
        session = Session()
        srv = s.srv
        self.host.spawn(lambda: session.run(srv))
        wait_event(session.opened, "a held request's first reply")
        assert session.error is None, session.error
        assert session.first == ("served", b"first\n"), session.first
        s.sessions.append(session)

    def _can_hold(self) -> bool:
        s = self.subject
        return (
            s is not None
            and s.serving is not None
            and s.concurrent
            and s.stream
            and len(s.sessions) < 2
        )

    @precondition(lambda self: self._has_sessions())
    @rule(
        how=st.sampled_from(["shutdown", "server_close"]),
        origin=st.sampled_from(["fresh thread", "trio task"]),
    )
    @step
    def stop_while_requests_in_flight(self, how: str, origin: Origin) -> None:
        """shutdown() or server_close() while requests are in flight: they
        complete (the grace period is the default, 30 s), and the call returns
        only when the documentation says: async shutdown() and sync
        server_close() (``block_on_close``) after the handlers ended; async
        server_close() at once, serve_forever() after the handlers ended;
        sync shutdown() once serve_forever() returned, which does not wait
        for handler threads (as in the stdlib)."""
        s = self._subject()
        server = s.server
        serving = s.serving
        assert serving is not None
        sessions = s.sessions
        self.tallies.shutdowns += how == "shutdown"
        self.tallies.closes += how == "server_close"

        def in_flight() -> int:
            return sum(not x.last_sent.is_set() for x in sessions)

        at_return: list[int] = []
        at_serve_return: list[int] = []
        serving.on_return = lambda: at_serve_return.append(in_flight())
        returned = threading.Event()
        error: list[BaseException] = []

        def stop_sync() -> None:
            if how == "shutdown":
                server.shutdown()
            else:
                server.server_close()

        async def stop_async() -> None:
            if how == "shutdown":
                await server.shutdown()
            else:
                server.server_close()

        def finished() -> None:
            at_return.append(in_flight())
            returned.set()

        if s.api == "async":
            if origin == "fresh thread":
                self._background(lambda: self.host.call(stop_async), error, finished)
            else:

                async def task() -> None:
                    try:
                        await stop_async()
                    except Exception as exc:
                        error.append(exc)
                    finally:
                        finished()

                self.host.spawn(task)
            # Phase 2 has begun while the requests are in flight.
            self.host.call(server.wait_shutting_down)
            assert server.statistics().shutting_down
        elif origin == "fresh thread":
            self._background(stop_sync, error, finished)
        else:
            self._background(in_own_trio_run(stop_sync), error, finished)
        for session in sessions:
            self.host.call_sync(session.release.set)
        for session in sessions:
            wait_event(session.done, "a request in flight finishing during shutdown")
            assert session.error is None, session.error
            assert session.last == ("served", b"last\n"), f"in flight at shutdown: {session.last}"
            self.tallies.served += 1
        wait_event(returned, f"{how}() with requests in flight returning")
        if error:
            raise error[0]
        self._serve_returned(s, f"{how}() with requests in flight")
        if s.api == "async":
            # Handler tasks are serve_forever's own; a sync ThreadingMixIn's
            # serve_forever does not wait for handler threads (the stdlib's
            # neither): server_close() does.
            assert at_serve_return == [0], (
                f"{s.describe()}: serve_forever() returned with requests in flight"
            )
        if (how, s.api) in (("shutdown", "async"), ("server_close", "sync")):
            assert at_return == [0], f"{s.describe()}: {how}() returned with requests in flight"
        s.sessions = []
        if how == "server_close":
            assert server.fileno() == -1
            s.phase = "closed"
            if s.path is not None:
                assert not s.path.exists(), "server_close() left the socket file"

    def _has_sessions(self) -> bool:
        return self.subject is not None and bool(self.subject.sessions)

    def _background(
        self, fn: Callable[[], object], error: list[BaseException], finished: Callable[[], None]
    ) -> None:
        """Call ``fn`` in a fresh thread without waiting (the caller waits
        for ``finished``, bounded)."""

        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                error.append(exc)
            finally:
                finished()

        thread = threading.Thread(target=run, name="lifecycle:background", daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- closing -----------------------------------------------------------------------

    @precondition(lambda self: self._unheld())
    @rule(origin=st.sampled_from(ORIGINS), how=st.sampled_from(CLOSINGS))
    @step
    def server_close(self, origin: Origin, how: Closing) -> None:
        s = self._subject()
        self.tallies.closes += 1
        self._close(s, origin, how)

    def _close(self, s: Subject, origin: Origin, how: Closing) -> None:
        server = s.server
        what = f"{how} from the {origin}"
        was_serving = s.serving is not None
        if s.api == "async":

            async def close() -> None:
                if how == "server_close":
                    server.server_close()
                    return
                with pytest.raises(_Marker) if how == "with raising" else _nothing():
                    async with server as entered:
                        assert entered is server
                        if how == "with raising":
                            raise _Marker

            if origin == "test thread" and not was_serving and how == "server_close":
                server.server_close()  # outside trio: allowed while not serving
            else:
                self._async_from(origin, close, what)
            # Documented: while serving, server_close only starts the
            # shutdown. A stream server's socket is closed at once; a
            # datagram server's when serve_forever returns, since handlers
            # in their grace period reply through it.
            if not (was_serving and not s.stream):
                assert server.fileno() == -1, f"{what} left the socket open"
            if was_serving:
                self._serve_returned(s, what)
            assert server.fileno() == -1, f"{what} left the socket open"
        else:

            def close_sync() -> None:
                if how == "server_close":
                    server.server_close()
                    return
                with (
                    pytest.raises(_Marker) if how == "with raising" else _nothing(),
                    server as entered,
                ):
                    assert entered is server
                    if how == "with raising":
                        raise _Marker

            if origin == "test thread":
                close_sync()  # watched by the pytest thread
            elif origin == "fresh thread":
                bounded(close_sync, what)
            else:
                bounded(in_own_trio_run(close_sync), what)
            # Documented: shuts a running serve_forever down first.
            if was_serving:
                self._serve_returned(s, what, already=True)
            assert server.fileno() == -1, f"{what} left the socket open"
        s.phase = "closed"
        if s.path is not None:
            assert not s.path.exists(), f"{what} left the socket file"
        self._resolve_waiting_at_close(s)

    def _resolve_waiting_at_close(self, s: Subject) -> None:
        for w in s.waiting:
            if s.stream:
                # The listening socket closed with the connection in its
                # backlog: the kernel refuses it, the client learns at once.
                outcome = w.result("a connection in the backlog at close")
                assert outcome == "closed", f"a request waiting at close was {outcome}"
                self.tallies.refused_at_close += 1
            else:
                # A queued datagram dies with the socket, with no signal to
                # its sender: the client gives up (cancelled here).
                assert not w.done.is_set(), f"a datagram waiting at close: {w.outcome}"
                self.host.call_sync(w.scope.cancel)
                outcome = w.result("abandoning a datagram queued at close")
                assert outcome == "abandoned", outcome
                self.tallies.abandoned += 1
        s.waiting.clear()

    # -- retiring a server --------------------------------------------------------------

    @precondition(lambda self: self._has("closed"))
    @rule()
    @step
    def retire(self) -> None:
        """Forget a closed server (so that the sequence goes on with a new
        one); it left nothing behind."""
        self._forget(self._subject())

    def _forget(self, s: Subject) -> None:
        assert_nothing_left(Path(s.tmp.name))
        s.tmp.cleanup()
        tasks = self.host.call_sync(lambda: len(live_tasks()))
        assert tasks <= self.host.baseline_tasks, "a task outlived the server"
        self.subject = None

    def _subject(self) -> Subject:
        assert self.subject is not None
        return self.subject

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def socket_state_is_documented(self) -> None:
        s = self.subject
        if s is None:
            return
        fd = s.server.fileno()
        if s.phase == "closed":
            assert fd == -1, "a closed server's socket is open"
        else:
            assert fd >= 0, "an unclosed server's socket is closed"
        if s.path is not None:
            exists = s.path.exists()
            assert exists == (s.phase in ("bound", "ready")), f"socket file exists: {exists}"

    @invariant()
    def serving_state_is_documented(self) -> None:
        s = self.subject
        if s is None:
            return
        serving = s.serving
        if serving is not None:
            assert not serving.done.is_set(), f"serve_forever() returned: {serving.error!r}"
        if s.api == "async":
            stats = s.server.statistics()
            assert stats.serving == (serving is not None), stats
            assert not stats.shutting_down, stats

    @invariant()
    def waiting_requests_wait(self) -> None:
        """A request sent while not serving is neither answered nor dropped
        until the server serves or closes."""
        s = self.subject
        if s is None:
            return
        ended = [(w.payload, w.outcome, w.error) for w in s.waiting if w.done.is_set()]
        self.tallies.lost += sum(1 for _, outcome, _ in ended if outcome == "lost")
        assert not ended, f"a waiting request ended while nothing served: {ended}"

    def teardown(self) -> None:
        """Leave nothing: every server closed, every thread joined, and no
        descriptor, thread or child process more than before the sequence."""
        try:
            s = self.subject
            if s is not None:
                for session in s.sessions:
                    self.host.call_sync(session.release.set)
                    wait_event(session.done, "a held request finishing")
                s.sessions = []
                if s.serving is not None:
                    self._close(s, "fresh thread", "server_close")
                elif s.phase != "closed":
                    self._close(s, "test thread", "server_close")
                self._forget(s)
        finally:
            for thread in self._threads:
                thread.join(STEP_DEADLINE)
            self.host.close()
        leaks = Snapshot.take().leaks_since(self.before)
        assert not leaks, f"a sequence leaked: {leaks}"


class _nothing:
    """A context manager that does nothing (``contextlib.nullcontext``
    without the generic that pytest.raises' type does not share)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


# --- The test --------------------------------------------------------------------


@pytest.mark.timeout(3600)  # bounded by STEP_DEADLINE/WATCHDOG per step instead
def test_random_lifecycle_sequences(row: Row, form: Form) -> None:
    tallies = Tallies()
    watch = Watch()
    steps = STEPS[form.name]

    class Lifecycle(LifecycleMachine):
        pass

    Lifecycle.tallies = tallies
    Lifecycle.watch = watch
    config = settings(
        max_examples=form.examples,
        stateful_step_count=steps,
        deadline=None,
        derandomize=form.name == "short",
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
        report_multiple_bugs=False,
        print_blob=True,
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            run_state_machine_as_test(Lifecycle, settings=config)
        except BaseException as exc:
            failure.append(exc)

    machine = threading.Thread(target=run, name="lifecycle-machine", daemon=True)
    machine.start()
    while machine.is_alive():
        machine.join(1.0)  # a watchdog's period, not synchronisation
        overdue = watch.overdue()
        if overdue is not None:
            pytest.fail(f"deadlock: step {overdue} has not returned within {WATCHDOG:g} s")
    if failure:
        raise failure[0]
    print(f"steps by rule: {dict(tallies.rules)}")
    row.record(
        load=f"{tallies.examples} random sequences of up to {steps} steps "
        f"({tallies.servers} servers, {tallies.steps} steps)",
        faults="shutdown/close from random threads, out of order",
        result=f"{tallies.shutdowns} shutdowns, {tallies.closes} closes, "
        f"{tallies.rejected} refused as documented; {tallies.served} requests served, "
        f"{tallies.refused_at_close} refused at close, {tallies.abandoned} datagrams "
        "abandoned at close; no deadlock",
        lost=tallies.lost,
    )
    assert tallies.lost == 0


# --- A defect the machine found (fixed) ---------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_handle_request_after_pending_shutdown(api: API) -> None:
    """shutdown() while nothing serves makes the *next serve_forever()*
    return at once (both APIs document only that); handle_request() is not
    serve_forever: as in the stdlib, it takes the request waiting for it,
    and the shutdown stays pending. (The async API used to return from
    handle_request() at once, calling handle_timeout() even with
    ``timeout = None``, so a handle_request() loop spun.)"""
    base = AsyncCountsTimeouts if api == "async" else SyncCountsTimeouts
    cls = server_class(api, "tcp", concurrent=False, base=base)
    server = cls(("127.0.0.1", 0), LIFECYCLE.pick(api, "tcp"))
    server.timeout = None
    reply: list[tuple[WaitOutcome, bytes]] = []
    with short_temporary_directory(prefix="tss-life-") as tmp:
        srv = Running(api, "tcp", server, server.server_address, Path(tmp))
        client = await connect(srv)
        try:
            await client.send(b"waiting\n")  # queued: nothing is serving

            async def receive() -> None:
                reply.append(await receive_reply(srv, client, 8, deadline=REPLY_DEADLINE))
                client.close()  # the handler reads to EOF

            with trio.fail_after(STEP_DEADLINE):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receive)
                    if api == "async":
                        await server.shutdown()
                        await server.handle_request()
                    else:
                        await in_thread(server.shutdown)
                        await in_thread(server.handle_request)
                    assert server.timeouts == 0, "handle_request() timed out with a request queued"
                assert reply == [("served", b"waiting\n")], reply
                # The shutdown is still pending: serve_forever returns at once.
                if api == "async":
                    await server.serve_forever()
                else:
                    await in_thread(server.serve_forever)
        finally:
            client.close()
            server.server_close()
