"""The built-in echo handlers that ``python -m trio_socketserver`` serves."""

from __future__ import annotations

from typing import Any

from ._handlers import DatagramRequestHandler, StreamRequestHandler

__all__ = ["DatagramEchoHandler", "StreamEchoHandler"]


class StreamEchoHandler(StreamRequestHandler[Any, Any]):
    """Send back every byte received, until the client closes."""

    async def handle(self) -> None:
        receive, send = self.request.receive_some, self.request.send_all
        while data := await receive():
            await send(data)


class DatagramEchoHandler(DatagramRequestHandler[Any, Any]):
    """Send every datagram back to where it came from."""

    async def handle(self) -> None:
        self.wfile.write(self.packet)
