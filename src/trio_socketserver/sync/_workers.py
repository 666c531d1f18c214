"""WorkerPool: reusable handler threads for ThreadingMixIn.

The stdlib starts a new ``threading.Thread`` for every request and keeps
every non-daemon one in a list until ``server_close`` joins it. Starting a
thread costs more than handing work to one that already exists, so the pool
keeps finished threads for the next request.

Rules
-----
Rule 1: a job is never queued behind a running one while a thread could
    take it: ``submit`` wakes an idle thread or starts a new one. The only
    queue is for when the system refuses a new thread (``RuntimeError: can't
    start new thread``); the pool then reports no capacity until a thread is
    free, and the server stops accepting (backpressure) instead of dropping
    the request as the stdlib does.
Rule 2: an idle thread waits on a lock of its own; ``submit`` claims the
    most recently idle thread (LIFO: warm caches, and the coldest threads
    are the ones that time out and exit after ``IDLE_TIMEOUT`` seconds).
    At most ``MAX_IDLE`` threads wait idle; a thread finishing its job
    beyond that exits at once, as a stdlib handler thread does. So a burst
    of 10,000 connections leaves 10,000 threads only while they are busy:
    their memory is returned as their connections end, and closing the pool
    never has thousands of threads to wake and join (a thread's exit costs
    about 0.25 ms here).
Rule 3: every thread the pool started is accounted for until it has exited:
    :meth:`join` waits for all of them, so nothing outlives ``server_close``
    unless the caller chose not to wait (``daemon_threads``,
    ``block_on_close = False``).
Rule 4: an idle thread never delays interpreter exit. The stdlib's handler
    threads end with their request, so a program that never calls
    ``server_close`` still exits as soon as its handlers are done; idle pool
    threads would otherwise keep a non-daemon pool alive for
    ``IDLE_TIMEOUT``. At interpreter shutdown, before it joins non-daemon
    threads, every pool is closed (idle threads exit, busy ones finish
    their request first, as in the stdlib), with the hook
    ``concurrent.futures`` uses for the same purpose.
Rule 5: in a process forked from a pool's process (a handler that forks),
    the pool holds only the thread that forked, if it is one of its own, and
    is closed: that thread ends after its job, so the child exits as a
    stdlib child would, and a ``server_close`` there waits for nothing.
"""

from __future__ import annotations

import _thread
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final

__all__ = ["IDLE_TIMEOUT", "MAX_IDLE", "WorkerPool"]

#: Seconds an idle thread waits for work before it exits.
IDLE_TIMEOUT: Final = 30.0
#: The most threads kept waiting idle for the next request (Rule 2).
MAX_IDLE: Final = 64

_Job = tuple[Callable[..., object], tuple[Any, ...]]

_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()
_exit_hook_registered = False
_exit_hook_lock = threading.Lock()


def _close_all_pools() -> None:
    for pool in list(_live_pools):
        pool.close()


def _forget_all_pools_in_child() -> None:
    """Rule 5, in a child just forked (by a handler, say)."""
    for pool in list(_live_pools):
        pool._forked()


os.register_at_fork(after_in_child=_forget_all_pools_in_child)


def _register_exit_hook() -> None:
    """Rule 4. ``threading._register_atexit`` runs before the interpreter
    joins non-daemon threads (``atexit`` would run after: too late)."""
    global _exit_hook_registered
    with _exit_hook_lock:
        if _exit_hook_registered:
            return
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            try:
                register(_close_all_pools)
            except RuntimeError:
                return  # the interpreter is already shutting down
        _exit_hook_registered = True


class _Idle:
    """An idle thread's parking spot: its lock is held while it sleeps."""

    __slots__ = ("job", "wake")

    def __init__(self) -> None:
        self.wake = _thread.allocate_lock()
        self.wake.acquire()
        self.job: _Job | None = None


