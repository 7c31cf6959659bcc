"""`gateway status` prints InferenceServices as `kubectl get isvc` does, below the per-revision table."""

from __future__ import annotations

from typing import Any

from gateway.admin import rollout_status
from gateway.rollouts.resolve import service_of
from gateway.status import render
from tests.rollouts.support import A, B, record, template


def revision_row(name: str) -> dict[str, Any]:
    return {"name": name, "percent": 0, "ready": 1, "desired": 1, "state": "ok"}


def document(rollout: dict[str, object]) -> dict[str, Any]:
    service = {"name": "iris", "namespace": "models", "host": "iris.models.example.com", "rollout": rollout}
    return {"services": [{**service, "revisions": [revision_row("iris-predictor-00001")]}]}


def test_a_canary_shows_prev_and_latest() -> None:
    spec = service_of(template(B, 10), record(2, 1, A, 2, B, 10, 2))
    rollout = rollout_status(spec, lambda key: "ok")
    assert rollout == {
        "ready": True,
        "prev": 90,
        "latest": 10,
        "prevRolledOutRevision": "iris-predictor-00001",
        "latestRevision": "iris-predictor-00002",
        "latestReadyRevision": "iris-predictor-00002",
    }
    lines = render(document(rollout)).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
    assert lines[header].split() == ["NAME", "URL", "READY", "PREV", "LATEST", "PREVROLLEDOUTREVISION", "LATESTREADYREVISION"]
    assert lines[header + 1].split() == [
        "models/iris",
        "http://iris.models.example.com",
        "True",
        "90",
        "10",
        "iris-predictor-00001",
        "iris-predictor-00002",
    ]


def test_a_failing_latest_is_not_ready_and_the_rolled_out_one_is_the_latest_ready() -> None:
    spec = service_of(template(B, 10), record(2, 1, A, 2, B, 10, 2))
    rollout = rollout_status(spec, lambda key: "crash-backoff" if key.revision == "predictor-00002" else "ok")
    assert (rollout["ready"], rollout["latestReadyRevision"]) == (False, "iris-predictor-00001")


def test_rolled_out_prev_is_blank() -> None:
    spec = service_of(template(B), record(2, 2, B, 2, B, None, 3))
    rollout = rollout_status(spec, lambda key: "ok")
    assert (rollout["prev"], rollout["latest"], rollout["prevRolledOutRevision"]) == (None, 100, None)
    row = render(document(rollout)).splitlines()[-1].split()
    assert row == ["models/iris", "http://iris.models.example.com", "True", "100", "iris-predictor-00002"]


def test_no_inference_service_no_second_table() -> None:
    doc = {"services": [{"name": "p", "namespace": "d", "host": "p.d.example.com", "revisions": [revision_row("p-default")]}]}
    assert "PREVROLLEDOUTREVISION" not in render(doc)
