from __future__ import annotations

from dataclasses import fields

from gateway.config import RevisionSpec
from gateway.config.runnable import RevisionDraft


def test_draft_has_every_revision_field_but_the_name() -> None:
    # the tag is not read from a manifest: an InferenceService's rollout sets it (gateway.rollouts)
    spec_fields = [f.name for f in fields(RevisionSpec) if f.name not in ("name", "tag")]
    assert [f.name for f in fields(RevisionDraft)] == spec_fields


def test_an_empty_draft_finishes_as_the_revision_defaults() -> None:
    assert RevisionDraft().finish("canary") == RevisionSpec(name="canary")


def test_a_draft_finishes_with_what_was_given() -> None:
    draft = RevisionDraft(command=("serve", "{port}"), env=(("A", "1"),), accelerator="nvidia", accelerator_count=2)
    draft.node_selector = (("zone", "a"),)
    draft.resources = {"limits": {"cpu": "1"}}
    assert draft.finish("default") == RevisionSpec(
        name="default",
        command=("serve", "{port}"),
        env=(("A", "1"),),
        accelerator="nvidia",
        accelerator_count=2,
        node_selector=(("zone", "a"),),
        resources={"limits": {"cpu": "1"}},
    )
