"""Server addresses are typed per transport: a wrong one is a type error.

``TCPServer``/``UDPServer`` take an ``IPAddress``; ``UnixStreamServer``/
``UnixDatagramServer`` a ``UnixBindAddress`` (``str | bytes | os.PathLike``).
Each marked line must fail with exactly the stated code (unused ignores fail
under --strict).

Type-checked by ``nox -s typecheck`` (mypy --strict); never executed.
"""

from __future__ import annotations

from pathlib import Path

import trio_socketserver as ts
from trio_socketserver import (
    ConcurrentTCPServer,
    ConcurrentUnixStreamServer,
    TCPServer,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
)


class TCPHandler(ts.TCPRequestHandler):
    async def handle(self) -> None: ...


class UDPHandler(ts.UDPRequestHandler):
    async def handle(self) -> None: ...


class UnixHandler(ts.UnixStreamRequestHandler):
    async def handle(self) -> None: ...


class UnixDatagramHandler(ts.UnixDatagramRequestHandler):
    async def handle(self) -> None: ...


def right_addresses() -> None:
    # Still accepted with the fix.
    TCPServer(("127.0.0.1", 0), TCPHandler)
    TCPServer(("::1", 0, 0, 0), TCPHandler)
    ConcurrentTCPServer(("", 8000), TCPHandler)
    UDPServer(("127.0.0.1", 0), UDPHandler)
    UnixStreamServer("/tmp/x.sock", UnixHandler)
    UnixStreamServer(b"\0abstract", UnixHandler)
    UnixStreamServer(Path("/tmp/x.sock"), UnixHandler)
    ConcurrentUnixStreamServer(Path("/tmp/x.sock"), UnixHandler)
    UnixDatagramServer(Path("/tmp/x.sock"), UnixDatagramHandler)


def wrong_addresses() -> None:
    TCPServer(("localhost", "80"), TCPHandler)  # type: ignore[arg-type]
    TCPServer("/tmp/x.sock", TCPHandler)  # type: ignore[arg-type]
    TCPServer(8000, TCPHandler)  # type: ignore[arg-type]
    ConcurrentTCPServer(("localhost", "80"), TCPHandler)  # type: ignore[arg-type]
    UDPServer("/tmp/x.sock", UDPHandler)  # type: ignore[arg-type]
    UnixStreamServer(("h", 1), UnixHandler)  # type: ignore[arg-type]
    ConcurrentUnixStreamServer(("h", 1), UnixHandler)  # type: ignore[arg-type]
    UnixDatagramServer(("h", 1), UnixDatagramHandler)  # type: ignore[arg-type]
