"""Rollout records kept with the kubernetes backend's Deployments: each revision's Deployment carries its
service's record in an annotation (`serving-gateway/rollout`, written with the Deployment by the backend,
see kube_manifest.desired). At a start the records are read back from the Deployments the gateway adopts;
of two copies (a rollout half written) the one of the higher generation wins."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.backends.kube_api import KubeApi, KubeRequestError, KubeUnavailable
from gateway.backends.kube_deploy import Deployments
from gateway.backends.kube_manifest import ROLLOUT_ANNOTATION, managed_by_us, revision_of
from gateway.rollouts.record import RecordError, RolloutRecord
from gateway.rollouts.stores import Ident, MemoryRolloutStore, RolloutError

LIST_SCHEDULE = (0.5, 1.0)  # retries of the Deployments' list before a start or reload gives up


class KubeRolloutStore(MemoryRolloutStore):
    def __init__(self, api: KubeApi) -> None:
        super().__init__()
        self.api = api
        self._read: set[str] = set()  # namespaces whose Deployments were read

    async def load(self, idents: Iterable[Ident]) -> dict[Ident, RolloutRecord]:
        wanted = list(idents)
        for namespace in sorted({ns for ns, _ in wanted} - self._read):
            await self._read_namespace(namespace)
        return await super().load(wanted)

    async def _read_namespace(self, namespace: str) -> None:
        try:
            found = await Deployments(self.api).list(namespace, schedule=LIST_SCHEDULE)
        except (KubeRequestError, KubeUnavailable) as exc:
            raise RolloutError(
                f"cannot read the rollout records on the Deployments of namespace {namespace}: {exc} "
                "(an InferenceService's revisions are not numbered without them: a guess could shift traffic)"
            ) from None
        for name, deployment in found.items():
            key = revision_of(deployment)
            annotations = (deployment.get("metadata") or {}).get("annotations") or {}
            text = annotations.get(ROLLOUT_ANNOTATION) if isinstance(annotations, dict) else None
            if key is None or not managed_by_us(deployment) or not isinstance(text, str):
                continue
            try:
                record = RolloutRecord.from_json(text)
            except RecordError as exc:
                raise RolloutError(
                    f"the rollout record on Deployment {namespace}/{name} ({ROLLOUT_ANNOTATION}) is corrupt: {exc}"
                ) from None
            ident = (key.namespace, key.service)
            held = self.records.get(ident)
            if held is None or record.generation > held.generation:
                self.records[ident] = record
        self._read.add(namespace)
