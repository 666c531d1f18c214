"""ConnectionStream: a trio stream over one accepted socket, without the
per-call scheduling round trip.

Theory of operation
-------------------
``trio.SocketStream`` follows trio's rule that every blocking call is a
checkpoint: each ``receive_some``/``send_all`` first checks for cancellation,
tries the non-blocking syscall, and then *yields to the scheduler* even when
the syscall succeeded at once. On a loopback echo server that yield is the
largest single cost per message.

This stream keeps the two properties the rule exists for and drops the cost:

Rule 1 (cancellation is prompt). Every operation starts with
    ``checkpoint_if_cancelled()``: if the surrounding scope is cancelled the
    operation raises ``Cancelled`` before touching the socket, exactly as in
    trio. When the socket is not ready the operation waits in
    ``wait_readable``/``wait_writable``, which are full checkpoints.

Rule 2 (fairness). An operation that succeeds without waiting does not yield,
    but every ``FAIRNESS_INTERVAL``-th consecutive non-waiting operation on a
    stream does a ``cancel_shielded_checkpoint()`` (a schedule point). A
    handler that streams without ever blocking still lets other tasks run.

Rule 3 (no doomed syscalls). A receive that returned less than
    ``max_bytes`` emptied the socket buffer, so the next receive waits for
    readability before calling ``recv`` rather than after a ``recv`` that
    fails with ``EAGAIN``. In request/response traffic that saves a syscall
    and an exception per message; bulk transfers (full reads) try first.

Rule 4 (one registration per connection). trio's ``wait_readable`` re-arms
    the descriptor with an ``epoll_ctl`` call on every wait. Waits for
    readability go through the run's :class:`~._readiness.ReadinessPoller`
    instead, where the socket is registered once, edge-triggered; trio then
    re-arms one descriptor per batch of events. Parking there is a full
    checkpoint, like ``wait_readable``. Where epoll is missing, or once the
    ``socket`` view has been taken, trio's ``wait_readable`` is used.

So a handler built on this stream is as cancellable as one built on
``trio.SocketStream``; it is only no longer guaranteed to *schedule* on every
call. Code that relies on ``send_all`` yielding (rare, and not promised by
``trio.abc.SendStream``) should call ``trio.lowlevel.checkpoint()`` itself.

Errors follow ``trio.SocketStream``: an ``OSError`` from the kernel becomes
``trio.BrokenResourceError`` (the ``OSError`` is its ``__cause__``), use after
``aclose()`` raises ``trio.ClosedResourceError``, and two tasks receiving (or
sending) at once raise ``trio.BusyResourceError``.
"""

from __future__ import annotations

import errno
import socket as _stdlib_socket
from typing import Final, final

import trio
from trio.lowlevel import (
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    notify_closing,
    wait_readable,
    wait_writable,
)

from ._readiness import ReadinessPoller, current_poller

__all__ = ["DEFAULT_RECEIVE_SIZE", "FAIRNESS_INTERVAL", "ConnectionStream"]

#: ``receive_some()`` with no size reads up to this many bytes (as trio does).
DEFAULT_RECEIVE_SIZE: Final = 65536
#: A stream yields to the scheduler at least once every this many operations
#: that completed without waiting (Rule 2).
FAIRNESS_INTERVAL: Final = 16

_CLOSED_ERRNOS: Final = frozenset({errno.EBADF, errno.ENOTSOCK})


