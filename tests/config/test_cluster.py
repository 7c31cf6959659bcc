"""GatewayConfig.spec.kubernetes: how Deployments are built; every bad value named with what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import KubernetesSettings, load
from tests.config.support import paddle, problems, write
from tests.config.test_gateway_config import gateway


def test_defaults() -> None:
    settings = KubernetesSettings()
    assert settings.model_server_image == "serving-gateway:0.1.0"
    assert settings.kunlun_resource == "baidu.com/xpu"
    assert settings.kunlun_taint_key == "baidu.com/xpu"
    assert settings.image_pull_policy is None


def test_a_gateway_config_without_the_section_keeps_the_defaults(tmp_path: Path) -> None:
    image = paddle("foo", "default:\n  image: registry.example.com/foo:1\n")
    config = load([write(tmp_path, "gw.yaml", gateway("backend: kubernetes")), write(tmp_path, "x.yaml", image)])
    assert config.gateway.kubernetes == KubernetesSettings()


def test_every_key(tmp_path: Path) -> None:
    text = gateway(
        """
kubernetes:
  modelServerImage: registry.example.com:5000/ml/serving-gateway:0.2.0@sha256:"""
        + "a" * 64
        + """
  kunlunResource: kunlunxin.com/xpu
  kunlunTolerationKey: kunlun-device-enable
  imagePullPolicy: IfNotPresent
