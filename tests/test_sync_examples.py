"""Run the seed documents' blocking socketserver programs on trio_socketserver.sync.

docs/examples/sync/ holds every complete, runnable program found in the
documents this project was created from (the "seeds"), ported *as they are*.
A port differs from its seed only by

* the import line: ``import socketserver`` became ``import
  trio_socketserver.sync as socketserver`` (``from socketserver import ...``
  likewise);
* a hard-coded port or socket path, read from ``$EXAMPLE_PORT`` /
  ``$EXAMPLE_PATH`` with the original value as the default, on the same line
  (marked ``# port from the environment`` / ``# path from the environment``);
* ``import os`` and a first line ``listening on <server_address>`` printed
  just before ``serve_forever()`` (marked ``# added for the tests``).

Fidelity is checked, not promised: docs/examples/sync/originals/ keeps each
seed code block verbatim and sources.toml says where it comes from (and why
every other code block of the seeds was skipped). The ``test_port_*`` tests
undo exactly the changes above and require the original byte for byte; when
the seeds are on this machine (``$TRIO_SOCKETSERVER_SEEDS``, by default
/work/shared/seeds) the originals are compared with them, and every code
block of the seeds must be listed as ported or skipped.

Each program runs twice: as ported (``sync``) and with the import line put
back (``stdlib``: the reference implementation), against real clients (stdlib
sockets, or the seed's own client program). The expectations are the
stdlib's behaviour, the examples' own bugs included: nothing catches
KeyboardInterrupt, so Ctrl-C (SIGINT) ends a server with a traceback and the
interpreter's death by SIGINT; a server the program never closes is reported
at exit as an unclosed socket (warnings are errors here) and leaves its Unix
socket file behind. Synchronisation is by the programs' output and data on
the wire, never by sleeping.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from .test_examples import EXIT_DEADLINE, STARTUP_DEADLINE, _Output, _read_both, start_program

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples" / "sync"
ORIGINALS = EXAMPLES / "originals"
SOURCES: dict[str, Any] = tomllib.loads((EXAMPLES / "sources.toml").read_text())
SEEDS = Path(os.environ.get("TRIO_SOCKETSERVER_SEEDS", "/work/shared/seeds"))

#: Seconds a blocking client operation may take.
CLIENT_TIMEOUT = 10.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and Unix sockets")


# -- what a port may change ----------------------------------------------------------

ADDED = "  # added for the tests"
ALLOWED_ADDITIONS = {"import os", 'print("listening on", server.server_address, flush=True)'}
#: marker -> the substituted expression; group 1 is the original literal.
CHANGED = {
    "  # port from the environment": re.compile(
        r'int\(os\.environ\.get\("EXAMPLE_PORT", "(\d+)"\)\)'
    ),
    "  # path from the environment": re.compile(
        r'os\.environ\.get\("EXAMPLE_PATH", (\'[^\']*\'|"[^"]*")\)'
    ),
}
SYNC_IMPORT = "import trio_socketserver.sync as socketserver"
SYNC_FROM = "from trio_socketserver.sync import "


def _stdlib_import(line: str) -> str:
    """The import line put back; any other line unchanged."""
    if line == SYNC_IMPORT:
        return "import socketserver"
    if line.startswith(SYNC_FROM):
        return "from socketserver import " + line.removeprefix(SYNC_FROM)
    return line


def to_stdlib(text: str) -> str:
    """The program with the stdlib's socketserver: only the import lines change."""
    stdlib = "".join(_stdlib_import(line.rstrip("\n")) + "\n" for line in text.splitlines())
    assert "trio_socketserver" not in stdlib
    return stdlib


def undo_port(text: str) -> str:
    """Undo the allowed changes; fail on an unmarked or unexpected one."""
    lines = []
    for line in text.splitlines():
        if line.endswith(ADDED):
            assert line.removesuffix(ADDED).strip() in ALLOWED_ADDITIONS, line
            continue
        for marker, substituted in CHANGED.items():
            if line.endswith(marker):
                line, count = substituted.subn(r"\1", line.removesuffix(marker))
                assert count == 1, line
                break
        else:
            line = _stdlib_import(line)
        lines.append(line + "\n")
    return "".join(lines)


