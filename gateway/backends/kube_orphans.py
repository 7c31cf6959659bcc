"""Orphans: Deployments this gateway installation made for revisions it no longer has.

A revision removed while the gateway was down, or while another gateway led, leaves its Deployment
behind; the leader looks for them after every start, reload and change of leadership, once the whole
configuration is applied (`Reconciler.sweep_wanted`). Only a Deployment labelled managed-by AND with
this installation's owner (`spec.kubernetes.owner`) is ever deleted. One labelled managed-by with no
owner was made by an older gateway: its revision, if configured, is adopted (the converge adds the
label with the rest of the manifest); if not, it is left alone and said once in the log. Another
installation's (another owner) is never touched.

The listing is cluster-wide when the RBAC allows it; a 403 (the namespaced overlay's Role) falls back,
for good, to one list per namespace the gateway knows. Labels are checked here too: an API emulator
may ignore the selector.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from gateway.backends.deployment import OWNER_LABEL
from gateway.backends.kube_api import KubeRequestError
from gateway.backends.kube_deploy import Deployments
from gateway.backends.kube_manifest import MANAGED_BY, MANAGED_BY_LABEL, Obj, managed_by_us, revision_of
from gateway.backends.kube_state import KubeRevision
from gateway.types import RevisionKey

log = logging.getLogger(__name__)

SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


class Orphans:
    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments
        self.cluster_wide = True  # False once the API refused the cluster-wide list (a namespaced Role)
        self._told: set[tuple[str, str]] = set()  # unowned ones said in the log already

    async def ours(self, namespaces: Iterable[str]) -> list[Obj]:
        """Every Deployment labelled managed-by that the gateway may see."""
        if self.cluster_wide:
            try:
                return [d for d in await self.deployments.list_labelled(None, SELECTOR) if managed_by_us(d)]
            except KubeRequestError as exc:
                if exc.status != 403:
                    raise
                log.info("%s; looking for orphaned Deployments namespace by namespace", exc)
                self.cluster_wide = False
        found: list[Obj] = []
        for namespace in sorted(set(namespaces)):
            try:
                found.extend(d for d in await self.deployments.list_labelled(namespace, SELECTOR) if managed_by_us(d))
            except KubeRequestError as exc:
                log.error("looking for orphaned Deployments: %s", exc)
        return found

    async def sweep(
        self,
        revisions: Mapping[RevisionKey, KubeRevision],
        owner: str,
        namespaces: Iterable[str],
        may_write: Callable[[], bool],
    ) -> int:
        """Delete this installation's Deployments of revisions not in `revisions`; how many were deleted.
        `may_write` is asked right before each delete (leadership and the lease)."""
        deleted = 0
        for deployment in await self.ours(namespaces):
            metadata = deployment.get("metadata") or {}
            name, namespace = str(metadata.get("name") or ""), str(metadata.get("namespace") or "")
            key = revision_of(deployment)
            if key is not None and key.name == name and key.namespace == namespace and key in revisions:
                continue  # configured: the converge keeps it (and adds the owner label to an older one)
            labelled = (metadata.get("labels") or {}).get(OWNER_LABEL)
            if labelled is None:
                if (namespace, name) not in self._told:
                    self._told.add((namespace, name))
                    log.warning(
                        "Deployment %s/%s is labelled %s but has no %s label (made by an older gateway) and runs no "
                        "revision of the config: left alone; delete it by hand if nothing uses it",
                        namespace,
                        name,
                        SELECTOR,
                        OWNER_LABEL,
                    )
                continue
            if labelled != owner:
                continue  # another gateway installation's
            if not may_write():
                return deleted
            await self.deployments.delete(namespace, name)
            deleted += 1
            log.info(
                "deleted Deployment %s/%s: its revision is no longer in the config (an orphan of %s)", namespace, name, owner
            )
        return deleted
