"""Rule 4 of the fast stream: waits for readability go through the run's
ReadinessPoller (one edge-triggered registration per connection), no event is
lost, spurious wakeups are harmless, and every way out of the poller (the
trio socket view, a failing dispatcher, no epoll, the end of the run) falls
back to trio's own wait_readable."""

from __future__ import annotations

import errno
import logging
import select
import socket
import struct
from collections.abc import Iterator
from contextlib import closing

import pytest
import trio
import trio.testing

from trio_socketserver import ConnectionStream, _readiness
from trio_socketserver._readiness import ReadinessPoller, current_poller


def _pair() -> tuple[ConnectionStream, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
    return ConnectionStream(conn), client


@pytest.fixture
def pairs() -> Iterator[list[tuple[ConnectionStream, socket.socket]]]:
    """Twenty ConnectionStreams, each with the stdlib socket at its other end."""
    made = [_pair() for _ in range(20)]
    try:
        yield made
    finally:
        for stream, peer in made:
            stream.close()
            peer.close()


def _tasks_trio_waits_on_to_read() -> int:
    stats = trio.lowlevel.current_statistics().io_statistics
    waiting = stats.tasks_waiting_read
    assert isinstance(waiting, int)
    return waiting


async def _echo_round(pairs: list[tuple[ConnectionStream, socket.socket]], message: bytes) -> None:
    """Park a receiver on every stream, then have every peer send."""
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        for stream, _ in pairs:
            nursery.start_soon(_receive_into, stream, got)
        await trio.testing.wait_all_tasks_blocked()
        for _, peer in pairs:
            peer.sendall(message)
    assert got == [message] * len(pairs)


async def _receive_into(stream: ConnectionStream, got: list[bytes]) -> None:
    got.append(await stream.receive_some())


async def test_parked_receivers_cost_trio_one_registration(
    pairs: list[tuple[ConnectionStream, socket.socket]],
) -> None:
    await _echo_round(pairs, b"first")  # drains each socket: the next receive waits first
    idle = _tasks_trio_waits_on_to_read()  # the run's own, and the poller's dispatcher
    async with trio.open_nursery() as nursery:
        for stream, _ in pairs:
            nursery.start_soon(stream.receive_some)
        await trio.testing.wait_all_tasks_blocked()
        # Twenty receivers are parked, and trio watches no more descriptors
        # than before: they wait in the poller.
        assert _tasks_trio_waits_on_to_read() == idle
        nursery.cancel_scope.cancel()
    await _echo_round(pairs, b"after a cancelled wait")


async def test_without_epoll_streams_wait_in_trio(
    pairs: list[tuple[ConnectionStream, socket.socket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_readiness, "AVAILABLE", False)
    assert current_poller() is None
    await _echo_round(pairs, b"first")
    idle = _tasks_trio_waits_on_to_read()
    async with trio.open_nursery() as nursery:
        for stream, _ in pairs:
            nursery.start_soon(stream.receive_some)
        await trio.testing.wait_all_tasks_blocked()
        assert _tasks_trio_waits_on_to_read() == idle + len(pairs)
        nursery.cancel_scope.cancel()
    await _echo_round(pairs, b"second")


async def test_out_of_descriptors_for_the_poller_falls_back_and_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> select.epoll:
        raise OSError(errno.EMFILE, "Too many open files")

    real_epoll = select.epoll
    monkeypatch.setattr(select, "epoll", refuse)
    stream, peer = _pair()
    with closing(stream), peer, trio.fail_after(10):
        peer.sendall(b"x")
        assert await stream.receive_some() == b"x"
        idle = _tasks_trio_waits_on_to_read()
        async with trio.open_nursery() as nursery:
            got: list[bytes] = []
            nursery.start_soon(_receive_into, stream, got)
            await trio.testing.wait_all_tasks_blocked()
            assert _tasks_trio_waits_on_to_read() == idle + 1  # waits in trio
            peer.sendall(b"served anyway")
        assert got == [b"served anyway"]
    # Descriptors are back: the next connection gets the poller.
    monkeypatch.setattr(select, "epoll", real_epoll)
    assert current_poller() is not None


async def test_an_event_while_nobody_is_parked_is_not_lost() -> None:
    stream, peer = _pair()
    with closing(stream), peer, trio.fail_after(10):  # a lost event would hang here
        peer.sendall(b"1")
        assert await stream.receive_some() == b"1"
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_receive_into, stream, got)
            await trio.testing.wait_all_tasks_blocked()  # parked: registered
            peer.sendall(b"2")
        assert got == [b"2"]
        # Nobody is parked now. The event for b"3" reaches the poller while
        # this task is blocked elsewhere; the next receive must still see it.
        peer.sendall(b"3")
        await trio.testing.wait_all_tasks_blocked()
        assert await stream.receive_some() == b"3"


@pytest.mark.parametrize("ending", ["eof", "reset"])
async def test_the_end_behind_the_last_data_is_seen(ending: str) -> None:
    stream, peer = _pair()
    with closing(stream), peer, trio.fail_after(10):  # a missed end would hang
        peer.sendall(b"x")
        assert await stream.receive_some() == b"x"
        async with trio.open_nursery() as nursery:
            got: list[bytes] = []
            nursery.start_soon(_receive_into, stream, got)
            await trio.testing.wait_all_tasks_blocked()  # parked: registered
            # Data and the end arrive before the poller runs: one edge.
            peer.sendall(b"last")
            if ending == "eof":
                peer.shutdown(socket.SHUT_WR)
            else:
                peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                peer.close()
        # The receive took the data and left the end; no new edge will come.
        assert got == [b"last"]
        if ending == "eof":
            assert await stream.receive_some() == b""
            assert await stream.receive_some() == b""
        else:
            with pytest.raises(trio.BrokenResourceError):
                await stream.receive_some()


async def test_a_spurious_event_is_harmless() -> None:
    stream, peer = _pair()
    with closing(stream), peer, trio.fail_after(10):
        peer.sendall(b"x")
        assert await stream.receive_some() == b"x"
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_receive_into, stream, got)
            await trio.testing.wait_all_tasks_blocked()
            peer.sendall(b"a")
        assert got == [b"a"]
        # b"bc" arrives while nobody is parked (its event is remembered), and
        # full one-byte receives take both bytes without waiting...
        peer.sendall(b"bc")
        await trio.testing.wait_all_tasks_blocked()
        assert await stream.receive_some(1) == b"b"
        assert await stream.receive_some(1) == b"c"
        # ...so the remembered event is stale: the next receive finds nothing,
        # waits again and gets what comes next.
        got.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_receive_into, stream, got)
            await trio.testing.wait_all_tasks_blocked()
            peer.sendall(b"d")
        assert got == [b"d"]


