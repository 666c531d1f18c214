"""Where the memory of idle thread-per-connection servers goes.

    .venv/bin/python bench/idle_threads.py [--conns 8000]

Diagnostic for the sync suite's ``idle`` scenario (10,000 connections, peak
RSS): in fresh child processes, it measures the resident memory per idle
connection of the stdlib's ``socketserver.ThreadingTCPServer`` and of
``trio_socketserver.sync.ThreadingTCPServer`` (same echo handler, clients in
the same process, every handler blocked in ``recv``), next to the floor: a
bare ``threading.Thread`` and a bare ``_thread`` thread blocked in ``recv``.
It also prints each side's RSS before any connection (the interpreter plus
its imports). Per-connection figures include the client sockets, the same on
both sides.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import threading
import time


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"{field}:\s+(\d+)", f.read())
    assert match is not None
    return int(match.group(1))


def _floor(kind: str, n: int) -> None:
    import _thread

    pairs = [socket.socketpair() for _ in range(n)]
    base = _status("VmRSS")
    started = threading.Semaphore(0)

    def work(sock: socket.socket) -> None:
        started.release()
        sock.recv(100)

    for a, _ in pairs:
        if kind == "_thread":
            _thread.start_new_thread(work, (a,))
        else:
            threading.Thread(target=work, args=(a,)).start()
    for _ in range(n):
        started.acquire()
    time.sleep(0.5)  # let the last threads reach recv()
    print(f"{'bare ' + kind:<34} {'':>9} {(_status('VmRSS') - base) / n:8.2f} KB")
    for _, b in pairs:
        b.send(b"x")


def _server(impl: str, n: int) -> None:
    if impl == "stdlib":
        import socketserver as ss
    else:
        import trio_socketserver.sync as ss  # type: ignore[no-redef]

    class Echo(ss.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(1024):
                self.request.sendall(data)

    class Server(ss.ThreadingTCPServer):
        request_queue_size = 4096
        daemon_threads = True

    with Server(("127.0.0.1", 0), Echo) as srv:
        loop = threading.Thread(target=srv.serve_forever)
        loop.start()
        address = ("127.0.0.1", srv.server_address[1])
        with socket.create_connection(address) as warm:
            warm.sendall(b"x")
            warm.recv(1)
        time.sleep(0.5)
        before = _status("VmRSS")
        clients = [socket.create_connection(address) for _ in range(n)]
        while threading.active_count() < n + 2:
            time.sleep(0.05)
        time.sleep(1.0)  # let the last handlers reach recv()
        held = _status("VmRSS")
        for c in clients:
            c.sendall(b"ping")
        for c in clients:
            assert c.recv(10) == b"ping"
        name = impl + ".ThreadingTCPServer"
        per_conn = (held - before) / n
        peak = _status("VmHWM") / 1024
        print(f"{name:<34} {before / 1024:7.1f} MB {per_conn:8.2f} KB   peak {peak:6.1f} MB")
        for c in clients:
            c.close()
        srv.shutdown()
        loop.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conns", type=int, default=8000)
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, kind = args.child
        (_floor if what == "floor" else _server)(kind, args.conns)
        return
    print(f"{args.conns} idle connections (threads); RSS before, then per connection")
    for what, kind in [
        ("floor", "_thread"),
        ("floor", "threading.Thread"),
        ("server", "stdlib"),
        ("server", "sync"),
    ]:
        cmd = [sys.executable, __file__, "--conns", str(args.conns), "--child", what, kind]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
