"""`load()`: files and folders of YAML documents to one checked Config, or every problem at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from gateway.config import gateway_config, kfserving, kserve, paddle, simpleml
from gateway.config.checks import check_duplicates, check_runnable
from gateway.config.documents import RawDocument, expand_paths, read_documents
from gateway.config.errors import ConfigError, DocContext
from gateway.config.manifest import Translated
from gateway.config.model import Config, GatewaySettings, ServiceSpec
from gateway.config.storage_limits import apply_storage_limits
from gateway.config.storage_secrets import apply_secrets_file
from gateway.config.values import DNS_LABEL, DNS_LABEL_RULE, describe

Translator = Callable[[DocContext, dict[str, object]], Translated | None]

_SERVICE_KINDS: dict[str, dict[str, Translator]] = {
    paddle.KIND: {paddle.API_VERSION: paddle.translate},
    kserve.KIND: {kserve.API_VERSION: kserve.translate, kfserving.API_VERSION: kfserving.translate},
    simpleml.KIND: {simpleml.API_VERSION: simpleml.translate},
}
_SKIPPED_KINDS = {"Namespace": "v1"}
PROGRESS_EVERY = 256
SUPPORTED_KINDS = {gateway_config.KIND: gateway_config.API_VERSION} | {
    kind: next(iter(versions)) for kind, versions in _SERVICE_KINDS.items()
}
"""kind -> its newest apiVersion (InferenceService also takes KFServing's serving.kubeflow.org/v1alpha2)."""
_VERSIONS = {kind: tuple(versions) for kind, versions in _SERVICE_KINDS.items()} | {
    gateway_config.KIND: (gateway_config.API_VERSION,)
}


def _supported() -> str:
    kinds = [f"{kind} ({' or '.join(_VERSIONS[kind])})" for kind in SUPPORTED_KINDS]
    kinds += [f"{kind} ({version}, skipped)" for kind, version in _SKIPPED_KINDS.items()]
    return ", ".join(kinds)


def _context(doc: RawDocument, problems: list[str], warnings: list[str], namespace: str | None = None) -> DocContext | None:
    """A context naming the document by kind/name, or None when it is not a usable manifest."""
    ctx = DocContext(doc.file, doc.index, doc.directory, problems, warnings, namespace=namespace)
    body = doc.body
    if not isinstance(body, dict):
        ctx.error("", f"must be a mapping with apiVersion and kind, got {describe(body)}")
        return None
    kind = body.get("kind")
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        ctx.name = metadata["name"]
    if kind is None:
        ctx.error("kind", f"required; supported: {_supported()}")
        return None
    if isinstance(kind, str):
        ctx.kind = kind
    if not isinstance(kind, str) or (kind not in SUPPORTED_KINDS and kind not in _SKIPPED_KINDS):
        ctx.error("kind", f"unknown kind {describe(kind)}; supported: {_supported()}")
        return None
    expected = _VERSIONS.get(kind) or (_SKIPPED_KINDS[kind],)
    version = body.get("apiVersion")
    if version is None:
        ctx.error("apiVersion", f"required, expected {' or '.join(expected)}")
        return None
    if version not in expected:
        ctx.error("apiVersion", f"must be {' or '.join(expected)} for {kind}, got {describe(version)}")
        return None
    ctx.version = str(version)
    return ctx


class _Collector:
    """What the documents read so far add up to."""

    def __init__(self, previous: Mapping[tuple[str, str], ServiceSpec] | None = None, namespace: str | None = None) -> None:
        self.previous = previous or {}
        self.namespace = namespace
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.settings: GatewaySettings | None = None
        self.settings_label = ""
        self.translated: list[Translated] = []

    def add(self, doc: RawDocument) -> None:
        if doc.body is None:
            return
        ctx = _context(doc, self.problems, self.warnings, self.namespace)
        if ctx is None or ctx.kind in _SKIPPED_KINDS or not isinstance(doc.body, dict):
            return
        try:
            if ctx.kind == gateway_config.KIND:
                self._add_settings(ctx, doc.body)
                return
            result = _SERVICE_KINDS[str(ctx.kind)][str(ctx.version)](ctx, doc.body)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # A shape no reader anticipated: report it with its place rather than as a traceback.
            ctx.error("", f"cannot read this document ({type(exc).__name__}: {exc})")
            return
        if result is not None:
            spec = result.service.digested()
            was = self.previous.get(spec.ident)
            # An unchanged service keeps the object it had: the new one is dropped at once, so a
            # reload of 10,000 services holds one new spec at a time, not 10,000 short-lived ones.
            result.service = was if was is not None and was.digest == spec.digest else spec
            self.translated.append(result)

    def _add_settings(self, ctx: DocContext, body: dict[str, object]) -> None:
        found = gateway_config.translate(ctx, body)
        if self.settings is not None:
            ctx.error("", f"only one GatewayConfig is allowed; the first is {self.settings_label}")
        else:
            self.settings, self.settings_label = found, ctx.label


def load(
    paths: Sequence[str],
    *,
    every_documents: Callable[[], None] | None = None,
    previous: Mapping[tuple[str, str], ServiceSpec] | None = None,
    namespace: str | None = None,
) -> Config:
    """Read, translate and check every document under `paths` (YAML files or folders of them).

    Raises ConfigError listing every problem found; warnings are returned in Config.warnings.
    `every_documents` is called after each PROGRESS_EVERY documents. `namespace` (`-n`) is the namespace of
    documents giving none (else "default"); a document giving another one is an error, as with `kubectl apply -n`.
    """
    if namespace is not None and not DNS_LABEL.fullmatch(namespace):
        raise ConfigError([f"namespace {namespace!r}: must be {DNS_LABEL_RULE}"])
    collector = _Collector(previous, namespace)
    files = expand_paths(paths, collector.problems)
    count = 0
    for file in files:
        syntax: list[str] = []
        for doc in read_documents(file, syntax):
            collector.add(doc)
            count += 1
            if every_documents is not None and count % PROGRESS_EVERY == 0:
                every_documents()
        collector.problems.extend(syntax)
    settings = collector.settings or GatewaySettings()
    apply_secrets_file(collector.translated, settings)
    apply_storage_limits(collector.translated, settings)
    check_duplicates(collector.translated, settings)
    check_runnable(collector.translated, settings)
    if collector.problems:
        raise ConfigError(collector.problems, collector.warnings)
    return Config(
        gateway=settings,
        services=tuple(item.service for item in collector.translated),
        warnings=tuple(collector.warnings),
        files=tuple(files),
        namespace=namespace,
    )
