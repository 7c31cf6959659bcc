"""`gateway serve` with `spec.backend: kubernetes` against the test bed: requests at zero answered by real
pod processes, a burst from zero spread over several pods, the canary split across pods.

Times are printed (`pytest -s`): from a request at zero to its answer, and how a burst spread.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.cluster import Cluster

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

# A pod's server: any path answers the pod's name after `?ms=N` milliseconds; listens on 0.0.0.0:$PORT
# (the test bed makes that the pod's own 127.0.x.y).
POD_SERVER = r"""
import asyncio, os

NAME = os.environ.get("POD_NAME", "?").encode()


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            ms = int(target.split("ms=")[1]) if "ms=" in target else 0
            await asyncio.sleep(ms / 1000)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(NAME), NAME))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", int(os.environ["PORT"]))
    async with server:
        await server.serve_forever()


asyncio.run(main())
"""


GATEWAY = """apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: kubernetes
  autoscaler:
    stableWindow: 6s
    scaleToZeroGracePeriod: 1s
    tickInterval: 0.25s
    initialScale: 0
    allowZeroInitialScale: true
---
"""


ECHO = "echo-predictor-00001"  # the InferenceService's first revision, as KServe names it


def echo(server: Path) -> str:
    """At zero when idle; containerConcurrency 2, so a burst needs several pods."""
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: echo
spec:
  predictor:
    minReplicas: 0
    maxReplicas: 5
    containerConcurrency: 2
    canaryTrafficPercent: 0
    containers:
      - name: kserve-container
        image: testbed/echo:1
        command: ["{sys.executable}", "{server}"]
        ports: [{{containerPort: 8080}}]
"""


def split(server: Path) -> str:
    """Two pods for each revision at all times, 30 % of the traffic to the canary."""
    revision = f"""
    containerImage: testbed/echo
    tag: "1"
    arg: {sys.executable} {server}
    port: 8080"""
    return f"""apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: echo
spec:
  runtimeVersion: echo
  canaryTrafficPercent: 30
  service:
    minScale: 2
    maxScale: 2
  default:{revision}
  canary:{revision}
"""


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, admin: int) -> None:
        self.proc, self.port, self.admin = proc, port, admin

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Host": "echo.default.example.com"},
            timeout=60,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )


def serve(config: Path, kubeconfig: Path, state: Path) -> Served:
    port, admin = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "-f", str(config), "--listen", f"127.0.0.1:{port}"]
        + ["--admin-listen", f"127.0.0.1:{admin}", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env,
    )
    return Served(proc, port, admin)


def stop(served: Served) -> str:
    """SIGTERM (kill after 20 s); what the gateway printed."""
    proc = served.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.communicate()[0] if proc.stdout else ""


@pytest.fixture
def pod_server(tmp_path: Path) -> Path:
    server = tmp_path / "pod_server.py"
    server.write_text(POD_SERVER)
    return server


@pytest.fixture
def served(
    cluster: Cluster, kubeconfig: Path, tmp_path: Path, pod_server: Path, request: pytest.FixtureRequest
) -> Iterator[Served]:
    config = tmp_path / "gateway.yaml"
    services = {"echo": echo, "split": split}[getattr(request, "param", "echo")]
    config.write_text(GATEWAY + services(pod_server))
    gateway = serve(config, kubeconfig, tmp_path / "state")
    try:
        yield gateway
    finally:
        stop(gateway)


async def ready(served: Served) -> bool:
    if served.proc.poll() is not None:
        raise AssertionError(f"the gateway exited: {served.proc.communicate()[0]}")
    try:
        async with httpx.AsyncClient() as admin:
            return (await admin.get(f"http://127.0.0.1:{served.admin}/readyz", timeout=1)).status_code == 200
    except httpx.HTTPError:
        return False


async def test_a_request_at_zero_is_answered_by_a_pod_and_a_burst_spreads(served: Served, cluster: Cluster) -> None:
    await wait_until(lambda: ready(served), "the gateway ready", within=30)
    await wait_until(lambda: cluster.api.objects("deployments", "default"), "the Deployment made")
    assert not cluster.pods(ECHO)  # at zero
    async with served.client() as client:
        started = time.monotonic()
        answer = await client.get("/")
        cold = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-gateway-cold-start"] == "true"
        (pod,) = cluster.ready_pods(ECHO)
        assert answer.text == pod["metadata"]["name"]
        print(f"\nrequest at zero answered through a pod in {cold:.2f} s")

        # Back to zero, then a burst of 20 requests of 1.5 s: containerConcurrency 2 spreads them.
        await wait_until(lambda: not cluster.pods(ECHO), "scaled back to zero", within=60)
        started = time.monotonic()
        answers = await asyncio.gather(*(client.get("/work?ms=1500") for _ in range(20)))
        took = time.monotonic() - started
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    spread = Counter(a.text for a in answers)
    print(f"burst of 20 from zero: answered in {took:.2f} s by {len(spread)} pods: {sorted(spread.values())}")
    assert len(spread) >= 2 and max(spread.values()) < 20


