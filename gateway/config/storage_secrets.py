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
            if revision.env_refs and revision.command is not None and _env_refs_ok(item, revision, settings):
                revision = changed[revision.name] = _with_file(revision, settings.secrets_file or "")
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


ENV_FIELD = "spec.predictor.env"


def _env_refs_ok(item: Translated, revision: RevisionSpec, settings: GatewaySettings) -> bool:
    """The local backend takes `valueFrom.secretKeyRef` from spec.secretsFile; ConfigMaps and pod fields it has not.
    Errors name the variable, never a value."""
    ok = True
    secrets: dict[str, dict[str, str]] | None = None
    for variable, source in revision.env_refs:
        ((kind, ref),) = source.items()
        where = f"{ENV_FIELD}[{variable}].valueFrom.{kind}"
        if kind != "secretKeyRef" or not isinstance(ref, dict):
            item.ctx.error(
                where,
                "not supported under the local backend (no ConfigMaps or pod fields here): use value, "
                "or secretKeyRef with GatewayConfig spec.secretsFile",
            )
            ok = False
            continue
        if settings.secrets_file is None:
            item.ctx.error(where, f"Secret {ref['name']!r} cannot be read: GatewayConfig spec.secretsFile is not set")
            ok = False
            continue
        try:
            secrets = read_secrets_file(settings.secrets_file) if secrets is None else secrets
        except StorageError as exc:
            item.ctx.error(where, str(exc))
            return False
        if ref["key"] not in secrets.get(str(ref["name"]), {}) and not ref.get("optional"):
            item.ctx.error(
                where, f"no key {ref['key']!r} in Secret {ref['name']!r} of {settings.secrets_file} (spec.secretsFile)"
            )
            ok = False
    return ok


def _with_file(revision: RevisionSpec, path: str) -> RevisionSpec:
    env = tuple((key, value) for key, value in revision.env if key != SECRETS_FILE_ENV)
    return replace(revision, env=(*env, (SECRETS_FILE_ENV, path)))
