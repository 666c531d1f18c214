"""trio_socketserver.sync has socketserver's names, signatures, defaults and
call order: checked against the stdlib module itself."""

from __future__ import annotations

import inspect
import socket
import socketserver
import sys
import threading
from typing import Any

import pytest

import trio_socketserver
import trio_socketserver.sync as sync

from .short_paths import short_temporary_directory
from .sync_helpers import serving, stream_roundtrip

# 3.12 added the Forking Unix servers; we have them on every version.
_ADDED_IN_312 = {"ForkingUnixStreamServer", "ForkingUnixDatagramServer"}


def test_all_is_the_stdlibs() -> None:
    assert set(sync.__all__) == set(socketserver.__all__) | _ADDED_IN_312
    for name in sync.__all__:
        assert hasattr(sync, name)


def test_handlers_are_the_stdlibs() -> None:
    assert sync.BaseRequestHandler is socketserver.BaseRequestHandler
    assert sync.StreamRequestHandler is socketserver.StreamRequestHandler
    assert sync.DatagramRequestHandler is socketserver.DatagramRequestHandler


_SERVERS = [n for n in socketserver.__all__ if n.endswith(("Server", "MixIn"))]


@pytest.mark.parametrize("name", _SERVERS)
def test_same_methods_and_signatures(name: str) -> None:
    ours, theirs = getattr(sync, name), getattr(socketserver, name)
    for attr, value in vars(theirs).items():
        if attr.startswith("_") and attr not in ("__init__", "__enter__", "__exit__"):
            continue
        assert hasattr(ours, attr), f"{name}.{attr} is missing"
        if callable(value):
            assert _shape(getattr(ours, attr)) == _shape(value), f"{name}.{attr}"


