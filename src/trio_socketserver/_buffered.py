"""StreamReader and StreamWriter: ``rfile``/``wfile`` for async handlers.

They mirror what ``socket.makefile()`` gives a stdlib ``StreamRequestHandler``
(``read``, ``read1``, ``readline``, ``readlines``, line iteration, ``write``,
``writelines``, ``flush``), with every I/O method ``async``:

* ``rbufsize`` (reader ``bufsize``): ``-1`` buffers with
  :data:`io.DEFAULT_BUFFER_SIZE` reads; ``0`` is unbuffered: nothing is read
  past what the caller asked for (``readline`` then reads a byte at a time,
  as the stdlib's unbuffered ``SocketIO`` does), so the stream can be handed
  on without losing data; ``n > 0`` reads in chunks of ``n``.
* ``wbufsize`` (writer ``bufsize``): ``0`` (the default, as in the stdlib)
  sends each ``write`` at once; ``n > 0`` buffers up to ``n`` bytes and sends
  on overflow, ``flush()`` and ``close()``.
* ``timeout``: when not ``None``, every single read or write call must
  complete within that many seconds or raise :exc:`TimeoutError` (the
  stdlib's ``socket.timeout`` is the same class). A client that stops sending
  or stops reading therefore cannot hold a handler forever. ``0`` does only
  what needs no waiting (data already received, room in the send buffer),
  as the stdlib's non-blocking socket.
"""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Final, TypeVar

import trio

__all__ = ["StreamReader", "StreamWriter"]

_T = TypeVar("_T")
_DEFAULT_BUFSIZE: Final = io.DEFAULT_BUFFER_SIZE


async def _bounded(seconds: float | None, op: Callable[[], Awaitable[_T]]) -> _T:
    if seconds is None:
        return await op()
    if seconds == 0:
        # timeout=0 means "only what can be done without waiting", as the
        # stdlib's non-blocking socket (settimeout(0)) does: data already
        # received is read, room in the send buffer is written. move_on_after(0)
        # would be cancelled on entering, before the stream's first
        # non-blocking attempt. A deadline assigned inside the scope is only
        # acted on by the run loop, i.e. once the operation has to wait (its
        # first full checkpoint), so the attempt is made and waiting times out.
        with trio.CancelScope() as scope:
            scope.deadline = trio.current_time()
            return await op()
    else:
        with trio.move_on_after(seconds) as scope:
            return await op()
    assert scope.cancelled_caught
    raise TimeoutError(f"timed out after {seconds} seconds")


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or math.isnan(timeout)
        or timeout < 0
    ):
        raise ValueError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}")
    return timeout


