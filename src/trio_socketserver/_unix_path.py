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
import sys

import attrs

__all__ = ["BoundFile", "bind"]


@attrs.frozen
class BoundFile:
    """The socket file a server bound, identified by device and inode.
    ``path`` is absolute (a relative one was resolved when it was bound)."""

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


#: sizeof(sun_path): the longest Unix socket address the socket module
#: binds (Linux 108 bytes, the BSDs and macOS 104).
PATH_LIMIT = 108 if sys.platform.startswith("linux") else 104


def _bind(sock: socket.socket, path: str | bytes) -> None:
    """``sock.bind(path)``, with errors that name the path and what to do
    (the socket module's name neither: "AF_UNIX path too long", "[Errno 2] No
    such file or directory"). The exception types stay the same."""
    try:
        sock.bind(path)
    except OSError as exc:
        shown = os.fsdecode(path)
        size = len(os.fsencode(path))
        if exc.errno is None and size > PATH_LIMIT:
            # Raised by the socket module before any system call, without an
            # errno; ENAMETOOLONG is what the kernel would have said.
            raise OSError(
                errno.ENAMETOOLONG,
                f"Unix socket path {shown!r} is {size} bytes, longer than the "
                f"{PATH_LIMIT}-byte limit of AF_UNIX addresses; choose a shorter path "
                "(a relative path counts from the working directory)",
                shown,
            ) from exc
        parent = os.path.dirname(shown) or "."
        if exc.errno == errno.ENOENT and not os.path.isdir(parent):
            raise FileNotFoundError(
                errno.ENOENT,
                f"cannot bind Unix socket {shown!r}: directory {parent!r} does not exist "
                "(create it first)",
                shown,
            ) from exc
        if exc.errno is not None and exc.filename is None:
            raise type(exc)(
                exc.errno, f"cannot bind Unix socket {shown!r}: {exc.strerror}", shown
            ) from exc
        raise


def bind(sock: socket.socket, path: str | bytes) -> BoundFile | None:
    """Bind ``sock`` to ``path`` following the module's rules."""
    if _is_abstract(path):
        sock.bind(path)
        return None
    # Removal must find this file again even if the working directory
    # changes before the server closes: remember a relative path as absolute
    # (resolved against the directory it was bound in, i.e. now).
    try:
        remembered = os.path.abspath(path)
    except OSError:  # the working directory was deleted: only the name is left
        remembered = path
    _clear_stale(path, sock.type)
    _bind(sock, path)
    st = os.lstat(path)
    return BoundFile(remembered, st.st_dev, st.st_ino)
