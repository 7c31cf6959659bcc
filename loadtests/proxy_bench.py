#!/usr/bin/env python3
"""Gateway vs nginx as a reverse proxy: same backend, same load generator, same core, one run.

Starts (all on loopback, on free ports, in a temp dir):
  backend  nginx, 1 worker, CPU 1: ``/`` -> "ok\\n", ``/big`` -> a 100 MiB file
  proxy    nginx, 1 worker, CPU 0: proxy_pass to the backend, HTTP/1.1, upstream keepalive 64
  gateway  ``gateway serve`` (static backend -> the backend nginx), CPU 0
then measures, with wrk on CPU 1:
  throughput  wrk -c64 against direct / nginx / gateway, several rounds in rotating order (median)
  latency     wrk -c1 p50/p99; "added" = target - direct
  memory      gateway VmRSS/VmHWM after the load; peak RSS while a slow reader pulls /big
and prints a table, writes loadtests/results/proxy_bench.json, exits 1 if anything failed
(non-2xx, socket errors, a process died, /big incomplete or corrupted), 2 with
--fail-on-targets if a target is missed. See loadtests/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "bench.default.example.com"
MIB = 1024 * 1024
HERE = Path(__file__).resolve().parent
REPO = HERE.parent

TARGETS = {
    "throughput_ratio_min": 0.30,  # gateway req/s / nginx req/s (aim 0.50)
    "throughput_ratio_aim": 0.50,
    "added_p50_ms_max": 0.3,
    "added_p99_ms_max": 1.0,
    "rss_after_load_mib_max": 150.0,
    "rss_stream_peak_mib_max": 120.0,
}


class BenchError(Exception):
    """Something failed (as opposed to a target missed)."""


# -- processes ---------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    argv: list[str]


@dataclass
class Stack:
    """Every process the bench starts, each in its own session so its whole group can be killed."""

    workdir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=cwd,
            )
        proc = Proc(name, popen, log, argv)
        self.procs.append(proc)
        return proc

    def check_alive(self) -> None:
        for p in self.procs:
            if p.popen.poll() is not None:
                raise BenchError(f"{p.name} exited with {p.popen.returncode}; log:\n{tail(p.log)}")

    def stop(self, proc: Proc, grace: float = 10.0) -> None:
        if proc.popen.poll() is None:
            killpg(proc.popen.pid, signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        killpg(proc.popen.pid, signal.SIGKILL)  # stragglers in the group (nginx workers)
        try:
            proc.popen.wait(2)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()


def killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def foreign_load(ours: set[int]) -> list[str]:
    """Other benchmarks or test runs on this machine (not in our process groups): they skew the numbers."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if os.getpgid(pid) in ours or pid == os.getpid():
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        cmd = b" ".join(argv).decode(errors="replace")
        if re.search(r"(^|/)(wrk|hey|nginx|pytest|locust|ab)( |$)|gateway (serve|modelserver)|-m (pytest|gateway)", cmd):
            found.append(f"{pid} {cmd[:120]}")
    return found


def http_get(port: int, path: str = "/", timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": HOST})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(stack: Stack, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            status, body = http_get(port)
            if status == 200 and body == b"ok\n":
                return
            last = (status, body[:200])
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise BenchError(f"port {port} not ready after {timeout}s: {last}")


# -- configs -----------------------------------------------------------------------------------
def nginx_common(d: Path, name: str) -> tuple[str, str]:
    tmp = d / f"{name}-tmp"
    tmp.mkdir(exist_ok=True)
    # As root the workers run as nobody: they must be able to read the prefix and the files.
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\n"
        f"pid {d}/{name}.pid;\n"
        f"error_log {d}/{name}-error.log warn;\n"
        "events { worker_connections 4096; multi_accept on; }\n"
    ), (
        "    access_log off;\n"
        "    keepalive_requests 1000000;\n"
        "    keepalive_timeout 75s;\n"
        "    sendfile on;\n"
        "    tcp_nopush on;\n"
        f"    client_body_temp_path {tmp}/body;\n"
        f"    proxy_temp_path {tmp}/proxy;\n"
        f"    fastcgi_temp_path {tmp}/fastcgi;\n"
        f"    uwsgi_temp_path {tmp}/uwsgi;\n"
        f"    scgi_temp_path {tmp}/scgi;\n"
    )


def backend_conf(d: Path, port: int, www: Path) -> str:
    top, http = nginx_common(d, "backend")
    return (
        top + "http {\n" + http + "    default_type text/plain;\n"
        f"    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n"
        '        location = / { return 200 "ok\\n"; }\n'
        f"        location = /big {{ root {www}; }}\n"
        "    }\n}\n"
    )


