"""serve(): transport selection, nursery.start, signals."""

from __future__ import annotations

import os
import signal
from typing import Any, ClassVar

import pytest
import trio
import trio.testing

import trio_socketserver as ts
from trio_socketserver._serve import _SignalHub, pick_server_class

from .conftest import receive_all, receive_exactly, tcp_connect, udp_roundtrip, unix_connect


class Echo(ts.StreamRequestHandler[Any, Any]):
    async def handle(self) -> None:
        await self.wfile.write(await self.rfile.readline())


class DEcho(ts.DatagramRequestHandler[Any, Any]):
    async def handle(self) -> None:
        self.wfile.write(self.packet)


@pytest.mark.parametrize(
    ("address", "handler", "expected"),
    [
        (("127.0.0.1", 0), Echo, ts.ConcurrentTCPServer),
        (("127.0.0.1", 0), DEcho, ts.ConcurrentUDPServer),
        ("/tmp/x", Echo, ts.ConcurrentUnixStreamServer),
        ("/tmp/x", DEcho, ts.ConcurrentUnixDatagramServer),
    ],
)
def test_pick_server_class(address: object, handler: object, expected: type) -> None:
    assert pick_server_class(address, handler) is expected


def test_pick_server_class_rejects_junk() -> None:
    with pytest.raises(TypeError, match=r"\(host, port\) tuple or a Unix socket path"):
        pick_server_class(8080, Echo)


async def test_serve_tcp_with_nursery_start(nursery: trio.Nursery, no_fd_leak: None) -> None:
    server = await nursery.start(ts.serve, ("127.0.0.1", 0), Echo)
    assert isinstance(server, ts.ConcurrentTCPServer)
    stream = await tcp_connect(server.server_address)
    async with stream:
        await stream.send_all(b"ping\n")
        assert await receive_all(stream) == b"ping\n"
    await server.shutdown()


async def test_serve_udp_and_unix(sock_path: str, nursery: trio.Nursery) -> None:
    udp = await nursery.start(ts.serve, ("127.0.0.1", 0), DEcho)
    assert (await udp_roundtrip(udp.server_address, b"dgram"))[0] == b"dgram"
    unix = await nursery.start(ts.serve, sock_path, Echo)
    stream = await unix_connect(sock_path)
    async with stream:
        await stream.send_all(b"unix\n")
        assert await receive_all(stream) == b"unix\n"
    await udp.shutdown()
    await unix.shutdown()


class Hold(ts.StreamRequestHandler[Any, ts.ConcurrentTCPServer]):
    ended: ClassVar[list[str]] = []

    async def handle(self) -> None:
        await self.wfile.write(b"in\n")
        try:
            await self.server.wait_shutting_down()
            await self.wfile.write(b"graceful\n")
            await trio.sleep_forever()
        except trio.Cancelled:
            Hold.ended.append("cancelled")
            raise


async def test_sigint_graceful_then_second_signal_cancels() -> None:
    Hold.ended = []
    async with trio.open_nursery() as nursery:
        done = trio.Event()

        async def run(task_status: trio.TaskStatus[ts.SocketServer[Any, Any]]) -> None:
            await ts.serve(("127.0.0.1", 0), Hold, grace_period=None, task_status=task_status)
            done.set()

        server = await nursery.start(run)
        stream = await tcp_connect(server.server_address)
        assert await receive_exactly(stream, 3) == b"in\n"
        os.kill(os.getpid(), signal.SIGINT)  # first: graceful
        assert await receive_exactly(stream, 9) == b"graceful\n"
        assert server.shutting_down
        assert not done.is_set()
        os.kill(os.getpid(), signal.SIGTERM)  # second: cancel in-flight requests
        with trio.fail_after(5):
            await done.wait()
        assert Hold.ended == ["cancelled"]
        assert await receive_all(stream) == b""
        await stream.aclose()
    assert server.fileno() == -1


async def test_serve_applies_cap_and_grace(nursery: trio.Nursery) -> None:
    server = await nursery.start(
        lambda task_status: ts.serve(
            ("127.0.0.1", 0),
            Echo,
            max_concurrent_requests=3,
            grace_period=1.5,
            handle_signals=False,
            task_status=task_status,
        )
    )
    assert server.max_concurrent_requests == 3
    assert server.grace_period == 1.5
    await server.shutdown()


async def test_serve_rejects_bad_grace() -> None:
    with pytest.raises(ValueError, match="grace_period"):
        await ts.serve(("127.0.0.1", 0), Echo, grace_period=-2)


