"""ConcurrencyMixIn: a task per request, the cap and its backpressure."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import trio_socketserver as ts

from .conftest import receive_all, receive_exactly, tcp_connect


class Hold(ts.BaseRequestHandler[ts.ConnectionStream, Any, Any]):
    """Says hello, then holds the connection until the client closes it."""

    async def handle(self) -> None:
        await self.request.send_all(b"hello")
        while await self.request.receive_some():
            pass


async def test_requests_run_concurrently(nursery: trio.Nursery) -> None:
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), Hold) as server:
        await nursery.start(server.serve_forever)
        streams = [await tcp_connect(server.server_address) for _ in range(20)]
        for s in streams:  # all are being served at the same time
            assert await receive_exactly(s, 5) == b"hello"
        assert server.statistics().active_requests == 20
        for s in streams:
            await s.aclose()
        await server.shutdown()
        assert server.statistics().active_requests == 0


async def test_sequential_server_serves_one_at_a_time(nursery: trio.Nursery) -> None:
    with ts.TCPServer(("127.0.0.1", 0), Hold) as server:
        await nursery.start(server.serve_forever)
        first = await tcp_connect(server.server_address)
        second = await tcp_connect(server.server_address)
        assert await receive_exactly(first, 5) == b"hello"
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().requests_received == 1  # second waits in the backlog
        await first.aclose()
        assert await receive_exactly(second, 5) == b"hello"
        await second.aclose()
        await server.shutdown()


async def test_cap_stops_accepting_and_resumes(nursery: trio.Nursery) -> None:
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), Hold) as server:
        server.max_concurrent_requests = 2
        await nursery.start(server.serve_forever)
        a = await tcp_connect(server.server_address)
        b = await tcp_connect(server.server_address)
        c = await tcp_connect(server.server_address)  # completes in the kernel backlog
        assert await receive_exactly(a, 5) == b"hello"
        assert await receive_exactly(b, 5) == b"hello"
        await trio.testing.wait_all_tasks_blocked()
        stats = server.statistics()
        assert stats.active_requests == 2
        assert stats.requests_received == 2, "at the cap the server must not accept"
        await a.aclose()
        # A slot frees up: the waiting connection is accepted and served.
        assert await receive_exactly(c, 5) == b"hello"
        assert server.statistics().requests_received == 3
        await b.aclose()
        await c.aclose()
        await server.shutdown()


async def test_bad_cap_is_a_clear_error() -> None:
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), Hold) as server:
        server.max_concurrent_requests = 0
        with pytest.raises(ValueError, match="max_concurrent_requests"):
            await server.serve_forever()


async def test_handle_request_on_concurrent_server_runs_inline() -> None:
    class Once(ts.BaseRequestHandler[ts.ConnectionStream, Any, Any]):
        async def handle(self) -> None:
            await self.request.send_all(b"done")

    with ts.ConcurrentTCPServer(("127.0.0.1", 0), Once) as server:
        async with trio.open_nursery() as nursery:
            stream = await tcp_connect(server.server_address)
            nursery.start_soon(server.handle_request)
            assert await receive_all(stream) == b"done"
            await stream.aclose()


class Slow(ts.BaseRequestHandler[ts.ConnectionStream, Any, Any]):
    async def handle(self) -> None:
        await trio.sleep(10)
        await self.request.send_all(b"late reply")


async def test_many_slow_requests_overlap(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), Slow) as server:
        await nursery.start(server.serve_forever)
        start = trio.current_time()
        results: list[bytes] = []

        async def client() -> None:
            stream = await tcp_connect(server.server_address)
            async with stream:
                results.append(await receive_all(stream))

        async with trio.open_nursery() as clients:
            for _ in range(10):
                clients.start_soon(client)
        assert results == [b"late reply"] * 10
        # Ten 10-second requests took 10 seconds, not 100.
        assert trio.current_time() - start == pytest.approx(10)
        await server.shutdown()
