#!/usr/bin/env python3
"""Benchmark harness for trio_socketserver.  Stdlib only; runs under any python3.

    python bench/run.py [--suite async|sync] [--quick] [--rounds N]
                        [--scenarios persistent,cpr,idle,udp]
                        [--contender NAME[:SCEN,SCEN]=CMD ...] [--only NAME,NAME]

Two suites of contenders (--suite; default async, which is what this harness
always ran):

  async   the project's async servers against plain trio/anyio peers;
          scenarios persistent, cpr, idle, udp; ratios against the best
          baseline of each scenario (BASELINES).
  sync    trio_socketserver.sync (the drop-in blocking socketserver) against
          the stdlib socketserver, one pair per server class, the same
          unchanged stdlib handler class on both sides
          (bench/servers/sync_servers.py); ratios sync / stdlib per pair and
          a verdict against the goal of each pair (SYNC_PAIRS):
            persistent       ThreadingTCPServer, raw recv/sendall echo  >= 1.0x
            cpr              ThreadingTCPServer and (sequential) TCPServer,
                             the same echo, connect-per-request  >= 1.0x
            idle             ThreadingTCPServer: all connections served and
                             peak RSS (VmHWM) below the stdlib's
            udp              UDPServer >= 1.0x, ThreadingUDPServer >= 2.0x
            http-keepalive,  http.server.ThreadingHTTPServer under wrk,
            http-close       keep-alive / "Connection: close"  >= 1.0x
          In persistent and http-keepalive no adapter code runs per message
          (the stdlib's handler in a thread of its own on both sides), so
          those two also run an A/A control (SYNC_CONTROLS): the stdlib's
          server started a second time and compared with itself like a
          contender.  Its ratio shows how far apart two identical servers
          measure here; it is reported next to the verdict, not a goal.
          Both sides listen with a backlog of --sync-backlog (default 128;
          0 keeps the classes' request_queue_size of 5, which turns the
          connection bursts of these scenarios into SYN-retransmit waits).
          The http scenarios need wrk (Debian: apt-get install -y wrk); without
          it they are skipped and the run says so in its output and verdict.

For every scenario, every applicable contender is run once per round; the
order of contenders is rotated every round (A,B,C / B,C,A / C,A,B ...) so that
slow drifts of the machine (thermal, page cache, other tenants) hit everybody
alike.  Every run uses a fresh server process:

    taskset -c 0 <server command> --port 0 --host HOST   -> prints "READY <port>"
    taskset -c 1 bench/build/loadgen MODE ...             -> prints one JSON line

For http-keepalive / http-close the load generator is wrk instead
(`taskset -c 1 wrk -t1 -cN -dD URL`, one thread; a warm-up wrk run of
`warmup` seconds precedes the measured one), and its ops/s is wrk's
Requests/sec; socket errors, timeouts and non-2xx responses count as errors.

taskset execs its argument, so the PID we get from Popen *is* the server
interpreter; this is verified per run (comm must not be "taskset", CPU
affinity must be {0}).  The server is stopped with SIGTERM (SIGKILL after 10 s).

Measured per run: ops/s (from the load generator), server CPU (utime+stime
from /proc/PID/stat over the load generator's lifetime), load-generator CPU
(ru_utime+ru_stime from os.wait4 over its wall time), busy% of cores 0 and 1
from /proc/stat (includes softirq time, where loopback TCP work is accounted),
and for `idle` the server's VmRSS while all connections are held open,
its VmHWM (peak) and its RSS before any load.  Per run the kernel's
TcpExt ListenOverflows/ListenDrops counters are read before and after: a
connection dropped because a listen backlog was full waits for a SYN
retransmit (1 s), so non-zero counts are reported next to the run.

Results go to bench/results/latest.json; per-run server stderr goes to
bench/results/logs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LOADGEN_SRC = BENCH / "loadgen.c"
LOADGEN = BENCH / "build" / "loadgen"
RESULTS = BENCH / "results"

TCP = ("persistent", "cpr", "idle")
UDP = ("udp",)
ALL_SCENARIOS = ("persistent", "cpr", "idle", "udp")  # the async suite's
HTTP = ("http-keepalive", "http-close")  # load generator: wrk
SYNC_SCENARIOS = ("persistent", "cpr", "idle", "udp", *HTTP)
KNOWN_SCENARIOS = (*ALL_SCENARIOS, *HTTP)

# ---------------------------------------------------------------------------
# Contenders: (name, scenarios it applies to, command).  "{python}" is replaced
# by the server interpreter (--python; default: the repo's .venv).  The harness
# appends "--port 0 --host HOST" and expects "READY <port>" on stdout.
# Paths are relative to the repository root (the servers' working directory).
# A contender whose *.py file does not exist is skipped with a notice.
# ---------------------------------------------------------------------------
CONTENDERS: list[tuple[str, tuple[str, ...], list[str]]] = [
    ("trio_tcp_echo", TCP, ["{python}", "bench/peers/trio_tcp_echo.py"]),
    ("anyio_tcp_echo", TCP, ["{python}", "bench/peers/anyio_tcp_echo.py"]),
    ("trio_udp_echo", UDP, ["{python}", "bench/peers/trio_udp_echo.py"]),
    # The project's own servers (written separately; skipped until they exist).
    ("trio_socketserver", TCP, ["{python}", "bench/servers/ts_tcp_echo.py", "--handler", "raw"]),
    (
        "trio_socketserver_stream",
        TCP,
        ["{python}", "bench/servers/ts_tcp_echo.py", "--handler", "stream"],
    ),
    ("trio_socketserver_udp", UDP, ["{python}", "bench/servers/ts_udp_echo.py"]),
]

# Baselines per scenario.  With several names the one with the best median
# wins (ops/s: highest; idle: RSS is compared against trio_tcp_echo only).
BASELINES = {
    "persistent": ["trio_tcp_echo", "anyio_tcp_echo"],
    "cpr": ["trio_tcp_echo", "anyio_tcp_echo"],
    "idle": ["trio_tcp_echo"],
    "udp": ["trio_udp_echo"],
}

# ---------------------------------------------------------------------------
# The sync suite (--suite sync): trio_socketserver.sync against the stdlib's
# socketserver.  One script serves every pair (bench/servers/sync_servers.py);
# the two sides of a pair differ only in --impl, so the handler class, the
# server class name and its defaults are the same, except the listen backlog
# ("{sync_backlog}" := --sync-backlog, see the module docstring), which is
# the same on both sides too.
# ---------------------------------------------------------------------------
SYNC_SERVER = "bench/servers/sync_servers.py"
SYNC_BACKLOG = 128


def _sync_pair(cls: str, kind: str, scenarios: tuple[str, ...]) -> list:
    return [
        (
            f"{impl}.{cls}",
            scenarios,
            [
                "{python}",
                SYNC_SERVER,
                "--impl",
                impl,
                "--kind",
                kind,
                "--request-queue-size",
                "{sync_backlog}",
            ],
        )
        for impl in ("stdlib", "sync")
    ]


def _sync_control(cls: str, kind: str, scenarios: tuple[str, ...]) -> tuple:
    """The stdlib's side of a pair again, under another name (see SYNC_CONTROLS)."""
    ((_, _, argv),) = [c for c in _sync_pair(cls, kind, scenarios) if c[0].startswith("stdlib.")]
    return (f"control.{cls}", scenarios, argv)


