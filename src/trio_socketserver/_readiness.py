"""ReadinessPoller: edge-triggered read readiness for connection sockets.

Theory of operation
-------------------
``trio.lowlevel.wait_readable`` registers the file descriptor with
``EPOLLONESHOT``, so every wait costs an ``epoll_ctl`` system call to re-arm
it. In request/response traffic every message waits once, and in a py-spy
profile of a busy echo server that re-arm was about 17% of the server's CPU,
more than all of its Python code.

A ``ReadinessPoller`` keeps a second epoll instance in which each connection
is registered *once*, edge-triggered (``EPOLLIN | EPOLLET``). trio waits on
that epoll's own file descriptor, so the re-arm is paid once per batch of
events instead of once per message, and a dispatcher task hands each event to
the task parked on that connection.

Invariants (the reasons are next to the code that keeps them):

1. No event is lost. When no task is parked on a descriptor, its event is
   remembered (``_ready``) and the next wait consumes it without parking. A
   descriptor registered while already readable is reported by the kernel at
   registration time. New data after an event is a new edge, but the end of
   the peer's stream is not: data and FIN that arrive together give one edge,
   a receive returns the data, and the EOF behind it would never be
   reported again. So an event that says the peer has shut down (or the
   connection failed) is remembered for good (``_finished``): every later
   wait on that descriptor returns at once, as it would in a level-triggered
   wait, since such a socket is readable forever.
2. Wakeups may be spurious (an event for data that was already read, or for a
   descriptor number that was closed and reused). A waiter must retry its
   system call and wait again if it fails with ``EAGAIN``;
   :class:`~trio_socketserver.ConnectionStream` does.
3. Parking is a full trio checkpoint: it yields, and cancellation removes the
   waiter (``Abort.SUCCEEDED``), so a parked handler is as cancellable as one
   in ``wait_readable``.
4. One poller per ``trio.run`` (a ``RunVar``); its dispatcher is a system
   task. When the run ends, or if the dispatcher ever fails, the poller
   closes, wakes every parked task, and those fall back to trio's own
   ``wait_readable`` (``closed`` is True from then on).

Only Linux has epoll; elsewhere :func:`current_poller` returns ``None`` and
streams use trio's ``wait_readable`` unchanged. It also returns ``None``
(without remembering it) when the epoll instance cannot be created, which
happens when the process is out of file descriptors: that connection waits
in trio, and a later one tries again.
"""

from __future__ import annotations

import logging
import select
from typing import Final, final

from trio.lowlevel import (
    Abort,
    RaiseCancelT,
    RunVar,
    Task,
    current_task,
    reschedule,
    spawn_system_task,
    wait_readable,
    wait_task_rescheduled,
)

__all__ = ["DISPATCHER_NAME", "ReadinessPoller", "current_poller"]

_log: Final = logging.getLogger("trio_socketserver.server")

#: Whether this platform has epoll (Linux). Tests may turn it off to exercise
#: the fallback to trio's wait_readable.
AVAILABLE: bool = hasattr(select, "epoll")

_EDGE_READABLE: Final = (
    getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLRDHUP", 0) | getattr(select, "EPOLLET", 0)
)
#: The peer has shut down its side, or the connection failed: from then on a
#: receive never blocks (it returns b"" or raises), so no further edge comes.
_FOR_GOOD: Final = (
    getattr(select, "EPOLLRDHUP", 0)
    | getattr(select, "EPOLLHUP", 0)
    | getattr(select, "EPOLLERR", 0)
)

#: The dispatcher task's name. It lives as long as the trio run, like trio's
#: own system tasks, not as long as any server.
DISPATCHER_NAME: Final = "trio_socketserver readiness poller"

_POLLER: RunVar[ReadinessPoller | None] = RunVar("trio_socketserver.readiness_poller")


