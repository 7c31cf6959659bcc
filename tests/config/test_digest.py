"""Reloads keep a service whose digest is unchanged, so every field that makes two services differ must
change the digest: each field of ServiceSpec, RevisionSpec and ScalingSpec is changed in turn here.

A new field fails `test_every_field_has_a_changed_value` until it is listed below with another value.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest

from gateway.config.model import RevisionSpec, RolloutSpec, ScalingSpec, ServiceSpec, Source

# A value of each field other than the one `base()` has.
REVISION_CHANGES: dict[str, Any] = {
    "name": "other",
    "tag": "latest",
    "command": ("python", "serve.py"),
    "endpoints": ("http://127.0.0.1:9000",),
    "readiness_path": "/ready",
    "env": (("A", "1"),),
    "workdir": "/srv",
    "image": "registry/model:1",
    "container_command": ("/bin/sh",),
    "args": ("-c", "serve"),
    "container_port": 8081,
    "accelerator": "nvidia",
    "accelerator_count": 2,
    "node_selector": (("zone", "a"),),
    "tolerations": ({"key": "gpu", "operator": "Exists"},),
    "resources": {"limits": {"cpu": "1"}},
    "container_name": "server",
    "pod_spec": {"containers": [{"name": "server"}]},
    "model_path": "/models/iris.onnx",
    "storage_uri": "s3://models/iris",
    "storage_secret": "s3-secret",
    "storage_path": "/var/lib/t9k/model",
    "model_format": "sklearn",
    "model_runtime": "kserve-sklearnserver",
    "env_refs": (("AWS_SECRET_ACCESS_KEY", {"secretKeyRef": {"name": "s3creds", "key": "secret"}}),),
    "service_account": "model-reader",
}
SCALING_CHANGES: dict[str, Any] = {
    "min_scale": 1,
    "max_scale": 3,
    "autoscaler_class": "hpa",
    "metric": "rps",
    "target": 10.0,
    "container_concurrency": 4,
    "target_utilization": 50.0,
    "stable_window": 30.0,
    "panic_window_percentage": 20.0,
    "panic_threshold_percentage": 300.0,
    "target_burst_capacity": -1.0,
    "initial_scale": 0,
    "scale_down_delay": 10.0,
    "scale_to_zero_grace_period": 5.0,
    "scale_to_zero_pod_retention_period": 5.0,
    "activation_scale": 2,
}
SERVICE_CHANGES: dict[str, Any] = {
    "name": "other",
    "namespace": "ml",
    "default": RevisionSpec(name="default", command=("python", "other.py")),
    "canary": RevisionSpec(name="canary"),
    "canary_percent": 10,
    "scaling": ScalingSpec(min_scale=2),
    "backend": "static",
    "timeout": 5.0,
    "rollout": RolloutSpec(canary_percent=10),
}
# Not part of what a service is: where it was read from, and the derived fields.
NOT_DIGESTED = {"source", "digest", "ident"}


def base() -> ServiceSpec:
    return ServiceSpec(name="iris", namespace="default", default=RevisionSpec(name="default"))


@pytest.mark.parametrize(
    ("target", "changes", "excluded"),
    [
        (ServiceSpec, SERVICE_CHANGES, NOT_DIGESTED),
        (RevisionSpec, REVISION_CHANGES, set()),
        (ScalingSpec, SCALING_CHANGES, set()),
    ],
    ids=["ServiceSpec", "RevisionSpec", "ScalingSpec"],
)
def test_every_field_has_a_changed_value(target: type, changes: dict[str, Any], excluded: set[str]) -> None:
    assert set(changes) == {f.name for f in fields(target)} - excluded


@pytest.mark.parametrize(("name", "value"), SERVICE_CHANGES.items(), ids=list(SERVICE_CHANGES))
def test_a_changed_service_field_changes_the_digest(name: str, value: Any) -> None:
    spec = base()
    changed = replace(spec, **{name: value})
    assert changed != spec
    assert changed.digested().digest != spec.digested().digest


@pytest.mark.parametrize(("name", "value"), REVISION_CHANGES.items(), ids=list(REVISION_CHANGES))
def test_a_changed_revision_field_changes_the_digest(name: str, value: Any) -> None:
    spec = base()
    for revision in ("default", "canary"):
        before = replace(spec, canary=RevisionSpec(name="canary")) if revision == "canary" else spec
        was = getattr(before, revision)
        changed = replace(before, **{revision: replace(was, **{name: value})})
        assert changed != before
        assert changed.digested().digest != before.digested().digest


@pytest.mark.parametrize(("name", "value"), SCALING_CHANGES.items(), ids=list(SCALING_CHANGES))
def test_a_changed_scaling_field_changes_the_digest(name: str, value: Any) -> None:
    spec = base()
    changed = replace(spec, scaling=replace(spec.scaling, **{name: value}))
    assert changed != spec
    assert changed.digested().digest != spec.digested().digest


def test_equal_services_have_equal_digests_wherever_they_were_read() -> None:
    spec = base()
    elsewhere = replace(spec, source=Source(file="other.yaml", index=2, kind="PaddleService", name="iris"))
    assert elsewhere.digested().digest == spec.digested().digest
    assert replace(spec, scaling=ScalingSpec()).digested().digest == spec.digested().digest


def test_mappings_written_in_another_order_have_equal_digests() -> None:
    """A reload after keys were only reordered in the file keeps the revision (and its replicas)."""
    spec = base()
    one = RevisionSpec(name="default", resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2"}})
    other = RevisionSpec(name="default", resources={"limits": {"cpu": "2"}, "requests": {"memory": "1Gi", "cpu": "1"}})
    assert one == other
    assert replace(spec, default=one).digested().digest == replace(spec, default=other).digested().digest