SYNC_CONTENDERS: list[tuple[str, tuple[str, ...], list[str]]] = [
    *_sync_pair("ThreadingTCPServer", "threading-tcp", TCP),
    _sync_control("ThreadingTCPServer", "threading-tcp", ("persistent",)),
    *_sync_pair("TCPServer", "tcp", ("cpr",)),
    *_sync_pair("UDPServer", "udp", UDP),
    *_sync_pair("ThreadingUDPServer", "threading-udp", UDP),
    *_sync_pair("ThreadingHTTPServer", "http", HTTP),
    _sync_control("ThreadingHTTPServer", "http", ("http-keepalive",)),
]

# scenario -> [(contender, its baseline, goal)].  goal: the minimum ratio of
# median ops/s (contender / baseline); for idle, None stands for "every
# connection served, and median peak RSS (VmHWM) below the baseline's".
SYNC_PAIRS: dict[str, list[tuple[str, str, float | None]]] = {
    "persistent": [("sync.ThreadingTCPServer", "stdlib.ThreadingTCPServer", 1.0)],
    "cpr": [
        ("sync.ThreadingTCPServer", "stdlib.ThreadingTCPServer", 1.0),
        ("sync.TCPServer", "stdlib.TCPServer", 1.0),
    ],
    "idle": [("sync.ThreadingTCPServer", "stdlib.ThreadingTCPServer", None)],
    "udp": [
        ("sync.UDPServer", "stdlib.UDPServer", 1.0),
        ("sync.ThreadingUDPServer", "stdlib.ThreadingUDPServer", 2.0),
    ],
    "http-keepalive": [("sync.ThreadingHTTPServer", "stdlib.ThreadingHTTPServer", 1.0)],
    "http-close": [("sync.ThreadingHTTPServer", "stdlib.ThreadingHTTPServer", 1.0)],
}

# scenario -> [(control, baseline)]: A/A controls, the baseline's own command
# under another name.  Where both sides of a pair run the same stdlib code per
# message, the pair can differ only by what the machine does between runs; the
# control measures that spread in the same run (a 15-round run: the stdlib
# against itself 1.05x in persistent, 1.13x in http-keepalive, single rounds
# 0.68x-1.70x), so that a ratio near 1.0x can be read against it.
SYNC_CONTROLS: dict[str, list[tuple[str, str]]] = {
    "persistent": [("control.ThreadingTCPServer", "stdlib.ThreadingTCPServer")],
    "http-keepalive": [("control.ThreadingHTTPServer", "stdlib.ThreadingHTTPServer")],
}

# Scenario parameters.  duration/warmup in seconds.  For idle, "duration"
# bounds each loadgen phase (connect, hold, round trip), it is not a
# measuring window.  "runner": "wrk" runs wrk (whole seconds only) with
# "args" instead of the load generator.
FULL = {
    "persistent": {"duration": 5, "warmup": 1, "args": ["--conns", "50", "--size", "64"]},
    "cpr": {"duration": 5, "warmup": 1, "args": ["--concurrency", "16", "--size", "64"]},
    "udp": {"duration": 5, "warmup": 1, "args": ["--inflight", "32", "--size", "64"]},
    # 90 s: the stdlib's ThreadingTCPServer needs 40-55 s to accept 10,000
    # connections here (at every accept it walks its list of live threads),
    # and a peak RSS is only comparable between servers holding as many.
    "idle": {"duration": 90, "warmup": 0, "conns": 10000, "args": ["--size", "64"]},
    "http-keepalive": {"runner": "wrk", "duration": 5, "warmup": 1, "args": ["-c", "50"]},
    "http-close": {
        "runner": "wrk",
        "duration": 5,
        "warmup": 1,
        "args": ["-c", "16", "-H", "Connection: close"],
    },
}
QUICK = {
    "persistent": {**FULL["persistent"], "duration": 2, "warmup": 0.5},
    "cpr": {**FULL["cpr"], "duration": 2, "warmup": 0.5},
    "udp": {**FULL["udp"], "duration": 2, "warmup": 0.5},
    "idle": {**FULL["idle"], "duration": 15, "conns": 2000},
    "http-keepalive": {**FULL["http-keepalive"], "duration": 2, "warmup": 1},
    "http-close": {**FULL["http-close"], "duration": 2, "warmup": 1},
}

SUITES = {
    "async": {"contenders": CONTENDERS, "scenarios": ALL_SCENARIOS, "pairs": None, "controls": {}},
    "sync": {
        "contenders": SYNC_CONTENDERS,
        "scenarios": SYNC_SCENARIOS,
        "pairs": SYNC_PAIRS,
        "controls": SYNC_CONTROLS,
    },
}

SERVER_CORE = 0
LOADGEN_CORE = 1
READY_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------- utilities


