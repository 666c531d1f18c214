"""Peer: anyio echo server on anyio's trio backend (baseline for TCP scenarios).

    python bench/peers/anyio_tcp_echo.py --port 0 [--host 127.0.0.1]

Prints ``READY <port>`` (the real bound port) once listening, serves until
SIGTERM/SIGINT, then exits with status 0.
"""

from __future__ import annotations

import argparse
import signal
import sys

import anyio
from anyio.abc import SocketAttribute, SocketStream


async def handler(client: SocketStream) -> None:
    # Listener.serve() does not close accepted streams itself, so the handler
    # must (otherwise sockets would only be closed by the garbage collector).
    async with client:
        try:
            while True:
                try:
                    data = await client.receive(65536)
                except anyio.EndOfStream:
                    break
                await client.send(data)
        except anyio.BrokenResourceError:
            # RST close from the load generator (SO_LINGER 0 after the echo
            # was read): same meaning as EOF here.  Uncaught, it would
            # propagate out of listener.serve() and crash the server.
            pass


async def main(host: str, port: int) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            tg.start_soon(listener.serve, handler)
            bound = listener.extra(SocketAttribute.local_port)
            print(f"READY {bound}", flush=True)
            async for _ in signals:
                break
        tg.cancel_scope.cancel()
    await listener.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    anyio.run(main, args.host, args.port, backend="trio")
    sys.exit(0)