"""
    )
    config = load([write(tmp_path, "gw.yaml", text), write(tmp_path, "x.yaml", paddle("foo"))])
    assert config.gateway.kubernetes == KubernetesSettings(
        model_server_image="registry.example.com:5000/ml/serving-gateway:0.2.0@sha256:" + "a" * 64,
        kunlun_resource="kunlunxin.com/xpu",
        kunlun_toleration_key="kunlun-device-enable",
        image_pull_policy="IfNotPresent",
    )


def test_the_kunlun_toleration_follows_the_resource_unless_set(tmp_path: Path) -> None:
    text = gateway("kubernetes:\n  kunlunResource: kunlunxin.com/xpu")
    config = load([write(tmp_path, "gw.yaml", text), write(tmp_path, "x.yaml", paddle("foo"))])
    assert config.gateway.kubernetes.kunlun_taint_key == "kunlunxin.com/xpu"


OWNER_RULE = (
    "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter "
    "or digit, like ml.serving-gateway"
)


def test_the_owner_defaults_to_the_gateway_configs_metadata(tmp_path: Path) -> None:
    image = write(tmp_path, "x.yaml", paddle("foo", "default:\n  image: registry.example.com/foo:1\n"))
    plain = load([write(tmp_path, "gw.yaml", gateway("backend: kubernetes")), image]).gateway.kubernetes
    assert plain.owner == "serving-gateway"
    named = gateway("backend: kubernetes").replace(
        "kind: GatewayConfig\n", "kind: GatewayConfig\nmetadata:\n  name: gw-one\n  namespace: ml\n"
    )
    assert "gw-one" in named
    assert load([write(tmp_path, "gw.yaml", named), image]).gateway.kubernetes.owner == "ml.gw-one"
    given = named.replace("backend: kubernetes", "backend: kubernetes\n  kubernetes:\n    owner: team-a")
    assert load([write(tmp_path, "gw.yaml", given), image]).gateway.kubernetes.owner == "team-a"


IMAGE_RULE = "must be a container image reference like registry.example.com/serving-gateway:0.1.0"
RESOURCE_RULE = "must be an extended resource name like baidu.com/xpu or kunlunxin.com/xpu"
TAINT_RULE = (
    "must be a taint key: a name of at most 63 letters, digits, '-', '_' or '.' (starting and ending with a letter "
    "or digit), optionally after a DNS prefix and '/', like baidu.com/xpu"
)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("kubernetes: [modelServerImage]", "spec.kubernetes: must be a mapping, got a list"),
        (
            "kubernetes:\n  modelServerImag: x",
            "spec.kubernetes.modelServerImag: unknown key (did you mean modelServerImage?)",
        ),
        (
            "kubernetes:\n  namespace: x",
            "spec.kubernetes.namespace: unknown key; expected one of: modelServerImage, kunlunResource, "
            "kunlunTolerationKey, imagePullPolicy, runtimes, owner, connectTimeout, requestTimeout",
        ),
        (
            "kubernetes:\n  modelServerImage: Serving-Gateway:1",
            f"spec.kubernetes.modelServerImage: {IMAGE_RULE}, got 'Serving-Gateway:1'",
        ),
        (
            "kubernetes:\n  modelServerImage: 'gateway latest'",
            f"spec.kubernetes.modelServerImage: {IMAGE_RULE}, got 'gateway latest'",
        ),
        ("kubernetes:\n  modelServerImage: 'gateway:'", f"spec.kubernetes.modelServerImage: {IMAGE_RULE}, got 'gateway:'"),
        ("kubernetes:\n  modelServerImage: ''", f"spec.kubernetes.modelServerImage: {IMAGE_RULE}, got ''"),
        ("kubernetes:\n  modelServerImage: 3", f"spec.kubernetes.modelServerImage: {IMAGE_RULE}, got 3"),
        ("kubernetes:\n  owner: 'team a'", f"spec.kubernetes.owner: {OWNER_RULE}; got 'team a'"),
        ("kubernetes:\n  owner: " + "o" * 64, f"spec.kubernetes.owner: {OWNER_RULE}; got '{'o' * 64}'"),
        ("kubernetes:\n  owner: -team", f"spec.kubernetes.owner: {OWNER_RULE}; got '-team'"),
        ("kubernetes:\n  connectTimeout: 0s", "spec.kubernetes.connectTimeout: must be from 100ms to 10m, got 0s"),
        ("kubernetes:\n  requestTimeout: 1h", "spec.kubernetes.requestTimeout: must be from 100ms to 10m, got 1h"),
        ("kubernetes:\n  requestTimeout: soon", "spec.kubernetes.requestTimeout: must be a duration like 60s, got 'soon'"),
        ("kubernetes:\n  owner: [team]", f"spec.kubernetes.owner: {OWNER_RULE}; got a list"),
        ("kubernetes:\n  kunlunResource: xpu", f"spec.kubernetes.kunlunResource: {RESOURCE_RULE}, got 'xpu'"),
        ("kubernetes:\n  kunlunResource: Baidu.com/xpu", f"spec.kubernetes.kunlunResource: {RESOURCE_RULE}, got 'Baidu.com/xpu'"),
        ("kubernetes:\n  kunlunResource: baidu.com/", f"spec.kubernetes.kunlunResource: {RESOURCE_RULE}, got 'baidu.com/'"),
        ("kubernetes:\n  kunlunResource: [baidu.com/xpu]", f"spec.kubernetes.kunlunResource: {RESOURCE_RULE}, got a list"),
        ("kubernetes:\n  kunlunTolerationKey: 'xpu node'", f"spec.kubernetes.kunlunTolerationKey: {TAINT_RULE}; got 'xpu node'"),
        ("kubernetes:\n  kunlunTolerationKey: -xpu", f"spec.kubernetes.kunlunTolerationKey: {TAINT_RULE}; got '-xpu'"),
        (
            "kubernetes:\n  kunlunTolerationKey: Example.com/xpu",
            f"spec.kubernetes.kunlunTolerationKey: {TAINT_RULE}; got 'Example.com/xpu'",
        ),
        (
            "kubernetes:\n  kunlunTolerationKey: " + "x" * 64,
            f"spec.kubernetes.kunlunTolerationKey: {TAINT_RULE}; got '{'x' * 64}'",
        ),
        ("kubernetes:\n  kunlunTolerationKey: ''", f"spec.kubernetes.kunlunTolerationKey: {TAINT_RULE}; got ''"),
        (
            "kubernetes:\n  imagePullPolicy: always",
            "spec.kubernetes.imagePullPolicy: must be one of Always, IfNotPresent, Never, got 'always'",
        ),
    ],
)
def test_invalid_values(tmp_path: Path, spec: str, message: str) -> None:
    path = write(tmp_path, "gw.yaml", gateway(spec))
    assert problems([path]) == [f"{path}: document 1 (GatewayConfig): {message}"]
