"""The dashboard in a real browser: headless Chromium loads `/` from a running `gateway serve` (local backend,
real replicas) and the rendered DOM is read over the DevTools protocol while traffic comes and goes."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path

import httpx
import pytest

from gateway.dashboard import views
from tests.dashboard.browser import chromium
from tests.dashboard.support import admin_of, gateway_head, running, serve, sleepy_service, static_service

pytestmark = pytest.mark.e2e

ROW = "document.querySelector('tr[data-revision=\"{}\"]')"


def cell(revision: str, column: str) -> str:
    """A JavaScript expression: the text of `column` in `revision`'s row, or null."""
    return f"(r => r ? r.querySelector('.col-{column}').textContent : null)({ROW.format(revision)})"


def events_text(revision: str) -> str:
    return f"Array.from(document.querySelectorAll('ul.events[data-revision=\"{revision}\"] li')).map(li => li.textContent)"


def ready_desired(text: str | None) -> tuple[int, int] | None:
    if not text or "/" not in text:
        return None
    ready, desired = text.split("/")
    return int(ready), int(desired)


class Traffic:
    """Concurrent slow requests from threads until stopped: replicas scale up while it runs."""

    def __init__(self, port: int, host: str, concurrency: int, ms: int) -> None:
        self.stop = threading.Event()
        self.codes: list[int] = []
        self._threads = [threading.Thread(target=self._run, args=(port, host, ms), daemon=True) for _ in range(concurrency)]

    def _run(self, port: int, host: str, ms: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": host}, timeout=60) as client:
            while not self.stop.is_set():
                self.codes.append(client.get(f"/work?ms={ms}").status_code)

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=60)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_revisions_replicas_and_scale_events_appear_and_change_with_traffic(tmp_path: Path, workers: str) -> None:
    config = gateway_head() + sleepy_service("sleepy", canary=30) + sleepy_service("other", "team")
    with serve(config, tmp_path, "--workers", workers) as served, chromium() as page:
        page.goto(served.admin + "/#open=default/sleepy/default")
        default, canary = "default/sleepy-default", "default/sleepy-canary"
        page.wait_for(
            f"{ROW.format(default)} && {ROW.format(canary)} && {ROW.format('team/other-default')}", "the three revisions"
        )
        assert page.evaluate(cell(default, "traffic")) == "70%" and page.evaluate(cell(canary, "traffic")) == "30%"
        assert ready_desired(page.evaluate(cell(default, "replicas"))) == (0, 0)
        page.wait_for(f"document.querySelector('div.chart[data-revision=\"{default}\"] canvas')", "the open chart")

        with Traffic(served.port, "sleepy.default.example.com", concurrency=10, ms=300) as traffic:
            page.wait_for(
                f"(t => t && parseInt(t) >= 2)({cell(default, 'replicas')})",
                "the default revision at 2 or more ready replicas",
                within=40,
            )
            page.wait_for(
                f"{events_text(default)}.some(t => t.includes('autoscaler: scale 0 -> '))", "a scale-up event", within=20
            )
            rps = page.wait_for(f"(t => t && t !== '\u2013' && parseFloat(t) > 0 && t)({cell(default, 'rps')})", "a request rate")
            assert float(rps) > 0
            assert page.evaluate(cell(default, "p50")).endswith(("ms", " s"))
        assert traffic.codes and set(traffic.codes) == {200}

        # traffic gone: the stable window passes and both revisions go back to zero, which the page shows
        page.wait_for(
            f"(t => t && t.replace(/ /g, '') === '0/0')({cell(default, 'replicas')})", "the default revision at 0 / 0", within=60
        )
        page.wait_for(f"{events_text(default)}.some(t => /scale \\d+ -> 0 /.test(t))", "the scale-to-zero event", within=10)
        events = page.evaluate(events_text(default))
        assert any("no traffic for the stable window" in t for t in events), events

        # search narrows the table on the server side
        page.evaluate("(s => { s.value = 'team/'; s.dispatchEvent(new Event('input')); })(document.getElementById('search'))")
        page.wait_for(f"!{ROW.format(default)} && {ROW.format('team/other-default')}", "the search to keep only team/other")
        assert page.evaluate("document.getElementById('pageinfo').textContent").endswith("1 services")


HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


async def test_hostile_names_and_reasons_are_rendered_as_text(tmp_path: Path) -> None:
    """Names are DNS labels once the config is checked; the page must not rely on that: a service whose name
    and namespace carry markup, and an event reason with markup, show as text and run nothing."""
    async with running(gateway_head("static") + static_service("plain", "default"), tmp_path) as gw, admin_of(gw) as admin:
        spec = gw.config.services[0]
        hostile = dataclasses.replace(spec, name=HOSTILE, namespace="ns<b>bold</b>")
        gw.config = dataclasses.replace(gw.config, services=(spec, hostile))
        key = spec.key("default")
        gw.history.event(key, "scale", "0 -> 1", '<img src=x onerror="window.__xss=3">')
        url = str(admin.base_url).rstrip("/") + "/#open=default/plain/default"

        def look() -> tuple[list[str], list[str], int, bool]:
            with chromium() as page:
                page.goto(url)
                page.wait_for("document.querySelectorAll('#rows tr[data-revision]').length === 4", "the four revisions")
                page.wait_for(f"{events_text('default/plain-default')}.length === 1", "the event")
                return (
                    page.evaluate("Array.from(document.querySelectorAll('td.col-service')).map(td => td.textContent)"),
                    page.evaluate(events_text("default/plain-default")),
                    page.evaluate("document.querySelectorAll('#rows img, #rows script, #rows b, ul.events img').length"),
                    page.evaluate("window.__xss === undefined"),
                )

        services, events, elements, clean = await asyncio.to_thread(look)
        assert f"ns<b>bold</b>/{HOSTILE}" in services, services
        assert events[0].endswith('(<img src=x onerror="window.__xss=3">)'), events
        assert elements == 0 and clean is True


