"""ConcurrencyMixIn: a handler task per request, in the server's nursery.

This replaces both ``ThreadingMixIn`` and ``ForkingMixIn``. Where those start
an unbounded thread or process per request and then join (or abandon) them
on close, here each request runs as a trio task in the nursery that
``serve_forever`` owns, so:

* **Bounded.** ``max_concurrent_requests`` caps the handlers running at once.
  At the cap the accept loop stops taking requests until one finishes: the
  kernel's listen backlog (``request_queue_size``) holds the next
  connections, and beyond it clients see the backpressure. Nothing is
  accepted and then dropped.
* **Shutdown is structured.** The tasks belong to ``serve_forever``: they get
  the grace period and are then cancelled (see :mod:`._server`); nothing can
  outlive the server, so there is no ``block_on_close`` to choose.
* ``daemon_requests = True`` is ``daemon_threads`` made safe: requests are
  cancelled as soon as shutdown starts, and their ``finish()`` still runs.

Outside ``serve_forever`` (``handle_request()``) there is no nursery, so the
request is processed in the calling task.
"""

from __future__ import annotations

import socket as _socket
from typing import Any, ClassVar

import trio

from ._datagram_servers import UDPServer, UnixDatagramServer
from ._server import BaseServer
from ._stream_servers import TCPServer, UnixStreamServer
from ._typevars import AddressT, RequestT

__all__ = [
    "ConcurrencyMixIn",
    "ConcurrentTCPServer",
    "ConcurrentUDPServer",
    "ConcurrentUnixDatagramServer",
    "ConcurrentUnixStreamServer",
]


class ConcurrencyMixIn(BaseServer[RequestT, AddressT]):
    """Handle each request in its own task. List it first among the bases:
    ``class MyServer(ConcurrencyMixIn, TCPServer)``."""

    #: The most requests handled at once; ``None`` for no limit. At the cap,
    #: the server stops taking requests until one finishes.
    max_concurrent_requests: int | None = None

    _capacity_lot: trio.lowlevel.ParkingLot | None = None
    #: Datagram servers: handlers reply at the same time, so
    #: DatagramServer.sendto takes turns.
    _concurrent_replies: ClassVar[bool] = True

    def _lot(self) -> trio.lowlevel.ParkingLot:
        if self._capacity_lot is None:
            self._capacity_lot = trio.lowlevel.ParkingLot()
        return self._capacity_lot

    async def _wait_for_capacity(self) -> None:
        cap: object = self.max_concurrent_requests
        if cap is None:
            return
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"max_concurrent_requests must be None or an int >= 1, not {cap!r}")
        while self._active >= cap:
            await self._lot().park()

    def _has_capacity(self) -> bool:
        cap = self.max_concurrent_requests
        return cap is None or (type(cap) is int and self._active < cap)

    async def process_request(self, request: RequestT, client_address: AddressT) -> None:
        """Start a task that runs :meth:`process_request_task`."""
        nursery = self._nursery
        if nursery is None:
            await self.process_request_task(request, client_address)
            return
        self._active += 1
        try:
            nursery.start_soon(self._counted_task, request, client_address)
        except BaseException:
            self._active -= 1
            raise

    async def _counted_task(self, request: RequestT, client_address: AddressT) -> None:
        try:
            await self.process_request_task(request, client_address)
        finally:
            self._active -= 1
            if self._drained is not None:
                self._request_ended()
            lot = self._capacity_lot
            if lot is not None and lot:
                lot.unpark()

    async def process_request_task(self, request: RequestT, client_address: AddressT) -> None:
        """Run the handler, route an ``Exception`` to ``handle_error``, and
        always shut the request down (the stdlib's ``process_request_thread``).

        An ``Exception`` from ``shutdown_request`` goes to ``handle_error``
        too: the task must not raise anything but a ``BaseException``, since
        that ends ``serve_forever`` and cancels every other request."""
        try:
            await self.finish_request(request, client_address)
        except Exception:
            self._report_error(request, client_address)
        except BaseExceptionGroup as group:
            # Cancelled mixed with the Exceptions of a handler's own nursery
            # (cancelled in phase 3): the Exceptions are reported, the
            # cancellation goes on (see BaseServer._report_exceptions_in).
            self._report_exceptions_in(group, request, client_address)
        finally:
            await self._shutdown_request_reporting(request, client_address)


class ConcurrentTCPServer(ConcurrencyMixIn[Any, Any], TCPServer):
    """A TCP server handling each connection in its own task (the async
    ``ThreadingTCPServer``). Unlike :class:`TCPServer`, whose defaults are the
    stdlib's, it listens with the system's largest backlog and sets
    ``SO_REUSEADDR`` (as ``http.server.HTTPServer`` and trio do), so a
    restarted server can bind at once."""

    request_queue_size: int = _socket.SOMAXCONN
    allow_reuse_address: bool = True


class ConcurrentUDPServer(ConcurrencyMixIn[Any, Any], UDPServer):
    """A UDP server handling each datagram in its own task."""


class ConcurrentUnixStreamServer(ConcurrencyMixIn[Any, Any], UnixStreamServer):
    """A Unix stream server handling each connection in its own task."""

    request_queue_size: int = _socket.SOMAXCONN


class ConcurrentUnixDatagramServer(ConcurrencyMixIn[Any, Any], UnixDatagramServer):
    """A Unix datagram server handling each datagram in its own task."""