def seed_blocks(text: str) -> Iterator[tuple[int, int]]:
    """(first, last) body lines (1-based) of each ``` fence and <pre> element."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```") or line.strip() == "<pre>":
            end = index + 1
            while end < len(lines) and not (
                lines[end].startswith("```")
                if line.startswith("```")
                else lines[end].strip() == "</pre>"
            ):
                end += 1
            yield index + 2, end
            index = end
        index += 1


# -- fidelity ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", SOURCES["ported"], ids=lambda entry: entry["file"])
def test_port_is_the_original_but_for_the_allowed_changes(entry: dict[str, Any]) -> None:
    port = (EXAMPLES / entry["file"]).read_text()
    original = (ORIGINALS / f"{entry['file']}.txt").read_text()
    assert undo_port(port) == original


def test_port_folder_holds_exactly_the_listed_programs() -> None:
    listed = {entry["file"] for entry in SOURCES["ported"]}
    assert {path.name for path in EXAMPLES.glob("*.py")} == listed
    assert {path.name for path in ORIGINALS.iterdir()} == {f"{name}.txt" for name in listed}


def test_port_every_program_is_run_by_a_test_here() -> None:
    source = Path(__file__).read_text()
    for entry in SOURCES["ported"]:
        assert f'"{entry["file"]}"' in source, f"{entry['file']} is run by no test"


needs_seeds = pytest.mark.skipif(not SEEDS.is_dir(), reason=f"no seed documents at {SEEDS}")


@needs_seeds
@pytest.mark.parametrize("entry", SOURCES["ported"], ids=lambda entry: entry["file"])
def test_port_original_is_the_seed_block(entry: dict[str, Any]) -> None:
    first, last = entry["lines"]
    seed = (SEEDS / entry["seed"]).read_text().splitlines()
    block = "".join(line + "\n" for line in seed[first - 1 : last])
    assert (ORIGINALS / f"{entry['file']}.txt").read_text() == block
    assert (first, last) in set(seed_blocks("\n".join(seed)))


@needs_seeds
def test_port_every_seed_block_is_ported_or_skipped() -> None:
    found = {
        (path.name, first, last)
        for path in SEEDS.glob("*.txt")
        for first, last in seed_blocks(path.read_text())
    }
    listed = [(entry["seed"], *entry["lines"]) for entry in SOURCES["ported"] + SOURCES["skipped"]]
    assert len(listed) == len(set(listed)), "a block is listed twice"
    assert set(listed) == found
    assert all(entry["reason"] for entry in SOURCES["skipped"])


# -- running the programs -------------------------------------------------------------

UNCLOSED_SOCKET = re.compile(
    r"Exception ignored in: <socket\.socket [^\n]*>\n"
    r"ResourceWarning: unclosed <socket\.socket [^\n]*>\n"
)


@attrs.frozen
class Exit:
    returncode: int
    #: What the program wrote after the part the test read while it ran.
    out: str
    err: str

    def assert_interrupted(self, *, unclosed_sockets: int, reporting: str | None = None) -> None:
        """The program died of the KeyboardInterrupt raised in serve_forever
        (the interpreter then re-raises SIGINT), after one traceback and the
        warnings about ``unclosed_sockets`` sockets it never closed.

        ``reporting``: the last line of the error handle_error() last
        reported. Its final print() is the last thing the test can see, so
        SIGINT may come before it returns: the KeyboardInterrupt is then
        chained to that error."""
        assert self.returncode == -signal.SIGINT, self
        err, unclosed = UNCLOSED_SOCKET.subn("", self.err)
        assert unclosed == unclosed_sockets, self.err
        chained, during, last = err.partition(
            "\nDuring handling of the above exception, another exception occurred:\n\n"
        )
        if during and reporting is not None:
            assert chained.endswith(f"\n{reporting}\n"), self.err
            assert chained.startswith("Traceback (most recent call last):\n"), self.err
            err = last
        assert err.startswith("Traceback (most recent call last):\n"), self.err
        assert err.endswith("\nKeyboardInterrupt\n"), self.err
        assert err.count("Traceback") == 1, self.err


def _kill_group(process: trio.Process) -> bool:
    """Kill what is left of the program's process group (the fork example's
    stray children); whether anything was left."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


