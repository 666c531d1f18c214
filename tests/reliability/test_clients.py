"""Clients that misbehave: they stall, reset, half-close, stop reading, flood
the backlog, send oversized datagrams or come from many addresses. Every row
holds well-behaved load beside the fault and checks that the load is served,
that the faulty clients are dealt with as documented (closed by the handler
timeout, reported through ``handle_error``, dropped and counted), and that
the server still serves afterwards."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import struct
import sys
import threading
from typing import Any

import pytest
import trio

import trio_socketserver as ts
import trio_socketserver.sync as sync

from .harness import (
    API,
    APIS,
    CLIENT_DEADLINE,
    DATAGRAMS,
    ECHO,
    STREAMS,
    AsyncDatagramEcho,
    AsyncLineEcho,
    Form,
    Handlers,
    Outcome,
    Running,
    SyncDatagramEcho,
    SyncLineEcho,
    Tally,
    Transport,
    close_client,
    connect,
    in_thread,
    load,
    receive_reply,
    running,
    try_connect,
)
from .report import Row

#: The handler timeout (``StreamRequestHandler.timeout``) of the scenarios
#: that rely on it. Short, so the rows stay quick; a well-behaved client
#: sends at once and only has to be read once within it.
HANDLER_TIMEOUT = 1.0
#: How long after the handler timeout a faulty connection may stay open
#: before it counts as left hanging. Generous: a loaded machine.
CLOSE_SLACK = CLIENT_DEADLINE

#: What the library prints or logs for each ``handle_error`` call.
ERROR_REPORT = "Exception occurred during processing of request from"
CONNECTION_GONE = (errno.ECONNRESET, errno.EPIPE)


class AsyncTimedEcho(AsyncLineEcho):
    timeout = HANDLER_TIMEOUT


class SyncTimedEcho(SyncLineEcho):
    timeout = HANDLER_TIMEOUT


#: The echo service with a short handler timeout.
TIMED_ECHO = Handlers(AsyncTimedEcho, AsyncDatagramEcho, SyncTimedEcho, SyncDatagramEcho)


def describe(exc: BaseException | None) -> str:
    """An exception as ``Type`` or ``Type(CauseType)``."""
    if exc is None:
        return "None"
    name = type(exc).__name__
    cause = exc.__cause__
    return f"{name}({type(cause).__name__})" if cause is not None else name


class RecordsErrors:
    """Server mixin: remembers what each ``handle_error`` call was about,
    then lets the library report it as it always does."""

    errors: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.errors = []
        self._errors_lock = threading.Lock()  # handler threads report here
        self._awaited: tuple[int, threading.Event] | None = None
        super().__init__(*args, **kwargs)

    def handle_error(self, request_: Any, client_address: Any) -> None:
        with self._errors_lock:
            self.errors.append(describe(sys.exc_info()[1]))
            if self._awaited is not None and len(self.errors) >= self._awaited[0]:
                self._awaited[1].set()
        super().handle_error(request_, client_address)  # type: ignore[misc]

    async def wait_for_errors(self, n: int) -> bool:
        """Wait (at most CLIENT_DEADLINE) until ``n`` errors were handled."""
        reached = threading.Event()
        with self._errors_lock:
            if len(self.errors) >= n:
                return True
            self._awaited = (n, reached)
        return await in_thread(reached.wait, CLIENT_DEADLINE)


def kinds(errors: list[str]) -> str:
    """``["A", "A", "B"]`` as ``"2 A, 1 B"``."""
    counted: dict[str, int] = {}
    for error in errors:
        counted[error] = counted.get(error, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counted.items())) or "none"


def reports(api: API, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> int:
    """How many handler errors the library reported: the async API logs
    them to ``trio_socketserver.server``, the sync API prints the stdlib's
    block to stderr."""
    if api == "async":
        return sum(
            1
            for record in caplog.records
            if record.name == "trio_socketserver.server"
            and record.levelno == logging.ERROR
            and ERROR_REPORT in record.getMessage()
            and record.exc_info is not None
        )
    return capsys.readouterr().err.count(ERROR_REPORT)


def reported_how(api: API) -> str:
    if api == "async":
        return "logged (ERROR, traceback)"
    return "printed (stderr, traceback)"


def span(seconds: list[float]) -> str:
    return f"{min(seconds):.1f}-{max(seconds):.1f} s" if seconds else "-"


#: UDP datagrams a scenario keeps in flight at once. UDP has no
#: backpressure: a burst larger than the server's receive buffer (212992
#: bytes by default, about 170 small datagrams of kernel memory) is dropped
#: by the kernel (``RcvbufErrors`` in /proc/net/snmp), whatever the server
#: does; measured here, 500 at once lost 240-270 for either API. Unix
#: datagram senders wait for room instead.
UDP_IN_FLIGHT = 100


def in_flight(transport: Transport, n: int) -> int:
    return min(n, UDP_IN_FLIGHT) if transport == "udp" else n


def at_once(transport: Transport, n: int, what: str = "requests") -> str:
    limit = in_flight(transport, n)
    return f"{n} {what} at once" if limit == n else f"{n} {what}, {limit} at a time"


async def bounded_load(srv: Running, n: int) -> Tally:
    """:func:`load`, with at most :func:`in_flight` requests at once."""
    return await load(srv, n, limit=in_flight(srv.transport, n))


# --- 1, 2. Clients that stall -------------------------------------------------


async def stalled_clients(
    api: API,
    transport: Transport,
    form: Form,
    opening: bytes,
) -> tuple[Tally, Tally, list[float], list[str], int]:
    """``form.faults`` connections that send ``opening`` and then nothing,
    held while ``form.clients`` well-behaved requests are served. Returns
    the load's tally, the faults' tally (closed = the server closed the
    connection), seconds each fault waited, the errors ``handle_error`` saw,
    and how many faults were still open when the load had been served."""
    faults = Tally()
    waited: list[float] = []
    connected = trio.Event()
    pending = form.faults
    still_open = 0

    async def stall(srv: Running) -> None:
        nonlocal pending
        start = trio.current_time()  # before the server can have accepted
        sock = await connect(srv)
        try:
            if opening:
                await sock.send(opening)
            pending -= 1
            if not pending:
                connected.set()
            with trio.move_on_after(HANDLER_TIMEOUT + CLOSE_SLACK):
                try:
                    data = await sock.recv(65536)
                except OSError as exc:
                    if exc.errno not in CONNECTION_GONE:
                        raise
                    data = b""
                assert data == b"", f"a stalled client got a reply: {data!r}"
                waited.append(trio.current_time() - start)
                faults.add("closed")
                return
            faults.add("lost")
        finally:
            close_client(sock)

    async with running(api, transport, TIMED_ECHO, base=RecordsErrors) as srv:
        async with trio.open_nursery() as nursery:
            for _ in range(form.faults):
                nursery.start_soon(stall, srv)
            with trio.fail_after(CLIENT_DEADLINE):
                await connected.wait()
            tally = await load(srv, form.clients)
            still_open = form.faults - faults.total
        await srv.assert_serving()
        errors = list(srv.server.errors)
    return tally, faults, waited, errors, still_open


def check_stalled(
    form: Form, tally: Tally, faults: Tally, waited: list[float], errors: list[str]
) -> None:
    assert tally.served == form.clients, tally
    assert faults.closed == form.faults, f"stalled connections not closed: {faults}"
    # Closed by the handler timeout, not before it (deadlines never fire
    # early, and the client's clock started before it connected).
    assert min(waited) >= HANDLER_TIMEOUT, f"closed before the timeout: {span(waited)}"
    # (A well-behaved client slower than the timeout to close after its
    # reply would add one: served all the same.)
    assert set(errors) == {"TimeoutError"}, kinds(errors)
    assert len(errors) >= form.faults, kinds(errors)


def stalled_result(
    tally: Tally, faults: Tally, waited: list[float], errors: list[str], still_open: int, api: API
) -> str:
    return (
        f"{tally}; {faults.closed} closed by the {HANDLER_TIMEOUT:g} s timeout after "
        f"{span(waited)}, {still_open} open through the load; "
        f"handle_error: {kinds(errors)}, {reported_how(api)}"
    )


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_slowloris(
    api: API,
    transport: Transport,
    row: Row,
    form: Form,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tally, faults, waited, errors, still_open = await stalled_clients(api, transport, form, b"")
    check_stalled(form, tally, faults, waited, errors)
    assert reports(api, caplog, capsys) == len(errors)
    row.record(
        load=f"{form.clients} requests at once",
        faults=f"{form.faults} connections that send nothing (slowloris)",
        result=stalled_result(tally, faults, waited, errors, still_open, api),
        lost=tally.lost + faults.lost,
    )


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_half_line_stall(
    api: API,
    transport: Transport,
    row: Row,
    form: Form,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tally, faults, waited, errors, still_open = await stalled_clients(
        api, transport, form, b"GET /half-a-li"
    )
    check_stalled(form, tally, faults, waited, errors)
    assert reports(api, caplog, capsys) == len(errors)
    row.record(
        load=f"{form.clients} requests at once",
        faults=f"{form.faults} connections that send half a line and stall",
        result=stalled_result(tally, faults, waited, errors, still_open, api),
        lost=tally.lost + faults.lost,
    )


# --- 3. Reset mid-request -----------------------------------------------------


def linger_reset(srv: Running, sock: trio.socket.SocketType) -> None:
    """For TCP, make closing ``sock`` send an RST (``SO_LINGER`` ``(1, 0)``);
    a Unix socket closes as it is."""
    if srv.transport == "tcp":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def reset_mid_request(srv: Running) -> None:
    """Send a line and let its echo arrive unread, send half a line, then
    close so that the server sees a reset: for TCP with ``SO_LINGER``
    ``(1, 0)`` (an RST), for Unix by closing with unread data (the peer's
    next read fails with ``ECONNRESET``)."""
    sock = await connect(srv)
    try:
        await sock.send(b"first line\n")
        with trio.fail_after(CLIENT_DEADLINE):
            await trio.lowlevel.wait_readable(sock)  # the echo is here, left unread
        await sock.send(b"second, half a li")
        linger_reset(srv, sock)
    finally:
        close_client(sock)


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_reset_mid_request(
    api: API,
    transport: Transport,
    row: Row,
    form: Form,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running(api, transport, ECHO, base=RecordsErrors) as srv:
        tally = Tally()

        async def faults() -> None:
            async with trio.open_nursery() as nursery:
                for _ in range(form.faults):
                    nursery.start_soon(reset_mid_request, srv)

        async def well_behaved() -> None:
            nonlocal tally
            tally = await load(srv, form.clients)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(faults)
            nursery.start_soon(well_behaved)
        # Every reset reaches handle_error; wait for the last ones (the
        # handlers may still be reading when the clients are gone).
        await srv.server.wait_for_errors(form.faults)
        await srv.assert_serving()
        errors = list(srv.server.errors)
    assert tally.served == form.clients, tally
    resets = {"ConnectionResetError", "BrokenResourceError(ConnectionResetError)"}
    assert len(errors) == form.faults, kinds(errors)
    assert set(errors) <= resets, kinds(errors)
    reported = reports(api, caplog, capsys)
    assert reported == form.faults
    row.record(
        load=f"{form.clients} requests at once",
        faults=f"{form.faults} clients reset mid-request"
        + (" (RST, SO_LINGER 0)" if transport == "tcp" else " (close with unread data)"),
        result=f"{tally}; handle_error: {kinds(errors)}, {reported_how(api)}",
        lost=tally.lost,
    )


async def reset_while_queued(srv: Running) -> None:
    """Connect while the server is at its cap (so the connection waits in
    the backlog), send half a line, and go: an RST for TCP, a plain close
    for Unix (nothing was sent to it, so there is no unread data)."""
    sock = await connect(srv)
    try:
        await sock.send(b"queued, half a li")
        linger_reset(srv, sock)
    finally:
        close_client(sock)


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_reset_in_backlog(
    api: API,
    transport: Transport,
    row: Row,
    form: Form,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    n = form.faults
    async with running(
        api, transport, ECHO, base=RecordsErrors, cap=CAP, request_queue_size=n
    ) as srv:
        holders = [await hold(srv) for _ in range(CAP)]
        for _ in range(n):
            await reset_while_queued(srv)  # gone before the server accepts it
        for sock in holders:
            close_client(sock)
        tally = await load(srv, form.clients)
        # Linux hands the dead connections to accept() all the same: each
        # reaches a handler, whose first read (TCP: ECONNRESET) or echo of
        # the half line (Unix: EPIPE) fails.
        await srv.server.wait_for_errors(n)
        await srv.assert_serving()
        errors = list(srv.server.errors)
    assert tally.served == form.clients, tally
    gone = {
        "ConnectionResetError",
        "BrokenPipeError",
        "BrokenResourceError(ConnectionResetError)",
        "BrokenResourceError(BrokenPipeError)",
    }
    assert set(errors) <= gone, kinds(errors)
    assert len(errors) == n, kinds(errors)
    assert reports(api, caplog, capsys) == n
    row.record(
        load=f"{form.clients} requests at once, after the faults",
        faults=f"{n} connections gone while queued in the backlog (cap {CAP} held)"
        + (" (RST)" if transport == "tcp" else " (closed)"),
        result=f"{tally}; each dead one accepted and handed to a handler; "
        f"handle_error: {kinds(errors)}",
        lost=tally.lost,
    )


# --- 4. Half-close ------------------------------------------------------------


async def half_close(srv: Running, payload: bytes) -> Outcome:
    """Send ``payload``, shut down writing, read the reply to EOF."""
    sock = await connect(srv)
    try:
        with trio.move_on_after(CLIENT_DEADLINE):
            try:
                await sock.send(payload)
                sock.shutdown(socket.SHUT_WR)
                reply = bytearray()
                while chunk := await sock.recv(65536):
                    reply += chunk
            except OSError as exc:
                if exc.errno in CONNECTION_GONE:
                    return "closed"
                raise
            if reply == payload:
                return "served"  # the whole reply, then EOF
            if payload.startswith(reply):
                return "closed"  # EOF before the whole reply
            raise AssertionError(f"wrong reply {bytes(reply)!r} to {payload!r}")
        return "lost"
    finally:
        close_client(sock)


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_half_close(api: API, transport: Transport, row: Row, form: Form) -> None:
    tally = Tally()

    async def one(i: int) -> None:
        tally.add(
            await half_close(srv, b"".join(b"client %d line %d\n" % (i, j) for j in range(3)))
        )

    async with running(api, transport, ECHO) as srv:
        async with trio.open_nursery() as nursery:
            for i in range(form.clients):
                nursery.start_soon(one, i)
        await srv.assert_serving()
    assert tally.served == form.clients, tally
    row.record(
        load=f"{form.clients} clients at once, 3 lines each",
        faults="each half-closes (SHUT_WR) after sending",
        result=f"{tally}: every reply complete, then EOF from the server",
        lost=tally.lost,
    )


# --- 5. Never reads the reply -------------------------------------------------

#: What a client that never reads sends, over and over: 64 KiB of 4 KiB
#: lines (long lines: the server echoes megabytes before its send buffer is
#: full, and short ones would make that CPU-bound).
FLOOD_CHUNK = (b"x" * 4095 + b"\n") * 16


async def never_reads(srv: Running) -> tuple[Outcome, float, int]:
    """Send lines without ever reading the echo, until the server closes
    the connection. Returns the outcome, seconds until then, bytes sent."""
    start = trio.current_time()  # before the server can have accepted
    if srv.transport == "tcp":
        # Small fixed buffers (no autotuning), so the echo backs up soon and
        # the server is not made to read megabytes first.
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        try:
            await sock.connect(srv.address)
        except BaseException:
            sock.close()
            raise
    else:
        sock = await connect(srv)
    sent = 0
    try:
        with trio.move_on_after(HANDLER_TIMEOUT + CLOSE_SLACK):
            try:
                while True:
                    sent += await sock.send(FLOOD_CHUNK)
            except OSError as exc:
                if exc.errno not in CONNECTION_GONE:
                    raise
                return "closed", trio.current_time() - start, sent
        return "lost", trio.current_time() - start, sent
    finally:
        close_client(sock)


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_never_reads_reply(
    api: API,
    transport: Transport,
    row: Row,
    form: Form,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    n_faults = max(form.faults // 5, 2)
    faults = Tally()
    waited: list[float] = []
    volume: list[int] = []
    tally = Tally()

    async def fault() -> None:
        outcome, seconds, sent = await never_reads(srv)
        faults.add(outcome)
        waited.append(seconds)
        volume.append(sent)

    async def well_behaved() -> None:
        nonlocal tally
        tally = await load(srv, form.clients)

    async with running(api, transport, TIMED_ECHO, base=RecordsErrors) as srv:
        async with trio.open_nursery() as nursery:
            for _ in range(n_faults):
                nursery.start_soon(fault)
            nursery.start_soon(well_behaved)
        await srv.assert_serving()
        errors = list(srv.server.errors)
    assert tally.served == form.clients, tally
    assert faults.closed == n_faults, f"a blocked handler kept its connection: {faults}"
    assert min(waited) >= HANDLER_TIMEOUT, span(waited)
    # The blocked handlers ended by the timeout on their write.
    assert set(errors) == {"TimeoutError"}, kinds(errors)
    assert len(errors) >= n_faults, kinds(errors)
    assert reports(api, caplog, capsys) == len(errors)
    row.record(
        load=f"{form.clients} requests at once",
        faults=f"{n_faults} clients send without reading the echo",
        result=f"{tally}; {faults.closed} handlers blocked writing ended by the "
        f"{HANDLER_TIMEOUT:g} s timeout, closed after {span(waited)} "
        f"({min(volume) >> 10}-{max(volume) >> 10} KiB sent); handle_error: {kinds(errors)}",
        lost=tally.lost + faults.lost,
    )


# --- 6. Connect flood past the backlog and the cap ----------------------------

BACKLOG = 8
CAP = 4
#: How long a flood client waits. For TCP, a connection the full accept
#: queue did not take is retried by the kernel with exponential back-off
#: (the client's SYN after 1, 3, 7 s...; a dropped handshake ACK after
#: 0.2, 0.4, 0.8 s... of data retransmits): measured here, 50 clients at a
#: backlog of 8 are all served within 3 s, in rounds of 9 as the retries
#: arrive in lock-step; 300 are not within a minute. A client whose
#: connection the server never accepted by then counts as refused.
FLOOD_DEADLINE = 20.0


def recording_streams(accepted: set[Any]) -> Handlers:
    """The echo service; its stream handlers record each client address."""

    class AsyncRecording(AsyncLineEcho):
        async def handle(self) -> None:
            accepted.add(self.client_address)
            await super().handle()

    class SyncRecording(SyncLineEcho):
        def handle(self) -> None:
            accepted.add(self.client_address)
            super().handle()

    return Handlers(AsyncRecording, AsyncDatagramEcho, SyncRecording, SyncDatagramEcho)


async def hold(srv: Running) -> trio.socket.SocketType:
    """A connection whose handler is running (its first echo came back)."""
    sock = await connect(srv)
    try:
        await sock.send(b"hold\n")
        with trio.fail_after(CLIENT_DEADLINE):
            assert await sock.recv(65536) == b"hold\n"
    except BaseException:
        close_client(sock)
        raise
    return sock


def start_connect(srv: Running) -> tuple[socket.socket, int]:
    """Begin a non-blocking connect; returns the socket and connect's errno:
    ``EINPROGRESS`` for TCP (the SYN is sent), ``0`` for a Unix connection
    the backlog took, ``EAGAIN`` when the Unix backlog was full."""
    family = socket.AF_INET if srv.transport == "tcp" else socket.AF_UNIX
    plain = socket.socket(family, socket.SOCK_STREAM)
    plain.setblocking(False)
    return plain, plain.connect_ex(srv.address)


async def finish_connect(
    srv: Running, plain: socket.socket, code: int
) -> trio.socket.SocketType | None:
    """Complete a connect begun by :func:`start_connect` (``None``: it never
    completed within FLOOD_DEADLINE). A Unix client that found the backlog
    full connects again blocking, as a blocking client would have waited."""
    if srv.transport == "tcp":
        sock = trio.socket.from_stdlib_socket(plain)
        with trio.move_on_after(FLOOD_DEADLINE):
            await trio.lowlevel.wait_writable(sock)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                return sock
        sock.close()
        return None
    if code == errno.EAGAIN:
        plain.setblocking(True)
        plain.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(FLOOD_DEADLINE), 0)
        )
        try:
            await in_thread(plain.connect, srv.address)
        except OSError:
            plain.close()
            return None
    elif code != 0:
        plain.close()
        raise OSError(code, f"connect failed: {errno.errorcode.get(code, code)}")
    return trio.socket.from_stdlib_socket(plain)


async def flood_request(
    srv: Running, plain: socket.socket, code: int, i: int
) -> tuple[Outcome, Any]:
    """Finish connecting, then one request; the outcome and the client's
    own address (TCP), for telling an accepted connection from one the
    kernel never handed to the server."""
    name = plain.getsockname() if srv.transport == "tcp" else None
    sock = await finish_connect(srv, plain, code)
    if sock is None:
        return "refused", name
    payload = b"flood %d\n" % i
    try:
        outcome, reply = await receive_reply(
            srv, sock, len(payload), deadline=FLOOD_DEADLINE, send=payload, gone=CONNECTION_GONE
        )
    finally:
        sock.close()
    if outcome == "served":
        assert reply == payload, (reply, payload)
    return outcome, name


@pytest.mark.parametrize("transport", STREAMS)
@pytest.mark.parametrize("api", APIS)
async def test_connect_flood(api: API, transport: Transport, row: Row, form: Form) -> None:
    n = form.faults
    outcomes: list[tuple[Outcome, Any, float]] = []
    accepted: set[Any] = set()
    handlers = recording_streams(accepted)
    async with running(api, transport, handlers, cap=CAP, request_queue_size=BACKLOG) as srv:
        holders = [await hold(srv) for _ in range(CAP)]
        # The server is at its cap and accepts nothing more: the flood meets
        # a backlog that fills at once.
        start = trio.current_time()
        attempts = [start_connect(srv) for _ in range(n)]
        codes = [code for _, code in attempts]

        async def one(i: int, plain: socket.socket, code: int) -> None:
            outcome, name = await flood_request(srv, plain, code, i)
            outcomes.append((outcome, name, trio.current_time() - start))

        async with trio.open_nursery() as nursery:
            for i, (plain, code) in enumerate(attempts):
                nursery.start_soon(one, i, plain, code)
            for sock in holders:
                close_client(sock)  # the cap frees: the server drains the backlog
        await srv.assert_serving()
    tally = Tally()
    for outcome, name, _ in outcomes:
        if outcome == "lost" and name is not None and name not in accepted:
            outcome = "refused"  # never accepted: the kernel's, not a hang of ours
        tally.add(outcome)
    assert tally.lost == 0, f"accepted and left hanging: {tally}"
    assert tally.closed == 0, tally
    served = sorted(t for outcome, _, t in outcomes if outcome == "served")
    queued = BACKLOG + 1  # what Linux's backlog holds: one more than asked for
    if transport == "tcp":
        # A connection past the backlog is retried by the kernel, no sooner
        # than TCP's minimum RTO (200 ms).
        slow = [t for t in served if t >= 0.2]
        assert len(slow) + tally.refused >= n - queued, f"accepted past the cap: {len(slow)}"
        how = f"{len(served) - len(slow)} served from the backlog, {len(slow)} after the "
        how += f"kernel retried their handshake ({span(slow)})"
    else:
        full = codes.count(errno.EAGAIN)
        assert codes.count(0) <= queued, f"accepted past the cap: {codes.count(0)} queued"
        assert full >= n - queued, codes
        how = f"{codes.count(0)} queued, {full} found the backlog full (EAGAIN) and waited "
        how += f"in a blocking connect; slowest {max(served):.1f} s"
    if tally.refused:
        how += f"; {tally.refused} not accepted within {FLOOD_DEADLINE:g} s"
    row.record(
        load=f"{CAP} connections holding the cap of {CAP}",
        faults=f"{n} connects at once, backlog {BACKLOG}",
        result=f"{tally}; {how}",
        lost=tally.lost,
    )


# --- 7. Datagrams larger than max_packet_size ---------------------------------

MAX_PACKET = 512
#: Oversized datagrams: one byte too many, and far too many.
OVERSIZED = (MAX_PACKET + 1, 8000)
#: Oversized datagrams in flight at once.
FAULT_LANES = 2


def recording_datagrams(seen: list[bytes]) -> Handlers:
    """The echo service; its datagram handlers record every packet they get."""

    class AsyncRecording(AsyncDatagramEcho):
        async def handle(self) -> None:
            seen.append(self.packet)
            await super().handle()

    class SyncRecording(SyncDatagramEcho):
        def handle(self) -> None:
            seen.append(self.packet)
            super().handle()

    return Handlers(AsyncLineEcho, AsyncRecording, SyncLineEcho, SyncRecording)


async def oversized_then_probe(srv: Running, i: int) -> Outcome:
    """Send an oversized datagram, then one of exactly ``max_packet_size``
    bytes from the same socket; the probe's reply shows the server has read
    (and dropped) the oversized one, and that it served the probe whole."""
    sock = await connect(srv)
    try:
        await sock.send(b"O" * OVERSIZED[i % len(OVERSIZED)])
        probe = (b"probe %d " % i).ljust(MAX_PACKET, b"P")
        await sock.send(probe)
        with trio.move_on_after(CLIENT_DEADLINE):
            reply = await sock.recv(65536)
            assert reply == probe, f"wrong reply to the probe: {reply[:40]!r}..."
            return "served"
        return "lost"
    finally:
        close_client(sock)


@pytest.mark.parametrize("transport", DATAGRAMS)
@pytest.mark.parametrize("api", APIS)
async def test_oversized_datagrams(
    api: API, transport: Transport, row: Row, form: Form, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bytes] = []
    probes = Tally()
    tally = Tally()

    async def faults(lane: int) -> None:
        # A few lanes, each one fault at a time: a burst of big datagrams
        # sent before the server runs would overflow its receive buffer
        # (the kernel drops them: RcvbufErrors), which tests the kernel.
        for i in range(lane, form.faults, FAULT_LANES):
            probes.add(await oversized_then_probe(srv, i))

    async def well_behaved() -> None:
        nonlocal tally
        tally = await bounded_load(srv, form.clients)

    handlers = recording_datagrams(seen)
    async with running(api, transport, handlers, max_packet_size=MAX_PACKET) as srv:
        async with trio.open_nursery() as nursery:
            for lane in range(FAULT_LANES):
                nursery.start_soon(faults, lane)
            nursery.start_soon(well_behaved)
        handled = list(seen)
        dropped = srv.server.truncated_datagrams
        await srv.assert_serving()
    assert tally.served == form.clients, tally
    assert probes.served == form.faults, probes
    # Never handed to a handler, truncated or whole.
    assert not [p for p in handled if p.startswith(b"O")], "an oversized datagram was served"
    assert max(len(p) for p in handled) == MAX_PACKET
    assert len(handled) == form.clients + form.faults
    assert dropped == form.faults
    warnings = [
        r
        for r in caplog.records
        if r.name == "trio_socketserver.server"
        and r.levelno == logging.WARNING
        and "larger than max_packet_size" in r.getMessage()
    ]
    assert len(warnings) == form.faults
    row.record(
        load=f"{at_once(transport, form.clients)}; {form.faults} of exactly {MAX_PACKET} bytes",
        faults=f"{form.faults} datagrams of {' or '.join(map(str, OVERSIZED))} bytes "
        f"(max_packet_size {MAX_PACKET}), {FAULT_LANES} at a time",
        result=f"{tally}, {probes.served} probes served; {dropped} dropped: counted "
        f"(truncated_datagrams), logged (WARNING), none reached a handler",
        lost=tally.lost + probes.lost,
    )


# --- 8. Many source addresses -------------------------------------------------


def peer(address: Any) -> bytes:
    """A client address as the server saw it."""
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}".encode()
    return str(address).encode()  # a Unix path


class AsyncWhoStream(ts.StreamRequestHandler):
    """Reply to each line with the line and the client's address."""

    timeout = CLIENT_DEADLINE

    async def handle(self) -> None:
        async for line in self.rfile:
            await self.wfile.write(
                line.rstrip(b"\n") + b" from " + peer(self.client_address) + b"\n"
            )


