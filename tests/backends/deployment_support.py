"""Build Deployments from YAML the way the kubernetes backend will, and check each is a valid apps/v1 Deployment."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import kubernetes_validate
from kubernetes import client

from gateway.backends.deployment import build_deployment
from gateway.config import Config, load
from gateway.config.values import quantity_value
from gateway.types import RevisionName
from tests.config.support import write

# kubernetes_validate reads and parses its schema files (a megabyte of JSON) on every call: a third of these tests'
# time. They are only read, so each is read once.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)

KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
KUBERNETES = "apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n  backend: kubernetes\n"


def assert_valid(deployment: dict[str, Any]) -> None:
    """Valid for the API server's schema (strict: no unknown field) and for the official client's models,
    with the checks the schema cannot make: the selector matches the template's labels."""
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)
    model = client.V1Deployment.from_dict(deployment)
    api: Any = client.ApiClient()  # its serializer is untyped
    assert api.sanitize_for_serialization(model) == deployment  # no field lost or reshaped
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len({container["name"] for container in containers}) == len(containers)
    for container in containers:
        _assert_requests_fit(container.get("resources") or {})


def _assert_requests_fit(resources: dict[str, Any]) -> None:
    """What the API server checks beyond the schema: requests <= limits, and == for extended resources."""
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for name in requests.keys() & limits.keys():
        request, limit = quantity_value(str(requests[name])), quantity_value(str(limits[name]))
        assert request == limit if "/" in name else request <= limit, (name, requests[name], limits[name])
    for name in requests.keys() - limits.keys():
        assert "/" not in name, f"extended resource {name} requested without a limit"


def load_kubernetes(tmp_path: Path, manifests: str, gateway: str = "") -> Config:
    """`manifests` loaded under the kubernetes backend (`gateway`: more lines under GatewayConfig's spec)."""
    settings = write(tmp_path, "gateway.yaml", KUBERNETES + gateway)
    return load([settings, write(tmp_path, "services.yaml", manifests)])


def build(
    config: Config, name: str | None = None, revision: RevisionName = "default", replicas: int | None = 1
) -> dict[str, Any]:
    """The checked Deployment of one revision of the service `name` (the only service when None)."""
    services = [service for service in config.services if name is None or service.name == name]
    assert len(services) == 1, config.services
    service = services[0]
    spec = service.default if revision == "default" else service.canary
    assert spec is not None
    deployment = build_deployment(service, spec, config.gateway.kubernetes, replicas=replicas)
    assert_valid(deployment)
    return deployment


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = pod(deployment)["containers"][0]
    return found
