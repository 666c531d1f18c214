"""Unix stream server: the TCP example on a Unix domain socket.

Only the address differs: a filesystem path instead of ``(host, port)``.
A stale socket file left by a crashed server is replaced; the file is
removed when the server closes.

    python docs/examples/unix_stream_server.py [--path /tmp/upper.sock]

Try it with ``nc -U /tmp/upper.sock``.
"""

from __future__ import annotations

import argparse

import trio

import trio_socketserver


class UpperCaseHandler(trio_socketserver.BaseRequestHandler):
    async def handle(self) -> None:
        data = (await self.request.receive_some(1024)).strip()
        print(f"received: {data!r}")
        await self.request.send_all(data.upper())


async def main(path: str = "/tmp/upper.sock") -> None:
    async with trio.open_nursery() as nursery:
        # A path (str or os.PathLike) makes serve() pick a Unix stream server.
        server = await nursery.start(trio_socketserver.serve, path, UpperCaseHandler)
        print(f"listening on unix:{server.server_address}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Upper-casing Unix stream server.")
    parser.add_argument("--path", default="/tmp/upper.sock", help="socket file to create")
    trio.run(main, parser.parse_args().path)