class AsyncWhoDatagram(ts.DatagramRequestHandler):
    async def handle(self) -> None:
        self.wfile.write(self.packet + b" from " + peer(self.client_address))


class SyncWhoStream(sync.StreamRequestHandler):
    timeout = CLIENT_DEADLINE

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.rstrip(b"\n") + b" from " + peer(self.client_address) + b"\n")


class SyncWhoDatagram(sync.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.packet + b" from " + peer(self.client_address))


WHO = Handlers(AsyncWhoStream, AsyncWhoDatagram, SyncWhoStream, SyncWhoDatagram)


async def from_source(srv: Running, source: str | None, i: int) -> tuple[Outcome, bytes]:
    """One request from a socket bound to ``source`` (a loopback address;
    ``None`` for a Unix datagram client, bound to its own path). The reply
    must name this socket's own address. Returns the outcome and it."""
    sock = await try_connect(srv, source=source)
    if sock is None:
        return "refused", b""
    try:
        me = peer(sock.getsockname())
        payload = b"request %d" % i
        expected = payload + b" from " + me + (b"\n" if srv.stream else b"")
        with trio.move_on_after(CLIENT_DEADLINE):
            try:
                if srv.stream:
                    await sock.send(payload + b"\n")
                    reply = bytearray()
                    while not reply.endswith(b"\n"):
                        chunk = await sock.recv(65536)
                        if not chunk:
                            return "closed", me
                        reply += chunk
                else:
                    await sock.send(payload)
                    reply = bytearray(await sock.recv(65536))
            except OSError as exc:
                if exc.errno in CONNECTION_GONE:
                    return "closed", me
                raise
            assert reply == expected, f"{me!r} got {bytes(reply)!r}"
            return "served", me
        return "lost", me
    finally:
        close_client(sock)


