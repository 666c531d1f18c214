"""Subprocesses for the reliability suite's rows that need a server in a
process of its own (a real ``RLIMIT_NOFILE``, a real signal).

A child is started with :class:`subprocess.Popen`, not with trio's
``open_process``: that spawns in a cached trio worker thread, which then
idles for seconds and which a row's leak check would count. Here the child
is spawned in a fresh thread that ends with it (:func:`.harness.in_thread`),
its pipes are trio FdStreams, and its exit is awaited on a pidfd.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO

import attrs
import trio

from .harness import in_thread

#: Child-side source that defines ``open_fds()``: this process's descriptors,
#: each with what it refers to. A child script starts with it.
OPEN_FDS = """
import os

def open_fds():
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink("/proc/self/fd/" + name)
        except OSError:
            pass  # listdir's own descriptor, closed again
    return fds
"""


@attrs.define(eq=False)
class Spawned:
    """A child process: its pipes as trio streams (``stdin`` only where it
    was asked for; else the child shares this process's) and its pidfd."""

    popen: subprocess.Popen[bytes]
    pidfd: int
    stdin: trio.lowlevel.FdStream | None
    stdout: trio.lowlevel.FdStream
    stderr: trio.lowlevel.FdStream

    async def wait(self) -> int:
        """Wait for the child to exit, without a thread; its exit code."""
        await trio.lowlevel.wait_readable(self.pidfd)
        return self.popen.wait()


@asynccontextmanager
async def spawned(
    argv: list[str], *, stdin: bool = False, env: dict[str, str] | None = None
) -> AsyncIterator[Spawned]:
    """Run ``argv`` in a child with its stdout and stderr (and, with
    ``stdin``, its stdin) piped to this process. Afterwards whatever is left
    of it is killed and reaped, and its pipes are closed."""
    popen = await in_thread(_popen, argv, stdin, env)
    assert popen.stdout is not None
    assert popen.stderr is not None
    child = Spawned(
        popen,
        os.pidfd_open(popen.pid),
        _own(popen.stdin) if popen.stdin is not None else None,
        _own(popen.stdout),
        _own(popen.stderr),
    )
    try:
        yield child
    finally:
        with trio.CancelScope(shield=True):
            if popen.poll() is None:
                popen.kill()
                await child.wait()
            os.close(child.pidfd)
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    await stream.aclose()


def _popen(argv: list[str], stdin: bool, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _own(pipe: IO[bytes]) -> trio.lowlevel.FdStream:
    """A trio stream over one of a Popen's pipes (which is closed)."""
    try:
        return trio.lowlevel.FdStream(os.dup(pipe.fileno()))
    finally:
        pipe.close()
