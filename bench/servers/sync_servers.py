"""Blocking socketserver servers for the ``--suite sync`` benchmarks.

python bench/servers/sync_servers.py --impl stdlib|sync
    --kind tcp|threading-tcp|udp|threading-udp|http [--host H] [--port 0]
    [--request-queue-size N]

The same script, the same request handler classes and the same server class
names on both sides; only the module the *server* classes come from differs:

* ``--impl stdlib``: ``socketserver`` (and ``http.server``) of the stdlib.
* ``--impl sync``: ``trio_socketserver.sync``.  For ``--kind http`` it is put
  in ``sys.modules["socketserver"]`` before ``http.server`` is imported, so
  ``http.server.ThreadingHTTPServer`` is built on it (the documented way to
  switch the stdlib's servers); the script checks that it really is.

The handlers are plain stdlib classes, used unchanged by both servers:

* tcp, threading-tcp: ``EchoHandler`` (socketserver.BaseRequestHandler),
  ``recv(65536)`` / ``sendall`` until EOF; a reset is treated as EOF (the
  load generator closes connect-per-request sockets with an RST; without
  this each one would be a logged traceback, as it is for the stdlib).
* udp, threading-udp: ``DatagramEcho`` (socketserver.BaseRequestHandler),
  ``sock.sendto(data, client_address)`` for every datagram.
* http: ``HelloHandler`` (http.server.BaseHTTPRequestHandler), ``GET`` ->
  200 with a 13-byte text body and Content-Length, ``HTTP/1.1`` so that
  keep-alive works, request logging off (a stderr line per request would
  be measured otherwise).  It answers ``Connection: close`` when the
  request asked for it (as HTTP/1.1 says it should): without that header
  wrk takes the response as keep-alive, sends the next request on the
  closing connection and counts a read error for every request.
  ``disable_nagle_algorithm = True`` (a stdlib StreamRequestHandler
  attribute): the handler writes the headers and the body with two sends,
  and with Nagle on the body would wait for the client's delayed ACK, so
  the benchmark would measure the 40 ms timer.

The server classes are used with their defaults (``daemon_threads``,
``block_on_close``, ...), as a user gets them.  The one exception is
``--request-queue-size N`` (N > 0): a subclass of the same name with
``request_queue_size = N``, the listen backlog (default 5).  bench/run.py
passes 128 (what ``socket.listen()`` picks without an argument) to both
sides: with 5, a burst of 50 connects (the persistent and keep-alive
scenarios open all their connections at once) or 16 connect-per-request
clients overflow the accept queue, the dropped connections wait for TCP's
SYN retransmit (1 s, 3 s, 7 s ...), and the run measures that timer rather
than the server.

wrk and the load generator end their connections with a reset, so the
server logs show a few ConnectionResetError / BrokenPipeError tracebacks
from the stdlib's ``handle_error`` (http.server does not treat a reset as
EOF) when a client closes; the same on both sides.

Prints ``READY <port>`` once listening; SIGTERM/SIGINT stop it: the signal
handler calls ``shutdown()`` from a new thread (``serve_forever()`` runs in
the main thread, as in ``http.server.test``), then ``server_close()``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import socketserver as std_socketserver  # handler base classes: the stdlib's, on both sides
import sys
import threading
from typing import Any

KINDS = ("tcp", "threading-tcp", "udp", "threading-udp", "http")
SERVER_CLASS = {
    "tcp": "TCPServer",
    "threading-tcp": "ThreadingTCPServer",
    "udp": "UDPServer",
    "threading-udp": "ThreadingUDPServer",
    "http": "ThreadingHTTPServer",
}
BODY = b"Hello, world\n"


class EchoHandler(std_socketserver.BaseRequestHandler):
    def handle(self) -> None:
        recv, sendall = self.request.recv, self.request.sendall
        try:
            while True:
                data = recv(65536)
                if not data:
                    break
                sendall(data)
        except ConnectionResetError:
            pass


class DatagramEcho(std_socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


def server_module(impl: str) -> Any:
    if impl == "stdlib":
        return std_socketserver
    import trio_socketserver.sync

    return trio_socketserver.sync


def http_server_class(impl: str) -> tuple[type, type]:
    """(ThreadingHTTPServer, HelloHandler), http.server imported on `impl`."""
    if "http.server" in sys.modules:
        raise SystemExit("http.server was imported before socketserver could be chosen")
    if impl == "sync":
        import trio_socketserver.sync

        sys.modules["socketserver"] = trio_socketserver.sync
    import http.server

    server_class = http.server.ThreadingHTTPServer
    bases = {f"{c.__module__}.{c.__qualname__}" for c in server_class.__mro__}
    want = "trio_socketserver.sync.TCPServer" if impl == "sync" else "socketserver.TCPServer"
    if want not in bases:
        raise SystemExit(f"ThreadingHTTPServer is not built on {want}: {sorted(bases)}")

    class HelloHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(BODY)))
            if self.close_connection:  # the request said "Connection: close"
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return server_class, HelloHandler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["stdlib", "sync"], required=True)
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--request-queue-size", type=int, default=0, help="listen backlog; 0: the class's own"
    )
    args = parser.parse_args()

    if args.kind == "http":
        server_class, handler = http_server_class(args.impl)
    else:
        server_class = getattr(server_module(args.impl), SERVER_CLASS[args.kind])
        handler = DatagramEcho if "udp" in args.kind else EchoHandler
    attrs: dict[str, Any] = {}
    if args.request_queue_size > 0:
        attrs["request_queue_size"] = args.request_queue_size
    if ":" in args.host:
        # the stdlib picks no family from the address (http.server.test does this too)
        attrs["address_family"] = socket.AF_INET6
    if attrs:
        # same name and module, so the logged class reads as the one configured
        attrs.update(__module__=server_class.__module__, __qualname__=server_class.__qualname__)
        server_class = type(server_class.__name__, (server_class,), attrs)

    server = server_class((args.host, args.port), handler)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"{server_class.__module__}.{server_class.__qualname__} "
        f"(request_queue_size {server_class.request_queue_size}) "
        f"handler {handler.__qualname__}{handler.__mro__[1:3]}",
        file=sys.stderr,
        flush=True,
    )
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
