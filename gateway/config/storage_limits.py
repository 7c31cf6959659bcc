"""GatewayConfig `spec.storage` (maxModelBytes, downloadTimeout) reaches every revision that fetches a model as
environment the storage code reads: a local replica (`gateway modelserver` or `gateway storage-initializer`) and
a Kubernetes init container (which gets the revision's env) alike. Nothing is added when a setting is left out,
so revisions keep their digests."""

from __future__ import annotations

from dataclasses import replace

from gateway.config.manifest import Translated
from gateway.config.model import GatewaySettings, RevisionSpec
from gateway.storage import MAX_BYTES_ENV, TIMEOUT_ENV


def storage_env(settings: GatewaySettings) -> tuple[tuple[str, str], ...]:
    storage = settings.storage
    env = []
    if storage.max_model_bytes is not None:
        env.append((MAX_BYTES_ENV, str(storage.max_model_bytes)))
    if storage.download_timeout is not None:
        env.append((TIMEOUT_ENV, f"{storage.download_timeout:g}"))
    return tuple(env)


def apply_storage_limits(translated: list[Translated], settings: GatewaySettings) -> None:
    added = storage_env(settings)
    if not added:
        return
    for item in translated:
        service = item.service
        if all(revision.storage_uri is None for revision in service.revisions()):
            continue
        item.service = replace(
            service,
            default=_with_env(service.default, added),
            canary=None if service.canary is None else _with_env(service.canary, added),
        ).digested()


def _with_env(revision: RevisionSpec, added: tuple[tuple[str, str], ...]) -> RevisionSpec:
    if revision.storage_uri is None:
        return revision
    names = {name for name, _ in added}
    return replace(revision, env=(*(pair for pair in revision.env if pair[0] not in names), *added))
