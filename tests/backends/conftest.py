from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from tests.backends.support import REPLICA


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    if "both_loops" in item.name or getattr(getattr(item, "module", None), "BOTH_LOOPS", False):
        return {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
def replica_script(tmp_path: Path) -> str:
    path = tmp_path / "replica.py"
    path.write_text(REPLICA)
    return str(path)
