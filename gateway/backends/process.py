"""One replica process: spawn it in its own process group, signal the group, read its log."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from gateway.config.model import RevisionSpec
from gateway.storage import redact

LOG_MARKER = "==> gateway:"
_PR_SET_PDEATHSIG = 1


def free_port(taken: Iterable[int] = (), prefer: Callable[[int], bool] | None = None, tries: int = 64) -> int:
    """A loopback port nobody listens on now and that is not in `taken`; one `prefer` likes, if one of the
    next `tries` free ports is."""
    avoid = set(taken)
    fallback: int | None = None
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port in avoid:
            continue
        if prefer is None or prefer(port):
            return port
        fallback = port if fallback is None else fallback
        tries -= 1
        if tries <= 0:
            return fallback


def substitute(text: str, port: int) -> str:
    return text.replace("{port}", str(port)).replace("{python}", sys.executable)


def build_argv(command: tuple[str, ...] | str, port: int, env: Mapping[str, str] | None = None) -> list[str]:
    """The replica's argv: `{port}` and `{python}` filled in, then `$(VAR)` from `env` as the kubelet does."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", expand(substitute(command, port), env or {})]
    return [expand(substitute(arg, port), env or {}) for arg in command]


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion of a command or argument: `$(VAR)` is VAR's value when `env` has it and stays
    as written when not; `$$` is a `$` (so `$$(VAR)` is the text `$(VAR)`)."""
    return _REFERENCE.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


STATE_ENV = "SERVING_GATEWAY_STATE_DIR"
"""Set in every replica's environment (inherited by its children): how the reaper finds them."""


def secret_refs(spec: RevisionSpec) -> dict[str, str]:
    """The revision's `valueFrom.secretKeyRef` variables, read from the secrets file (GatewayConfig spec.secretsFile)
    as the replica starts: the values are never kept in the spec, a record or a log. Checked when the manifest was
    loaded (gateway.config.storage_secrets); one gone since is left unset."""
    if not spec.env_refs:
        return {}
    from gateway.storage import StorageError
    from gateway.storage.secrets import read_secrets_file

    path = dict(spec.env).get("SERVING_GATEWAY_SECRETS_FILE")
    if path is None:
        return {}
    try:
        secrets = read_secrets_file(path)
    except StorageError:
        return {}
    found = {}
    for name, source in spec.env_refs:
        ref = source.get("secretKeyRef")
        if isinstance(ref, dict):
            value = secrets.get(str(ref.get("name")), {}).get(str(ref.get("key")))
            if value is not None:
                found[name] = value
    return found


def build_env(
    spec: RevisionSpec,
    port: int,
    base: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
    secrets: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update((name, substitute(value, port)) for name, value in spec.env)
    env.update(secrets or {})
    env["PORT"] = str(port)
    if state_dir is not None:
        env[STATE_ENV] = str(Path(state_dir).resolve())
    return env


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when the thread that forked it exits.

    The kernel ties PR_SET_PDEATHSIG to the forking *thread*; the backend spawns from the event
    loop's thread, which lives as long as the gateway. The signal is not inherited by the
    replica's own children (a shell's children, say): the next start's reaper kills the group.
    """
    prctl = _prctl()
    if prctl is None:
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def log_tail(path: Path, lines: int = 5, max_bytes: int = 8192) -> list[str]:
    """The last non-empty lines the current run wrote to its log (after our start marker)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    marker = text.rfind(LOG_MARKER)
    if marker >= 0:
        text = text[marker:].partition("\n")[2]
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


_BUSY = re.compile(r"\b(fetching|downloading|loading)\b", re.IGNORECASE)


def starting_hint(log_path: Path) -> str:
    """Why a replica may not be ready yet: its last log line when that says it is fetching or loading a model;
    else whether it listens on its port (and its last line, if any)."""
    tail = log_tail(log_path, 1)
    if tail and _BUSY.search(tail[-1]):
        return f"still starting, its last log line: {tail[-1]}"
    listen = "does the command listen on the port the gateway gives it, {port} or $PORT?"
    return f"{listen} Its last log line: {tail[-1]}" if tail else listen


class ReplicaProcess:
    """A started replica: its process, its process group and its log file."""

    def __init__(self, proc: asyncio.subprocess.Process, argv: list[str], log_path: Path) -> None:
        self.proc = proc
        self.pid: int = proc.pid
        self.pgid: int = proc.pid  # start_new_session makes the child a group leader
        self.argv = argv
        self.log_path = log_path
        self.started = time.monotonic()

    @classmethod
    async def spawn(
        cls,
        spec: RevisionSpec,
        port: int,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
    ) -> ReplicaProcess:
        """Start the revision's command on `port`; OSError/ValueError if it cannot be started."""
        if spec.command is None:
            raise ValueError("revision has no command")
        secrets = await asyncio.to_thread(secret_refs, spec) if spec.env_refs else None
        replica_env = build_env(spec, port, env, state_dir, secrets)
        argv = build_argv(spec.command, port, replica_env)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            shown = subprocess.list2cmdline([redact(arg) for arg in argv])  # no storage credentials in the log
            log.write(f"{LOG_MARKER} {stamp} port {port}: {shown}\n".encode())
            log.flush()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=spec.workdir or os.getcwd(),
                    env=replica_env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(os.getpid()),
                )
            except OSError as exc:
                # Name the program: "[Errno 2] No such file or directory" alone does not say what is missing.
                where = (
                    f" (in {spec.workdir})" if exc.errno == errno.ENOENT and spec.workdir and not os.path.isabs(argv[0]) else ""
                )
                raise OSError(exc.errno, f"cannot run {argv[0]!r}{where}: {exc.strerror}") from exc
        return cls(proc, argv, log_path)

    @property
    def exited(self) -> bool:
        return self.proc.returncode is not None

    def signal(self, sig: int) -> bool:
        return signal_group(self.pgid, sig)

    async def terminate(self, grace: float) -> int:
        """SIGTERM the group, SIGKILL it after `grace` seconds; return the exit status."""
        if not self.exited:
            self.signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                pass
        self.signal(signal.SIGKILL)
        return await self.proc.wait()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"replica killed by signal {name}"
    return f"replica exited with code {returncode}"
