"""UDP server: reply to each datagram with its content upper-cased.

For a datagram server ``self.request`` is ``(data, socket)``: there is no
connection, so the reply goes to ``self.client_address``, sent with the
server's ``sendto``.

    python docs/examples/udp_upper_echo.py [--port 9999]

Try it with ``nc -u 127.0.0.1 9999``.
"""

from __future__ import annotations

import argparse
import functools

import trio

import trio_socketserver


class UpperCaseDatagramHandler(trio_socketserver.BaseRequestHandler):
    async def handle(self) -> None:
        data, _socket = self.request
        data = data.strip()
        print(f"{self.client_address[0]} wrote: {data!r}")
        await self.server.sendto(data.upper(), self.client_address)


async def main(port: int = 9999) -> None:
    async with trio.open_nursery() as nursery:
        # A BaseRequestHandler fits any transport, so say which server to use
        # (serve() would pick TCP for a (host, port) address).
        serve_udp = functools.partial(
            trio_socketserver.serve, server_class=trio_socketserver.ConcurrentUDPServer
        )
        server = await nursery.start(serve_udp, ("127.0.0.1", port), UpperCaseDatagramHandler)
        host, bound_port = server.server_address
        print(f"listening on udp://{host}:{bound_port}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Upper-casing UDP echo server.")
    parser.add_argument("--port", type=int, default=9999, help="0 picks a free port")
    trio.run(main, parser.parse_args().port)
