"""Shared fixtures of the data-plane tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.router.support import Replica, start_replica


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    """An aiohttp replica with many behaviours (tests/router/support.py), on a free loopback port."""
    r = await start_replica("r1")
    yield r
    await r.runner.cleanup()
