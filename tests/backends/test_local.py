from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.backends.local import LocalBackend
from gateway.types import Endpoint
from tests.backends.support import Recorder, alive, get, make_backend, service
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e  # every test starts replica processes and waits on them in real time

BOTH_LOOPS = True  # the gateway runs on uvloop; the default loop must work as well

KEY = service().key("default")


async def started(backend: LocalBackend, replicas: int, **revision: Any) -> Recorder:
    recorder = Recorder()
    backend.watch(recorder)
    await backend.sync([service(**revision)])
    await backend.scale(KEY, replicas)
    await wait_until(lambda: len(backend.ready_endpoints(KEY)) == replicas)
    return recorder


async def test_tcp_readiness_port_substitution_and_log(tmp_path: Path, replica_script: str) -> None:
    backend = make_backend(tmp_path)
    recorder = Recorder()
    backend.watch(recorder)
    await backend.sync([service(command=("{python}", replica_script, "{port}"))])
    assert backend.status(KEY).desired == 0 and backend.ready_endpoints(KEY) == frozenset()
    began = time.time()
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.ready_endpoints(KEY))
    (endpoint,) = backend.ready_endpoints(KEY)
    assert endpoint.host == "127.0.0.1"
    assert recorder.calls[-1][:2] == (KEY, frozenset({endpoint}))
    assert await get(endpoint, "/port") == str(endpoint.port)
    log_file = tmp_path / "state" / "logs" / "default_iris-default-0.log"
    listened = float(log_file.read_text().split("listening")[-1].split()[1])
    ready_at = recorder.calls[-1][2]
    print(f"\nscale→ready {ready_at - began:.3f}s, listen→ready {ready_at - listened:.4f}s")
    assert ready_at - listened < 0.1
    assert backend.status(KEY).state == "ok" and backend.status(KEY).ready == 1
    (pid,) = backend.pids(KEY)
    await backend.close()
    assert not alive(pid)
    assert recorder.last(KEY) == frozenset()
    assert not list((tmp_path / "state" / "pids").glob("*.json"))


async def test_http_readiness_path(tmp_path: Path, replica_script: str) -> None:
    flag = tmp_path / "ready-flag"
    backend = make_backend(tmp_path, probe_period=0.05)
    await backend.sync(
        [
            service(
                command=("{python}", replica_script, "{port}"),
                readiness_path="/ready",
                env=(("READY_FILE", str(flag)),),
            )
        ]
    )
    await backend.scale(KEY, 1)
    log_file = tmp_path / "state" / "logs" / "default_iris-default-0.log"
    # listening, but /ready answers 503: three probes of it have failed
    await wait_until(lambda: log_file.exists() and log_file.read_text().count("GET /ready 503") >= 3)
    assert backend.ready_endpoints(KEY) == frozenset()
    assert backend.status(KEY).state == "scaling"
    flag.touch()
    await wait_until(lambda: backend.ready_endpoints(KEY), within=1)
    flag.unlink()  # three failed periodic probes drop it
    await wait_until(lambda: not backend.ready_endpoints(KEY), within=2)
    await backend.close()


async def test_shell_string_command_kills_whole_group(tmp_path: Path, replica_script: str) -> None:
    backend = make_backend(tmp_path)
    await started(backend, 1, command=f"echo hello-from-shell; {{python}} {replica_script} $PORT")
    (endpoint,) = backend.ready_endpoints(KEY)
    server_pid = int(await get(endpoint, "/pid"))
    assert server_pid not in backend.pids(KEY)  # the shell forked it
    log_text = (tmp_path / "state" / "logs" / "default_iris-default-0.log").read_text()
    assert "hello-from-shell" in log_text and f"listening {endpoint.port}" in log_text
    await backend.close()
    await wait_until(lambda: not alive(server_pid), within=1)


async def test_scale_up_down_drains_least_loaded_first(tmp_path: Path, replica_script: str) -> None:
    load: dict[Endpoint, int] = {}
    asked: list[Endpoint] = []

    def in_flight(endpoint: Endpoint) -> int:
        asked.append(endpoint)
        return load.get(endpoint, 0)

    backend = make_backend(tmp_path, in_flight=in_flight, grace_period=5.0)
    recorder = await started(backend, 2, command=("{python}", replica_script, "{port}"))
    busy, idle = sorted(backend.ready_endpoints(KEY), key=lambda ep: ep.port)
    pids = {ep: int(await get(ep, "/pid")) for ep in (busy, idle)}
    assert len(set(backend.pids(KEY))) == 2
    load[busy] = 1
    await backend.scale(KEY, 1)
    assert backend.ready_endpoints(KEY) == frozenset({busy})  # left the ready set at once
    await wait_until(lambda: not alive(pids[idle]), within=3)

    asked.clear()
    await backend.scale(KEY, 0)
    assert backend.ready_endpoints(KEY) == frozenset() and recorder.last(KEY) == frozenset()
    await wait_until(lambda: asked.count(busy) >= 5)  # the drain has looked at its load again and again
    assert alive(pids[busy])  # still serving its in-flight request
    assert backend.status(KEY).state == "scaling"
    load[busy] = 0
    await wait_until(lambda: not alive(pids[busy]), within=2)
    await wait_until(lambda: backend.status(KEY).state == "ok")
    await backend.close()


