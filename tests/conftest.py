"""Shared fixtures: real loopback clients and leak accounting.

Every test talks to a real server over a real socket. Synchronisation is by
events, ``nursery.start`` and data on the wire, never by sleeping.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

# The reliability suite's options, marker and table (pytest takes options only
# from the root conftest); its fixtures are in tests/reliability/conftest.py.
from .reliability.report import (
    pytest_addoption as pytest_addoption,
)
from .reliability.report import (
    pytest_collection_modifyitems as pytest_collection_modifyitems,
)
from .reliability.report import (
    pytest_configure as pytest_configure,
)
from .reliability.report import (
    pytest_runtest_makereport as pytest_runtest_makereport,
)
from .reliability.report import (
    pytest_terminal_summary as pytest_terminal_summary,
)
from .short_paths import has_room_for_sockets, short_temporary_directory
from .sync_helpers import child_pids

# Type-checked by `nox -s typecheck`, never executed.
collect_ignore = ["typing"]

# A test run started with SIGINT ignored (a background job of a
# non-interactive shell, `pytest &`, nohup) would pass that on to every child
# it starts, and a Python child with SIGINT ignored never raises
# KeyboardInterrupt: the tests that press Ctrl-C in a child would time out
# instead of testing anything. With a handler here, children start with
# SIGINT's default disposition (exec resets handled signals), as they would
# from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def open_fds() -> set[int]:
    """The file descriptors this process has open right now."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    """Fail the test if it leaves file descriptors open."""
    before = open_fds()
    yield
    leaked = open_fds() - before
    # /proc/self/fd's own directory fd was closed by listdir; anything else is ours.
    details = {fd: _describe_fd(fd) for fd in leaked}
    assert not {fd: d for fd, d in details.items() if d is not None}, f"leaked fds: {details}"


@pytest.fixture
def no_leak(no_fd_leak: None) -> Iterator[None]:
    """No fd (via no_fd_leak), thread or child process outlives the test."""
    threads = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) <= threads, "a thread outlived server_close()"
    assert child_pids() == set(), "a child process outlived server_close()"


def _describe_fd(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None  # already closed again: not a leak


@pytest.fixture
def short_tmp_path(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, or a shorter temporary directory if socket paths under
    tmp_path would not fit in a sockaddr_un (about 108 bytes)."""
    if has_room_for_sockets(tmp_path, 33):  # a socket file name
        yield tmp_path
        return
    with short_temporary_directory(prefix="tss-ex-") as short:
        yield Path(short)


@pytest.fixture
def sock_path() -> Iterator[str]:
    """A fresh Unix socket path (short, to stay under the 108-byte limit)."""
    with short_temporary_directory(prefix="tss-") as tmp:
        yield str(Path(tmp) / "s.sock")


async def tcp_connect(address: object) -> trio.SocketStream:
    assert isinstance(address, tuple)
    return await trio.open_tcp_stream(address[0], address[1])


async def unix_connect(path: str | bytes) -> trio.SocketStream:
    return await trio.open_unix_socket(path)


async def receive_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def receive_all(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything until EOF."""
    data = bytearray()
    while chunk := await stream.receive_some():
        data += chunk
    return bytes(data)


def blocking_tcp_roundtrip(
    address: tuple[Any, ...], payload: bytes, *, shut_wr: bool = True
) -> bytes:
    """A stdlib-socket client: send, half-close, read to EOF."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(address[:2])
        s.sendall(payload)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


async def udp_roundtrip(address: tuple[Any, ...], payload: bytes) -> tuple[bytes, object]:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with trio.socket.socket(family, socket.SOCK_DGRAM) as s:
        await s.connect(address[:2])
        await s.send(payload)
        with trio.fail_after(10):
            data, peer = await s.recvfrom(65536)
        return data, peer


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as n:
        yield n
        n.cancel_scope.cancel()
