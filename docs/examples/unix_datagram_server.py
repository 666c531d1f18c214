"""Unix datagram server with DatagramRequestHandler.

``self.rfile`` reads the datagram and whatever the handler writes to
``self.wfile`` is sent back to the client in one datagram when the handler
finishes. A client must bind its own socket to a path to get a reply (an
unbound client's address is ``None``).

    python docs/examples/unix_datagram_server.py [--path /tmp/upper-dgram.sock]
"""

from __future__ import annotations

import argparse

import trio

import trio_socketserver


class UpperCaseDatagramHandler(trio_socketserver.DatagramRequestHandler):
    async def handle(self) -> None:
        data = self.rfile.read().strip()
        print(f"{self.client_address} wrote: {data!r}")
        self.wfile.write(data.upper())  # sent back by finish()


async def main(path: str = "/tmp/upper-dgram.sock") -> None:
    async with trio.open_nursery() as nursery:
        # A path and a DatagramRequestHandler: serve() picks a Unix datagram server.
        server = await nursery.start(trio_socketserver.serve, path, UpperCaseDatagramHandler)
        print(f"listening on unixgram:{server.server_address}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Upper-casing Unix datagram server.")
    parser.add_argument("--path", default="/tmp/upper-dgram.sock", help="socket file to create")
    trio.run(main, parser.parse_args().path)