def _in_trio_run() -> bool:
    """Whether this thread is inside trio.run (trio.lowlevel.in_trio_run needs
    trio >= 0.26; this works on every version we support)."""
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _translate(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this stream was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


@final
class ConnectionStream(trio.abc.HalfCloseableStream):
    """A :class:`trio.abc.HalfCloseableStream` over one connected socket.

    This is what a stream server's handler gets as ``self.request``. It
    behaves like :class:`trio.SocketStream` (same exceptions, same
    ``send_eof``, ``setsockopt``/``getsockopt``, ``socket`` attribute), and
    is faster because an operation that can complete at once does not yield
    to the scheduler; it still checks for cancellation on every call and
    yields at least every ``FAIRNESS_INTERVAL`` operations, so handlers stay
    cancellable and fair to each other.

    Args:
      sock: a connected ``SOCK_STREAM`` :class:`socket.socket`. It is put in
        non-blocking mode and owned by the stream from then on.
    """

    __slots__ = (
        "_budget",
        "_drained",
        "_edge",
        "_fd",
        "_poller",
        "_receiving",
        "_sending",
        "_sock",
        "_trio_socket",
    )

    def __init__(self, sock: _stdlib_socket.socket) -> None:
        if sock.type != _stdlib_socket.SOCK_STREAM:
            raise ValueError(f"ConnectionStream needs a SOCK_STREAM socket, not {sock!r}")
        sock.setblocking(False)
        self._sock = sock
        self._trio_socket: trio.socket.SocketType | None = None
        self._budget = FAIRNESS_INTERVAL
        self._receiving = False
        self._sending = False
        self._drained = False
        self._fd = sock.fileno()
        #: the readiness poller this socket is registered with (Rule 4)
        self._poller: ReadinessPoller | None = None
        #: False once this stream uses trio's wait_readable for good
        self._edge = True

    # -- introspection -------------------------------------------------------

    @property
    def socket(self) -> trio.socket.SocketType:
        """The connection as a :mod:`trio.socket` object (created on first use;
        it wraps the same socket, so closing either closes both)."""
        if self._trio_socket is None:
            self._trio_socket = trio.socket.from_stdlib_socket(self._sock)
            # From now on waits go through trio (Rule 4), because closing the
            # view wakes only trio's waiters. A receiver already parked in the
            # poller is woken (spuriously: it retries, then waits in trio).
            if self._poller is not None:
                self._poller.forget(self._fd)
                self._poller = None
        return self._trio_socket

    @property
    def family(self) -> int:
        """The socket's address family (``AF_INET``, ``AF_INET6``, ``AF_UNIX``)."""
        return self._sock.family

    def fileno(self) -> int:
        """The socket's file descriptor (``-1`` once closed)."""
        return self._sock.fileno()

    def getpeername(self) -> object:
        return self._sock.getpeername()

    def getsockname(self) -> object:
        return self._sock.getsockname()

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        """Set a socket option, as :meth:`trio.SocketStream.setsockopt`."""
        self._sock.setsockopt(level, option, value)

    def getsockopt(self, level: int, option: int, buffersize: int = 0) -> int | bytes:
        """Get a socket option, as :meth:`trio.SocketStream.getsockopt`."""
        if buffersize == 0:
            return self._sock.getsockopt(level, option)
        return self._sock.getsockopt(level, option, buffersize)

    @property
    def closed(self) -> bool:
        return self._sock.fileno() == -1

    # -- the fast path ---------------------------------------------------------

    async def _enter(self) -> None:
        # Rule 1 on every call; Rule 2 every FAIRNESS_INTERVAL calls.
        await checkpoint_if_cancelled()
        self._budget -= 1
        if self._budget <= 0:
            self._budget = FAIRNESS_INTERVAL
            await cancel_shielded_checkpoint()

    async def _wait_readable(self) -> None:
        poller = self._poller
        if poller is None or poller.closed:
            poller = self._attach()
            if poller is None:
                self._budget = FAIRNESS_INTERVAL
                try:
                    await wait_readable(self._sock)
                except ValueError:  # the fd was closed under us (fileno() == -1)
                    raise trio.ClosedResourceError("this stream was already closed") from None
                return
        # Rule 4. The hot path of every request/response exchange, so Rule 1
        # and 2's checks are written out rather than awaited through _enter.
        fd = self._fd
        if poller.consume(fd):
            # An event came while nobody was parked: the socket (probably)
            # has data. No schedule point, as for any operation that does
            # not wait.
            await checkpoint_if_cancelled()
            self._budget -= 1
            if self._budget <= 0:
                self._budget = FAIRNESS_INTERVAL
                await cancel_shielded_checkpoint()
            return
        self._budget = FAIRNESS_INTERVAL
        await poller.park(fd)
        # close() and the socket view both detach the stream before waking
        # it; only close() leaves the socket closed.
        if self._poller is not poller and self._sock.fileno() == -1:
            raise trio.ClosedResourceError("this stream was already closed")

    def _attach(self) -> ReadinessPoller | None:
        """The run's readiness poller with this socket registered, or None to
        use trio's wait_readable: where epoll is missing, once the trio socket
        view exists (closing through the view wakes only trio's waiters), or
        if registering failed. Every way the stream leaves the poller (close,
        the view, the run's end) leads back here, so this is where a closed
        socket is caught: its number may already belong to another socket."""
        if self._sock.fileno() == -1:
            raise trio.ClosedResourceError("this stream was already closed")
        poller = None
        if self._edge and self._trio_socket is None:
            poller = current_poller()
            if poller is not None:
                try:
                    poller.register(self._fd)
                except OSError:
                    poller = None
            if poller is None:
                self._edge = False
        self._poller = poller
        return poller

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        elif max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            # Rule 3: a receive that returned less than it could have drained
            # the socket; the next one would most likely fail with EAGAIN, so
            # wait for readability first instead of paying for that syscall
            # and its exception. wait_readable is a full checkpoint (Rules 1
            # and 2). A receive that filled max_bytes (bulk data) tries first.
            if self._drained:
                await self._wait_readable()
            else:
                await self._enter()
            sock = self._sock
            while True:
                try:
                    data = sock.recv(max_bytes)
                except BlockingIOError:
                    await self._wait_readable()
                    continue
                except OSError as exc:
                    raise _translate(exc) from exc
                self._drained = len(data) < max_bytes
                return data
        finally:
            self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            # _enter(), written out: this runs once per message.
            await checkpoint_if_cancelled()
            self._budget -= 1
            if self._budget <= 0:
                self._budget = FAIRNESS_INTERVAL
                await cancel_shielded_checkpoint()
            sock = self._sock
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise _translate(exc) from exc
            total = len(data)
            if sent == total:
                return
            # Slow path: the kernel buffer is full; send the rest as it drains.
            with memoryview(data) as view:
                while sent < total:
                    self._budget = FAIRNESS_INTERVAL
                    try:
                        await wait_writable(sock)
                    except ValueError:
                        raise trio.ClosedResourceError("this stream was already closed") from None
                    try:
                        sent += sock.send(view[sent:])
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        raise _translate(exc) from exc
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        if self.closed:
            await checkpoint()
            raise trio.ClosedResourceError("this stream was already closed")
        self._sending = True
        try:
            await wait_writable(self._sock)
        except ValueError:
            raise trio.ClosedResourceError("this stream was already closed") from None
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        await checkpoint()
        try:
            self._sock.shutdown(_stdlib_socket.SHUT_WR)
        except OSError as exc:
            # ENOTCONN: the peer is already gone; EOF is moot, as in trio.
            if exc.errno != errno.ENOTCONN:
                raise _translate(exc) from exc

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Close the socket now (synchronous; idempotent).

        Tasks blocked in ``receive_some``/``send_all`` on this stream are woken
        with :exc:`trio.ClosedResourceError`.
        """
        if self._sock.fileno() != -1:
            # Before the number can be reused: wake a receiver parked in the
            # poller (it finds the socket closed) and drop its state.
            if self._poller is not None:
                self._poller.forget(self._fd)
                self._poller = None
            # notify_closing wakes tasks waiting on the fd (and costs an
            # epoll_ctl and an exception object). Every wait on this fd is
            # guarded by _receiving/_sending, except through the trio socket
            # view; when none of those can be in use, nobody is waiting, and a
            # server closing connections by the thousand skips the cost.
            if (
                self._receiving or self._sending or self._trio_socket is not None
            ) and _in_trio_run():
                notify_closing(self._sock)
            self._sock.close()

    async def aclose(self) -> None:
        self.close()
        await checkpoint()
