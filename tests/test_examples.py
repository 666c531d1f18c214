"""Run every program in docs/examples/ as a user would, against a real client.

Each server example is started as a subprocess on a free port (or a socket
path under tmp_path); the test waits for its "listening on ..." line, talks
to it over a real socket, checks the exact reply, then sends SIGINT and
checks that the server shuts down by itself with exit status 0.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

import trio_socketserver

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"

#: Seconds a server gets to start (print its address) and to exit after SIGINT.
STARTUP_DEADLINE = 20.0
EXIT_DEADLINE = 10.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and Unix sockets")


class _Output:
    """Collects a pipe's bytes and hands them out line by line."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._eof = False

    async def readline(self) -> bytes:
        """The next line (with its newline); what is left (maybe b"") at EOF."""
        while (end := self._buffer.find(b"\n")) < 0 and not self._eof:
            data = await self._stream.receive_some()
            if not data:
                self._eof = True
            self._buffer += data
        cut = end + 1 if end >= 0 else len(self._buffer)
        line = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return line

    async def read_rest(self) -> bytes:
        """Everything up to EOF."""
        while not self._eof:
            data = await self._stream.receive_some()
            if not data:
                self._eof = True
            self._buffer += data
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


@attrs.frozen
class RunningExample:
    process: trio.Process
    #: What followed "listening on " in the first line: "tcp://127.0.0.1:PORT"...
    address: str
    stdout: _Output
    stderr: _Output

    @property
    def port(self) -> int:
        match = re.fullmatch(r"(?:tcp|udp)://127\.0\.0\.1:(\d+)", self.address)
        assert match is not None, self.address
        return int(match.group(1))

    async def interrupt(self, signum: signal.Signals = signal.SIGINT) -> tuple[str, str]:
        """Send SIGINT (or signum); assert a clean exit within EXIT_DEADLINE.
        Returns the rest of stdout and all of stderr."""
        self.process.send_signal(signum)
        with trio.fail_after(EXIT_DEADLINE):
            # Drain both pipes while waiting so that the server never blocks
            # writing to them.
            out, err = await _read_both(self.stdout, self.stderr)
            returncode = await self.process.wait()
        assert returncode == 0, f"exit status {returncode}; stderr:\n{err}"
        assert "Traceback" not in err, err
        return out, err


async def _read_both(stdout: _Output, stderr: _Output) -> tuple[str, str]:
    results: dict[str, bytes] = {}

    async def collect(name: str, output: _Output) -> None:
        results[name] = await output.read_rest()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect, "out", stdout)
        nursery.start_soon(collect, "err", stderr)
    return results["out"].decode(), results["err"].decode()


