"""A pod's container as a real local process: its address, its command and environment, its readiness probe.

Each pod gets its own loopback address 127.0.x.y (Linux routes all of 127.0.0.0/8 to `lo`, so binding it
needs no setup). The container's `command + args` run with `$(VAR)` expanded as the kubelet does, the
container's `env` (plain values and the downward API's `fieldRef`), and `PORT` (the first containerPort),
`HOST`/`POD_IP` (the pod's address), `POD_NAME`/`HOSTNAME`, `POD_NAMESPACE`. A small LD_PRELOAD library
(podnet.c) turns the process's binds to 0.0.0.0 into binds to the pod's address, as a pod's own network
namespace would; a bind to 127.0.0.1 stays on 127.0.0.1, where the probes (which target the pod IP) miss it,
as they would in a real pod.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

_SOURCE = Path(__file__).with_name("podnet.c")
_taken: set[str] = set()
_taken_lock = threading.Lock()


def podnet_library() -> Path:
    """Build podnet.c once per source version (cached in the temp dir); raise if no C compiler is present."""
    digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"kube-testbed-podnet-{digest}.so"
    if target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("the test bed needs a C compiler (cc or gcc) to build podnet.c, the pods' network shim")
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(partial), str(_SOURCE), "-ldl"], check=True)
    os.replace(partial, target)
    return target


class PortConflict(RuntimeError):
    """Another process of this host listens on a pod's port on every address (0.0.0.0:port)."""


def allocate_ip(ports: list[int]) -> str:
    """A free 127.0.x.y (x in 2..254: 127.0.0.x and 127.0.1.x are the host's) on which every port can be bound.

    Pods share the host's network, so a process listening on 0.0.0.0:port anywhere on the host takes that
    port from every pod: after a few addresses that all refuse the port, PortConflict names it.
    """
    refused: dict[int, int] = {}
    for _ in range(200):
        ip = f"127.0.{random.randint(2, 254)}.{random.randint(1, 254)}"
        with _taken_lock:
            if ip in _taken:
                continue
            blocked = [port for port in ports if not _bindable(ip, port)]
            if not blocked:
                _taken.add(ip)
                return ip
        for port in blocked:
            refused[port] = refused.get(port, 0) + 1
            if refused[port] >= 5:
                raise PortConflict(
                    f"port {port} cannot be bound on any pod address: another process on this host listens on 0.0.0.0:{port}"
                )
    raise RuntimeError("no free pod address in 127.0.2.0-127.0.254.255")


def release_ip(ip: str) -> None:
    with _taken_lock:
        _taken.discard(ip)


def _bindable(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def container_ports(container: Obj) -> list[int]:
    return [int(p["containerPort"]) for p in container.get("ports") or [] if "containerPort" in p]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` escapes, anything else stays."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


def pod_env(pod: Obj, container: Obj, ip: str, node: str) -> dict[str, str]:
    meta = pod.get("metadata", {})
    fields = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "status.podIP": ip,
        "status.hostIP": "127.0.0.1",
        "spec.nodeName": node,
    }
    env = {
        "HOST": ip,
        "POD_IP": ip,
        "POD_NAME": fields["metadata.name"],
        "HOSTNAME": fields["metadata.name"],
        "POD_NAMESPACE": fields["metadata.namespace"],
    }
    ports = container_ports(container)
    if ports:
        env["PORT"] = str(ports[0])
    for item in container.get("env") or []:
        ref = (item.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        env[item["name"]] = fields.get(ref, "") if ref else expand(str(item.get("value", "")), env)
    return env


def argv_for(container: Obj, env: dict[str, str], images: dict[str, list[str]]) -> list[str] | None:
    """The container's argv, or None when it has no command and the image has no known entrypoint."""
    command = container.get("command") or images.get(container.get("image", ""))
    if not command:
        return None
    return [expand(str(part), env) for part in [*command, *(container.get("args") or [])]]


PROBE_TIMEOUT = 1.0


def probe_port(port: Any, container: Obj) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    return next((int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name") == port), None)


async def probe(ip: str, container: Obj) -> bool:
    """Run the container's readiness probe (httpGet or tcpSocket) once against the pod address; no probe means ready."""
    spec = container.get("readinessProbe") or {}
    action = spec.get("httpGet") or spec.get("tcpSocket")
    if not action:
        return True
    port = probe_port(action.get("port"), container)
    if port is None:
        return False
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(ip, port)
    except (OSError, TimeoutError):
        return False
    try:
        if "httpGet" not in spec:
            return True
        path = action.get("path") or "/"
        request = f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/testbed\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        async with asyncio.timeout(PROBE_TIMEOUT):
            line = await reader.readline()
        parts = line.split()
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


class Process:
    """One run of a container: a process group started in its own session, output appended to a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, cwd: str | None) -> None:
        with log.open("ab") as out:
            self.popen = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid
        self.started = time.time()

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    async def stop(self, grace: float) -> None:
        """SIGTERM to the group, SIGKILL after `grace` seconds, then reap."""
        self.signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.popen.wait, grace)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait()


def leftover(pids: list[int]) -> list[int]:
    """The process groups among `pids` (each container runs as its own group) that still have a live member."""
    alive = []
    for pgid in pids:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            continue
        if _members_alive(pgid):
            alive.append(pgid)
    return alive


def _members_alive(pgid: int) -> bool:
    """Whether a process of the group is alive and not a zombie waiting for init to reap it."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """Block until no process of these groups is alive (a killed process takes a moment to exit); return those left."""
    deadline = time.monotonic() + seconds
    while (left := leftover(pids)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left