@pytest.mark.parametrize("transport", ["tcp", "udp", "unixdgram"])
@pytest.mark.parametrize("api", APIS)
async def test_many_source_addresses(api: API, transport: Transport, row: Row, form: Form) -> None:
    n = form.clients
    if transport == "unixdgram":
        sources: list[str | None] = [None] * n
        where = f"{n} client sockets, each bound to its own path"
    else:
        hosts = [str(ipaddress.IPv4Address("127.0.0.2") + k) for k in range(max(n // 2, 1))]
        sources = [hosts[i % len(hosts)] for i in range(n)]
        where = f"{n} client sockets on {len(hosts)} loopback addresses ({hosts[0]}-{hosts[-1]})"
    tally = Tally()
    served_from: set[bytes] = set()

    limiter = trio.CapacityLimiter(in_flight(transport, n))

    async def one(i: int, source: str | None) -> None:
        async with limiter:
            outcome, me = await from_source(srv, source, i)
        tally.add(outcome)
        if outcome == "served":
            served_from.add(me.rpartition(b":")[0] if source is not None else me)

    async with running(api, transport, WHO) as srv:
        async with trio.open_nursery() as nursery:
            for i, source in enumerate(sources):
                nursery.start_soon(one, i, source)
        # And the service as a whole is still the echo it was (no stale state).
        outcome, reply = await from_source(srv, sources[0], n)
        assert outcome == "served", (outcome, reply)
    distinct = len(set(sources)) if transport != "unixdgram" else n
    assert tally.served == n, tally
    assert len(served_from) == distinct
    row.record(
        load=where,
        faults=f"{at_once(transport, n)}, each from a different socket",
        result=f"{tally}; every reply named its own sender and reached it "
        f"({len(served_from)} distinct source addresses)",
        lost=tally.lost,
    )