@attrs.frozen
class Running:
    process: trio.Process
    #: The server_address the program printed: (host, port) or a path.
    address: Any
    stdout: _Output
    stderr: _Output

    @property
    def connect_to(self) -> Any:
        if isinstance(self.address, tuple) and self.address[0] in ("", "0.0.0.0"):
            return ("127.0.0.1", self.address[1])
        return self.address

    async def interrupt(self, *, strays_allowed: bool = False) -> Exit:
        """SIGINT the program's process (Ctrl-C); it must exit within EXIT_DEADLINE."""
        results: list[tuple[str, str]] = []

        async def drain() -> None:
            results.append(await _read_both(self.stdout, self.stderr))

        self.process.send_signal(signal.SIGINT)
        with trio.fail_after(EXIT_DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                returncode = await self.process.wait()
                # Processes the program left behind keep the pipes open.
                strays = _kill_group(self.process)
        assert strays_allowed or not strays, "the program left processes running"
        return Exit(returncode, *results[0])

    async def handle_error_report(self) -> list[str]:
        """The lines between the dashes of the next handle_error() report."""
        with trio.fail_after(CLIENT_TIMEOUT):
            while (line := (await self.stderr.readline()).decode()) != "-" * 40 + "\n":
                assert line, "stderr ended"
            report = []
            while (line := (await self.stderr.readline()).decode()) != "-" * 40 + "\n":
                assert line, "stderr ended"
                report.append(line.rstrip("\n"))
        return report


class Examples:
    """Runs docs/examples/sync programs, as ported or on the stdlib."""

    def __init__(self, impl: str, tmp_path: Path) -> None:
        self.impl = impl
        self._stdlib_dir = tmp_path / "stdlib"

    def script(self, name: str) -> Path:
        if self.impl == "sync":
            return EXAMPLES / name
        self._stdlib_dir.mkdir(exist_ok=True)
        path = self._stdlib_dir / name
        path.write_text(to_stdlib((EXAMPLES / name).read_text()))
        return path

    @staticmethod
    def env(**extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "EXAMPLE_PORT": "0",  # a free port; they print the one they got
            "PYTHONWARNINGS": "error",
            "PYTHONUNBUFFERED": "1",  # output as it happens (and from forked children)
            **extra,
        }

    async def run(self, name: str, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
        """Run a program that ends by itself."""
        with trio.fail_after(STARTUP_DEADLINE + EXIT_DEADLINE):
            return await trio.run_process(
                [sys.executable, str(self.script(name)), *args],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=self.env(**env),
            )

    @asynccontextmanager
    async def start(self, name: str, **env: str) -> AsyncIterator[Running]:
        """Start a server program and wait for its "listening on" line."""
        async with start_program(
            [sys.executable, str(self.script(name))],
            env=self.env(**env),
            kill=_kill_group,
            new_session=True,  # its own process group, to clean up after forks
        ) as (process, printed, stdout, stderr):
            address = ast.literal_eval(printed) if printed.startswith("(") else printed
            yield Running(process, address, stdout, stderr)


@pytest.fixture(params=["sync", "stdlib"])
def examples(request: pytest.FixtureRequest, tmp_path: Path) -> Examples:
    return Examples(request.param, tmp_path)


# -- stdlib clients (run in a thread: they block) ----------------------------------------


def _stream_exchange(address: Any, payload: bytes) -> tuple[bytes, Any]:
    """Connect, send, half-close, read to EOF: (reply, the client's address)."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        sock.connect(address)
        # Nothing is sent to a server that reads nothing: data it never reads
        # would make its close() reset the connection.
        if payload:
            sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        reply = bytearray()
        while data := sock.recv(65536):
            reply += data
        return bytes(reply), sock.getsockname()


async def stream_exchange(address: Any, payload: bytes) -> tuple[bytes, Any]:
    return await trio.to_thread.run_sync(_stream_exchange, address, payload)


def _nothing_more(sock: socket.socket) -> None:
    """Nothing (more) has arrived for ``sock``."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        with pytest.raises(BlockingIOError):
            sock.recv(65536)
    finally:
        sock.settimeout(timeout)


@contextlib.contextmanager
def udp_client() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        sock.bind(("127.0.0.1", 0))
        yield sock


# -- TCP ---------------------------------------------------------------------------------


async def test_tcp_stream_upper(examples: Examples) -> None:
    async with examples.start("tcp_stream_upper.py") as server:
        # StreamRequestHandler: readline() takes the first line only.
        reply, _ = await stream_exchange(server.connect_to, b"hello world\nsecond line\n")
        assert reply == b"HELLO WORLD"
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=0)  # `with TCPServer(...)` closed it
    assert exit.out == "127.0.0.1 wrote: b'hello world'\n"


@pytest.mark.parametrize(
    ("name", "unclosed"),
    [
        ("echo_server_subclass.py", 1),
        ("get_request_override.py", 1),
        ("echo_decode_encode.py", 1),
        ("threaded_and_forking_echo.py", 0),
    ],
)
async def test_echo(examples: Examples, name: str, unclosed: int) -> None:
    async with examples.start(name) as server:
        for payload in (b"hello echo", "caf\u00e9 \u2615\n".encode()):
            reply, _ = await stream_exchange(server.connect_to, payload)
            assert reply == payload
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=unclosed)
    assert exit.out == ""