def proxy_conf(d: Path, port: int, backend_port: int) -> str:
    top, http = nginx_common(d, "proxy")
    return (
        top + "http {\n" + http + f"    upstream backend {{\n        server 127.0.0.1:{backend_port};\n        keepalive 64;\n"
        "        keepalive_requests 1000000;\n    }\n"
        f"    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n"
        "        location / {\n"
        "            proxy_pass http://backend;\n"
        "            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n'
        "            proxy_set_header Host $host;\n"
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "            proxy_set_header X-Forwarded-Proto $scheme;\n"
        "        }\n    }\n}\n"
    )


def gateway_conf(backend_port: int) -> str:
    return (
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: static\n---\n"
        "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\n"
        "metadata: {name: bench, namespace: default}\nspec:\n  default:\n"
        f'    endpoints: ["http://127.0.0.1:{backend_port}"]\n'
    )


def make_big(path: Path, size: int) -> str:
    """A file of `size` bytes that is not all zeros (so truncation or reordering shows), its sha256."""
    block = hashlib.sha256(b"proxy_bench").digest() * (MIB // 32)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            chunk = (i.to_bytes(8, "big") + block)[: min(MIB, left)]
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
            i += 1
    return digest.hexdigest()


# -- wrk ---------------------------------------------------------------------------------------
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * UNITS[m.group(2)]


CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every process in the process group `pgid` (all their threads), in seconds."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        # fields[0] is the state (field 3 of proc(5)): pgrp is field 5, utime 14, stime 15
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def run_wrk(
    cmd_prefix: list[str],
    port: int,
    conns: int,
    duration: float,
    log: list[dict[str, Any]],
    threads: int = 1,
    cpu_of: int | None = None,
) -> dict[str, Any]:
    """One wrk run; with `cpu_of` (a process group), also the CPU time that group spent per request."""
    argv = cmd_prefix + [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{duration:g}s",
        "--latency",
        "--timeout",
        "5s",
        "-H",
        f"Host: {HOST}",
        f"http://127.0.0.1:{port}/",
    ]
    cpu_before = group_cpu_seconds(cpu_of) if cpu_of is not None else 0.0
    proc = subprocess.run(argv, capture_output=True, text=True, start_new_session=True, timeout=duration + 30, check=False)
    cpu = group_cpu_seconds(cpu_of) - cpu_before if cpu_of is not None else 0.0
    out = proc.stdout
    res: dict[str, Any] = {"cmd": shlex.join(argv), "rc": proc.returncode}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    res["requests"] = int(m.group(1)) if m else 0
    if cpu_of is not None:
        # CPU time per request barely moves with load from other processes on the machine; req/s does.
        res["cpu_s"] = round(cpu, 2)
        res["cpu_us_per_req"] = round(cpu / res["requests"] * 1e6, 2) if res["requests"] else 0.0
    lat = {}
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.MULTILINE):
        lat[f"p{pct}_ms"] = to_ms(value)
    res.update(lat)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    problems = []
    if proc.returncode != 0 or "Requests/sec" not in out:
        problems.append(f"wrk failed (rc {proc.returncode}): {proc.stderr.strip()[:300]}")
    if res["requests"] == 0:
        problems.append("no requests completed")
    if res["non2xx"]:
        problems.append(f"{res['non2xx']} non-2xx/3xx responses")
    if any(res["socket_errors"].values()):
        problems.append(f"socket errors {res['socket_errors']}")
    res["problems"] = problems
    log.append(res)
    return res


