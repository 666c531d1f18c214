"""trio_socketserver UDP echo server for the benchmarks.

python bench/servers/ts_udp_echo.py --port 0 [--handler raw|datagram]

The stdlib-shaped sequential ``UDPServer`` (one datagram at a time, as a
UDP echo needs). ``raw`` replies with ``await sock.sendto``; ``datagram``
uses DatagramRequestHandler (reply written to wfile, sent on finish).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import trio

import trio_socketserver as ts


class RawEcho(ts.UDPRequestHandler):
    async def handle(self) -> None:
        data, sock = self.request
        await sock.sendto(data, self.client_address)


class FileEcho(ts.DatagramRequestHandler[Any, Any]):
    async def handle(self) -> None:
        self.wfile.write(self.packet)


async def main(host: str, port: int, handler: type[Any]) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: ts.serve(
                (host, port),
                handler,
                server_class=ts.UDPServer,
                grace_period=0,
                task_status=task_status,
            )
        )
        print(f"READY {server.server_address[1]}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--handler", choices=["raw", "datagram"], default="raw")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    trio.run(main, args.host, args.port, RawEcho if args.handler == "raw" else FileEcho)
