"""The rollout rules of KServe v1beta1, as pure functions: a stored record and a manifest's predictor in,
the next record and the service to run out.

- A predictor whose revision differs from the latest one (the predictor as its manifest writes it:
  `predictor_digest`) is a new revision, numbered one past the highest number given out. Scaling and the
  request timeout are the service's in this gateway, not a revision's, so changing them makes no new revision.
- `canaryTrafficPercent: X` on a change: the rolled-out revision keeps 100 - X, the new latest gets X;
  a revision that was latest in between is dropped. Changing only X re-splits.
- X absent or 100: the latest is promoted (rolled out, 100 %); the previous one is dropped (its requests
  drain first). X = 0: everything back to the rolled-out revision; the latest stays reachable by its tag.
- The first revision of a service is rolled out whatever X says: there is nothing to split with.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.config.model import RevisionSpec, ServiceSpec
from gateway.rollouts.record import RolloutRecord, revision_digest, revision_name

PREV_TAG = "prev"
LATEST_TAG = "latest"


def advance(record: RolloutRecord | None, revision: RevisionSpec, percent: int | None, digest: str = "") -> RolloutRecord:
    """The record after applying a manifest whose predictor is `revision` (`digest`: the predictor's as written,
    else the RevisionSpec's) and canaryTrafficPercent `percent`.

    Applying the same manifest again gives the same record (so instances that resolve one after another agree).
    """
    digest = digest or revision_digest(revision)
    promote = percent is None or percent == 100
    if record is None:
        return RolloutRecord(1, 1, revision, 1, digest, None, 1, digest)
    generation = record.generation + 1
    if digest == record.latest_digest:
        if record.latest == record.rolled_out:
            # one revision runs: a percent has nothing to split with; it runs this manifest's predictor
            wanted = record if record.rolled_out_spec is not None else replace(record, rolled_out_spec=revision)
        elif promote:
            wanted = replace(record, rolled_out=record.latest, rolled_out_spec=revision, percent=None, rolled_out_digest=digest)
        else:
            wanted = replace(record, percent=percent)
        return wanted if wanted == record else replace(wanted, generation=generation)
    number = record.counter + 1
    if promote:
        return RolloutRecord(number, number, revision, number, digest, None, generation, digest)
    return RolloutRecord(
        number, record.rolled_out, record.rolled_out_spec, number, digest, percent, generation, record.rolled_out_digest
    )


def service_of(template: ServiceSpec, record: RolloutRecord) -> ServiceSpec:
    """The service to run: `template` (a translated InferenceService, one revision) with the record's
    numbered revisions and split, digested."""
    assert template.rollout is not None, "only an InferenceService has a rollout"
    latest = replace(template.default, name=revision_name(record.latest), tag=LATEST_TAG)
    rollout = replace(template.rollout, record=record.to_json())
    if record.canary:
        assert record.rolled_out_spec is not None, "the resolver found the rolled-out spec, or refused"
        prev = replace(record.rolled_out_spec, name=revision_name(record.rolled_out), tag=PREV_TAG)
        percent = record.percent or 0
        return replace(template, default=prev, canary=latest, canary_percent=percent, rollout=rollout).digested()
    return replace(template, default=latest, canary=None, canary_percent=0, rollout=rollout).digested()
