"""Resolving a configuration's InferenceServices against their rollout records, before it is applied.

A translated InferenceService has one revision named `predictor`; here it becomes the numbered
revisions its record says (gateway.rollouts.resolve), the record stored first (compare-and-set, retried
against another writer's record), so what runs is always what a restart will find.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gateway.config.model import Config, GatewaySettings, RevisionSpec, ServiceSpec
from gateway.rollouts.record import RolloutRecord, revision_name
from gateway.rollouts.resolve import advance, service_of
from gateway.rollouts.specs import FILE_NAME as SPECS_FILE
from gateway.rollouts.specs import SpecFile
from gateway.rollouts.stores import FILE_NAME, FileRolloutStore, Ident, RolloutError, RolloutStore

log = logging.getLogger(__name__)

YIELD_EVERY = 250  # services resolved between two turns of the event loop
ATTEMPTS = 5  # compare-and-set rounds before giving up (another gateway writing the same records meanwhile)

StoreFactory = Callable[[], RolloutStore]


def unresolved(spec: ServiceSpec) -> bool:
    """A translated InferenceService whose revisions are not numbered yet."""
    return spec.rollout is not None and not spec.rollout.record


class Rollouts:
    """Which store keeps whose records (Redis when configured, else the Deployments for a service the kubernetes
    backend runs, else a file in the state directory), and the resolution itself."""

    def __init__(
        self,
        state_dir: Path,
        *,
        kube: StoreFactory | None = None,
        redis: StoreFactory | None = None,
        read_only: bool = False,
        mirror: bool = False,
    ) -> None:
        """`read_only`: a worker's (`gateway serve --workers`), which resolves against what its supervisor stored
        and writes nothing; `mirror`: a supervisor's, which copies records kept elsewhere (the Deployments)
        into the state directory's file for its workers, which have no API client."""
        self.file = FileRolloutStore(state_dir / FILE_NAME)
        self.specs = SpecFile(state_dir / SPECS_FILE)  # what the revisions this gateway applied run (Redis never says)
        self.read_only = read_only
        self.mirror = mirror
        self._resolved: dict[Ident, tuple[str, RolloutRecord, ServiceSpec]] = {}  # (template digest, record, result)
        self._kube_factory = kube
        self._redis_factory = redis
        self._kube: RolloutStore | None = None
        self._redis: RolloutStore | None = None

    def store_for(self, spec: ServiceSpec, settings: GatewaySettings) -> RolloutStore:
        if settings.redis and self._redis_factory is not None:
            if self._redis is None:
                self._redis = self._redis_factory()
            return self._redis
        if (spec.backend or settings.backend) == "kubernetes" and self._kube_factory is not None:
            if self._kube is None:
                self._kube = self._kube_factory()
            return self._kube
        return self.file

    async def resolve(self, config: Config) -> Config:
        """`config` with every InferenceService numbered; RolloutError (naming the store) if a record cannot be
        read or written."""
        templates = [spec for spec in config.services if unresolved(spec)]
        if not templates:
            return config
        by_store: dict[int, tuple[RolloutStore, list[ServiceSpec]]] = {}
        for spec in templates:
            store = self.store_for(spec, config.gateway)
            by_store.setdefault(id(store), (store, []))[1].append(spec)
        resolved: dict[Ident, ServiceSpec] = {}
        done: dict[Ident, tuple[str, RolloutRecord, ServiceSpec]] = {}
        for store, specs in by_store.values():
            records = await self._records(store, specs)
            if store is self._redis:
                records = await self._find_specs(specs, records, config.gateway)
            for i, spec in enumerate(specs):
                if i and i % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # 10,000 InferenceServices resolve with the data plane served between
                record = records[spec.ident]
                was = self._resolved.get(spec.ident)
                if was is not None and was[0] == spec.digest and was[1] == record:
                    result = was[2]  # unchanged: the very spec applied before, nothing built or digested again
                else:
                    result = service_of(spec, record)
                resolved[spec.ident] = result
                done[spec.ident] = (spec.digest, record, result)
        self._resolved = done
        services = tuple(resolved.get(spec.ident, spec) if unresolved(spec) else spec for spec in config.services)
        return replace(config, services=services)

    async def _find_specs(
        self, specs: list[ServiceSpec], records: dict[Ident, RolloutRecord], settings: GatewaySettings
    ) -> dict[Ident, RolloutRecord]:
        """Records read from Redis, with the rolled-out revision's spec from a trusted place: this manifest, what
        this gateway serves now, its state directory, or (kubernetes) the revision's Deployment annotation.
        A canary whose rolled-out spec is in none of them is refused (RolloutError naming it): never invented."""
        if self.read_only:
            self.specs.reread()  # the supervisor wrote it since
        missing = []
        for spec in specs:
            record = records[spec.ident]
            if record.rolled_out_spec is None:
                found = await self._trusted_spec(spec, record, settings)
                if found is not None:
                    records[spec.ident] = replace(record, rolled_out_spec=found)
                elif record.canary:
                    missing.append(f"{spec.namespace}/{spec.name}-{revision_name(record.rolled_out)}")
        if missing:
            raise RolloutError(
                f"the Redis rollout records name rolled-out revisions this gateway never applied: {', '.join(missing)}; "
                "Redis never says what runs, and this gateway does not know what they run (its state directory "
                f"{self.specs.path} does not hold them), so the configuration is refused and what runs is kept. "
                "Promote the latest revision (drop canaryTrafficPercent) to go on, or start this gateway with the "
                "state directory of the one that applied them"
            )
        if not self.read_only:
            await self.specs.keep({spec.ident: _specs_named(spec, records[spec.ident]) for spec in specs})
        return records

    async def _trusted_spec(self, spec: ServiceSpec, record: RolloutRecord, settings: GatewaySettings) -> RevisionSpec | None:
        assert spec.rollout is not None
        digest = record.rolled_out_digest
        if digest == spec.rollout.revision:
            return spec.default  # the manifest's own predictor
        was = self._resolved.get(spec.ident)
        if was is not None and was[1].rolled_out_digest == digest and was[1].rolled_out_spec is not None:
            return was[1].rolled_out_spec  # what this gateway serves now
        found = await self.specs.get(spec.ident, digest)
        if found is None and (spec.backend or settings.backend) == "kubernetes" and self._kube_factory is not None:
            # the annotation on the revision's Deployments (read afresh: another gateway may have written them)
            held = (await self._kube_factory().load([spec.ident])).get(spec.ident)
            if held is not None and held.rolled_out_digest == digest:
                found = held.rolled_out_spec
        return found

    async def _records(self, store: RolloutStore, specs: list[ServiceSpec]) -> dict[Ident, RolloutRecord]:
        if not self.read_only:
            records = await settle(store, specs)
            if self.mirror and store is not self.file:
                await self.file.overwrite(records)
            return records
        if store is self.file:
            await self.file.reread()  # the supervisor wrote it since
        held = await store.load(spec.ident for spec in specs)
        # the supervisor resolved the same files first: resolving again against its record gives that record
        return {spec.ident: _advance(held.get(spec.ident), spec) for spec in specs}

    async def close(self) -> None:
        for store in (self._redis, self._kube):
            close = getattr(store, "close", None)
            if close is not None:
                await close()