async def test_taking_the_socket_view_moves_a_parked_receiver_to_trio() -> None:
    stream, peer = _pair()
    with closing(stream), peer:
        peer.sendall(b"x")
        assert await stream.receive_some() == b"x"

        async def receiver() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive_some()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            before = _tasks_trio_waits_on_to_read()
            view = stream.socket
            await trio.testing.wait_all_tasks_blocked()
            # The receiver now waits in trio, so closing through the view
            # (which only tells trio's waiters) wakes it.
            assert _tasks_trio_waits_on_to_read() == before + 1
            view.close()


async def test_a_reused_descriptor_number_wakes_the_stale_waiter() -> None:
    poller = current_poller()
    assert poller is not None
    first, first_peer = socket.socketpair()
    fd = first.fileno()
    poller.register(fd)
    woken = trio.Event()

    async def stale() -> None:
        await poller.park(fd)
        woken.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stale)
        await trio.testing.wait_all_tasks_blocked()
        first.close()  # behind the poller's back: no forget()
        second, second_peer = socket.socketpair()
        with second, second_peer, first_peer:
            if second.fileno() != fd:
                pytest.skip("the kernel did not reuse the descriptor number")
            poller.register(second.fileno())
            with trio.fail_after(10):
                await woken.wait()


class _FailingEpoll:
    """An epoll whose poll() fails, as if the kernel refused."""

    def __init__(self, real: object) -> None:
        self._real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def poll(self, *args: object) -> list[tuple[int, int]]:
        raise OSError("simulated epoll failure")


async def test_a_failing_dispatcher_falls_back_to_trio(caplog: pytest.LogCaptureFixture) -> None:
    stream, peer = _pair()
    with closing(stream), peer, trio.fail_after(10):
        poller = current_poller()
        assert isinstance(poller, ReadinessPoller)
        # Swapped before the dispatcher task first runs (it starts at the
        # next schedule point), so it polls the failing one.
        object.__setattr__(poller, "_epoll", _FailingEpoll(poller._epoll))
        peer.sendall(b"x")
        assert await stream.receive_some() == b"x"
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_receive_into, stream, got)
            await trio.testing.wait_all_tasks_blocked()  # parked in the poller
            with caplog.at_level(logging.ERROR, logger="trio_socketserver.server"):
                peer.sendall(b"y")  # the dispatcher wakes, fails, closes
                await trio.testing.wait_all_tasks_blocked()
                assert poller.closed
                assert current_poller() is None  # no second poller in this run
                peer.sendall(b"z")
        assert got == [b"y"]  # woken when the poller closed
        assert "readiness poller failed" in caplog.text
        assert await stream.receive_some() == b"z"
        # The stream now waits in trio, and keeps working.
        idle = _tasks_trio_waits_on_to_read()
        got.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_receive_into, stream, got)
            await trio.testing.wait_all_tasks_blocked()
            assert _tasks_trio_waits_on_to_read() == idle + 1
            peer.sendall(b"after")
        assert got == [b"after"]


def test_a_stream_outlives_the_run_that_registered_it() -> None:
    stream, peer = _pair()

    async def round_trip(message: bytes) -> None:
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_receive_into, stream, got)
            await trio.testing.wait_all_tasks_blocked()
            peer.sendall(message)
        assert got == [message]

    with closing(stream), peer:
        peer.sendall(b"x")
        trio.run(stream.receive_some)  # drained: the next receive parks
        trio.run(round_trip, b"first run")
        # The first run's poller closed with it; this run gets its own.
        trio.run(round_trip, b"second run")
