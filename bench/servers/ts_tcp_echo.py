"""trio_socketserver echo server for the benchmarks.

python bench/servers/ts_tcp_echo.py --port 0 [--handler raw|stream]

Prints ``READY <port>`` once listening; SIGTERM/SIGINT shut it down.
``raw`` echoes with ``self.request.receive_some``/``send_all`` (the
ConnectionStream); ``stream`` goes through StreamRequestHandler's buffered
``rfile.read1``/``wfile.write``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import trio

import trio_socketserver as ts

# Like the peers, the handlers treat a reset (the load generator closes
# connect-per-request sockets with RST) as end of stream; otherwise each one
# would be a logged traceback, as it is in the stdlib.


class RawEcho(ts.BaseRequestHandler[ts.ConnectionStream, Any, Any]):
    async def handle(self) -> None:
        receive, send = self.request.receive_some, self.request.send_all
        try:
            while data := await receive(65536):
                await send(data)
        except trio.BrokenResourceError:
            pass


class StreamEcho(ts.StreamRequestHandler[Any, Any]):
    async def handle(self) -> None:
        read1, write = self.rfile.read1, self.wfile.write
        try:
            while data := await read1(65536):
                await write(data)
        except trio.BrokenResourceError:
            pass


async def main(host: str, port: int, handler: type[Any]) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: ts.serve(
                (host, port),
                handler,
                server_class=ts.ConcurrentTCPServer,
                grace_period=0,
                task_status=task_status,
            )
        )
        print(f"READY {server.server_address[1]}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--handler", choices=["raw", "stream"], default="raw")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    trio.run(main, args.host, args.port, RawEcho if args.handler == "raw" else StreamEcho)
