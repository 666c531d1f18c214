"""BaseServer: socketserver's server contract, run by trio.

Theory of operation
-------------------
``serve_forever`` owns everything a server runs, in one nursery::

    serve_forever
    └── handlers scope (CancelScope; phase 3 cancels it)
        └── nursery
            ├── accept loop        (this task: get_request → verify → process)
            │   └── accept scope   (around get_request only; phase 1 cancels it)
            ├── service_actions    (every poll_interval, until the loop ends)
            └── handler tasks      (concurrent servers only)

Shutdown has three phases, all started by one call (``shutdown()``, a signal
via :func:`serve`, or ``server_close()``):

1. **Stop accepting.** The accept scope is cancelled at once (no polling):
   no new request is taken. Connections still in the kernel backlog are not
   ours; they are refused when the listening socket closes.
2. **Grace.** Requests in progress keep running. They can see that shutdown
   began (:attr:`BaseServer.shutting_down`, :meth:`wait_shutting_down`) and
   wind down. The handlers scope gets a deadline ``grace_period`` seconds
   away; ``None`` waits for them however long they take.
3. **Cancel.** At the deadline the handlers scope is cancelled: every handler
   gets :exc:`trio.Cancelled` at its next checkpoint, its ``finish()`` runs,
   its connection is closed. ``daemon_requests = True`` (or
   ``grace_period=0``) goes straight to this phase. A grace period that
   ends with requests still running is logged as a warning, with their
   number counted at the deadline before anything is cancelled (a handler
   that ignores cancellation, in a shielded scope, is waited for: trio
   cannot stop it, and the warning is how it shows).

``serve_forever`` returns when the nursery is empty; ``shutdown()`` returns
then too. Cancelling ``serve_forever`` from outside is phase 3 at once.

Rules
-----
Rule 1: every accepted request is either handed to a handler or closed:
    ``verify_request`` false, ``process_request`` raising, or cancellation
    all end in ``shutdown_request``.
Rule 2: a handler's ``Exception`` goes to ``handle_error`` and the server
    keeps serving. If ``handle_error`` itself raises, that is logged and the
    server still keeps serving; so do Exceptions from ``shutdown_request``
    and ``close_request``. ``BaseException`` (``KeyboardInterrupt``,
    ``SystemExit``) propagates out of ``serve_forever`` as itself. A group
    mixing both (a handler's nursery cancelled in phase 3 while a child's
    cleanup fails) is split: the Exceptions are reported, the rest goes on.
Rule 3: ``shutdown()`` never deadlocks. Called where waiting for
    ``serve_forever`` to return could never finish (from a handler or
    ``service_actions`` of this server), it starts the shutdown and returns.
Rule 4: accept errors never crash the server or spin: resource exhaustion
    (``EMFILE``...) is logged and retried with exponential back-off.
"""

from __future__ import annotations

import contextvars
import errno
import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, NoReturn

import attrs
import trio

from . import _checks
from ._connection_stream import FAIRNESS_INTERVAL
from ._handlers import BaseRequestHandler, StreamRequestHandler
from ._log import SERVER_LOGGER
from ._typevars import AddressT, RequestT

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from ._protocols import HandlerFactory

__all__ = ["BaseServer", "ServerStatistics"]

# Servers whose serve_forever() is an ancestor of the current task (handlers,
# service_actions). shutdown() uses it to honour Rule 3.
_serving_here: contextvars.ContextVar[tuple[BaseServer[Any, Any], ...]] = contextvars.ContextVar(
    "trio_socketserver_serving_here", default=()
)

# accept() errnos that mean "out of a resource right now": back off and retry
# (Rule 4). See trio's _highlevel_socket.py for the survey of other servers.
_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# accept() errnos about one connection that died before we took it: skip it.
_TRANSIENT_ERRNOS: Final = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "EPERM",
        "ECONNRESET",
        "ETIMEDOUT",
        "EHOSTUNREACH",
        "ENETUNREACH",
        "ENETDOWN",
        "EHOSTDOWN",
        "ENONET",
        "ENOPROTOOPT",
        "EOPNOTSUPP",
    )
    if hasattr(errno, name)
)
_BACKOFF_START: Final = 0.01
_BACKOFF_MAX: Final = 1.0


