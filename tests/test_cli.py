"""The `gateway` command as a user runs it: real subprocesses, real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, serve_argv, wait_until, wait_until_blocking
from tests.router.support import Replica, start_replica
from tests.test_app import write_config

pytestmark = pytest.mark.e2e  # every test runs the gateway command line in a process of its own

ROOT = Path(__file__).resolve().parent.parent
HOST = "iris.default.example.com"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_validate_prints_routing_table_for_shipped_sample() -> None:
    r = run_cli("validate", "-f", "config/examples/paddleservice-sample.yaml")
    assert r.returncode == 0, r.stderr
    assert "paddleservice-sample.paddleservice-system.example.com" in r.stdout
    assert "50" in r.stdout


def test_validate_names_file_document_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text(
        "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {name: foo}\n"
        "spec:\n  default: {command: 'true'}\n  canary: {command: 'true'}\n  canaryTrafficPercent: 150\n"
    )
    r = run_cli("validate", "-f", str(bad))
    assert r.returncode != 0
    assert f"{bad}: document 1 (PaddleService/foo): spec.canaryTrafficPercent" in r.stderr
    assert "150" in r.stderr
    assert "Traceback" not in r.stderr


def test_validate_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    r = run_cli("validate", "-f", str(tmp_path / "nope.yaml"))
    assert r.returncode != 0
    assert "nope.yaml" in r.stderr and "Traceback" not in r.stderr


def test_serve_with_bad_config_exits_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("kind: [\n")
    r = run_cli("serve", "-f", str(bad), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
    assert r.returncode != 0 and "x.yaml" in r.stderr and "Traceback" not in r.stderr


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, admin: int, config: Path) -> None:
        self.proc = proc
        self.port = port
        self.admin = admin
        self.config = config


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    r = await start_replica("a")
    yield r
    await r.runner.cleanup()


@pytest.fixture
def served(tmp_path: Path, replica: Replica) -> Iterator[Served]:
    cfg = tmp_path / "gw.yaml"
    write_config(cfg, replica.url)
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        serve_argv(str(cfg), listen=f"127.0.0.1:{port}", admin=f"127.0.0.1:{admin}", state_dir=str(tmp_path / "state")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    if not _ready(admin, proc):
        proc.kill()
        pytest.fail(f"gateway did not become ready: {proc.communicate()[0]}")
    yield Served(proc, port, admin, cfg)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


async def test_sigterm_drains_in_flight_requests_and_exits_zero(served: Served, replica: Replica) -> None:
    async with httpx.AsyncClient(timeout=10) as c:
        slow = asyncio.create_task(c.get(f"http://127.0.0.1:{served.port}/s?sleep=0.7", headers={"Host": HOST}))
        await wait_until(lambda: replica.in_flight == 1, "the request at the replica")
        served.proc.send_signal(signal.SIGTERM)
        r = await slow
        assert r.status_code == 200 and r.json()["replica"] == "a"
    code = await asyncio.to_thread(served.proc.wait, 15)
    assert code == 0
    async with httpx.AsyncClient(timeout=1) as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(f"http://127.0.0.1:{served.port}/", headers={"Host": HOST})


async def test_sighup_reloads_and_status_prints_revisions(served: Served, replica: Replica) -> None:
    write_config(served.config, replica.url, replica.url, percent=25)
    os.kill(served.proc.pid, signal.SIGHUP)
    async with httpx.AsyncClient(timeout=2) as c:

        async def reloaded() -> bool:
            doc = (await c.get(f"http://127.0.0.1:{served.admin}/admin/services")).json()
            return len(doc["services"][0]["revisions"]) == 2

        await wait_until(reloaded, "SIGHUP to reload the config")
    r = await asyncio.to_thread(run_cli, "status", "--admin", f"127.0.0.1:{served.admin}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["HOST", "REVISION", "TRAFFIC", "READY"]
    assert any(line.split()[:4] == [HOST, "iris-canary", "25%", "1/1"] for line in lines), r.stdout
    assert any(line.split()[:3] == [HOST, "iris-default", "75%"] for line in lines), r.stdout


def test_version() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == "gateway 0.1.0"


def test_status_without_gateway_is_a_clear_error() -> None:
    r = run_cli("status", "--admin", f"127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "cannot read" in r.stderr


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _replica_pids(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if marker.encode() in cmd and b"sh\x00-c" not in cmd:
                pids.append(int(entry))
    return pids


def _start_local(tmp_path: Path, marker: str) -> tuple[subprocess.Popen[bytes], int]:
    replica = ROOT / "tests/e2e/sleepy_replica.py"
    cfg = tmp_path / "local.yaml"
    # A shell-string command: PR_SET_PDEATHSIG reaches only the shell, so the replica proper can
    # outlive a SIGKILLed gateway; the next start must find and stop it.
    cfg.write_text(
        f"""apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata: {{name: orphan}}
