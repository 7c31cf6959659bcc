"""`python -m loadtests run --smoke` as CI runs it: a real run of the runner (gateway, nginx and HAProxy
when installed, the open-loop generator in its own process) whose report must hold the figures."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.harness.procs import tool
from tests.conftest import wait_until_blocking

REPO = Path(__file__).resolve().parents[2]


def loadtests(*args: str, cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "loadtests", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, check=False
    )


@pytest.mark.e2e
def test_smoke_run_writes_every_figure_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = loadtests("run", "--smoke", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["size"] == "smoke"
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["kernel"] and doc["machine"]["python"]
    assert set(doc["scenarios"]) == {"latency", "canary"}

    latency = doc["scenarios"]["latency"]
    assert "error" not in latency
    targets = latency["figures"]["targets"]
    # every proxy installed here is compared (scripts/test.sh installs nginx and haproxy for CI)
    assert set(targets) == {"direct", "gateway", *(name for name in ("nginx", "haproxy") if tool(name))}
    for name, fig in targets.items():
        # 20 req/s for 1 s: exactly 20 sent, every one answered, latency over the backend's 100 ms
        assert fig["sent"] == 20 and fig["answered"] == 20 and fig["errors"] == 0, (name, fig)
        assert 100 <= fig["p50_ms"] <= fig["p95_ms"] <= fig["p99_ms"], (name, fig)
        assert set(fig["added"]) == {"p50_ms", "p95_ms", "p99_ms"}
    assert targets["direct"]["added"]["p50_ms"] == 0

    canary = doc["scenarios"]["canary"]
    assert "error" not in canary
    assert [p["percent"] for p in canary["figures"]["phases"]] == [0, 50, 100]
    assert canary["figures"]["phases"][0]["canary_share"] == 0 and canary["figures"]["phases"][2]["canary_share"] == 100
    assert [r["percent"] for r in canary["figures"]["reloads"]] == [50, 100]
    assert canary["figures"]["errors"] == 0
    assert sum(s["sent"] for s in canary["figures"]["per_second"]) == canary["figures"]["sent"] > 0
    assert all(c["ok"] for s in doc["scenarios"].values() for c in s["checks"])

    summary = (out / "summary.md").read_text()
    assert "## latency" in summary and "## canary" in summary
    assert "| direct | 20 | 20 | 0 |" in summary
    if importlib.util.find_spec("matplotlib") is None:  # the `bench` extra: CI's test extras leave it out
        assert "matplotlib" in summary
    else:
        assert (out / "latency.png").stat().st_size > 0 and (out / "canary.png").stat().st_size > 0


@pytest.mark.e2e
def test_list_names_every_scenario() -> None:
    proc = loadtests("list")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names == ["ceiling", "latency", "burst", "coldstarts", "canary", "scale", "soak"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--only", "nosuch"], "invalid choice: 'nosuch'"),
        (["run", "--quick", "--smoke"], "not allowed with argument"),
        (["run", "--only"], "expected at least one argument"),
        (["walk"], "invalid choice: 'walk'"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_arguments_are_refused_naming_the_problem(args: list[str], message: str) -> None:
    proc = loadtests(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


@pytest.mark.e2e
def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    proc = loadtests("run", "--smoke", "--out", str(target))
    assert proc.returncode == 2
    assert "exists and is not a folder" in proc.stderr
    assert target.read_text() == "x"


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry}: {cmdline}")
    return found


@pytest.mark.e2e
def test_sigterm_stops_every_process_the_run_started(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "loadtests", "run", "--quick", "--only", "soak", "--out", str(tmp_path / "r")]
    with subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline()
            assert first.startswith("scratch: "), first
            scratch = first.split()[1].rstrip(",")
            # the soak's gateway and replica run with the scratch folder on their command lines
            wait_until_blocking(lambda: len(processes_mentioning(scratch)) >= 1, "the soak's gateway to start", within=20)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 130
            assert "interrupted" in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert processes_mentioning(scratch) == []
    assert not Path(scratch).exists()
