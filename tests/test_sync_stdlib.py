"""The stdlib servers built on socketserver run unchanged on trio_socketserver.sync.

``http.server``, ``xmlrpc.server``, ``wsgiref.simple_server`` and
``logging.config`` are imported afresh with ``sys.modules["socketserver"]``
set to :mod:`trio_socketserver.sync` (as the module's docstring tells users
to do), then ``sys.modules`` is put back as it was, so no other test sees
them. Each is driven by its real client over loopback: urllib and
http.client, xmlrpc.client, logging's SocketHandler and DatagramHandler.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import importlib
import json
import logging
import logging.handlers
import pickle
import queue
import socket
import struct
import sys
import threading
import types
import urllib.error
import urllib.request
import wsgiref.validate
import xmlrpc.client
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import pytest

import trio_socketserver.sync

from .sync_helpers import CLIENT_TIMEOUT, serving

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

#: The stdlib modules that import socketserver (directly or, for
#: wsgiref.simple_server, through http.server).
STDLIB_SERVERS = ("http.server", "xmlrpc.server", "wsgiref.simple_server", "logging.config")


def import_on_trio_sync(names: Iterable[str]) -> dict[str, types.ModuleType]:
    """Fresh copies of the modules ``names``, imported while
    ``sys.modules["socketserver"]`` is trio_socketserver.sync.

    The modules are first imported normally (a no-op if they already are),
    so that what they depend on is loaded once and shared by the copies.
    Afterwards ``sys.modules``, and the parent packages' attributes for
    ``names``, are exactly what they were before the copies were made."""
    names = tuple(names)
    for name in names:
        importlib.import_module(name)
    saved = dict(sys.modules)
    parents = {name: sys.modules[name.rpartition(".")[0]] for name in names}
    try:
        sys.modules["socketserver"] = trio_socketserver.sync
        for name in names:
            del sys.modules[name]  # all of them first: xmlrpc.server imports http.server
        return {name: importlib.import_module(name) for name in names}
    finally:
        for name in sys.modules.keys() - saved.keys():
            del sys.modules[name]
        sys.modules.update(saved)
        for name, parent in parents.items():
            setattr(parent, name.rpartition(".")[2], saved[name])


FRESH = import_on_trio_sync(STDLIB_SERVERS)

if TYPE_CHECKING:
    # What the stdlib modules see as socketserver, typed as the stdlib's.
    import socketserver
    from http.server import (
        BaseHTTPRequestHandler,
        HTTPServer,
        SimpleHTTPRequestHandler,
        ThreadingHTTPServer,
    )
    from logging import config as logging_config
    from wsgiref.simple_server import WSGIServer, make_server
    from xmlrpc.server import DocXMLRPCServer, SimpleXMLRPCServer
else:
    socketserver = trio_socketserver.sync
    BaseHTTPRequestHandler = FRESH["http.server"].BaseHTTPRequestHandler
    HTTPServer = FRESH["http.server"].HTTPServer
    SimpleHTTPRequestHandler = FRESH["http.server"].SimpleHTTPRequestHandler
    ThreadingHTTPServer = FRESH["http.server"].ThreadingHTTPServer
    logging_config = FRESH["logging.config"]
    WSGIServer = FRESH["wsgiref.simple_server"].WSGIServer
    make_server = FRESH["wsgiref.simple_server"].make_server
    SimpleXMLRPCServer = FRESH["xmlrpc.server"].SimpleXMLRPCServer
    DocXMLRPCServer = FRESH["xmlrpc.server"].DocXMLRPCServer

HTTP_SERVERS = [
    pytest.param(HTTPServer, id="HTTPServer"),
    pytest.param(ThreadingHTTPServer, id="ThreadingHTTPServer"),
]
#: Clients running at once in the concurrency tests.
CONCURRENT_CLIENTS = 50

_Server = TypeVar("_Server")


@pytest.fixture
def no_leak(no_fd_leak: None) -> Iterator[None]:
    """No fd (via no_fd_leak) or thread outlives the test."""
    threads = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) <= threads


def on_trio_sync(server: object) -> bool:
    return isinstance(server, trio_socketserver.sync.BaseServer)


@contextmanager
def running(server: _Server) -> Iterator[_Server]:
    """Serve ``server`` (which must be a trio_socketserver.sync server) in a
    thread; then shut it down, close it and account for its threads."""
    assert on_trio_sync(server), f"{type(server).__mro__} is not on trio_socketserver.sync"
    before = set(threading.enumerate())
    with serving(server):
        yield server
    left = set(threading.enumerate()) - before
    if not getattr(server, "daemon_threads", False):
        # server_close() waited for the handler threads, as the stdlib does.
        assert not left, f"threads alive after server_close(): {left}"
    # ThreadingHTTPServer's daemon_threads: server_close() does not wait for
    # them (nor does the stdlib's), but it makes them end.
    for thread in left:
        thread.join(CLIENT_TIMEOUT)
    assert not [t for t in left if t.is_alive()]


#: urllib without the proxies the environment may name.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def url(server: Any, path: str = "/") -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{path}"


def http_connection(server: Any) -> http.client.HTTPConnection:
    host, port = server.server_address[:2]
    return http.client.HTTPConnection(host, port, timeout=CLIENT_TIMEOUT)


# -- the helper itself -----------------------------------------------------------------


def test_fresh_copies_are_built_on_trio_sync() -> None:
    sync = trio_socketserver.sync
    assert issubclass(HTTPServer, sync.TCPServer)
    assert issubclass(ThreadingHTTPServer, sync.ThreadingMixIn)
    assert issubclass(ThreadingHTTPServer, HTTPServer)
    assert issubclass(SimpleXMLRPCServer, sync.TCPServer)
    assert issubclass(WSGIServer, HTTPServer)
    assert vars(logging_config)["ThreadingTCPServer"] is sync.ThreadingTCPServer
    # The handlers are the stdlib's, on the stdlib's own StreamRequestHandler.
    assert issubclass(BaseHTTPRequestHandler, sync.StreamRequestHandler)


def test_the_stdlib_modules_are_left_untouched() -> None:
    real = sys.modules["socketserver"]
    assert real is not trio_socketserver.sync
    assert real.__name__ == "socketserver"
    for name in STDLIB_SERVERS:
        module = sys.modules[name]
        assert module is not FRESH[name]
        parent, _, child = name.rpartition(".")
        assert getattr(sys.modules[parent], child) is module
    stdlib_http_server = sys.modules["http.server"].HTTPServer
    assert issubclass(stdlib_http_server, real.TCPServer)
    assert not issubclass(stdlib_http_server, trio_socketserver.sync.BaseServer)

    before = dict(sys.modules)
    again = import_on_trio_sync(["http.server", "xmlrpc.server"])
    assert sys.modules == before
    assert sys.modules["http"].server is before["http.server"]
    assert issubclass(again["xmlrpc.server"].SimpleXMLRPCServer, trio_socketserver.sync.TCPServer)
    # The copy of xmlrpc.server is built on the copy of http.server made with it.
    assert (
        again["xmlrpc.server"].BaseHTTPRequestHandler is again["http.server"].BaseHTTPRequestHandler
    )


# -- http.server -----------------------------------------------------------------------


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("server_class", HTTP_SERVERS)
def test_simple_http_request_handler_serves_a_directory(
    server_class: type[HTTPServer], tmp_path: Path
) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "hello.txt").write_bytes(b"hello, trio\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.html").write_bytes(b"<p>index</p>\n")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))

    with running(server_class(("127.0.0.1", 0), handler)) as server:
        with opener.open(url(server, "/hello.txt"), timeout=CLIENT_TIMEOUT) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain"
            assert response.headers["Content-Length"] == "12"
            assert response.headers["Server"].startswith("SimpleHTTP/")
            assert response.read() == b"hello, trio\n"
        with opener.open(url(server, "/data.bin"), timeout=CLIENT_TIMEOUT) as response:
            assert response.read() == data
        with opener.open(url(server, "/sub/"), timeout=CLIENT_TIMEOUT) as response:
            assert response.read() == b"<p>index</p>\n"
        with opener.open(url(server, "/"), timeout=CLIENT_TIMEOUT) as response:
            listing = response.read().decode()
        for name in ('href="data.bin"', 'href="hello.txt"', 'href="sub/"'):
            assert name in listing
        with pytest.raises(urllib.error.HTTPError) as error:
            opener.open(url(server, "/missing.txt"), timeout=CLIENT_TIMEOUT)
        try:
            assert error.value.code == 404
            assert b"File not found" in error.value.read()
        finally:
            error.value.close()

        conn = http_connection(server)
        try:
            conn.request("GET", "/sub")
            response = conn.getresponse()
            response.read()
            assert response.status == 301
            assert response.headers["Location"] == "/sub/"
            conn.request("HEAD", "/data.bin")
            response = conn.getresponse()
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(data))
            assert response.read() == b""
        finally:
            conn.close()


class EchoHandler(BaseHTTPRequestHandler):
    """GET replies with the path, POST with the body; every reply says in
    X-Client-Port which client port the server saw the request come from."""

    def do_GET(self) -> None:
        self.reply(self.path.encode())

    def do_POST(self) -> None:
        self.reply(self.rfile.read(int(self.headers["Content-Length"])))

    def reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Client-Port", str(self.client_address[1]))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr is noise here


def exchange(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes, int, int]:
    """One request: (status, body, the client port the server saw, our port)."""
    if conn.sock is None:
        conn.connect()
    local_port = conn.sock.getsockname()[1]
    conn.request(method, path, body=body)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, int(response.headers["X-Client-Port"]), local_port


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("server_class", HTTP_SERVERS)
@pytest.mark.parametrize("protocol", ["HTTP/1.0", "HTTP/1.1"])
def test_base_http_request_handler_get_post_and_keep_alive(
    server_class: type[HTTPServer], protocol: str
) -> None:
    class Handler(EchoHandler):
        protocol_version = protocol

    body = bytes(range(256)) * 1024 + b"\r\n\r\nnot a header\n"
    with running(server_class(("127.0.0.1", 0), Handler)) as server:
        conn = http_connection(server)
        try:
            replies = [
                exchange(conn, "GET", "/first?q=1"),
                exchange(conn, "POST", "/echo", body),
                exchange(conn, "GET", "/third"),
                exchange(conn, "POST", "/empty", b""),
            ]
        finally:
            conn.close()
    assert [(status, data) for status, data, _, _ in replies] == [
        (200, b"/first?q=1"),
        (200, body),
        (200, b"/third"),
        (200, b""),
    ]
    seen_ports = [seen for _, _, seen, _ in replies]
    assert seen_ports == [local for _, _, _, local in replies]
    if protocol == "HTTP/1.1":
        assert len(set(seen_ports)) == 1, "keep-alive: one connection for every request"
    else:
        assert len(set(seen_ports)) == len(replies), "HTTP/1.0: one connection per request"


# -- xmlrpc.server ---------------------------------------------------------------------


class Calculator:
    def multiply(self, a: int, b: int) -> int:
        return a * b

    def divide(self, a: float, b: float) -> float:
        return a / b


def power(base: Any, exponent: Any) -> Any:
    return base**exponent


def concat(*parts: Any) -> Any:
    return b"".join(p.data for p in parts) if parts else None


@pytest.mark.usefixtures("no_leak")
def test_simple_xmlrpc_server() -> None:
    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
    server.register_function(power, "pow")
    server.register_function(concat)
    server.register_instance(Calculator())
    server.register_introspection_functions()
    server.register_multicall_functions()
    with running(server), xmlrpc.client.ServerProxy(url(server), allow_none=True) as proxy:
        assert proxy.pow(2, 30) == 2**30
        assert proxy.multiply(6, 7) == 42
        assert proxy.divide(1, 4) == 0.25
        blob = xmlrpc.client.Binary(bytes(range(256)) * 64)
        joined = proxy.concat(blob, blob)
        assert isinstance(joined, xmlrpc.client.Binary)
        assert joined.data == blob.data * 2
        assert proxy.concat() is None
        with pytest.raises(xmlrpc.client.Fault) as fault:
            proxy.divide(1, 0)
        assert fault.value.faultCode == 1
        assert fault.value.faultString == "<class 'ZeroDivisionError'>:division by zero"
        with pytest.raises(xmlrpc.client.Fault, match='method "missing" is not supported'):
            proxy.missing()
        methods = proxy.system.listMethods()
        assert isinstance(methods, list)
        assert {"pow", "concat", "multiply", "divide", "system.multicall"} <= set(methods)
        multicall = xmlrpc.client.MultiCall(proxy)
        multicall.multiply(3, 4)
        multicall.pow(3, 2)
        results = multicall()
        assert (results[0], results[1]) == (12, 9)
        with pytest.raises(IndexError):
            results[2]


@pytest.mark.usefixtures("no_leak")
def test_doc_xmlrpc_server_documents_and_serves() -> None:
    server = DocXMLRPCServer(("127.0.0.1", 0), logRequests=False)
    server.set_server_title("Calculator docs")
    server.register_function(power, "pow")
    server.register_instance(Calculator())
    with running(server), xmlrpc.client.ServerProxy(url(server)) as proxy:
        with opener.open(url(server), timeout=CLIENT_TIMEOUT) as response:
            assert response.headers["Content-Type"].startswith("text/html")
            page = response.read().decode()
        assert "<title>Python: Calculator docs</title>" in page
        assert "<strong>pow</strong>" in page
        assert proxy.pow(3, 4) == 81


# -- wsgiref.simple_server -------------------------------------------------------------


def wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    if environ["PATH_INFO"] == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such page"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    reply = json.dumps(
        {
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "body": environ["wsgi.input"].read(length).decode(),
            "server_port": environ["SERVER_PORT"],
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(reply)))]
    )
    return [reply]


@pytest.mark.usefixtures("no_leak")
def test_wsgiref_simple_server() -> None:
    with running(make_server("127.0.0.1", 0, wsgiref.validate.validator(wsgi_app))) as server:
        assert isinstance(server, WSGIServer)
        port = server.server_address[1]
        conn = http_connection(server)
        try:
            conn.request("GET", "/hello/world?x=1&y=%20")
            response = conn.getresponse()
            assert response.status == 200
            assert response.headers["Server"].startswith("WSGIServer/")
            assert json.loads(response.read()) == {
                "method": "GET",
                "path": "/hello/world",
                "query": "x=1&y=%20",
                "body": "",
                "server_port": str(port),
            }
            conn.request("POST", "/submit", body="name=trio&ok=1")
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["body"] == "name=trio&ok=1"
            conn.request("GET", "/missing")
            response = conn.getresponse()
            assert (response.status, response.read()) == (404, b"no such page")
        finally:
            conn.close()


@pytest.mark.usefixtures("no_leak")
def test_wsgiref_handle_request_serves_one_request() -> None:
    """The local-redirect pattern of OAuth helpers: make_server, then one
    handle_request() (here in a thread), then server_close()."""
    server = make_server("127.0.0.1", 0, wsgi_app)
    assert on_trio_sync(server)
    server.timeout = CLIENT_TIMEOUT
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        conn = http_connection(server)
        try:
            conn.request("GET", "/callback?code=abc&state=xyz")
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["query"] == "code=abc&state=xyz"
        finally:
            conn.close()
    finally:
        thread.join(CLIENT_TIMEOUT)
        server.server_close()
    assert not thread.is_alive()


@pytest.mark.usefixtures("no_leak")
def test_wsgiref_handle_request_times_out() -> None:
    timeouts: list[str] = []

    class Server(WSGIServer):
        timeout = 0.01

        def handle_timeout(self) -> None:
            timeouts.append("timed out")

    with make_server("127.0.0.1", 0, wsgi_app, server_class=Server) as server:
        assert on_trio_sync(server)
        server.handle_request()  # nobody connects
    assert timeouts == ["timed out"]


# -- logging's socket receivers --------------------------------------------------------


class LogRecordStreamHandler(socketserver.StreamRequestHandler):
    """The logging cookbook's handler: length-prefixed pickled records until EOF."""

    def handle(self) -> None:
        server = self.server
        assert isinstance(server, LogRecordSocketReceiver)
        while len(header := self.rfile.read(4)) == 4:
            (length,) = struct.unpack(">L", header)
            server.records.put(logging.makeLogRecord(pickle.loads(self.rfile.read(length))))