@pytest.mark.parametrize(
    ("cap", "error"),
    [(0, ValueError), (-3, ValueError), ("10", TypeError), (True, TypeError), (2.0, TypeError)],
)
async def test_serve_rejects_a_bad_cap_before_reporting_started(
    cap: Any, error: type[Exception], no_fd_leak: None
) -> None:
    # nursery.start() raising (instead of returning a server) means serve()
    # failed before task_status.started(): nothing was ever served.
    async with trio.open_nursery() as nursery:
        with pytest.raises(error, match=r"max_concurrent_requests must be None \(no cap\)"):
            await nursery.start(
                lambda task_status: ts.serve(
                    ("127.0.0.1", 0),
                    Echo,
                    max_concurrent_requests=cap,
                    handle_signals=False,
                    task_status=task_status,
                )
            )


@pytest.mark.parametrize("server_class", [ts.TCPServer, ts.UDPServer])
async def test_serve_rejects_a_cap_for_a_server_class_without_one(
    server_class: Any, no_fd_leak: None
) -> None:
    with pytest.raises(TypeError, match=f"{server_class.__name__} has no concurrency cap"):
        await ts.serve(("127.0.0.1", 0), Echo, server_class=server_class, max_concurrent_requests=2)


async def test_serve_checks_the_server_class_cap_before_binding(no_fd_leak: None) -> None:
    class ZeroCap(ts.ConcurrentTCPServer):
        max_concurrent_requests = 0

    with pytest.raises(ValueError, match=r"ZeroCap.max_concurrent_requests must be None"):
        await ts.serve(("127.0.0.1", 0), Echo, server_class=ZeroCap)


async def _serve_until(
    address: Any,
    handler: Any,
    done: trio.Event,
    task_status: trio.TaskStatus[ts.SocketServer[Any, Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await ts.serve(address, handler, task_status=task_status)
    done.set()


async def test_one_signal_shuts_down_every_serve_of_the_run() -> None:
    # trio hands a signal to the receiver opened last only: with a receiver
    # per serve(), Ctrl-C stopped one server of two.
    before = signal.getsignal(signal.SIGINT)
    done = [trio.Event(), trio.Event()]
    async with trio.open_nursery() as nursery:
        tcp = await nursery.start(_serve_until, ("127.0.0.1", 0), Echo, done[0])
        await nursery.start(_serve_until, ("127.0.0.1", 0), DEcho, done[1])
        assert signal.getsignal(signal.SIGINT) is not before  # one receiver, open
        os.kill(os.getpid(), signal.SIGINT)
        with trio.fail_after(5):
            await done[0].wait()
            await done[1].wait()
    assert tcp.fileno() == -1
    await trio.testing.wait_all_tasks_blocked()  # the hub's task has closed its receiver
    assert signal.getsignal(signal.SIGINT) is before


async def test_signal_handlers_are_restored_whatever_order_serves_end_in() -> None:
    # Receivers closed out of order used to restore each other's handlers,
    # leaving a dead one installed (Ctrl-C then did nothing after the run).
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    for first_to_end in (0, 1):
        done = [trio.Event(), trio.Event()]
        async with trio.open_nursery() as nursery:
            servers = [
                await nursery.start(_serve_until, ("127.0.0.1", 0), Echo, done[i]) for i in (0, 1)
            ]
            await servers[first_to_end].shutdown()
            await servers[1 - first_to_end].shutdown()
        await trio.testing.wait_all_tasks_blocked()
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


async def test_a_hub_started_as_another_closes_waits_for_it() -> None:
    # The old hub closes its receiver (restoring what it replaced) in its
    # own task, later; a new hub opening meanwhile must open after that, or
    # the old one's restore would undo the new one's handlers.
    # trio runs the two hubs' tasks in a random order: ten rounds.
    before = signal.getsignal(signal.SIGTERM)
    with (
        ts.TCPServer(("127.0.0.1", 0), Echo) as one,
        ts.TCPServer(("127.0.0.1", 0), Echo) as two,
    ):
        for _ in range(10):
            old = _SignalHub.of_this_run()
            old.add(one)
            old.discard(one)  # no checkpoint since: its task has not even started
            new = _SignalHub.of_this_run()
            assert new is not old
            new.add(two)
            await trio.testing.wait_all_tasks_blocked()
            assert signal.getsignal(signal.SIGTERM) is not before  # the new receiver's
            new.discard(two)
            await trio.testing.wait_all_tasks_blocked()
            assert signal.getsignal(signal.SIGTERM) is before