spec:
  default:
    command: "{sys.executable} {replica} {{port}} {marker}; true"
  service: {{minScale: 2, maxScale: 2}}
"""
    )
    admin = free_port()
    proc = subprocess.Popen(
        serve_argv(str(cfg), listen="127.0.0.1:0", admin=f"127.0.0.1:{admin}", state_dir=str(tmp_path / "state")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )

    def both_ready() -> bool:
        try:
            doc = httpx.get(f"http://127.0.0.1:{admin}/admin/services", timeout=0.5).json()
            return bool(doc["services"][0]["revisions"][0]["ready"] == 2)
        except (httpx.HTTPError, KeyError, IndexError):
            return False

    try:
        wait_until_blocking(both_ready, "two ready replicas", within=20)
    except AssertionError:
        proc.kill()
        raise
    return proc, admin


def _wait_gone(pids: list[int], within: float) -> list[int]:
    """The pids still alive after waiting up to `within` seconds for all of them to end."""
    try:
        wait_until_blocking(lambda: not any(_alive(p) for p in pids), "the processes to end", within=within)
    except AssertionError:
        pass
    return [p for p in pids if _alive(p)]


def test_sigterm_stops_every_replica(tmp_path: Path) -> None:
    marker = f"orphan-test-{os.getpid()}-term"
    proc, _ = _start_local(tmp_path, marker)
    pids = _replica_pids(marker)
    assert len(pids) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert _wait_gone(pids, 5) == []


def test_sigkilled_gateway_leaves_nothing_after_the_next_start(tmp_path: Path) -> None:
    marker = f"orphan-test-{os.getpid()}-kill"
    proc, _ = _start_local(tmp_path, marker)
    pids = _replica_pids(marker)
    assert len(pids) == 2
    proc.kill()
    proc.wait(10)
    survivors = _wait_gone(pids, 1.0)
    # Whatever survived the kill (shell children escape the parent-death signal) is reaped on restart.
    proc2, _ = _start_local(tmp_path, marker)
    try:
        assert _wait_gone(survivors, 10) == []
        assert len(_replica_pids(marker)) == 2  # only the new run's replicas
    finally:
        proc2.send_signal(signal.SIGTERM)
        proc2.wait(20)
    assert _replica_pids(marker) == []


@pytest.mark.parametrize("which", ["--listen", "--admin-listen"])
def test_serve_on_a_busy_port_names_the_address(tmp_path: Path, which: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = "--admin-listen" if which == "--listen" else "--listen"
        r = run_cli(
            "serve",
            "-f",
            "config/examples/static-canary.yaml",
            which,
            f"127.0.0.1:{port}",
            other,
            "127.0.0.1:0",
            "--state-dir",
            str(tmp_path),
        )
    assert r.returncode == 1
    assert "cannot start" in r.stderr and str(port) in r.stderr and "in use" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_with_a_malformed_listen_address(tmp_path: Path) -> None:
    r = run_cli(
        "serve",
        "-f",
        "config/examples/static-canary.yaml",
        "--listen",
        "nonsense",
        "--admin-listen",
        "127.0.0.1:0",
        "--state-dir",
        str(tmp_path),
    )
    assert r.returncode == 1 and "expected HOST:PORT, got 'nonsense'" in r.stderr


def _local_config(path: Path) -> None:
    replica = ROOT / "tests" / "e2e" / "sleepy_replica.py"
    path.write_text(
        "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {name: sleepy}\n"
        f"spec:\n  default: {{command: ['{sys.executable}', '{replica}', '{{port}}']}}\n  service: {{minScale: 0}}\n"
    )


def _serve(cfg: Path, env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[str], int]:
    # Real ports, not 0: the default state directory is named after the listen address, and the
    # admin port is polled for readiness.
    admin = free_port()
    proc = subprocess.Popen(
        [*serve_argv(str(cfg), listen=f"127.0.0.1:{free_port()}", admin=f"127.0.0.1:{admin}"), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env,
    )
    return proc, admin


def _ready(admin: int, proc: subprocess.Popen[str]) -> bool:
    """Whether the gateway answers /readyz within 20 s (False at once if it exits)."""

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until_blocking(lambda: answers() or proc.poll() is not None, "the gateway to be ready or exit", within=20)
    except AssertionError:
        return False
    return proc.poll() is None


def test_two_gateways_with_default_settings_run_side_by_side(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    _local_config(cfg)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state-home")}
    first, admin1 = _serve(cfg, env)
    second, admin2 = _serve(cfg, env)
    try:
        assert _ready(admin1, first) and _ready(admin2, second), (first.poll(), second.poll())
        dirs = sorted(p.name for p in (tmp_path / "state-home" / "serving-gateway").iterdir())
        assert len(dirs) == 2 and all(d.startswith("127.0.0.1-") for d in dirs), dirs
    finally:
        for proc in (first, second):
            proc.terminate()
            out = proc.communicate(timeout=20)[0]
            assert "Traceback" not in out, out


def test_a_state_directory_in_use_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    _local_config(cfg)
    state = str(tmp_path / "shared")
    first, admin1 = _serve(cfg, dict(os.environ), "--state-dir", state)
    try:
        assert _ready(admin1, first)
        second, _ = _serve(cfg, dict(os.environ), "--state-dir", state)
        out = second.communicate(timeout=30)[0]
        assert second.returncode == 1
        lines = [line for line in out.splitlines() if "cannot start" in line]
        assert lines == [
            f"gateway: cannot start: state directory {state} is in use by another gateway; "
            "give this one its own with --state-dir DIR (or GatewayConfig spec.stateDir)"
        ], out
        assert "Traceback" not in out
    finally:
        first.terminate()
        first.communicate(timeout=20)


def test_validate_prints_warnings_beside_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text(
        "apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {name: foo}\n"
        "spec:\n  default: {command: 'serve {port}'}\n  target: 5\n  canaryTrafficPercent: 150\n"
    )
    r = run_cli("validate", "-f", str(bad))
    assert r.returncode == 1
    assert "spec.canaryTrafficPercent" in r.stderr
    assert "warning: " in r.stderr and "spec.target: unknown key, ignored (did you mean spec.service.target?)" in r.stderr


@pytest.mark.parametrize(
    "case, words",
    [
        ("empty-folder", "folder has no *.yaml or *.yml files"),
        ("missing-file", "no such file or folder"),
        ("bad-host", "cannot listen on nosuchhost.invalid:"),
        ("state-dir-is-a-file", "cannot use state directory"),
    ],
)
def test_every_start_up_failure_is_one_clear_line(tmp_path: Path, case: str, words: str) -> None:
    cfg = tmp_path / "gw.yaml"
    _local_config(cfg)
    listen = "127.0.0.1:0"
    args = ["-f", str(cfg), "--state-dir", str(tmp_path / "state")]
    if case == "empty-folder":
        (tmp_path / "empty").mkdir()
        args = ["-f", str(tmp_path / "empty")]
    elif case == "missing-file":
        args = ["-f", str(tmp_path / "nope.yaml")]
    elif case == "bad-host":
        listen = "nosuchhost.invalid:0"
    else:
        (tmp_path / "afile").write_text("x")
        args = ["-f", str(cfg), "--state-dir", str(tmp_path / "afile")]
    r = run_cli("serve", *args, "--listen", listen, "--admin-listen", "127.0.0.1:0")
    assert r.returncode == 1
    first = r.stderr.strip().splitlines()[0]
    assert first.startswith("gateway: cannot start: ") and words in first, r.stderr
    assert "Traceback" not in r.stderr and "[Errno" not in r.stderr


def test_a_data_port_held_by_another_gateway_is_reported_as_the_port(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    _local_config(cfg)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state-home")}
    first, admin1 = _serve(cfg, env)
    try:
        assert _ready(admin1, first)
        port = next(int(p.name.rsplit("-", 1)[1]) for p in (tmp_path / "state-home" / "serving-gateway").iterdir())
        r = subprocess.run(
            serve_argv(str(cfg), listen=f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=env,
        )
        assert r.returncode == 1
        assert r.stderr.strip() == f"gateway: cannot start: cannot listen on 127.0.0.1:{port}: Address already in use", r.stderr
    finally:
        first.terminate()
        first.communicate(timeout=20)


def _no_namespace(path: Path, url: str, namespace: str = "") -> None:
    meta = f", namespace: {namespace}" if namespace else ""
    path.write_text(
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec: {backend: static}\n---\n"
        f"apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {{name: iris{meta}}}\n"
        f'spec:\n  default: {{endpoints: ["{url}"]}}\n'
    )


def test_validate_takes_the_namespace_of_documents_giving_none_from_n(tmp_path: Path) -> None:
    """As `kubectl apply -n kserve-test -f`: the KServe quick start's manifest gives no namespace."""
    cfg = tmp_path / "gw.yaml"
    _no_namespace(cfg, "http://127.0.0.1:1")
    r = run_cli("validate", "-n", "kserve-test", "-f", str(cfg))
    assert r.returncode == 0 and "iris.kserve-test.example.com" in r.stdout, r.stderr
    assert "iris.default.example.com" in run_cli("validate", "-f", str(cfg)).stdout
    _no_namespace(cfg, "http://127.0.0.1:1", namespace="kserve-test")
    assert run_cli("validate", "--namespace", "kserve-test", "-f", str(cfg)).returncode == 0
    r = run_cli("validate", "-n", "other", "-f", str(cfg))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert (
        f"{cfg}: document 2 (PaddleService/iris): metadata.namespace: 'kserve-test' does not match the namespace "
        "given with -n ('other')"
    ) in r.stderr
    r = run_cli("validate", "-n", "Not_A_Label", "-f", str(cfg))
    assert r.returncode == 1 and "namespace 'Not_A_Label': must be a DNS-1123 label" in r.stderr, r.stderr