class WorkerPool:
    """Threads that run jobs, reused between jobs.

    Args:
      name: prefix of the threads' names.
      on_free: called (from a worker thread) each time a busy thread
        finishes a job; the server uses it to resume accepting at its cap.
      max_idle: the most threads kept waiting for the next job; 0 makes
        every job's thread exit when it is done (a new thread per job, the
        stdlib's ThreadingMixIn, except for a job queued because the system
        refused a thread, which the next thread to finish takes).
    """

    def __init__(self, name: str, on_free: Callable[[], None], max_idle: int = MAX_IDLE) -> None:
        self._name = name
        self._on_free = on_free
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[_Idle] = []
        self._backlog: deque[_Job] = deque()
        self._threads: set[threading.Thread] = set()
        #: Threads that left _work and may still be finishing (Rule 3).
        self._exiting: list[threading.Thread] = []
        self._all_exited = threading.Condition(self._lock)
        self._busy = 0
        self._closed = False
        self._started = 0
        _register_exit_hook()
        _live_pools.add(self)

    @property
    def busy(self) -> int:
        """Jobs running or waiting for a thread."""
        return self._busy

    @property
    def saturated(self) -> bool:
        """Whether the system refused a thread and a job still waits for one."""
        return bool(self._backlog)

    def submit(self, fn: Callable[..., object], args: tuple[Any, ...], *, daemon: bool) -> None:
        """Run ``fn(*args)`` in a pool thread (Rule 1)."""
        job = (fn, args)
        with self._lock:
            if self._closed:
                raise RuntimeError("the server's thread pool is closed (server_close() was called)")
            self._busy += 1
            if self._idle:
                idle = self._idle.pop()
                idle.job = job
                idle.wake.release()
                return
            self._started += 1
            number = self._started
        # The first job travels in a list that _work empties: Thread keeps
        # its args for the thread's whole life, and a finished request must
        # not stay reachable from an idle thread.
        thread = threading.Thread(
            target=self._work, args=([job],), name=f"{self._name}-{number}", daemon=daemon
        )
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:
            with self._lock:
                self._threads.discard(thread)
                if self._busy == 1:
                    # No thread at all can take it: fail this request (the
                    # server routes the error to handle_error and closes it).
                    self._busy -= 1
                    raise
                self._backlog.append(job)  # the next free thread takes it

    def _work(self, first: list[_Job]) -> None:
        me = threading.current_thread()
        idle = _Idle()
        job = first.pop()
        try:
            while True:
                fn, args = job
                try:
                    fn(*args)
                except BaseException:
                    # SystemExit or worse from the job: this thread ends, as
                    # a stdlib handler thread would (threading reports it).
                    with self._lock:
                        self._busy -= 1
                    self._on_free()
                    raise
                del fn, args, job  # nothing of a finished request stays reachable
                with self._lock:
                    if self._backlog:
                        job = self._backlog.popleft()
                        continue
                    self._busy -= 1
                    keep = not self._closed and len(self._idle) < self._max_idle
                    if keep:
                        self._idle.append(idle)
                self._on_free()
                if not keep:
                    return
                if not idle.wake.acquire(timeout=IDLE_TIMEOUT):
                    with self._lock:
                        if idle in self._idle:
                            self._idle.remove(idle)
                            return
                    idle.wake.acquire()  # claimed as we timed out: the job is set
                if idle.job is None:
                    return  # closed
                job, idle.job = idle.job, None
        finally:
            with self._lock:
                self._threads.discard(me)
                # join() still has to wait for this thread's very end.
                if len(self._exiting) > MAX_IDLE:
                    self._exiting = [t for t in self._exiting if t.is_alive()]
                self._exiting.append(me)
                if not self._threads:
                    self._all_exited.notify_all()

    def _forked(self) -> None:
        # Only the forking thread exists in the child: the other threads
        # are gone and locks they held stay held. Start over, closed.
        self._lock = threading.Lock()
        self._all_exited = threading.Condition(self._lock)
        self._idle = []
        self._backlog.clear()
        self._threads = {threading.current_thread()} & self._threads
        self._exiting = []
        self._busy = len(self._threads)
        self._closed = True

    def close(self) -> None:
        """Take no more jobs; idle threads exit now, busy ones after their job."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for spot in idle:
            spot.job = None
            spot.wake.release()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every thread has exited (Rule 3); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._threads:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._all_exited.wait(remaining)
            exiting, self._exiting = self._exiting, []
        # Every thread has left _work; wait until each has really ended.
        for thread in exiting:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
            if thread.is_alive():
                with self._lock:
                    self._exiting.extend(t for t in exiting if t.is_alive())
                return False
        return True
