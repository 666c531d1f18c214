"""Engine: the async server engine, driven by a blocking server.

A :mod:`trio_socketserver.sync` server is a *front*: it has the stdlib's
attributes and blocking hooks, and user subclasses override those. Each front
owns one ``Engine``, an async :class:`trio_socketserver.BaseServer` whose
async hooks call the front's blocking hooks. So the accept loop, the
shutdown phases, the accept-error back-off (Rule 4), the error routing
(Rules 1 and 2) and the fairness rules are the async API's own code, not a
second implementation.

Theory of operation
-------------------
``front.serve_forever()`` runs ``trio.run`` in the calling thread (the *loop
thread*) around ``Engine.serve_forever``. Blocking hooks are called inline in
that thread, exactly where the stdlib calls them: in a sequential server the
handler runs in the thread that called ``serve_forever``, so thread-bound
objects (a ``sqlite3`` connection, thread-locals) behave as before, and
Ctrl-C interrupts a running handler as it does in the stdlib. A threading
front hands the request to a worker thread in ``process_request``.

Rule 1 (never block the loop thread by accident). The engine only calls the
    built-in ``get_request`` when it may not block: the listening socket is
    non-blocking at the file-descriptor level (stream servers) or read with
    ``MSG_DONTWAIT`` (datagram servers), and ``BlockingIOError`` means "wait
    for readability". An overridden ``get_request`` is called only after the
    socket is readable, as the stdlib's ``select`` loop does.
Rule 2 (cross-thread calls are one-way). Other threads never wait on the
    loop: ``shutdown()`` and finished worker threads reach it with
    :meth:`trio.lowlevel.TrioToken.run_sync_soon` (the primitive under
    :mod:`trio.from_thread`), and only when something is waiting for them, so
    a request costs no cross-thread round trip.
Rule 3 (in-flight requests are known). Every request is registered with the
    front from the moment it is taken until it is shut down, so that a
    shutdown past its grace period can unblock the handlers stuck in socket
    I/O (see ``BaseServer._unblock_requests``).
Rule 4 (handle_request needs no loop). Starting trio costs about 400 us,
    several times a whole request, so ``handle_request`` waits with
    ``poll(2)`` in the calling thread (as the stdlib does) and then runs the
    engine's own request processing (``process_blocking``), which needs no
    event loop. Only a mixin at its cap, which must wait
    for capacity, takes the trio path.
Rule 5 (a forked child never runs its parent's loop). The loop's epoll
    instance and wake-up sockets are shared with a child that a handler
    forks; if that child returned into the loop it would take the parent's
    wake-ups (Ctrl-C included). So a child that returns from a request into
    the engine reports it and exits (``os._exit(1)``) instead of serving on
    (the stdlib's child would serve on, beside its parent, on the same
    socket). Outside the loop (``handle_request``) nothing is shared and the
    child returns as in the stdlib.
Rule 6 (wait for the next request in poll(2) when trio has nothing else
    to do). When the accept queue is empty, waiting through trio costs a full
    scheduler round (registering the socket with epoll, epoll_wait, running
    the task again): measurable in a sequential server, where a request is
    only a few tens of microseconds. So if no other task is runnable, the
    loop thread waits in ``poll()`` on the listening socket *and trio's own
    epoll descriptor*, for no longer than trio's next deadline. Anything
    trio must see first (a wake-up from another thread, a signal, which
    trio's wake-up socket receives, any other task's I/O or timer) makes
    that poll return, and the engine then waits through trio as usual. This
    reads two private attributes of trio's run (``_DirectWait``); without
    them the engine always waits through trio.
Rule 7 (queued requests are processed in a plain loop). While requests are
    already queued, the engine takes and processes them in a plain Python
    loop (``_drain``), up to SYNC_FAIRNESS_INTERVAL between two yields to
    trio, checking the stop flag (Rule 2) before each one, instead of a
    round of coroutines per request. With Rules 6 and 7 the sequential
    TCPServer went from 0.96x to 1.04x of the stdlib's on connect-per-request
    and UDPServer from 1.01x to 1.18x (docs/performance.rst).
"""

from __future__ import annotations

import errno
import math
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn

import trio

