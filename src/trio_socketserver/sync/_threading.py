"""ThreadingMixIn: each request in a pooled thread, bounded, with a
shutdown that ends.

The stdlib's ``ThreadingMixIn`` starts a thread per request with no limit,
and ``server_close()`` joins the non-daemon ones for as long as they take.
Here:

* Threads come from a :class:`~._workers.WorkerPool` and are reused.
* ``max_threads`` caps the handlers running at once. At the cap the server
  stops accepting until one finishes: the kernel's listen backlog holds the
  next connections (backpressure), nothing is accepted and then dropped.
  The default, ``None``, sets no fixed cap, so no program that ran on the
  stdlib is throttled; the cap is then what the system allows: when it
  refuses a new thread, the request waits for a free one and the server
  stops accepting meanwhile (the stdlib reports the error and drops the
  connection).
* ``server_close()`` keeps the stdlib's meaning of ``block_on_close`` (wait
  for the handlers) and ``daemon_threads`` (do not wait), and adds a
  deadline: after ``grace_period`` seconds the connections of handlers
  still running are shut down, so that handlers blocked in socket I/O end.
  With ``daemon_threads`` that happens at once, so that nothing is left
  holding a connection. A second Ctrl-C while ``server_close()`` waits does
  the same before it propagates. Handlers that block in something other
  than socket I/O (``time.sleep``, a CPU loop) cannot be interrupted by any
  Python code; ``server_close()`` waits for them unless told not to.
* Datagram servers wait for their handlers *before* closing the socket they
  reply on, so replies in flight are not lost.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from ._servers import BaseServer, TCPServer, UDPServer, UnixDatagramServer, UnixStreamServer
from ._workers import MAX_IDLE, WorkerPool

__all__ = [
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "ThreadingUnixDatagramServer",
    "ThreadingUnixStreamServer",
]

if TYPE_CHECKING:
    _MixinBase = BaseServer
else:
    _MixinBase = object


class ThreadingMixIn(_MixinBase):
    """Mix-in class to handle each request in a new thread (from a pool).

    List it first among the bases: ``class S(ThreadingMixIn, TCPServer)``."""

    #: Do not wait for handler threads in server_close(); their threads
    #: are daemon threads (the interpreter does not wait for them either).
    daemon_threads: bool = False
    #: server_close() waits for handler threads (unless daemon_threads).
    block_on_close: bool = True
    #: The most handlers running at once; ``None``: as many as the system
    #: allows (see the module docstring).
    max_threads: int | None = None
    #: Run requests in reused pool threads (new). ``False``: a new thread
    #: for every request, as the stdlib does, so that each request starts
    #: with empty ``threading.local`` data (with reuse, what one request
    #: leaves in a thread-local is seen by the next request of that thread).
    reuse_threads: bool = True

    _hands_off_requests: ClassVar[bool] = True
    _pool: WorkerPool | None = None

    # Claims of requests handed to threads, by id(request) (see
    # process_request); made on first use, so that subclasses whose
    # __init__ skips ours (the stdlib's mixin has none) keep working. A dict
    # store and pop are atomic.
    _claims: dict[int, threading.Lock] | None = None

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Same as BaseServer.process_request, in a thread: finish the
        request, route an Exception to handle_error, always shut it down."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            # Rule 2: handle_error raising is logged too (the stdlib lets it
            # kill the thread, for threading.excepthook to print).
            self._engine._report_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the request to a thread that runs process_request_thread."""
        # Who owns the request is decided by who takes its claim first: the
        # worker thread when it starts, or the serving thread when an
        # exception (Ctrl-C can land anywhere, even inside submit() after
        # the thread has started) makes it close the request instead. So a
        # request is never closed under a handler that is running it.
        claims = self._claims
        if claims is None:
            claims = self._claims = {}
        claim = claims[id(request)] = threading.Lock()
        self._thread_pool().submit(
            self._request_thread,
            (request, client_address, claim),
            daemon=bool(self.daemon_threads),
        )

    def _request_thread(self, request: Any, client_address: Any, claim: threading.Lock) -> None:
        if not claim.acquire(blocking=False):
            return  # the serving thread closed it (see process_request)
        try:
            self.process_request_thread(request, client_address)
        finally:
            claims = self._claims
            if claims is not None:
                claims.pop(id(request), None)
            self._forget(request)  # even if an override skipped shutdown_request

    def _may_close_after_interrupt(self, request: Any) -> bool:
        claim = self._claims.pop(id(request), None) if self._claims is not None else None
        # No claim: never handed to a thread, or its thread has finished
        # (closing a closed socket object again is harmless).
        return claim is None or claim.acquire(blocking=False)

    def _thread_pool(self) -> WorkerPool:
        pool = self._pool
        if pool is None:
            pool = self._pool = WorkerPool(
                f"{type(self).__name__}-handler",
                self._engine.capacity_freed,
                max_idle=MAX_IDLE if self.reuse_threads else 0,
            )
        return pool

    def _has_capacity(self) -> bool:
        pool = self._pool
        if pool is None:
            return True
        if pool.saturated:
            return False
        cap = self.max_threads
        return cap is None or pool.busy < cap

    def _check_serving_config(self) -> None:
        cap: object = self.max_threads
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"max_threads must be None or an int >= 1, not {cap!r}")
        super()._check_serving_config()

    def server_close(self) -> None:
        """Stop serving, close the socket, then deal with handler threads
        according to block_on_close, daemon_threads and grace_period."""
        if getattr(self, "socket_type", None) == socket.SOCK_DGRAM:
            self._stop_serving()
            self._close_threads()
            super().server_close()
        else:
            super().server_close()
            self._close_threads()

    def _close_threads(self) -> None:
        pool = self._pool
        if pool is None:
            return
        pool.close()
        if self.daemon_threads:
            self._unblock_requests()
            return
        if not self.block_on_close:
            return
        grace = self.grace_period
        try:
            if grace is not None and not pool.join(grace):
                self._grace_expired(f"{pool.busy} handler thread(s) still running")
            pool.join()
        except KeyboardInterrupt:
            self._unblock_requests()
            raise


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    """A TCP server handling each connection in its own thread."""


class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    """A UDP server handling each datagram in its own thread."""


class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
    """A Unix stream server handling each connection in its own thread."""


class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
    """A Unix datagram server handling each datagram in its own thread."""