async def test_echo_print_client_address(examples: Examples) -> None:
    async with examples.start("echo_print_client_address.py") as server:
        reply, client = await stream_exchange(server.connect_to, b"hi there")
        assert reply == b"hi there"
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=1)
    assert exit.out == f"Received message from {client!r}: hi there\n"


@pytest.mark.parametrize(
    "name",
    [
        "address_family.py",
        "handle_error_on_handler.py",
        "verify_request_on_handler.py",
        "setup_greeting.py",
    ],
)
async def test_handler_that_sends_nothing(examples: Examples, name: str) -> None:
    async with examples.start(name) as server:
        reply, _ = await stream_exchange(server.connect_to, b"")
        assert reply == b""  # the connection is closed without a reply
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=1)
    assert exit.out == ""


async def test_setup_finish_timer(examples: Examples) -> None:
    async with examples.start("setup_finish_timer.py") as server:
        for _ in range(2):
            reply, _ = await stream_exchange(server.connect_to, b"")
            assert reply == b""
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=1)
    seconds = r"\d+\.\d+(?:e-\d+)?"
    assert re.fullmatch(f"(Connection handled in {seconds} seconds\\.\n){{2}}", exit.out), exit.out


async def test_threading_echo_server_serves_connections_concurrently(examples: Examples) -> None:
    async with examples.start("threading_echo_server.py") as server:

        def idle_then_second() -> tuple[bytes, bytes]:
            # A client that says nothing does not hold up the next one.
            with socket.create_connection(server.connect_to, CLIENT_TIMEOUT) as idle:
                second, _ = _stream_exchange(server.connect_to, b"second")
                idle.sendall(b"first")
                return second, idle.recv(1024)

        assert await trio.to_thread.run_sync(idle_then_second) == (b"second", b"first")
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=1)


@pytest.mark.parametrize(
    ("server_name", "client_name", "client_output", "server_output", "client_closes"),
    [
        ("tcp_echo_server.py", "tcp_echo_client.py", "Hello, world!\n", "", True),
        # This client never closes its socket.
        ("echo_send_server.py", "echo_send_client.py", "Hello world!\n", "", False),
        (
            "stream_handler_no_reply_server.py",
            "stream_handler_no_reply_client.py",
            "Received: \n",
            "127.0.0.1 wrote:\nb'Hello world with TCP'\n",
            True,
        ),
    ],
    ids=["tcp_echo", "echo_send", "stream_handler_no_reply"],
)
async def test_server_with_its_seed_client(
    examples: Examples,
    server_name: str,
    client_name: str,
    client_output: str,
    server_output: str,
    client_closes: bool,
) -> None:
    async with examples.start(server_name) as server:
        assert server.address[0] in ("0.0.0.0", "127.0.0.1")
        client = await examples.run(client_name, EXAMPLE_PORT=str(server.address[1]))
        assert client.returncode == 0, client.stderr.decode()
        unclosed = UNCLOSED_SOCKET.fullmatch(client.stderr.decode())
        assert (client.stderr == b"") if client_closes else unclosed, client.stderr.decode()
        assert client.stdout.decode() == client_output
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=1)
    assert exit.out == server_output