def current_poller() -> ReadinessPoller | None:
    """This run's poller, started on first use; ``None`` where epoll is not
    available or the run's poller has closed (invariant 4: once closed, a run
    does not start another, since its system nursery may be shutting down)."""
    try:
        existing = _POLLER.get()
    except LookupError:
        pass
    else:
        return None if existing is None or existing.closed else existing
    if not AVAILABLE:
        _POLLER.set(None)
        return None
    try:
        poller = ReadinessPoller()
    except OSError:
        # Out of file descriptors (EMFILE/ENFILE), most likely: this wait
        # uses trio's, and a later one tries again (nothing is cached), so a
        # server that runs out of descriptors for a moment does not lose the
        # poller for the rest of the run.
        return None
    try:
        spawn_system_task(poller._dispatch, name=DISPATCHER_NAME)
    except RuntimeError:  # the run is shutting down
        poller._close()
        _POLLER.set(None)
        return None
    _POLLER.set(poller)
    return poller


@final
class ReadinessPoller:
    """Edge-triggered read readiness, one per trio run (see the module
    docstring). Use :func:`current_poller` to get one."""

    __slots__ = ("_epoll", "_finished", "_ready", "_waiting", "closed")

    def __init__(self) -> None:
        self._epoll = select.epoll()
        #: descriptor -> the task parked on it
        self._waiting: dict[int, Task] = {}
        #: descriptors with an event that no task was parked for (invariant 1)
        self._ready: set[int] = set()
        #: descriptors whose peer has finished: always ready (invariant 1)
        self._finished: set[int] = set()
        self.closed = False

    def register(self, fd: int) -> None:
        """Start watching ``fd`` (once per connection). Raises ``OSError``
        if the kernel refuses (the caller then uses trio's wait)."""
        # A task still parked on this number belongs to a connection that was
        # closed without forget() (behind its stream's back); the number has
        # been reused. Wake it: it will find its socket closed (invariant 2).
        stale = self._waiting.pop(fd, None)
        if stale is not None:
            reschedule(stale)
        # An event remembered for the previous owner of the number means
        # nothing for this connection; if this one is already readable,
        # registering reports it afresh.
        self._ready.discard(fd)
        self._finished.discard(fd)
        self._epoll.register(fd, _EDGE_READABLE)

    def consume(self, fd: int) -> bool:
        """Whether ``fd`` had an event while nobody was parked on it (which
        is then forgotten), or its peer has finished. The caller then reads
        without parking."""
        ready = self._ready
        if fd in ready:
            ready.remove(fd)
            return True
        return fd in self._finished

    async def park(self, fd: int) -> None:
        """Wait for the next event on ``fd``. A full checkpoint (invariant
        3). May return without the descriptor being readable (invariant 2),
        and returns at once, spuriously, if the poller closes."""
        task = current_task()
        waiting = self._waiting
        waiting[fd] = task

        def abort(_: RaiseCancelT) -> Abort:
            if waiting.get(fd) is task:
                del waiting[fd]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def forget(self, fd: int) -> None:
        """Drop ``fd`` before it is closed, waking a task parked on it (which
        will find its socket closed). The kernel removes a closed descriptor
        from the epoll set by itself, so this costs no system call."""
        task = self._waiting.pop(fd, None)
        if task is not None:
            reschedule(task)
        self._ready.discard(fd)
        self._finished.discard(fd)

    # -- the dispatcher ----------------------------------------------------------

    async def _dispatch(self) -> None:
        epoll = self._epoll
        epoll_fd = epoll.fileno()
        waiting = self._waiting
        ready = self._ready
        finished = self._finished
        try:
            while True:
                # trio's epoll watches ours level-triggered: it stays readable
                # while events are queued, so events beyond one poll() batch
                # are delivered on the next round.
                await wait_readable(epoll_fd)
                for fd, flags in epoll.poll(0):
                    if flags & _FOR_GOOD:
                        finished.add(fd)
                    task = waiting.pop(fd, None)
                    if task is None:
                        ready.add(fd)
                    else:
                        reschedule(task)
        except Exception:
            # Never crash the run from a system task: log, close, and let the
            # streams fall back to trio's wait (invariant 4).
            _log.exception("readiness poller failed; connections fall back to trio's wait")
        finally:
            self._close()

    def _close(self) -> None:
        self.closed = True
        waiting = list(self._waiting.values())
        self._waiting.clear()
        self._ready.clear()
        self._finished.clear()
        self._epoll.close()
        for task in waiting:
            reschedule(task)