# -- memory ------------------------------------------------------------------------------------
def proc_mem(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0  # kB -> MiB
    return out


def reset_hwm(pid: int) -> bool:
    """Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples a process's RSS every 100 ms in a thread, between `start()` and `stop()`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[float] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.samples.append(proc_mem(self.pid)["VmRSS"])
            except OSError:
                return
            self.stopped.wait(0.1)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def read_response_head(sock: socket.socket) -> tuple[int, int, bytes]:
    """Status, Content-Length (-1 without one) and the body bytes that came with the head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            raise BenchError("connection closed before the response head")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = -1
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, length, rest


def recv_exactly(sock: socket.socket, view: bytearray) -> int:
    """Fill `view` (fewer bytes only at the end of the stream); the number of bytes read."""
    got = 0
    while got < len(view):
        n = sock.recv_into(memoryview(view)[got:], len(view) - got)
        if n == 0:
            break
        got += n
    return got


def slow_download(port: int, path: str, chunk: int, interval: float, pid: int, timeout: float) -> dict[str, Any]:
    """Read `path` through `port` `chunk` bytes every `interval` s with a small receive buffer,
    sampling the gateway's RSS every 100 ms."""
    sampler = RssSampler(pid)
    hwm_reset = reset_hwm(pid)
    before = proc_mem(pid)
    sampler.start()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(10)
    digest = hashlib.sha256()
    started = time.monotonic()
    status = 0
    length = -1
    received = 0
    error = None
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        status, length, rest = read_response_head(sock)
        digest.update(rest)
        received = len(rest)
        view = bytearray(chunk)
        while True:
            got = recv_exactly(sock, view)  # exactly `chunk` bytes per tick (or what is left)
            if got:
                digest.update(memoryview(view)[:got])
                received += got
            if got < chunk or (length >= 0 and received >= length):
                break
            if time.monotonic() - started > timeout:
                raise BenchError(f"slow download took longer than {timeout}s")
            time.sleep(interval)
    except (OSError, BenchError, ValueError, IndexError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
        elapsed = time.monotonic() - started
        sampler.stop()
    after = proc_mem(pid)
    return {
        "status": status,
        "content_length": length,
        "received": received,
        "sha256": digest.hexdigest(),
        "seconds": round(elapsed, 2),
        "rss_before_mib": round(before["VmRSS"], 1),
        "rss_peak_sampled_mib": round(max(sampler.samples or [0.0]), 1),
        "hwm_after_mib": round(after["VmHWM"], 1),
        "hwm_reset": hwm_reset,
        "rss_after_mib": round(after["VmRSS"], 1),
        "samples": len(sampler.samples),
        "error": error,
    }


# -- main --------------------------------------------------------------------------------------
def rotate(items: list[str], r: int) -> list[str]:
    r %= len(items)
    return items[r:] + items[:r]


def pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass

    def version(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    import httptools
    import uvloop

    return {
        "nproc": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "uvloop": getattr(uvloop, "__version__", "?"),
        "httptools": httptools.__version__,
        "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "-v"]),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="~30 s: 1 round of 3 s, no warm-up, 2 s latency runs")
    p.add_argument("--rounds", type=int, help="throughput rounds (default 5, quick 1)")
    p.add_argument("--duration", type=float, help="seconds per throughput run (default 6, quick 3)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections for throughput (default 64)")
    p.add_argument("--lat-rounds", type=int, help="latency rounds at -c1 (default 5, quick 1)")
    p.add_argument("--lat-duration", type=float, help="seconds per latency run (default 2)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per target (default 2, quick 0)")
    p.add_argument("--big-mib", type=int, default=100, help="size of /big (default 100 MiB)")
    p.add_argument("--slow-chunk", type=int, default=64 * 1024, help="slow reader: bytes per read (default 64 KiB)")
    p.add_argument("--slow-interval", type=float, default=0.005, help="slow reader: pause between reads (default 5 ms)")
    p.add_argument("--proxy-cpu", type=int, default=0, help="CPU for the gateway and the nginx proxy (default 0)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU for the backend and wrk (default 1)")
    p.add_argument(
        "--gateway-cmd",
        default=f"{shlex.quote(sys.executable)} -m gateway",
        help="how to run the gateway (default: this python -m gateway)",
    )
    p.add_argument("--profile", metavar="FILE", help="run the gateway under cProfile, dump stats to FILE")
    p.add_argument(
        "--duel",
        metavar="TREE",
        help="instead: this tree's gateway and TREE's (another checkout) side by side on the proxy CPU, each under its own "
        "wrk at the same time, so load from other processes hits both alike; prints requests and CPU us/req of each",
    )
    p.add_argument("--out", help="JSON results path (default results/proxy_bench.json, with --duel results/proxy_duel.json)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    p.add_argument("--fail-on-targets", action="store_true", help="exit 2 when a target is missed")
    a = p.parse_args(argv)
    a.out = a.out or str(HERE / "results" / ("proxy_duel.json" if a.duel else "proxy_bench.json"))
    a.rounds = a.rounds or (1 if a.quick else 5)
    a.duration = a.duration or (3.0 if a.quick else 6.0)
    a.lat_rounds = a.lat_rounds or (1 if a.quick else 5)
    a.lat_duration = a.lat_duration or 2.0
    a.warmup = a.warmup if a.warmup is not None else (0.0 if a.quick else 2.0)
    return a


def choose_cpus(args: argparse.Namespace) -> tuple[int | None, int | None, str | None]:
    cpus = os.sched_getaffinity(0)
    if shutil.which("taskset") is None:
        return None, None, "taskset not found: nothing pinned"
    if args.proxy_cpu in cpus and args.load_cpu in cpus and args.proxy_cpu != args.load_cpu:
        return args.proxy_cpu, args.load_cpu, None
    if len(cpus) == 1:
        only = next(iter(cpus))
        return only, only, f"one CPU only: everything pinned to CPU {only}; numbers are not comparable to 2-CPU runs"
    a, b = sorted(cpus)[:2]
    return a, b, f"CPUs {args.proxy_cpu}/{args.load_cpu} not usable, using {a}/{b}"


def on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(f"proxy_bench: {tool} not found on PATH", file=sys.stderr)
            return 1
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: it is ignored when started with `&`
        signal.signal(sig, on_signal)
    proxy_cpu, load_cpu, cpu_note = choose_cpus(args)
    workdir = Path(tempfile.mkdtemp(prefix="proxy_bench-"))
    os.chmod(workdir, 0o755)
    stack = Stack(workdir)
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "cpus": {"gateway_and_nginx_proxy": proxy_cpu, "backend_and_wrk": load_cpu, "note": cpu_note},
        "targets": TARGETS,
        "commands": {},
        "wrk_runs": [],
        "problems": [],
    }
    wrk_log: list[dict[str, Any]] = result["wrk_runs"]
    t0 = time.monotonic()
    rc = 0
    try:
        if args.duel:
            rc = duel(args, stack, workdir, result, proxy_cpu, load_cpu)
        else:
            rc = run(args, stack, workdir, result, wrk_log, proxy_cpu, load_cpu, cpu_note)
    except KeyboardInterrupt:
        print("\nproxy_bench: interrupted, cleaning up", file=sys.stderr)
        result["problems"].append("interrupted")
        rc = 130
    except BenchError as exc:
        print(f"proxy_bench: FAILED: {exc}", file=sys.stderr)
        result["problems"].append(str(exc))
        rc = 1
    except Exception as exc:  # noqa: BLE001  (still clean up and write what we have)
        import traceback

        traceback.print_exc()
        result["problems"].append(f"{type(exc).__name__}: {exc}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        stack.stop_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        result["elapsed_s"] = round(time.monotonic() - t0, 1)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results: {out}  ({result['elapsed_s']} s)")
        if args.keep:
            print(f"temp dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return rc


def run(
    args: argparse.Namespace,
    stack: Stack,
    d: Path,
    result: dict[str, Any],
    wrk_log: list[dict[str, Any]],
    proxy_cpu: int | None,
    load_cpu: int | None,
    cpu_note: str | None,
) -> int:
    if cpu_note:
        print(f"note: {cpu_note}")
    big_size = args.big_mib * MIB
    big_sha, ports, gw_pid = start_targets(args, stack, d, result, proxy_cpu, load_cpu)
    wrk = pin(load_cpu)
    record_wrk_commands(args, result["commands"], wrk)
    watch = Watch(stack, result)
    watch.note_foreign()
    # 1. warm-up (not reported): pools filled, code paths hot
    if args.warmup > 0:
        print(f"warm-up {args.warmup:g} s per target ...", flush=True)
        for name in TARGET_NAMES:
            watch.check(run_wrk(wrk, ports[name], args.connections, args.warmup, []), name, "warm-up")
    ratio, per_round = measure_throughput(args, wrk, ports, wrk_log, watch, result)
    result["gateway_mem_after_load_mib"] = {k: round(v, 1) for k, v in proc_mem(gw_pid).items()}
    latency = measure_latency(args, wrk, ports, wrk_log, watch)
    result["latency_c1"] = latency
    result["gateway_mem_after_latency_mib"] = {k: round(v, 1) for k, v in proc_mem(gw_pid).items()}
    peak = measure_slow_stream(args, stack, ports["gateway"], gw_pid, big_size, big_sha, result)
    # 5. verdict
    checks = verdict(ratio, per_round, latency, result["gateway_mem_after_load_mib"], peak)
    result["checks"] = {k: {"ok": ok, "detail": detail} for k, (ok, detail) in checks.items()}
    print_table(result, args)
    if result["problems"]:
        print("FAILED:\n  " + "\n  ".join(result["problems"]))
        return 1
    if args.fail_on_targets and not all(ok for ok, _ in checks.values()):
        return 2
    return 0


TARGET_NAMES = ["direct", "nginx", "gateway"]
# Whose CPU time a target's throughput runs are charged with: the process serving the port wrk loads.
CPU_OF = {"direct": "backend", "nginx": "nginx_proxy", "gateway": "gateway"}


def start_targets(
    args: argparse.Namespace,
    stack: Stack,
    d: Path,
    result: dict[str, Any],
    proxy_cpu: int | None,
    load_cpu: int | None,
) -> tuple[str, dict[str, int], int]:
    """The backend nginx, the nginx proxy and the gateway, started and ready: (sha256 of /big, ports, gateway pid)."""
    www = d / "www"
    www.mkdir()
    os.chmod(www, 0o755)
    big_sha = make_big(www / "big", args.big_mib * MIB)
    os.chmod(www / "big", 0o644)

    ports = {"direct": free_port(), "nginx": free_port(), "gateway": free_port(), "admin": free_port()}
    (d / "backend.conf").write_text(backend_conf(d, ports["direct"], www))
    (d / "proxy.conf").write_text(proxy_conf(d, ports["nginx"], ports["direct"]))
    (d / "gateway.yaml").write_text(gateway_conf(ports["direct"]))
    result["configs"] = {n: (d / n).read_text() for n in ("backend.conf", "proxy.conf", "gateway.yaml")}

    cmds = result["commands"]
    argv = pin(load_cpu) + ["nginx", "-p", str(d), "-c", str(d / "backend.conf"), "-g", "daemon off;"]
    cmds["backend"] = shlex.join(argv)
    stack.start("backend", argv)
    wait_ready(stack, ports["direct"])

    argv = pin(proxy_cpu) + ["nginx", "-p", str(d), "-c", str(d / "proxy.conf"), "-g", "daemon off;"]
    cmds["nginx_proxy"] = shlex.join(argv)
    stack.start("nginx_proxy", argv)

    gw_base = shlex.split(args.gateway_cmd)
    if args.profile:
        gw_base = [sys.executable, "-m", "cProfile", "-o", str(Path(args.profile).resolve()), "-m", "gateway"]
    argv = (
        pin(proxy_cpu)
        + gw_base
        + [
            "serve",
            "-f",
            str(d / "gateway.yaml"),
            "--listen",
            f"127.0.0.1:{ports['gateway']}",
            "--admin-listen",
            f"127.0.0.1:{ports['admin']}",
            "--state-dir",
            str(d / "state"),
            "--log-level",
            "warning",
        ]
    )
    cmds["gateway"] = shlex.join(argv)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    gateway = stack.start("gateway", argv, env=env)
    wait_ready(stack, ports["nginx"])
    wait_ready(stack, ports["gateway"], timeout=30)
    gw_pid = gateway.popen.pid
    result["gateway_rss_idle_mib"] = round(proc_mem(gw_pid)["VmRSS"], 1)
    return big_sha, ports, gw_pid


def duel(
    args: argparse.Namespace, stack: Stack, d: Path, result: dict[str, Any], proxy_cpu: int | None, load_cpu: int | None
) -> int:
    """Two gateways (this tree's, `--duel TREE`'s) on the proxy CPU at once, each under its own wrk: they share whatever
    else runs there, so the ratio of their requests (and their CPU us/req) compares the two trees on a busy machine."""
    www = d / "www"
    www.mkdir()
    os.chmod(www, 0o755)
    backend = free_port()
    (d / "backend.conf").write_text(backend_conf(d, backend, www))
    (d / "gateway.yaml").write_text(gateway_conf(backend))
    stack.start("backend", pin(load_cpu) + ["nginx", "-p", str(d), "-c", str(d / "backend.conf"), "-g", "daemon off;"])
    wait_ready(stack, backend)
    trees = {"this": str(REPO), "other": str(Path(args.duel).resolve())}
    ports: dict[str, int] = {}
    groups: dict[str, int] = {}
    for name, tree in trees.items():
        ports[name] = free_port()
        argv = pin(proxy_cpu) + shlex.split(args.gateway_cmd) + ["serve", "-f", str(d / "gateway.yaml")]
        argv += ["--listen", f"127.0.0.1:{ports[name]}", "--admin-listen", f"127.0.0.1:{free_port()}"]
        argv += ["--state-dir", str(d / f"state-{name}"), "--log-level", "warning"]
        # cwd: `python -m` puts the working directory ahead of PYTHONPATH; each gateway must import its own tree.
        groups[name] = stack.start(name, argv, env=dict(os.environ, PYTHONPATH=tree), cwd=tree).popen.pid
    for name in trees:
        wait_ready(stack, ports[name], timeout=30)
    result["duel"] = {"trees": trees, "rounds": []}
    for r in range(args.rounds):
        before = {n: group_cpu_seconds(g) for n, g in groups.items()}
        with ThreadPoolExecutor(2) as pool:
            runs = dict(
                zip(trees, pool.map(lambda n: run_wrk(pin(load_cpu), ports[n], args.connections, args.duration, []), trees))
            )
        cpu = {n: group_cpu_seconds(g) - before[n] for n, g in groups.items()}
        stack.check_alive()
        row = {n: {"requests": runs[n]["requests"], "cpu_s": round(cpu[n], 2)} for n in trees}
        for n in trees:
            row[n]["cpu_us_per_req"] = round(cpu[n] / runs[n]["requests"] * 1e6, 2) if runs[n]["requests"] else 0.0
            result["problems"] += [f"duel {n}: {p}" for p in runs[n]["problems"]]
        result["duel"]["rounds"].append(row)
        ratio = runs["this"]["requests"] / runs["other"]["requests"] if runs["other"]["requests"] else 0.0
        print(
            f"round {r + 1}/{args.rounds}: "
            + "; ".join(f"{n} {row[n]['requests']} requests, {row[n]['cpu_us_per_req']:.2f} CPU us/req" for n in trees)
            + f"; this/other requests {ratio:.3f}",
            flush=True,
        )
    return 1 if result["problems"] else 0


def record_wrk_commands(args: argparse.Namespace, cmds: dict[str, str], wrk: list[str]) -> None:
    cmds["wrk_throughput"] = shlex.join(
        wrk
        + [
            "wrk",
            "-t1",
            f"-c{args.connections}",
            f"-d{args.duration:g}s",
            "--latency",
            "-H",
            f"Host: {HOST}",
            "http://127.0.0.1:PORT/",
        ]
    )
    cmds["wrk_latency"] = shlex.join(
        wrk + ["wrk", "-t1", "-c1", f"-d{args.lat_duration:g}s", "--latency", "-H", f"Host: {HOST}", "http://127.0.0.1:PORT/"]
    )


class Watch:
    """After each wrk run: foreign load noted, the stack still alive, the run's problems recorded."""

    def __init__(self, stack: Stack, result: dict[str, Any]) -> None:
        self.stack = stack
        self.result = result
        self.ours = {p.popen.pid for p in stack.procs}
        self.foreign: list[str] = result.setdefault("foreign_processes", [])

    def note_foreign(self) -> None:
        for line in foreign_load(self.ours):
            if line not in self.foreign:
                self.foreign.append(line)
                print(f"warning: another load on this machine: {line}", flush=True)

    def check(self, res: dict[str, Any], name: str, phase: str) -> None:
        self.note_foreign()
        self.stack.check_alive()
        for problem in res["problems"]:
            self.result["problems"].append(f"{phase} {name}: {problem}")


def measure_throughput(
    args: argparse.Namespace,
    wrk: list[str],
    ports: dict[str, int],
    wrk_log: list[dict[str, Any]],
    watch: Watch,
    result: dict[str, Any],
) -> tuple[float, list[float]]:
    """2. throughput, rotating order: (gateway/nginx ratio of the medians, ratio per round)."""
    targets = TARGET_NAMES
    rps: dict[str, list[float]] = {n: [] for n in targets}
    cpu: dict[str, list[float]] = {n: [] for n in targets}
    tput_lat: dict[str, list[dict[str, float]]] = {n: [] for n in targets}
    groups = {p.name: p.popen.pid for p in watch.stack.procs}  # each process runs in its own session: pgid = pid
    for r in range(args.rounds):
        for name in rotate(targets, r):
            print(f"throughput round {r + 1}/{args.rounds}: {name:8s}", end=" ", flush=True)
            res = run_wrk(wrk, ports[name], args.connections, args.duration, wrk_log, cpu_of=groups[CPU_OF[name]])
            res.update(phase="throughput", target=name, round=r + 1)
            watch.check(res, name, "throughput")
            rps[name].append(res["rps"])
            cpu[name].append(res["cpu_us_per_req"])
            tput_lat[name].append({k: res.get(k, 0.0) for k in ("p50_ms", "p99_ms")})
            print(
                f"{res['rps']:>10.0f} req/s  {res['cpu_us_per_req']:6.1f} CPU us/req  "
                f"p50 {res.get('p50_ms', 0):.3f} ms  p99 {res.get('p99_ms', 0):.3f} ms",
                " ".join(res["problems"]),
                flush=True,
            )
    tput = {
        n: {
            "rps_median": statistics.median(rps[n]),
            "rps_min": min(rps[n]),
            "rps_max": max(rps[n]),
            "rps_runs": rps[n],
            "cpu_us_per_req_median": statistics.median(cpu[n]),
            "cpu_us_per_req_runs": cpu[n],
            "p50_ms_median": statistics.median(x["p50_ms"] for x in tput_lat[n]),
            "p99_ms_median": statistics.median(x["p99_ms"] for x in tput_lat[n]),
        }
        for n in targets
    }
    nginx_rps = statistics.median(rps["nginx"])
    ratio = statistics.median(rps["gateway"]) / nginx_rps if nginx_rps else 0.0
    result["throughput"] = tput
    result["throughput_ratio_gateway_nginx"] = round(ratio, 3)
    # Same round = nginx and gateway measured a few seconds apart: less exposed to slow drifts.
    per_round = [g / n for g, n in zip(rps["gateway"], rps["nginx"]) if n]
    result["throughput_ratio_per_round"] = [round(x, 3) for x in per_round]
    nginx_cpu = statistics.median(cpu["nginx"])
    result["cpu_per_request_ratio_gateway_nginx"] = round(statistics.median(cpu["gateway"]) / nginx_cpu, 3) if nginx_cpu else 0.0
    return ratio, per_round


def measure_latency(
    args: argparse.Namespace, wrk: list[str], ports: dict[str, int], wrk_log: list[dict[str, Any]], watch: Watch
) -> dict[str, dict[str, float]]:
    """3. latency at one connection (medians per target, and what each proxy adds)."""
    targets = TARGET_NAMES
    lat: dict[str, list[dict[str, float]]] = {n: [] for n in targets}
    for r in range(args.lat_rounds):
        for name in rotate(targets, r):
            res = run_wrk(wrk, ports[name], 1, args.lat_duration, wrk_log)
            res.update(phase="latency", target=name, round=r + 1)
            watch.check(res, name, "latency")
            lat[name].append({k: res.get(k, 0.0) for k in ("p50_ms", "p90_ms", "p99_ms")} | {"rps": res["rps"]})
            print(
                f"latency round {r + 1}/{args.lat_rounds}: {name:8s} p50 {res.get('p50_ms', 0):.3f} ms  "
                f"p99 {res.get('p99_ms', 0):.3f} ms  ({res['rps']:.0f} req/s at -c1)",
                flush=True,
            )
    latency = {
        n: {k: round(statistics.median(x[k] for x in lat[n]), 4) for k in ("p50_ms", "p90_ms", "p99_ms", "rps")} for n in targets
    }
    for n in ("nginx", "gateway"):
        latency[n]["added_p50_ms"] = round(latency[n]["p50_ms"] - latency["direct"]["p50_ms"], 4)
        latency[n]["added_p99_ms"] = round(latency[n]["p99_ms"] - latency["direct"]["p99_ms"], 4)
    # Proxy paths cross CPUs twice more than the direct path; nginx pays that too, so
    # gateway - nginx is the gateway's own cost on top of what any proxy on that core adds.
    latency["gateway"]["over_nginx_p50_ms"] = round(latency["gateway"]["p50_ms"] - latency["nginx"]["p50_ms"], 4)
    latency["gateway"]["over_nginx_p99_ms"] = round(latency["gateway"]["p99_ms"] - latency["nginx"]["p99_ms"], 4)
    return latency


def measure_slow_stream(
    args: argparse.Namespace, stack: Stack, port: int, gw_pid: int, big_size: int, big_sha: str, result: dict[str, Any]
) -> float:
    """4. 100 MiB to a slow reader through the gateway; the gateway's peak RSS meanwhile."""
    print(
        f"slow reader: /big ({args.big_mib} MiB, {args.slow_chunk // 1024} KiB every "
        f"{args.slow_interval * 1000:g} ms) through the gateway ...",
        flush=True,
    )
    expected_s = big_size / args.slow_chunk * args.slow_interval
    stream = slow_download(port, "/big", args.slow_chunk, args.slow_interval, gw_pid, timeout=max(60.0, 4 * expected_s))
    stream["complete"] = stream["received"] == big_size and stream["content_length"] == big_size
    stream["sha256_ok"] = stream["sha256"] == big_sha
    peak: float = max(stream["rss_peak_sampled_mib"], stream["hwm_after_mib"] if stream["hwm_reset"] else 0.0)
    stream["rss_peak_mib"] = peak
    result["slow_stream"] = stream
    stack.check_alive()
    if stream["error"]:
        result["problems"].append(f"slow stream: {stream['error']}")
    if stream["status"] != 200 or not stream["complete"] or not stream["sha256_ok"]:
        result["problems"].append(
            f"slow stream: status {stream['status']}, {stream['received']} of {big_size} bytes, sha256 ok={stream['sha256_ok']}"
        )
    # Still serving after that? Several requests: the pool is LIFO, so the first ones reuse the
    # upstream connection that carried /big.
    after_stream = []
    for _ in range(3):
        try:
            after_stream.append(str(http_get(port, "/", timeout=3.0)[0]))
        except OSError as exc:
            after_stream.append(f"{type(exc).__name__}: {exc}")
    stream["requests_after"] = after_stream
    if any(x != "200" for x in after_stream):
        result["problems"].append(f"gateway after the slow stream, GET / x3: {after_stream}")
    return peak


def verdict(
    ratio: float, per_round: list[float], latency: dict[str, dict[str, float]], after: dict[str, float], peak: float
) -> dict[str, tuple[bool, str]]:
    return {
        "throughput_ratio": (
            ratio >= TARGETS["throughput_ratio_min"],
            f"{ratio:.0%} >= 30% (aim 50%); per round " + " ".join(f"{x:.0%}" for x in per_round),
        ),
        "added_p50": (
            latency["gateway"]["added_p50_ms"] <= TARGETS["added_p50_ms_max"],
            (
                f"{latency['gateway']['added_p50_ms']:.3f} ms <= 0.3 ms (nginx adds "
                f"{latency['nginx']['added_p50_ms']:.3f}; gateway - nginx "
                f"{latency['gateway']['over_nginx_p50_ms']:+.3f})"
            ),
        ),
        "added_p99": (
            latency["gateway"]["added_p99_ms"] <= TARGETS["added_p99_ms_max"],
            (
                f"{latency['gateway']['added_p99_ms']:.3f} ms <= 1 ms (nginx adds "
                f"{latency['nginx']['added_p99_ms']:.3f}; gateway - nginx "
                f"{latency['gateway']['over_nginx_p99_ms']:+.3f})"
            ),
        ),
        "rss_after_load": (after["VmHWM"] <= TARGETS["rss_after_load_mib_max"], f"HWM {after['VmHWM']:.1f} MiB <= 150 MiB"),
        "rss_stream_peak": (peak < TARGETS["rss_stream_peak_mib_max"], f"{peak:.1f} MiB < 120 MiB"),
    }


def print_table(result: dict[str, Any], args: argparse.Namespace) -> None:
    t = result["throughput"]
    lat = result["latency_c1"]
    m = result["machine"]
    print()
    print(f"proxy_bench  nproc={m['nproc']}  python {m['python']}  {m['nginx']}  {m['cpu_model']}")
    print(
        f"throughput: wrk -t1 -c{args.connections} -d{args.duration:g}s x {args.rounds} rounds (median); "
        f"latency: wrk -c1 -d{args.lat_duration:g}s x {args.lat_rounds} (median)"
    )
    print()
    print(
        f"{'target':9s} {'req/s':>9s} {'(min..max)':>15s} {'vs nginx':>8s} {'CPU us/req':>10s} {'p50':>8s} {'p99':>8s} "
        f"{'c1 p50':>8s} {'c1 p99':>8s} {'+p50':>7s} {'+p99':>7s}"
    )
    for n in ("direct", "nginx", "gateway"):
        share = t[n]["rps_median"] / t["nginx"]["rps_median"] if t["nginx"]["rps_median"] else 0.0
        added50 = f"{lat[n]['added_p50_ms']:+.3f}" if "added_p50_ms" in lat[n] else "-"
        added99 = f"{lat[n]['added_p99_ms']:+.3f}" if "added_p99_ms" in lat[n] else "-"
        spread = f"{t[n]['rps_min']:.0f}..{t[n]['rps_max']:.0f}"
        print(
            f"{n:9s} {t[n]['rps_median']:>9.0f} {spread:>15s} {share:>8.0%} {t[n]['cpu_us_per_req_median']:>10.1f} "
            f"{t[n]['p50_ms_median']:>8.3f} "
            f"{t[n]['p99_ms_median']:>8.3f} {lat[n]['p50_ms']:>8.3f} {lat[n]['p99_ms']:>8.3f} "
            f"{added50:>7s} {added99:>7s}"
        )
    print(f"(ms; p50/p99 under -c{args.connections}; c1 = one connection; +p50/+p99 = c1 added over direct)")
    print(
        "(CPU us/req: utime+stime of the serving process group over a throughput run / requests wrk counted; "
        f"gateway/nginx {result['cpu_per_request_ratio_gateway_nginx']:.2f}x; direct = the backend, which shares its CPU with wrk)"
    )
    s = result["slow_stream"]
    a = result["gateway_mem_after_load_mib"]
    print()
    print(
        f"gateway memory: idle {result['gateway_rss_idle_mib']:.1f} MiB, after load RSS {a['VmRSS']:.1f} MiB "
        f"(peak HWM {a['VmHWM']:.1f} MiB)"
    )
    print(
        f"slow reader /big: {s['received'] / MIB:.1f} of {s['content_length'] / MIB:.1f} MiB in {s['seconds']} s, "
        f"sha256 {'ok' if s['sha256_ok'] else 'MISMATCH'}; gateway RSS {s['rss_before_mib']:.1f} -> peak "
        f"{s['rss_peak_mib']:.1f} MiB (sampled {s['rss_peak_sampled_mib']:.1f}, HWM {s['hwm_after_mib']:.1f})"
    )
    print(f"GET / through the gateway after the stream: {', '.join(s.get('requests_after', []))}")
    if result.get("foreign_processes"):
        print(
            f"WARNING: {len(result['foreign_processes'])} foreign load process(es) ran during the bench "
            "(see foreign_processes in the JSON): numbers are skewed"
        )
    print()
    for name, c in result["checks"].items():
        print(f"  [{'PASS' if c['ok'] else 'MISS'}] {name:16s} {c['detail']}")


if __name__ == "__main__":
    sys.exit(main())
