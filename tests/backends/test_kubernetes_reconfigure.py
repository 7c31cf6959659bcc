"""`spec.kubernetes` changes take effect on reload: every Deployment is rebuilt under the new settings and
the changed ones are patched; an unchanged one gets no write."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.config.model import GatewaySettings, KubernetesSettings
from gateway.types import RevisionKey
from tests.backends.kube_support import backend, service, settled, writes_by
from tests.conftest import wait_until
from tests.kube import fixtures as kube_fixtures
from tests.kube.server import KubeApi

kube_api = kube_fixtures.kube_api
kubeconfig = kube_fixtures.kubeconfig

pytestmark = pytest.mark.e2e


def made(api: KubeApi, name: str) -> dict[str, Any] | None:
    return next((d for d in api.objects("deployments", "default") if d["metadata"]["name"] == name), None)


def limits(api: KubeApi, name: str) -> dict[str, Any]:
    found = made(api, name)
    assert found is not None
    return dict(found["spec"]["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {}))


async def test_a_changed_kunlun_resource_and_owner_are_patched_on_reload(kube_api: KubeApi, kubeconfig: Path) -> None:
    xpu = service("xpu")
    xpu = replace(xpu, default=replace(xpu.default, accelerator="kunlun")).digested()
    plain = service("plain")
    async with backend(kubeconfig, agent="gw") as kube:
        await kube.sync([xpu, plain])
        await kube.scale(xpu.key("default"), 1)
        await kube.scale(plain.key("default"), 1)
        await wait_until(
            lambda: made(kube_api, "xpu-default") is not None and made(kube_api, "plain-default") is not None, "made"
        )
        assert limits(kube_api, "xpu-default") == {"baidu.com/xpu": "1"}
        await wait_until(lambda: settled(kube), "settled")
        before = writes_by(kube_api, "gw")
        await kube.configure(GatewaySettings(kubernetes=KubernetesSettings()))  # a reload with the same settings
        await wait_until(lambda: settled(kube), "settled")
        assert writes_by(kube_api, "gw") == before  # nothing rebuilt, nothing sent

        settings = GatewaySettings(kubernetes=KubernetesSettings(kunlun_resource="kunlunxin.com/xpu", owner="team-a"))
        await kube.configure(settings)
        await wait_until(lambda: limits(kube_api, "xpu-default") == {"kunlunxin.com/xpu": "1"}, "the new resource name")
        tolerations = made(kube_api, "xpu-default")["spec"]["template"]["spec"]["tolerations"]  # type: ignore[index]
        assert {"key": "kunlunxin.com/xpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
        for name in ("xpu-default", "plain-default"):
            await wait_until(
                lambda name=name: made(kube_api, name)["metadata"]["labels"]["serving-gateway/owner"] == "team-a",  # type: ignore[index,misc]
                f"{name} relabelled",
            )
        await wait_until(lambda: settled(kube), "settled")
        assert kube.observed_replicas(RevisionKey("default", "xpu", "default")) == 1  # replicas untouched
        assert made(kube_api, "xpu-default")["spec"]["replicas"] == 1  # type: ignore[index]
