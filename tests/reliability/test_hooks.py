"""Handlers and hooks that misbehave.

* A hook raises (``setup``, ``handle``, ``finish``, ``verify_request``,
  ``process_request``) for some clients among well-behaved load: the error
  reaches ``handle_error`` (and its default report: the log for the async
  API, stderr for the sync one), that request ends (stream clients see EOF
  or a reset, datagram clients no reply), the others are served, and the
  server keeps serving.
* ``handle_error`` itself raises: an ``Exception`` is logged and serving
  goes on (Rule 2); a ``BaseException`` propagates, and the request is still
  closed (Rule 1).
* A handler blocks forever: in ``time.sleep`` or a CPU loop (sync), or in a
  shielded cancel scope (async). What shutdown and ``server_close`` do then,
  with a grace period and with daemon semantics.
* ``shutdown()`` is called from inside a handler while other requests are in
  flight or queued.

Which client is faulty is decided by its address: a faulty client binds its
socket before it connects, so the server's hooks know it from the first one
(``verify_request``) on.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import socket
import struct
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

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
    Outcome,
    Running,
    Snapshot,
    Tally,
    close_client,
    connect,
    in_thread,
    load,
    running,
    server_class,
)
from .report import Row

PHASES = ("setup", "handle", "finish", "verify_request", "process_request")
LOGGER_NAME = "trio_socketserver.server"
#: The stdlib's (and the sync adapter's) handle_error banner.
BANNER = "Exception occurred during processing of request from"
#: Short grace periods: long enough to be a real phase 2, short for CI.
GRACE = 0.3


class Injected(Exception):
    """The fault a misbehaving hook raises."""


class Fatal(BaseException):
    """A BaseException that is not KeyboardInterrupt (which pytest takes as
    the user stopping the run)."""


# --- Thread-safe signals a trio task can wait for -----------------------------


class Signal:
    """Counts ``fire()`` calls made from any thread (a sync handler's, the
    test's own); a task of the test's trio run waits for a count."""

    def __init__(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self.count = 0
        self._changed = trio.Event()

    def fire(self) -> None:
        try:
            self._token.run_sync_soon(self._bump)
        except trio.RunFinishedError:
            pass  # a daemon handler outlived the test's run

    def _bump(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self, n: int = 1) -> None:
        with trio.fail_after(CLIENT_DEADLINE):
            while self.count < n:
                await self._changed.wait()


class Plan:
    """Which clients' requests fail, in which hook; and what ``handle_error``
    was called with."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.faulty: set[Any] = set()
        #: Every address ever made faulty.
        self.injected: list[Any] = []
        #: (client_address, exception type, message) per handle_error call.
        #: Not the exception itself: see test_sync_setup_raises_error_kept.
        self.errors: list[tuple[Any, type[BaseException] | None, str]] = []
        self._lock = threading.Lock()
        self._token = trio.lowlevel.current_trio_token()
        self._reported: dict[Any, trio.Event] = {}
        #: What a broken handle_error raises.
        self.handle_error_raises: type[BaseException] = RuntimeError

    def maybe_raise(self, phase: str, client_address: Any) -> None:
        if phase == self.phase and client_address in self.faulty:
            raise Injected(f"injected in {phase}")

    def record(self, client_address: Any, exc: BaseException | None) -> None:
        """Called by ``handle_error`` (in whichever thread it runs)."""
        with self._lock:
            self.errors.append((client_address, type(exc) if exc else None, str(exc)))
        self._token.run_sync_soon(self._event(client_address).set)

    def _event(self, client_address: Any) -> trio.Event:
        with self._lock:
            return self._reported.setdefault(client_address, trio.Event())

    async def reported(self, client_address: Any) -> bool:
        """Wait until handle_error was called for ``client_address``."""
        with trio.move_on_after(CLIENT_DEADLINE):
            await self._event(client_address).wait()
            return True
        return False


def _plan(server: Any) -> Plan:
    plan: Plan = server.plan
    return plan


def _fault(handler: Any, phase: str) -> None:
    _plan(handler.server).maybe_raise(phase, handler.client_address)


def _is_faulty(handler: Any) -> bool:
    return handler.client_address in _plan(handler.server).faulty


# --- Faulty handlers: echo, except for the plan's clients ----------------------


class AsyncFaultyStream(ts.StreamRequestHandler):
    timeout = CLIENT_DEADLINE

    async def setup(self) -> None:
        await super().setup()
        _fault(self, "setup")

    async def handle(self) -> None:
        if _is_faulty(self):
            await self.rfile.readline()  # read it, so the close is a clean EOF
            _fault(self, "handle")
            return
        async for line in self.rfile:
            await self.wfile.write(line)

    async def finish(self) -> None:
        try:
            await super().finish()
        finally:
            _fault(self, "finish")


class AsyncFaultyDatagram(ts.DatagramRequestHandler):
    async def setup(self) -> None:
        await super().setup()
        _fault(self, "setup")

    async def handle(self) -> None:
        if _is_faulty(self):
            _fault(self, "handle")
            return
        self.wfile.write(self.rfile.read())

    async def finish(self) -> None:
        _fault(self, "finish")  # before the reply is sent: there is none
        await super().finish()


class SyncFaultyStream(sync.StreamRequestHandler):
    timeout = CLIENT_DEADLINE

    def setup(self) -> None:
        super().setup()
        _fault(self, "setup")

    def handle(self) -> None:
        if _is_faulty(self):
            self.rfile.readline()
            _fault(self, "handle")
            return
        for line in self.rfile:
            self.wfile.write(line)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            _fault(self, "finish")


class SyncFaultyDatagram(sync.DatagramRequestHandler):
    def setup(self) -> None:
        super().setup()
        _fault(self, "setup")

    def handle(self) -> None:
        if _is_faulty(self):
            _fault(self, "handle")
            return
        self.wfile.write(self.rfile.read())

    def finish(self) -> None:
        _fault(self, "finish")
        super().finish()


FAULTY = Handlers(AsyncFaultyStream, AsyncFaultyDatagram, SyncFaultyStream, SyncFaultyDatagram)


class AsyncHooks(ts.BaseServer[Any, Any]):
    """Server hooks that raise for the plan's clients; handle_error records
    and then reports as the library does."""

    plan: Plan

    async def verify_request(self, request: Any, client_address: Any) -> bool:
        self.plan.maybe_raise("verify_request", client_address)
        return await super().verify_request(request, client_address)

    async def process_request(self, request: Any, client_address: Any) -> None:
        self.plan.maybe_raise("process_request", client_address)
        await super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.plan.record(client_address, sys.exc_info()[1])
        super().handle_error(request, client_address)


class SyncHooks(sync.BaseServer):
    """As AsyncHooks; ``process_request`` runs in the serving thread, also
    for ThreadingMixIn (it hands the request to a thread in super())."""

    plan: Plan

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.plan.maybe_raise("verify_request", client_address)
        return super().verify_request(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.plan.maybe_raise("process_request", client_address)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.plan.record(client_address, sys.exc_info()[1])
        super().handle_error(request, client_address)


class AsyncBrokenErrorHandler(AsyncHooks):
    """handle_error records, then raises ``plan.handle_error_raises``."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.plan.record(client_address, sys.exc_info()[1])
        raise _handle_error_failure(self.plan)


class SyncBrokenErrorHandler(SyncHooks):
    def handle_error(self, request: Any, client_address: Any) -> None:
        self.plan.record(client_address, sys.exc_info()[1])
        raise _handle_error_failure(self.plan)


def _handle_error_failure(plan: Plan) -> BaseException:
    return plan.handle_error_raises("handle_error is broken")


# --- Clients whose address is known before they connect ----------------------


async def bound_client(
    srv: Running, before_connect: Callable[[Any], None]
) -> trio.socket.SocketType:
    """A client socket bound to its own address (the server's
    ``client_address`` for it), which is passed to ``before_connect``
    before the socket connects (the server may take it at once)."""
    family = socket.AF_INET if srv.transport in ("tcp", "udp") else socket.AF_UNIX
    kind = socket.SOCK_STREAM if srv.stream else socket.SOCK_DGRAM
    plain = socket.socket(family, kind)
    try:
        if family == socket.AF_INET:
            plain.bind(("127.0.0.1", 0))
        else:
            fd, path = tempfile.mkstemp(dir=srv.client_dir, suffix=".sock")
            os.close(fd)
            os.unlink(path)
            plain.bind(path)
        before_connect(plain.getsockname())
        if srv.transport == "unix":
            # Blocking, in a thread, as the harness's connect does (trio's
            # connect mistakes a full Unix backlog's EAGAIN for progress).
            timeout = struct.pack("ll", int(CLIENT_DEADLINE), 0)
            plain.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
            await in_thread(plain.connect, srv.address)
            return trio.socket.from_stdlib_socket(plain)
        sock = trio.socket.from_stdlib_socket(plain)
    except BaseException:
        close_client(plain, any_unix=True)
        raise
    try:
        with trio.fail_after(CLIENT_DEADLINE):
            await sock.connect(srv.address)
    except BaseException:
        close_client(sock, any_unix=True)
        raise
    return sock


_RESET = (errno.ECONNRESET, errno.EPIPE, errno.ECONNREFUSED)


async def read_to_eof(
    sock: trio.socket.SocketType, deadline: float = CLIENT_DEADLINE
) -> tuple[Outcome, bytes]:
    """Read until the server ends the connection: ``closed`` (EOF or reset)
    with what was read, or ``lost`` if it does not within the deadline."""
    data = bytearray()
    with trio.move_on_after(deadline):
        try:
            while chunk := await sock.recv(65536):
                data += chunk
        except OSError as exc:
            if exc.errno not in _RESET:
                raise
        return "closed", bytes(data)
    return "lost", bytes(data)


async def faulty_request(srv: Running, plan: Plan) -> Outcome:
    """A request the plan makes fail. ``closed`` when it ended as it must:
    stream: the server ended the connection without a reply; datagram:
    handle_error was called and the next reply on this socket is the one to
    a probe sent afterwards (after the stdlib's empty reply, which
    ``finish`` sends when ``handle`` raised). ``served`` if it got a
    reply, ``lost`` if it never ended."""
    addresses: list[Any] = []

    def make_faulty(address: Any) -> None:
        addresses.append(address)
        plan.faulty.add(address)
        plan.injected.append(address)

    sock = await bound_client(srv, make_faulty)
    address = addresses[0]
    try:
        try:
            await sock.send(b"fault\n")
        except OSError as exc:  # the server closed it first (verify_request)
            if exc.errno not in _RESET:
                raise
        if srv.stream:
            outcome, data = await read_to_eof(sock)
            return "served" if outcome == "closed" and data else outcome
        if not await plan.reported(address):
            return "lost"
        plan.faulty.discard(address)  # the probe is a well-behaved request
        await sock.send(b"probe\n")
        with trio.move_on_after(CLIENT_DEADLINE):
            reply = await sock.recv(65536)
            if plan.phase == "handle":
                assert reply == b"", f"expected the stdlib's empty reply, got {reply!r}"
                reply = await sock.recv(65536)
            return "closed" if reply == b"probe\n" else "served"
        return "lost"
    finally:
        close_client(sock, any_unix=True)


async def faulty_load(
    srv: Running, plan: Plan, n_faults: int, n_good: int = 0
) -> tuple[Tally, Tally]:
    """``n_faults`` faulty requests (:func:`faulty_request`) at once, beside
    ``n_good`` well-behaved ones (:func:`load`); then the server must still
    serve. Returns the faulty requests' tally and the well-behaved ones'."""
    faults = Tally()

    async def one_fault() -> None:
        faults.add(await faulty_request(srv, plan))

    async with trio.open_nursery() as nursery:
        for _ in range(n_faults):
            nursery.start_soon(one_fault)
        good = await load(srv, n_good) if n_good else Tally()
    await srv.assert_serving()
    return faults, good


def reports(api: API, caplog: pytest.LogCaptureFixture, err: str) -> int:
    """How many handler errors the library's default handle_error reported
    (a log record with the traceback, or the stdlib's stderr banner)."""
    if api == "async":
        return sum(
            1
            for r in caplog.records
            if r.name == LOGGER_NAME
            and r.levelno == logging.ERROR
            and BANNER in r.getMessage()
            and r.exc_info is not None
            and isinstance(r.exc_info[1], Injected)
        )
    return min(err.count(BANNER), err.count("Injected: injected in"))


def _concurrency_id(concurrent: bool) -> str:
    return "concurrent" if concurrent else "sequential"


# --- 1. A hook raises ------------------------------------------------------------


@pytest.mark.parametrize("concurrent", [True, False], ids=_concurrency_id)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("phase", PHASES)
async def test_hook_raises(
    phase: str,
    api: API,
    transport: Any,
    concurrent: bool,
    row: Row,
    form: Form,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.ERROR, LOGGER_NAME)
    n_faults = form.faults // 5
    n_good = form.clients // 5
    plan = Plan(phase)
    base = AsyncHooks if api == "async" else SyncHooks
    async with running(api, transport, FAULTY, concurrent=concurrent, base=base, plan=plan) as srv:
        faults, good = await faulty_load(srv, plan, n_faults, n_good)
    err = capsys.readouterr().err
    assert faults.closed == n_faults, f"faulty requests: {faults}"
    assert good.served == n_good, f"well-behaved requests: {good}"
    addresses = [address for address, _, _ in plan.errors]
    assert sorted(map(str, addresses)) == sorted(map(str, plan.injected)), (
        "handle_error must be called once for each faulty request, for no other"
    )
    assert all(
        kind is Injected and message == f"injected in {phase}" for _, kind, message in plan.errors
    ), plan.errors
    assert reports(api, caplog, err) == n_faults, "the default handle_error did not report"
    if srv.stream:
        kind = "connection ended"
    else:
        kind = "the stdlib's empty reply" if phase == "handle" else "no reply"
    row.record(
        load=f"{n_good} requests at once, {_concurrency_id(concurrent)} server",
        faults=f"{n_faults} requests raising in {phase}",
        result=f"{good}; {n_faults} reported to handle_error, {kind}",
        lost=good.lost + faults.lost,
    )


class SyncKeepingHooks(SyncHooks):
    """handle_error keeps the exception, as an error reporter that queues
    events (Sentry), a ``logging.handlers.MemoryHandler`` or caplog does."""

    kept: list[BaseException]

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        assert exc is not None
        self.kept.append(exc)
        super().handle_error(request, client_address)


@pytest.mark.parametrize("transport", STREAMS)
async def test_sync_setup_raises_error_kept(
    transport: Any, row: Row, form: Form, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rule 1 for the sync API: a request whose handler failed is closed
    (its descriptor released) by ``shutdown_request``, whatever
    ``handle_error`` does with the exception. The client already gets EOF
    (``SHUT_WR``); the descriptor is what stays."""
    n_faults = form.faults // 5
    plan = Plan("setup")
    kept: list[BaseException] = []
    before = Snapshot.take()
    try:
        async with running(
            "sync", transport, FAULTY, base=SyncKeepingHooks, plan=plan, kept=kept
        ) as srv:
            faults, _ = await faulty_load(srv, plan, n_faults)
        leaked = [leak for leak in Snapshot.take().leaks_since(before) if leak.startswith("fd")]
    finally:
        # Release them (and the descriptors) so that nothing reaches the
        # next scenario as an unclosed-socket warning.
        kept.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    capsys.readouterr()
    row.record(
        load="well-behaved probes",
        faults=f"{n_faults} requests raising in setup; handle_error keeps the exceptions",
        result=f"{faults}; {len(leaked)} connection fds open after server_close()",
        lost=faults.lost,
    )
    assert faults.closed == n_faults, faults
    assert not leaked, f"descriptors of failed requests still open: {leaked}"


# --- 2. handle_error raises -------------------------------------------------------


def _handle_error_cases() -> list[Any]:
    cases = []
    for api in APIS:
        for transport in TRANSPORTS:
            for concurrent in (True, False):
                cases.append(
                    pytest.param(
                        api,
                        transport,
                        concurrent,
                        id=f"{api}-{transport}-{_concurrency_id(concurrent)}",
                    )
                )
    return cases


@pytest.mark.parametrize(("api", "transport", "concurrent"), _handle_error_cases())
async def test_handle_error_raises(
    api: API,
    transport: Any,
    concurrent: bool,
    row: Row,
    form: Form,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rule 2: "If handle_error itself raises, that is logged and the server
    still keeps serving" (docs/sync.rst: "handle_error raises: logged,
    serving goes on"): for every server, sequential or concurrent."""
    caplog.set_level(logging.ERROR, LOGGER_NAME)
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    n_faults = form.faults // 5
    n_good = form.clients // 5
    plan = Plan("handle")
    base = AsyncBrokenErrorHandler if api == "async" else SyncBrokenErrorHandler
    async with running(api, transport, FAULTY, concurrent=concurrent, base=base, plan=plan) as srv:
        faults, good = await faulty_load(srv, plan, n_faults, n_good)
    logged = [
        r
        for r in caplog.records
        if r.name == LOGGER_NAME and "handle_error raised" in r.getMessage()
    ]
    row.record(
        load=f"{n_good} requests at once, {_concurrency_id(concurrent)} server",
        faults=f"{n_faults} handler errors; handle_error raises RuntimeError",
        result=f"{good}; {len(logged)} failures of handle_error logged, "
        f"{len(escaped)} escaped a thread",
        lost=good.lost + faults.lost,
    )
    assert faults.closed == n_faults, f"faulty requests: {faults}"
    assert good.served == n_good, f"well-behaved requests: {good}"
    assert len(plan.errors) == n_faults
    assert not escaped, f"handle_error's exception escaped a thread: {escaped[:1]}"
    assert len(logged) == n_faults, f"{len(logged)} of {n_faults} handle_error failures logged"


async def _serve_catching(server: Any, caught: list[BaseException]) -> None:
    """serve_forever, keeping the BaseException it must raise (async)."""
    try:
        await server.serve_forever()
    except Fatal as exc:
        caught.append(exc)


def _sync_serve_catching(server: Any, caught: list[BaseException]) -> None:
    try:
        server.serve_forever()
    except Fatal as exc:
        caught.append(exc)


@pytest.mark.parametrize(
    "api",
    APIS,
)
@pytest.mark.parametrize("transport", STREAMS)
async def test_handle_error_raises_base_exception_sequential(
    api: API, transport: Any, row: Row
) -> None:
    """A BaseException from handle_error propagates out of serve_forever
    (Rule 2), and the request it was reporting is still closed (Rule 1: every
    accepted request is handed to a handler or closed). Sequential servers:
    the request is processed in serve_forever's own task or thread."""
    caught: list[BaseException] = []
    with short_temporary_directory(prefix="tss-rel-") as tmp:
        plan = Plan("handle")
        plan.handle_error_raises = Fatal
        base = AsyncBrokenErrorHandler if api == "async" else SyncBrokenErrorHandler
        cls = server_class(api, transport, concurrent=False, base=base, plan=plan)
        bind: Any = ("127.0.0.1", 0) if transport == "tcp" else os.path.join(tmp, "srv.sock")
        server = cls(bind, FAULTY.pick(api, transport))
        srv = Running(api, transport, server, server.server_address, _client_dir(tmp))
        sock = await bound_client(srv, lambda address: plan.faulty.add(address))
        try:
            await sock.send(b"fault\n")
            with trio.fail_after(CLIENT_DEADLINE):
                if api == "async":
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_serve_catching, server, caught)
                else:
                    thread = threading.Thread(target=_sync_serve_catching, args=(server, caught))
                    thread.start()
                    await in_thread(thread.join, CLIENT_DEADLINE)
            # serve_forever has ended: had the request been shut down on the
            # way out, its EOF would be here already (loopback), so a short
            # wait tells a closed connection from one left open.
            outcome, _ = await read_to_eof(sock, deadline=1.0)
        finally:
            close_client(sock, any_unix=True)
            server.server_close()
            # Release what the propagated exception holds (the request,
            # if it was left open), so that it does not reach the next
            # scenario as an unclosed-socket warning.
            caught_names = [type(exc).__name__ for exc in caught]
            for exc in caught:
                _close_requests_left_open(exc)
            caught.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
    row.record(
        load="1 request, sequential server",
        faults="handler raises; handle_error raises a BaseException",
        result=f"propagated: {caught_names or 'no'}; its connection: "
        + ("closed" if outcome == "closed" else "left open"),
        lost=int(outcome == "lost"),
    )
    assert caught_names == ["Fatal"], "the BaseException did not propagate out of serve_forever"
    assert outcome == "closed", "the request's connection was left open"


def _close_requests_left_open(exc: BaseException | None) -> None:
    """Close the requests found in the frames of ``exc`` and its context:
    what the library left open (the test cleans up after the defect)."""
    while exc is not None:
        tb = exc.__traceback__
        while tb is not None:
            request = tb.tb_frame.f_locals.get("request")
            if isinstance(request, (socket.socket, ts.ConnectionStream)):
                request.close()
            tb = tb.tb_next
        exc = exc.__context__


def _client_dir(tmp: str) -> Path:
    path = Path(tmp) / "clients"
    path.mkdir()
    return path


# --- 3. A handler blocks forever ----------------------------------------------------


class Stuck:
    """A handler that blocks until the test releases it."""

    def __init__(self, mode: str) -> None:
        self.mode = mode  # "sleep", "cpu" (sync) or "shield" (async)
        self.entered = Signal()
        self.release = threading.Event()
        self.release_async = trio.Event()
        self.threads: list[threading.Thread] = []
        #: For async handlers: whether cancellation reached them once released.
        self.cancelled: list[bool] = []

    def let_go(self) -> None:
        self.release.set()
        self.release_async.set()

    def block(self) -> None:
        self.threads.append(threading.current_thread())
        self.entered.fire()
        if self.mode == "sleep":
            while not self.release.is_set():
                time.sleep(0.01)
        else:
            while not self.release.is_set():
                sum(i * i for i in range(2_000))  # CPU, holding the GIL in turns

    async def ablock(self) -> None:
        self.entered.fire()
        with trio.CancelScope(shield=True):
            await self.release_async.wait()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled:
            self.cancelled.append(True)
            raise
        self.cancelled.append(False)

    async def join_threads(self) -> None:
        for thread in self.threads:
            await in_thread(thread.join, CLIENT_DEADLINE)
            assert not thread.is_alive(), f"{thread.name} still running after release"


def _stuck(server: Any) -> Stuck:
    stuck: Stuck = server.stuck
    return stuck


STUCK_LINE = b"stuck\n"
RELEASED = b"released\n"


class AsyncStuckStream(ts.StreamRequestHandler):
    timeout = CLIENT_DEADLINE

    async def handle(self) -> None:
        async for line in self.rfile:
            if line == STUCK_LINE:
                await _stuck(self.server).ablock()
                return
            await self.wfile.write(line)


class AsyncStuckDatagram(ts.DatagramRequestHandler):
    async def handle(self) -> None:
        data = self.rfile.read()
        if data == STUCK_LINE:
            await _stuck(self.server).ablock()
            data = RELEASED
        self.wfile.write(data)


class SyncStuckStream(sync.StreamRequestHandler):
    timeout = CLIENT_DEADLINE

    def handle(self) -> None:
        for line in self.rfile:
            if line == STUCK_LINE:
                _stuck(self.server).block()
                return  # its connection was shut down meanwhile: nothing to say
            self.wfile.write(line)


class SyncStuckDatagram(sync.DatagramRequestHandler):
    def handle(self) -> None:
        data = self.rfile.read()
        if data == STUCK_LINE:
            _stuck(self.server).block()
            data = RELEASED
        self.wfile.write(data)


STUCK = Handlers(AsyncStuckStream, AsyncStuckDatagram, SyncStuckStream, SyncStuckDatagram)


async def stuck_client(
    srv: Running,
    results: list[tuple[Outcome, bytes]],
    done: trio.Event,
    *,
    wait_reply: bool = True,
) -> None:
    """Send the request that blocks its handler; then (stream) read to EOF,
    or (datagram, if ``wait_reply``) wait for the one reply. ``done`` is set
    when it has its result."""
    sock = await connect(srv)
    try:
        await sock.send(STUCK_LINE)
        if srv.stream:
            results.append(await read_to_eof(sock))
        elif wait_reply:
            with trio.move_on_after(CLIENT_DEADLINE):
                results.append(("served", await sock.recv(65536)))
                return
            results.append(("lost", b""))
    finally:
        close_client(sock)
        done.set()


async def _set_when_done(fn: Callable[[], Awaitable[object]], done: trio.Event) -> None:
    try:
        await fn()
    finally:
        done.set()


def _visible(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The library's warnings that a grace period ended with a handler still
    running: how a stuck handler shows (none where daemon semantics asked
    not to wait)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("trio_socketserver")
        and r.levelno == logging.WARNING
        and "grace period" in r.getMessage()
        and "still running" in r.getMessage()
    ]


def _sync_stuck_cases() -> list[Any]:
    cases = []
    for mode in ("sleep", "cpu"):
        transports = TRANSPORTS if mode == "sleep" else ("tcp", "udp")
        for transport in transports:
            for daemon in (False, True):
                name = f"{mode}-{transport}-{'daemon' if daemon else 'grace'}"
                cases.append(pytest.param(mode, transport, daemon, id=name))
    return cases


@pytest.mark.parametrize(("mode", "transport", "daemon"), _sync_stuck_cases())
async def test_sync_handler_blocks_forever(
    mode: str,
    transport: Any,
    daemon: bool,
    row: Row,
    form: Form,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A ThreadingMixIn handler stuck in time.sleep or a CPU loop. Promised
    (sync/_threading.py, docs/sync.rst): other clients are served meanwhile;
    ``shutdown()`` returns (the handler is not in the serving thread);
    ``server_close()`` then shuts the stuck handler's connection down after
    ``grace_period`` (at once with ``daemon_threads``) and waits for the
    handler (not with ``daemon_threads``, which returns at once), since
    nothing interrupts time.sleep or a CPU loop. Datagram servers wait for
    their handlers before closing the socket, so the late reply still goes
    out."""
    caplog.set_level(logging.DEBUG, "trio_socketserver")
    stuck = Stuck(mode)
    n_good = form.clients // 5
    results: list[tuple[Outcome, bytes]] = []
    stream = transport in STREAMS
    async with running("sync", transport, STUCK, grace=GRACE, daemon=daemon, stuck=stuck) as srv:
        try:
            async with trio.open_nursery() as nursery:
                ended = trio.Event()
                nursery.start_soon(lambda: stuck_client(srv, results, ended, wait_reply=not daemon))
                await stuck.entered.wait()
                good = await load(srv, n_good)
                with trio.fail_after(CLIENT_DEADLINE):
                    await srv.shutdown()
                closed = trio.Event()
                nursery.start_soon(
                    _set_when_done, lambda: in_thread(srv.server.server_close), closed
                )
                if daemon:
                    with trio.fail_after(CLIENT_DEADLINE):
                        await closed.wait()
                    assert stuck.threads[0].is_alive(), "the stuck handler cannot have ended"
                if stream:
                    with trio.fail_after(CLIENT_DEADLINE):
                        await ended.wait()
                    assert results[0] == ("closed", b""), results
                if not daemon:
                    # Deterministic: the handler is held, so server_close waits.
                    assert not closed.is_set(), "server_close cannot end before the handler"
                stuck.let_go()
                with trio.fail_after(CLIENT_DEADLINE):
                    await closed.wait()
        finally:
            stuck.let_go()
        await stuck.join_threads()
    err = capsys.readouterr().err
    if not stream and not daemon:
        assert results == [("served", RELEASED)], results
    if not stream and daemon:
        # The socket was closed under the daemon handler: its late reply
        # fails, and that goes to handle_error like any handler error.
        assert BANNER in err, err
        assert "Bad file descriptor" in err, err
    assert good.served == n_good, good
    visible = _visible(caplog)
    if stream and not daemon:
        # The test released the handler only after its connection was shut
        # down, so the grace period had ended with it running: logged.
        assert len(visible) == 1, visible
        assert "1 handler thread(s) still running" in visible[0], visible
    else:
        # daemon_threads asked not to wait: nothing to report. (A datagram
        # handler is released at once, normally before the grace ends.)
        assert len(visible) <= (0 if daemon else 1), visible
    stuck_result = results[0][0] if results else "abandoned (no reply possible)"
    row.record(
        load=f"{n_good} requests at once beside it",
        faults=f"1 handler in {'time.sleep' if mode == 'sleep' else 'a CPU loop'}, "
        + ("daemon_threads" if daemon else f"grace_period={GRACE}"),
        result=f"{good}; stuck one: {stuck_result}; server_close "
        + ("returned at once" if daemon else "waited for it")
        + ("; grace expiry logged" if visible else ""),
        lost=good.lost,
    )


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("mode", ["sleep", "cpu"])
async def test_sync_sequential_handler_blocks_forever(
    mode: str, transport: Any, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    """A sequential server's handler runs in the serving thread: shutdown()
    from another thread waits for it (as the stdlib's does); after
    ``grace_period`` its connection is shut down, so the client is not left
    hanging; once it returns, shutdown() returns."""
    caplog.set_level(logging.DEBUG, "trio_socketserver")
    stuck = Stuck(mode)
    results: list[tuple[Outcome, bytes]] = []
    async with running("sync", transport, STUCK, concurrent=False, grace=GRACE, stuck=stuck) as srv:
        try:
            async with trio.open_nursery() as nursery:
                ended = trio.Event()
                nursery.start_soon(stuck_client, srv, results, ended)
                await stuck.entered.wait()
                stopped = trio.Event()
                nursery.start_soon(_set_when_done, srv.shutdown, stopped)
                with trio.fail_after(CLIENT_DEADLINE):
                    await ended.wait()
                assert results[0] == ("closed", b""), results
                assert not stopped.is_set(), "shutdown cannot return before the handler"
                stuck.let_go()
                with trio.fail_after(CLIENT_DEADLINE):
                    await stopped.wait()
        finally:
            stuck.let_go()
    assert len(_visible(caplog)) == 1, _visible(caplog)
    row.record(
        load="1 request, sequential server",
        faults=f"handler in {'time.sleep' if mode == 'sleep' else 'a CPU loop'}, "
        f"grace_period={GRACE}",
        result="connection shut down after grace (logged); shutdown() waited for the handler",
        lost=0,
    )


def _async_stuck_cases() -> list[Any]:
    cases = [
        pytest.param(t, True, daemon, id=f"{t}-concurrent-{'daemon' if daemon else 'grace'}")
        for t in TRANSPORTS
        for daemon in (False, True)
    ]
    cases += [pytest.param(t, False, False, id=f"{t}-sequential-grace") for t in ("tcp", "udp")]
    return cases


@pytest.mark.parametrize(("transport", "concurrent", "daemon"), _async_stuck_cases())
async def test_async_handler_ignores_cancellation(
    transport: Any,
    concurrent: bool,
    daemon: bool,
    row: Row,
    form: Form,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An async handler waiting in a shielded cancel scope. Promised
    (_server.py): other clients are served meanwhile (concurrent); shutdown
    stops accepting at once, cancels handlers at the grace deadline (at once
    with daemon_requests), and returns when the nursery is empty, so it waits
    for the shielded handler; once released, the handler gets its
    cancellation at the next checkpoint, its connection is closed, shutdown
    returns, and no task is left."""
    caplog.set_level(logging.DEBUG, "trio_socketserver")
    stuck = Stuck("shield")
    n_good = form.clients // 5 if concurrent else 0
    results: list[tuple[Outcome, bytes]] = []
    async with running(
        "async", transport, STUCK, concurrent=concurrent, grace=GRACE, daemon=daemon, stuck=stuck
    ) as srv:
        try:
            async with trio.open_nursery() as nursery:
                ended = trio.Event()
                nursery.start_soon(lambda: stuck_client(srv, results, ended, wait_reply=False))
                await stuck.entered.wait()
                good = await load(srv, n_good)
                stopped = trio.Event()
                nursery.start_soon(_set_when_done, srv.shutdown, stopped)
                # The grace deadline is set when shutdown begins, so it is at
                # most GRACE after this moment.
                await srv.server.wait_shutting_down()
                start = trio.current_time()
                if not daemon:
                    await trio.sleep_until(start + GRACE)  # the grace deadline, under test
                await trio.testing.wait_all_tasks_blocked()
                stats = srv.server.statistics()
                assert not stopped.is_set(), "shutdown cannot return while the handler runs"
                assert stats.shutting_down, stats
                assert stats.active_requests == 1, stats
                assert not results, "the stuck handler's connection is still open"
                # The grace deadline passing with a handler running is logged;
                # daemon_requests asked not to wait, so nothing is.
                visible = _visible(caplog)
                assert len(visible) == (0 if daemon else 1), visible
                assert daemon or "1 request(s) still running" in visible[0], visible
                stuck.let_go()
                with trio.fail_after(CLIENT_DEADLINE):
                    await stopped.wait()
        finally:
            stuck.let_go()
    assert stuck.cancelled == [True], "phase 3 did not reach the released handler"
    if transport in STREAMS:
        assert results == [("closed", b"")], results
    assert good.served == n_good, good
    row.record(
        load=f"{n_good} requests at once beside it" if concurrent else "1 request, sequential",
        faults="1 handler in a shielded scope, "
        + ("daemon_requests" if daemon else f"grace_period={GRACE}"),
        result=f"{good}; shutdown waited for it; cancelled once released"
        + (", connection closed" if transport in STREAMS else "")
        + ("" if daemon else "; grace expiry logged"),
        lost=good.lost,
    )


# --- 4. shutdown() from inside a handler ----------------------------------------------


class Inside:
    """What the handlers of the shutdown-from-inside scenario share."""

    def __init__(self) -> None:
        self.held = Signal()
        self.stopper = Signal()
        self.gate = threading.Event()  # datagram holders, sync
        self.gate_async = trio.Event()  # datagram holders, async
        self.returned: list[str] = []

    def open_gate(self) -> None:
        self.gate.set()
        self.gate_async.set()


def _inside(server: Any) -> Inside:
    inside: Inside = server.inside
    return inside


class AsyncInsideStream(ts.StreamRequestHandler):
    """``stop``: wait for a second line, shutdown(), reply. ``hold``: wait for
    a second line, reply both. Anything else: echo."""

    timeout = CLIENT_DEADLINE

    async def handle(self) -> None:
        inside = _inside(self.server)
        line = await self.rfile.readline()
        if line == b"stop\n":
            inside.stopper.fire()
            line += await self.rfile.readline()
            await self.server.shutdown()
            inside.returned.append("shutdown() returned")
        elif line == b"hold\n":
            inside.held.fire()
            line += await self.rfile.readline()
        await self.wfile.write(line)


class AsyncInsideDatagram(ts.DatagramRequestHandler):
    async def handle(self) -> None:
        inside = _inside(self.server)
        data = self.rfile.read()
        if data == b"stop\n":
            await self.server.shutdown()
            inside.returned.append("shutdown() returned")
        elif data == b"hold\n":
            inside.held.fire()
            await inside.gate_async.wait()
        self.wfile.write(data)


class SyncInsideStream(sync.StreamRequestHandler):
    timeout = CLIENT_DEADLINE

    def handle(self) -> None:
        inside = _inside(self.server)
        line = self.rfile.readline()
        if line == b"stop\n":
            inside.stopper.fire()
            line += self.rfile.readline()
            self.server.shutdown()
            inside.returned.append("shutdown() returned")
        elif line == b"hold\n":
            inside.held.fire()
            line += self.rfile.readline()
        self.wfile.write(line)


class SyncInsideDatagram(sync.DatagramRequestHandler):
    def handle(self) -> None:
        inside = _inside(self.server)
        data = self.rfile.read()
        if data == b"stop\n":
            self.server.shutdown()
            inside.returned.append("shutdown() returned")
        elif data == b"hold\n":
            inside.held.fire()
            inside.gate.wait(CLIENT_DEADLINE)
        self.wfile.write(data)


INSIDE = Handlers(AsyncInsideStream, AsyncInsideDatagram, SyncInsideStream, SyncInsideDatagram)


async def two_part_request(
    srv: Running,
    first: bytes,
    go: trio.Event,
    tally: Tally,
    done: trio.Event | None = None,
    sent: Callable[[], object] | None = None,
) -> None:
    """Send ``first``; once ``go`` is set, send the second line (stream) and
    read the reply: ``served`` if it is whole, ``closed`` if the connection
    ended first. ``done`` is set when it has its outcome; ``sent`` is called
    once ``first`` is sent (the client is connected)."""
    second = b"more\n"
    expected = first + second if srv.stream else first
    try:
        sock = await connect(srv)
    except OSError:
        # Never accepted: the listening socket closed during the handshake.
        tally.add("refused")
        if done is not None:
            done.set()
        return
    try:
        try:
            await sock.send(first)
            if sent is not None:
                sent()
            await go.wait()
            if srv.stream:
                await sock.send(second)
        except OSError as exc:
            if exc.errno not in _RESET:
                raise
            tally.add("closed")
            return
        if not srv.stream:
            with trio.move_on_after(CLIENT_DEADLINE):
                reply = await sock.recv(65536)
                assert reply == expected, reply
                tally.add("served")
                return
            tally.add("lost")
            return
        outcome, data = await read_to_eof(sock)
        if outcome == "closed" and data == expected:
            tally.add("served")
        else:
            assert outcome == "lost" or expected.startswith(data), data
            tally.add(outcome)
    finally:
        close_client(sock)
        if done is not None:
            done.set()


async def _close_server(srv: Running) -> None:
    if srv.api == "async":
        srv.server.server_close()
    else:
        await in_thread(srv.server.server_close)


def _inside_cases() -> list[Any]:
    # When the grace period expires, a datagram client cannot tell its
    # cancelled request from a lost one: that variant is for streams only.
    return [
        pytest.param(api, transport, complete, id=f"{api}-{transport}-{variant}")
        for api in APIS
        for transport in TRANSPORTS
        for complete, variant in ((True, "complete"), (False, "grace-expires"))
        if complete or transport in STREAMS
    ]


@pytest.mark.parametrize(("api", "transport", "complete"), _inside_cases())
async def test_shutdown_from_inside_concurrent(
    api: API, transport: Any, complete: bool, row: Row, form: Form
) -> None:
    """A handler of a concurrent server calls shutdown() while others are in
    flight: it returns (no deadlock), the server stops accepting, the
    in-flight requests complete (released within the grace period) or are
    closed (grace expires), and nothing is left."""
    inside = Inside()
    n_held = max(2, form.faults // 5)
    grace = 30.0 if complete else GRACE
    held, stop, late = Tally(), Tally(), Tally()
    async with running(api, transport, INSIDE, grace=grace, inside=inside) as srv:
        go = trio.Event()
        stop_go = trio.Event()
        async with trio.open_nursery() as nursery:
            for _ in range(n_held):
                nursery.start_soon(two_part_request, srv, b"hold\n", go, held)
            await inside.held.wait(n_held)
            stopped = trio.Event()
            nursery.start_soon(two_part_request, srv, b"stop\n", stop_go, stop, stopped)
            if srv.stream:
                await inside.stopper.wait()
            stop_go.set()
            with trio.fail_after(CLIENT_DEADLINE):
                await stopped.wait()
            assert stop.served == 1, f"the handler calling shutdown() did not finish: {stop}"
            assert inside.returned == ["shutdown() returned"]
            if srv.stream:
                # Serving has stopped: a new connection waits in the backlog
                # until the socket closes, and is then reset.
                for _ in range(3):
                    nursery.start_soon(two_part_request, srv, b"late\n", go, late)
            if complete:
                go.set()
                inside.open_gate()
            with trio.fail_after(CLIENT_DEADLINE):
                await srv.shutdown()
                await _close_server(srv)
            go.set()
            inside.open_gate()
    if complete:
        assert held.served == n_held, held
    else:
        assert held.closed == n_held, held
    assert late.served == 0, late
    assert late.lost == 0, late
    lost = held.lost + stop.lost + late.lost
    row.record(
        load=f"{n_held} requests in flight, concurrent server",
        faults="a handler calls shutdown()"
        + ("" if complete else f"; in-flight ones never finish (grace_period={GRACE})"),
        result=f"shutdown() returned in the handler; in flight: {held}"
        + (f"; arriving after: {late}" if late.total else ""),
        lost=lost,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("api", APIS)
async def test_shutdown_from_inside_sequential(
    api: API, transport: Any, row: Row, form: Form
) -> None:
    """A handler of a sequential server calls shutdown(): it returns at once
    (the stdlib deadlocks), the handler finishes, serve_forever returns, and
    the connections queued behind it are refused when the socket closes."""
    inside = Inside()
    n_queued = max(2, form.faults // 5) if transport in STREAMS else 0
    stop, queued = Tally(), Tally()
    async with running(api, transport, INSIDE, concurrent=False, inside=inside) as srv:
        go = trio.Event()
        stop_go = trio.Event()
        async with trio.open_nursery() as nursery:
            stopped = trio.Event()
            nursery.start_soon(two_part_request, srv, b"stop\n", stop_go, stop, stopped)
            if srv.stream:
                await inside.stopper.wait()
                # Connected and sent, but not taken: the server is busy. Each
                # client connects in a thread (harness.connect), which
                # wait_all_tasks_blocked does not wait for: count them in.
                all_sent = trio.Semaphore(0)
                for _ in range(n_queued):
                    nursery.start_soon(
                        two_part_request, srv, b"queued\n", go, queued, None, all_sent.release
                    )
                with trio.fail_after(CLIENT_DEADLINE):
                    for _ in range(n_queued):
                        await all_sent.acquire()
            stop_go.set()
            with trio.fail_after(CLIENT_DEADLINE):
                await stopped.wait()
                await srv.shutdown()
                await _close_server(srv)
            go.set()
    assert stop.served == 1, stop
    assert inside.returned == ["shutdown() returned"]
    assert queued.closed == n_queued, queued
    row.record(
        load="1 request, sequential server"
        + (f", {n_queued} queued behind it" if n_queued else ""),
        faults="the handler calls shutdown()",
        result="shutdown() returned in the handler; serve_forever returned"
        + (f"; queued: {queued}" if n_queued else ""),
        lost=stop.lost + queued.lost,
    )