class StreamReader:
    """A buffered async reader over a :class:`trio.abc.ReceiveStream`.

    Args:
      stream: the stream to read from.
      bufsize: ``-1`` (default buffer size), ``0`` (unbuffered) or a size.
      timeout: seconds each read may take, or ``None`` for no limit.
    """

    __slots__ = ("_buffer", "_bufsize", "_closed", "_eof", "_stream", "timeout")

    def __init__(
        self, stream: trio.abc.ReceiveStream, bufsize: int = -1, timeout: float | None = None
    ) -> None:
        if bufsize < -1:
            raise ValueError(f"bufsize must be -1, 0 or a positive size, not {bufsize}")
        self._stream = stream
        self._bufsize = _DEFAULT_BUFSIZE if bufsize == -1 else bufsize
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self.timeout = _check_timeout(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop reading: later reads raise :exc:`ValueError`. The stream itself
        is left open (the server closes the connection)."""
        self._closed = True
        self._buffer.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file.")

    async def _fill(self, want: int) -> bool:
        """Receive once into the buffer; return False at end of stream."""
        if self._eof:
            return False
        size = max(want, self._bufsize) if self._bufsize else want
        if self.timeout is None:
            data = await self._stream.receive_some(size)
        else:
            data = await _bounded(self.timeout, lambda: self._stream.receive_some(size))
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def read(self, size: int = -1) -> bytes:
        """Read ``size`` bytes, fewer only at end of stream; ``-1`` reads to EOF."""
        self._check_open()
        if size < 0:
            while await self._fill(_DEFAULT_BUFSIZE):
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and await self._fill(size - len(self._buffer)):
            pass
        return self._take(size)

    async def read1(self, size: int = -1) -> bytes:
        """Read at most ``size`` bytes with at most one receive (``-1``: any)."""
        # The echo-style hot path (nothing buffered, no timeout) is written
        # out inline: a method call per message shows in the benchmarks.
        if self._closed:
            raise ValueError("I/O operation on closed file.")
        if size == 0:
            return b""
        if not self._buffer:
            if self._eof:
                return b""
            # Nothing buffered: one receive of at most `size` bytes is exactly
            # read1's contract, so hand it over without copying it through the
            # buffer.
            want = size if size > 0 else max(self._bufsize, _DEFAULT_BUFSIZE)
            if self.timeout is None:
                data = await self._stream.receive_some(want)
            else:
                data = await _bounded(self.timeout, lambda: self._stream.receive_some(want))
            if not data:
                self._eof = True
            return data if type(data) is bytes else bytes(data)
        return self._take(size if size >= 0 else len(self._buffer))

    async def readline(self, size: int = -1) -> bytes:
        """Read through the next ``b"\\n"`` (kept), at most ``size`` bytes if
        ``size >= 0``; ``b""`` at end of stream."""
        self._check_open()
        limit = size if size >= 0 else math.inf
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0 and end < limit:
                return self._take(end + 1)
            if len(self._buffer) >= limit:
                return self._take(int(limit))
            start = len(self._buffer)
            # Unbuffered: one byte at a time, so nothing past the line is read.
            if not await self._fill(1 if self._bufsize == 0 else _DEFAULT_BUFSIZE):
                return self._take(len(self._buffer))

    async def readlines(self, hint: int = -1) -> list[bytes]:
        """Read lines to EOF (or until ``hint`` bytes have been read)."""
        lines: list[bytes] = []
        total = 0
        while line := await self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class StreamWriter:
    """An async writer over a :class:`trio.abc.SendStream`.

    Args:
      stream: the stream to write to.
      bufsize: ``0`` sends each write at once; ``n > 0`` buffers up to ``n`` bytes.
      timeout: seconds each write may take, or ``None`` for no limit.
    """

    __slots__ = ("_buffer", "_bufsize", "_closed", "_stream", "timeout")

    def __init__(
        self, stream: trio.abc.SendStream, bufsize: int = 0, timeout: float | None = None
    ) -> None:
        if bufsize < -1:
            raise ValueError(f"bufsize must be -1, 0 or a positive size, not {bufsize}")
        self._stream = stream
        self._bufsize = _DEFAULT_BUFSIZE if bufsize == -1 else bufsize
        self._buffer = bytearray()
        self._closed = False
        self.timeout = _check_timeout(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file.")

    async def _send(self, data: bytes | bytearray | memoryview) -> None:
        if self.timeout is None:
            await self._stream.send_all(data)
        else:
            await _bounded(self.timeout, lambda: self._stream.send_all(data))

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data`` (buffered if ``bufsize > 0``); return its length."""
        if self._closed:
            raise ValueError("I/O operation on closed file.")
        n = len(data)
        if not self._bufsize:
            # Unbuffered (the default): straight to the stream, inline when
            # there is no timeout (the hot path, as in read1).
            if self.timeout is None:
                await self._stream.send_all(data)
            else:
                await self._send(data)
            return n
        self._buffer += data
        if len(self._buffer) >= self._bufsize:
            await self.flush()
        return n

    async def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for line in lines:
            await self.write(line)

    async def flush(self) -> None:
        """Send whatever is buffered."""
        self._check_open()
        if self._buffer:
            data, self._buffer = self._buffer, bytearray()
            await self._send(data)

    async def aclose(self) -> None:
        """Flush, then refuse further writes (the stream stays open)."""
        if not self._closed:
            try:
                await self.flush()
            finally:
                self._closed = True
