"""What the kubernetes backend knows of one revision's Deployment, and how an observed object updates it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from gateway.backends.base import RevisionStatus
from gateway.backends.kube_deploy import replicas_of
from gateway.backends.kube_manifest import DIGEST_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL, Obj, managed_by_us
from gateway.types import RevisionKey

CREATE_GRACE = 1.0  # seconds a new Deployment waits for the autoscaler's first wish, so it is made in one write

Found = Literal["unknown", "absent", "ours", "foreign"]
Adoption = int | None | Literal["unknown"]


@dataclass(eq=False)
class KubeRevision:
    key: RevisionKey
    manifest: Obj  # the Deployment we want, without replicas
    digest: str
    port: int
    found: Found = "unknown"  # what the cluster has under the Deployment's name, as last seen
    replicas: int | None = None  # the Deployment's spec.replicas as last seen or set
    applied: str | None = None  # the digest of the cluster's copy
    adopted: int | None = None  # replicas it had when first seen; None when it did not exist
    seen: bool = False  # looked at once: `adopted` is final
    wanted: int | None = None  # what the autoscaler last asked
    error: str | None = None  # the API's last refusal about this Deployment
    removing_since: float | None = None  # left the config: deleted once its requests are done
    problem: str | None = None  # the config cannot be made into a Deployment (said in the status)
    absent_since: float | None = None  # when a creation first waited for the autoscaler's wish
    stale: bool = False  # its pods changed: `replicas` may no longer be the cluster's (read it back)
    template_seen: str | None = None  # `template_digest` of the cluster's copy as last written or first seen
    drifted: bool = False  # its template was changed outside the gateway: patched back

    @property
    def namespace(self) -> str:
        return str(self.manifest["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def what(self) -> str:
        return f"Deployment {self.namespace}/{self.name}"

    def observe(self, obj: Obj | None) -> None:
        """Take what the API has under our Deployment's name (None: nothing)."""
        if obj is None:
            self.found, self.replicas, self.applied, self.error = "absent", None, None, None
        elif managed_by_us(obj):
            self.found, self.replicas, self.error = "ours", replicas_of(obj), None
            self.applied = ((obj.get("metadata") or {}).get("annotations") or {}).get(DIGEST_ANNOTATION)
        else:
            self.found, self.replicas, self.applied = "foreign", None, None
            self.error = (
                f"{self.what} exists and was not made by the gateway (it lacks the label {MANAGED_BY_LABEL}={MANAGED_BY}); "
                "refusing to take it over: rename the service or delete that Deployment"
            )
        if not self.seen:
            self.seen = True
            self.adopted = self.replicas if self.found == "ours" else None

    def adoption(self) -> Adoption:
        """What the autoscaler starts this revision from: the replicas its Deployment had when first seen,
        None when the gateway creates it (initial scale applies), "unknown" while nobody can tell."""
        if self.found in ("unknown", "foreign") or self.problem:
            return "unknown"
        return self.adopted

    def creation_wait(self, now: float, grace: float = CREATE_GRACE) -> float:
        """Seconds the Deployment's creation still waits for the autoscaler's first wish (then it is made at
        that scale in one write, not at 0 and scaled); past `grace` it is made at 0 all the same."""
        if self.wanted is not None:
            return 0.0
        if self.absent_since is None:
            self.absent_since = now
        return max(0.0, self.absent_since + grace - now)

    def status(self, ready: int, health: str | None, *, actuating: bool = True) -> RevisionStatus:
        """For /admin/services and `gateway status`: `ready` pods, `health` the API's (None: it answers).
        A follower (`actuating` off) sends no wish: it shows the Deployment as observed."""
        desired = self.wanted if self.wanted is not None and actuating else self.replicas or 0
        if self.problem or self.error:
            return RevisionStatus(desired, ready, "failed", self.problem or self.error)
        if health:
            return RevisionStatus(desired, ready, "unreachable", health)
        if self.found == "unknown":
            return RevisionStatus(desired, ready, "pending", f"looking for {self.what}")
        if not actuating and self.found == "absent":
            return RevisionStatus(desired, ready, "pending", f"{self.what} is not there yet: the leading gateway makes it")
        if actuating and self.wanted is not None and self.wanted != self.replicas:
            return RevisionStatus(desired, ready, "scaling", f"{self.what}: {self.replicas} -> {self.wanted} replicas")
        return RevisionStatus(desired, ready)


def template_digest(obj: Obj | None) -> str | None:
    """A digest of a Deployment's pod template as the API holds it (defaults filled in), to tell a hand edit."""
    template = ((obj or {}).get("spec") or {}).get("template")
    if not isinstance(template, dict):
        return None
    return hashlib.blake2b(json.dumps(template, sort_keys=True).encode(), digest_size=12).hexdigest()


def unbuilt(key: RevisionKey) -> Obj:
    """Where a revision's Deployment would be, for one whose config cannot be built."""
    return {"metadata": {"name": key.name, "namespace": key.namespace}, "spec": {}}