from .._log import SERVER_LOGGER
from .._server import _BACKOFF_START
from .._server import _DEFAULT as _DEFAULT_GRACE
from .._server import BaseServer as _AsyncBaseServer
from ._signals import Direct as _Direct

if TYPE_CHECKING:
    from ._servers import BaseServer

__all__ = ["SYNC_FAIRNESS_INTERVAL", "Engine"]

#: The loop yields to trio's scheduler at least once every this many
#: requests taken without waiting (see Engine._fair_checkpoint).
SYNC_FAIRNESS_INTERVAL: Final = 64

_Taken = tuple[Any, Any]


class Engine(_AsyncBaseServer[Any, Any]):
    """The async server behind one blocking front (see the module docstring)."""

    # The front's handlers are blocking calls and threads, which trio's
    # deadline does not reach: the front applies and reports grace_period.
    _announces_grace_expiry = False

    def __init__(self, front: BaseServer) -> None:
        # The engine never constructs handlers: the front's hooks do.
        super().__init__(None, front.RequestHandlerClass)
        self._front = front
        self._fd = -1
        self._take: Callable[[], _Taken] | None = None
        self._lock = threading.Lock()
        self._capacity_waiter: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._after_request = False
        self._stop_asked = False
        self._tracked = False
        self._capped = False
        self._generation = _forks.generation
        self._in_loop = False
        self._direct: _DirectWait | None = None
        self._signal_mark: Any = _Direct.for_this_thread()

    def _display_name(self) -> str:
        return type(self._front).__name__

    def _check_handler_class(self, handler_class: Any) -> Any:
        return handler_class  # the front validated its own handler class

    # -- one run (serve_forever or handle_request) ---------------------------------

    def _prepare(self) -> None:
        """Called in the loop thread inside trio.run, before taking requests."""
        front = self._front
        front._check_serving_config()
        with self._lock:  # see begin_shutdown_threadsafe
            self._token = trio.lowlevel.current_trio_token()
            self._stop_asked = False
        # A shutdown pending before serving is the front's to keep
        # (_stop_before_serving, the stdlib's rule). The engine's own flag
        # must not carry over from the previous run: a stop that callback
        # delivered while that run was already ending (after its
        # serve_forever had reset the flag) would end this run at once.
        self._shutdown_requested = False
        self._fd = self._server_fd()
        self._generation = _forks.generation
        self._budget = SYNC_FAIRNESS_INTERVAL
        self._take = front._ready_taker()
        self._tracked = front._requests_are_sockets
        self._capped = front._has_a_cap()
        self._queue_empty = False
        self._after_request = front._has_service_actions()
        self._direct = _DirectWait.for_current_run(self._fd)
        self._signal_mark = _Direct.for_this_thread()
        front._loop_started(self)

    async def run_forever(self, poll_interval: float) -> None:
        self._prepare()
        self._in_loop = True
        try:
            await self.serve_forever(poll_interval)
        finally:
            self._in_loop = False

    async def run_one(self, wait_for: float | None) -> None:
        self._prepare()
        self._in_loop = True
        try:
            deadline = math.inf if wait_for is None else trio.current_time() + wait_for
            if not await self._handle_one(deadline):
                return self._front.handle_timeout()  # handle_request() returns it
            return None
        finally:
            self._in_loop = False

    def handle_one_blocking(self, wait_for: float | None) -> bool | None:
        """``handle_request`` without an event loop (Rule 4): True if a
        request was handled (or an accept error backed off), False on
        timeout, None if it needs the loop (a mixin's cap is reached)."""
        front = self._front
        front._check_serving_config()
        fd = self._server_fd()
        if not front._has_capacity():
            return None
        take = front._ready_taker() or front._get_request_for_engine
        deadline = None if wait_for is None else time.monotonic() + wait_for
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if deadline is None:
                ready = poller.poll()
            else:
                ready = poller.poll(max(0.0, deadline - time.monotonic()) * 1000)
            if not ready:
                return False
            try:
                request, client_address = _closed_is_closed(take)
            except BlockingIOError:
                continue  # taken by someone else sharing the socket: wait again
            except trio.ClosedResourceError:
                raise RuntimeError(
                    f"{type(front).__name__}: the server socket was closed"
                ) from None
            except OSError as exc:
                # The stdlib returns here at once (and a handle_request()
                # loop spins on EMFILE); the async BaseServer's accept-error
                # rule logs and backs off.
                delay = self._note_accept_error(exc)
                if delay is not None:
                    time.sleep(delay)
                return True
            self._backoff = _BACKOFF_START
            self.process_blocking(request, client_address)
            return True

    def _server_fd(self) -> int:
        fd = self._front.fileno()
        if fd < 0:
            raise RuntimeError(
                f"{self._display_name()}: the server socket is closed; create a new server"
            )
        return fd

    def begin_shutdown_threadsafe(self, token: trio.lowlevel.TrioToken) -> None:
        """Start shutdown of the run ``token`` belongs to, from any thread (Rule 2):
        seen at the next request if the loop is busy, or woken if it waits."""
        with self._lock:
            # A shutdown() aimed at a run that has already ended (it raced
            # another shutdown() and lost) must not leave the flag set for the
            # next run: that run would stop at its first request, with nobody
            # having asked it to. _prepare installs each run's token under
            # this lock, so a stale token never matches.
            if token is not self._token:
                return
            self._stop_asked = True
        try:
            token.run_sync_soon(self._begin_shutdown_if_serving)
        except trio.RunFinishedError:
            pass  # serve_forever already returned

    def _begin_shutdown_if_serving(self) -> None:
        # Delivered on the loop, possibly after the run's serve_forever has
        # already returned (the run was ending anyway): then there is
        # nothing to stop, and setting the flag would only leak it.
        if self._serving:
            self._begin_shutdown(_DEFAULT_GRACE)

    def begin_shutdown_here(self) -> None:
        """Start shutdown from the loop thread (a handler or service_actions)."""
        self._begin_shutdown(_DEFAULT_GRACE)

    # -- capacity (concurrency caps of the mixins) -------------------------------------

    def _has_capacity(self) -> bool:
        return not self._capped or self._front._has_capacity()

    async def _fair_checkpoint(self) -> None:
        # The async engine checks for cancellation on every request and
        # yields every FAIRNESS_INTERVAL. Here nothing can cancel the accept
        # loop but phase 1 and Ctrl-C (raised at once in unprotected code),
        # and a yield to trio's scheduler costs more than a small request
        # (about 15 us, with an epoll_wait): so a stop asked for from another
        # thread is seen through a flag on every request, and the loop yields
        # only every SYNC_FAIRNESS_INTERVAL requests, for the other callbacks
        # and service_actions.
        self._check_stop_asked()
        self._budget -= 1
        if self._budget <= 0:
            self._budget = SYNC_FAIRNESS_INTERVAL
            await trio.lowlevel.checkpoint()

    async def _handle_one(self, deadline: float = math.inf) -> bool:
        # Rule 7: requests already queued are taken and processed in a plain
        # loop (_drain), up to SYNC_FAIRNESS_INTERVAL of them between two
        # yields to trio, instead of one coroutine round (_handle_one,
        # _fair_checkpoint, _process) per request.
        take = self._take
        if self._ready_taker is None or take is None or deadline != math.inf:
            # Not serve_forever (handle_request takes one request), or an
            # overridden get_request: the async engine's own path.
            return await super()._handle_one(deadline)
        if self._budget <= 0:
            self._budget = SYNC_FAIRNESS_INTERVAL
            await trio.lowlevel.checkpoint()
        if self._drain(take):
            return True
        return await self._handle_one_waiting(deadline)

    def _drain(self, take: Callable[[], _Taken]) -> bool:
        """Process queued requests until none is left, the budget is spent,
        shutdown begins or the cap is reached; True if any was processed."""
        handled = False
        while self._budget > 0:
            if self._stop_asked:  # _check_stop_asked, without a call per request
                self._check_stop_asked()
            if self._shutdown_requested or not self._has_capacity():
                break
            try:
                taken = take()
            except BlockingIOError:
                self._queue_empty = True  # get_request waits before it tries again
                break
            except OSError:
                break  # the waiting path retries it and backs off (Rule 4)
            self._budget -= 1
            handled = True
            self.process_blocking(*taken)
        return handled

    def _check_stop_asked(self) -> None:
        """A shutdown() asked for from another thread (Rule 2's flag)
        begins here, at the next request."""
        if self._stop_asked:
            self._stop_asked = False
            self._begin_shutdown(_DEFAULT_GRACE)

    async def _wait_for_capacity(self) -> None:
        front = self._front
        while not front._has_capacity():
            event = trio.Event()
            with self._lock:
                self._capacity_waiter = event
            if front._has_capacity():  # freed before we published the waiter
                with self._lock:
                    self._capacity_waiter = None
                return
            await front._wait_for_capacity(event)

    def capacity_freed(self) -> None:
        """Called from any thread when a request slot frees up (Rule 2): wakes
        the accept loop if, and only if, it waits for capacity."""
        if self._capacity_waiter is None:  # racy read, rechecked under the lock
            return
        event = self._take_capacity_waiter()
        token = self._token
        if event is not None and token is not None:
            try:
                token.run_sync_soon(event.set)
            except trio.RunFinishedError:
                pass

    def _take_capacity_waiter(self) -> trio.Event | None:
        with self._lock:
            event, self._capacity_waiter = self._capacity_waiter, None
        return event

    # -- taking requests (Rule 1) --------------------------------------------------------

    def _ready_taker_for(self) -> Callable[[], _Taken | None] | None:
        return self._take_now if self._take is not None else None

    def _take_now(self) -> _Taken | None:
        assert self._take is not None
        try:
            return self._take()
        except BlockingIOError:
            return None

    async def _wait_readable(self) -> None:
        self._budget = SYNC_FAIRNESS_INTERVAL  # waiting is a full checkpoint
        direct = self._direct
        if direct is not None and direct.wait():
            return  # Rule 6: readable, and trio had nothing to do meanwhile
        await trio.lowlevel.wait_readable(self._fd)

    async def get_request(self) -> _Taken:
        front = self._front
        if self._take is None:
            # An overridden get_request: call it only once the socket is readable.
            while True:
                await self._wait_readable()
                try:
                    return _closed_is_closed(front._get_request_for_engine)
                except BlockingIOError:
                    continue  # someone else took it (another process sharing the socket)
        if self._queue_empty:
            self._queue_empty = False
            await self._wait_readable()
        else:
            await self._fair_checkpoint()
        while True:
            try:
                return _closed_is_closed(self._take)
            except BlockingIOError:
                await self._wait_readable()

    # -- the blocking hooks --------------------------------------------------------------

    async def _process(self, request: Any, client_address: Any) -> None:
        self.process_blocking(request, client_address)

    def process_blocking(self, request: Any, client_address: Any) -> None:
        """Verify and process one taken request: Rules 1 and 2 of the async
        ``BaseServer._process``, for blocking hooks.

        The async version awaits each hook; the front's hooks are plain
        calls, so here they are called directly, without the coroutine
        frames the async version creates per request (with this, the
        sequential UDPServer benchmark went from 0.97x to 1.05x of the
        stdlib's; docs/performance.rst)."""
        front = self._front
        tracked = self._tracked
        # Signal handlers run here at once, as in the stdlib (sync/_signals.py).
        mark = self._signal_mark
        direct = mark.on
        mark.on = True
        if tracked:  # Rule 3 (a datagram request cannot be unblocked)
            front._remember(request)
        self._received += 1
        self._active += 1
        try:
            if front.verify_request(request, client_address):
                front.process_request(request, client_address)
            else:
                self._end_request(request)
        except Exception:
            try:
                self._report_error(request, client_address)
            finally:  # a BaseException from handle_error: still Rule 1
                self._end_request(request)
        except BaseException:
            if front._may_close_after_interrupt(request):
                self._end_request(request)
            raise
        finally:
            mark.on = direct
            self._active -= 1
            if _forks.generation != self._generation and self._in_loop:
                _forked_child_returned(front)
            if tracked and id(request) in front._inflight and not front._hands_off_requests:
                front._forget(request)  # an override of shutdown_request skipped it
        if self._after_request:
            self._run_service_actions_once()

    def _end_request(self, request: Any) -> None:
        self._front._forget(request)
        self._front.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self._front.handle_error(request, client_address)

    async def service_actions(self) -> None:
        with _Direct.calls():
            self._front.service_actions()

    def _run_service_actions_once(self) -> None:
        # The stdlib calls service_actions() after every request as well as
        # every poll_interval; ForkingMixIn reaps children there.
        try:
            with _Direct.calls():
                self._front.service_actions()
        except Exception:
            SERVER_LOGGER.exception("%s.service_actions raised", self._display_name())


