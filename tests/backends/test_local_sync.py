from __future__ import annotations

from pathlib import Path

import pytest

from gateway.backends.local import LocalBackend
from gateway.errors import StateDirInUse
from tests.backends.support import Recorder, alive, make_backend, service
from tests.conftest import wait_until

KEY = service().key("default")


@pytest.mark.e2e
async def test_sync_adds_at_zero_and_forgets_removed(tmp_path: Path, replica_script: str) -> None:
    backend = make_backend(tmp_path)
    recorder = Recorder()
    backend.watch(recorder)
    other = service("other", command=("{python}", replica_script, "{port}"))
    await backend.sync([service(command=("{python}", replica_script, "{port}")), other])
    assert backend.status(other.key("default")).desired == 0
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.ready_endpoints(KEY))
    (pid,) = backend.pids(KEY)
    await backend.sync([other])
    assert recorder.last(KEY) == frozenset() and backend.ready_endpoints(KEY) == frozenset()
    assert backend.status(KEY).state == "unknown"
    await wait_until(lambda: not alive(pid), within=3)
    await backend.scale(KEY, 1)  # unknown revision: ignored
    assert backend.pids(KEY) == []
    await backend.close()


@pytest.mark.e2e
async def test_changed_command_rolls_replicas(tmp_path: Path, replica_script: str) -> None:
    backend = make_backend(tmp_path)
    recorder = Recorder()
    backend.watch(recorder)
    await backend.sync([service(command=("{python}", replica_script, "{port}"))])
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.ready_endpoints(KEY))
    (old,) = backend.ready_endpoints(KEY)
    (old_pid,) = backend.pids(KEY)
    await backend.sync([service(command=("{python}", replica_script, "{port}"), env=(("V", "2"),))])
    await wait_until(lambda: backend.ready_endpoints(KEY) and old not in backend.ready_endpoints(KEY))
    assert any(len(eps) == 2 for _, eps, _ in recorder.calls)  # new ready before old left
    assert not any(len(eps) == 0 for _, eps, _ in recorder.calls)
    await wait_until(lambda: not alive(old_pid), within=3)
    assert backend.status(KEY).ready == 1
    await backend.close()


async def test_one_backend_per_state_dir(tmp_path: Path) -> None:
    first = make_backend(tmp_path)
    await first.sync([])
    second = make_backend(tmp_path)
    with pytest.raises(StateDirInUse, match="in use"):
        await second.sync([])
    await first.close()
    await second.sync([])
    await second.close()


async def test_revision_without_command_is_failed(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    await backend.sync([service(endpoints=("http://h:1",))])
    await backend.scale(KEY, 1)
    status = backend.status(KEY)
    assert (status.state, status.message) == (
        "failed",
        "no command to run (the local backend runs commands, not container images)",
    )
    await backend.close()


@pytest.mark.e2e
async def test_scale_down_while_starting_and_a_failing_listener(tmp_path: Path, replica_script: str) -> None:
    backend = make_backend(tmp_path)

    def broken(*_: object) -> None:
        raise RuntimeError("listener bug")

    recorder = Recorder()
    backend.watch(broken)
    backend.watch(recorder)
    await backend.sync([service(command=("{python}", replica_script, "{port}"))])
    await backend.scale(KEY, 2)
    await backend.scale(KEY, 0)  # before either process exists
    await wait_until(lambda: backend.status(KEY).state == "ok", within=3)
    assert backend.pids(KEY) == [] and recorder.calls == []
    await backend.scale(KEY, 1)
    await wait_until(lambda: recorder.last(KEY))  # a failing listener does not starve the others
    await backend.close()
