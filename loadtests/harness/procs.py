"""Process start and stop for the scenarios: each process in its own session, optionally pinned to a
core, its output in a log file of the scenario's work folder; a Stack stops every process it started
(SIGTERM to the group, SIGKILL after a grace period) whatever happened."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class HarnessError(Exception):
    """A process died, never came up, or a tool is missing: the scenario cannot go on."""


class _Starting:
    """Whether a Stack is between forking a process and keeping it: an interrupt then would lose the process."""

    now = False
    pending = False


def interrupt(signum: int, frame: object) -> None:
    """The runner's SIGTERM and SIGINT handler: KeyboardInterrupt, held back while a process is being started
    (it is raised once the Stack holds the process, so stopping the run stops that process too)."""
    if _Starting.now:
        _Starting.pending = True
        return
    raise KeyboardInterrupt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin(cpu: int | None) -> list[str]:
    """A taskset prefix for one core, or nothing when there is one core or no taskset."""
    if cpu is None or len(cores()) < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cores()[cpu % len(cores())])]


def tool(name: str) -> str | None:
    """The path of a program, looked up in PATH and in the sbin folders Debian puts nginx and haproxy in."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        if os.access(f"{folder}/{name}", os.X_OK):
            return f"{folder}/{name}"
    return None


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class Proc:
    def __init__(self, name: str, argv: list[str], popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.argv, self.popen, self.log = name, argv, popen, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise HarnessError(f"{self.name} exited with {self.popen.returncode}:\n{tail(self.log)}")


class Stack:
    """The processes of one scenario. Use as a context manager: everything stops at the end."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[Proc] = []

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, argv: list[str], *, cpu: int | None = None, env: dict[str, str] | None = None) -> Proc:
        log = self.work / f"{name}.log"
        full = pin(cpu) + argv
        _Starting.now = True
        try:
            with log.open("wb") as fh:
                popen = subprocess.Popen(
                    full,
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                    env={**os.environ, **(env or {})},
                    start_new_session=True,
                )
            proc = Proc(name, full, popen, log)
            self.procs.append(proc)
        finally:
            _Starting.now = False
        if _Starting.pending:  # an interrupt came while it started: now that it is held, the run stops
            _Starting.pending = False
            raise KeyboardInterrupt
        return proc

    def stop(self, proc: Proc, grace: float = 15.0) -> int:
        if proc.alive():
            killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                print(f"{proc.name} (pid {proc.pid}) still up {grace:g} s after SIGTERM: SIGKILL", file=sys.stderr)
                killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait()
        killpg(proc.pid, signal.SIGKILL)  # anything left in its group (replicas of a stopped gateway die with it anyway)
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.popen.returncode

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_port(port: int, proc: Proc, within: float = 20.0) -> float:
    """Wait until something accepts connections on the loopback port; fail if the process dies first."""
    started = time.monotonic()
    while True:
        proc.check()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > within:
            raise HarnessError(f"{proc.name} not listening on {port} after {within:g} s:\n{tail(proc.log)}")
        time.sleep(0.02)
