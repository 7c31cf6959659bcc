"""The digest of an InferenceService predictor as its manifest writes it: a change of it is a new revision.

Apart from gateway.rollouts.record so the manifest translation (gateway.config.kserve) can use it without
importing gateway.config back (a cycle: importing gateway.rollouts.record first failed).
"""

from __future__ import annotations

import hashlib
import json

# Predictor keys that make no new revision: the rollout's own, and scaling and the request timeout, which are the
# service's in this gateway (KServe puts them on the revision's template; here a change applies to every revision).
NOT_REVISION_KEYS = frozenset(
    {"canaryTrafficPercent", "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency", "timeout"}
)


def predictor_digest(predictor: dict[str, object]) -> str:
    """The digest of a predictor as its manifest writes it, but for NOT_REVISION_KEYS: a change of anything
    else is a new revision (gateways reading copies of one manifest in different folders agree on it)."""
    kept = {key: value for key, value in predictor.items() if key not in NOT_REVISION_KEYS}
    text = json.dumps(kept, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
