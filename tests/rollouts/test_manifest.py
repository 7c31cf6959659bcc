"""What an InferenceService manifest says about its rollout, and what it may not say."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config import load
from gateway.config.listing import routing_table
from gateway.config.model import RolloutSpec
from tests.config.support import problems, write

LABEL = "document 1 (InferenceService/iris)"


def isvc(name: str = "iris", *, percent: object = None, annotation: str | None = None) -> str:
    meta = "" if annotation is None else f"  annotations:\n    serving.kserve.io/enable-tag-routing: {annotation}\n"
    canary = "" if percent is None else f"    canaryTrafficPercent: {percent}\n"
    return (
        f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n{meta}spec:\n"
        f"  predictor:\n{canary}    containers:\n      - image: m:1\n        command: [serve, '{{port}}']\n"
    )


@pytest.mark.parametrize(
    ("annotation", "percent", "expected"),
    [
        (None, None, RolloutSpec(None, False)),
        ('"true"', 10, RolloutSpec(10, True)),
        ('"True"', 0, RolloutSpec(0, True)),
        ('"false"', 100, RolloutSpec(100, False)),
    ],
)
def test_the_rollout_a_manifest_asks_for(
    tmp_path: Path, annotation: str | None, percent: int | None, expected: RolloutSpec
) -> None:
    (service,) = load([write(tmp_path, "x.yaml", isvc(percent=percent, annotation=annotation))]).services
    assert service.rollout is not None and service.rollout.revision  # the predictor's digest
    assert replace(service.rollout, revision="") == expected
    assert service.default.name == "predictor" and service.canary is None  # numbered when applied (gateway.rollouts)


@pytest.mark.parametrize(
    ("percent", "annotation", "error"),
    [
        (150, None, "spec.predictor.canaryTrafficPercent: must be 0..100, got 150"),
        (-1, None, "spec.predictor.canaryTrafficPercent: must be 0..100, got -1"),
        ("ten", None, "spec.predictor.canaryTrafficPercent: must be an integer 0..100, got 'ten'"),
        (None, '"yes"', 'metadata.annotations[serving.kserve.io/enable-tag-routing]: must be "true" or "false", got \'yes\''),
        (None, '""', 'metadata.annotations[serving.kserve.io/enable-tag-routing]: must be "true" or "false", got \'\''),
    ],
)
def test_bad_rollout_fields_are_errors(tmp_path: Path, percent: object, annotation: str | None, error: str) -> None:
    path = write(tmp_path, "x.yaml", isvc(percent=percent, annotation=annotation))
    assert problems([path]) == [f"{path}: {LABEL}: {error}"]


def test_tag_hosts_are_claimed_only_with_tag_routing(tmp_path: Path) -> None:
    other = "---\n" + isvc("prev-iris")
    path = write(tmp_path, "x.yaml", isvc(annotation='"true"') + other)
    assert problems([path]) == [
        f"{path}: document 2 (InferenceService/prev-iris): metadata.name: host prev-iris.default.example.com collides "
        f"with the prev tag host of {path}: {LABEL}"
    ]
    assert len(load([write(tmp_path, "y.yaml", isvc() + other)]).services) == 2


def digest_of(tmp_path: Path, folder: str, text: str) -> str:
    (tmp_path / folder).mkdir(exist_ok=True)
    (service,) = load([write(tmp_path / folder, "x.yaml", text)]).services
    assert service.rollout is not None
    return service.rollout.revision


def test_what_makes_a_new_revision(tmp_path: Path) -> None:
    """The predictor as written, but for the rollout's percent, scaling and the timeout (the service's here)."""
    base = digest_of(tmp_path, "a", isvc())
    assert digest_of(tmp_path, "b", isvc()) == base  # a copy elsewhere: its workdir differs, its revision does not
    assert digest_of(tmp_path, "c", isvc(percent=10)) == base
    scaled = isvc().replace("  predictor:\n", "  predictor:\n    minReplicas: 2\n    containerConcurrency: 4\n    timeout: 30\n")
    assert digest_of(tmp_path, "d", scaled) == base
    assert digest_of(tmp_path, "e", isvc().replace("image: m:1", "image: m:2")) != base
    assert digest_of(tmp_path, "f", isvc().replace("serve, ", "serve, --v2, ")) != base


def test_validate_lists_an_inference_service_before_it_is_numbered(tmp_path: Path) -> None:
    lines = routing_table(load([write(tmp_path, "x.yaml", isvc(percent=10, annotation='"true"'))])).splitlines()
    assert any(line.split()[:3] == ["iris.default.example.com", "iris-predictor-NNNNN", "100%"] for line in lines)
    assert any(line.split() == ["prev-iris.default.example.com", "(rolled", "out)", "tag"] for line in lines)
    assert any(line.split() == ["latest-iris.default.example.com", "(latest)", "tag"] for line in lines)
    plain = routing_table(load([write(tmp_path, "y.yaml", isvc())]))
    assert "tag" not in plain.split()  # no tag hosts without enable-tag-routing
