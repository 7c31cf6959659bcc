"""Every settings field can be set from a GatewayConfig, and every key sets a field of its own.

The key tables are typed (`section_key` pairs a reader with `replace(settings, field=value)`, so mypy
checks each field's name and type); this checks the other direction at run time: a document that gives
every key of every table a value other than the default changes every field, but the one that is not
configurable.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from gateway.config import load
from gateway.config.cluster import KUBERNETES
from gateway.config.gateway_config import _ACTIVATOR, _AUTOSCALER, _PROXY, _SPEC, _STORAGE
from gateway.config.model import (
    ActivatorSettings,
    AutoscalerSettings,
    GatewaySettings,
    KubernetesSettings,
    ProxySettings,
    StorageSettings,
)
from tests.config.support import write

SPEC: dict[str, object] = {
    "domain": "models.internal",
    "listen": "127.0.0.1:0",
    "adminListen": "[::1]:9191",
    "backend": "static",
    "redis": "redis://localhost:6379/0",
    "stateDir": "state",
    "secretsFile": "secrets.yaml",
}
AUTOSCALER: dict[str, object] = {
    "stableWindow": "1m30s",
    "panicWindowPercentage": 20,
    "panicThresholdPercentage": 300,
    "maxScaleUpRate": 10,
    "maxScaleDownRate": 4,
    "scaleToZeroGracePeriod": "45s",
    "scaleToZeroPodRetentionPeriod": "10s",
    "scaleDownDelay": "2m",
    "targetBurstCapacity": -1,
    "containerConcurrencyTargetDefault": 50,
    "targetUtilization": 80,
    "containerConcurrencyTargetPercentage": 80,  # Knative's name for targetUtilization
    "requestsPerSecondTargetDefault": 150,
    "enableScaleToZero": False,
    "initialScale": 0,
    "allowZeroInitialScale": True,
    "tickInterval": "500ms",
}
ACTIVATOR: dict[str, object] = {"queueDepth": 100, "requestTimeout": "1m", "activationTimeout": 30}
PROXY: dict[str, object] = {
    "maxHeaderBytes": "32Ki",
    "maxBodyBytes": "1Mi",
    "headerTimeout": "5s",
    "keepaliveTimeout": "1m",
    "upstreamKeepaliveTimeout": "3s",
    "connectTimeout": "2s",
    "responseStartTimeout": "10m",
    "drainTimeout": "15s",
    "maxResponseHeaderBytes": "16Ki",
    "maxConnections": 5000,
    "trustedProxies": ["10.0.0.0/8"],
    "sendTimeout": "20s",
    "bodyTimeout": "15s",
}
KUBERNETES_SECTION: dict[str, object] = {
    "modelServerImage": "registry.example.com/serving-gateway:0.2.0",
    "kunlunResource": "kunlunxin.com/xpu",
    "kunlunTolerationKey": "example.com/xpu",
    "imagePullPolicy": "Always",
    "runtimes": {"kserve-sklearnserver": {"modelFormats": ["sklearn"], "image": "kserve/sklearnserver:v0.14.1"}},
    "owner": "ml.gateway-one",
    "connectTimeout": "2s",
    "requestTimeout": "1m",
}
STORAGE: dict[str, object] = {"maxModelBytes": "2Gi", "downloadTimeout": "5m"}
NOT_CONFIGURABLE = {"buffer_bytes"}
Settings = GatewaySettings | AutoscalerSettings | ActivatorSettings | ProxySettings | KubernetesSettings | StorageSettings
SECTIONS = {
    "autoscaler": AUTOSCALER,
    "activator": ACTIVATOR,
    "proxy": PROXY,
    "kubernetes": KUBERNETES_SECTION,
    "storage": STORAGE,
}


@pytest.mark.parametrize(
    ("table", "document"),
    [
        (_SPEC, SPEC),
        (_AUTOSCALER, AUTOSCALER),
        (_ACTIVATOR, ACTIVATOR),
        (_PROXY, PROXY),
        (KUBERNETES, KUBERNETES_SECTION),
        (_STORAGE, STORAGE),
    ],
    ids=["spec", "spec.autoscaler", "spec.activator", "spec.proxy", "spec.kubernetes", "spec.storage"],
)
def test_the_document_gives_every_key_of_the_table(table: dict[str, object], document: dict[str, object]) -> None:
    assert set(table) == set(document)


def test_every_field_is_set_by_some_key(tmp_path: Path) -> None:
    body = {"apiVersion": "serving-gateway/v1", "kind": "GatewayConfig", "spec": {**SPEC, **SECTIONS}}
    settings = load([write(tmp_path, "gw.yaml", yaml.safe_dump(body))]).gateway
    pairs: list[tuple[Settings, Settings]] = [
        (settings, GatewaySettings()),
        (settings.autoscaler, AutoscalerSettings()),
        (settings.activator, ActivatorSettings()),
        (settings.proxy, ProxySettings()),
        (settings.kubernetes, KubernetesSettings()),
        (settings.storage, StorageSettings()),
    ]
    for section, default in pairs:
        unchanged = {f.name for f in fields(section) if getattr(section, f.name) == getattr(default, f.name)}
        assert unchanged - NOT_CONFIGURABLE == set(), type(section).__name__