async def test_a_chart_whose_revision_a_reload_removed_closes_alone(tmp_path: Path) -> None:
    """One chart's 404 (its service removed by a reload while it is open) must not put the page in an error
    state: that chart closes itself and leaves the address, the other chart and the table go on."""
    both = gateway_head("static") + static_service("keep", "default") + static_service("gone", "default")
    async with running(both, tmp_path) as gw, admin_of(gw) as admin:
        url = str(admin.base_url).rstrip("/") + "/#open=default/keep/default&open=default/gone/default"
        charts = "document.querySelectorAll('div.chart').length"
        with chromium() as page:
            await asyncio.to_thread(page.goto, url)
            await asyncio.to_thread(page.wait_for, f"{charts} === 2", "the two open charts")
            await asyncio.to_thread(
                page.wait_for, "document.getElementById('status').textContent.startsWith('updated')", "a first update"
            )
            (tmp_path / "gw.yaml").write_text(gateway_head("static") + static_service("keep", "default"))
            await gw.reload()
            await asyncio.to_thread(page.wait_for, f"!{ROW.format('default/gone-default')}", "the removed service's rows to go")
            await asyncio.to_thread(
                page.wait_for,
                f"{charts} === 1 && document.querySelector('div.chart').dataset.revision === 'default/keep-default'",
                "the removed revision's chart to close, the other to stay",
            )
            await asyncio.to_thread(page.wait_for, "!location.hash.includes('gone')", "the closed chart to leave the address")
            assert "open=default%2Fkeep%2Fdefault" in await asyncio.to_thread(page.evaluate, "location.hash")
            # later polls stay clean: the status shows updates, never an error
            first = await asyncio.to_thread(page.evaluate, "document.getElementById('status').textContent")
            status = await asyncio.to_thread(
                page.wait_for,
                f"(s => s !== {first!r} && s.startsWith('updated') && s)(document.getElementById('status').textContent)",
                "a later update without an error",
            )
            assert "error" not in status


@pytest.mark.parametrize("hash_page", ["99999999999", "abc", "-3", "1e3"])
async def test_a_page_number_the_api_refuses_falls_back_to_page_one(tmp_path: Path, hash_page: str) -> None:
    async with running(gateway_head("static") + static_service("plain", "default"), tmp_path) as gw, admin_of(gw) as admin:
        url = str(admin.base_url).rstrip("/") + f"/#page={hash_page}"
        with chromium() as page:
            await asyncio.to_thread(page.goto, url)
            await asyncio.to_thread(page.wait_for, ROW.format("default/plain-default"), "the service's rows")
            status = await asyncio.to_thread(
                page.wait_for, "(s => s.startsWith('updated') && s)(document.getElementById('status').textContent)", "an update"
            )
            assert "error" not in status
            assert (await asyncio.to_thread(page.evaluate, "document.getElementById('pageinfo').textContent")).startswith(
                "page 1 of 1"
            )


async def test_a_page_the_api_refuses_is_reset_to_page_one_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page number the page itself accepts but the API refuses (its bound lowered here): the 400 on the
    services list sends the page back to page 1 rather than leaving it broken."""
    monkeypatch.setattr(views, "MAX_PAGE", 5)
    async with running(gateway_head("static") + static_service("plain", "default"), tmp_path) as gw, admin_of(gw) as admin:
        assert (await admin.get("/admin/dashboard/services", params={"page": "7"})).status_code == 400
        url = str(admin.base_url).rstrip("/") + "/#page=7&search=plain"
        with chromium() as page:
            await asyncio.to_thread(page.goto, url)
            await asyncio.to_thread(page.wait_for, ROW.format("default/plain-default"), "the service's rows")
            status = await asyncio.to_thread(
                page.wait_for, "(s => s.startsWith('updated') && s)(document.getElementById('status').textContent)", "an update"
            )
            assert "error" not in status
            assert await asyncio.to_thread(page.evaluate, "location.hash") == "#search=plain"


async def test_the_footer_names_the_selected_span(tmp_path: Path) -> None:
    async with running(gateway_head("static") + static_service("plain", "default"), tmp_path) as gw, admin_of(gw) as admin:
        url = str(admin.base_url).rstrip("/") + "/#span=120"
        label = "document.getElementById('spanlabel').textContent"
        with chromium() as page:
            await asyncio.to_thread(page.goto, url)
            await asyncio.to_thread(page.wait_for, ROW.format("default/plain-default"), "the service's rows")
            assert await asyncio.to_thread(page.evaluate, label) == "2 minutes"
            await asyncio.to_thread(
                page.evaluate, "(s => { s.value = '60'; s.dispatchEvent(new Event('change')); })(document.getElementById('span'))"
            )
            assert await asyncio.to_thread(page.evaluate, label) == "1 minute"
            assert "the last 1 minute;" in await asyncio.to_thread(page.evaluate, "document.querySelector('p.note').textContent")
