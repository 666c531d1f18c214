"""The error policy: handler errors are reported and the server keeps
serving; KeyboardInterrupt/SystemExit propagate; accept errors back off;
wrong arguments fail early with precise messages."""

from __future__ import annotations

import errno
import logging
import socketserver
from typing import Any

import pytest
import trio
import trio.testing

import trio_socketserver as ts

from .conftest import receive_all, tcp_connect


class Boom(ts.BaseRequestHandler[ts.ConnectionStream, Any, Any]):
    finished = 0

    async def handle(self) -> None:
        data = await self.request.receive_some()
        if data == b"boom":
            raise RuntimeError("handler failed")
        await self.request.send_all(b"ok:" + data)

    async def finish(self) -> None:
        type(self).finished += 1


@pytest.mark.parametrize("server_class", [ts.TCPServer, ts.ConcurrentTCPServer])
async def test_handler_exception_is_logged_and_server_keeps_serving(
    server_class: type[ts.TCPServer], nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    Boom.finished = 0
    with server_class(("127.0.0.1", 0), Boom) as server:
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        async with stream:
            await stream.send_all(b"boom")
            assert await receive_all(stream) == b""  # closed cleanly, no reply
        stream = await tcp_connect(server.server_address)
        async with stream:
            await stream.send_all(b"next")
            assert await receive_all(stream) == b"ok:next"
        await server.shutdown()
    assert Boom.finished == 2, "finish() runs when handle() raises"
    records = [r for r in caplog.records if r.name == "trio_socketserver.server"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert "Exception occurred during processing of request from" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], RuntimeError)
    assert server.statistics().errors == 1


class BrokenErrorHandler(ts.ConcurrentTCPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        raise ValueError("handle_error itself is broken")


async def test_handle_error_raising_does_not_kill_the_server(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    with BrokenErrorHandler(("127.0.0.1", 0), Boom) as server:
        await nursery.start(server.serve_forever)
        for payload, expected in [(b"boom", b""), (b"again", b"ok:again")]:
            stream = await tcp_connect(server.server_address)
            async with stream:
                await stream.send_all(payload)
                assert await receive_all(stream) == expected
        await server.shutdown()
    assert "handle_error raised" in caplog.text


class Interrupt(ts.BaseRequestHandler[ts.ConnectionStream, Any, Any]):
    async def handle(self) -> None:
        raise KeyboardInterrupt


@pytest.mark.parametrize("server_class", [ts.TCPServer, ts.ConcurrentTCPServer])
async def test_keyboard_interrupt_propagates_as_itself(server_class: type[ts.TCPServer]) -> None:
    with server_class(("127.0.0.1", 0), Interrupt) as server:
        stream = await tcp_connect(server.server_address)
        with pytest.raises(KeyboardInterrupt):
            await server.serve_forever()
        # The request was shut down on the way out.
        assert await receive_all(stream) == b""
        await stream.aclose()


class FlakyAccept(ts.ConcurrentTCPServer):
    """get_request fails with EMFILE a few times before working."""

    failures = 3

    async def get_request(self) -> tuple[ts.ConnectionStream, ts.IPAddress]:
        if self.failures:
            self.failures -= 1
            await trio.lowlevel.checkpoint()
            raise OSError(errno.EMFILE, "Too many open files")
        return await super().get_request()


async def test_accept_errors_back_off_and_recover(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FlakyAccept(("127.0.0.1", 0), Boom) as server:
        start = trio.current_time()
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        async with stream:
            await stream.send_all(b"hi")
            assert await receive_all(stream) == b"ok:hi"
        # Three failures, backing off 0.01 + 0.02 + 0.04 s: no busy loop.
        assert trio.current_time() - start == pytest.approx(0.07)
        assert server.statistics().accept_errors == 3
        await server.shutdown()
    messages = [r.getMessage() for r in caplog.records if "EMFILE" in r.getMessage()]
    assert len(messages) == 3
    assert "retrying in" in messages[0]


class StdlibHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        pass


class SyncHandle(ts.BaseRequestHandler[Any, Any, Any]):
    def handle(self) -> None:  # type: ignore[override]
        pass


class DatagramEcho(ts.DatagramRequestHandler[Any, Any]):
    async def handle(self) -> None:
        pass


class StreamEcho(ts.StreamRequestHandler[Any, Any]):
    async def handle(self) -> None:
        pass


@pytest.mark.parametrize(
    ("server_class", "address", "handler", "error", "match"),
    [
        (ts.TCPServer, ("127.0.0.1", 0), StdlibHandler, TypeError, "blocking socketserver handler"),
        (ts.TCPServer, ("127.0.0.1", 0), SyncHandle, TypeError, "must be defined with 'async def'"),
        (
            ts.TCPServer,
            ("127.0.0.1", 0),
            DatagramEcho,
            TypeError,
            "UDPServer or UnixDatagramServer",
        ),
        (ts.UDPServer, ("127.0.0.1", 0), StreamEcho, TypeError, "TCPServer or UnixStreamServer"),
        (ts.TCPServer, ("127.0.0.1", 0), 42, TypeError, "request handler class"),
        (ts.TCPServer, ("127.0.0.1", "80"), StreamEcho, TypeError, "port must be an int"),
        (ts.TCPServer, ("127.0.0.1", 70000), StreamEcho, ValueError, "between 0 and 65535"),
        (ts.TCPServer, "/tmp/x.sock", StreamEcho, TypeError, "UnixStreamServer"),
        (ts.TCPServer, (b"127.0.0.1", 0), StreamEcho, TypeError, "host must be a str"),
        (ts.UnixStreamServer, ("127.0.0.1", 0), StreamEcho, TypeError, "use TCPServer"),
        (ts.UnixStreamServer, "", StreamEcho, ValueError, "non-empty"),
    ],
)
def test_wrong_arguments_fail_early_and_precisely(
    server_class: Any,
    address: Any,
    handler: Any,
    error: type[Exception],
    match: str,
    no_fd_leak: None,
) -> None:
    with pytest.raises(error, match=match):
        server_class(address, handler)


def test_bind_failure_closes_the_socket(no_fd_leak: None) -> None:
    with ts.TCPServer(("127.0.0.1", 0), StreamEcho) as first:
        with pytest.raises(OSError, match="Address already in use") as info:
            ts.TCPServer(first.server_address, StreamEcho)
        assert info.value.errno == errno.EADDRINUSE
