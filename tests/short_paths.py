"""Temporary directories short enough to hold Unix socket paths.

A Unix socket's path must fit in ``sockaddr_un.sun_path``: 108 bytes on
Linux, 104 on macOS, terminating NUL included. ``$TMPDIR`` can be long
enough (a deep CI workspace, macOS's ``/var/folders/...``) that a socket in
a directory made there does not fit, and every Unix-socket test would fail
with ``AF_UNIX path too long``: so a directory for sockets is made under
``$TMPDIR`` only when there is room, else under ``/tmp``.
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["has_room_for_sockets", "short_temporary_directory", "socket_base_dir"]

#: Bytes of a socket path the tests allow themselves (sun_path less a margin).
_LIMIT = 100
#: What the tests put under a temporary base directory: a prefix and 8
#: random characters, a subdirectory or two and a socket file name.
_ROOM_UNDER_BASE = 60


def has_room_for_sockets(directory: str | os.PathLike[str], room: int) -> bool:
    """Whether ``room`` more bytes of path under ``directory`` still fit."""
    return len(os.fsencode(directory)) + room <= _LIMIT


def socket_base_dir() -> str:
    """Where to make directories that will hold Unix sockets."""
    base = tempfile.gettempdir()
    return base if has_room_for_sockets(base, _ROOM_UNDER_BASE) else "/tmp"


def short_temporary_directory(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """``tempfile.TemporaryDirectory(prefix=prefix)``, short enough for sockets."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir=socket_base_dir())
