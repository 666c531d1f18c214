"""ForkingMixIn: each request in its own process, without forking a
multi-threaded process or a running trio loop.

The stdlib forks in ``process_request``, in the serve_forever loop. Here
that loop is a running trio loop (its epoll descriptor, wake-up socket and
signal wake-up descriptor would be inherited mid-use), and a threading
server's process has threads whose locks a child would inherit held; on
Python 3.12+ ``os.fork()`` warns about the second for that reason.

Theory of operation
-------------------
A *fork helper* is forked once, when the server is activated (normally in its
constructor, before the program starts threads or serves): a small,
single-threaded process that holds a copy of the server and never runs trio.
For each request the loop sends the helper the accepted connection (its file
descriptor, over a ``SOCK_SEQPACKET`` socket pair with ``SCM_RIGHTS``) or the
datagram, and the helper forks a child that runs exactly the stdlib's child
code: ``finish_request``, ``handle_error`` on an ``Exception``,
``shutdown_request``, ``os._exit``. The helper reports each child's pid and
exit status back; ``active_children`` is the set of running pids, as in the
stdlib, and ``max_children`` caps it (the server stops accepting at the cap:
backpressure, not a blocking ``waitpid`` in the loop).

Limits (documented): a child is a copy of the server *as it was when the
helper was forked*; attributes set on the server object afterwards, in the
parent, are not seen by children. If the process already has threads when
the helper is forked, a :class:`RuntimeWarning` says so, because that fork
has the hazard this design exists to avoid.

Shutdown: ``server_close()`` waits for the children (``block_on_close``),
sends ``SIGTERM`` to those still running after ``grace_period`` seconds, and
then reaps the helper: no child process outlives it. With
``block_on_close = False`` it does not wait, as in the stdlib (the children
finish on their own and are reaped by init).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import select
import signal
import socket
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from .._log import SERVER_LOGGER
from ._servers import BaseServer, TCPServer, UDPServer, UnixDatagramServer, UnixStreamServer

__all__ = [
    "ForkingMixIn",
    "ForkingTCPServer",
    "ForkingUDPServer",
    "ForkingUnixDatagramServer",
    "ForkingUnixStreamServer",
]

if TYPE_CHECKING:
    _MixinBase = BaseServer
else:
    _MixinBase = object

_MAX_MESSAGE = 1 << 17  # a datagram (max_packet_size) plus its address, pickled


class _Helper:
    """The parent's side of a fork helper."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.exited = False
        #: Exit statuses reported by the helper: pid -> waitpid status.
        self.statuses: dict[int, int] = {}

    def send(self, message: tuple[Any, ...], fds: list[int] | None = None) -> None:
        data = pickle.dumps(message)
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)

    def receive(self, *, block: bool) -> tuple[Any, ...] | None:
        """The next report from the helper; None if there is none (or EOF)."""
        try:
            data = self.sock.recv(_MAX_MESSAGE, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        if not data:
            self.exited = True
            return None
        message: tuple[Any, ...] = pickle.loads(data)
        return message


class ForkingMixIn(_MixinBase):
    """Mix-in class to handle each request in a new process.

    List it first among the bases: ``class S(ForkingMixIn, TCPServer)``."""

    timeout: float | None = 300
    active_children: set[int] | None = None
    max_children: int = 40
    #: server_close() waits for the children (see the module docstring).
    block_on_close: bool = True

    _hands_off_requests: ClassVar[bool] = True
    _helper: _Helper | None = None

    # -- the helper's lifetime ---------------------------------------------------------

    def server_activate(self) -> None:
        """Activate, then fork the helper (see the module docstring)."""
        super().server_activate()
        self._start_helper()

    def _before_run(self) -> None:
        self._start_helper()  # if server_activate was overridden without super()
        super()._before_run()

    def _start_helper(self) -> None:
        if self._helper is not None:
            return
        if threading.active_count() > 1:
            warnings.warn(
                f"{type(self).__name__}: forking the fork helper in a process that has "
                f"{threading.active_count()} threads; create the server before starting "
                "threads to avoid inheriting their locks",
                RuntimeWarning,
                stacklevel=3,
            )
        parent_end, helper_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # the helper
            status = 1
            try:
                parent_end.close()
                _Forker(self, helper_end).run()
                status = 0
            finally:
                os._exit(status)
        helper_end.close()
        self._helper = _Helper(pid, parent_end)

    # -- the stdlib's API ------------------------------------------------------------------

    def collect_children(self, *, blocking: bool = False) -> None:
        """Take note of children that exited; with ``blocking``, wait until
        all have."""
        helper = self._helper
        if helper is None or self.active_children is None:
            return
        while self.active_children:
            report = helper.receive(block=blocking)
            if report is None:
                if helper.exited:
                    self.active_children.clear()  # the helper reaped them all
                return
            self._note(report)

    def handle_timeout(self) -> None:
        """Wait for zombies after self.timeout seconds of inactivity."""
        self.collect_children()

    def service_actions(self) -> None:
        """Collect the children that have exited."""
        self.collect_children()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Have the helper fork a child for the request."""
        helper = self._helper
        if helper is None:
            raise RuntimeError(f"{type(self).__name__} has no fork helper: it was not activated")
        if isinstance(request, tuple):  # a datagram: (data, socket)
            helper.send(("datagram", request[0], client_address))
        elif type(request) is socket.socket:
            # Only the descriptor crosses to the child, which rebuilds the
            # socket: its timeout goes along (with a timeout the descriptor
            # is non-blocking, which a socket without one would misread).
            helper.send(("stream", client_address, request.gettimeout()), [request.fileno()])
        else:
            raise TypeError(
                f"{type(self).__name__} can hand a child only a plain socket.socket (its "
                f"descriptor), not the {type(request).__module__}.{type(request).__qualname__} "
                "that get_request() returned: what it holds beyond the descriptor (an "
                "ssl.SSLSocket's TLS session, a wrapper's state) cannot cross to the child. "
                "Wrap the connection in the handler (in setup()), or use ThreadingMixIn."
            )
        while True:
            report = helper.receive(block=True)
            if report is None:
                raise RuntimeError(f"{type(self).__name__}: the fork helper exited")
            if report[0] == "forked":
                if self.active_children is None:
                    self.active_children = set()
                self.active_children.add(report[1])
                break
            if report[0] == "fork-failed":
                raise OSError(report[1], f"fork failed: {os.strerror(report[1])}")
            self._note(report)
        self._forget(request)
        self.close_request(request)  # the child has its own copy

    def _note(self, report: tuple[Any, ...]) -> None:
        if report[0] == "exited" and self.active_children is not None:
            self.active_children.discard(report[1])

    # -- the engine's cap --------------------------------------------------------------

    def _has_capacity(self) -> bool:
        children = self.active_children
        if children is None or len(children) < self.max_children:
            return True
        self.collect_children()
        return len(children) < self.max_children

    async def _wait_for_capacity(self, freed: trio.Event) -> None:
        helper = self._helper
        assert helper is not None
        await trio.lowlevel.wait_readable(helper.sock)
        self.collect_children()

    def _check_serving_config(self) -> None:
        cap: object = self.max_children
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"max_children must be an int >= 1, not {cap!r}")
        super()._check_serving_config()

    # -- closing -------------------------------------------------------------------------

    def server_close(self) -> None:
        """Stop serving, close the socket, then wait for the children
        (block_on_close) and reap the helper."""
        super().server_close()
        helper = self._helper
        if helper is None:
            return
        self._helper = None
        wait = bool(self.block_on_close)
        try:
            helper.send(("close", wait))
            if wait:
                self._wait_for_helper(helper)
        finally:
            helper.sock.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(helper.pid, 0)
            if self.active_children is not None and not wait:
                self.active_children.clear()

    def _wait_for_helper(self, helper: _Helper) -> None:
        grace = self.grace_period
        deadline = None if grace is None else time.monotonic() + grace
        try:
            while not helper.exited:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([helper.sock], [], [], timeout)
                if not ready:
                    SERVER_LOGGER.warning(
                        "%s: the grace period (%s s) ended with %d child process(es) still "
                        "running: sending them SIGTERM and waiting for them",
                        type(self).__name__,
                        grace,
                        len(self.active_children or ()),
                    )
                    self._terminate_children()
                    deadline = None
                    continue
                report = helper.receive(block=False)
                if report is not None:
                    self._note(report)
        except KeyboardInterrupt:
            self._terminate_children()
            raise
        if self.active_children is not None:
            self.active_children.clear()

    def _terminate_children(self) -> None:
        for pid in list(self.active_children or ()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


class _Forker:
    """The helper process: forks a child per request, reports exits."""

    def __init__(self, server: ForkingMixIn, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.children: set[int] = set()

    def run(self) -> None:
        server = self.server
        # The parent's locks may have been held by its other threads at the
        # fork; this process has one thread, so fresh locks are correct.
        server._reset_locks_after_fork()
        if getattr(server, "socket_type", None) == socket.SOCK_STREAM:
            # Children get their connection, not the listening socket: once
            # the parent closes it, new clients are refused, not queued here.
            server.socket.close()  # type: ignore[attr-defined]
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    continue
                if not self.serve_one():
                    return
            self.reap(block=False)

    def serve_one(self) -> bool:
        """Handle one message from the parent; False when it is time to exit."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_MESSAGE, 1)
        except InterruptedError:
            return True
        if not data:
            self.reap(block=True)  # the parent died: finish, then go
            return False
        message = pickle.loads(data)
        kind = message[0]
        if kind == "close":
            if message[1]:
                self.reap(block=True)
            return False
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.report(("fork-failed", exc.errno or errno.EAGAIN))
            return True
        if pid == 0:
            self.child(kind, message, fds)  # never returns
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        self.report(("forked", pid))
        return True

    def child(self, kind: str, message: tuple[Any, ...], fds: list[int]) -> None:
        """The stdlib's ForkingMixIn child, exactly."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.sock.close()
            server = self.server
            if kind == "stream":
                request: Any = socket.socket(fileno=fds[0])
                request.settimeout(message[2])
                client_address = message[1]
            else:
                request = (message[1], server.socket)  # type: ignore[attr-defined]
                client_address = message[2]
            try:
                server.finish_request(request, client_address)
                status = 0
            except Exception:
                server.handle_error(request, client_address)
            finally:
                server.shutdown_request(request)
        finally:
            os._exit(status)

    def reap(self, *, block: bool) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            self.children.discard(pid)
            self.report(("exited", pid, status))

    def report(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):  # the parent may be gone
            self.sock.sendall(pickle.dumps(message))


class ForkingTCPServer(ForkingMixIn, TCPServer):
    """A TCP server handling each connection in its own process."""


class ForkingUDPServer(ForkingMixIn, UDPServer):
    """A UDP server handling each datagram in its own process."""


class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
    """A Unix stream server handling each connection in its own process."""


class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
    """A Unix datagram server handling each datagram in its own process."""