async def test_threaded_server_with_client(examples: Examples) -> None:
    result = await examples.run("threaded_server_with_client.py")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 4, lines
    loop = re.fullmatch(r"Server loop running in thread: (.+)", lines[0])
    assert loop is not None, lines
    for number, line in enumerate(lines[1:], 1):
        # The reply is "<name of the thread that ran handle()>: <request>".
        # The names are the implementation's (the stdlib: "Thread-2
        # (process_request_thread)", ...): the handler ran in a thread of its
        # own, neither the main thread nor the serve_forever thread.
        reply = re.fullmatch(rf"Received: (.+): Hello World {number}", line)
        assert reply is not None, lines
        assert reply.group(1) not in ("MainThread", loop.group(1)), lines


async def test_fork_in_handler(examples: Examples) -> None:
    async with examples.start("fork_in_handler.py") as server:
        reply, _ = await stream_exchange(server.connect_to, b"fork")
        with trio.fail_after(CLIENT_TIMEOUT):
            printed = (await server.stdout.readline()).decode()
        child = re.fullmatch(r"Process ID: (\d+)\n", printed)
        assert child is not None, printed
        assert int(child.group(1)) != server.process.pid
        if reply:
            # The child sent its reply before the parent's shutdown_request().
            assert reply == f"Hello from process {child.group(1)}".encode()
        else:
            # The parent's shutdown_request() (SHUT_WR) came first: the child's
            # sendall failed, went to handle_error, and the child, which never
            # reached os._exit(), returned from the request (the example's bug).
            report = await server.handle_error_report()
            assert report[0].startswith("Exception occurred during processing of request from")
            assert report[-1] == "BrokenPipeError: [Errno 32] Broken pipe"
            if examples.impl == "sync":
                # It must not run (or unwind) the parent's trio loop, whose
                # epoll instance and wake-up sockets it shares: it says so
                # and exits, and the parent still gets its Ctrl-C (Rule 5 of
                # the sync engine). On the stdlib it goes back to serving.
                with trio.fail_after(CLIENT_TIMEOUT):
                    line = (await server.stderr.readline()).decode()
                assert line.startswith(
                    "trio_socketserver.sync: a process forked inside a request of TCPServer "
                    "returned into serve_forever(); it exits now."
                ), line
        # The parent never reaps the child (TCPServer does not wait for it),
        # so a zombie, or on the stdlib a child still serving, is left.
        exit = await server.interrupt(strays_allowed=True)
    exit.assert_interrupted(unclosed_sockets=1)


@pytest.mark.parametrize("name", ["fileno.py", "server_address.py"])
async def test_program_that_binds_and_exits(examples: Examples, name: str) -> None:
    result = await examples.run(name)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""
    # It never closes its server: the socket is reported unclosed at exit.
    assert UNCLOSED_SOCKET.fullmatch(result.stderr.decode()), result.stderr.decode()
    assert "laddr=('127.0.0.1', " in result.stderr.decode()


# -- UDP ---------------------------------------------------------------------------------


async def test_udp_upper_server_with_its_seed_client(examples: Examples) -> None:
    async with examples.start("udp_upper_server.py") as server:
        host, port = server.address
        client = await examples.run("udp_client.py", host, str(port))
        assert client.returncode == 0, client.stderr.decode()
        # This client never closes its socket.
        assert UNCLOSED_SOCKET.fullmatch(client.stderr.decode()), client.stderr.decode()
        assert client.stdout == b"Received: HELLO, WORLD!\n"
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=0)
    assert exit.out == "127.0.0.1 wrote:\nb'Hello, world!'\n"


