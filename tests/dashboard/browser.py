"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: load a page, read the DOM after
its scripts ran, with `websockets`' synchronous client.

`chromium` missing: the tests skip outside CI and fail in CI (CI=true), where scripts/test.sh installs it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import wait_until_blocking

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            "chromium is not installed (scripts/test.sh installs Debian's chromium package); CI must run the browser tests"
        )
    pytest.skip("chromium is not installed (apt-get install chromium); the browser tests need it")


def headless_args(profile: str) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",  # containers run as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]


class Page:
    """One tab, driven by Runtime.evaluate."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        wait_until_blocking(lambda: self.evaluate("document.readyState") == "complete", f"{url} to load", within=30)

    def wait_for(self, expression: str, what: str, within: float = 30.0) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        seen: list[Any] = []

        def check() -> bool:
            # a DOM node comes back by value as {}: taken as true
            seen[:] = [self.evaluate(f"(v => v instanceof Node ? true : v)({expression})")]
            return bool(seen[0])

        wait_until_blocking(check, what, within=within)
        return seen[0]


def stop_group(proc: subprocess.Popen[bytes], profile: str) -> None:
    """Stop Chromium and every process it started (renderer, GPU, crash handler: its own session), then empty
    its profile: a child still writing there made the profile's removal fail ("Directory not empty")."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived their parent

    def removed() -> bool:
        try:
            shutil.rmtree(profile)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    wait_until_blocking(removed, "Chromium's profile to be removable", within=10)
    os.makedirs(profile)  # TemporaryDirectory removes it again


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Page]:
    """A headless Chromium with its DevTools port chosen by itself (read from DevToolsActivePort: no race)."""
    binary = chromium_path()
    with tempfile.TemporaryDirectory(prefix="dashboard-chromium-") as profile:
        argv = [binary, *headless_args(profile), "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            active = Path(profile) / "DevToolsActivePort"
            wait_until_blocking(
                lambda: active.exists() and active.read_text().count("\n") >= 1, "Chromium's DevTools port", within=30
            )
            port = int(active.read_text().splitlines()[0])
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(t for t in targets if t["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
                tab = Page(ws)
                tab.call("Page.enable")
                tab.call("Runtime.enable")
                yield tab
        finally:
            stop_group(proc, profile)


def screenshot(url: str, out: Path, *, width: int = 1400, height: int = 800, budget_ms: int = 5000) -> None:
    """`chromium --headless --screenshot` of `url` after `budget_ms` of virtual time (its scripts ran)."""
    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as profile:
        argv = [
            chromium_path(),
            *headless_args(profile),
            f"--window-size={width},{height}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={out}",
            url,
        ]
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=True)
