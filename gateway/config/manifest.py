"""What every service manifest shares: top-level keys, metadata, the opened document, the translation result."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from gateway.config.errors import DocContext
from gateway.config.model import BackendKind, RevisionSpec, ScalingSpec, ServiceSpec, Source
from gateway.config.values import check_keys, describe, dns_label, join, mapping
from gateway.types import RevisionName

TOP_LEVEL_KEYS = ("apiVersion", "kind", "metadata", "spec", "status")
_METADATA_KEYS = ("name", "namespace", "labels", "annotations")
# Written by the API server; present in `kubectl get -o yaml` output and meaningless here.
_SERVER_METADATA_KEYS = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "finalizers",
    "ownerReferences",
)


@dataclass(frozen=True)
class Metadata:
    name: str
    namespace: str
    annotations: dict[str, str]


@dataclass(frozen=True)
class RevisionFields:
    """Where a revision's runnable parts live in its manifest, for checks made after all files are read.

    A field is None when the manifest kind has no way to say it.
    """

    base: str
    command: str | None
    endpoints: str | None
    image: str | None
    resources: str | None = None


@dataclass
class Translated:
    """A service translated from one document, with what the cross-document checks need."""

    service: ServiceSpec
    ctx: DocContext
    fields: dict[RevisionName, RevisionFields]
    local_notes: list[tuple[str, str]] = field(default_factory=list)  # warnings only under local
    local_errors: list[tuple[str, str]] = field(default_factory=list)  # errors only under local
    kubernetes_errors: list[tuple[str, str]] = field(default_factory=list)  # errors only under kubernetes


def read_metadata(ctx: DocContext, body: dict[str, object]) -> Metadata | None:
    if "metadata" not in body or body["metadata"] is None:
        ctx.error("metadata", "required (a mapping with name and optionally namespace)")
        return None
    meta = mapping(ctx, "metadata", body["metadata"])
    if meta is None:
        return None
    check_keys(ctx, "metadata", meta, _METADATA_KEYS + _SERVER_METADATA_KEYS, strict=False)
    name = None
    if "name" not in meta:
        ctx.error("metadata.name", "required")
    else:
        name = dns_label(ctx, "metadata.name", meta["name"])
    namespace: str | None = ctx.namespace or "default"
    if meta.get("namespace") is not None:
        namespace = dns_label(ctx, "metadata.namespace", meta["namespace"])
        if namespace is not None and ctx.namespace is not None and namespace != ctx.namespace:
            ctx.error("metadata.namespace", f"{namespace!r} does not match the namespace given with -n ({ctx.namespace!r})")
            namespace = None
    annotations = read_annotations(ctx, meta.get("annotations"))
    if meta.get("labels") is not None:
        mapping(ctx, "metadata.labels", meta["labels"])
    if name is None or namespace is None or annotations is None:
        return None
    return Metadata(name, namespace, annotations)


def read_annotations(ctx: DocContext, value: object) -> dict[str, str] | None:
    if value is None:
        return {}
    found = mapping(ctx, "metadata.annotations", value)
    if found is None:
        return None
    annotations: dict[str, str] = {}
    for key, item in found.items():
        if isinstance(item, str):
            annotations[key] = item
        elif isinstance(item, int | float) and not isinstance(item, bool):
            annotations[key] = str(item)
        else:
            ctx.error(join("metadata.annotations", key), f"must be a string, got {describe(item)}")
    return annotations


def check_top_level(ctx: DocContext, body: dict[str, object]) -> dict[str, object] | None:
    """Warn about unknown top-level keys and return the spec mapping (errors if missing)."""
    check_keys(ctx, "", body, TOP_LEVEL_KEYS, strict=False)
    if body.get("spec") is None:
        ctx.error("spec", "required")
        return None
    return mapping(ctx, "spec", body["spec"])


@dataclass(frozen=True)
class ServiceDocument:
    """A service manifest opened the same way for every kind: metadata read, spec a mapping, its keys checked."""

    ctx: DocContext
    kind: str
    meta: Metadata
    spec: dict[str, object]
    errors_before: int  # the context's error count before the document was read

    def failed(self) -> bool:
        """Whether reading the document so far reported an error."""
        return self.ctx.error_count > self.errors_before

    def service(
        self,
        default: RevisionSpec,
        scaling: ScalingSpec,
        *,
        canary: RevisionSpec | None = None,
        canary_percent: int = 0,
        backend: BackendKind | None = None,
        timeout: float | None = None,
    ) -> ServiceSpec:
        """The service this document defines, named by its metadata and sourced to it."""
        return ServiceSpec(
            name=self.meta.name,
            namespace=self.meta.namespace,
            default=default,
            canary=canary,
            canary_percent=canary_percent,
            scaling=scaling,
            backend=backend,
            timeout=timeout,
            source=Source(self.ctx.file, self.ctx.index, self.kind, self.meta.name),
        )


def open_service(
    ctx: DocContext,
    body: dict[str, object],
    kind: str,
    spec_keys: Collection[str],
    *,
    elsewhere: Mapping[str, str] | None = None,
) -> ServiceDocument | None:
    """Metadata and spec of a service manifest, unknown spec keys warned about; None if either is unusable."""
    errors_before = ctx.error_count
    meta = read_metadata(ctx, body)
    spec = check_top_level(ctx, body)
    if meta is None or spec is None:
        return None
    check_keys(ctx, "spec", spec, spec_keys, strict=False, elsewhere=elsewhere)
    return ServiceDocument(ctx, kind, meta, spec, errors_before)
