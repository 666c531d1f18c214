"""Peer: raw ``trio.serve_tcp`` echo server (baseline for TCP scenarios).

    python bench/peers/trio_tcp_echo.py --port 0 [--host 127.0.0.1]

Prints ``READY <port>`` (the real bound port) once listening, serves until
SIGTERM/SIGINT, then exits with status 0.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys

import trio


async def handler(stream: trio.SocketStream) -> None:
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                break
            await stream.send_all(data)
    except trio.BrokenResourceError:
        # The load generator closes with RST (SO_LINGER 0) after it has read
        # the echo, so the next receive fails with ECONNRESET instead of
        # returning b"".  Treat it exactly like EOF.  (Uncaught, it would
        # propagate out of serve_tcp and crash the whole server.)
        pass
    # No explicit close here: serve_tcp's per-connection wrapper
    # (trio._highlevel_serve_listeners._run_handler) already does
    # `await trio.aclose_forcefully(stream)` when the handler returns.


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, handler, port, host=host)
            )
            bound = listeners[0].socket.getsockname()[1]
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
