"""The error policy: handler errors are reported and the server keeps
serving; KeyboardInterrupt/SystemExit propagate; accept errors back off;
wrong arguments fail early with precise messages."""

from __future__ import annotations

import collections
import errno
import functools
import logging
import math
import socketserver
from collections.abc import AsyncIterator, Callable
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
        (ts.TCPServer, (127001, 0), StreamEcho, TypeError, "host must be a str"),
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


class Greets(ts.BaseRequestHandler[ts.ConnectionStream, Any, Any]):
    """Sends "hi", then echoes until the client's EOF."""

    async def handle(self) -> None:
        await self.request.send_all(b"hi")
        while data := await self.request.receive_some():
            await self.request.send_all(data)


class PlainCloseRaises(ts.TCPServer):
    async def close_request(self, request: ts.ConnectionStream) -> None:
        await super().close_request(request)
        raise RuntimeError("close_request failed")


class ConcurrentCloseRaises(ts.ConcurrentTCPServer):
    async def close_request(self, request: ts.ConnectionStream) -> None:
        await super().close_request(request)
        raise RuntimeError("close_request failed")


@pytest.mark.parametrize("server_class", [PlainCloseRaises, ConcurrentCloseRaises])
async def test_close_request_raising_is_reported_and_server_keeps_serving(
    server_class: type[ts.TCPServer], nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    # An Exception from an overridden close_request (or shutdown_request) is
    # a hook's error like any other: handle_error, and serving goes on. In
    # the concurrent server it used to escape the handler task, crash
    # serve_forever and cancel the other requests in flight.
    concurrent = issubclass(server_class, ts.ConcurrencyMixIn)
    with server_class(("127.0.0.1", 0), Greets) as server:
        await nursery.start(server.serve_forever)
        held = await tcp_connect(server.server_address) if concurrent else None
        if held is not None:
            assert await receive_all_of(held, 2) == b"hi"
        for _ in range(2):
            stream = await tcp_connect(server.server_address)
            async with stream:
                await stream.send_eof()
                assert await receive_all(stream) == b"hi"  # then closed: EOF
        if held is not None:  # the request in flight was not cancelled
            await held.send_all(b"still here")
            assert await receive_all_of(held, 10) == b"still here"
            await held.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().serving
        await server.shutdown()
    failures = [r for r in caplog.records if r.exc_info is not None]
    assert failures, "handle_error was not called"
    for record in failures:
        assert "Exception occurred during processing of request" in record.getMessage()
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], RuntimeError)
    # A plain server calls shutdown_request again after the error, as the
    # stdlib does (it cannot know how far the failed one got): two reports.
    expected = 3 if concurrent else 2 * 2
    assert server.statistics().errors == expected == len(failures)