@pytest.mark.parametrize("served", ["split"], indirect=True)
async def test_the_canary_split_holds_across_pods(served: Served, cluster: Cluster) -> None:
    await wait_until(lambda: ready(served), "the gateway ready", within=30)
    await wait_until(
        lambda: all(len(cluster.ready_pods(name)) == 2 for name in ("echo-default", "echo-canary")),
        "2 ready pods of each revision",
        within=60,
    )
    pods = {p["metadata"]["name"]: name for name in ("echo-default", "echo-canary") for p in cluster.ready_pods(name)}
    async with served.client() as client:
        await wait_until(lambda: _all_routed(client, pods), "every pod routed to", within=30)
        answers = [await client.get("/") for _ in range(400)]
    assert all(a.status_code == 200 for a in answers)
    by_pod = Counter(a.text for a in answers)
    by_revision = Counter(pods[name] for name in by_pod.elements())
    assert set(by_pod) == set(pods)  # every pod of both revisions served
    assert all(a.headers["x-gateway-revision"] == pods[a.text] for a in answers)
    assert 0.22 <= by_revision["echo-canary"] / 400 <= 0.38, by_revision


async def _all_routed(client: httpx.AsyncClient, pods: dict[str, str]) -> bool:
    seen = {(await client.get("/", headers={"Knative-Serving-Tag": tag})).text for tag in ("default", "canary") for _ in range(8)}
    return seen == set(pods)


def replicas(cluster: Cluster, name: str) -> int | None:
    found = [d for d in cluster.api.objects("deployments", "default") if d["metadata"]["name"] == name]
    return found[0]["spec"]["replicas"] if found else None


def scale_patches(cluster: Cluster) -> int:
    return sum(1 for r in cluster.api.requests() if r.method == "PATCH" and r.url.endswith("/scale"))


async def test_a_restarted_gateway_leaves_an_idle_revision_at_zero(
    cluster: Cluster, kubeconfig: Path, tmp_path: Path, pod_server: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY.replace("initialScale: 0", "initialScale: 1") + echo(pod_server))
    first = serve(config, kubeconfig, tmp_path / "state")
    try:
        await wait_until(lambda: ready(first), "the gateway ready", within=30)
        await wait_until(lambda: len(cluster.ready_pods(ECHO)) == 1, "the initial scale's pod", within=30)
        await wait_until(lambda: replicas(cluster, ECHO) == 0, "idle: back to zero", within=60)
    finally:
        stop(first)
    patches = scale_patches(cluster)
    second = serve(config, kubeconfig, tmp_path / "state")
    try:
        await wait_until(lambda: ready(second), "the restarted gateway ready", within=30)
        async with httpx.AsyncClient() as admin:

            async def told() -> bool:
                doc = (await admin.get(f"http://127.0.0.1:{second.admin}/admin/services")).json()
                return bool(doc["services"][0]["revisions"][0]["desired"] == 0)

            await wait_until(told, "the adopted scale in /admin/services")
        # Ticks run every 0.25 s: a gateway that started the revision at its initial scale would have
        # patched it by now. The adopted one stays at zero.
        await asyncio.sleep(2.0)
        assert replicas(cluster, ECHO) == 0 and scale_patches(cluster) == patches
        assert not cluster.pods(ECHO)
    finally:
        stop(second)


async def test_while_the_api_is_unreachable_the_gateway_serves_and_says_so(served: Served, cluster: Cluster) -> None:
    await wait_until(lambda: ready(served), "the gateway ready", within=30)
    async with served.client() as client, httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.admin}") as admin:
        assert (await client.get("/")).status_code == 200  # a pod from zero
        cluster.api.stop_listening()
        try:
            await wait_until(lambda: _says_unreachable(admin), "the outage on /readyz", within=30)
            answer = await client.get("/")  # the last known pod still serves
            assert answer.status_code == 200 and answer.text == cluster.ready_pods(ECHO)[0]["metadata"]["name"]
            doc = (await admin.get("/admin/services")).json()
            assert doc["backends"]["kubernetes"]["ok"] is False
            assert doc["services"][0]["revisions"][0]["state"] == "unreachable"
            status = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "gateway", "status", "--admin", f"127.0.0.1:{served.admin}"),
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            printed = (await status.communicate())[0].decode()
            assert status.returncode == 0 and printed.startswith("kubernetes: kubernetes API"), printed
            assert "unreachable" in printed and "scaling paused" in printed
            # said once, above the table: the revision's row points there instead of repeating it
            assert printed.count("scaling paused") == 1 and "  unreachable (see above)\n" in printed, printed
            metrics = (await admin.get("/metrics")).text
            assert 'gateway_backend_up{backend="kubernetes"} 0.0' in metrics
        finally:
            cluster.api.start_listening()
        await wait_until(lambda: _says_ready(admin), "/readyz clean again", within=30)
        assert 'gateway_backend_up{backend="kubernetes"} 1.0' in (await admin.get("/metrics")).text


async def _says_unreachable(admin: httpx.AsyncClient) -> bool:
    answer = await admin.get("/readyz")
    return answer.status_code == 200 and "kubernetes API" in answer.text and "unreachable" in answer.text


async def _says_ready(admin: httpx.AsyncClient) -> bool:
    answer = await admin.get("/readyz")
    return answer.status_code == 200 and answer.text == "ready"


def test_serve_without_a_readable_kubeconfig_is_a_clear_error(tmp_path: Path, pod_server: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY + echo(pod_server))
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "missing"), "PYTHONPATH": str(ROOT)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "-f", str(config), "--listen", "127.0.0.1:0"]
        + ["--admin-listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"cannot read the API configuration from kubeconfig {tmp_path / 'missing'}" in done.stderr
