"""Unix socket files: bind safely, remove only what we created.

The stdlib binds a Unix socket path as given: if a previous server crashed
and left its socket file behind, ``bind`` fails with ``EADDRINUSE`` and the
user deletes the file by hand (often with a blind ``os.unlink`` that would
also delete a regular file put there by mistake). The rules here:

Rule 1: a file that is not a socket is never deleted: binding fails with
    :exc:`FileExistsError` naming the path.
Rule 2: a socket file nobody is listening on (``connect`` is refused) is
    stale: it is replaced.
Rule 3: a socket file with a live server behind it is left alone: binding
    fails with ``EADDRINUSE``.
Rule 4: on close, the file is removed only if it is still the one this
    server created (same device and inode), so a newer server's file at the
    same path survives an older server's close; and only by the process
    that bound it, so a forked child closing its copy of the server leaves
    the parent's file alone.

Abstract-namespace addresses (Linux, a leading NUL) have no file: none of
this applies to them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat

import attrs

__all__ = ["BoundFile", "bind"]


@attrs.frozen
class BoundFile:
    """The socket file a server bound, identified by device and inode."""

    path: str | bytes
    device: int
    inode: int
    owner_pid: int = attrs.field(factory=os.getpid)

    def remove(self) -> None:
        """Remove the file if it is still ours (Rule 4)."""
        if os.getpid() != self.owner_pid:
            return
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == (self.device, self.inode) and stat.S_ISSOCK(st.st_mode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def _is_abstract(path: str | bytes) -> bool:
    return path[:1] in ("\0", b"\0")


def _clear_stale(path: str | bytes, sock_type: int) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(
            errno.EEXIST,
            f"{os.fsdecode(path)!r} exists and is not a socket; refusing to replace it "
            "(remove it yourself or choose another path)",
            os.fsdecode(path),
        )
    probe = socket.socket(socket.AF_UNIX, sock_type)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # Rule 2
        return
    except OSError:
        return  # cannot tell (permissions...): let bind() report it
    finally:
        probe.close()
    raise OSError(
        errno.EADDRINUSE,
        f"another server is listening on {os.fsdecode(path)!r}",
        os.fsdecode(path),
    )


def bind(sock: socket.socket, path: str | bytes) -> BoundFile | None:
    """Bind ``sock`` to ``path`` following the module's rules."""
    if _is_abstract(path):
        sock.bind(path)
        return None
    _clear_stale(path, sock.type)
    sock.bind(path)
    st = os.lstat(path)
    return BoundFile(path, st.st_dev, st.st_ino)
