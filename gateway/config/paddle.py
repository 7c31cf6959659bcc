"""PaddleService (elasticserving.paddlepaddle.org/v1): ElasticServing's schema and defaults.

ElasticServing's keys keep their meaning: a revision's `containerImage:tag` runs `/bin/bash -c <arg>`
on the kubernetes backend; `service.target` is both the per-replica autoscaling target and the hard
container concurrency (0: unlimited, target left to the GatewayConfig default); the defaults are
ElasticServing's (canary 50 %, minScale 0, maxScale 0, kpa, concurrency, window 60s, panic window
10 %, panic threshold 200 %, target 100, utilization 70 %, resources cpu 0.2 / memory 512Mi).

The gateway's own revision keys (`command`, `endpoints`, `readinessPath`, `env`, `workdir`, `image`,
`accelerator`, `acceleratorCount`, `nodeSelector`, `tolerations`) and spec keys (`backend`,
`timeout`) sit next to them. A revision with only a container image validates under the local
backend with a warning (see `gateway.config.checks`), so ElasticServing's own samples load unchanged.
"""

from __future__ import annotations

from typing import Any, cast

from gateway.config.errors import DocContext
from gateway.config.gateway_config import BACKENDS
from gateway.config.manifest import RevisionFields, Translated, open_service
from gateway.config.model import BackendKind, RevisionSpec, ScalingSpec
from gateway.config.runnable import (
    GATEWAY_REVISION_KEYS,
    RevisionDraft,
    read_gateway_keys,
    read_port,
    read_resources,
)
from gateway.config.scaling import (
    ScalingDraft,
    read_class,
    read_metric,
    read_panic_threshold_percentage,
    read_panic_window_percentage,
    read_scale,
    read_target_utilization,
    read_window,
)
from gateway.config.values import (
    DNS_LABEL,
    DNS_LABEL_RULE,
    check_keys,
    choice,
    duration,
    integer,
    join,
    mapping,
    string,
)
from gateway.types import RevisionName

API_VERSION = "elasticserving.paddlepaddle.org/v1"
KIND = "PaddleService"

DEFAULT_RESOURCES = {"cpu": "0.2", "memory": "512Mi"}
DEFAULT_RUNTIME_VERSION = "paddleserving"  # the container's name when runtimeVersion is absent (ElasticServing's samples)
DEFAULT_CANARY_PERCENT = 50
SHELL = ("/bin/bash", "-c")

_SPEC_KEYS = (
    "default",
    "canary",
    "canaryTrafficPercent",
    "service",
    "resources",
    "runtimeVersion",
    "backend",
    "timeout",
)
_IGNORED_SPEC_KEYS = ("volumes", "volumeMounts")
_REVISION_KEYS = ("containerImage", "tag", "port", "arg") + GATEWAY_REVISION_KEYS
_SERVICE_READERS: dict[str, tuple[str, Any]] = {
    "minScale": ("min_scale", read_scale),
    "maxScale": ("max_scale", read_scale),
    "autoscaler": ("autoscaler_class", read_class),
    "metric": ("metric", read_metric),
    "window": ("stable_window", read_window),
    "panicWindow": ("panic_window_percentage", read_panic_window_percentage),
    "panicThreshold": ("panic_threshold_percentage", read_panic_threshold_percentage),
    "targetUtilization": ("target_utilization", read_target_utilization),
}


_SERVICE_KEYS = (*_SERVICE_READERS, "target")
# Where a key belongs when it is written at the wrong level of the document.
_AT_SPEC = {k: f"spec.{k}" for k in _SPEC_KEYS}
_AT_SERVICE = {k: f"spec.service.{k}" for k in _SERVICE_KEYS}
_AT_REVISION = {k: f"spec.default.{k}" for k in _REVISION_KEYS}


def translate(ctx: DocContext, body: dict[str, object]) -> Translated | None:
    doc = open_service(ctx, body, KIND, _SPEC_KEYS + _IGNORED_SPEC_KEYS, elsewhere=_AT_SERVICE | _AT_REVISION)
    if doc is None:
        return None
    spec = doc.spec
    for key in _IGNORED_SPEC_KEYS:
        if key in spec:
            ctx.warn(join("spec", key), "not supported by the gateway, ignored")
    resources = read_resources(ctx, "spec.resources", spec.get("resources"), DEFAULT_RESOURCES) or {}
    kubernetes_errors: list[tuple[str, str]] = []
    container = _runtime_version(ctx, spec.get("runtimeVersion"), kubernetes_errors)
    default = None
    if spec.get("default") is None:
        ctx.error("spec.default", "required")
    else:
        default = _revision(ctx, "spec.default", spec["default"], "default", (resources, container))
    has_canary = spec.get("canary") is not None
    canary = _revision(ctx, "spec.canary", spec["canary"], "canary", (resources, container)) if has_canary else None
    percent = _canary_percent(ctx, spec.get("canaryTrafficPercent"), has_canary)
    scaling = _scaling(ctx, spec.get("service"), doc.meta.annotations)
    backend = choice(ctx, "spec.backend", spec["backend"], BACKENDS) if spec.get("backend") is not None else None
    timeout = None
    if spec.get("timeout") is not None:
        timeout = duration(ctx, "spec.timeout", spec["timeout"], ok=lambda v: v > 0, expect="> 0")
    if doc.failed() or default is None or scaling is None:
        return None
    service = doc.service(
        default,
        scaling,
        canary=canary,
        canary_percent=percent,
        backend=cast("BackendKind | None", backend),
        timeout=timeout,
    )
    fields: dict[RevisionName, RevisionFields] = {"default": _fields("spec.default"), "canary": _fields("spec.canary")}
    return Translated(service, ctx, fields, kubernetes_errors=kubernetes_errors)


