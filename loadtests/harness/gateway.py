"""`gateway serve` as a scenario process, and a client of its admin API: the service document
(replicas, desired, queue), reloads and the Prometheus metrics. Figures come from here, never from
the gateway's log text."""

from __future__ import annotations

import http.client
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from loadtests.harness.procs import HarnessError, Proc, Stack, free_port, tail

_count = itertools.count()


@dataclass
class Gateway:
    proc: Proc
    port: int
    admin: Admin
    config_path: Path

    def write_config(self, text: str) -> None:
        self.config_path.write_text(text)


class Admin:
    """A small synchronous client of the admin listener (one short-lived connection per call)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port, self.timeout = port, timeout

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str) -> Any:
        status, body = self.request(method, path)
        if status != 200:
            raise HarnessError(f"{method} {path} answered {status}: {body[:300]!r}")
        return json.loads(body)

    def ready(self) -> bool:
        try:
            return self.request("GET", "/readyz")[0] == 200
        except OSError:
            return False

    def services(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/admin/services")["services"])

    def revisions(self) -> dict[str, dict[str, Any]]:
        """Every revision by its name (service name, and `-canary` etc. for the others)."""
        return {rev["name"]: rev for svc in self.services() for rev in svc["revisions"]}

    def reload(self) -> dict[str, Any]:
        doc = self.json("POST", "/admin/reload")
        if not doc.get("reloaded", True):
            raise HarnessError(f"reload refused: {doc}")
        return dict(doc)

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, keyed `name{label="value",...}` (labels sorted)."""
        status, body = self.request("GET", "/metrics")
        if status != 200:
            raise HarnessError(f"GET /metrics answered {status}")
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
        return out


def metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base == name and all(w in rest for w in want):
            total += value
    return total


def start_gateway(
    stack: Stack, config: str, *, cpu: int | None = None, log_level: str = "warning", within: float = 60.0
) -> Gateway:
    """Write the config, start `gateway serve` on free ports and wait for /readyz."""
    n = next(_count)
    path = stack.work / f"gateway-{n}.yaml"
    path.write_text(config)
    port, admin_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "-f",
        str(path),
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{admin_port}",
        "--state-dir",
        str(stack.work / f"gateway-{n}-state"),
        "--log-level",
        log_level,
    ]
    proc = stack.start(f"gateway-{n}", argv, cpu=cpu)
    admin = Admin(admin_port)
    started = time.monotonic()
    while not admin.ready():
        proc.check()
        if time.monotonic() - started > within:
            raise HarnessError(f"gateway not ready after {within:g} s:\n{tail(proc.log)}")
        time.sleep(0.05)
    return Gateway(proc, port, admin, path)