class _DirectWait:
    """Rule 6: wait for the listening socket in ``poll(2)`` while trio has
    nothing else to do.

    Invariant: :meth:`wait` blocks only while no task is runnable, and no
    longer than trio's next deadline; it watches trio's epoll descriptor,
    which becomes readable when anything trio waits for is ready, trio's
    wake-up sockets included (``TrioToken.run_sync_soon`` from another
    thread, and signals: trio's ``signal.set_wakeup_fd`` writes there). So
    trio would have slept in ``epoll_wait`` for exactly as long, and the
    blocking poll delays nothing it would have done.

    A signal that arrives during the poll interrupts it (EINTR) and runs
    trio's handler: in unprotected code it raises ``KeyboardInterrupt``
    here, as in a blocking handler; where trio defers it, it writes trio's
    wake-up socket, which ends the poll."""

    __slots__ = ("_listen_fd", "_loop_fd", "_poll", "_runner")

    def __init__(self, runner: Any, listen_fd: int, loop_fd: int) -> None:
        self._runner = runner
        self._listen_fd = listen_fd
        self._loop_fd = loop_fd
        self._poll = select.poll()
        self._poll.register(listen_fd, select.POLLIN)
        self._poll.register(loop_fd, select.POLLIN)

    @classmethod
    def for_current_run(cls, listen_fd: int) -> _DirectWait | None:
        """For the trio run of the calling thread; None where trio's private
        attributes are not as expected (another backend, another version)."""
        try:
            runner = trio._core._run.GLOBAL_RUN_CONTEXT.runner
            epoll: object = runner.io_manager._epoll
            runner.runq.__len__  # noqa: B018 (the attributes wait() uses)
            runner.deadlines.next_deadline  # noqa: B018
            runner.clock.deadline_to_sleep_time  # noqa: B018
        except AttributeError:
            return None
        if not isinstance(epoll, select.epoll) or runner.is_guest:
            return None
        return cls(runner, listen_fd, epoll.fileno())

    def wait(self) -> bool:
        """Block until the listening socket is readable (True), or return
        False at once or as soon as trio has something to do."""
        runner = self._runner
        if runner.runq:
            return False
        timeout = runner.clock.deadline_to_sleep_time(runner.deadlines.next_deadline())
        if timeout <= 0:
            return False
        with _Direct.calls():  # a signal handler raising here ends the poll (sync/_signals.py)
            events = self._poll.poll(None if timeout > _POLL_FOREVER else math.ceil(timeout * 1000))
        loop_fd = self._loop_fd
        return bool(events) and all(fd != loop_fd for fd, _ in events)