def _runtime_version(ctx: DocContext, value: object, kubernetes_errors: list[tuple[str, str]]) -> str:
    """The container's name (ElasticServing names it after runtimeVersion); Kubernetes wants a DNS label."""
    if value is None:
        return DEFAULT_RUNTIME_VERSION
    text = string(ctx, "spec.runtimeVersion", value, scalars=True)
    if text is None:
        return DEFAULT_RUNTIME_VERSION
    if len(text) > 63 or not DNS_LABEL.fullmatch(text):
        kubernetes_errors.append(("spec.runtimeVersion", f"names the container, so it must be {DNS_LABEL_RULE}, got {text!r}"))
    return text


def _fields(base: str) -> RevisionFields:
    return RevisionFields(base, join(base, "command"), join(base, "endpoints"), join(base, "containerImage"), "spec.resources")


def _revision(
    ctx: DocContext,
    path: str,
    value: object,
    name: RevisionName,
    shared: tuple[dict[str, dict[str, str]], str],
) -> RevisionSpec | None:
    """One revision; `shared` is what the spec gives both revisions: resources and the container's name."""
    resources, container = shared
    found = mapping(ctx, path, value)
    if found is None:
        return None
    errors = ctx.error_count
    check_keys(ctx, path, found, _REVISION_KEYS, strict=False, elsewhere=_AT_SERVICE | _AT_SPEC)
    draft = read_gateway_keys(ctx, path, found)
    _container_image(ctx, path, found, draft)
    if found.get("port") is not None:
        draft.container_port = read_port(ctx, join(path, "port"), found["port"])
    if found.get("arg") is not None:
        arg = string(ctx, join(path, "arg"), found["arg"])
        draft.container_command = SHELL
        draft.args = None if arg is None else (arg,)
    if draft.workdir is None:
        draft.workdir = ctx.directory
    if ctx.error_count > errors:
        return None
    draft.resources = {section: dict(amounts) for section, amounts in resources.items()}
    draft.container_name = container
    return draft.finish(name)


def _container_image(ctx: DocContext, path: str, found: dict[str, object], draft: RevisionDraft) -> None:
    """ElasticServing's `containerImage` and `tag`, as the revision's image."""
    if found.get("containerImage") is not None:
        repository = string(ctx, join(path, "containerImage"), found["containerImage"])
        tag = string(ctx, join(path, "tag"), found["tag"], scalars=True) if found.get("tag") is not None else None
        if "image" in found:
            ctx.error(join(path, "image"), "give either containerImage (with tag) or image, not both")
        if repository is not None:
            draft.image = f"{repository}:{tag}" if tag else repository
    elif found.get("tag") is not None:
        ctx.error(join(path, "tag"), "given without containerImage")


def _canary_percent(ctx: DocContext, value: object, has_canary: bool) -> int:
    if value is None:
        return DEFAULT_CANARY_PERCENT if has_canary else 0
    percent = integer(ctx, "spec.canaryTrafficPercent", value, lo=0, hi=100)
    if percent and not has_canary:
        ctx.error("spec.canaryTrafficPercent", f"given ({percent}) without spec.canary")
    return percent if percent is not None and has_canary else 0


def _scaling(ctx: DocContext, value: object, annotations: dict[str, str]) -> ScalingSpec | None:
    draft = ScalingDraft(
        "spec.service",
        min_scale=0,
        max_scale=0,
        autoscaler_class="kpa",
        metric="concurrency",
        target=100.0,
        container_concurrency=100,
        # window 60s, panicWindow 10, panicThreshold 200, targetUtilization 70 are ElasticServing's
        # defaults and Knative's too: left unset here they come from GatewayConfig.spec.autoscaler,
        # whose defaults are those same values, so a gateway-wide setting also reaches them.
    )
    found = None if value is None else mapping(ctx, "spec.service", value)
    if found is not None:
        check_keys(ctx, "spec.service", found, _SERVICE_KEYS, strict=False, elsewhere=_AT_REVISION | _AT_SPEC)
        for key, (name, reader) in _SERVICE_READERS.items():
            if found.get(key) is not None:
                path = join("spec.service", key)
                draft.set(name, reader(ctx, path, found[key]), path)
        if found.get("target") is not None:
            target = integer(ctx, "spec.service.target", found["target"], lo=0)
            if target == 0:
                draft.values.update(target=None, container_concurrency=0)
            elif target is not None:
                draft.set("target", float(target), "spec.service.target")
                draft.set("container_concurrency", target, "spec.service.target")
    draft.apply_annotations(ctx, annotations)
    if draft.values.get("metric") == "rps" and "target" not in draft.paths:
        # ElasticServing's default target (100) is a concurrency; on request rate Knative's
        # requests-per-second default (200) applies, and nothing caps concurrency.
        draft.values.update(target=None, container_concurrency=0)
    return draft.finish(ctx)
