"""Takes docs/dashboard.png: `gateway serve` (local backend, three services), steady traffic plus a burst that
panics, then headless Chromium's screenshot of the page with iris's chart open.

    PYTHONPATH=. python -m tests.dashboard.screenshot [OUT]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.dashboard.browser import screenshot
from tests.dashboard.support import gateway_head, serve, sleepy_service

STOP = threading.Event()
THREADS: list[threading.Thread] = []


def load(port: int, host: str, concurrency: int, ms: int, until: float) -> None:
    def run() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": host}, timeout=60) as client:
            while time.monotonic() < until and not STOP.is_set():
                client.get(f"/work?ms={ms}")

    for _ in range(concurrency):
        THREADS.append(threading.Thread(target=run, daemon=True))
        THREADS[-1].start()


def main(out: Path) -> None:
    config = (
        gateway_head(window="20s")
        + sleepy_service("iris", canary=20, target=2, max_scale=6)
        + sleepy_service("resnet", "vision")
        + sleepy_service("bert", "nlp")
    )
    with tempfile.TemporaryDirectory(prefix="dashboard-screenshot-") as tmp, serve(config, Path(tmp)) as served:
        started = time.monotonic()
        load(served.port, "iris.default.example.com", 4, 200, started + 90)
        time.sleep(12)  # not a test: a script letting steady traffic draw 12 s of chart before the burst
        load(served.port, "iris.default.example.com", 14, 200, started + 25)  # a burst: panic
        load(served.port, "resnet.vision.example.com", 3, 100, started + 90)
        time.sleep(40)  # the burst, its panic and the scale-down, for the picture
        screenshot(served.admin + "/#open=default/iris/default&span=120", out, width=1400, height=760, budget_ms=4000)
        STOP.set()
        for thread in THREADS:
            thread.join(timeout=30)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[2] / "docs" / "dashboard.png")
