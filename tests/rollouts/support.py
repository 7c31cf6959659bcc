"""Revisions and records for the rollout tests."""

from __future__ import annotations

from gateway.config.model import RevisionSpec, RolloutSpec, ScalingSpec, ServiceSpec
from gateway.rollouts.record import RolloutRecord, revision_digest

A = RevisionSpec("predictor", command=("serve", "v1", "{port}"), env=(("MODEL", "v1"),), tolerations=({"key": "gpu"},))
B = RevisionSpec("predictor", command=("serve", "v2", "{port}"), env=(("MODEL", "v2"),))
C = RevisionSpec("predictor", command=("serve", "v3", "{port}"))


def record(
    counter: int,
    rolled_out: int,
    spec: RevisionSpec,
    latest: int,
    latest_spec: RevisionSpec,
    percent: int | None,
    generation: int,
) -> RolloutRecord:
    return RolloutRecord(counter, rolled_out, spec, latest, revision_digest(latest_spec), percent, generation)


def template(
    revision: RevisionSpec = A, percent: int | None = None, *, tags: bool = False, name: str = "iris", namespace: str = "models"
) -> ServiceSpec:
    """A translated InferenceService: one revision named `predictor`, its rollout not resolved."""
    return ServiceSpec(name, namespace, revision, scaling=ScalingSpec(min_scale=1), rollout=RolloutSpec(percent, tags)).digested()