def raise_nofile() -> None:
    """preexec_fn: soft RLIMIT_NOFILE := hard, so 10000 connections fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def read_first(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"


def proc_cpu_seconds(pid: int) -> float | None:
    """utime+stime of a process from /proc/PID/stat, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # fields after the ")" that closes comm; utime/stime are fields 14/15
    rest = data[data.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_nfds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def core_times() -> dict[int, tuple[int, int, int]]:
    """{core: (busy_ticks, total_ticks, steal_ticks)} from /proc/stat; busy
    includes irq/softirq (loopback TCP processing is accounted there) but not
    steal (time the hypervisor ran something else: pure noise for us)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                vals = [int(x) for x in parts[1:]] + [0] * 8
                idle = vals[3] + vals[4]  # idle + iowait
                steal = vals[7]
                total = sum(vals[:8])  # guest time is already included in user
                out[int(parts[0][3:])] = (total - idle - steal, total, steal)
    return out


def core_busy_pct(a: dict, b: dict, core: int, field: int = 0) -> float | None:
    """busy% (field 0) or steal% (field 2) of one core between two samples."""
    if core not in a or core not in b:
        return None
    part = b[core][field] - a[core][field]
    total = b[core][1] - a[core][1]
    return 100.0 * part / total if total > 0 else None


def listen_drops() -> dict[str, int]:
    """TcpExt ListenOverflows / ListenDrops (this network namespace) from
    /proc/net/netstat: connections a full listen backlog dropped.  They are
    counters of the whole network namespace, so another process's drops
    during a run would be counted too."""
    out: dict[str, int] = {}
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for i in range(0, len(lines) - 1, 2):
        names, values = lines[i].split(), lines[i + 1].split()
        if names[:1] == ["TcpExt:"] and values[:1] == ["TcpExt:"] and len(names) == len(values):
            for key in ("ListenOverflows", "ListenDrops"):
                if key in names:
                    out[key] = int(values[names.index(key)])
    return out


def listen_drops_delta(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b[k] - a[k] for k in b if k in a}


def build_loadgen() -> None:
    if LOADGEN.exists() and LOADGEN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return
    LOADGEN.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["gcc", "-O2", "-o", str(LOADGEN), str(LOADGEN_SRC)]
    log("building loadgen: " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".0f", none="-"):
    return none if x is None else format(x, spec)


def mb(kb) -> str:
    return fmt(kb / 1024 if kb is not None else None, ".1f")


# ---------------------------------------------------------- one server run


#: Seconds a server gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 60


class Server:
    """A server started as `taskset -c 0 CMD --port 0 --host HOST`."""

    def __init__(self, name: str, cmd: list[str], host: str, logpath: Path):
        self.name = name
        self.cmd = ["taskset", "-c", str(SERVER_CORE), *cmd, "--port", "0", "--host", host]
        self.logpath = logpath
        # stays open for the server's lifetime (its stderr); closed in stop()
        self.logf = open(logpath, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self.logf,
            stdin=subprocess.DEVNULL,
            preexec_fn=raise_nofile,
        )
        self.pid = self.proc.pid
        self.port = self._wait_ready()
        # anything the server prints later is drained so it can never block
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()
        self._verify_process()

    def _wait_ready(self) -> int:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + READY_TIMEOUT
        buf = b""
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise RuntimeError(f"{self.name}: no READY line within {READY_TIMEOUT} s")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(
                        f"{self.name}: exited before READY (rc={self.proc.wait()}); "
                        f"see {self.logpath}\n{self.log_tail()}"
                    )
                buf += chunk
        finally:
            sel.close()
        line = buf.split(b"\n", 1)[0].decode(errors="replace").strip()
        parts = line.split()
        if len(parts) != 2 or parts[0] != "READY" or not parts[1].isdigit():
            raise RuntimeError(f"{self.name}: expected 'READY <port>', got {line!r}")
        return int(parts[1])

    def _drain_stdout(self) -> None:
        try:
            while os.read(self.proc.stdout.fileno(), 65536):
                pass
        except OSError:
            pass

    def _verify_process(self) -> None:
        """taskset must have exec'ed the server: the PID has to be the
        interpreter itself, pinned to SERVER_CORE, or CPU/RSS readings
        would be taskset's."""
        comm = read_first(f"/proc/{self.pid}/comm")
        self.comm = comm
        try:
            self.exe = os.readlink(f"/proc/{self.pid}/exe")
        except OSError:
            self.exe = "?"
        aff = os.sched_getaffinity(self.pid)
        if comm == "taskset" or "taskset" in self.exe:
            raise RuntimeError(f"{self.name}: PID {self.pid} is taskset, not the server")
        if aff != {SERVER_CORE}:
            raise RuntimeError(f"{self.name}: affinity {aff}, expected {{{SERVER_CORE}}}")
        try:
            children = read_first(f"/proc/{self.pid}/task/{self.pid}/children")
        except OSError:
            children = ""
        if children and children != "?":
            log(
                f"  ! {self.name}: server PID {self.pid} has child processes ({children});"
                " their CPU/RSS is not counted"
            )

    def log_tail(self, n: int = 15) -> str:
        try:
            if not self.logf.closed:
                self.logf.flush()
            lines = self.logpath.read_text(errors="replace").splitlines()
            return "\n".join("    | " + x for x in lines[-n:])
        except OSError:
            return ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            # Generous: a threading server that just served 10,000
            # connections on one core needs seconds to end its threads.
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"  ! {self.name}: did not exit {STOP_TIMEOUT} s after SIGTERM, killing")
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode


