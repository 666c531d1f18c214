"""A concurrent server and its clients in one program.

The socketserver "threaded server" example on trio: instead of a thread for
the server and one per request, ``serve_forever`` runs as a task started
with ``nursery.start`` and each connection is handled in its own task. The
program runs three clients against it, shuts the server down and exits.

    python docs/examples/concurrent_server_with_client.py [--port 0]
"""

from __future__ import annotations

import argparse

import trio

import trio_socketserver


class CountingHandler(trio_socketserver.BaseRequestHandler):
    async def handle(self) -> None:
        data = str(await self.request.receive_some(1024), "ascii")
        # Which request is this? (The stdlib example prints the thread name.)
        number = self.server.statistics().requests_received
        response = bytes(f"request {number}: {data}", "ascii")
        await self.request.send_all(response)


async def client(ip: str, port: int, message: str) -> None:
    async with await trio.open_tcp_stream(ip, port) as stream:
        await stream.send_all(bytes(message, "ascii"))
        response = str(await stream.receive_some(1024), "ascii")
        print(f"Received: {response}")


async def main(port: int = 0) -> None:
    # Port 0 means to select an arbitrary unused port
    server = trio_socketserver.ConcurrentTCPServer(("127.0.0.1", port), CountingHandler)
    async with server, trio.open_nursery() as nursery:
        # Start serve_forever as a task; it starts one more task per request.
        # nursery.start returns once the server is accepting connections.
        await nursery.start(server.serve_forever)
        ip, port = server.server_address[:2]
        print(f"listening on tcp://{ip}:{port}", flush=True)

        await client(ip, port, "Hello World 1")
        await client(ip, port, "Hello World 2")
        await client(ip, port, "Hello World 3")

        # Returns once serve_forever has returned: the nursery is then empty.
        await server.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Concurrent TCP server with clients.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    trio.run(main, parser.parse_args().port)