async def receive_all_of(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    data = b""
    with trio.fail_after(10):
        while len(data) < n and (chunk := await stream.receive_some(n - len(data))):
            data += chunk
    return data


class CleanupFails(ts.BaseRequestHandler[ts.ConnectionStream, Any, Any]):
    """Runs a nursery; a child's cleanup raises when it is cancelled."""

    async def handle(self) -> None:
        async def flaky(*, task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                raise RuntimeError("cleanup failed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await nursery.start(flaky)
            await self.request.send_all(b"hi")


@pytest.mark.parametrize("daemon", [False, True], ids=["grace_period=0", "daemon_requests"])
@pytest.mark.parametrize("server_class", [ts.TCPServer, ts.ConcurrentTCPServer])
async def test_handler_error_while_cancelled_is_reported_and_cancellation_proceeds(
    server_class: type[ts.TCPServer],
    daemon: bool,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The handler raises BaseExceptionGroup([Cancelled, RuntimeError]): the
    # RuntimeError goes to handle_error (Rule 2), the cancellation proceeds,
    # and serve_forever returns normally instead of raising RuntimeError.
    with server_class(("127.0.0.1", 0), CleanupFails) as server:
        server.daemon_requests = daemon
        await nursery.start(server.serve_forever)
        stream = await tcp_connect(server.server_address)
        assert await receive_all_of(stream, 2) == b"hi"
        with trio.fail_after(10):
            await server.shutdown(grace_period=None if daemon else 0)
        assert await receive_all(stream) == b""  # the connection was closed
        await stream.aclose()
    assert server.statistics().errors == 1
    [record] = [r for r in caplog.records if r.exc_info is not None]
    assert record.exc_info is not None
    reported = record.exc_info[1]
    # What the handler would have raised had it not been cancelled.
    assert isinstance(reported, ExceptionGroup)
    assert [str(e) for e in reported.exceptions] == ["cleanup failed"]


class ActionsCleanupFails(ts.ConcurrentTCPServer):
    running = trio.Event()

    async def service_actions(self) -> None:
        async def flaky() -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise RuntimeError("service cleanup failed")

        # The sleeping child ends with Cancelled, the other with a
        # RuntimeError: BaseExceptionGroup([Cancelled, RuntimeError]).
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(flaky)
            await trio.testing.wait_all_tasks_blocked()
            self.running.set()


async def test_service_actions_error_while_cancelled_is_logged(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    with ActionsCleanupFails(("127.0.0.1", 0), Greets) as server:
        server.running = trio.Event()
        await nursery.start(server.serve_forever, 1.0)
        await server.running.wait()
        with trio.fail_after(10):
            await server.shutdown()  # cancels service_actions mid-call
    assert "service_actions raised" in caplog.text


# -- construction-time checks of handler classes and server hooks -------------


class NotAHandler:
    def __init__(self, request: object, client_address: object, server: object) -> None:
        pass

    def handle(self) -> None:
        pass


class SyncRun(ts.BaseRequestHandler[Any, Any, Any]):
    def run(self) -> None:  # type: ignore[override]
        pass


class AsyncGenHandle(ts.StreamRequestHandler[Any, Any]):
    async def handle(self) -> AsyncIterator[None]:  # type: ignore[override]
        yield


async def async_factory(request: object, client_address: object, server: object) -> None:
    pass


@pytest.mark.parametrize(
    ("handler", "match"),
    [
        (NotAHandler, "NotAHandler is not a request handler: derive it from"),
        (collections.OrderedDict, "OrderedDict is not a request handler"),
        (print, "not the built-in print"),
        (SyncRun, r"SyncRun.run must be defined with 'async def'"),
        (AsyncGenHandle, r"AsyncGenHandle.handle is an async generator .*remove the yield"),
        (async_factory, "async_factory is defined with 'async def'.*make the factory a plain def"),
    ],
)
def test_what_is_not_a_handler_is_rejected_at_construction(
    handler: Any, match: str, no_fd_leak: None
) -> None:
    with pytest.raises(TypeError, match=match):
        ts.TCPServer(("127.0.0.1", 0), handler)


def _passes_through(func: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator in the usual style: a plain def wrapper (functools.wraps)
    that returns what the async method returns, a coroutine."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


class DecoratedHandle(ts.StreamRequestHandler[Any, Any]):
    @_passes_through
    async def handle(self) -> None:
        await self.wfile.write(b"decorated")


class DecoratedVerify(ts.TCPServer):
    @_passes_through
    async def verify_request(self, request: ts.ConnectionStream, client_address: Any) -> bool:
        return True


async def test_wrapped_async_hooks_are_accepted_and_work(no_fd_leak: None) -> None:
    # A wrapper around an async def cannot be told from a sync hook on 3.11:
    # it is accepted, and it works.
    with DecoratedVerify(("127.0.0.1", 0), DecoratedHandle) as server:
        client = await tcp_connect(server.server_address)
        with trio.fail_after(10):
            await server.handle_request()
            assert await receive_all(client) == b"decorated"
        await client.aclose()


class SyncVerify(ts.ConcurrentTCPServer):
    def verify_request(  # type: ignore[override]
        self, request: ts.ConnectionStream, client_address: Any
    ) -> bool:
        return True


class SyncClose(ts.ConcurrentTCPServer):
    def close_request(self, request: ts.ConnectionStream) -> None:  # type: ignore[override]
        request.close()


class SyncServiceActions(ts.TCPServer):
    def service_actions(self) -> None:  # type: ignore[override]
        pass


class AsyncHandleError(ts.TCPServer):
    async def handle_error(self, request: Any, client_address: Any) -> None:  # type: ignore[override]
        pass


class AsyncServerClose(ts.TCPServer):
    async def server_close(self) -> None:  # type: ignore[override]
        pass


@pytest.mark.parametrize(
    ("server_class", "match"),
    [
        (SyncVerify, r"SyncVerify.verify_request must be defined with 'async def'"),
        (SyncClose, r"SyncClose.close_request must be defined with 'async def'"),
        (SyncServiceActions, r"service_actions must be defined with 'async def'"),
        (AsyncHandleError, r"AsyncHandleError.handle_error must be a plain 'def'.*except block"),
        (AsyncServerClose, r"AsyncServerClose.server_close must be a plain 'def'"),
    ],
)
def test_server_hooks_of_the_wrong_kind_are_rejected_at_construction(
    server_class: Any, match: str, no_fd_leak: None
) -> None:
    with pytest.raises(TypeError, match=match):
        server_class(("127.0.0.1", 0), StreamEcho)


def _stream_handler(**attributes: object) -> type[ts.StreamRequestHandler[Any, Any]]:
    return type("Configured", (StreamEcho,), dict(attributes))


@pytest.mark.parametrize(
    ("attributes", "error", "match"),
    [
        ({"timeout": -1}, ValueError, r"Configured.timeout must be None .* >= 0, not -1"),
        ({"timeout": math.nan}, ValueError, r"Configured.timeout .* not nan"),
        ({"timeout": "5"}, TypeError, r"Configured.timeout must be None .*, not '5'"),
        ({"rbufsize": -5}, ValueError, r"Configured.rbufsize must be -1 .* not -5"),
        ({"wbufsize": 1.5}, TypeError, r"Configured.wbufsize must be an int"),
    ],
)
def test_bad_stream_handler_attributes_are_rejected_at_construction(
    attributes: dict[str, object], error: type[Exception], match: str, no_fd_leak: None
) -> None:
    with pytest.raises(error, match=match):
        ts.TCPServer(("127.0.0.1", 0), _stream_handler(**attributes))


def test_valid_and_dynamic_stream_handler_attributes_are_accepted(no_fd_leak: None) -> None:
    class Dynamic(StreamEcho):
        @property
        def timeout(self) -> float:  # type: ignore[override]
            return 1.0  # evaluated per instance, so not checked at construction

    for handler in (
        _stream_handler(timeout=0, rbufsize=0, wbufsize=-1),
        _stream_handler(timeout=2.5, rbufsize=4096, wbufsize=0),
        Dynamic,
    ):
        ts.TCPServer(("127.0.0.1", 0), handler).server_close()


@pytest.mark.parametrize("poll_interval", [math.nan, 0, -1.0])
async def test_bad_poll_interval_fails_before_serving(
    poll_interval: float, nursery: trio.Nursery
) -> None:
    with ts.ConcurrentTCPServer(("127.0.0.1", 0), StreamEcho) as server:
        with pytest.raises(
            ValueError, match=rf"poll_interval must be a number .*, not {poll_interval}"
        ):
            await nursery.start(server.serve_forever, poll_interval)
        assert not server.statistics().serving