def run_loadgen(
    mode: str, host: str, port: int, params: dict, server: Server, hold_file: Path | None
) -> dict:
    """Run the load generator pinned to LOADGEN_CORE; returns its JSON plus
    CPU accounting for it and for the server over the same window."""
    cmd = [
        "taskset",
        "-c",
        str(LOADGEN_CORE),
        str(LOADGEN),
        mode,
        "--host",
        host,
        "--port",
        str(port),
        "--duration",
        str(params["duration"]),
        "--warmup",
        str(params["warmup"]),
        *params["args"],
    ]
    if mode == "idle":
        cmd += ["--conns", str(params["conns"])]
        if hold_file is not None:
            cmd += ["--hold-file", str(hold_file)]
    extra: dict = {}
    srv_fds0 = proc_nfds(server.pid)
    extra["server_rss_before_kb"] = proc_status_kb(server.pid, "VmRSS")

    l0 = listen_drops()
    s0 = proc_cpu_seconds(server.pid)
    c0 = core_times()
    t0 = time.monotonic()
    lg = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        preexec_fn=raise_nofile,
    )
    out_chunks: list[bytes] = []
    err_lines: list[str] = []
    hold_seen = threading.Event()

    def read_stdout():
        for chunk in iter(lambda: lg.stdout.read(65536), b""):
            out_chunks.append(chunk)

    def read_stderr():
        # "HOLD <n>" is the loadgen's event that all idle connections are up
        # and the hold file exists -- no polling for the file needed.
        for raw in lg.stderr:
            line = raw.decode(errors="replace").rstrip()
            err_lines.append(line)
            if line.startswith("HOLD "):
                hold_seen.set()

    readers = [
        threading.Thread(target=read_stdout, daemon=True),
        threading.Thread(target=read_stderr, daemon=True),
    ]
    for r in readers:
        r.start()

    if mode == "idle" and hold_file is not None:
        # Wait for the event (bounded: connect phase <= duration).
        while not hold_seen.wait(0.5):
            # has the loadgen exited early?  WNOWAIT peeks without reaping,
            # so os.wait4 below still gets its rusage (Popen.poll would reap)
            if os.waitid(os.P_PID, lg.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                break
            if time.monotonic() - t0 > params["duration"] + 10:
                break
        if hold_seen.is_set():
            connected = 0
            for line in err_lines:
                if line.startswith("HOLD "):
                    connected = int(line.split()[1])
            # The loadgen only reports HOLD after the listener's accept queue
            # is empty (sock_diag), i.e. the server has accept()ed everything.
            # Verify that from the server's side too -- its fd count must have
            # grown by `connected` -- before sampling RSS, so the sample really
            # reflects all connections idle-open.  Normally the first check
            # passes; the loop (there is no event for "a process gained an
            # fd") only matters with `--pace off` or without sock_diag.
            t_wait = time.monotonic()
            fds = proc_nfds(server.pid)
            while fds < srv_fds0 + connected and time.monotonic() - t_wait < 10:
                time.sleep(0.02)
                fds = proc_nfds(server.pid)
            extra["server_fds_at_hold"] = fds - srv_fds0
            extra["server_accept_lag_s"] = round(time.monotonic() - t_wait, 3)
            extra["server_rss_hold_kb"] = proc_status_kb(server.pid, "VmRSS")
            extra["server_hwm_hold_kb"] = proc_status_kb(server.pid, "VmHWM")
        try:
            hold_file.unlink()
        except FileNotFoundError:
            pass

    _, status, ru = os.wait4(lg.pid, 0)
    t1 = time.monotonic()
    lg.returncode = os.waitstatus_to_exitcode(status)  # keep Popen consistent
    s1 = proc_cpu_seconds(server.pid)
    c1 = core_times()
    extra["listen_drops"] = listen_drops_delta(l0, listen_drops())
    for r in readers:
        r.join(timeout=5)
    wall = t1 - t0
    extra["server_hwm_kb"] = proc_status_kb(server.pid, "VmHWM")
    extra["server_rss_end_kb"] = proc_status_kb(server.pid, "VmRSS")

    out = b"".join(out_chunks).decode(errors="replace").strip().splitlines()
    if lg.returncode != 0 or not out:
        raise RuntimeError(
            f"loadgen failed rc={lg.returncode}: {' '.join(cmd)}\n" + "\n".join(err_lines[-10:])
        )
    res = json.loads(out[-1])
    res.update(extra)
    res["wall"] = wall
    res["loadgen_cpu_pct"] = 100.0 * (ru.ru_utime + ru.ru_stime) / wall
    res["server_cpu_pct"] = (
        (100.0 * (s1 - s0) / wall) if (s0 is not None and s1 is not None) else None
    )
    add_core_busy(res, c0, c1)
    res["loadgen_stderr"] = [x for x in err_lines if x][-5:]
    res["loadgen_cmd"] = cmd
    return res


def add_core_busy(res: dict, c0: dict, c1: dict) -> None:
    """busy% and steal% of both cores over a run (and a steal warning)."""
    res["core_busy_pct"] = {
        str(SERVER_CORE): core_busy_pct(c0, c1, SERVER_CORE),
        str(LOADGEN_CORE): core_busy_pct(c0, c1, LOADGEN_CORE),
    }
    res["core_steal_pct"] = {
        str(c): core_busy_pct(c0, c1, c, field=2) for c in (SERVER_CORE, LOADGEN_CORE)
    }
    steal = max((v or 0) for v in res["core_steal_pct"].values())
    if steal > 5:
        log(f"  ! {steal:.0f}% CPU steal during this run (hypervisor noise)")


# ------------------------------------------------------------------- wrk

_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _wrk_seconds(text: str) -> float | None:
    """'812.34us' / '1.20ms' / '2.00s' -> seconds."""
    for unit in sorted(_UNIT, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * _UNIT[unit]
            except ValueError:
                return None
    return None


def parse_wrk(text: str) -> dict:
    """The figures of wrk's (4.x) report; raises if there is no Requests/sec."""
    out: dict = {"socket_errors": {}, "non_2xx_3xx": 0}
    for raw in text.splitlines():
        line = raw.strip()
        parts = line.split()
        if line.startswith("Requests/sec:"):
            out["ops_per_sec"] = float(parts[1])
        elif " requests in " in line:
            out["requests"] = int(parts[0])
            out["seconds"] = _wrk_seconds(parts[3].rstrip(","))
        elif line.startswith("Latency") and len(parts) >= 4:
            out["latency_avg_s"] = _wrk_seconds(parts[1])
            out["latency_max_s"] = _wrk_seconds(parts[3])
        elif line.startswith("Socket errors:"):
            for item in line.split(":", 1)[1].split(","):
                k, v = item.split()
                out["socket_errors"][k] = int(v)
        elif line.startswith("Non-2xx or 3xx responses:"):
            out["non_2xx_3xx"] = int(parts[-1])
    if "ops_per_sec" not in out:
        raise RuntimeError("no 'Requests/sec:' in wrk's output:\n" + text)
    out["errors"] = sum(out["socket_errors"].values()) + out["non_2xx_3xx"]
    return out


def wrk_cmd(url: str, seconds: float, args: list[str]) -> list[str]:
    secs = max(1, round(seconds))  # wrk takes whole seconds
    return ["taskset", "-c", str(LOADGEN_CORE), "wrk", "-t1", *args, "-d", f"{secs}s", url]


def run_wrk(host: str, port: int, params: dict, server: Server) -> dict:
    """A warm-up wrk run (not measured), then the measured one, pinned to
    LOADGEN_CORE; wrk's figures plus the same CPU accounting as run_loadgen
    (loadgen_cpu_pct is wrk's)."""
    url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
    if params["warmup"] > 0:
        warm = subprocess.run(
            wrk_cmd(url, params["warmup"], params["args"]),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if warm.returncode != 0:
            raise RuntimeError(f"wrk warm-up failed rc={warm.returncode}: {warm.stderr.strip()}")
    cmd = wrk_cmd(url, params["duration"], params["args"])
    extra: dict = {"server_rss_before_kb": proc_status_kb(server.pid, "VmRSS")}
    l0 = listen_drops()
    s0 = proc_cpu_seconds(server.pid)
    c0 = core_times()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    chunks: dict[str, bytes] = {}

    def reader(name: str, stream) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=reader, args=("out", proc.stdout), daemon=True),
        threading.Thread(target=reader, args=("err", proc.stderr), daemon=True),
    ]
    for r in readers:
        r.start()
    _, status, ru = os.wait4(proc.pid, 0)
    t1 = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    s1 = proc_cpu_seconds(server.pid)
    c1 = core_times()
    extra["listen_drops"] = listen_drops_delta(l0, listen_drops())
    for r in readers:
        r.join(timeout=5)
    extra["server_hwm_kb"] = proc_status_kb(server.pid, "VmHWM")
    extra["server_rss_end_kb"] = proc_status_kb(server.pid, "VmRSS")
    text = chunks.get("out", b"").decode(errors="replace")
    err = chunks.get("err", b"").decode(errors="replace").strip()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed rc={proc.returncode}: {' '.join(cmd)}\n{err}")
    res = parse_wrk(text)
    res.update(extra)
    wall = t1 - t0
    res["wall"] = wall
    res["loadgen_cpu_pct"] = 100.0 * (ru.ru_utime + ru.ru_stime) / wall
    res["server_cpu_pct"] = (
        (100.0 * (s1 - s0) / wall) if (s0 is not None and s1 is not None) else None
    )
    add_core_busy(res, c0, c1)
    res["loadgen_stderr"] = [x for x in err.splitlines() if x][-5:]
    res["loadgen_cmd"] = cmd
    res["wrk_output"] = text
    return res


def run_one(name: str, cmd: list[str], scenario: str, params: dict, host: str, rnd: int) -> dict:
    logdir = RESULTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    srv = Server(name, cmd, host, logdir / f"{scenario}-{name}-r{rnd}.log")
    hold = None
    if scenario == "idle":
        hold = RESULTS / f".hold-{os.getpid()}"
        if hold.exists():
            hold.unlink()
    try:
        if params.get("runner") == "wrk":
            res = run_wrk(host, srv.port, params, srv)
        else:
            res = run_loadgen(scenario, host, srv.port, params, srv, hold)
    finally:
        alive_before_stop = srv.proc.poll() is None
        rc = srv.stop()
    res["server_pid_comm"] = srv.comm
    res["server_exit"] = rc
    res["server_alive_at_end"] = alive_before_stop
    if not alive_before_stop:
        log(
            f"  ! {name}: server died during the run (rc={rc}); log {srv.logpath}\n{srv.log_tail()}"
        )
    elif rc not in (0, -signal.SIGTERM):
        log(
            f"  ! {name}: server exited with {rc} after SIGTERM; "
            f"log {srv.logpath}\n{srv.log_tail()}"
        )
    return res


# ---------------------------------------------------------------- reporting


def summarize(
    scenario: str,
    runs: dict[str, list[dict]],
    pairs: list[tuple[str, str, float | None]] | None = None,
    tool: str = "loadgen",
    controls: list[tuple[str, str]] | None = None,
) -> tuple[list[str], dict]:
    """Table and ratios of one scenario.  Without `pairs` the ratios are
    against the best of BASELINES[scenario]; with `pairs` (the sync suite)
    each (contender, baseline, goal) is compared and checked on its own, and
    each (control, baseline) of `controls` is compared the same way but not
    checked (see SYNC_CONTROLS).  `tool` names the load generator in the
    bottleneck check."""
    lines: list[str] = []
    summary: dict = {}
    for name, rs in runs.items():
        ops = [r["ops_per_sec"] for r in rs]
        s = {
            "runs": len(rs),
            "median_ops_per_sec": median(ops),
            "min_ops_per_sec": min(ops) if ops else None,
            "max_ops_per_sec": max(ops) if ops else None,
            "errors": sum(r["errors"] for r in rs),
            "median_server_cpu_pct": median([r["server_cpu_pct"] for r in rs]),
            "median_loadgen_cpu_pct": median([r["loadgen_cpu_pct"] for r in rs]),
            "max_loadgen_cpu_pct": max((r["loadgen_cpu_pct"] for r in rs), default=None),
            "median_core_busy_pct": {
                c: median([r["core_busy_pct"][c] for r in rs])
                for c in (str(SERVER_CORE), str(LOADGEN_CORE))
            },
        }
        if scenario == "idle":
            full = [r for r in rs if r["succeeded"] == r["conns"]]
            s.update(
                {
                    "conns": rs[0].get("conns"),
                    "min_connected": min(r["connected"] for r in rs),
                    "min_succeeded": min(r["succeeded"] for r in rs),
                    "max_failed": max(r["failed"] for r in rs),
                    "median_rss_before_kb": median([r.get("server_rss_before_kb") for r in rs]),
                    "median_rss_hold_kb": median([r.get("server_rss_hold_kb") for r in rs]),
                    "median_hwm_kb": median([r.get("server_hwm_kb") for r in rs]),
                    # Like for like: over the rounds in which every connection
                    # was served (compare_pair compares these).
                    "all_served_rounds": len(full),
                    "median_rss_hold_all_served_kb": median(
                        [r.get("server_rss_hold_kb") for r in full]
                    ),
                    "median_hwm_all_served_kb": median([r.get("server_hwm_kb") for r in full]),
                    "median_connect_seconds": median([r.get("connect_seconds") for r in rs]),
                }
            )
            if s["median_rss_hold_kb"] and s["median_rss_before_kb"] and s["conns"]:
                s["kb_per_conn"] = (s["median_rss_hold_kb"] - s["median_rss_before_kb"]) / s[
                    "conns"
                ]
        if scenario == "udp":
            s["losses"] = sum(r.get("losses", 0) for r in rs)
        drops = [r.get("listen_drops", {}).get("ListenOverflows", 0) for r in rs]
        if any(drops):
            s["listen_overflows"] = sum(drops)
        summary[name] = s

    # table
    if scenario == "idle":
        hdr = (
            f"  {'contender':<26} {'ok/conns':>12} {'RSS before':>11} {'RSS held':>10} "
            f"{'peak(HWM)':>10} {'KB/conn':>8} {'connect s':>9} {'rt ops/s':>9} "
            f"{'srv cpu':>7} {'lg cpu':>6}"
        )
        lines.append(hdr)
        for name, s in summary.items():
            lines.append(
                f"  {name:<26} {str(s['min_succeeded']) + '/' + str(s['conns']):>12} "
                f"{mb(s['median_rss_before_kb']) + ' MB':>11} "
                f"{mb(s['median_rss_hold_kb']) + ' MB':>10} "
                f"{mb(s['median_hwm_kb']) + ' MB':>10} "
                f"{fmt(s.get('kb_per_conn'), '.2f'):>8} "
                f"{fmt(s['median_connect_seconds'], '.2f'):>9} "
                f"{fmt(s['median_ops_per_sec']):>9} "
                f"{fmt(s['median_server_cpu_pct'], '.0f') + '%':>7} "
                f"{fmt(s['median_loadgen_cpu_pct'], '.0f') + '%':>6}"
            )
    else:
        hdr = (
            f"  {'contender':<26} {'median ops/s':>12} {'min..max':>19} {'errors':>7} "
            f"{'srv cpu':>8} {'lg cpu':>7} {'core0':>6} {'core1':>6}"
        )
        lines.append(hdr)
        for name, s in summary.items():
            cb = s["median_core_busy_pct"]
            lines.append(
                f"  {name:<26} {fmt(s['median_ops_per_sec']):>12} "
                f"{fmt(s['min_ops_per_sec']) + '..' + fmt(s['max_ops_per_sec']):>19} "
                f"{s['errors']:>7} "
                f"{fmt(s['median_server_cpu_pct'], '.0f') + '%':>8} "
                f"{fmt(s['median_loadgen_cpu_pct'], '.0f') + '%':>7} "
                f"{fmt(cb[str(SERVER_CORE)], '.0f') + '%':>6} "
                f"{fmt(cb[str(LOADGEN_CORE)], '.0f') + '%':>6}"
            )

    for name, s in summary.items():
        if s.get("listen_overflows"):
            lines.append(
                f"  ! {name}: {s['listen_overflows']} listen-queue overflows over "
                f"{s['runs']} runs (those connections waited for a SYN retransmit)"
            )

    # ratios vs baseline
    bnames = [b for b in BASELINES.get(scenario, []) if b in summary] if pairs is None else []
    ratios: dict = {}
    goals: list[dict] = []
    controls_out: list[dict] = []
    if pairs is not None:
        for name, base, goal in pairs:
            g = compare_pair(scenario, summary, name, base, goal)
            if scenario != "idle":
                g.update(paired_ratios(runs.get(name, []), runs.get(base, [])))
                if g.get("paired_median") is not None:
                    g["text"] += (
                        f"  (round by round: median {g['paired_median']:.2f}x, "
                        f"{g['paired_min']:.2f}x..{g['paired_max']:.2f}x over "
                        f"{g['paired_n']} rounds, {g['paired_wins']} at or above 1.0x)"
                    )
            goals.append(g)
            if g.get("ratio") is not None:
                ratios[name] = g["ratio"]
            lines.append(f"  {name} / {base}: {g['text']}")
        for name, base in controls or []:
            c = compare_control(summary, runs, name, base)
            controls_out.append(c)
            lines.append(f"  {name} / {base}: {c['text']}")
    elif bnames:
        if scenario == "idle":
            base = bnames[0]
            bval = summary[base].get("median_rss_hold_kb")
            label = base
            for name, s in summary.items():
                if name == base or not bval or not s.get("median_rss_hold_kb"):
                    continue
                r = s["median_rss_hold_kb"] / bval
                ratios[name] = r
                lines.append(f"  RSS held-open: {name} / {label} = {r:.2f}x  (lower is better)")
        else:
            base = max(bnames, key=lambda b: summary[b]["median_ops_per_sec"] or 0)
            bval = summary[base]["median_ops_per_sec"]
            label = f"max({', '.join(bnames)})" if len(bnames) > 1 else base
            for name, s in summary.items():
                if name == base or not bval or s["median_ops_per_sec"] is None:
                    continue
                r = s["median_ops_per_sec"] / bval
                ratios[name] = r
                lines.append(f"  {name} / {label} = {r:.2f}x   [{label} = {base}]")
    # loadgen-not-the-bottleneck check
    if scenario != "idle" and summary:
        worst_lg = max((s["max_loadgen_cpu_pct"] or 0) for s in summary.values())
        worst_core1 = max(
            (s["median_core_busy_pct"][str(LOADGEN_CORE)] or 0) for s in summary.values()
        )
        min_srv = min((s["median_server_cpu_pct"] or 0) for s in summary.values())
        verdict = (
            "OK"
            if worst_lg < 80 and worst_core1 < 90
            else f"WARNING: {'load generator' if tool == 'loadgen' else tool} may be a bottleneck"
        )
        lines.append(
            f"  bottleneck check: {tool} process <= {worst_lg:.0f}% of core {LOADGEN_CORE} "
            f"(core {LOADGEN_CORE} busy incl. softirq <= {worst_core1:.0f}%), "
            f"servers >= {min_srv:.0f}% of core {SERVER_CORE} -> {verdict}"
        )
        if min_srv < 85:
            lines.append("  note: a server below ~85% CPU is not saturated; look at errors/losses")
    out = {"contenders": summary, "ratios": ratios}
    if pairs is not None:
        out["goals"] = goals
    if controls_out:
        out["controls"] = controls_out
    return lines, out


def paired_ratios(contender: list[dict], baseline: list[dict]) -> dict:
    """Per-round ratios of ops/s.  Both run in every round (in an order that
    rotates), so a round's ratio is measured under nearly the same machine
    conditions, which drift between rounds (CPU steal on the VM): their
    median is less noisy than the ratio of the two medians."""
    base = {r["round"]: r["ops_per_sec"] for r in baseline if r.get("ops_per_sec")}
    rs = sorted(
        r["ops_per_sec"] / base[r["round"]]
        for r in contender
        if r.get("round") in base and r.get("ops_per_sec") is not None
    )
    if not rs:
        return {}
    return {
        "paired_median": median(rs),
        "paired_min": rs[0],
        "paired_max": rs[-1],
        "paired_n": len(rs),
        "paired_wins": sum(1 for r in rs if r >= 1.0),
    }


def compare_pair(scenario: str, summary: dict, name: str, base: str, goal: float | None) -> dict:
    """One sync-suite comparison: ratio(s) and whether the goal is met.
    ops/s: median(name) / median(base) >= goal.  idle (goal None): name served
    every connection in every run and its median peak RSS is below base's."""
    g: dict = {"scenario": scenario, "contender": name, "baseline": base, "goal": goal}
    s, b = summary.get(name), summary.get(base)
    if s is None or b is None:
        missing = " and ".join(x for x, y in ((name, s), (base, b)) if y is None)
        g.update(met=None, text=f"no result for {missing}")
        return g
    if scenario == "idle":
        served = s["min_succeeded"] == s["conns"] and s["max_failed"] == 0
        # Memory is compared only between rounds that held every connection:
        # a server that failed some holds fewer and so needs less.
        held = (
            s["median_rss_hold_all_served_kb"] / b["median_rss_hold_all_served_kb"]
            if s.get("median_rss_hold_all_served_kb") and b.get("median_rss_hold_all_served_kb")
            else None
        )
        peak = (
            s["median_hwm_all_served_kb"] / b["median_hwm_all_served_kb"]
            if s.get("median_hwm_all_served_kb") and b.get("median_hwm_all_served_kb")
            else None
        )
        met = served and peak is not None and peak < 1.0
        verdict = "met" if met else "NOT met"
        if served and peak is None:
            met, verdict = None, "not comparable: the baseline never served every connection"
        g.update(
            ratio=peak,
            held_ratio=held,
            served=served,
            met=met,
            text=(
                f"served {s['min_succeeded']}/{s['conns']} (stdlib {b['min_succeeded']}/"
                f"{b['conns']}; all of them in {s['all_served_rounds']} and "
                f"{b['all_served_rounds']} of {s['runs']} and {b['runs']} rounds), "
                f"peak RSS {fmt(peak, '.2f')}x over those rounds, held RSS "
                f"{fmt(held, '.2f')}x (lower is better)  goal: all served, "
                f"peak < 1.0x -> {verdict}"
            ),
        )
        return g
    sv, bv = s["median_ops_per_sec"], b["median_ops_per_sec"]
    ratio = sv / bv if sv is not None and bv else None
    met = ratio is not None and ratio >= goal and s["errors"] == 0
    note = f"; {s['errors']} errors" if s["errors"] else ""
    g.update(
        ratio=ratio,
        met=met,
        text=(f"{fmt(ratio, '.2f')}x  goal >= {goal:.1f}x -> {'met' if met else 'NOT met'}{note}"),
    )
    return g


def compare_control(summary: dict, runs: dict, name: str, base: str) -> dict:
    """An A/A control: the baseline's own server, run as one more contender,
    against the baseline.  The same ratios as a pair's, and no goal: it says
    how far apart two identical servers measure in this run."""
    c: dict = {"contender": name, "baseline": base}
    s, b = summary.get(name), summary.get(base)
    if s is None or b is None:
        missing = " and ".join(x for x, y in ((name, s), (base, b)) if y is None)
        c.update(ratio=None, text=f"A/A control: no result for {missing}")
        return c
    sv, bv = s["median_ops_per_sec"], b["median_ops_per_sec"]
    c["ratio"] = sv / bv if sv is not None and bv else None
    c.update(paired_ratios(runs.get(name, []), runs.get(base, [])))
    text = f"A/A control (the same server twice): {fmt(c['ratio'], '.2f')}x"
    if c.get("paired_median") is not None:
        text += (
            f"  (round by round: median {c['paired_median']:.2f}x, "
            f"{c['paired_min']:.2f}x..{c['paired_max']:.2f}x over {c['paired_n']} rounds)"
        )
    c["text"] = text + "  [not a goal]"
    return c


# --------------------------------------------------------------------- main


def parse_contender(spec: str, table: list) -> None:
    """NAME=CMD or NAME:scen,scen=CMD -- replaces or adds a contender."""
    if "=" not in spec:
        raise SystemExit(f"--contender expects NAME=CMD, got {spec!r}")
    name, cmd = spec.split("=", 1)
    scen = None
    if ":" in name:
        name, s = name.split(":", 1)
        scen = tuple(x for x in s.split(",") if x)
        bad = set(scen) - set(KNOWN_SCENARIOS)
        if bad:
            raise SystemExit(f"unknown scenarios {bad} in --contender {spec!r}")
    argv = shlex.split(cmd)
    for i, (n, sc, _) in enumerate(table):
        if n == name:
            table[i] = (name, scen or sc, argv)
            return
    table.append((name, scen or TCP, argv))


def wrk_version(wrk: str | None) -> str | None:
    if wrk is None:
        return None
    proc = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    first = (proc.stdout or proc.stderr).splitlines()
    return first[0].strip() if first else "?"


def suite_verdict(
    scenarios: list[str], pairs_of: dict, results: dict, controls_of: dict | None = None
) -> list[str]:
    """One line per (scenario, pair) of a pairs suite: ratio, goal, met; under
    it, the A/A control of the pair's baseline, where the scenario has one."""
    lines = []
    for scen in scenarios:
        res = results.get(scen, {})
        for name, base, _goal in pairs_of.get(scen, []):
            cls = name.split(".", 1)[-1]
            if "skipped" in res:
                text = f"SKIPPED: {res['skipped']}"
            else:
                g = next((x for x in res.get("goals", []) if x["contender"] == name), None)
                text = g["text"] if g else "no result"
            lines.append(f"  {scen:<15} {cls:<20} {text}")
            if "skipped" in res:
                continue
            for control, cbase in (controls_of or {}).get(scen, []):
                if cbase != base:
                    continue
                c = next((x for x in res.get("controls", []) if x["contender"] == control), None)
                if c is not None:  # absent where --only left the control out
                    lines.append(f"  {'':<15} {'':<20} {c['text']}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--suite",
        choices=sorted(SUITES),
        default="async",
        help="async: the async servers vs trio/anyio peers (default); "
        "sync: trio_socketserver.sync vs the stdlib socketserver, same handlers",
    )
    ap.add_argument("--quick", action="store_true", help="2 rounds, short runs (< 2 min)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 2)")
    ap.add_argument(
        "--scenarios",
        default=None,
        help=f"default: the suite's (async: {','.join(ALL_SCENARIOS)}; "
        f"sync: {','.join(SYNC_SCENARIOS)})",
    )
    ap.add_argument(
        "--contender",
        action="append",
        default=[],
        metavar="NAME[:SCEN,..]=CMD",
        help="add a contender or replace a named one's command",
    )
    ap.add_argument("--only", default=None, help="comma-separated contender names to run")
    ap.add_argument("--host", default="127.0.0.1", help="127.0.0.1 or ::1")
    ap.add_argument(
        "--python", default=None, help="interpreter for {python} in commands (default: repo .venv)"
    )
    ap.add_argument("--idle-conns", type=int, default=None)
    ap.add_argument(
        "--sync-backlog",
        type=int,
        default=SYNC_BACKLOG,
        help=f"request_queue_size of both sides in the sync suite (default {SYNC_BACKLOG}; "
        "0: the classes' own, 5)",
    )
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        help="override measured seconds for every scenario but idle",
    )
    ap.add_argument("--out", default=str(RESULTS / "latest.json"))
    args = ap.parse_args()

    if args.host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("loopback only: --host must be 127.0.0.1 or ::1")
    host = "127.0.0.1" if args.host == "localhost" else args.host
    if os.cpu_count() is None or os.cpu_count() < 2:
        raise SystemExit("need at least 2 cores (server on core 0, loadgen on core 1)")

    python = args.python
    if python is None:
        venv = REPO / ".venv" / "bin" / "python"
        python = str(venv) if venv.exists() else sys.executable
    rounds = args.rounds or (2 if args.quick else 5)
    params = {k: dict(v) for k, v in (QUICK if args.quick else FULL).items()}
    if args.duration:
        for k in params:
            if k != "idle":
                params[k]["duration"] = args.duration
    if args.idle_conns:
        params["idle"]["conns"] = args.idle_conns
    suite = SUITES[args.suite]
    pairs_of = suite["pairs"]
    controls_of = suite["controls"]
    if args.scenarios is None:
        scenarios = list(suite["scenarios"])
    else:
        scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in KNOWN_SCENARIOS:
            raise SystemExit(f"unknown scenario {s!r}")
    wrk = shutil.which("wrk")
    no_wrk = [s for s in scenarios if params[s].get("runner") == "wrk"] if wrk is None else []
    if no_wrk:
        log(
            f"!! wrk is NOT installed: {', '.join(no_wrk)} will be SKIPPED "
            "(install it with: apt-get install -y wrk)"
        )

    # file descriptors: servers and loadgen get soft := hard (preexec_fn)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = params["idle"]["conns"] + 64
    if "idle" in scenarios and hard < need:
        new = max(100, hard - 64)
        log(f"! RLIMIT_NOFILE hard limit {hard} < {need}: idle reduced to {new} conns")
        params["idle"]["conns"] = new

    table = list(suite["contenders"])
    for spec in args.contender:
        parse_contender(spec, table)
    only = set(args.only.split(",")) if args.only else None

    build_loadgen()

    sysinfo = {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "somaxconn": read_first("/proc/sys/net/core/somaxconn"),
        "tcp_max_syn_backlog": read_first("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
        "ip_local_port_range": read_first("/proc/sys/net/ipv4/ip_local_port_range").split(),
        "tcp_tw_reuse": read_first("/proc/sys/net/ipv4/tcp_tw_reuse"),
        "nofile": [soft, hard],
        "server_python": python,
        "harness_python": sys.version.split()[0],
    }
    if args.suite != "async" or any(s not in ALL_SCENARIOS for s in scenarios):
        sysinfo["wrk"] = wrk_version(wrk)
    log(
        f"host {host}; server core {SERVER_CORE}, loadgen core {LOADGEN_CORE}; "
        f"somaxconn={sysinfo['somaxconn']} tcp_tw_reuse={sysinfo['tcp_tw_reuse']} "
        f"ports={'-'.join(sysinfo['ip_local_port_range'])} nofile={soft}/{hard}; "
        f"{'quick' if args.quick else 'full'}, {rounds} rounds"
        + ("" if args.suite == "async" else f"; suite {args.suite}, backlog {args.sync_backlog}")
    )

    # resolve contenders per scenario; skip missing scripts with a notice
    active: dict[str, list[tuple[str, list[str]]]] = {}
    notices = set()
    for scen in scenarios:
        lst = []
        for name, scs, cmd in table:
            if scen not in scs or (only and name not in only):
                continue
            subst = {"{python}": python, "{sync_backlog}": str(args.sync_backlog)}
            argv = [subst.get(a, a) for a in cmd]
            missing = [a for a in argv if a.endswith(".py") and not (REPO / a).exists()]
            if missing:
                notices.add(f"skip {name}: {missing[0]} does not exist (yet)")
                continue
            lst.append((name, argv))
        active[scen] = lst
    for n in sorted(notices):
        log("  notice: " + n)

    t_start = time.monotonic()
    report: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sysinfo": sysinfo,
        "quick": args.quick,
        "rounds": rounds,
        # the async suite's four always, as before; others when they run
        "params": {k: v for k, v in params.items() if k in ALL_SCENARIOS or k in scenarios},
        "host": host,
        "scenarios": {},
    }
    if args.suite != "async":
        report["suite"] = args.suite
        report["sync_backlog"] = args.sync_backlog
    all_lines: list[str] = []
    for scen in scenarios:
        cont = active[scen]
        p = params[scen]
        tool = "wrk" if p.get("runner") == "wrk" else "loadgen"
        if scen in no_wrk:
            log(f"\n== {scen}: SKIPPED, wrk is not installed (apt-get install -y wrk)")
            report["scenarios"][scen] = {"skipped": "wrk is not installed"}
            continue
        if not cont:
            log(f"\n== {scen}: no contenders")
            continue
        desc = (
            f"{p['conns']} conns"
            if scen == "idle"
            else f"{p['duration']} s + {p['warmup']} s warmup"
        )
        what = " ".join(p["args"])
        if tool == "wrk":
            what = "wrk -t1 " + " ".join(shlex.quote(a) for a in p["args"])
        log(f"\n== {scen} ({what}; {desc}) ==")
        runs: dict[str, list[dict]] = {name: [] for name, _ in cont}
        for rnd in range(rounds):
            k = rnd % len(cont)
            order = cont[k:] + cont[:k]  # rotate the order every round
            for name, argv in order:
                try:
                    res = run_one(name, argv, scen, p, host, rnd + 1)
                except Exception as exc:  # report and go on with the next run
                    log(f"  r{rnd + 1} {name:<26} FAILED: {exc}")
                    continue
                res["round"] = rnd + 1
                runs[name].append(res)
                if scen == "idle":
                    log(
                        f"  r{rnd + 1} {name:<26} {res['succeeded']}/{res['conns']} ok, "
                        f"held RSS {mb(res.get('server_rss_hold_kb'))} MB, "
                        f"peak {mb(res.get('server_hwm_kb'))} MB, "
                        f"connect {res['connect_seconds']:.2f} s, errors {res['errors']}"
                    )
                else:
                    log(
                        f"  r{rnd + 1} {name:<26} {res['ops_per_sec']:>10.0f} ops/s  "
                        f"errors {res['errors']:<4} srv cpu {fmt(res['server_cpu_pct'])}%  "
                        f"{tool} cpu {fmt(res['loadgen_cpu_pct'])}%"
                    )
                overflows = res.get("listen_drops", {}).get("ListenOverflows", 0)
                if overflows:
                    log(f"     {name}: {overflows} listen-queue overflows in this run")
        runs = {k: v for k, v in runs.items() if v}
        pairs = None if pairs_of is None else pairs_of.get(scen, [])
        controls = [c for c in controls_of.get(scen, []) if c[0] in runs]
        lines, summ = summarize(scen, runs, pairs, tool, controls)
        log(f"-- {scen} summary (median of {rounds} rounds) --")
        for line in lines:
            log(line)
        all_lines += [f"[{scen}]", *lines]
        report["scenarios"][scen] = {"runs": runs, **summ}

    if pairs_of is not None:
        verdict = suite_verdict(scenarios, pairs_of, report["scenarios"], controls_of)
        log(f"\n== {args.suite} suite: sync adapter / stdlib, median of {rounds} rounds ==")
        for line in verdict:
            log(line)
        if args.quick:
            log("  (--quick: smoke-test figures, not a measurement)")

    report["elapsed_s"] = round(time.monotonic() - t_start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    log(f"\nwrote {out} ({report['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
