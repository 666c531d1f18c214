"""Mistakes the types must reject.

Each line that must not type-check carries ``# type: ignore[<code>]`` with
the exact error code. mypy --strict turns on ``warn_unused_ignores``, so if a
change to the package lets one of these lines type-check, the now-unused
ignore is itself reported and ``nox -s typecheck`` fails.

Type-checked by ``nox -s typecheck`` (mypy --strict); never executed.
"""

from __future__ import annotations

import trio_socketserver as ts
from trio_socketserver import (
    ConcurrentTCPServer,
    ConnectionStream,
    DatagramRequestHandler,
    IPAddress,
    StreamRequestHandler,
    TCPServer,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
)


class TCPHandler(ts.TCPRequestHandler):
    async def handle(self) -> None: ...


class LineHandler(StreamRequestHandler[IPAddress, TCPServer]):
    async def handle(self) -> None: ...


class DatagramEcho(DatagramRequestHandler[IPAddress, UDPServer]):
    async def handle(self) -> None: ...


class UDPHandler(ts.UDPRequestHandler):
    async def handle(self) -> None: ...


class UnixHandler(ts.UnixStreamRequestHandler):
    async def handle(self) -> None: ...


class ConcurrentOnlyHandler(
    ts.BaseRequestHandler[ConnectionStream, IPAddress, ConcurrentTCPServer]
):
    async def handle(self) -> None: ...


# -- a handler for the wrong transport ------------------------------------------------


def wrong_transport() -> None:
    TCPServer(("127.0.0.1", 0), DatagramEcho)  # type: ignore[arg-type]
    TCPServer(("127.0.0.1", 0), UDPHandler)  # type: ignore[arg-type]
    ConcurrentTCPServer(("127.0.0.1", 0), DatagramEcho)  # type: ignore[arg-type]
    UDPServer(("127.0.0.1", 0), LineHandler)  # type: ignore[arg-type]
    UDPServer(("127.0.0.1", 0), TCPHandler)  # type: ignore[arg-type]
    UnixDatagramServer("/tmp/x.sock", UnixHandler)  # type: ignore[arg-type]


# -- a handler for the wrong address family -------------------------------------------


def wrong_family() -> None:
    UnixStreamServer("/tmp/x.sock", TCPHandler)  # type: ignore[arg-type]
    UnixStreamServer("/tmp/x.sock", LineHandler)  # type: ignore[arg-type]
    TCPServer(("127.0.0.1", 0), UnixHandler)  # type: ignore[arg-type]


# -- a handler for a narrower server than the one serving it ------------------------------


def narrower_server() -> None:
    # Contravariance the other way round: the handler relies on
    # ConcurrentTCPServer attributes that a plain TCPServer lacks.
    TCPServer(("127.0.0.1", 0), ConcurrentOnlyHandler)  # type: ignore[arg-type]


# -- blocking hooks ---------------------------------------------------------------------


class BlockingHandle(ts.BaseRequestHandler):
    def handle(self) -> None: ...  # type: ignore[override]


class BlockingSetup(ts.TCPRequestHandler):
    def setup(self) -> None: ...  # type: ignore[override]


class BlockingFinish(StreamRequestHandler[IPAddress, TCPServer]):
    def finish(self) -> None: ...  # type: ignore[override]


# -- using a request as what it is not --------------------------------------------------


class UDPMisuse(ts.UDPRequestHandler):
    async def handle(self) -> None:
        await self.request.receive_some()  # type: ignore[attr-defined]


class DatagramMisuse(DatagramRequestHandler[IPAddress, UDPServer]):
    async def handle(self) -> None:
        await self.request.send_all(b"x")  # type: ignore[attr-defined]
        await self.rfile.readline()  # type: ignore[misc]


class StreamMisuse(StreamRequestHandler[IPAddress, TCPServer]):
    async def handle(self) -> None:
        _data, _sock = self.request  # type: ignore[misc]
        self.rfile.readline().decode()  # type: ignore[attr-defined]
        await self.wfile.write("text")  # type: ignore[arg-type]


class UnixMisuse(ts.UnixStreamRequestHandler):
    async def handle(self) -> None:
        _port: int = self.client_address[1]  # type: ignore[assignment]


class UnixDatagramMisuse(ts.UnixDatagramRequestHandler):
    async def handle(self) -> None:
        self.client_address.encode()  # type: ignore[union-attr]
