"""The shutdown phases: stop accepting, grace, cancel; and shutdown()'s
safety rules (before serving, twice, from inside a handler)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import trio_socketserver as ts

from .conftest import receive_all, receive_exactly, tcp_connect


class Gate:
    """Lets a test see handlers arrive and decide when they may finish."""

    def __init__(self) -> None:
        self.arrived = 0
        self.arrived_event = trio.Event()
        self.release = trio.Event()
        self.finished: list[str] = []


class Parked(ts.BaseRequestHandler[ts.ConnectionStream, Any, Any]):
    """Replies "hi", then waits for the gate; records how it ended."""

    gate: Gate

    async def handle(self) -> None:
        await self.request.send_all(b"hi")
        self.gate.arrived += 1
        self.gate.arrived_event.set()
        try:
            await self.gate.release.wait()
        except trio.Cancelled:
            self.gate.finished.append("cancelled")
            raise
        await self.request.send_all(b"bye")
        self.gate.finished.append("completed")

    async def finish(self) -> None:
        self.gate.finished.append("finish")


def parked(gate: Gate) -> type[Parked]:
    return type("ParkedHere", (Parked,), {"gate": gate})


async def test_shutdown_before_serving_returns_and_serve_forever_returns_at_once() -> None:
    with ts.TCPServer(("127.0.0.1", 0), Parked) as server:
        with trio.fail_after(5):
            await server.shutdown()  # never started: must not hang (the stdlib does)
            await server.serve_forever()  # the pending request stops it at once
        assert not server.statistics().serving


async def test_shutdown_twice_and_after_return(nursery: trio.Nursery) -> None:
    with ts.TCPServer(("127.0.0.1", 0), Parked) as server:
        await nursery.start(server.serve_forever)
        with trio.fail_after(5):
            async with trio.open_nursery() as inner:
                inner.start_soon(server.shutdown)
                inner.start_soon(server.shutdown)
            await server.shutdown()
        assert not server.statistics().serving


async def test_stop_accepting_is_immediate(nursery: trio.Nursery) -> None:
    # No poll interval: shutdown returns without any time passing.
    with ts.TCPServer(("127.0.0.1", 0), Parked) as server:
        await nursery.start(server.serve_forever, 3600)
        before = trio.current_time()
        await server.shutdown()
        assert trio.current_time() - before < 1.0


class ShutdownFromInside(ts.StreamRequestHandler[Any, ts.TCPServer]):
    async def handle(self) -> None:
        with trio.fail_after(5):
            await self.server.shutdown()  # must not deadlock
        await self.wfile.write(b"shutting down: %d" % self.server.shutting_down)


@pytest.mark.parametrize("server_class", [ts.TCPServer, ts.ConcurrentTCPServer])
async def test_shutdown_from_inside_a_handler(server_class: type[ts.TCPServer]) -> None:
    with server_class(("127.0.0.1", 0), ShutdownFromInside) as server:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_forever)
            stream = await tcp_connect(server.server_address)
            async with stream:
                assert await receive_all(stream) == b"shutting down: 1"
        # The nursery exited: serve_forever returned by itself.
        assert not server.statistics().serving


@pytest.mark.parametrize("server_class", [ts.TCPServer, ts.ConcurrentTCPServer])
async def test_grace_lets_in_flight_requests_finish(
    server_class: type[ts.TCPServer], nursery: trio.Nursery, no_fd_leak: None
) -> None:
    gate = Gate()
    with server_class(("127.0.0.1", 0), parked(gate)) as server:
        server.grace_period = None  # wait as long as it takes
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        assert await receive_exactly(stream, 2) == b"hi"
        done = trio.Event()

        async def shut() -> None:
            await server.shutdown()
            done.set()

        nursery.start_soon(shut)
        await trio.testing.wait_all_tasks_blocked()
        assert server.shutting_down
        assert not done.is_set(), "shutdown must wait for the in-flight request"
        # Phase 1: a client connecting now lands in the kernel backlog and is
        # never taken by the server.
        late = await tcp_connect(server.server_address)
        await late.send_all(b"late")
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().requests_received == 1
        gate.release.set()
        assert await receive_all(stream) == b"bye"
        await done.wait()
        await stream.aclose()
    # server_close() refused the backlog: the late client gets no reply.
    with pytest.raises(trio.BrokenResourceError):
        await receive_all(late)
    await late.aclose()
    assert gate.finished == ["completed", "finish"]


async def _parked_streams(server: Any, count: int) -> list[trio.SocketStream]:
    """``count`` clients, each connected to a parked handler (it sent "hi")."""
    streams = [await tcp_connect(server.server_address) for _ in range(count)]
    for s in streams:
        assert await receive_exactly(s, 2) == b"hi"
    return streams


async def test_grace_expiry_cancels_and_finish_runs(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    gate = Gate()
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), parked(gate)) as server:
        await nursery.start(server.serve_forever)
        streams = await _parked_streams(server, 3)
        start = trio.current_time()
        await server.shutdown(grace_period=7)
        assert trio.current_time() - start == pytest.approx(7)
        assert gate.finished == ["cancelled", "finish"] * 3
        for s in streams:  # each connection was closed cleanly: EOF, no reply
            assert await receive_all(s) == b""
            await s.aclose()


async def test_daemon_requests_cancel_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    gate = Gate()
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), parked(gate)) as server:
        server.daemon_requests = True
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        assert await receive_exactly(stream, 2) == b"hi"
        start = trio.current_time()
        await server.shutdown()
        assert trio.current_time() == start
        assert gate.finished == ["cancelled", "finish"]
        await stream.aclose()


class WindsDown(ts.BaseRequestHandler[ts.ConnectionStream, Any, ts.TCPServer]):
    async def handle(self) -> None:
        await self.request.send_all(b"working")
        await self.server.wait_shutting_down()
        await self.request.send_all(b";saved")


async def test_handlers_see_shutdown_begin(nursery: trio.Nursery) -> None:
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), WindsDown) as server:
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        assert await receive_exactly(stream, 7) == b"working"
        await server.shutdown()
        assert await receive_all(stream) == b";saved"
        await stream.aclose()


async def test_cancelling_serve_forever_cancels_handlers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = Gate()
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), parked(gate)) as server:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_forever)
            stream = await tcp_connect(server.server_address)
            assert await receive_exactly(stream, 2) == b"hi"
            nursery.cancel_scope.cancel()
        assert gate.finished == ["cancelled", "finish"]
        assert await receive_all(stream) == b""
        await stream.aclose()


async def test_server_close_while_serving_stops_it(nursery: trio.Nursery) -> None:
    server = ts.ConcurrentTCPServer(("127.0.0.1", 0), Parked)
    stopped = trio.Event()

    async def run() -> None:
        await server.serve_forever()
        stopped.set()

    nursery.start_soon(run)
    await trio.testing.wait_all_tasks_blocked()
    assert server.statistics().serving
    server.server_close()
    with trio.fail_after(5):
        await stopped.wait()
    assert server.fileno() == -1


async def test_serve_again_after_shutdown(nursery: trio.Nursery) -> None:
    gate = Gate()
    gate.release.set()
    with ts.TCPServer(("127.0.0.1", 0), parked(gate)) as server:
        for _ in range(2):
            await nursery.start(server.serve_forever)
            stream = await tcp_connect(server.server_address)
            async with stream:
                assert await receive_all(stream) == b"hibye"
            await server.shutdown()
        assert server.statistics().requests_received == 2


async def test_connection_refused_after_close() -> None:
    with ts.TCPServer(("127.0.0.1", 0), Parked) as server:
        address = server.server_address
    with pytest.raises(OSError, match=r"[Cc]onnect"):
        await tcp_connect(address)


async def test_invalid_grace_period_rejected() -> None:
    with (
        ts.TCPServer(("127.0.0.1", 0), Parked) as server,
        pytest.raises(ValueError, match="grace_period"),
    ):
        await server.shutdown(grace_period=-1)


def grace_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "trio_socketserver.server" and "grace period ended" in r.getMessage()
    ]


@pytest.mark.parametrize(
    ("server_class", "running"), [(ts.TCPServer, 1), (ts.ConcurrentTCPServer, 3)]
)
async def test_grace_expiry_warning_counts_the_requests_still_running(
    server_class: type[ts.TCPServer],
    running: int,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The count is taken at the deadline, before anything is cancelled. (It
    # used to be read when the watcher's own Cancelled arrived, in the same
    # batch as the handlers', in random order: a handler that ran first had
    # already left the count. So each round below had about an even chance
    # of a missing warning or a wrong number; many rounds make that certain.)
    for _ in range(12):
        caplog.clear()
        gate = Gate()
        with server_class(("127.0.0.1", 0), parked(gate)) as server:
            await nursery.start(server.serve_forever)
            streams = await _parked_streams(server, running)
            start = trio.current_time()
            await server.shutdown(grace_period=5)
            assert trio.current_time() - start == pytest.approx(5)
            for s in streams:
                await s.aclose()
        assert gate.finished == ["cancelled", "finish"] * running
        assert grace_warnings(caplog) == [
            f"{server_class.__name__}: the grace period ended with {running} request(s) "
            "still running: cancelling them"
        ]


async def test_a_later_shutdown_shortens_the_grace_and_zero_cancels_silently(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for second_grace, warned in ((4.0, True), (0.0, False)):
        caplog.clear()
        gate = Gate()
        with ts.ConcurrentTCPServer(("127.0.0.1", 0), parked(gate)) as server:
            await nursery.start(server.serve_forever)
            streams = await _parked_streams(server, 2)
            start = trio.current_time()
            nursery.start_soon(server.shutdown)  # grace_period: 30 s
            await trio.testing.wait_all_tasks_blocked()
            await server.shutdown(grace_period=second_grace)
            assert trio.current_time() - start == pytest.approx(second_grace)
            for s in streams:
                await s.aclose()
        assert gate.finished == ["cancelled", "finish"] * 2
        assert len(grace_warnings(caplog)) == warned, grace_warnings(caplog)


async def test_no_grace_warning_when_requests_finish_in_time(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate()
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), parked(gate)) as server:
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        assert await receive_exactly(stream, 2) == b"hi"
        nursery.start_soon(server.shutdown)
        await trio.testing.wait_all_tasks_blocked()
        gate.release.set()
        assert await receive_all(stream) == b"bye"
        await stream.aclose()
        await server.shutdown()
    assert gate.finished == ["completed", "finish"]
    assert grace_warnings(caplog) == []
