"""ConnectionStream keeps trio's guarantees without a yield per call:
cancellation is prompt (Rule 1), tasks stay fair (Rule 2), errors match
trio.SocketStream."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from trio_socketserver import ConnectionStream
from trio_socketserver._connection_stream import FAIRNESS_INTERVAL


@pytest.fixture
def pair() -> Iterator[tuple[ConnectionStream, socket.socket]]:
    """A ConnectionStream and the stdlib socket at the other end (real TCP)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
    stream = ConnectionStream(conn)
    try:
        yield stream, client
    finally:
        stream.close()
        client.close()


async def test_roundtrip_and_eof(pair: tuple[ConnectionStream, socket.socket]) -> None:
    stream, peer = pair
    peer.sendall(b"abc")
    assert await stream.receive_some(10) == b"abc"
    await stream.send_all(b"xyz")
    assert peer.recv(10) == b"xyz"
    await stream.send_eof()
    assert peer.recv(10) == b""
    peer.shutdown(socket.SHUT_WR)
    assert await stream.receive_some() == b""


async def test_large_send_takes_the_slow_path(pair: tuple[ConnectionStream, socket.socket]) -> None:
    stream, peer = pair
    payload = bytes(range(256)) * 40_000  # ~10 MB: far beyond the socket buffers
    received = bytearray()

    def drain() -> None:
        while len(received) < len(payload):
            received.extend(peer.recv(1 << 20))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, drain)
        await stream.send_all(payload)
    assert received == payload


async def test_cancelled_before_a_ready_receive(
    pair: tuple[ConnectionStream, socket.socket],
) -> None:
    stream, peer = pair
    peer.sendall(b"ready data")  # receive_some could complete without waiting...
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.receive_some()  # ...but a cancelled scope wins (Rule 1)
    assert scope.cancelled_caught
    assert await stream.receive_some() == b"ready data"  # nothing was consumed


async def test_cancel_while_waiting(pair: tuple[ConnectionStream, socket.socket]) -> None:
    stream, _ = pair
    with trio.move_on_after(0.05) as scope:
        await stream.receive_some()
    assert scope.cancelled_caught


async def test_fairness_a_non_blocking_sender_lets_others_run(
    pair: tuple[ConnectionStream, socket.socket],
) -> None:
    stream, peer = pair
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    ticks = 0

    async def other() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.lowlevel.checkpoint()  # let it start
        start = ticks
        # Small sends always succeed at once, so they never wait; Rule 2 must
        # still yield every FAIRNESS_INTERVAL operations.
        for _ in range(FAIRNESS_INTERVAL * 20):
            await stream.send_all(b"x")
        # 20 forced yields; trio may order a batch either way, so allow slack.
        # Without Rule 2 the other task would not have run at all.
        assert ticks - start >= 10
        nursery.cancel_scope.cancel()


async def test_concurrent_receivers_conflict(pair: tuple[ConnectionStream, socket.socket]) -> None:
    stream, _ = pair
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.receive_some)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await stream.receive_some()
        nursery.cancel_scope.cancel()


async def test_close_wakes_a_blocked_receiver(pair: tuple[ConnectionStream, socket.socket]) -> None:
    stream, _ = pair
    async with trio.open_nursery() as nursery:

        async def receiver() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive_some()

        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"after close")
    assert stream.closed
    assert stream.fileno() == -1


async def test_reset_becomes_broken_resource(pair: tuple[ConnectionStream, socket.socket]) -> None:
    stream, peer = pair
    # SO_LINGER 0: close sends RST instead of FIN.
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()

    async def talk() -> None:
        for _ in range(100):  # the RST may take a moment to arrive; data never does
            await stream.send_all(b"x" * 65536)
            await stream.receive_some()

    with pytest.raises(trio.BrokenResourceError) as info:
        await talk()
    assert isinstance(info.value.__cause__, OSError)


async def test_bad_arguments(pair: tuple[ConnectionStream, socket.socket]) -> None:
    stream, _ = pair
    with pytest.raises(ValueError, match="max_bytes"):
        await stream.receive_some(0)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        pytest.raises(ValueError, match="SOCK_STREAM"),
    ):
        ConnectionStream(udp)


def test_trio_socket_view(pair: tuple[ConnectionStream, socket.socket]) -> None:
    stream, peer = pair
    assert stream.socket.family == socket.AF_INET
    assert stream.getpeername() == peer.getsockname()
    assert stream.socket is stream.socket  # created once


async def test_close_wakes_a_task_waiting_to_send(
    pair: tuple[ConnectionStream, socket.socket],
) -> None:
    stream, _ = pair
    # Fill the send buffer (the peer never reads) until sending blocks.
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def fill() -> None:
        while True:
            await stream.send_all(b"x" * 65536)

    async with trio.open_nursery() as filler:
        filler.start_soon(fill)
        await trio.testing.wait_all_tasks_blocked()  # fill() waits: the buffer is full
        filler.cancel_scope.cancel()

    async def waiter() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await stream.wait_send_all_might_not_block()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        stream.close()