async def test_udp_ok_server(examples: Examples) -> None:
    async with examples.start("udp_ok_server.py") as server:
        with udp_client() as sock:
            sock.sendto(b"ping\n", server.address)
            reply, sender = await trio.to_thread.run_sync(sock.recvfrom, 65536)
        assert (reply, sender) == (b"OK", server.address)
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=0)
    assert exit.out == "Received: b'ping'\n"


@pytest.mark.parametrize(
    ("name", "error", "unclosed"),
    [
        (
            "udp_upper_self_data.py",
            "AttributeError: 'MyUDPHandler' object has no attribute 'data'",
            0,
        ),
        ("udp_recv_on_tuple.py", "AttributeError: 'tuple' object has no attribute 'recv'", 1),
    ],
    ids=["udp_upper_self_data.py", "udp_recv_on_tuple.py"],
)
async def test_udp_handler_that_fails(
    examples: Examples, name: str, error: str, unclosed: int
) -> None:
    async with examples.start(name) as server:
        with udp_client() as sock:
            for _ in range(2):  # the server goes on after each failure
                sock.sendto(b"hello udp\n", server.address)
                report = await server.handle_error_report()
                client = sock.getsockname()
                assert report[:2] == [
                    f"Exception occurred during processing of request from {client!r}",
                    "Traceback (most recent call last):",
                ]
                assert report[-1] == error
                _nothing_more(sock)  # handle() failed before replying
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=unclosed, reporting=error)
    assert exit.out == ""


# -- Unix sockets ------------------------------------------------------------------------


async def _unix_stream_hello(examples: Examples, path: Path) -> Exit:
    async with examples.start("unix_stream_hello.py", EXAMPLE_PATH=str(path)) as server:
        assert server.address == str(path)
        assert path.is_socket()
        reply, _ = await stream_exchange(str(path), b"hi unix")
        assert reply == b"Hello, world!"
        return await server.interrupt()


async def test_unix_stream_hello(examples: Examples, short_tmp_path: Path) -> None:
    path = short_tmp_path / "my_socket"
    exit = await _unix_stream_hello(examples, path)
    exit.assert_interrupted(unclosed_sockets=1)
    assert exit.out == "b'hi unix'\n"
    # The program never calls server_close(), which is what removes the socket
    # file in trio_socketserver.sync (the stdlib never does): the file stays.
    assert path.is_socket()
    # Running it again: the stdlib cannot bind over the stale file; the sync
    # servers replace a socket file nobody listens on.
    if examples.impl == "stdlib":
        again = await examples.run("unix_stream_hello.py", EXAMPLE_PATH=str(path))
        assert again.returncode == 1
        assert re.search(
            r"\nOSError: \[Errno \d+\] Address already in use\n\Z", again.stderr.decode()
        )
    else:
        (await _unix_stream_hello(examples, path)).assert_interrupted(unclosed_sockets=1)


async def test_unix_datagram_hello(examples: Examples, short_tmp_path: Path) -> None:
    path = short_tmp_path / "my_socket"
    client_path = short_tmp_path / "client.sock"
    async with examples.start("unix_datagram_hello.py", EXAMPLE_PATH=str(path)) as server:
        assert server.address == str(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(CLIENT_TIMEOUT)
            sock.bind(str(client_path))  # or the server could not reply
            sock.sendto(b"hi datagram", str(path))
            first = await trio.to_thread.run_sync(sock.recvfrom, 65536)
            # DatagramRequestHandler.finish() then sends what handle() wrote
            # to self.wfile: nothing, in an empty datagram.
            second = await trio.to_thread.run_sync(sock.recvfrom, 65536)
            assert (first, second) == ((b"Hello, world!", str(path)), (b"", str(path)))
            _nothing_more(sock)
        exit = await server.interrupt()
    exit.assert_interrupted(unclosed_sockets=1)
    assert exit.out == "b'hi datagram'\n"
    assert path.is_socket()  # never closed: see test_unix_stream_hello