class LogRecordSocketReceiver(socketserver.ThreadingTCPServer):
    """The logging cookbook's TCP receiver."""

    allow_reuse_address = True

    def __init__(self, host: str = "localhost", port: int = 0) -> None:
        super().__init__((host, port), LogRecordStreamHandler)
        self.records: queue.Queue[logging.LogRecord] = queue.Queue()


class LogRecordDatagramHandler(socketserver.DatagramRequestHandler):
    """One pickled record per datagram, with the same length prefix."""

    def handle(self) -> None:
        server = self.server
        assert isinstance(server, LogRecordDatagramReceiver)
        data = self.rfile.read()
        (length,) = struct.unpack(">L", data[:4])
        assert length == len(data) - 4
        server.records.put(logging.makeLogRecord(pickle.loads(data[4:])))


class LogRecordDatagramReceiver(socketserver.UDPServer):
    def __init__(self, host: str = "localhost", port: int = 0) -> None:
        super().__init__((host, port), LogRecordDatagramHandler)
        self.records: queue.Queue[logging.LogRecord] = queue.Queue()


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def sending_logger(
    name: str, handler: logging.Handler
) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Log the sample records to ``handler`` through logger ``name``; yields a
    function returning what the handler should have sent (each record's
    ``__dict__`` as logging.handlers.SocketHandler.makePickle sends it)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    sent = Collect()
    logger.addHandler(sent)
    logger.addHandler(handler)
    try:
        logger.debug("plain")
        logger.info("hello %s, %d", "world", 42)
        logger.warning("with extra", extra={"request_id": "r-17"})
        logger.error("unicode: %s", "h\u00e9llo \u2713")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("failed")

        def as_sent() -> list[dict[str, Any]]:
            records = [
                dict(r.__dict__, msg=r.getMessage(), args=None, exc_info=None) for r in sent.records
            ]
            for record in records:
                record.pop("message", None)
            return records

        yield as_sent
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(sent)
        handler.close()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def receive(records: queue.Queue[logging.LogRecord], n: int) -> list[dict[str, Any]]:
    return [records.get(timeout=CLIENT_TIMEOUT).__dict__ for _ in range(n)]


