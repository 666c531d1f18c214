"""Helpers for the sync adapter's tests: servers in background threads and
blocking stdlib clients, with leak accounting for threads and processes."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Seconds any blocking client operation may take before the test fails.
CLIENT_TIMEOUT = 10.0


@contextmanager
def serving(server: Any, poll_interval: float = 0.5) -> Iterator[threading.Thread]:
    """Run ``server.serve_forever`` in a thread; shut down and close after."""
    thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        server.shutdown()
        thread.join(CLIENT_TIMEOUT)
        assert not thread.is_alive(), "serve_forever did not return after shutdown()"
        server.server_close()


def client_family(address: Any) -> int:
    if isinstance(address, (str, bytes)):
        return socket.AF_UNIX
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


def stream_roundtrip(address: Any, payload: bytes) -> bytes:
    """Connect, send, half-close, read to EOF."""
    with socket.socket(client_family(address), socket.SOCK_STREAM) as s:
        s.settimeout(CLIENT_TIMEOUT)
        s.connect(address if isinstance(address, (str, bytes)) else address[:2])
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return read_to_eof(s)


def read_to_eof(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def datagram_roundtrip(address: Any, payload: bytes, bind_path: str | None = None) -> bytes:
    """Send one datagram, return the reply."""
    with socket.socket(client_family(address), socket.SOCK_DGRAM) as s:
        s.settimeout(CLIENT_TIMEOUT)
        if bind_path is not None:
            s.bind(bind_path)
        try:
            s.sendto(payload, address if isinstance(address, (str, bytes)) else address[:2])
            return s.recv(65536)
        finally:
            if bind_path is not None:
                os.unlink(bind_path)


def child_pids() -> set[int]:
    """Child processes of this process, unreaped ones (zombies) included."""
    return set(child_states())


def child_states() -> dict[int, str]:
    """This process's children and their state letters from /proc (``Z``
    for a zombie: exited, not yet reaped)."""
    me = os.getpid()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found[int(entry)] = fields[0]
    return found
