"""``python -m trio_socketserver``: serve a handler from the command line.

With no arguments it serves the built-in echo handler on
``tcp://127.0.0.1:9999``. ``--tcp``/``--udp``/``--unix``/``--unix-datagram``
choose the transport and address, ``--handler module:Class`` a handler of
your own. The bound address is printed on one line (``listening on ...``)
once the server accepts requests; Ctrl-C (or SIGTERM) shuts it down
gracefully, a second Ctrl-C at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import trio

from ._addresses import parse_host_port
from ._concurrency import (
    ConcurrentTCPServer,
    ConcurrentUDPServer,
    ConcurrentUnixDatagramServer,
    ConcurrentUnixStreamServer,
)
from ._echo import DatagramEchoHandler, StreamEchoHandler
from ._serve import describe_address, serve
from ._server import _DEFAULT
from ._socket_server import SocketServer

__all__ = ["main"]

DEFAULT_ADDRESS = ("127.0.0.1", 9999)


def load_handler(spec: str) -> Any:
    """Import ``module:Class`` (``module.sub:Outer.Inner`` works too)."""
    module_name, sep, qualname = spec.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"--handler expects module:Class, not {spec!r}")
    if module_name.startswith("."):
        # import_module() would raise TypeError (a relative import needs a package).
        raise ValueError(
            f"--handler: module {module_name!r} is relative; give its absolute name "
            "(for example mypackage.handlers:MyHandler)"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as exc:
        # ImportError: no such module; ValueError/TypeError: a malformed name
        # that importlib rejects. Errors raised by the module's own code
        # (SyntaxError, RuntimeError...) propagate with their traceback: that
        # is the module's bug, and the traceback is what locates it.
        raise ValueError(f"--handler: cannot import module {module_name!r}: {exc}") from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"--handler: {module_name!r} has no attribute {qualname!r}") from None
    return obj


def _cap(text: str) -> int:
    """``--max-concurrent``: checked by the parser, so that a bad value is a
    usage error before anything is bound (not after "listening on")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trio_socketserver",
        description="Serve a request handler with trio_socketserver "
        "(default: an echo server on tcp://127.0.0.1:9999).",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--tcp", metavar="HOST:PORT", help="serve TCP (port 0: any free port)")
    where.add_argument("--udp", metavar="HOST:PORT", help="serve UDP")
    where.add_argument("--unix", metavar="PATH", help="serve a Unix stream socket")
    where.add_argument("--unix-datagram", metavar="PATH", help="serve a Unix datagram socket")
    parser.add_argument(
        "--handler",
        metavar="MODULE:CLASS",
        help="the request handler class (default: the built-in echo handler)",
    )
    parser.add_argument(
        "--max-concurrent", type=_cap, metavar="N", help="handle at most N requests at once"
    )
    parser.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="time in-flight requests get on shutdown (default 30)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return parser


def _choose(args: argparse.Namespace) -> tuple[Any, type[SocketServer[Any, Any]], Any]:
    datagram = args.udp is not None or args.unix_datagram is not None
    if args.handler is not None:
        handler = load_handler(args.handler)
    else:
        handler = DatagramEchoHandler if datagram else StreamEchoHandler
    if args.udp is not None:
        return parse_host_port(args.udp, option="--udp"), ConcurrentUDPServer, handler
    if args.unix is not None:
        return args.unix, ConcurrentUnixStreamServer, handler
    if args.unix_datagram is not None:
        return args.unix_datagram, ConcurrentUnixDatagramServer, handler
    address = parse_host_port(args.tcp, option="--tcp") if args.tcp else DEFAULT_ADDRESS
    return address, ConcurrentTCPServer, handler


async def _run(
    args: argparse.Namespace, choice: tuple[Any, type[SocketServer[Any, Any]], Any]
) -> None:
    address, server_class, handler = choice
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve(
                address,
                handler,
                server_class=server_class,
                max_concurrent_requests=args.max_concurrent,
                grace_period=_DEFAULT if args.grace is None else args.grace,
                task_status=task_status,
            )
        )
        print(f"listening on {describe_address(server)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        choice = _choose(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        trio.run(_run, args, choice)
    except* (ValueError, TypeError, OSError) as group:
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        parser.exit(2, f"{parser.prog}: error: {first}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
