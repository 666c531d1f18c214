"""A real EMFILE: the server runs out of file descriptors under load, logs
and backs off (no busy loop, no crash), and recovers when fds free up."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap

import pytest

ASYNC_SERVER = textwrap.dedent(
    """
    import logging, os, resource, sys
    import trio
    import trio_socketserver as ts

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(name)s %(levelname)s %(message)s")

    class Hold(ts.StreamRequestHandler):
        async def handle(self):
            await self.wfile.write(b"hi")
            await self.rfile.read()  # until the client closes

    async def main():
        server = ts.ConcurrentTCPServer(("127.0.0.1", 0), Hold)
        # Room for exactly 3 more connections than are open now.
        in_use = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 3, resource.getrlimit(
            resource.RLIMIT_NOFILE)[1]))
        print(server.server_address[1], flush=True)
        async with server:
            await server.serve_forever()

    trio.run(main)
    """
)

# The same server on the sync adapter, with a blocking handler.
SYNC_SERVER = textwrap.dedent(
    """
    import logging, os, resource, sys
    import trio_socketserver.sync as socketserver

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(name)s %(levelname)s %(message)s")

    class Hold(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"hi")
            self.rfile.read()  # until the client closes

    class Server(socketserver.ThreadingTCPServer):
        limited = False

        def service_actions(self):
            # Once serving (trio's loop holds its descriptors now): room for
            # exactly 3 more connections than are open.
            if not self.limited:
                self.limited = True
                in_use = len(os.listdir("/proc/self/fd")) - 1  # listdir's own
                resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 3, resource.getrlimit(
                    resource.RLIMIT_NOFILE)[1]))
                print(self.server_address[1], flush=True)

    with Server(("127.0.0.1", 0), Hold) as server:
        server.serve_forever(poll_interval=0.01)
    """
)


FAILURE = re.compile(r"get_request\(\) failed with EMFILE .*retrying in ([0-9.]+) seconds")


@pytest.mark.parametrize("server", [ASYNC_SERVER, SYNC_SERVER], ids=["async", "sync"])
def test_emfile_backs_off_and_recovers(server: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", server], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        port = int(proc.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(6)]
        for c in clients[:3]:
            assert c.recv(2) == b"hi"
        # The other three wait in the backlog while accept() fails with
        # EMFILE. Read the server's log as it is written until it has backed
        # off four times in a row.
        delays: list[float] = []
        while len(delays) < 4:
            line = proc.stderr.readline()
            assert line, "server exited"
            if match := FAILURE.search(line):
                delays.append(float(match.group(1)))
        assert delays == [0.01, 0.02, 0.04, 0.08], "exponential back-off, not a busy loop"
        # Free the fds: the server picks the waiting clients up by itself.
        for c in clients[:3]:
            c.close()
        for c in clients[3:]:
            assert c.recv(2) == b"hi"
            c.close()
        proc.terminate()
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