@asynccontextmanager
async def start_program(
    argv: list[str],
    *,
    env: dict[str, str],
    kill: Callable[[trio.Process], object],
    new_session: bool = False,
) -> AsyncIterator[tuple[trio.Process, str, _Output, _Output]]:
    """Start a server program and wait for its "listening on" line.

    Yields the process, what followed "listening on ", and its outputs;
    afterwards ``kill`` ends whatever is left of it. Shared with
    test_sync_examples."""
    process = await trio.lowlevel.open_process(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=new_session,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stdout, stderr = _Output(process.stdout), _Output(process.stderr)
    try:
        with trio.fail_after(STARTUP_DEADLINE):
            line = (await stdout.readline()).decode()
        if not line.startswith("listening on "):
            with trio.fail_after(EXIT_DEADLINE):
                _, err = await _read_both(stdout, stderr)
            pytest.fail(f"{argv[1]} printed {line!r} instead of its address; stderr:\n{err}")
        yield process, line.removeprefix("listening on ").strip(), stdout, stderr
    finally:
        with trio.CancelScope(shield=True):
            kill(process)
            await process.wait()
            await process.stdout.aclose()
            await process.stderr.aclose()


def _kill_if_running(process: trio.Process) -> None:
    if process.returncode is None:
        process.kill()


@asynccontextmanager
async def running_example(script: str, *args: str) -> AsyncIterator[RunningExample]:
    """Start docs/examples/<script> and wait for its "listening on" line."""
    async with start_program(
        [sys.executable, str(EXAMPLES / script), *args],
        env={**os.environ, "PYTHONWARNINGS": "error"},
        kill=_kill_if_running,
    ) as (process, address, stdout, stderr):
        yield RunningExample(process, address, stdout, stderr)


async def _receive_until_eof(stream: trio.abc.ReceiveStream) -> bytes:
    received = bytearray()
    while data := await stream.receive_some():
        received += data
    return bytes(received)


# -- TCP -----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_tcp_upper_echo(signum: signal.Signals) -> None:
    async with running_example("tcp_upper_echo.py", "--port", "0") as server:
        assert server.port != 0
        with trio.fail_after(EXIT_DEADLINE):
            async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
                await stream.send_all(b"hello world\n")
                reply = await _receive_until_eof(stream)
        assert reply == b"HELLO WORLD"
        out, err = await server.interrupt(signum)
    assert f"{signum.name} received: shutting down" in err
    assert "127.0.0.1 wrote: b'hello world'" in out


async def test_tcp_upper_echo_stream() -> None:
    async with running_example("tcp_upper_echo_stream.py", "--port", "0") as server:
        with trio.fail_after(EXIT_DEADLINE):
            async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
                # Two writes for one line: readline() must wait for the newline.
                await stream.send_all(b"hel")
                await stream.send_all(b"lo\nignored after the first line\n")
                reply = await _receive_until_eof(stream)
        assert reply == b"HELLO"
        out, _ = await server.interrupt()
    assert "127.0.0.1 wrote: b'hello'" in out


async def test_tcp_upper_echo_serves_connections_concurrently() -> None:
    # serve() uses a concurrent server: a silent client does not block others.
    async with running_example("tcp_upper_echo.py", "--port", "0") as server:
        with trio.fail_after(EXIT_DEADLINE):
            async with await trio.open_tcp_stream("127.0.0.1", server.port) as idle:
                async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
                    await stream.send_all(b"second")
                    assert await _receive_until_eof(stream) == b"SECOND"
                await idle.send_all(b"first")
                assert await _receive_until_eof(idle) == b"FIRST"
        await server.interrupt()


# -- UDP -----------------------------------------------------------------------


async def test_udp_upper_echo() -> None:
    async with running_example("udp_upper_echo.py", "--port", "0") as server:
        assert server.address.startswith("udp://")
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await sock.bind(("127.0.0.1", 0))
            with trio.fail_after(EXIT_DEADLINE):
                await sock.sendto(b"hello udp\n", ("127.0.0.1", server.port))
                reply, sender = await sock.recvfrom(1024)
        assert reply == b"HELLO UDP"
        assert sender == ("127.0.0.1", server.port)
        out, _ = await server.interrupt()
    assert "127.0.0.1 wrote: b'hello udp'" in out


# -- Unix sockets ----------------------------------------------------------------


async def test_unix_stream_server(short_tmp_path: Path) -> None:
    path = short_tmp_path / "upper.sock"
    async with running_example("unix_stream_server.py", "--path", str(path)) as server:
        assert server.address == f"unix:{path}"
        assert path.is_socket()
        with trio.fail_after(EXIT_DEADLINE):
            async with await trio.open_unix_socket(str(path)) as stream:
                await stream.send_all(b"hello unix\n")
                reply = await _receive_until_eof(stream)
        assert reply == b"HELLO UNIX"
        out, _ = await server.interrupt()
    assert "received: b'hello unix'" in out
    assert not path.exists(), "the server left its socket file behind"


async def test_unix_stream_server_replaces_stale_socket_file(short_tmp_path: Path) -> None:
    # A socket file nobody listens on (left by a crashed server) is replaced.
    path = short_tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    assert path.is_socket()
    async with running_example("unix_stream_server.py", "--path", str(path)) as server:
        with trio.fail_after(EXIT_DEADLINE):
            async with await trio.open_unix_socket(str(path)) as stream:
                await stream.send_all(b"again")
                assert await _receive_until_eof(stream) == b"AGAIN"
        await server.interrupt()
    assert not path.exists()


async def test_unix_datagram_server(short_tmp_path: Path) -> None:
    path = short_tmp_path / "upper-dgram.sock"
    client_path = short_tmp_path / "client.sock"
    async with running_example("unix_datagram_server.py", "--path", str(path)) as server:
        assert server.address == f"unixgram:{path}"
        with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # The client binds a path of its own, or the server cannot reply.
            await sock.bind(str(client_path))
            with trio.fail_after(EXIT_DEADLINE):
                await sock.sendto(b"hello datagram\n", str(path))
                reply, sender = await sock.recvfrom(1024)
        assert reply == b"HELLO DATAGRAM"
        assert sender == str(path)
        out, _ = await server.interrupt()
    assert f"{client_path} wrote: b'hello datagram'" in out
    assert not path.exists(), "the server left its socket file behind"


# -- a server and its clients in one program -------------------------------------


async def test_concurrent_server_with_client() -> None:
    with trio.fail_after(STARTUP_DEADLINE + EXIT_DEADLINE):
        result = await trio.run_process(
            [sys.executable, str(EXAMPLES / "concurrent_server_with_client.py"), "--port", "0"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert stderr == ""
    lines = result.stdout.decode().splitlines()
    assert re.fullmatch(r"listening on tcp://127\.0\.0\.1:\d+", lines[0]), lines
    assert lines[1:] == [
        "Received: request 1: Hello World 1",
        "Received: request 2: Hello World 2",
        "Received: request 3: Hello World 3",
    ]


# -- the reference documents every public name -------------------------------------


def test_reference_documents_every_public_name() -> None:
    reference = (EXAMPLES.parent / "reference.rst").read_text()
    documented = set(re.findall(r"^\.\. auto(?:class|function|data):: (\w+)", reference, re.M))
    assert documented == set(trio_socketserver.__all__)
