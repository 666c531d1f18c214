"""TCP server with StreamRequestHandler: read a line, reply upper-cased.

``self.rfile`` and ``self.wfile`` are the async counterparts of the stdlib's
file objects: ``await self.rfile.readline()`` instead of raw receives.

    python docs/examples/tcp_upper_echo_stream.py [--port 9999]
"""

from __future__ import annotations

import argparse

import trio

import trio_socketserver


class UpperCaseLineHandler(trio_socketserver.StreamRequestHandler):
    # Give up on a client that sends nothing (or stops reading) for 10 s.
    timeout = 10.0

    async def handle(self) -> None:
        # readline() instead of raw receive_some() calls
        data = (await self.rfile.readline()).strip()
        print(f"{self.client_address[0]} wrote: {data!r}")
        # likewise, wfile is used to write back to the client
        await self.wfile.write(data.upper())


async def main(port: int = 9999) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            trio_socketserver.serve, ("127.0.0.1", port), UpperCaseLineHandler
        )
        host, bound_port = server.server_address
        print(f"listening on tcp://{host}:{bound_port}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Line-based upper-casing TCP server.")
    parser.add_argument("--port", type=int, default=9999, help="0 picks a free port")
    trio.run(main, parser.parse_args().port)