#: Waits longer than this (seconds) are passed to poll() as "no timeout".
_POLL_FOREVER: Final = 86400.0


class _ForkGeneration:
    """Counts forks in this process's ancestry: cheaper than os.getpid()
    (a system call) on every request."""

    generation = 0

    @classmethod
    def forked(cls) -> None:
        cls.generation += 1


_forks = _ForkGeneration
os.register_at_fork(after_in_child=_ForkGeneration.forked)


def _forked_child_returned(front: BaseServer) -> NoReturn:
    """Rule 5: a child of fork() must not go on running its parent's loop,
    nor unwind it (trio's teardown would unregister the parent's wake-up
    sockets from the shared epoll instance): it ends here."""
    try:
        sys.stderr.write(
            f"trio_socketserver.sync: a process forked inside a request of "
            f"{type(front).__name__} returned into serve_forever(); it exits now. End such "
            "a child with os._exit() (as ForkingMixIn does), or use ForkingMixIn.\n"
        )
        sys.stderr.flush()
    finally:
        os._exit(1)


def _closed_is_closed(take: Callable[[], _Taken]) -> _Taken:
    """Call ``take``; a socket closed under it is the engine's
    ClosedResourceError (shutdown), not an accept error to back off from."""
    try:
        return take()
    except BlockingIOError:
        raise
    except OSError as exc:
        if exc.errno == errno.EBADF:
            raise trio.ClosedResourceError("the server socket was closed") from exc
        raise
