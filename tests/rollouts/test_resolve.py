"""The rollout rules (gateway.rollouts.resolve) as a table: a stored record and a manifest in, the next record out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.config.model import RevisionSpec
from gateway.rollouts.record import RolloutRecord, revision_digest
from gateway.rollouts.resolve import advance, service_of
from tests.rollouts.support import A, B, C, record, template

ONE = record(1, 1, A, 1, A, None, 1)  # v1 rolled out
CANARY = record(2, 1, A, 2, B, 10, 2)  # v2 at 10 %, v1 rolled out

CASES: list[tuple[str, RolloutRecord | None, RevisionSpec, int | None, RolloutRecord]] = [
    ("first apply", None, A, None, ONE),
    ("first apply with a percent: the only revision takes all", None, A, 10, ONE),
    ("the same manifest again", ONE, A, None, ONE),
    ("a percent with nothing to split", ONE, A, 10, ONE),
    ("a change with a percent starts a canary", ONE, B, 10, CANARY),
    ("a change without a percent rolls out at once", ONE, B, None, record(2, 2, B, 2, B, None, 2)),
    ("a change with 100 rolls out at once", ONE, B, 100, record(2, 2, B, 2, B, None, 2)),
    ("only the percent changes: a re-split", CANARY, B, 30, record(2, 1, A, 2, B, 30, 3)),
    ("the percent removed: promote", CANARY, B, None, record(2, 2, B, 2, B, None, 3)),
    ("100: promote", CANARY, B, 100, record(2, 2, B, 2, B, None, 3)),
    ("0: roll back, the latest kept", CANARY, B, 0, record(2, 1, A, 2, B, 0, 3)),
    ("the canary again, unchanged", CANARY, B, 10, CANARY),
    ("another change mid-canary: the intermediate one retired", CANARY, C, 10, record(3, 1, A, 3, C, 10, 3)),
    ("another change mid-canary, no percent: rolled out", CANARY, C, None, record(3, 3, C, 3, C, None, 3)),
    ("back to what is rolled out: a new number, as KServe", CANARY, A, 10, record(3, 1, A, 3, A, 10, 3)),
]


@pytest.mark.parametrize(("held", "revision", "percent", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_advance(held: RolloutRecord | None, revision: RevisionSpec, percent: int | None, expected: RolloutRecord) -> None:
    after = advance(held, revision, percent)
    assert after == expected
    # resolving the same manifest again changes nothing: instances resolving one after another agree
    assert advance(after, revision, percent) == after


def test_numbers_only_grow_over_a_long_history() -> None:
    held = None
    seen = []
    for revision, percent in [(A, None), (B, 10), (C, 20), (A, None), (B, 0), (B, None)]:
        held = advance(held, revision, percent)
        seen.append((held.rolled_out, held.latest, held.percent))
    assert seen == [(1, 1, None), (1, 2, 10), (1, 3, 20), (4, 4, None), (4, 5, 0), (5, 5, None)]


def test_the_digest_is_what_runs_not_the_name_or_tag() -> None:
    assert revision_digest(A) == revision_digest(replace(A, name="predictor-00007", tag="prev"))
    assert revision_digest(A) != revision_digest(replace(A, env=()))


def test_a_canary_runs_two_numbered_revisions_split_as_the_record_says() -> None:
    resolved = service_of(template(B, 10, tags=True), CANARY)
    assert (resolved.default.name, resolved.default.tag, resolved.default.command) == ("predictor-00001", "prev", A.command)
    assert resolved.canary is not None
    assert (resolved.canary.name, resolved.canary.tag, resolved.canary.command) == ("predictor-00002", "latest", B.command)
    assert (resolved.percent("predictor-00001"), resolved.percent("predictor-00002")) == (90, 10)
    assert resolved.key("predictor-00002").name == "iris-predictor-00002"
    assert [tag for tag, _ in resolved.tagged()] == ["prev", "latest"]
    assert resolved.rollout is not None and RolloutRecord.from_json(resolved.rollout.record) == CANARY
    assert resolved.digest and resolved.digest != template(B, 10, tags=True).digest


def test_rolled_out_the_latest_is_alone_and_tag_hosts_need_the_annotation() -> None:
    promoted = record(2, 2, B, 2, B, None, 3)
    resolved = service_of(template(B), promoted)
    assert resolved.canary is None and resolved.default.name == "predictor-00002"
    assert resolved.percent("predictor-00002") == 100
    assert resolved.tagged() == ()  # no enable-tag-routing: no tag hosts, as KServe
    assert [tag for tag, _ in service_of(template(B, tags=True), promoted).tagged()] == ["latest"]


def test_a_promotion_keeps_the_latest_revisions_name() -> None:
    """The canary's key does not change when it is promoted, so its runtime, replicas and scaler carry on."""
    before = service_of(template(B, 10), CANARY)
    after = service_of(template(B), advance(CANARY, B, None))
    assert before.canary is not None and after.canary is None
    assert before.key(before.canary.name) == after.key(after.default.name)
