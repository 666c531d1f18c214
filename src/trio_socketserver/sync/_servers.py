"""The blocking servers: BaseServer, TCPServer, UDPServer, UnixStreamServer,
UnixDatagramServer, with the stdlib's names, attributes, defaults and hooks.

Each server is a *front* over an :class:`~._engine.Engine` (the async engine
of :mod:`trio_socketserver`). The hooks below are the stdlib's, blocking, in
the stdlib's order, and a subclass may override any of them; the engine
calls them from the loop it runs in the thread that called
``serve_forever``/``handle_request``.

Where it differs from the stdlib (all documented in docs/sync.rst):

* ``shutdown()`` takes effect at once (no ``poll_interval``), works from any
  thread, returns at once when called from inside a handler or
  ``service_actions`` (the stdlib deadlocks there) or when nothing is
  serving (the stdlib hangs), and can be called more than once.
* ``grace_period`` (new, default ``None``: wait as long as it takes, as the
  stdlib does): how long ``shutdown()``/``server_close()`` wait for in-flight
  handlers before unblocking the ones stuck in socket I/O by shutting their
  connections down.
* Accept errors (``EMFILE``...) are logged to ``trio_socketserver.server``
  and backed off instead of busy-looping silently.
* ``verify_request`` raising goes to ``handle_error`` and the request is
  shut down (the stdlib lets it escape ``serve_forever`` and leaks the
  connection).
* A datagram larger than ``max_packet_size`` is dropped and logged instead of
  being served truncated.
* Unix socket files: a stale file is replaced, a file that is not a socket is
  never deleted, and the file is removed by ``server_close()``.
* ``serve_forever(poll_interval)`` with 0 or less runs ``service_actions``
  every millisecond while idle (the stdlib spins); ``None`` works as there.
* The program's Python signal handlers are wrapped while the loop runs, so
  that one raising (``sys.exit()`` on SIGTERM) never lands inside trio's
  scheduler (``_signals.py``).
"""

from __future__ import annotations

import errno
import inspect
import math
import os
import socket
import sys
import threading
import traceback
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from .. import _unix_path
from .._addresses import check_ip_address, check_unix_address, family_for_ip_address
from .._connection_stream import _in_trio_run
from .._handlers import BaseRequestHandler as _AsyncBaseRequestHandler
from .._log import SERVER_LOGGER
from .._socket_server import bind_and_activate_or_close
from ._engine import Engine
from ._signals import program_handlers, run_deferring_signals

if TYPE_CHECKING:
    from typing import Self

__all__ = ["BaseServer", "TCPServer", "UDPServer", "UnixDatagramServer", "UnixStreamServer"]


class _NotWaitedFor:
    def set(self) -> None:
        pass


_NOT_WAITED_FOR: Any = _NotWaitedFor()


class _Run:
    """One serve_forever() or handle_request() call in progress."""

    __slots__ = ("serving", "stop_requested", "stopped", "thread", "token")

    def __init__(self, serving: bool) -> None:
        self.serving = serving
        self.stop_requested = False
        # Only serve_forever() is waited for (by shutdown()); handle_request()
        # is called in loops, so it does not pay for an Event.
        self.stopped = threading.Event() if serving else _NOT_WAITED_FOR
        self.thread: int | None = None
        self.token: trio.lowlevel.TrioToken | None = None


def _check_handler_class(handler_class: object, server_name: str) -> None:
    if not callable(handler_class):
        raise TypeError(
            f"{server_name} needs a request handler class (a socketserver.BaseRequestHandler "
            f"subclass), not {handler_class!r}"
        )
    if not isinstance(handler_class, type):
        return
    if issubclass(handler_class, _AsyncBaseRequestHandler):
        raise TypeError(
            f"{handler_class.__qualname__} is an async trio_socketserver handler; serve it with "
            f"trio_socketserver.{server_name.removeprefix('Threading')} (async), or derive it "
            "from socketserver.BaseRequestHandler with a blocking 'def handle'"
        )
    for hook in ("setup", "handle", "finish"):
        if inspect.iscoroutinefunction(getattr(handler_class, hook, None)):
            raise TypeError(
                f"{handler_class.__qualname__}.{hook} is 'async def', but {server_name} calls "
                "handlers synchronously: define it with 'def', or use trio_socketserver's "
                "async servers"
            )


