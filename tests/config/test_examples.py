"""Every shipped config file loads; ElasticServing's own sample validates unchanged."""

from __future__ import annotations

import glob
import os

import pytest

from gateway.config import load

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "config")
IRIS = os.path.join(CONFIG, "models", "iris.onnx")
SHIPPED = sorted(glob.glob(os.path.join(CONFIG, "*.yaml")) + glob.glob(os.path.join(CONFIG, "examples", "*.yaml")))


def test_there_are_shipped_configs() -> None:
    names = {os.path.relpath(path, CONFIG) for path in SHIPPED}
    assert {
        "demo.yaml",
        "examples/paddleservice-sample.yaml",
        "examples/paddleservice-lac.yaml",
        "examples/static-canary.yaml",
        "examples/inferenceservice-iris.yaml",
        "examples/simplemlservice.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: os.path.relpath(p, CONFIG))
def test_shipped_config_loads(path: str) -> None:
    assert os.path.exists(IRIS), "config/models/iris.onnx is shipped; rebuild it with scripts/make_iris_model.py"
    config = load([path])
    assert config.services


def test_elasticserving_sample_service() -> None:
    path = os.path.join(CONFIG, "examples", "paddleservice-sample.yaml")
    config = load([path])
    (service,) = config.services
    assert (service.namespace, service.name) == ("paddleservice-system", "paddleservice-sample")
    assert service.canary_percent == 50
    assert service.scaling.stable_window == 10.0
    assert service.scaling.min_scale == 0
    assert service.default.image == "jinmionhaobaidu/resnet:latest"
    assert service.default.container_port == 9292
    assert service.default.args == (
        "cd Serving/python/examples/imagenet && python3 resnet50_web_service.py ResNet50_vd_model cpu 9292",
    )
    assert service.canary is not None and service.canary.image == "jinmionhaobaidu/resnetcanary:latest"
    assert len(config.warnings) == 2
    assert all("the local backend runs commands, not images" in warning for warning in config.warnings)


def test_lac_example_uses_kpa_shorthand_and_string_numbers() -> None:
    (service,) = load([os.path.join(CONFIG, "examples", "paddleservice-lac.yaml")]).services
    scaling = service.scaling
    assert scaling.autoscaler_class == "kpa"
    assert (scaling.panic_window_percentage, scaling.target, scaling.target_utilization) == (
        10.0,
        100.0,
        70.0,
    )


def test_demo() -> None:
    config = load([os.path.join(CONFIG, "demo.yaml")])
    assert config.gateway.domain == "example.com"
    (service,) = config.services
    assert (service.namespace, service.name, service.backend) == ("default", "iris", "local")
    assert service.default.workdir == CONFIG
    assert service.default.readiness_path == "/v2/health/ready"
    assert service.default.command is not None and "models/iris.onnx" in service.default.command
    assert (service.scaling.min_scale, service.scaling.target, service.scaling.container_concurrency) == (
        0,
        10.0,
        10,
    )
    assert config.warnings == ()


def test_static_canary() -> None:
    config = load([os.path.join(CONFIG, "examples", "static-canary.yaml")])
    assert config.gateway.backend == "static"
    (service,) = config.services
    assert service.canary_percent == 30
    assert service.canary is not None and service.canary.endpoints
