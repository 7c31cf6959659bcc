"""Shared fixtures of the data-plane tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config.model import ProxySettings
from tests.router.support import Replica, config, start_gateway, start_replica, static_service


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    """An aiohttp replica with many behaviours (tests/router/support.py), on a free loopback port."""
    r = await start_replica("r1")
    yield r
    await r.runner.cleanup()


@pytest.fixture
def proxy_settings() -> ProxySettings:
    """The proxy settings of `gw_port`'s gateway; a module overrides this fixture to change them."""
    return ProxySettings()


@pytest.fixture
async def gw_port(replica: Replica, tmp_path: Path, proxy_settings: ProxySettings) -> AsyncIterator[int]:
    """The port of a gateway serving iris.default.example.com from `replica`."""
    gw, port = await start_gateway(config(static_service("iris", [replica.url]), proxy=proxy_settings), str(tmp_path))
    yield port
    await gw.stop(drain_timeout=1)