def _popen(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_serve_n_routes_the_namespace_and_reloads_keep_it(tmp_path: Path, replica: Replica, workers: str) -> None:
    cfg = tmp_path / "gw.yaml"
    _no_namespace(cfg, replica.url)
    port, admin = free_port(), free_port()
    argv = serve_argv(str(cfg), listen=f"127.0.0.1:{port}", admin=f"127.0.0.1:{admin}", state_dir=str(tmp_path / "state"))
    proc = _popen([*argv, "-n", "kserve-test", "--workers", workers])
    try:
        assert await asyncio.to_thread(_ready, admin, proc), proc.poll()
        async with httpx.AsyncClient(timeout=10) as c:
            for _ in range(2):  # as started, then after a reload (SIGHUP)
                for _ in range(8):  # a new connection each: every worker, most likely
                    host = {"Host": "iris.kserve-test.example.com", "Connection": "close"}
                    r = await c.get(f"http://127.0.0.1:{port}/", headers=host)
                    assert r.status_code == 200, r.text
                miss = await c.get(f"http://127.0.0.1:{port}/", headers={"Host": "iris.default.example.com"})
                assert miss.status_code == 404
                doc = (await c.get(f"http://127.0.0.1:{admin}/admin/services")).json()
                assert [s["namespace"] for s in doc["services"]] == ["kserve-test"]
                r = await c.post(f"http://127.0.0.1:{admin}/admin/reload")
                assert r.status_code == 200 and r.json()["reloaded"] is True, r.text
    finally:
        proc.terminate()
        out = await asyncio.to_thread(lambda: proc.communicate(timeout=20)[0])
    assert "Traceback" not in out, out
