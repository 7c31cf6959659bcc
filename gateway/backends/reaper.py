"""Replica records under ``{state_dir}/pids/`` and the cleanup of a previous run's leftovers.

Each started replica is recorded as ``pids/{pid}.json`` holding its pid, process group, command
line and kernel start time (``/proc/<pid>/stat`` field 22). A record is only acted on when the
live process still has that start time, so a recycled pid is never killed.

A replica whose group leader died with the gateway (the parent-death signal reaches only the
process we started, not a shell's children) has no live record any more; those are found by the
``SERVING_GATEWAY_STATE_DIR`` variable every replica and its children inherit.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.backends.process import STATE_ENV, signal_group
from gateway.errors import GatewayError, StateDirInUse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicaRecord:
    pid: int
    pgid: int
    start_time: int
    argv: tuple[str, ...]
    key: str


def proc_start_time(pid: int) -> int | None:
    """The kernel start time of a live (non-zombie) process, or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _pids_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "pids"


def record(state_dir: Path, pid: int, pgid: int, argv: Sequence[str], key: str) -> bool:
    """Record a started replica; False when it already exited (nothing to record)."""
    start = proc_start_time(pid)
    if start is None:
        return False
    entry = ReplicaRecord(pid, pgid, start, tuple(argv), key)
    folder = _pids_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{pid}.tmp"
    tmp.write_text(json.dumps(asdict(entry)))
    os.replace(tmp, folder / f"{pid}.json")
    return True


def forget(state_dir: Path, pid: int) -> None:
    try:
        (_pids_dir(state_dir) / f"{pid}.json").unlink()
    except FileNotFoundError:
        pass


def load(state_dir: Path) -> list[ReplicaRecord]:
    entries = []
    for path in sorted(_pids_dir(state_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            entries.append(
                ReplicaRecord(
                    int(data["pid"]),
                    int(data["pgid"]),
                    int(data["start_time"]),
                    tuple(data.get("argv", ())),
                    str(data.get("key", "")),
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable replica record %s", path)
            path.unlink(missing_ok=True)
    return entries


def _alive(entry: ReplicaRecord) -> bool:
    return proc_start_time(entry.pid) == entry.start_time


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def unrecorded_replicas(state_dir: Path) -> list[ReplicaRecord]:
    """Live processes carrying this state directory in their environment (not this process)."""
    token = f"{STATE_ENV}={Path(state_dir).resolve()}".encode()
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if token not in environ.split(b"\0"):
            continue
        start = proc_start_time(pid)
        if start is not None:
            try:
                argv = tuple(a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a)
            except OSError:
                argv = ()
            pgid = os.getpgid(pid) if _pgid_ok(pid) else pid
            found.append(ReplicaRecord(pid, pgid, start, argv, "(child of a replica whose record is gone)"))
    return found


def _pgid_ok(pid: int) -> bool:
    try:
        os.getpgid(pid)
    except OSError:
        return False
    return True


async def reap(state_dir: Path, grace: float = 5.0) -> list[int]:
    """Kill the process groups of recorded replicas that are still alive; return their pids."""
    leftovers = []
    for entry in load(state_dir):
        if _alive(entry):
            leftovers.append(entry)
        else:
            forget(state_dir, entry.pid)
    known = {e.pid for e in leftovers}
    leftovers.extend(e for e in unrecorded_replicas(state_dir) if e.pid not in known)
    for entry in leftovers:
        log.warning("killing leftover replica %s (pid %d): %s", entry.key, entry.pid, " ".join(entry.argv))
        if not signal_group(entry.pgid, signal.SIGTERM):
            _kill(entry.pid, signal.SIGTERM)
    await _exits(leftovers, within=grace)
    for entry in leftovers:
        # the group may hold children of the replica that outlived it
        signal_group(entry.pgid, signal.SIGKILL)
        if _alive(entry):
            _kill(entry.pid, signal.SIGKILL)
        forget(state_dir, entry.pid)
    await _exits(leftovers, within=1.0)
    return [e.pid for e in leftovers]


async def _exits(entries: Sequence[ReplicaRecord], *, within: float) -> None:
    """Wait until every process of `entries` has exited, at most `within` seconds.

    The processes are not our children (a previous run started them), so their exits are awaited
    through pidfds, which become readable when the process ends.
    """
    loop = asyncio.get_running_loop()
    opened: list[int] = []
    watched: list[int] = []
    exits: list[asyncio.Future[None]] = []
    try:
        for entry in entries:
            try:
                fd = os.pidfd_open(entry.pid)
            except OSError:
                continue  # already gone
            opened.append(fd)
            if not _alive(entry):
                continue  # gone, or the pid now belongs to another process
            exited = loop.create_future()
            loop.add_reader(fd, _resolve, exited)
            watched.append(fd)
            exits.append(exited)
        if exits:
            await asyncio.wait(exits, timeout=within)
    finally:
        for fd in watched:
            loop.remove_reader(fd)
        for fd in opened:
            os.close(fd)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class StateLock:
    """An exclusive flock on ``{state_dir}/lock``: one gateway per state directory."""

    def __init__(self, state_dir: Path) -> None:
        self._path = Path(state_dir) / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise GatewayError(f"cannot use state directory {self._path.parent}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirInUse(
                f"state directory {self._path.parent} is in use by another gateway; "
                "give this one its own with --state-dir DIR (or GatewayConfig spec.stateDir)"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
