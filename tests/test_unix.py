"""Unix stream servers and the socket-file rules (_unix_path)."""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_socketserver as ts

from .conftest import receive_all, unix_connect


class Upper(ts.StreamRequestHandler[Any, Any]):
    async def handle(self) -> None:
        line = await self.rfile.readline()
        await self.wfile.write(line.upper())


@pytest.mark.parametrize("server_class", [ts.UnixStreamServer, ts.ConcurrentUnixStreamServer])
async def test_unix_stream_echo_and_file_removed(
    server_class: type[ts.UnixStreamServer],
    sock_path: str,
    nursery: trio.Nursery,
    no_fd_leak: None,
) -> None:
    with server_class(sock_path, Upper) as server:
        assert server.server_address == sock_path
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
        await nursery.start(server.serve_forever)
        stream = await unix_connect(sock_path)
        async with stream:
            await stream.send_all(b"hello unix\n")
            assert await receive_all(stream) == b"HELLO UNIX\n"
        await server.shutdown()
    assert not os.path.exists(sock_path), "server_close() must remove the socket file"


def test_pathlike_address(short_tmp_path: Path) -> None:
    path = short_tmp_path / "p.sock"
    with ts.UnixStreamServer(path, Upper) as server:
        assert server.server_address == str(path)
    assert not path.exists()


def test_stale_socket_file_is_replaced(sock_path: str) -> None:
    # A server that died without cleaning up leaves its socket file behind.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(sock_path)
    dead.close()
    assert os.path.exists(sock_path)
    with ts.UnixStreamServer(sock_path, Upper):
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    assert not os.path.exists(sock_path)


def test_live_server_socket_is_not_stolen(sock_path: str) -> None:
    with ts.UnixStreamServer(sock_path, Upper) as first:
        with pytest.raises(OSError, match="another server is listening") as info:
            ts.UnixStreamServer(sock_path, Upper)
        assert info.value.errno == errno.EADDRINUSE
        assert "another server is listening" in str(info.value)
        assert first.fileno() >= 0
        assert os.path.exists(sock_path)  # still the first server's


def test_non_socket_file_is_never_deleted(sock_path: str) -> None:
    Path(sock_path).write_text("precious")
    with pytest.raises(FileExistsError, match="not a socket"):
        ts.UnixStreamServer(sock_path, Upper)
    assert Path(sock_path).read_text() == "precious"


def test_close_does_not_remove_a_newer_servers_file(sock_path: str) -> None:
    old = ts.UnixStreamServer(sock_path, Upper)
    # Someone removes the file and a new server binds the same path...
    os.unlink(sock_path)
    with ts.UnixStreamServer(sock_path, Upper):
        old.server_close()  # ...the old server's close must leave it alone.
        assert os.path.exists(sock_path)


def test_abstract_namespace_address() -> None:
    name = b"\0trio-socketserver-test-%d" % os.getpid()
    with ts.UnixStreamServer(name, Upper) as server:
        assert server.server_address == name


async def test_unix_client_address_is_a_path(sock_path: str, nursery: trio.Nursery) -> None:
    seen: list[object] = []

    class Record(ts.UnixStreamRequestHandler):
        async def handle(self) -> None:
            seen.append(self.client_address)

    with ts.UnixStreamServer(sock_path, Record) as server:
        await nursery.start(server.serve_forever)
        stream = await unix_connect(sock_path)
        async with stream:
            assert await receive_all(stream) == b""
        await server.shutdown()
    assert seen == [""]  # an unbound client has an empty address


class Quiet(ts.StreamRequestHandler[Any, Any]):
    async def handle(self) -> None:
        pass


@pytest.mark.parametrize("server_class", [ts.UnixStreamServer, ts.UnixDatagramServer])
def test_too_long_path_names_the_path_and_the_limit(
    server_class: Any, short_tmp_path: Path, no_fd_leak: None
) -> None:
    path = str(short_tmp_path / ("a" * 120))
    with pytest.raises(OSError, match=r"is \d+ bytes, longer than the 108-byte limit") as info:
        server_class(path, ts.BaseRequestHandler)
    assert info.value.errno == errno.ENAMETOOLONG
    assert info.value.filename == path
    assert path in str(info.value)


@pytest.mark.parametrize("server_class", [ts.UnixStreamServer, ts.UnixDatagramServer])
def test_missing_directory_names_the_path(
    server_class: Any, short_tmp_path: Path, no_fd_leak: None
) -> None:
    path = str(short_tmp_path / "nope" / "s.sock")
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        server_class(path, ts.BaseRequestHandler)
    assert info.value.filename == path
    assert repr(str(short_tmp_path / "nope")) in str(info.value)


def test_relative_path_file_removed_after_chdir(
    short_tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    monkeypatch.chdir(short_tmp_path)
    server = ts.UnixStreamServer("rel.sock", Quiet)
    assert stat.S_ISSOCK(os.lstat(short_tmp_path / "rel.sock").st_mode)
    monkeypatch.chdir("/")
    server.server_close()
    assert not (short_tmp_path / "rel.sock").exists()
