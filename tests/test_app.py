"""The assembled gateway: reload swaps routes atomically, bad configs are refused, admin API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.admin import create_admin_app
from gateway.app import Gateway
from gateway.config import ConfigError, load
from tests.conftest import wait_until
from tests.router.support import Replica, start_replica

HOST = "iris.default.example.com"


def write_config(path: Path, default: str, canary: str | None = None, percent: int = 0, extra: str = "") -> None:
    canary_part = (
        f"""
  canary:
    endpoints: ["{canary}"]
  canaryTrafficPercent: {percent}"""
        if canary
        else ""
    )
    path.write_text(
        f"""apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  backend: static
---
apiVersion: elasticserving.paddlepaddle.org/v1
kind: PaddleService
metadata:
  name: iris
spec:
  default:
    endpoints: ["{default}"]{canary_part}
{extra}"""
    )


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[Replica, Replica]]:
    a, b = await start_replica("a"), await start_replica("b")
    yield a, b
    await a.runner.cleanup()
    await b.runner.cleanup()


async def start(path: Path, tmp_path: Path) -> tuple[Gateway, httpx.AsyncClient, httpx.AsyncClient]:
    gw = Gateway(load([str(path)]), [str(path)], state_dir=tmp_path / "state")
    await gw.start(listen="127.0.0.1:0")
    port = gw.proxy.sockets[0][1]
    data = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": HOST}, timeout=10)
    admin = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_admin_app(gw)), base_url="http://admin")
    return gw, data, admin


async def test_reload_swaps_routes_and_in_flight_requests_complete(replicas: tuple[Replica, Replica], tmp_path: Path) -> None:
    a, b = replicas
    cfg = tmp_path / "gw.yaml"
    write_config(cfg, a.url)
    gw, data, admin = await start(cfg, tmp_path)
    try:
        slow = asyncio.create_task(data.get("/slow?sleep=0.5"))
        default = gw.runtimes[next(iter(gw.runtimes))]
        await wait_until(lambda: sum(t.in_flight for t in default.throttler.trackers.values()) == 1)  # at replica a
        write_config(cfg, a.url, b.url, percent=100)
        r = await admin.post("/admin/reload")
        assert r.status_code == 200 and r.json()["reloaded"] is True
        finished = await slow
        assert finished.status_code == 200 and finished.json()["replica"] == "a"
        r = await data.get("/")
        assert r.json()["replica"] == "b" and r.headers["x-gateway-revision"] == "iris-canary"
    finally:
        await data.aclose()
        await admin.aclose()
        await gw.stop(drain_timeout=1)


@pytest.mark.parametrize(
    "bad, words",
    [
        ("key: [unclosed", "gw.yaml"),
        ("---\nkind: Mystery\napiVersion: x/v1\nmetadata: {name: m}", "Mystery"),
        ("  canaryTrafficPercent: 150", "canaryTrafficPercent"),
        (  # KFServing's level on a v1beta1 InferenceService: not a full rollout, a refused reload
            "---\napiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: sk}\nspec:\n"
            "  canaryTrafficPercent: 10\n  predictor: {containers: [{image: x, command: [x]}]}",
            "spec.canaryTrafficPercent: belongs in spec.predictor (serving.kserve.io/v1beta1); "
            "did you mean spec.predictor.canaryTrafficPercent?",
        ),
    ],
)
async def test_bad_reload_is_refused_and_old_config_keeps_serving(
    replicas: tuple[Replica, Replica], tmp_path: Path, bad: str, words: str
) -> None:
    a, b = replicas
    cfg = tmp_path / "gw.yaml"
    write_config(cfg, a.url)
    gw, data, admin = await start(cfg, tmp_path)
    try:
        if bad.startswith("  canary"):
            write_config(cfg, a.url, b.url, percent=150)
        else:
            cfg.write_text(cfg.read_text() + "\n" + bad + "\n")
        r = await admin.post("/admin/reload")
        assert r.status_code == 400
        assert words in r.json()["error"]
        with pytest.raises(ConfigError):
            await gw.reload()
        r = await data.get("/")
        assert r.status_code == 200 and r.json()["replica"] == "a"
    finally:
        await data.aclose()
        await admin.aclose()
        await gw.stop(drain_timeout=1)


async def test_admin_endpoints(replicas: tuple[Replica, Replica], tmp_path: Path) -> None:
    a, b = replicas
    cfg = tmp_path / "gw.yaml"
    write_config(cfg, a.url, b.url, percent=30)
    gw, data, admin = await start(cfg, tmp_path)
    try:
        for _ in range(10):
            assert (await data.get("/")).status_code == 200
        assert (await admin.get("/healthz")).status_code == 200
        assert (await admin.get("/readyz")).status_code == 200
        doc = (await admin.get("/admin/services")).json()
        svc = doc["services"][0]
        assert svc["host"] == HOST
        revs = {r["name"]: r for r in svc["revisions"]}
        assert revs["iris-default"]["percent"] == 70 and revs["iris-canary"]["percent"] == 30
        assert revs["iris-default"]["endpoints"] == [a.url]
        assert revs["iris-canary"]["ready"] == 1
        for field in ("desired", "stable", "panic", "panicking", "queued"):
            assert field in revs["iris-default"]
        text = (await admin.get("/metrics")).text
        assert 'gateway_requests_total{code="200",namespace="default",revision="iris-default",service="iris"} 7.0' in text
        assert 'gateway_requests_total{code="200",namespace="default",revision="iris-canary",service="iris"} 3.0' in text
        assert "gateway_request_duration_seconds_bucket" in text
        await data.get("/", headers={"Host": "nobody.default.example.com"})
        text = (await admin.get("/metrics")).text
        assert 'gateway_requests_total{code="404",namespace="",revision="",service=""} 1.0' in text
        for name in (
            "gateway_revision_ready_replicas",
            "gateway_revision_desired_replicas",
            "gateway_revision_concurrency",
            "gateway_revision_panic",
            "gateway_activator_queued_requests",
            "gateway_cold_start_seconds",
        ):
            assert name in text
    finally:
        await data.aclose()
        await admin.aclose()
        await gw.stop(drain_timeout=1)


async def test_same_service_name_in_two_namespaces_gives_distinct_series(
    replicas: tuple[Replica, Replica], tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    a, b = replicas
    cfg = tmp_path / "gw.yaml"
    doc = 'apiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {{name: x, namespace: {ns}}}\nspec:\n  default:\n    endpoints: ["{url}"]\n'
    cfg.write_text(
        "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec: {backend: static}\n---\n"
        + doc.format(ns="ns-a", url=a.url)
        + "---\n"
        + doc.format(ns="ns-b", url=b.url)
    )
    gw, data, admin = await start(cfg, tmp_path)
    try:
        for ns in ("ns-a", "ns-b"):
            assert (await data.get("/", headers={"Host": f"x.{ns}.example.com"})).status_code == 200
        text = (await admin.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            keys = [(s.name, tuple(sorted(s.labels.items()))) for s in family.samples]
            assert len(keys) == len(set(keys)), f"duplicate series in {family.name}"
        assert 'gateway_requests_total{code="200",namespace="ns-a",revision="x-default",service="x"} 1.0' in text
        assert 'gateway_requests_total{code="200",namespace="ns-b",revision="x-default",service="x"} 1.0' in text
    finally:
        await data.aclose()
        await admin.aclose()
        await gw.stop(drain_timeout=1)


async def test_reload_applies_new_proxy_limits(replicas: tuple[Replica, Replica], tmp_path: Path) -> None:
    a, _ = replicas
    cfg = tmp_path / "gw.yaml"
    write_config(cfg, a.url)
    gw, data, admin = await start(cfg, tmp_path)
    try:
        assert (await data.post("/", content=b"x" * 100)).status_code == 200
        cfg.write_text(cfg.read_text().replace("  backend: static\n", "  backend: static\n  proxy:\n    maxBodyBytes: 10\n"))
        assert (await admin.post("/admin/reload")).status_code == 200
        r = await data.post("/", content=b"x" * 100)
        assert r.status_code == 413
    finally:
        await data.aclose()
        await admin.aclose()
        await gw.stop(drain_timeout=1)


async def test_reload_answers_and_logs_its_outcome_and_every_warning(
    replicas: tuple[Replica, Replica], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 8 B5: a refused POST is logged; warnings reach the POST's answer, not only the log."""
    caplog.set_level(logging.INFO, logger="gateway.reloads")
    a, b = replicas
    cfg = tmp_path / "gw.yaml"
    write_config(cfg, a.url)
    gw, data, admin = await start(cfg, tmp_path)
    try:
        cfg.write_text(cfg.read_text().replace("backend: static", "backend: static\n  listen: 127.0.0.1:1234"))
        r = await admin.post("/admin/reload")
        doc = r.json()
        assert r.status_code == 200 and doc["reloaded"] is True and doc["generation"] == 1
        assert doc["changes"] == "1 services: 0 added, 0 changed, 0 removed"
        assert any("spec.listen changed" in w and "next start" in w for w in doc["warnings"]), doc
        write_config(cfg, a.url, b.url, percent=150)
        r = await admin.post("/admin/reload")
        assert r.status_code == 400 and r.json()["generation"] == 2 and "canaryTrafficPercent" in r.json()["error"]
        logged = [rec.getMessage() for rec in caplog.records]
        assert any(m.startswith("reload 2 refused, the previous configuration keeps serving") for m in logged), logged
        assert any(m.startswith("reload 1: 1 services") for m in logged), logged
    finally:
        await data.aclose()
        await admin.aclose()
        await gw.stop(drain_timeout=1)


async def test_a_restart_only_setting_is_compared_with_what_runs_not_with_the_last_file(
    replicas: tuple[Replica, Replica], tmp_path: Path
) -> None:
    a, _ = replicas
    cfg = tmp_path / "gw.yaml"
    write_config(cfg, a.url)
    gw, data, admin = await start(cfg, tmp_path)
    try:
        warnings = []
        for url in ("redis://127.0.0.1:6391", "redis://127.0.0.1:6392"):
            cfg.write_text(cfg.read_text().replace("backend: static\n", f"backend: static\n  redis: {url}\n", 1))
            _, report = await gw.reload()
            warnings.append([w for w in report.warnings if w.startswith("spec.redis")])
            cfg.write_text(cfg.read_text().replace(f"  redis: {url}\n", ""))
        assert warnings == [
            [f"spec.redis changed from (not set) to {url}: takes effect on the next start, not on reload"]
            for url in ("redis://127.0.0.1:6391", "redis://127.0.0.1:6392")
        ]
        assert gw.shared is None  # still the single instance it started as
    finally:
        await data.aclose()
        await admin.aclose()
        await gw.stop(drain_timeout=1)
