"""``python -m trio_socketserver`` as a user runs it: a real process, real
clients, Ctrl-C (SIGINT) to stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import blocking_tcp_roundtrip


@contextmanager
def run_cli(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start the CLI, wait for its "listening on" line, yield (proc, address)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "trio_socketserver", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server is ready (or exits)
        if not line.startswith("listening on "):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"CLI did not start: {line!r} {err}")
        yield proc, line.removeprefix("listening on ").strip()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    return proc.returncode, err


def split_ip(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[1].rpartition(":")
    return host.strip("[]"), int(port)


def test_default_echo_server_over_tcp() -> None:
    with run_cli("--tcp", "127.0.0.1:0") as (proc, url):
        assert url.startswith("tcp://127.0.0.1:")
        assert blocking_tcp_roundtrip(split_ip(url), b"echo me") == b"echo me"
        code, err = stop(proc)
    assert code == 0
    assert "SIGINT received: shutting down" in err
    assert "stopped serving" in err


def test_udp_echo() -> None:
    with run_cli("--udp", "127.0.0.1:0") as (proc, url):
        assert url.startswith("udp://")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            client.sendto(b"datagram", split_ip(url))
            assert client.recv(100) == b"datagram"
        assert stop(proc)[0] == 0


def test_unix_echo_and_socket_file_removed(sock_path: str) -> None:
    with run_cli("--unix", sock_path) as (proc, url):
        assert url == f"unix:{sock_path}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(sock_path)
            client.sendall(b"via unix")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(100) == b"via unix"
        assert stop(proc)[0] == 0
    assert not os.path.exists(sock_path)


def test_user_handler_from_module(tmp_path: Path) -> None:
    (tmp_path / "myhandlers.py").write_text(
        textwrap.dedent(
            """
            import trio_socketserver

            class Shout(trio_socketserver.StreamRequestHandler):
                async def handle(self):
                    line = await self.rfile.readline()
                    await self.wfile.write(line.upper())
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with run_cli("--tcp", "127.0.0.1:0", "--handler", "myhandlers:Shout", env=env) as (proc, url):
        assert blocking_tcp_roundtrip(split_ip(url), b"quiet\n") == b"QUIET\n"
        assert stop(proc)[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tcp", "localhost"], "expects HOST:PORT"),
        (["--tcp", "::1:80"], "brackets"),
        (["--handler", "nosuchmodule:X"], "cannot import module"),
        (["--handler", "os"], "module:Class"),
        (["--tcp", "127.0.0.1:99999"], "between 0 and 65535"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = _run_cli(args)
    assert result.returncode == 2
    assert message in result.stderr


def _run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    """The CLI with ``args``, to its exit (bad arguments never serve)."""
    return subprocess.run(
        [sys.executable, "-m", "trio_socketserver", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_address_in_use_is_reported() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "trio_socketserver", "--tcp", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert "Address already in use" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tcp", "127.0.0.1:0", "--max-concurrent", "0"], "must be an integer >= 1, not 0"),
        (["--udp", "127.0.0.1:0", "--max-concurrent", "-1"], "must be an integer >= 1, not -1"),
        (["--max-concurrent", "ten"], "must be an integer >= 1, not 'ten'"),
        (["--tcp", "[::1]"], "expects [IPV6]:PORT (for example [::1]:8000), not '[::1]'"),
        (["--tcp", "::1"], "write an IPv6 host in brackets, as [::1]:PORT"),
        (["--tcp", "[]:0"], "empty brackets in '[]:0'; for all interfaces write :0"),
        (["--tcp", "[127.0.0.1]:0"], "brackets are for IPv6 addresses only; write 127.0.0.1:0"),
        (["--tcp", "127.0.0.1:0", "--handler", ".foo:X"], "module '.foo' is relative"),
        (["--tcp", "nonexistent.invalid:0"], "host 'nonexistent.invalid'"),
        (["--unix", "/nonexistent-dir/x.sock"], "directory '/nonexistent-dir' does not exist"),
        (["--unix", "/tmp/" + "a" * 120], "longer than the 108-byte limit"),
    ],
)
def test_bad_arguments_are_usage_errors_before_listening(args: list[str], message: str) -> None:
    result = _run_cli(args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening on" not in result.stdout
