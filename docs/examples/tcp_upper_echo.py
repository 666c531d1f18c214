"""TCP server: reply with what the client sent, upper-cased.

The socketserver documentation's first example, on trio. ``self.request`` is
the connection (a :class:`trio_socketserver.ConnectionStream`); the handler
reads once, replies once, and the server closes the connection.

    python docs/examples/tcp_upper_echo.py [--port 9999]

Try it with ``nc 127.0.0.1 9999``. Ctrl-C stops the server gracefully.
"""

from __future__ import annotations

import argparse

import trio

import trio_socketserver


class UpperCaseHandler(trio_socketserver.BaseRequestHandler):
    """One instance per connection; ``handle`` does all the work."""

    async def handle(self) -> None:
        # self.request is the stream connected to the client
        data = (await self.request.receive_some(1024)).strip()
        print(f"{self.client_address[0]} wrote: {data!r}")
        # send back the same data, upper-cased
        await self.request.send_all(data.upper())


async def main(port: int = 9999) -> None:
    async with trio.open_nursery() as nursery:
        # serve() binds, serves each connection in its own task, and shuts
        # down gracefully on SIGINT/SIGTERM; nursery.start returns the server.
        server = await nursery.start(trio_socketserver.serve, ("127.0.0.1", port), UpperCaseHandler)
        host, bound_port = server.server_address
        print(f"listening on tcp://{host}:{bound_port}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Upper-casing TCP echo server.")
    parser.add_argument("--port", type=int, default=9999, help="0 picks a free port")
    trio.run(main, parser.parse_args().port)
