from __future__ import annotations

import pytest

from gateway.config import RevisionSpec, ServiceSpec
from gateway.config.checks import service_hosts


def service(canary: bool = False, percent: int = 0, namespace: str = "default") -> ServiceSpec:
    return ServiceSpec(
        name="iris",
        namespace=namespace,
        default=RevisionSpec(name="default"),
        canary=RevisionSpec(name="canary") if canary else None,
        canary_percent=percent,
    )


def test_host_is_name_namespace_domain() -> None:
    assert service(namespace="ml").host("example.com") == "iris.ml.example.com"


def test_tag_host_puts_the_tag_before_the_name() -> None:
    spec = service(canary=True, namespace="ml")
    assert spec.tag_host("default", "example.com") == "default-iris.ml.example.com"
    assert spec.tag_host("canary", "example.com") == "canary-iris.ml.example.com"


def test_service_hosts_claims_the_host_and_both_tag_hosts_lowercase() -> None:
    assert service_hosts(service(), "Example.COM") == [
        ("iris.default.example.com", "host"),
        ("default-iris.default.example.com", "default tag host"),
        ("canary-iris.default.example.com", "canary tag host"),
    ]


@pytest.mark.parametrize(
    ("canary", "canary_percent", "default_share", "canary_share"),
    [
        (True, 20, 80, 20),
        (True, 0, 100, 0),
        (True, 100, 0, 100),
        (False, 0, 100, 0),
        (False, 30, 100, 0),  # a percent without a canary sends nothing anywhere else
    ],
)
def test_percent_splits_between_default_and_canary(
    canary: bool, canary_percent: int, default_share: int, canary_share: int
) -> None:
    spec = service(canary=canary, percent=canary_percent)
    assert (spec.percent("default"), spec.percent("canary")) == (default_share, canary_share)
