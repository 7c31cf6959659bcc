from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.backends import reaper
from tests.backends.support import alive, make_backend
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]

GATEWAY = textwrap.dedent("""
    import asyncio, sys, uvloop
    from gateway.backends.local import LocalBackend
    from gateway.config.model import RevisionSpec, ServiceSpec

    async def main():
        svc = ServiceSpec("iris", "default", RevisionSpec("default", command=sys.argv[2]))
        backend = LocalBackend(sys.argv[1])
        await backend.sync([svc])
        await backend.scale(svc.key("default"), 2)
        while len(backend.ready_endpoints(svc.key("default"))) < 2:
            await asyncio.sleep(0.01)
        print(*backend.pids(svc.key("default")), flush=True)
        await asyncio.sleep(60)

    uvloop.run(main())
""")


@pytest.mark.e2e
async def test_replicas_die_with_a_killed_gateway(tmp_path: Path, replica_script: str) -> None:
    state = tmp_path / "state"
    gateway = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        GATEWAY,
        str(state),
        f"exec {sys.executable} {replica_script} $PORT",
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert gateway.stdout is not None
    line = await asyncio.wait_for(gateway.stdout.readline(), 10)
    pids = [int(p) for p in line.split()]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    gateway.kill()
    await gateway.wait()
    await wait_until(lambda: not any(alive(p) for p in pids), within=2)  # PR_SET_PDEATHSIG
    assert len(list((state / "pids").glob("*.json"))) == 2  # stale records, dead pids
    backend = make_backend(tmp_path)
    await backend.start()
    assert not list((state / "pids").glob("*.json"))
    await backend.close()


def leftover(replica_script: str, out: Path, **env: str) -> subprocess.Popen[bytes]:
    with out.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, replica_script, "0"],
            start_new_session=True,
            stdout=fh,
            env={**os.environ, **env},
        )


def listening(folder: Path) -> bool:
    return all("listening" in out.read_text() for out in folder.glob("*.out"))


@pytest.mark.e2e
async def test_start_reaps_recorded_leftovers(tmp_path: Path, replica_script: str) -> None:
    state = tmp_path / "state"
    stubborn = leftover(replica_script, tmp_path / "stubborn.out", IGNORE_TERM="1")
    polite = leftover(replica_script, tmp_path / "polite.out")
    try:
        for proc in (stubborn, polite):
            await wait_until(lambda: listening(tmp_path))
            assert reaper.record(state, proc.pid, proc.pid, ["replica.py"], "default/iris-default")
        backend = make_backend(tmp_path, grace_period=0.3)
        await backend.start()
        assert not alive(stubborn.pid) and not alive(polite.pid)
        assert not list((state / "pids").glob("*.json"))
        await backend.close()
    finally:
        for proc in (stubborn, polite):
            proc.kill()
            proc.wait()
    assert polite.returncode == -signal.SIGTERM and stubborn.returncode == -signal.SIGKILL


@pytest.mark.e2e
async def test_recycled_pid_is_not_killed(tmp_path: Path, replica_script: str) -> None:
    state = tmp_path / "state"
    bystander = leftover(replica_script, tmp_path / "bystander.out")
    try:
        await wait_until(lambda: reaper.proc_start_time(bystander.pid) is not None)
        assert reaper.record(state, bystander.pid, bystander.pid, ["x"], "default/iris-default")
        path = state / "pids" / f"{bystander.pid}.json"
        entry = json.loads(path.read_text())
        entry["start_time"] -= 1  # same pid, another process
        path.write_text(json.dumps(entry))
        (state / "pids" / "junk.json").write_text("{not json")
        assert await reaper.reap(state, grace=0.2) == []
        assert alive(bystander.pid)
        assert not list((state / "pids").glob("*.json"))
    finally:
        bystander.kill()
        bystander.wait()