@pytest.mark.usefixtures("no_leak")
def test_logging_socket_handler_to_the_cookbook_receiver() -> None:
    receiver = LogRecordSocketReceiver("127.0.0.1")
    port = receiver.server_address[1]
    with running(receiver):
        first = logging.handlers.SocketHandler("127.0.0.1", port)
        second = logging.handlers.SocketHandler("127.0.0.1", port)
        with (
            sending_logger("tss-test.tcp.first", first) as sent_first,
            sending_logger("tss-test.tcp.second", second) as sent_second,
        ):
            # The second connection is served while the first is still open:
            # each has its own handler thread.
            received = receive(receiver.records, 10)
            assert [r for r in received if r["name"] == "tss-test.tcp.first"] == sent_first()
            assert [r for r in received if r["name"] == "tss-test.tcp.second"] == sent_second()
    # Both connections closed: their handlers saw EOF, and server_close()
    # waited for them, so anything else sent would be in the queue now.
    assert receiver.records.empty()


@pytest.mark.usefixtures("no_leak")
def test_logging_datagram_handler_to_a_udp_receiver() -> None:
    receiver = LogRecordDatagramReceiver("127.0.0.1")
    with running(receiver):
        handler = logging.handlers.DatagramHandler("127.0.0.1", receiver.server_address[1])
        with sending_logger("tss-test.udp", handler) as sent:
            assert receive(receiver.records, 5) == sent()
    assert receiver.records.empty()


