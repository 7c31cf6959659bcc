"""Helpers shared by every test package: unused ports and waiting on a condition instead of sleeping.

End-to-end tests carry the `e2e` marker, registered in pyproject.toml: a test that starts a process (a `gateway`
or `loadtests` command, replicas, a model server, moto, the GCS emulator, nginx, redis-server, kubectl, curl) or
takes over about a second. `python -m pytest -m "not e2e"` is the quick inner loop: everything else, in the one
pytest process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

pytest_plugins = ["tests.shared.redis_server"]  # the `redis_server` fixture: a real redis-server per test


def free_port() -> int:
    """A loopback port nobody listens on right now, for a subprocess that must be told its port.

    In-process servers bind port 0 instead and read the port back, which cannot race.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_argv(config: Path | str, *, listen: str, admin: str = "127.0.0.1:0", state_dir: Path | str | None = None) -> list[str]:
    """The `gateway serve` command the end-to-end tests start, with its addresses (and state folder)."""
    argv = [sys.executable, "-m", "gateway", "serve", "-f", str(config), "--listen", listen, "--admin-listen", admin]
    return argv if state_dir is None else [*argv, "--state-dir", str(state_dir)]


async def wait_until(
    predicate: Callable[[], object | Awaitable[object]], what: str = "the condition", *, within: float = 10.0
) -> float:
    """Poll `predicate` until it is true; return the seconds that took, or fail naming `what` after `within` s.

    `predicate` may be a coroutine function (a request to an admin endpoint, say).
    """
    started = time.monotonic()
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


def wait_until_blocking(predicate: Callable[[], object], what: str = "the condition", *, within: float = 10.0) -> float:
    """`wait_until` for synchronous tests (threads, subprocesses polled from plain test functions)."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(0.01)


class ManualSleep:
    """An injected sleep that returns only when the test calls `step()`: one sleeper, one round per step."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.asleep = asyncio.Event()
        self._wake = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.asleep.set()
        await self._wake.wait()
        self._wake.clear()

    async def step(self) -> None:
        """Wake the sleeper and wait until it sleeps again (its round is done)."""
        await self.asleep.wait()
        self.asleep.clear()
        self._wake.set()
        await self.asleep.wait()


# Tests that need an optional extra skip where it is not installed (`needs`, `pytest.importorskip`); in CI the test
# extra installs every one of them, so a missing one there is a broken install, not a reason to skip.
EXTRAS_THE_TESTS_USE = ("sklearn", "xgboost", "boto3", "google.cloud.storage", "moto", "gcp_storage_emulator", "matplotlib")


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    missing = [name for name in EXTRAS_THE_TESTS_USE if _absent(name)]
    if missing:
        raise pytest.UsageError(f"CI: the test extra did not install {', '.join(missing)}: their tests would skip")


def needs(*modules: str) -> pytest.MarkDecorator:
    """A mark that skips where an optional extra's `modules` are not installed, found without importing them:
    a module-level `pytest.importorskip("sklearn")` costs every collection, even one that deselects the module,
    the second and more that importing scikit-learn takes."""
    missing = [module for module in modules if _absent(module)]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed (an optional extra)")


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # a parent package (google.cloud) is itself absent
        return True
