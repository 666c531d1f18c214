"""Peer: raw ``trio.socket`` UDP echo loop (baseline for the udp scenario).

    python bench/peers/trio_udp_echo.py --port 0 [--host 127.0.0.1]

Prints ``READY <port>`` (the real bound port) once bound, serves until
SIGTERM/SIGINT, then exits with status 0.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

import trio


async def echo_loop(sock: trio.socket.SocketType) -> None:
    while True:
        try:
            data, addr = await sock.recvfrom(65536)
            await sock.sendto(data, addr)
        except (ConnectionRefusedError, ConnectionResetError):
            # An ICMP error queued on the socket (a client went away) is
            # reported on the next call; it is not fatal for an echo server.
            continue


async def main(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_DGRAM)
    with sock:
        await sock.bind((host, port))
        bound = sock.getsockname()[1]
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                nursery.start_soon(echo_loop, sock)
                print(f"READY {bound}", flush=True)
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    trio.run(main, args.host, args.port)
    sys.exit(0)
