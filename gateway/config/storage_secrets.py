"""Storage secrets under the local backend: a revision naming a secret (SimpleMLService
`spec.storage.s3.secretName`) reads it from GatewayConfig `spec.secretsFile`, a file of Kubernetes
Secret manifests, checked here once every document is read (the GatewayConfig may come last).
Under kubernetes the secret is mounted by name for the init container; nothing is read here.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.config.manifest import Translated
from gateway.config.model import GatewaySettings, RevisionSpec
from gateway.storage import StorageError
from gateway.storage.secrets import read_secrets_file

SECRETS_FILE_ENV = "SERVING_GATEWAY_SECRETS_FILE"  # where `gateway storage-initializer --secret` reads it
SECRET_FIELD = "spec.storage.s3.secretName"


def apply_secrets_file(translated: list[Translated], settings: GatewaySettings) -> None:
    """Point every local revision naming a secret at the secrets file; errors and warnings go to each
    document's context."""
    secrets: dict[str, dict[str, str]] | None = None
    for item in translated:
        if (item.service.backend or settings.backend) != "local":
            continue
        changed = {}
        for revision in item.service.revisions():
            name = revision.storage_secret
            if name is None or revision.command is None:  # an image only: not run here at all
                continue
            if settings.secrets_file is None:
                item.ctx.warn(
                    SECRET_FIELD,
                    f"secret {name!r} is not read: GatewayConfig spec.secretsFile is not set, so the local backend "
                    "downloads with the gateway's own environment (AWS_ACCESS_KEY_ID, S3_ENDPOINT, ...)",
                )
                continue
            try:
                secrets = read_secrets_file(settings.secrets_file) if secrets is None else secrets
            except StorageError as exc:
                item.ctx.error(SECRET_FIELD, f"secret {name!r}: {exc}")
                continue
            if name not in secrets:
                item.ctx.error(SECRET_FIELD, f"no Secret {name!r} in {settings.secrets_file} (GatewayConfig spec.secretsFile)")
                continue
            changed[revision.name] = _with_file(revision, settings.secrets_file)
        if changed:
            service = item.service
            item.service = replace(
                service,
                default=changed.get(service.default.name, service.default),
                canary=None if service.canary is None else changed.get(service.canary.name, service.canary),
            ).digested()


def _with_file(revision: RevisionSpec, path: str) -> RevisionSpec:
    env = tuple((key, value) for key, value in revision.env if key != SECRETS_FILE_ENV)
    return replace(revision, env=(*env, (SECRETS_FILE_ENV, path)))