async def test_sigterm_then_sigkill(tmp_path: Path, replica_script: str) -> None:
    backend = make_backend(tmp_path, grace_period=0.3)
    await started(backend, 1, command=("{python}", replica_script, "{port}"), env=(("IGNORE_TERM", "1"),))
    (pid,) = backend.pids(KEY)
    log_file = tmp_path / "state" / "logs" / "default_iris-default-0.log"
    began = time.monotonic()
    await backend.scale(KEY, 0)
    await wait_until(lambda: "ignoring SIGTERM" in log_file.read_text())
    assert alive(pid)  # ignored SIGTERM
    await wait_until(lambda: not alive(pid), within=2)
    assert time.monotonic() - began >= 0.3
    await backend.close()


async def test_crash_is_replaced_with_backoff(tmp_path: Path, replica_script: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.backends.local")
    backend = make_backend(tmp_path, backoff_initial=0.3)
    await started(backend, 1, command=("{python}", replica_script, "{port}"), env=(("CRASH_AFTER", "0.1"),))
    (first,) = backend.pids(KEY)
    await wait_until(lambda: backend.status(KEY).state == "crash-backoff")
    crashed = time.monotonic()
    status = backend.status(KEY)
    assert (status.desired, status.ready) == (1, 0)
    assert status.message == "replica exited with code 3: crashing now"
    assert "replica exited with code 3" in caplog.text and "restarting in 0.3s" in caplog.text
    await wait_until(lambda: backend.pids(KEY) and backend.pids(KEY) != [first])
    assert time.monotonic() - crashed >= 0.25
    await wait_until(lambda: "restarting in 0.6s" in caplog.text)  # second crash: doubled
    await backend.close()


async def test_replica_failing_at_start(tmp_path: Path, replica_script: str) -> None:
    backend = make_backend(tmp_path)
    await backend.sync([service(command=("{python}", replica_script, "{port}"), env=(("FAIL", "no model"),))])
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.status(KEY).state == "crash-backoff")
    assert backend.status(KEY).message == "replica exited with code 1: boom: no model"
    await backend.close()


async def test_unstartable_and_never_ready(tmp_path: Path, replica_script: str) -> None:
    backend = make_backend(tmp_path, start_timeout=0.3)
    await backend.sync(
        [
            service("bad", command=("{python}", "-c", "pass"), workdir=str(tmp_path / "missing")),
            service(
                "slow",
                command=("{python}", replica_script, "{port}"),
                env=(("LISTEN_DELAY", "60"),),
            ),
        ]
    )
    bad, slow = service("bad").key("default"), service("slow").key("default")
    await backend.scale(bad, 1)
    await backend.scale(slow, 1)
    await wait_until(lambda: backend.status(bad).state == "crash-backoff")
    assert (backend.status(bad).message or "").startswith("replica failed to start: ")
    await wait_until(lambda: backend.status(slow).state == "crash-backoff", within=3)
    assert backend.status(slow).message == "replica not ready after 0.3s"
    await backend.close()


async def test_a_replica_on_a_fixed_port_is_reported_with_the_probe_that_fails(
    tmp_path: Path, replica_script: str, caplog: pytest.LogCaptureFixture
) -> None:
    """ElasticServing users write `--port 9292`: the gateway's probe of its own port keeps failing, and says so."""
    backend = make_backend(tmp_path, not_ready_note=0.3)
    fixed = (replica_script, "0")  # listens on a port of its own choosing, never on {port}
    await backend.sync([service(command=("{python}", *fixed))])
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.status(KEY).message is not None, within=10)
    status = backend.status(KEY)
    assert status.state == "scaling" and status.ready == 0
    assert "not ready after" in status.message and "a TCP connect to 127.0.0.1:" in status.message  # type: ignore[operator]
    assert any("{port} or $PORT" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    await backend.close()


async def test_recovery_from_crash_back_off_is_logged(
    tmp_path: Path, replica_script: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.backends.local")
    marker = tmp_path / "crashed-once"
    code = (
        f"import os, runpy, sys; m = {str(marker)!r}\n"
        "if not os.path.exists(m):\n    open(m, 'w').close(); print('first start fails', flush=True); sys.exit(2)\n"
        f"sys.argv = [{replica_script!r}, sys.argv[1]]; runpy.run_path({replica_script!r}, run_name='__main__')"
    )
    backend = make_backend(tmp_path, backoff_initial=0.1)
    await backend.sync([service(command=("{python}", "-c", code, "{port}"))])
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.ready_endpoints(KEY), within=15)
    messages = [r.getMessage() for r in caplog.records]
    assert any("restarting in" in m for m in messages), messages
    recovered = [m for m in messages if "recovered from crash back-off" in m]
    assert len(recovered) == 1 and "first start fails" in recovered[0], messages
    assert backend.status(KEY).message is None
    await backend.close()


async def test_crash_back_off_is_timed_by_the_injected_clock(tmp_path: Path, replica_script: str) -> None:
    now = [1000.0]
    backend = make_backend(tmp_path, clock=lambda: now[0], backoff_initial=30.0, backoff_reset=60.0)
    await backend.sync([service(command=("{python}", replica_script, "{port}"), env=(("FAIL", "no model"),))])
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.status(KEY).state == "crash-backoff")
    assert backend.pids(KEY) == []  # no restart before the back-off ends, however long the test runs
    now[0] += 59.0
    assert backend.status(KEY).state == "crash-backoff"
    now[0] += 1.0  # a minute after the crash it is no longer recent: the revision is just scaling
    status = backend.status(KEY)
    assert (status.state, status.desired, status.ready) == ("scaling", 1, 0)
    await backend.close()