def _shape(fn: Any) -> list[tuple[str, Any, Any]]:
    """A signature without annotations: names, kinds and defaults."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", _SERVERS)
def test_same_class_attributes_and_defaults(name: str) -> None:
    ours, theirs = getattr(sync, name), getattr(socketserver, name)
    for attr in (
        "address_family",
        "socket_type",
        "request_queue_size",
        "allow_reuse_address",
        "allow_reuse_port",
        "max_packet_size",
        "timeout",
        "daemon_threads",
        "block_on_close",
        "max_children",
        "active_children",
    ):
        if hasattr(theirs, attr):
            assert getattr(ours, attr) == getattr(theirs, attr), f"{name}.{attr}"


@pytest.mark.parametrize(
    ("name", "bases"),
    [
        ("UDPServer", ("TCPServer",)),
        ("UnixStreamServer", ("TCPServer",)),
        ("UnixDatagramServer", ("UDPServer",)),
        ("ThreadingTCPServer", ("ThreadingMixIn", "TCPServer")),
        ("ForkingUDPServer", ("ForkingMixIn", "UDPServer")),
    ],
)
def test_same_hierarchy(name: str, bases: tuple[str, ...]) -> None:
    cls = getattr(sync, name)
    for base in bases:
        assert issubclass(cls, getattr(sync, base))
    assert issubclass(cls, sync.BaseServer)


def _recording_server(module: Any, events: list[str]) -> Any:
    class Handler(module.StreamRequestHandler):  # type: ignore[misc]
        def setup(self) -> None:
            events.append("setup")
            super().setup()

        def handle(self) -> None:
            events.append("handle")
            self.wfile.write(self.rfile.readline().upper())

        def finish(self) -> None:
            events.append("finish")
            super().finish()

    class Server(module.TCPServer):  # type: ignore[misc]
        def server_bind(self) -> None:
            events.append("server_bind")
            super().server_bind()

        def server_activate(self) -> None:
            events.append("server_activate")
            super().server_activate()

        def get_request(self) -> Any:
            events.append("get_request")
            return super().get_request()

        def verify_request(self, request: Any, client_address: Any) -> bool:
            events.append("verify_request")
            return bool(super().verify_request(request, client_address))

        def process_request(self, request: Any, client_address: Any) -> None:
            events.append("process_request")
            super().process_request(request, client_address)

        def finish_request(self, request: Any, client_address: Any) -> None:
            events.append("finish_request")
            super().finish_request(request, client_address)

        def shutdown_request(self, request: Any) -> None:
            events.append("shutdown_request")
            super().shutdown_request(request)

        def close_request(self, request: Any) -> None:
            events.append("close_request")
            super().close_request(request)

        def server_close(self) -> None:
            events.append("server_close")
            super().server_close()

    return Server(("127.0.0.1", 0), Handler)


def _hook_order(module: Any) -> list[str]:
    events: list[str] = []
    server = _recording_server(module, events)
    with server:
        done = threading.Thread(target=server.handle_request)
        done.start()
        assert stream_roundtrip(server.server_address, b"abc\n") == b"ABC\n"
        done.join()
    return events


def test_hook_order_matches_the_stdlib() -> None:
    expected = _hook_order(socketserver)
    assert expected[:3] == ["server_bind", "server_activate", "get_request"]
    assert _hook_order(sync) == expected


def test_hook_order_with_serve_forever() -> None:
    events: list[str] = []
    server = _recording_server(sync, events)
    with serving(server):
        assert stream_roundtrip(server.server_address, b"x\n") == b"X\n"
    i = events.index("get_request")
    assert events[i:] == [
        "get_request",
        "verify_request",
        "process_request",
        "finish_request",
        "setup",
        "handle",
        "finish",
        "shutdown_request",
        "close_request",
        "server_close",
    ]


def test_bind_and_activate_false_then_by_hand() -> None:
    server = sync.TCPServer(("127.0.0.1", 0), sync.StreamRequestHandler, bind_and_activate=False)
    try:
        assert server.server_address == ("127.0.0.1", 0)
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        assert server.server_address[1] != 0
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert server.fileno() == server.socket.fileno()
    finally:
        server.server_close()
    assert server.socket.fileno() == -1


def test_context_manager_closes() -> None:
    with sync.UDPServer(("127.0.0.1", 0), sync.DatagramRequestHandler) as server:
        assert server.fileno() >= 0
    assert server.socket.fileno() == -1


def test_async_handler_is_refused() -> None:
    class AsyncEcho(trio_socketserver.StreamRequestHandler[Any, Any]):
        async def handle(self) -> None:
            pass

    with pytest.raises(TypeError, match=r"async trio_socketserver handler.*trio_socketserver\."):
        sync.TCPServer(("127.0.0.1", 0), AsyncEcho)


def test_async_def_handle_on_a_blocking_handler_is_refused() -> None:
    class Confused(sync.BaseRequestHandler):
        async def handle(self) -> None:  # type: ignore[override]
            pass

    with pytest.raises(TypeError, match=r"Confused.handle is 'async def'.*define it with 'def'"):
        sync.ThreadingTCPServer(("127.0.0.1", 0), Confused)


@pytest.mark.parametrize(
    ("cls", "address", "message"),
    [
        (sync.TCPServer, "/tmp/x.sock", "for a Unix socket path use UnixStreamServer"),
        (sync.UDPServer, ("127.0.0.1", 70000), "port must be between 0 and 65535"),
        (sync.UnixStreamServer, ("127.0.0.1", 0), r"for \(host, port\) use TCPServer"),
        (sync.TCPServer, ("127.0.0.1", "80"), "port must be an int"),
    ],
)
def test_wrong_address_says_what_to_do(cls: Any, address: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        cls(address, sync.BaseRequestHandler)


def test_not_a_handler_class() -> None:
    with pytest.raises(TypeError, match="needs a request handler class"):
        sync.TCPServer(("127.0.0.1", 0), 42)


def test_ipv6_family_from_the_address() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = sync.TCPServer(("::1", 0), sync.BaseRequestHandler)
    except OSError:
        pytest.skip("no IPv6 loopback")
    with server:
        assert server.address_family == socket.AF_INET6
        assert server.socket.family == socket.AF_INET6


def test_module_names() -> None:
    assert sync.TCPServer.__module__ == "trio_socketserver.sync"
    assert sys.modules["trio_socketserver.sync"] is sync


class _Nothing(sync.BaseRequestHandler):
    def handle(self) -> None:
        pass


class _V6(sync.TCPServer):
    address_family = socket.AF_INET6


class _StdV6(socketserver.TCPServer):
    address_family = socket.AF_INET6


class _FamilyOnInstance(sync.TCPServer):
    def __init__(self, address: Any, handler: Any, family: int) -> None:
        self.address_family = family  # before TCPServer.__init__, as the stdlib allows
        super().__init__(address, handler)


@pytest.mark.parametrize(
    ("ours", "stdlib", "address"),
    [
        (sync.TCPServer, socketserver.TCPServer, (b"127.0.0.1", 0)),
        (sync.UDPServer, socketserver.UDPServer, (b"127.0.0.1", 0)),
        pytest.param(
            _V6,
            _StdV6,
            ("::1", 0, 0),
            marks=pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6"),
        ),
        pytest.param(
            _V6,
            _StdV6,
            ("::1", 0, 0, 0),
            marks=pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6"),
        ),
    ],
)
def test_addresses_the_stdlib_accepts(ours: Any, stdlib: Any, address: Any) -> None:
    with stdlib(address, socketserver.BaseRequestHandler) as reference:
        expected_family = reference.socket.family
    with ours(address, _Nothing) as server:
        assert server.socket.family == expected_family
        assert server.server_address[1] != 0


def test_address_family_set_on_the_instance_is_obeyed() -> None:
    with short_temporary_directory(prefix="tss-fam-") as directory:
        path = f"{directory}/s.sock"
        with _FamilyOnInstance(path, _Nothing, socket.AF_UNIX) as server:
            assert server.socket.family == socket.AF_UNIX
            assert server.server_address == path
    # Still checked: a (host, port) for the AF_UNIX instance is refused.
    with pytest.raises(TypeError, match="socket path"):
        _FamilyOnInstance(("127.0.0.1", 0), _Nothing, socket.AF_UNIX)