class ConfigListener(Protocol):
    """What logging.config.listen() returns: a thread with these attributes."""

    ready: threading.Event
    port: int

    def start(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...
    def is_alive(self) -> bool: ...


@pytest.mark.usefixtures("no_leak")
def test_logging_config_listen() -> None:
    """logging.config.listen(): a ThreadingTCPServer driven by select() on its
    fileno() and handle_request(), stopped by stopListening()."""
    target = logging.getLogger("tss-test.config")
    config = {"version": 1, "incremental": True, "loggers": {target.name: {"level": "ERROR"}}}
    payload = json.dumps(config).encode()
    verified: list[bytes] = []

    def verify(data: bytes) -> bytes:
        verified.append(data)
        return data

    assert vars(logging_config)["ThreadingTCPServer"] is trio_socketserver.sync.ThreadingTCPServer
    listener = cast("ConfigListener", logging_config.listen(0, verify=verify))
    listener.start()
    try:
        assert listener.ready.wait(CLIENT_TIMEOUT)  # set once it listens
        listener.ready.clear()  # set again once a configuration is applied
        with socket.create_connection(("127.0.0.1", listener.port), CLIENT_TIMEOUT) as s:
            s.sendall(struct.pack(">L", len(payload)) + payload)
            assert listener.ready.wait(CLIENT_TIMEOUT)
        assert verified == [payload]
        assert target.level == logging.ERROR
    finally:
        logging_config.stopListening()
        # Its loop sees the stop request after select() returns: a connection
        # makes it return now rather than after its one-second timeout (unless
        # that timeout came first and the listener has closed, or closes
        # while this connection waits in its backlog).
        with contextlib.suppress(ConnectionRefusedError, ConnectionResetError):
            socket.create_connection(("127.0.0.1", listener.port), CLIENT_TIMEOUT).close()
        listener.join(CLIENT_TIMEOUT)
        target.setLevel(logging.NOTSET)
    assert not listener.is_alive()


# -- many clients at once --------------------------------------------------------------


@pytest.mark.usefixtures("no_leak")
def test_threading_http_server_many_concurrent_clients() -> None:
    # Every handler waits until all the clients' requests are being handled:
    # this passes only if the server handles them all at the same time.
    barrier = threading.Barrier(CONCURRENT_CLIENTS, timeout=CLIENT_TIMEOUT)

    class Rendezvous(EchoHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            barrier.wait()
            super().do_POST()

    def client(i: int) -> tuple[int, bytes]:
        conn = http_connection(server)
        try:
            status, data, _, _ = exchange(conn, "POST", "/", b"client %d" % i)
            # Then a second request on the same connection, with no waiting.
            assert exchange(conn, "GET", f"/again/{i}")[:2] == (200, f"/again/{i}".encode())
            return status, data
        finally:
            conn.close()

    class Server(ThreadingHTTPServer):
        # A listen backlog for all the clients at once: with the default (5)
        # the kernel drops the SYNs past it, and they are resent a second later.
        request_queue_size = CONCURRENT_CLIENTS

    server = Server(("127.0.0.1", 0), Rendezvous)
    with running(server), ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        results = list(pool.map(client, range(CONCURRENT_CLIENTS)))
    assert results == [(200, b"client %d" % i) for i in range(CONCURRENT_CLIENTS)]


class ThreadingXMLRPCServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    """The threading XML-RPC server of the xmlrpc.server documentation."""

    request_queue_size = CONCURRENT_CLIENTS  # as in the ThreadingHTTPServer test


@pytest.mark.usefixtures("no_leak")
def test_threading_xmlrpc_server_many_concurrent_clients() -> None:
    barrier = threading.Barrier(CONCURRENT_CLIENTS, timeout=CLIENT_TIMEOUT)

    def rendezvous(i: Any) -> Any:
        barrier.wait()
        return i * i

    server = ThreadingXMLRPCServer(("127.0.0.1", 0), logRequests=False)
    server.register_function(rendezvous)

    def client(i: int) -> Any:
        with xmlrpc.client.ServerProxy(url(server)) as proxy:
            return proxy.rendezvous(i)

    with running(server), ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        results = list(pool.map(client, range(CONCURRENT_CLIENTS)))
    assert results == [i * i for i in range(CONCURRENT_CLIENTS)]
