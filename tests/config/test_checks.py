from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load
from gateway.config.values import DNS_LABEL_RULE
from tests.config.support import paddle, problems, write

GATEWAY = "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: {backend}\n"
IMAGE_ONLY = "default:\n  containerImage: registry/model\n  tag: v1\n  arg: python serve.py\n"


def test_duplicate_service_names_both_documents(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", paddle("foo", namespace="team"))
    second = write(tmp_path, "b.yaml", paddle("bar") + "---\n" + paddle("foo", namespace="team"))
    assert problems([first, second]) == [
        (
            f"{second}: document 2 (PaddleService/foo): metadata.name: service team/foo is already defined in "
            f"{first}: document 1 (PaddleService/foo)"
        )
    ]


def test_same_name_in_other_namespaces_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", paddle("foo") + "---\n" + paddle("foo", namespace="other"))
    assert [(s.namespace, s.name) for s in load([path]).services] == [("default", "foo"), ("other", "foo")]


def test_service_colliding_with_a_default_tag_host(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", paddle("x", namespace="n") + "---\n" + paddle("default-x", namespace="n"))
    assert problems([path]) == [
        (
            f"{path}: document 2 (PaddleService/default-x): metadata.name: host default-x.n.example.com "
            f"collides with the default tag host of {path}: document 1 (PaddleService/x)"
        )
    ]


def test_tag_host_colliding_with_an_earlier_service(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", paddle("canary-x", namespace="n"))
    second = write(tmp_path, "b.yaml", paddle("x", namespace="n"))
    assert problems([first, second]) == [
        (
            f"{second}: document 1 (PaddleService/x): metadata.name: canary tag host canary-x.n.example.com "
            f"collides with the host of {first}: document 1 (PaddleService/canary-x)"
        )
    ]


def test_different_namespaces_do_not_collide_on_tag_hosts(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", paddle("x", namespace="n") + "---\n" + paddle("default-x", namespace="m"))
    assert len(load([path]).services) == 2


def test_image_only_revision_under_local_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", paddle("foo", IMAGE_ONLY))
    config = load([path])
    assert config.services[0].default.image == "registry/model:v1"
    assert config.services[0].default.command is None
    assert config.warnings == (
        (
            f"{path}: document 1 (PaddleService/foo): spec.default: has a container image (registry/model:v1) "
            "and no command: the local backend runs commands, not images, so this revision has no replicas "
            "and its requests get 503; add a command to run it here"
        ),
    )


def test_local_backend_needs_a_command(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", paddle("foo", "default:\n  readinessPath: /ready\n"))
    assert problems([path]) == [
        (
            f"{path}: document 1 (PaddleService/foo): spec.default.command: required for the local backend "
            "(an argv list or a shell string)"
        )
    ]


def test_local_backend_warns_that_endpoints_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", paddle("foo", "default:\n  command: x {port}\n  endpoints: ['http://a:1']\n"))
    assert load([path]).warnings == (
        (
            f"{path}: document 1 (PaddleService/foo): spec.default.endpoints: ignored under the local backend "
            "(set spec.backend: static to use them)"
        ),
    )


def test_static_backend_needs_endpoints(tmp_path: Path) -> None:
    gateway = write(tmp_path, "gw.yaml", GATEWAY.format(backend="static"))
    path = write(tmp_path, "a.yaml", paddle("foo", "default:\n  command: x {port}\ncanary:\n  endpoints: ['http://a:1']\n"))
    assert problems([path, gateway]) == [
        (f"{path}: document 1 (PaddleService/foo): spec.default.endpoints: required for the static backend (a list of base URLs)")
    ]


def test_kubernetes_backend_needs_an_image(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", paddle("foo", "backend: kubernetes\ndefault:\n  command: x {port}\n"))
    label = f"{path}: document 1 (PaddleService/foo)"
    assert problems([path]) == [f"{label}: spec.default.containerImage: required for the kubernetes backend"]


def test_kubernetes_backend_is_accepted_with_an_image(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", paddle("foo", "backend: kubernetes\n" + IMAGE_ONLY))
    config = load([path])
    assert config.services[0].backend == "kubernetes"
    assert config.services[0].default.image == "registry/model:v1"
    assert config.warnings == ()


def test_per_service_backend_overrides_the_gateway(tmp_path: Path) -> None:
    gateway = write(tmp_path, "gw.yaml", GATEWAY.format(backend="static"))
    spec = "backend: local\ndefault:\n  command: x {port}\n"
    static = "default:\n  endpoints: ['http://127.0.0.1:9000']\n"
    path = write(tmp_path, "a.yaml", paddle("foo", spec) + "---\n" + paddle("bar", static))
    config = load([gateway, path])
    assert [s.backend for s in config.services] == ["local", None]
    assert config.gateway.backend == "static"
    assert config.warnings == ()


def test_kubernetes_from_gateway_config_checks_each_service(tmp_path: Path) -> None:
    gateway = write(tmp_path, "gw.yaml", GATEWAY.format(backend="kubernetes"))
    path = write(tmp_path, "a.yaml", paddle("bar", IMAGE_ONLY) + "---\n" + paddle("foo"))
    assert problems([gateway, path]) == [
        f"{path}: document 2 (PaddleService/foo): spec.default.containerImage: required for the kubernetes backend"
    ]


@pytest.mark.parametrize("runtime", ["paddle_serving", "PaddleServing", "v0.6.0", "x" * 64])
def test_runtime_version_names_the_container_under_kubernetes(tmp_path: Path, runtime: str) -> None:
    spec = f"backend: kubernetes\nruntimeVersion: '{runtime}'\n" + IMAGE_ONLY
    path = write(tmp_path, "a.yaml", paddle("foo", spec))
    assert problems([path]) == [
        f"{path}: document 1 (PaddleService/foo): spec.runtimeVersion: names the container, so it must be "
        f"{DNS_LABEL_RULE}, got {runtime!r}"
    ]


def test_runtime_version_is_free_text_under_local(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", paddle("foo", "runtimeVersion: v0.6.0\ndefault:\n  command: x {port}\n"))
    assert load([path]).services[0].default.container_name == "v0.6.0"


@pytest.mark.parametrize(
    "command, warned",
    [
        ("[serve, --port, '9292']", True),  # ElasticServing users write the port they configured
        ("'serve --port 9292'", True),
        ("[serve, --port, '{port}']", False),
        ("'serve --port $PORT'", False),
        ("'serve --port ${PORT}'", False),
    ],
)
def test_a_local_command_that_cannot_get_its_port_is_warned(tmp_path: Path, command: str, warned: bool) -> None:
    path = write(tmp_path, "a.yaml", paddle("foo", f"default:\n  command: {command}\n  port: 9292\n"))
    warnings = load([path]).warnings
    found = [w for w in warnings if "uses neither {port} nor $PORT" in w]
    assert len(found) == (1 if warned else 0), warnings
    if warned:
        assert found[0].startswith(f"{path}: document 1 (PaddleService/foo): spec.default.command: ")


@pytest.mark.parametrize(
    "resources, message",
    [
        ("{requests: {cpu: '2'}, limits: {cpu: 1500m}}", "requests.cpu (2) exceeds limits.cpu (1500m)"),
        ("{requests: {memory: 1Gi}, limits: {memory: 512Mi}}", "requests.memory (1Gi) exceeds limits.memory (512Mi)"),
        (
            "{requests: {nvidia.com/gpu: 2}, limits: {nvidia.com/gpu: 1}}",
            "requests.nvidia.com/gpu (2) must equal limits.nvidia.com/gpu (1): extended resources cannot be overcommitted",
        ),
        (
            "{requests: {baidu.com/xpu: 1}, limits: {baidu.com/xpu: 2}}",
            "requests.baidu.com/xpu (1) must equal limits.baidu.com/xpu (2): extended resources cannot be overcommitted",
        ),
    ],
)
def test_kubernetes_refuses_resources_the_api_server_would(tmp_path: Path, resources: str, message: str) -> None:
    path = write(tmp_path, "a.yaml", paddle("foo", f"backend: kubernetes\nresources: {resources}\n" + IMAGE_ONLY))
    assert problems([path]) == [f"{path}: document 1 (PaddleService/foo): spec.resources: {message}"]


def test_resources_of_a_given_container_are_checked_where_they_are(tmp_path: Path) -> None:
    isvc = (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: iris\nspec:\n  predictor:\n"
        "    containers:\n    - name: server\n      image: example/server:1\n"
        "      resources: {requests: {cpu: '2'}, limits: {cpu: '1'}}\n"
    )
    gateway = write(tmp_path, "gw.yaml", GATEWAY.format(backend="kubernetes"))
    path = write(tmp_path, "a.yaml", isvc)
    assert problems([gateway, path]) == [
        f"{path}: document 1 (InferenceService/iris): spec.predictor.containers[0].resources: requests.cpu (2) exceeds limits.cpu (1)"
    ]


def test_resources_are_not_checked_under_local(tmp_path: Path) -> None:
    spec = "resources: {requests: {cpu: '2'}, limits: {cpu: '1'}}\ndefault:\n  command: x {port}\n"
    assert load([write(tmp_path, "a.yaml", paddle("foo", spec))]).services[0].default.resources["limits"]["cpu"] == "1"


def test_local_only_keys_are_reported_under_kubernetes(tmp_path: Path) -> None:
    spec = "backend: kubernetes\n" + IMAGE_ONLY + "  command: [serve, '{port}']\n  endpoints: ['http://10.0.0.1:80']\n"
    config = load([write(tmp_path, "a.yaml", paddle("foo", spec))])
    label = f"{tmp_path / 'a.yaml'}: document 1 (PaddleService/foo)"
    assert config.warnings == (
        f"{label}: spec.default.endpoints: ignored under the kubernetes backend (set spec.backend: static to use them)",
        f"{label}: spec.default.command: run only by the local backend; under kubernetes the container runs its image's "
        "entrypoint (or /bin/bash -c with arg)",
    )