class BaseServer:
    """Base class for the blocking servers (socketserver.BaseServer).

    Methods for the caller::

        serve_forever(poll_interval=0.5)
        shutdown()
        handle_request()   # if you do not use serve_forever()
        server_close()
        fileno()           # for select(), as in the stdlib

    Methods that may be overridden, called in this order::

        server_bind(), server_activate()        from the constructor
        get_request() -> (request, client_address)
        verify_request(request, client_address) -> bool
        process_request(request, client_address)
        finish_request(request, client_address) constructs the handler
        shutdown_request(request) -> close_request(request)
        handle_error(request, client_address)   in an except block
        handle_timeout(), service_actions()

    Class variables: ``timeout`` (for handle_request), ``grace_period``
    (new; see the module docstring).
    """

    #: Seconds :meth:`handle_request` waits for a request; ``None``: forever.
    timeout: float | None = None
    #: Seconds shutdown()/server_close() wait for in-flight handlers before
    #: unblocking the ones stuck in socket I/O; ``None`` waits however long
    #: they take (the stdlib's behaviour).
    grace_period: float | None = None

    #: Whether requests are sockets (stream servers) that a late shutdown can
    #: unblock by shutting them down.
    _requests_are_sockets: ClassVar[bool] = False
    #: Whether process_request hands the request to another thread or process
    #: (which then forgets it), rather than finishing it before returning.
    _hands_off_requests: ClassVar[bool] = False

    def __init__(self, server_address: Any, RequestHandlerClass: Any) -> None:
        _check_handler_class(RequestHandlerClass, type(self).__name__)
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        # Re-entrant: shutdown() may run in a signal handler (a SIGTERM
        # handler calling it is the usual way to stop a blocking server) that
        # interrupts this thread while it holds the lock.
        self._state_lock = threading.RLock()
        self._run: _Run | None = None
        self._stop_before_serving = False
        self._inflight: dict[int, Any] = {}
        self._inflight_lock = threading.Lock()
        self._engine = Engine(self)

    # -- the caller's API ------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until :meth:`shutdown` is called.

        Requests are never polled for: ``poll_interval`` is only how often
        :meth:`service_actions` runs while idle (it also runs after every
        request, as in the stdlib), and shutdown does not wait for it.
        ``None`` means never while idle (the stdlib then blocks in
        ``select()`` until a request comes); ``0`` or less, every
        millisecond (the stdlib spins, calling it without pause)."""
        interval = _service_interval(poll_interval)
        run = self._begin_run(serving=True, what="serve_forever()")
        if run is None:
            return  # shutdown() was called first
        try:
            self._before_run()
            trio.run(
                run_deferring_signals,
                program_handlers(),
                partial(self._engine.run_forever, interval),
            )
        finally:
            self._end_run(run)

    def handle_request(self) -> None:
        """Handle one request, waiting at most ``timeout`` seconds for it
        (the smaller of the socket's timeout and ``self.timeout``), then
        calling :meth:`handle_timeout`."""
        sock = getattr(self, "socket", None)
        timeout = sock.gettimeout() if sock is not None else None
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        run = self._begin_run(serving=False, what="handle_request()")
        assert run is not None
        try:
            self._before_run()
            handled = self._engine.handle_one_blocking(timeout)
            if handled is None:
                return trio.run(
                    run_deferring_signals,
                    program_handlers(),
                    partial(self._engine.run_one, timeout),
                )
            if not handled:
                # The stdlib returns what handle_timeout() returns.
                return self.handle_timeout()
            return None
        finally:
            self._end_run(run)

    def shutdown(self) -> None:
        """Stop serve_forever() and wait until it has returned.

        Takes effect at once, from any thread. From inside a handler or
        service_actions() of this server it starts the shutdown and returns
        (waiting there could never end). When nothing is serving it returns
        at once, and the next serve_forever() returns immediately (as in the
        stdlib, where the request stays pending). With ``grace_period`` set,
        a handler still running after that many seconds has its connection
        shut down, so that blocking socket I/O in it ends."""
        with self._state_lock:
            run = self._run
            if run is None or not run.serving:
                self._stop_before_serving = True
                return
            run.stop_requested = True
            thread, token = run.thread, run.token
        if thread == threading.get_ident():
            # A handler, service_actions or a signal handler of the serving
            # thread: start the shutdown (or, if trio is not running yet,
            # leave stop_requested for _loop_started) and return.
            if token is not None:
                self._engine.begin_shutdown_here()
            return
        if token is not None:
            self._engine.begin_shutdown_threadsafe(token)
        # else: the loop has not started yet; it sees stop_requested when it does.
        self._wait_stopped(run)

    def server_close(self) -> None:
        """Clean up the server. A running serve_forever() is shut down first."""
        self._stop_serving()

    def fileno(self) -> int:
        """The file descriptor to wait on (the stdlib's select() contract)."""
        raise NotImplementedError(f"{type(self).__name__} must implement fileno()")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        self.server_close()

    # -- overridable hooks (the stdlib's defaults) -------------------------------------------

    def server_activate(self) -> None:
        """Called by the constructor to activate the server."""

    def service_actions(self) -> None:
        """Called in the serve_forever() loop: after every request, and every
        ``poll_interval`` seconds while idle."""

    def handle_timeout(self) -> None:
        """Called when handle_request() times out."""

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Return True to process the request, False to refuse it."""
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Finish the request, then shut it down (mixins override this)."""
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Finish one request by instantiating RequestHandlerClass."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        """Called to shut down and close an individual request."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Called to clean up an individual request."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Handle an error gracefully: print a traceback to stderr and
        continue (the stdlib's output, byte for byte)."""
        print("-" * 40, file=sys.stderr)
        print(
            "Exception occurred during processing of request from",
            client_address,
            file=sys.stderr,
        )
        traceback.print_exc()
        print("-" * 40, file=sys.stderr)

    def get_request(self) -> tuple[Any, Any]:
        """Take a request: return ``(request, client_address)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_request()")

    # -- for the engine and the mixins ---------------------------------------------------

    def _ready_taker(self) -> Any:
        """The built-in get_request if it is in use (it never blocks; see
        the engine's Rule 1), else None."""
        return None

    #: True while the engine calls an overridden get_request() (which it
    #: does only once the socket is readable): see UDPServer._receive.
    _engine_taking: bool = False

    def _get_request_for_engine(self) -> tuple[Any, Any]:
        """``get_request()`` as the engine calls it."""
        self._engine_taking = True
        try:
            return self.get_request()
        finally:
            self._engine_taking = False

    def _may_close_after_interrupt(self, request: Any) -> bool:
        """Whether the serving thread may close ``request`` after a
        ``BaseException`` interrupted its processing (ThreadingMixIn: not if
        a handler thread has taken it)."""
        return True

    def _has_service_actions(self) -> bool:
        return type(self).service_actions is not BaseServer.service_actions

    def _has_capacity(self) -> bool:
        """Whether another request may be taken now (the mixins' caps)."""
        return True

    def _has_a_cap(self) -> bool:
        return type(self)._has_capacity is not BaseServer._has_capacity

    def _check_serving_config(self) -> None:
        """Raise ValueError for settings that cannot be served (mixins)."""

    async def _wait_for_capacity(self, freed: trio.Event) -> None:
        """Wait until ``freed`` is set or capacity may have changed."""
        await freed.wait()

    def _loop_started(self, engine: Engine) -> None:
        """Called in the loop thread once trio runs: publish where to reach it."""
        with self._state_lock:
            run = self._run
            assert run is not None
            run.thread = threading.get_ident()
            run.token = trio.lowlevel.current_trio_token()
            stop = run.stop_requested
        if stop:
            engine.begin_shutdown_here()

    def _begin_run(self, *, serving: bool, what: str) -> _Run | None:
        with self._state_lock:
            if self._run is not None:
                raise RuntimeError(
                    f"{what} called while this server is already running serve_forever() "
                    "or handle_request() (in another thread?)"
                )
            run = _Run(serving)
            # The thread is known before the run is published: shutdown()
            # from this thread (a signal handler) must never wait for it.
            run.thread = threading.get_ident()
            self._run = run
            if serving and self._stop_before_serving:
                self._stop_before_serving = False
                self._run = None
                return None
        return run

    def _end_run(self, run: _Run) -> None:
        try:
            self._after_run()
        finally:
            with self._state_lock:
                self._run = None
            run.stopped.set()

    def _before_run(self) -> None:
        """Called in the caller's thread before trio runs (ForkingMixIn)."""

    def _after_run(self) -> None:
        """Undo what _ready_taker set up for the run."""

    def _reset_locks_after_fork(self) -> None:
        """In a forked single-threaded copy: locks other threads may have
        held at the fork are replaced, and no run is in progress there."""
        self._state_lock = threading.RLock()
        self._inflight_lock = threading.Lock()
        self._run = None

    def _wait_stopped(self, run: _Run) -> None:
        grace = self.grace_period
        if grace is not None and not run.stopped.wait(grace):
            self._grace_expired("the request being handled still running")
        run.stopped.wait()

    def _stop_serving(self) -> None:
        """Shut down a running serve_forever (for server_close)."""
        with self._state_lock:
            run = self._run
        if run is not None and run.serving:
            BaseServer.shutdown(self)  # ours, even if a subclass overrides shutdown()

    def _remember(self, request: Any) -> None:
        """Track a request that is a socket (Rule 3 of the engine, which
        calls this only when ``_requests_are_sockets``). A single dict store
        is atomic; only removal needs the lock."""
        self._inflight[id(request)] = request

    #: Set (for good) once _unblock_requests has run: from then on _forget
    #: waits for any unblocking in progress before a request is closed.
    _unblocking: bool = False

    def _forget(self, request: Any) -> None:
        # Removal is atomic (only the request's own thread removes it); the
        # lock is needed only against _unblock_requests shutting the socket
        # down while the caller goes on to close it. The flag is set before
        # _unblock_requests copies the requests: so either that copy was
        # taken after this pop (and lacks the request), or the flag is seen
        # here and the lock waits for the unblocking to finish.
        if self._inflight.pop(id(request), None) is not None and self._unblocking:
            with self._inflight_lock:
                pass

    def _grace_expired(self, what: str) -> None:
        """The grace period ended with handlers running: say so, and unblock
        those stuck in socket I/O. (Handlers blocked elsewhere, in
        ``time.sleep`` or a CPU loop, cannot be interrupted; the caller goes
        on waiting for them, and this warning is how a stuck handler shows.)"""
        SERVER_LOGGER.warning(
            "%s: the grace period (%s s) ended with %s: shutting down their "
            "connections and waiting for them",
            type(self).__name__,
            self.grace_period,
            what,
        )
        self._unblock_requests()

    def _unblock_requests(self) -> None:
        """Shut down the connections of in-flight requests, so that handlers
        blocked reading see EOF and those blocked writing get an error.

        Done under the lock that ``_forget`` takes before a request is
        closed, so the descriptor cannot be closed and reused under us."""
        self._unblocking = True  # before the copy (see _forget)
        with self._inflight_lock:
            for request in list(self._inflight.values()):  # a copy: stores go on
                try:
                    request.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed or disconnected


class TCPServer(BaseServer):
    """A TCP server (socketserver.TCPServer): one request at a time.

    ``TCPServer(server_address, RequestHandlerClass, bind_and_activate=True)``.
    An IPv6 host (``"::1"``) selects ``AF_INET6`` when ``address_family`` is
    left at its default."""

    address_family: int = socket.AF_INET
    socket_type: int = socket.SOCK_STREAM
    request_queue_size: int = 5
    allow_reuse_address: bool = False
    allow_reuse_port: bool = False

    _requests_are_sockets: ClassVar[bool] = True
    _unix_file: _unix_path.BoundFile | None = None
    _nonblocking: bool = False

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
    ) -> None:
        server_address = self._check_address(server_address)
        BaseServer.__init__(self, server_address, RequestHandlerClass)
        self.socket = socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            bind_and_activate_or_close(self)

    def _check_address(self, server_address: Any) -> Any:
        name = type(self).__name__
        # The instance's: a subclass may set self.address_family before
        # calling __init__, as the stdlib allows.
        family = self.address_family
        if family == socket.AF_UNIX:
            return check_unix_address(server_address, name)
        if family in (socket.AF_INET, socket.AF_INET6):
            address = check_ip_address(server_address, name)
            chosen = family_for_ip_address(address, family)
            if chosen != family:
                self.address_family = chosen
            return address
        return server_address  # another family: the subclass knows its addresses

    def server_bind(self) -> None:
        """Bind the socket (``allow_reuse_address``, ``allow_reuse_port``) and
        store the real bound address in ``server_address``."""
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if (
            self.allow_reuse_port
            and hasattr(socket, "SO_REUSEPORT")
            and self.address_family in (socket.AF_INET, socket.AF_INET6)
        ):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if self.address_family == socket.AF_UNIX:
            self._unix_file = _unix_path.bind(self.socket, self.server_address)
        else:
            self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Listen, with a backlog of ``request_queue_size``."""
        self.socket.listen(self.request_queue_size)

    def server_close(self) -> None:
        """Stop serving if needed, close the socket, remove a Unix socket file
        this server created."""
        BaseServer.server_close(self)
        sock = self.socket
        if sock.fileno() != -1 and _in_trio_run():
            trio.lowlevel.notify_closing(sock)  # closing from inside a handler
        sock.close()
        if self._unix_file is not None:
            self._unix_file.remove()
            self._unix_file = None

    def fileno(self) -> int:
        """The socket's file descriptor (for select())."""
        return self.socket.fileno()

    def get_request(self) -> tuple[Any, Any]:
        """Accept a connection: ``(socket, client_address)``.

        While serving, the listening socket is non-blocking: the engine calls
        this only when a connection may be waiting, and treats
        ``BlockingIOError`` as "wait for the next one"."""
        return self.socket.accept()

    def shutdown_request(self, request: Any) -> None:
        """Send EOF (``SHUT_WR``), then close the connection."""
        self._forget(request)
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # some platforms raise ENOTCONN here
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Close the connection, for real. The stdlib's ``request.close()``
        leaves the descriptor open while a ``makefile()`` object of it is
        alive: a handler's ``rfile``/``wfile`` when ``finish()`` did not run
        (``setup()`` raised after creating them) and the exception, with its
        traceback, is kept by a logging handler or error reporter."""
        request.close()
        # makefile() objects still refer to it. A get_request() override may
        # return a wrapper with only close() (all the stdlib calls): then
        # close() was all there is to do.
        fileno = getattr(request, "fileno", None)
        if fileno is not None and fileno() != -1:
            os.close(request.detach())

    def _ready_taker(self) -> Any:
        if type(self).get_request is not TCPServer.get_request or self.socket.gettimeout():
            # An override, or a socket with a timeout (socket.setdefaulttimeout(),
            # or server.socket.settimeout() for handle_request()): CPython waits
            # up to that timeout inside accept() when no connection is queued,
            # so the engine calls get_request() only once the socket is readable.
            return None
        # Rule 1 of the engine: the built-in accept must never block. Only
        # the descriptor is made non-blocking; the socket object keeps its
        # timeout (None), so accepted connections are blocking sockets.
        os.set_blocking(self.socket.fileno(), False)
        self._nonblocking = True
        return self.get_request

    def _after_run(self) -> None:
        # Between runs the socket is blocking again, as user code expects.
        if self._nonblocking:
            self._nonblocking = False
            if self.socket.fileno() != -1:
                os.set_blocking(self.socket.fileno(), True)


#: serve_forever(poll_interval <= 0): how often service_actions() runs while
#: idle. The stdlib's select(0) loop spins, calling it as often as it can;
#: shutdown() needs no polling here, so a program that passed 0 for a quick
#: shutdown() would only burn a core.
_MIN_SERVICE_INTERVAL = 0.001


def _service_interval(poll_interval: object) -> float:
    """The engine's service_actions() interval for serve_forever(poll_interval),
    which takes what the stdlib's select() takes: a number of seconds or None."""
    if poll_interval is None:
        return math.inf
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)):
        raise TypeError(f"poll_interval must be a number of seconds or None, not {poll_interval!r}")
    if math.isnan(poll_interval):
        raise ValueError("poll_interval must be a number of seconds or None, not nan")
    return max(float(poll_interval), _MIN_SERVICE_INTERVAL)


class UDPServer(TCPServer):
    """A UDP server (socketserver.UDPServer): one datagram at a time.

    ``request`` is ``(data, socket)``; the socket stays blocking for handlers
    (``DatagramRequestHandler`` replies with ``socket.sendto``)."""

    allow_reuse_address: bool = False
    allow_reuse_port: bool = False
    socket_type: int = socket.SOCK_DGRAM
    max_packet_size: int = 8192
    #: Datagrams dropped because they were larger than max_packet_size.
    truncated_datagrams: int = 0

    _requests_are_sockets: ClassVar[bool] = False

    def get_request(self) -> tuple[Any, Any]:
        """Receive a datagram: ``((data, socket), client_address)``.

        A datagram larger than ``max_packet_size`` is dropped and logged (the
        stdlib would serve its truncated start as a whole request)."""
        return self._receive(0)

    def _receive(self, flags: int) -> tuple[Any, Any]:
        sock = self.socket
        limit = self.max_packet_size
        while True:
            data, client_address = sock.recvfrom(limit + 1, flags)
            if len(data) <= limit:
                return (data, sock), client_address
            self.truncated_datagrams += 1
            SERVER_LOGGER.warning(
                "%s: dropped a datagram from %r larger than max_packet_size (%d bytes)",
                type(self).__name__,
                client_address,
                limit,
            )
            if self._engine_taking:
                # The engine called us because one datagram was ready: do not
                # block its loop for the next (Rule 1; BlockingIOError means
                # "wait again" there). Called by anyone else, we block for
                # the next datagram, as the stdlib's get_request does.
                if sock.gettimeout():
                    # MSG_DONTWAIT does not stop CPython waiting for the
                    # socket's timeout first.
                    raise BlockingIOError(errno.EAGAIN, "no datagram is queued")
                flags |= socket.MSG_DONTWAIT

    def _take_ready(self) -> tuple[Any, Any]:
        return self._receive(socket.MSG_DONTWAIT)

    def _ready_taker(self) -> Any:
        if type(self).get_request is not UDPServer.get_request or self.socket.gettimeout():
            # As for TCPServer: with a timeout, recvfrom(MSG_DONTWAIT) waits
            # for it first; the engine waits for readability instead.
            return None
        return self._take_ready

    def server_activate(self) -> None:
        """Nothing to do for a datagram socket."""

    def shutdown_request(self, request: Any) -> None:
        """Nothing to shut down for a datagram."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Nothing to close for a datagram."""


class UnixStreamServer(TCPServer):
    """A Unix stream socket server: ``UnixStreamServer(path, Handler)``."""

    address_family: int = socket.AF_UNIX


class UnixDatagramServer(UDPServer):
    """A Unix datagram socket server: ``UnixDatagramServer(path, Handler)``."""

    address_family: int = socket.AF_UNIX