@pytest.mark.parametrize(("cc", "planes", "replicas"), [(1, 2, 2), (1, 3, 3), (2, 4, 2), (1, 4, 4)])
async def test_replica_ports_are_chosen_so_every_data_plane_has_a_part(
    tmp_path: Path, replica_script: str, cc: int, planes: int, replicas: int
) -> None:
    """containerConcurrency below the data planes: a replica serves only some of them, chosen by its address
    (gateway/slots.py). The ports are picked so that `planes / cc` replicas serve every plane."""
    from dataclasses import replace

    from gateway.config.model import ScalingSpec
    from gateway.slots import slot_offset

    backend = make_backend(tmp_path, planes=lambda: planes)
    spec = replace(service(command=("{python}", replica_script, "{port}")), scaling=ScalingSpec(container_concurrency=cc))
    try:
        await backend.sync([spec])
        await backend.scale(KEY, replicas)
        await wait_until(lambda: len(backend.ready_endpoints(KEY)) == replicas, within=20)
        served = {(slot_offset(e, planes) + j) % planes for e in backend.ready_endpoints(KEY) for j in range(cc)}
        assert served == set(range(planes))
    finally:
        await backend.close()


async def test_a_replica_fetching_its_model_is_reported_with_its_last_line_not_the_port_question(tmp_path: Path) -> None:
    """A replica that says it is fetching (or loading) a model and is not ready yet is shown with that line, in the
    periodic note and in the message of the kill once the start timeout passes."""
    line = "gateway modelserver: fetching s3://models/iris"
    # the replica under test: says what it does, then never listens (the backend kills it at its start timeout)
    code = f"import time; print({line!r}, flush=True); time.sleep(60)"
    backend = make_backend(tmp_path, not_ready_note=1.0, start_timeout=3.0)
    await backend.sync([service(command=("{python}", "-c", code))])
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.status(KEY).message is not None, within=10)
    starting = backend.status(KEY).message or ""
    assert starting.endswith(f"fails (still starting, its last log line: {line})"), starting
    assert "$PORT" not in starting
    await wait_until(lambda: backend.status(KEY).state == "crash-backoff", within=15)
    assert backend.status(KEY).message == f"replica not ready after 3s: {line}"
    await backend.close()


async def test_a_silent_replica_not_ready_gets_the_port_question_and_its_last_line(tmp_path: Path) -> None:
    # the replica under test: never listens; the test stops it, nothing waits the 60 s
    code = "import time; print('warming up', flush=True); time.sleep(60)"
    backend = make_backend(tmp_path, not_ready_note=1.0)
    await backend.sync([service(command=("{python}", "-c", code))])
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.status(KEY).message is not None, within=10)
    starting = backend.status(KEY).message or ""
    assert starting.endswith(
        "(does the command listen on the port the gateway gives it, {port} or $PORT? Its last log line: warming up)"
    )
    await backend.close()


async def test_storage_credentials_in_a_command_stay_out_of_the_replica_log(tmp_path: Path) -> None:
    uri = "https://alice:hunter2@example.com/m.onnx?X-Amz-Signature=deadbeef"
    backend = make_backend(tmp_path)
    await backend.sync([service(command=("{python}", "-c", "import sys; sys.exit(3)", uri))])
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.status(KEY).state == "crash-backoff")
    text = (tmp_path / "state" / "logs" / "default_iris-default-0.log").read_text()
    assert "https://***@example.com/m.onnx?***" in text and "hunter2" not in text and "deadbeef" not in text
    await backend.close()


async def test_command_and_args_expand_variables_as_kubernetes_does(tmp_path: Path) -> None:
    """`$(VAR)` from the replica's env, `$$` a `$`, an undefined reference as written (the kubelet's rules)."""
    code = "import os, sys; print(sys.argv[1:4], sys.argv[4] == os.environ['PORT'], flush=True); sys.exit(3)"
    backend = make_backend(tmp_path)
    command = ("{python}", "-c", code, "$(GREETING) there", "$$(GREETING)", "$(UNDEFINED)", "$(PORT)")
    await backend.sync([service(command=command, env=(("GREETING", "hello"),))])
    await backend.scale(KEY, 1)
    await wait_until(lambda: backend.status(KEY).state == "crash-backoff")
    assert backend.status(KEY).message == "replica exited with code 3: ['hello there', '$(GREETING)', '$(UNDEFINED)'] True"
    await backend.close()
