"""An API that is slow or fails in part: a hung server does not hold a start or a reload, a dropped
watch is not an outage, one failing Deployment does not hold the others, and an outside change of a
Deployment's replicas is undone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.backends.kube_support import backend, service
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig
cluster = kube_fixtures.cluster

pytestmark = pytest.mark.e2e


async def test_a_hung_api_holds_neither_the_start_nor_a_reload(kube_api: KubeApi, kubeconfig: Path) -> None:
    spec, other = service(), service("wine", namespace="ml")
    hang = kube_api.stall(None, r".*", times=1000, seconds=8.0)
    async with backend(kubeconfig) as kube:
        started = time.monotonic()
        await kube.sync([spec])
        assert time.monotonic() - started < 3.5  # not the request timeouts (5 s each, three tries)
        assert kube.adoption(spec.key("default")) == "unknown"
        started = time.monotonic()
        await kube.sync([spec, other])  # a new namespace: its first pod list hangs too
        assert time.monotonic() - started < 3.5
        assert kube.adoption(other.key("default")) == "unknown"
        kube_api.emulator.faults.clear()
        assert hang.served > 0
        await wait_until(lambda: kube.adoption(spec.key("default")) is None, "the look done in the background", within=30)
        await wait_until(lambda: kube.adoption(other.key("default")) is None, "the other namespace too", within=30)