def _specs_named(spec: ServiceSpec, record: RolloutRecord) -> dict[str, RevisionSpec]:
    """The specs `record` names, by predictor digest: the latest (this manifest's) and the rolled-out one."""
    kept = {record.latest_digest: spec.default}
    if record.rolled_out_spec is not None:
        kept[record.rolled_out_digest] = record.rolled_out_spec
    return kept


def _advance(held: RolloutRecord | None, spec: ServiceSpec) -> RolloutRecord:
    assert spec.rollout is not None
    return advance(held, spec.default, spec.rollout.canary_percent, spec.rollout.revision)


async def settle(store: RolloutStore, specs: list[ServiceSpec]) -> dict[Ident, RolloutRecord]:
    """Every service's record after its manifest, stored; another writer's newer record is resolved against again."""
    by_ident = {spec.ident: spec for spec in specs}
    records = await store.load(by_ident)
    pending = dict.fromkeys(by_ident)
    for _ in range(ATTEMPTS):
        swaps = []
        final: dict[Ident, RolloutRecord] = {}
        for ident in pending:
            spec = by_ident[ident]
            held = records.get(ident)
            wanted = _advance(held, spec)
            if wanted == held:
                final[ident] = wanted
            else:
                swaps.append((ident, held, wanted))
                _tell(spec, held, wanted)
        stored = await store.swap(swaps) if swaps else {}
        pending = {}
        for ident, _held, wanted in swaps:
            now = stored.get(ident)
            if now == wanted:
                final[ident] = wanted
            else:
                pending[ident] = None  # another gateway wrote first: resolve against its record
                if now is None:
                    records.pop(ident, None)
                else:
                    records[ident] = now
        records.update(final)
        if not pending:
            return records
    names = ", ".join(f"{ns}/{name}" for ns, name in pending)
    raise RolloutError(f"the rollout records of {names} kept changing under this gateway ({ATTEMPTS} attempts); try again")


def _tell(spec: ServiceSpec, held: RolloutRecord | None, wanted: RolloutRecord) -> None:
    assert spec.rollout is not None
    name = f"{spec.namespace}/{spec.name}"
    latest = f"{spec.name}-{revision_name(wanted.latest)}"
    if held is None:
        if spec.rollout.canary_percent not in (None, 100):
            log.info("%s: first revision %s takes all traffic (canaryTrafficPercent needs a previous one)", name, latest)
        return
    if wanted.canary:
        prev = f"{spec.name}-{revision_name(wanted.rolled_out)}"
        log.info("%s: canary %s gets %d %%, %s keeps %d %%", name, latest, wanted.percent, prev, 100 - (wanted.percent or 0))
    elif wanted.latest != held.rolled_out or wanted.latest != held.latest:
        log.info("%s: %s rolled out (100 %%)", name, latest)
