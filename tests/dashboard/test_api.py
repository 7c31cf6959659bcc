"""The dashboard's JSON API and static files on a real admin listener (uvicorn on loopback): paging, search,
every bad parameter a 400 naming it, history after traffic, and 10,000 idle services."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.app import Gateway
from gateway.config import load
from gateway.types import RevisionKey
from tests.conftest import wait_until
from tests.dashboard.support import admin_of, gateway_head, running, sleepy_service, static_service
from tests.router.support import start_replica

NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]


def static_config() -> str:
    return gateway_head("static") + "".join(static_service(n, "team-a" if i % 2 else "team-b") for i, n in enumerate(NAMES))


async def test_services_are_paged_sorted_and_searched(tmp_path: Path) -> None:
    async with running(static_config(), tmp_path) as gw, admin_of(gw) as admin:
        doc = (await admin.get("/admin/dashboard/services", params={"per_page": 3})).json()
        everyone = sorted(("team-a" if i % 2 else "team-b", n) for i, n in enumerate(NAMES))
        assert (doc["total"], doc["pages"], doc["page"], doc["per_page"]) == (7, 3, 1, 3)
        assert [(s["namespace"], s["name"]) for s in doc["services"]] == everyone[:3]
        last = (await admin.get("/admin/dashboard/services", params={"per_page": 3, "page": 3})).json()
        assert [(s["namespace"], s["name"]) for s in last["services"]] == everyone[6:]
        beyond = (await admin.get("/admin/dashboard/services", params={"per_page": 3, "page": 4})).json()
        assert beyond["services"] == [] and beyond["total"] == 7
        rev = doc["services"][0]["revisions"]
        assert [(r["tag"], r["percent"], r["ready"], r["desired"]) for r in rev] == [("default", 75, 1, 1), ("canary", 25, 1, 1)]
        # static endpoints: nothing scales them, so they are sampled as their page is read; nothing answered yet
        assert rev[0]["rps"] == 0.0 and rev[0]["p50"] is None and rev[0]["history"].startswith("/admin/dashboard/revisions/")
        for search, expected in [
            ("ETA", {"beta", "zeta", "eta"}),
            ("team-a/", {"beta", "delta", "zeta"}),
            ("gamma-canary", {"gamma"}),
        ]:
            found = (await admin.get("/admin/dashboard/services", params={"search": search})).json()
            assert {s["name"] for s in found["services"]} == expected, search
            assert found["total"] == len(expected)
        none = (await admin.get("/admin/dashboard/services", params={"search": "nothing-like-it"})).json()
        assert (none["total"], none["pages"], none["services"]) == (0, 1, [])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def static_admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """One gateway with the static config and its admin listener for the module's read-only requests: starting and
    stopping uvicorn takes a quarter of a second, more than the request."""
    async with running(static_config(), tmp_path_factory.mktemp("static")) as gw, admin_of(gw) as admin:
        yield admin


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("path", "params", "status", "names"),
    [
        ("/admin/dashboard/services", {"page": "0"}, 400, "'page'"),
        ("/admin/dashboard/services", {"page": "two"}, 400, "'page'"),
        ("/admin/dashboard/services", {"page": ""}, 400, "'page'"),
        ("/admin/dashboard/services", {"per_page": "0"}, 400, "'per_page'"),
        ("/admin/dashboard/services", {"per_page": "501"}, 400, "'per_page'"),
        ("/admin/dashboard/services", {"per_page": "1.5"}, 400, "'per_page'"),
        ("/admin/dashboard/services", {"search": "x" * 201}, 400, "'search'"),
        ("/admin/dashboard/services", {"serach": "alpha"}, 400, "'serach'"),
        ("/admin/dashboard/revisions/team-b/alpha/default/history", {"since": "yesterday"}, 400, "'since'"),
        ("/admin/dashboard/revisions/team-b/alpha/default/history", {"since": "-1"}, 400, "'since'"),
        ("/admin/dashboard/revisions/team-b/alpha/default/history", {"since": "nan"}, 400, "'since'"),
        ("/admin/dashboard/revisions/team-b/alpha/default/history", {"since": "inf"}, 400, "'since'"),
        ("/admin/dashboard/revisions/team-b/alpha/default/history", {"until": "1"}, 400, "'until'"),
        ("/admin/dashboard/revisions/team-b/alpha/blue/history", {}, 400, "'blue'"),
        ("/admin/dashboard/revisions/team-b/omega/default/history", {}, 404, "team-b/omega"),
        ("/admin/dashboard/revisions/team-a/alpha/default/history", {}, 404, "team-a/alpha"),
    ],
)
async def test_a_bad_parameter_is_refused_naming_it(
    static_admin: httpx.AsyncClient, path: str, params: dict[str, str], status: int, names: str
) -> None:
    r = await static_admin.get(path, params=params)
    assert r.status_code == status, r.text
    assert names in r.json()["error"]


async def test_the_page_and_its_files_are_served_with_a_script_policy(tmp_path: Path) -> None:
    async with running(static_config(), tmp_path) as gw, admin_of(gw) as admin:
        page = await admin.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' covers scripts
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert '<script src="/dashboard/static/dashboard.js">' in page.text and "<script>" not in page.text
        for name, kind in [("dashboard.js", "javascript"), ("uPlot.iife.min.js", "javascript"), ("dashboard.css", "css")]:
            r = await admin.get(f"/dashboard/static/{name}")
            assert r.status_code == 200 and kind in r.headers["content-type"], name
        assert (await admin.get("/dashboard/static/../admin.py")).status_code == 404
        assert (await admin.get("/healthz")).text == "ok"  # the admin routes are all still there


@pytest.mark.e2e
async def test_history_and_table_follow_traffic_and_a_scale_event(tmp_path: Path) -> None:
    """Real replicas (local backend): a burst at zero scales up; the table shows the rate and latency, the
    history the replicas and the scale events with their reasons, and `since` returns only what is new."""
    async with running(gateway_head() + sleepy_service("sleepy"), tmp_path) as gw, admin_of(gw) as admin:
        path = "/admin/dashboard/revisions/default/sleepy/default/history"
        first = (await admin.get(path)).json()
        assert first["rows"] == [] and first["events"] == []  # idle at zero: nothing recorded
        port = gw.proxy.sockets[0][1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": "sleepy.default.example.com"}) as c:
            answers = await asyncio.gather(*(c.get("/work?ms=300", timeout=30) for _ in range(12)))
        assert [a.status_code for a in answers] == [200] * 12

        async def table() -> dict[str, Any]:
            doc = (await admin.get("/admin/dashboard/services")).json()
            return dict(doc["services"][0]["revisions"][0])

        await wait_until(lambda: _ready_at_least(table, 1), "a ready replica in the table", within=20)
        row = await table()
        assert isinstance(row["rps"], float) and row["rps"] > 0
        assert isinstance(row["p50"], float) and 0.25 <= row["p50"] <= 30
        assert row["error_rate"] == 0.0
        doc = (await admin.get(path)).json()
        scale_ups = [e for e in doc["events"] if e["kind"] == "scale" and e["what"].startswith("0 -> ")]
        assert scale_ups, doc["events"]
        columns = doc["columns"]
        assert max(r[columns.index("ready")] for r in doc["rows"]) >= 1
        assert max(r[columns.index("queued")] for r in doc["rows"]) >= 1, "the burst waited at zero"
        later = (await admin.get(path, params={"since": doc["now"]})).json()
        assert all(r[0] > doc["now"] for r in later["rows"]) and all(e["time"] > doc["now"] for e in later["events"])

        async def scaled_to_zero() -> bool:
            events = (await admin.get(path)).json()["events"]
            return any(e["what"].endswith("-> 0") for e in events)

        await wait_until(scaled_to_zero, "a scale-to-zero event", within=30)


async def _ready_at_least(table: Callable[[], Awaitable[dict[str, Any]]], n: int) -> bool:
    row = await table()
    return bool(row["ready"] >= n and row["rps"])


@pytest.mark.e2e
async def test_ten_thousand_idle_services_cost_no_history_and_pages_stay_fast(tmp_path: Path) -> None:
    n = 10_000
    text = gateway_head(tick="2s") + "".join(
        f"---\napiVersion: elasticserving.paddlepaddle.org/v1\nkind: PaddleService\nmetadata: {{name: svc-{i:05d}, namespace: bench}}\n"
        f"spec:\n  default: {{command: ['/bin/false']}}\n  service: {{minScale: 0}}\n"
        for i in range(n)
    )
    async with running(text, tmp_path) as gw, admin_of(gw) as admin:
        await gw.autoscaler.tick_all()
        await gw.autoscaler.tick_all()
        assert len(gw.autoscaler.keys()) == n
        assert gw.history.tracks == {}, "an idle revision at zero must cost nothing"
        timings = []
        for params in [{}, {"page": "200"}, {"search": "svc-04321"}, {"search": "bench/", "per_page": "500", "page": "20"}]:
            started = time.monotonic()
            r = await admin.get("/admin/dashboard/services", params=params)
            timings.append(time.monotonic() - started)
            assert r.status_code == 200, r.text
            doc = r.json()
            if "search" in params and params["search"] == "svc-04321":
                assert [s["name"] for s in doc["services"]] == ["svc-04321"] and doc["total"] == 1
            elif params.get("per_page") == "500":
                assert doc["pages"] == 20 and doc["services"][-1]["name"] == "svc-09999" and len(doc["services"]) == 500
            else:
                assert doc["total"] == n and doc["pages"] == 200 and len(doc["services"]) == 50
        assert max(timings) < 2.0, timings  # measured ~0.05 s per page here; generous for a loaded machine
        r = await admin.get("/admin/dashboard/revisions/bench/svc-09999/default/history")
        assert r.status_code == 200 and r.json()["rows"] == []


def test_every_static_file_is_package_data() -> None:
    """An installed wheel serves the page: pyproject's package-data covers every file the page needs."""
    import fnmatch
    import tomllib

    import gateway.dashboard

    root = Path(gateway.dashboard.__file__).parent
    patterns = tomllib.loads((root.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    files = [p.relative_to(root).as_posix() for p in (root / "static").iterdir()]
    assert {"static/index.html", "static/dashboard.js", "static/uPlot.iife.min.js"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns["gateway.dashboard"]), name


async def test_a_revision_nothing_scales_gets_its_rates_while_its_page_is_looked_at(tmp_path: Path) -> None:
    replica = await start_replica("static")
    try:
        config = gateway_head("static") + static_service("fixed", "default", f"http://127.0.0.1:{replica.port}")
        async with running(config, tmp_path) as gw, admin_of(gw) as admin:
            assert gw.runtimes and not any(key in gw.autoscaler for key in gw.runtimes)
            first = (await admin.get("/admin/dashboard/services")).json()["services"][0]["revisions"][0]
            assert first["rps"] == 0.0 and first["p50"] is None
            port = gw.proxy.sockets[0][1]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": "fixed.default.example.com"}) as c:
                codes = [(await c.get("/")).status_code for _ in range(20)]
            assert codes == [200] * 20
            revisions = (await admin.get("/admin/dashboard/services")).json()["services"][0]["revisions"]
            assert sum(r["rps"] for r in revisions) > 0 and all(r["error_rate"] in (0.0, None) for r in revisions)
            assert any(r["p50"] is not None for r in revisions), revisions
            busy = next(r for r in revisions if r["rps"])
            history = (await admin.get(busy["history"])).json()
            assert history["rows"] and history["rows"][-1][history["columns"].index("ready")] == 1
    finally:
        await replica.runner.cleanup()


async def test_an_inference_service_s_numbered_revision_is_listed_and_has_a_history(tmp_path: Path) -> None:
    isvc = """---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris, namespace: models}
spec:
  predictor:
    minReplicas: 0
    containers:
      - name: kserve-container
        command: ["/bin/false"]
"""
    async with running(gateway_head() + isvc, tmp_path) as gw, admin_of(gw) as admin:
        doc = (await admin.get("/admin/dashboard/services", params={"search": "iris"})).json()
        (revision,) = doc["services"][0]["revisions"]
        assert revision["revision"].startswith("predictor-") and revision["name"] == f"iris-{revision['revision']}"
        assert revision["tag"] is None  # no tag routing asked for: no tag host, as KServe
        r = await admin.get(revision["history"])
        assert r.status_code == 200 and r.json()["name"] == revision["name"]
        r = await admin.get("/admin/dashboard/revisions/models/iris/predictor-1/history")
        assert r.status_code == 400 and "'predictor-1'" in r.json()["error"]


def test_the_search_index_is_built_once_per_configuration(tmp_path: Path) -> None:
    """A poll reads the index the configuration it serves was given: the sort and the search texts are not
    rebuilt per request (at 10,000 services that held the event loop ~40 ms per poll of page 1)."""
    from gateway.config import load
    from gateway.dashboard import views

    def config_file(names: list[str]) -> str:
        path = tmp_path / f"gw-{len(names)}.yaml"
        path.write_text(gateway_head("static") + "".join(static_service(name, "team") for name in names))
        return str(path)

    first = load([config_file(["b-svc", "a-svc", "c-svc"])])
    index = views._index_of(first)
    assert views._index_of(first) is index, "rebuilt for the same configuration"
    assert [s.name for s in index.ordered] == ["a-svc", "b-svc", "c-svc"]
    assert index.texts[0] == "team/a-svc\na-svc.team.example.com\na-svc-default\na-svc-canary"
    second = load([config_file(["z-svc", "a-svc"])])
    assert views._index_of(second) is not index and [s.name for s in views._index_of(second).ordered] == ["a-svc", "z-svc"]


async def test_a_reload_that_removes_a_static_revision_drops_its_history(tmp_path: Path) -> None:
    """Static revisions are sampled while the page is viewed; a reload that removes them must drop their
    tracks too (outside attack: services replaced every second grew the history by 0.39 MiB/s)."""
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(gateway_head("static") + static_service("kept", "team") + static_service("gone", "team"))
    gw = Gateway(load([str(cfg)]), [str(cfg)], state_dir=tmp_path / "state")
    await gw.start(listen="127.0.0.1:0")
    try:
        async with admin_of(gw) as admin:
            assert (await admin.get("/admin/dashboard/services")).status_code == 200
        gone = RevisionKey("team", "gone", "default")
        assert gone in gw.history.tracks, "the page's view of a static revision keeps a track (the subject)"
        cfg.write_text(gateway_head("static") + static_service("kept", "team"))
        await gw.reload()
        assert not [key for key in gw.history.tracks if key.service == "gone"]
        assert RevisionKey("team", "kept", "default") in gw.history.tracks
    finally:
        await gw.stop(drain_timeout=1)