class _Default:
    """Sentinel type: "use the server's attribute"."""

    def __repr__(self) -> str:
        return "DEFAULT"


_DEFAULT: Final = _Default()


@attrs.frozen
class ServerStatistics:
    """A snapshot from :meth:`BaseServer.statistics`."""

    #: ``serve_forever`` is running.
    serving: bool
    #: Shutdown has begun and ``serve_forever`` has not returned yet.
    shutting_down: bool
    #: Requests being handled right now.
    active_requests: int
    #: Requests taken (accepted connections or received datagrams) so far.
    requests_received: int
    #: Handler errors routed to ``handle_error`` so far.
    errors: int
    #: Accept errors so far (each was logged; see Rule 4).
    accept_errors: int


class BaseServer(Generic[RequestT, AddressT]):
    """The base of every server: the socketserver contract on trio.

    Generic in the request type ``RequestT`` (what ``get_request`` returns and
    the handler gets) and the client address type ``AddressT``.

    Methods for the caller (all ``async`` ones must run inside trio)::

        async serve_forever(poll_interval=0.5, *, task_status)
        async handle_request()
        async shutdown(*, grace_period=DEFAULT)
        server_close()
        fileno()
        statistics()
        async with server: / with server:

    Methods that may be overridden, in the stdlib's call order::

        server_bind()                        sync: runs in __init__
        server_activate()                    sync: runs in __init__
        get_request()                        async: waits for a request
        verify_request(request, address)     async: may consult anything
        process_request(request, address)    async: runs or spawns the handler
        finish_request(request, address)     async: runs the handler
        shutdown_request(request)            async: ends the request
        close_request(request)               async: releases it
        handle_error(request, address)       sync: called in an except block
        handle_timeout()                     async
        service_actions()                    async

    Binding and activating are synchronous because the constructor runs them
    (``server_address`` is known as soon as the server exists, as in the
    stdlib); everything that waits on the network, or runs user code that
    might, is ``async``. ``handle_error`` is synchronous so that
    ``sys.exc_info()`` is the error being handled, exactly as in the stdlib.

    Class variables: ``timeout`` (for :meth:`handle_request`),
    ``grace_period`` and ``daemon_requests`` (shutdown, see the module
    docstring).
    """

    #: Seconds :meth:`handle_request` waits for a request before calling
    #: :meth:`handle_timeout`; ``None`` waits forever.
    timeout: float | None = None
    #: Seconds in-flight requests get to finish after shutdown starts before
    #: they are cancelled; ``None`` waits for them however long it takes.
    grace_period: float | None = 30.0
    #: Cancel in-flight requests as soon as shutdown starts (the async
    #: counterpart of ``ThreadingMixIn.daemon_threads``).
    daemon_requests: bool = False

    #: The kind of handler this server feeds (``"stream"``/``"datagram"``),
    #: checked against ``RequestHandlerClass.transport_kind``.
    _transport_kind: ClassVar[str | None] = None

    server_address: object
    RequestHandlerClass: HandlerFactory[RequestT, AddressT, Self]

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: HandlerFactory[RequestT, AddressT, Self],
    ) -> None:
        self.server_address = server_address
        _checks.check_server_hooks(type(self))
        self.RequestHandlerClass = self._check_handler_class(RequestHandlerClass)
        self._shutdown_requested = False
        self._serving = False
        self._closed = False
        self._stopped = trio.Event()
        self._stopped.set()
        self._shutting_down = trio.Event()
        self._accept_scope: trio.CancelScope | None = None
        self._handlers_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._active = 0
        self._received = 0
        self._errors = 0
        self._accept_errors = 0
        self._backoff = _BACKOFF_START
        self._ready_taker: Callable[[], tuple[RequestT, AddressT] | None] | None = None
        self._budget = FAIRNESS_INTERVAL
        self._queue_empty = False
        # Set when the last request in progress ends, once a grace period
        # is being watched (_set_grace_deadline); None otherwise.
        self._drained: trio.Event | None = None
        # The deadline of phase 3 while a grace watcher keeps it
        # (_set_grace_deadline); None otherwise.
        self._grace_timer: trio.CancelScope | None = None

    #: Whether a grace period that expires with requests still running is
    #: logged (the sync engine's handlers are threads: it reports its own).
    _announces_grace_expiry: ClassVar[bool] = True

    # -- validation ------------------------------------------------------------

    def _check_handler_class(self, handler_class: Any) -> Any:
        name = type(self).__name__
        if not callable(handler_class):
            raise TypeError(
                f"{name} needs a request handler class (a BaseRequestHandler subclass), "
                f"not {handler_class!r}"
            )
        if not isinstance(handler_class, type):
            _checks.check_factory(handler_class, name)
            return handler_class  # a factory: nothing more can be checked here
        stdlib = sys.modules.get("socketserver")
        if stdlib is not None and issubclass(handler_class, stdlib.BaseRequestHandler):
            raise TypeError(
                f"{handler_class.__qualname__} is a blocking socketserver handler, "
                "and these servers run async handlers: derive it from "
                "trio_socketserver.BaseRequestHandler and define 'async def handle'"
            )
        derived = issubclass(handler_class, BaseRequestHandler)
        _checks.check_handler_hooks(handler_class, derived=derived)
        if issubclass(handler_class, StreamRequestHandler):
            _checks.check_handler_attributes(handler_class)
        if issubclass(handler_class, BaseRequestHandler):
            kind = handler_class.transport_kind
            if (
                kind is not None
                and self._transport_kind is not None
                and kind != self._transport_kind
            ):
                fix = {
                    "stream": "TCPServer or UnixStreamServer (or derive the handler "
                    "from DatagramRequestHandler)",
                    "datagram": "UDPServer or UnixDatagramServer (or derive the handler "
                    "from StreamRequestHandler)",
                }[kind]
                raise TypeError(
                    f"{handler_class.__qualname__} handles {kind} requests but {name} "
                    f"serves {self._transport_kind} requests; serve it with {fix}"
                )
        return handler_class

    # -- hooks with default behaviour ----------------------------------------------

    def server_activate(self) -> None:
        """Called by the constructor to activate the server. Does nothing here."""

    def server_close(self) -> None:
        """Release the server's resources. If it is serving, shutdown begins
        (as :meth:`shutdown`, without waiting). Idempotent."""
        self._closed = True
        if self._serving:
            self._begin_shutdown(_DEFAULT)

    def fileno(self) -> int:
        """The file descriptor of the socket the server waits on."""
        raise NotImplementedError(f"{type(self).__name__} has no socket")

    async def get_request(self) -> tuple[RequestT, AddressT]:
        """Wait for and take the next request; return ``(request, address)``.

        Raising :exc:`OSError` makes the server skip this attempt (logged,
        with back-off where it signals resource exhaustion)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_request()")

    async def verify_request(self, request: RequestT, client_address: AddressT) -> bool:
        """Return ``False`` to refuse the request (it is then shut down)."""
        return True

    async def process_request(self, request: RequestT, client_address: AddressT) -> None:
        """Handle the request: here, in the accept loop (one at a time)."""
        await self.finish_request(request, client_address)
        await self.shutdown_request(request)

    async def finish_request(self: Self, request: RequestT, client_address: AddressT) -> None:
        """Construct the handler and run it to completion."""
        await self.RequestHandlerClass(request, client_address, self).run()

    async def shutdown_request(self, request: RequestT) -> None:
        """End the request (stream servers shut the connection down first)."""
        await self.close_request(request)

    async def close_request(self, request: RequestT) -> None:
        """Release the request's resources. Does nothing here."""

    def handle_error(self, request: RequestT, client_address: AddressT) -> None:
        """Report the exception being handled; the server then keeps serving.

        Logs the traceback to the ``trio_socketserver.server`` logger (the
        stdlib prints it to stderr). Override to do something else."""
        SERVER_LOGGER.error(
            "Exception occurred during processing of request from %r",
            client_address,
            exc_info=True,
        )

    async def handle_timeout(self) -> None:
        """Called when :meth:`handle_request` times out. Does nothing here."""

    async def service_actions(self) -> None:
        """Called by :meth:`serve_forever` once every ``poll_interval`` seconds.
        Does nothing here."""

    # -- the caller's API --------------------------------------------------------

    @property
    def shutting_down(self) -> bool:
        """True from the moment shutdown begins until ``serve_forever`` returns."""
        return self._shutting_down.is_set() and self._serving

    async def wait_shutting_down(self) -> None:
        """Wait until shutdown begins. Handlers use it to wind down in phase 2."""
        await self._shutting_down.wait()

    def statistics(self) -> ServerStatistics:
        """A snapshot of the server's counters."""
        return ServerStatistics(
            serving=self._serving,
            shutting_down=self.shutting_down,
            active_requests=self._active,
            requests_received=self._received,
            errors=self._errors,
            accept_errors=self._accept_errors,
        )

    def _check_can_serve(self, what: str) -> None:
        if self._closed:
            raise RuntimeError(f"{what} called on a closed server; create a new one")
        if self._serving:
            raise RuntimeError(f"{what} called while serve_forever() is already running")
        self._check_ready(what)

    def _check_ready(self, what: str) -> None:
        """Raise unless the server can take requests (overridden by socket servers)."""

    def _serving_ended(self) -> None:
        """Called as ``serve_forever`` returns, every handler done: socket
        servers close here what ``server_close()`` had to leave open."""

    async def serve_forever(
        self,
        poll_interval: float = 0.5,
        *,
        task_status: trio.TaskStatus[Self] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Handle requests until :meth:`shutdown`; then return.

        Reports ``task_status.started(self)`` once serving, so
        ``server = await nursery.start(srv.serve_forever)`` works.
        ``poll_interval`` is how often :meth:`service_actions` runs; requests
        are never polled for, and shutdown never waits for it. Returns after
        the shutdown phases (module docstring) are complete. If shutdown was
        requested before serving started, returns at once.
        """
        self._check_can_serve("serve_forever()")
        interval: object = poll_interval
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or math.isnan(interval)  # nan <= 0 is False: it would pass the next test
            or interval <= 0
        ):
            raise ValueError(
                "poll_interval must be a number of seconds > 0 (how often service_actions "
                f"runs; inf: never), not {poll_interval!r}"
            )
        self._serving = True
        self._ready_taker = self._ready_taker_for()
        self._stopped = trio.Event()
        if not self._shutdown_requested:
            self._shutting_down = trio.Event()
        token = _serving_here.set((*_serving_here.get(), self))
        try:
            # The group handler sits outside the handlers scope so that trio
            # has already absorbed the Cancelled exceptions of phase 3.
            try:
                with trio.CancelScope() as handlers_scope:
                    self._handlers_scope = handlers_scope
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        actions_scope = trio.CancelScope()
                        nursery.start_soon(self._run_service_actions, poll_interval, actions_scope)
                        if self._shutdown_requested:
                            self._begin_shutdown(_DEFAULT)
                        task_status.started(self)
                        while not self._shutdown_requested:
                            await self._handle_one()
                        actions_scope.cancel()
            except BaseExceptionGroup as group:
                _raise_single(group)
        finally:
            _serving_here.reset(token)
            self._nursery = None
            self._ready_taker = None
            self._handlers_scope = None
            self._accept_scope = None
            self._serving = False
            self._shutdown_requested = False
            self._drained = None
            self._grace_timer = None
            # Before _stopped: once shutdown() returns, server_close()'s
            # resources are released.
            self._serving_ended()
            self._stopped.set()

    async def handle_request(self) -> None:
        """Handle one request, waiting at most ``timeout`` seconds for it
        (then :meth:`handle_timeout` is called). The handler runs to completion
        before this returns, in concurrent servers too. :meth:`shutdown`
        stops ``serve_forever`` only: as in the stdlib, it neither interrupts
        nor prevents ``handle_request`` (one asked for while not serving
        stays pending for the next ``serve_forever``)."""
        self._check_can_serve("handle_request()")
        timeout = self.timeout
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        if not await self._handle_one(deadline):
            await self.handle_timeout()

    async def shutdown(self, *, grace_period: float | _Default | None = _DEFAULT) -> None:
        """Stop serving; return when :meth:`serve_forever` has returned.

        Stops accepting at once, gives in-flight requests ``grace_period``
        seconds (default: the ``grace_period`` attribute; ``0`` cancels them
        at once), then cancels them. Safe to call before serving starts (the
        next ``serve_forever`` returns at once), more than once (a later call
        can only shorten the grace), and from inside a handler or
        ``service_actions`` of this server (it starts the shutdown and returns
        without waiting, since waiting there could never end).
        """
        if grace_period is not _DEFAULT:
            _check_grace_period(grace_period)
        self._begin_shutdown(grace_period)
        if self._serving and self not in _serving_here.get():
            await self._stopped.wait()
        else:
            await trio.lowlevel.checkpoint()

    def _begin_shutdown(self, grace_period: float | _Default | None) -> None:
        self._shutdown_requested = True
        self._shutting_down.set()
        if self._accept_scope is not None and self._serving:
            self._accept_scope.cancel()  # phase 1
        scope = self._handlers_scope
        if scope is None:
            return
        grace = self.grace_period if isinstance(grace_period, _Default) else grace_period
        if self.daemon_requests or grace == 0:
            scope.cancel()  # straight to phase 3
        elif grace is not None:
            self._set_grace_deadline(scope, trio.current_time() + grace)  # phase 2

    def _set_grace_deadline(self, scope: trio.CancelScope, deadline: float) -> None:
        """Phase 2: start phase 3 (cancel ``scope``, the handlers scope) at
        ``deadline``, or earlier if an earlier call asked for that.

        With requests in progress the deadline is kept by a watcher task
        (:meth:`_end_grace`), not by the handlers scope itself, so that the
        warning can say truthfully how many requests phase 3 cancels: at the
        deadline the watcher counts them first and only then cancels. A
        deadline on the handlers scope would cancel the watcher and the
        handlers in one scheduler batch, in no fixed order, and handlers that
        ran first had already ended (and left the count) when the watcher
        looked: the number was too low, or the warning missing altogether.
        With nothing running there is nothing to report, and the sync engine
        reports expiry itself: then the handlers scope takes the deadline."""
        timer = self._grace_timer
        if timer is not None:  # a watcher keeps the deadline: a later call shortens it
            timer.deadline = min(timer.deadline, deadline)
            return
        nursery = self._nursery
        if not self._announces_grace_expiry or nursery is None or not self._active:
            scope.deadline = min(scope.deadline, deadline)
            return
        timer = self._grace_timer = trio.CancelScope(deadline=min(deadline, scope.deadline))
        drained = self._drained = trio.Event()
        nursery.start_soon(self._end_grace, scope, timer, drained)

    async def _end_grace(
        self, scope: trio.CancelScope, timer: trio.CancelScope, drained: trio.Event
    ) -> None:
        """The grace watcher: returns when the last request ends in time; at
        the deadline, logs how many requests are still running, then starts
        phase 3. When phase 3 is asked for instead (``grace_period=0``,
        ``daemon_requests``, a cancellation from outside), the handlers scope
        cancels the watcher with the handlers, and nothing is logged."""
        with timer:
            await drained.wait()
        if not timer.cancelled_caught:
            return  # every request ended within the grace period
        # Nothing has been cancelled yet, so this is the number at the deadline.
        running = self._active
        if running:
            SERVER_LOGGER.warning(
                "%s: the grace period ended with %d request(s) still running: cancelling them",
                self._display_name(),
                running,
            )
        scope.cancel()  # phase 3

    def _request_ended(self) -> None:
        """Called after ``_active`` goes down."""
        drained = self._drained
        if drained is not None and not self._active:
            drained.set()

    # -- context managers --------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server_close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server_close()

    # -- the engine ----------------------------------------------------------------

    async def _wait_for_capacity(self) -> None:
        """Wait until another request may be taken (concurrency cap)."""

    def _has_capacity(self) -> bool:
        """Whether another request may be taken now (concurrency cap)."""
        return True

    def _ready_taker_for(self) -> Callable[[], tuple[RequestT, AddressT] | None] | None:
        """A function that takes an already-queued request without waiting
        (``None`` if nothing is queued), usable instead of ``get_request``;
        or None. Socket servers provide one while get_request is theirs."""
        return None

    async def _fair_checkpoint(self) -> None:
        """Check for cancellation (always) and yield to the scheduler every
        ``FAIRNESS_INTERVAL`` calls: the stream's Rules 1 and 2, for taking
        requests."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._budget -= 1
        if self._budget <= 0:
            self._budget = FAIRNESS_INTERVAL
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _handle_one(self, deadline: float = math.inf) -> bool:
        """Take one request and process it; False if none was taken.

        The stdlib's ``_handle_request_noblock`` plus Rules 1, 2 and 4."""
        # Fast path: a request already queued is taken without a cancel scope
        # (the scope exists only to interrupt a *wait* in phase 1). Used only
        # with the built-in get_request, whose ready-taker this is; anything
        # unusual (an error, nothing queued, the cap) takes the slow path.
        taker = self._ready_taker
        if taker is not None and deadline == math.inf:
            await self._fair_checkpoint()
            if not self._shutdown_requested and self._has_capacity():
                try:
                    taken = taker()
                except OSError:
                    taken = None  # the scoped path retries it and backs off
                if taken is not None:
                    await self._process(*taken)
                    return True
                # Nothing queued: get_request waits before it tries again.
                self._queue_empty = True
        return await self._handle_one_waiting(deadline)

    async def _handle_one_waiting(self, deadline: float) -> bool:
        """The slow path of :meth:`_handle_one`: wait for a request (at most
        until ``deadline``) in the accept scope that phase 1 cancels."""
        with trio.CancelScope(deadline=deadline) as accept_scope:
            # Only serve_forever's loop stops for shutdown(): handle_request,
            # as in the stdlib, leaves a pending shutdown for the next
            # serve_forever (_begin_shutdown cancels this scope only then).
            self._accept_scope = accept_scope
            if self._shutdown_requested and self._serving:
                accept_scope.cancel()
            try:
                await self._wait_for_capacity()
                request, client_address = await self._get_request_backing_off()
            finally:
                self._accept_scope = None
        if accept_scope.cancelled_caught:
            return False
        await self._process(request, client_address)
        return True

    async def _process(self, request: RequestT, client_address: AddressT) -> None:
        """Verify and process one taken request (Rules 1 and 2)."""
        self._received += 1
        self._active += 1
        try:
            if await self.verify_request(request, client_address):
                await self.process_request(request, client_address)
            else:
                await self.shutdown_request(request)
        except Exception:
            try:
                self._report_error(request, client_address)
            finally:  # also when handle_error raised a BaseException: Rule 1
                # As in the stdlib, shutdown_request is called again even if
                # the error came from it: only it knows whether it got as far
                # as closing the request.
                await self._shutdown_request_reporting(request, client_address)
        except BaseException as exc:
            try:
                if not isinstance(exc, BaseExceptionGroup):
                    raise
                # Exceptions mixed with Cancelled or KeyboardInterrupt: the
                # Exceptions are reported, the rest is re-raised.
                self._report_exceptions_in(exc, request, client_address)
            finally:
                await self._shutdown_request_reporting(request, client_address)
        finally:
            # Concurrent servers count their handler tasks themselves; here the
            # count covers a request processed in this task.
            self._active -= 1
            if self._drained is not None:
                self._request_ended()

    async def _get_request_backing_off(self) -> tuple[RequestT, AddressT]:
        while True:
            try:
                request = await self.get_request()
            except trio.ClosedResourceError:
                # server_close() from another task while we waited.
                if not self._serving:  # in handle_request
                    raise RuntimeError(
                        f"{self._display_name()}: the server socket was closed"
                    ) from None
                self._begin_shutdown(_DEFAULT)
                await trio.lowlevel.checkpoint()  # delivers phase 1's cancellation
                raise AssertionError("unreachable: the accept scope is cancelled") from None
            except OSError as exc:
                await self._accept_failed(exc)
            else:
                self._backoff = _BACKOFF_START
                return request

    async def _accept_failed(self, exc: OSError) -> None:
        delay = self._note_accept_error(exc)
        if delay is None:
            await trio.lowlevel.checkpoint()
        else:
            await trio.sleep(delay)

    def _note_accept_error(self, exc: OSError) -> float | None:
        """Rule 4: count and log an accept error; return how long to back
        off, or None to retry at once (the connection died before we took it)."""
        self._accept_errors += 1
        if _concerns_one_client(exc):
            # A TLS handshake that failed or a client that timed out inside a
            # get_request() that wraps or reads from the connection (the
            # stdlib's serve loop skips every OSError at once): the socket is
            # fine and the next client must not wait. Checked before errno:
            # an SSLError's errno is an SSL error code (8 is not ENOEXEC).
            SERVER_LOGGER.debug(
                "%s: get_request() failed for one client with %s: %s; serving on",
                self._display_name(),
                type(exc).__name__,
                exc,
            )
            return None
        code = exc.errno
        if code in _TRANSIENT_ERRNOS:
            return None
        delay = self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
        label = errno.errorcode.get(code, "?") if code is not None else type(exc).__name__
        reason = os.strerror(code) if code is not None else str(exc)
        SERVER_LOGGER.error(
            "%s: get_request() failed with %s (%s); %s; retrying in %.2f seconds",
            self._display_name(),
            label,
            reason,
            "out of a resource" if code in _CAPACITY_ERRNOS else "unexpected error",
            delay,
            exc_info=code not in _CAPACITY_ERRNOS,
        )
        return delay

    def _display_name(self) -> str:
        """The server's name in log messages."""
        return type(self).__name__

    async def _shutdown_request_reporting(
        self, request: RequestT, client_address: AddressT
    ) -> None:
        """Rule 1's last step: :meth:`shutdown_request`, shielded so that it
        runs in a cancelled scope too. An ``Exception`` from it (an override
        of ``shutdown_request`` or ``close_request``) goes to ``handle_error``
        like any hook's (Rule 2). Let through, it would replace the error or
        the cancellation being handled and, in a concurrent server, crash
        ``serve_forever`` and cancel every other request with it."""
        with trio.CancelScope(shield=True):
            try:
                await self.shutdown_request(request)
            except Exception:
                self._report_error(request, client_address)

    def _report_exceptions_in(
        self,
        group: BaseExceptionGroup[BaseException],
        request: RequestT,
        client_address: AddressT,
    ) -> None:
        """Rule 2 for a group that is not an ``ExceptionGroup`` (those are
        plain Exceptions, reported as they are): report its ``Exception``
        part, then re-raise the rest.

        A handler running a nursery that is cancelled (phase 3,
        ``daemon_requests``) raises such a group when a child's cleanup
        fails: ``BaseExceptionGroup([Cancelled, RuntimeError])``. Neither
        part may be lost. The ``RuntimeError`` is the handler's error, and it
        goes to ``handle_error`` as the ``ExceptionGroup`` of the failures
        (what the handler would have raised had it not been cancelled), with
        ``sys.exc_info()`` set to it; the cancellation (or a
        ``KeyboardInterrupt``...) then proceeds as if raised alone.
        Re-raising the whole group would instead let the ``RuntimeError``
        out of ``serve_forever`` once trio had absorbed the ``Cancelled``."""
        try:
            raise group
        except* Exception:
            self._report_error(request, client_address)

    def _report_error(self, request: RequestT, client_address: AddressT) -> None:
        """Rule 2: call handle_error; survive it raising."""
        self._errors += 1
        try:
            self.handle_error(request, client_address)
        except Exception:
            SERVER_LOGGER.exception(
                "%s.handle_error raised while reporting an error for %r",
                self._display_name(),
                client_address,
            )

    async def _run_service_actions(self, poll_interval: float, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                await trio.sleep(poll_interval)
                try:
                    await self.service_actions()
                except Exception:
                    SERVER_LOGGER.exception("%s.service_actions raised", self._display_name())
                except BaseExceptionGroup as group:
                    # Cancelled (the loop ended) mixed with Exceptions, as
                    # in _report_exceptions_in: log these, re-raise the rest.
                    try:
                        raise group
                    except* Exception:
                        SERVER_LOGGER.exception("%s.service_actions raised", self._display_name())


def _concerns_one_client(exc: OSError) -> bool:
    """Whether an accept error is about one client, not the listening socket
    (see _note_accept_error)."""
    if isinstance(exc, TimeoutError):
        return True
    ssl = sys.modules.get("ssl")  # no SSLError without the ssl module loaded
    return ssl is not None and isinstance(exc, ssl.SSLError)


def _check_grace_period(value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or value < 0
    ):
        raise ValueError(f"grace_period must be None or a number of seconds >= 0, not {value!r}")


def _raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Raise a lone exception from our own nursery as itself.

    The nursery holds only our tasks, so a group of one is an implementation
    detail: ``KeyboardInterrupt`` from a handler should reach the caller as
    ``KeyboardInterrupt``. Several distinct errors stay grouped."""
    leaves = _leaves(group)
    if len(leaves) == 1:
        raise leaves[0] from leaves[0].__cause__
    raise group


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out
