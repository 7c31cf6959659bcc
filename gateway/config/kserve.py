"""InferenceService (serving.kserve.io/v1beta1): a model served by the built-in model server, or containers.

`spec.predictor.model` with `modelFormat.name: onnx | sklearn | xgboost` (any case; or the older
`spec.predictor.onnx`, `.sklearn`, `.xgboost`) and a `storageUri` is served by
`gateway modelserver --format FORMAT`. A remote `storageUri` (`s3://`, `gs://`, `http(s)://`, see
gateway/storage) is downloaded before the replica is ready: by the replica itself into the gateway's
state directory under the local backend (`--model URI`), by an init container into `/mnt/models` under
kubernetes; only its form is checked here (no network at config time). A local one (`file:///abs`,
`file://relative`, a plain path) is read in place: under the local backend the path is a file on this
machine, relative to the config file, or a folder holding `model.EXT` or exactly one file of the format
(gateway/modelserver/formats.py), and the command is
`python -m gateway modelserver --model ABS --format FORMAT --name NAME --port {port}`; a format whose
extra is not installed here is a warning (its replicas fail to start saying what to install). Under the
kubernetes backend the format picks a runtime from `GatewayConfig.spec.kubernetes.runtimes` (or the one
`model.runtime` names), by default the model-server image (`modelServerImage`, which deploy/Dockerfile
builds with config/ at /app/config), and a local path names the model inside it, so it must be absolute there.
A predictor may instead give `containers`: the kubernetes backend runs them as given; the local
backend runs the first one's command. Other formats (tensorflow, pytorch, triton...) are errors: nothing
here runs other framework servers.

KServe's `canaryTrafficPercent` splits traffic between the previously rolled-out revision and the latest
one: a translated InferenceService carries one revision named `predictor` and a `RolloutSpec`; when it
is applied, gateway.rollouts numbers its revisions as KServe does (`{name}-predictor-00001`, ...) against
the record it keeps. Transformers and explainers are reported as warnings and not run.
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.config.container import read_containers
from gateway.config.env_refs import read_env_keeping_refs, read_env_refs
from gateway.config.errors import DocContext
from gateway.config.manifest import RevisionFields, Translated, open_service
from gateway.config.model import RolloutSpec
from gateway.config.runnable import RevisionDraft, read_given, read_placement, read_resources
from gateway.config.scaling import (
    ScalingDraft,
    Setting,
    read_container_concurrency,
    read_scale,
    read_target,
    setting,
)
from gateway.config.values import (
    check_keys,
    choice,
    describe,
    integer,
    join,
    mapping,
    string,
)
from gateway.modelserver.formats import NAMES, SERVED, locate, misnamed, missing
from gateway.rollouts.digest import predictor_digest
from gateway.storage import KUBERNETES_MODEL_DIR, StorageError, is_remote, missing_library, parse

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
READINESS_PATH = "/v2/health/ready"
CONTAINER_NAME = "kserve-container"  # KServe's name for a predictor's container that gives none
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
PREDICTOR = "predictor"  # the translated revision's name until gateway.rollouts numbers it (predictor-00001)

# The formats the built-in model server serves, each also an older predictor key (`predictor.sklearn:`).
SERVED_FORMATS = NAMES
_OTHER_FORMATS = (
    "lightgbm",
    "tensorflow",
    "pytorch",
    "triton",
    "pmml",
    "paddle",
    "huggingface",
)
_PREDICTOR_KEYS = (
    "model",
    *SERVED_FORMATS,
    "containers",
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "nodeSelector",
    "tolerations",
    "serviceAccountName",
    *_OTHER_FORMATS,
)
_MODEL_KEYS = (
    "modelFormat",
    "storageUri",
    "runtime",
    "protocolVersion",
    "resources",
    "env",
    "name",
    "runtimeVersion",
)
_PREDICTOR_SCALING: dict[str, Setting[Any]] = {
    "minReplicas": setting(read_scale, lambda d: d.min_scale),
    "maxReplicas": setting(read_scale, lambda d: d.max_scale),
    "scaleTarget": setting(read_target, lambda d: d.target),
    "containerConcurrency": setting(read_container_concurrency, lambda d: d.container_concurrency),
}
_UNSUPPORTED_HINT = f"only {SERVED} models are served by the built-in model server (or give containers[0] with a command)"


@dataclass
class BackendNotes:
    """What holds for one backend only, reported by `gateway.config.checks` when it runs the service."""

    local_notes: list[tuple[str, str]] = field(default_factory=list)
    local_errors: list[tuple[str, str]] = field(default_factory=list)
    kubernetes_errors: list[tuple[str, str]] = field(default_factory=list)


def translate(ctx: DocContext, body: dict[str, object]) -> Translated | None:
    doc = open_service(ctx, body, KIND, ("predictor", "transformer", "explainer", "canaryTrafficPercent"))
    if doc is None:
        return None
    if "canaryTrafficPercent" in doc.spec:  # KFServing's level: ignoring it would roll out fully
        ctx.error(
            "spec.canaryTrafficPercent",
            f"belongs in spec.predictor ({API_VERSION}); did you mean spec.predictor.canaryTrafficPercent?",
        )
    predictor = _predictor(ctx, doc.spec)
    if predictor is None:
        return None
    notes = BackendNotes()
    draft, fields = runnable(ctx, "spec.predictor", predictor, doc.meta.name, notes)
    if draft is not None:
        read_placement(ctx, "spec.predictor", predictor, draft)
    scaling = ScalingDraft("spec.predictor")
    scaling.min_scale.value = 1
    predictor_scaling(ctx, "spec.predictor", predictor, scaling)
    scaling.apply_annotations(ctx, doc.meta.annotations)
    scaling_spec = scaling.finish(ctx)
    timeout = None
    if predictor.get("timeout") is not None:
        timeout = integer(ctx, "spec.predictor.timeout", predictor["timeout"], lo=1)
    percent = _canary_percent(ctx, predictor.get("canaryTrafficPercent"))
    tag_routing = _tag_routing(ctx, doc.meta.annotations.get(TAG_ROUTING_ANNOTATION))
    if doc.failed() or draft is None or scaling_spec is None or fields is None:
        return None
    service = doc.service(draft.finish(PREDICTOR), scaling_spec, timeout=None if timeout is None else float(timeout))
    service = replace(service, rollout=RolloutSpec(percent, tag_routing, predictor_digest(predictor)))
    return Translated(service, ctx, {PREDICTOR: fields}, notes.local_notes, notes.local_errors, notes.kubernetes_errors)


def _predictor(ctx: DocContext, spec: dict[str, object]) -> dict[str, object] | None:
    for key in ("transformer", "explainer"):
        if spec.get(key) is not None:
            ctx.warn(join("spec", key), "not supported by the gateway, ignored; only the predictor is served")
    if spec.get("predictor") is None:
        ctx.error("spec.predictor", "required")
        return None
    predictor = mapping(ctx, "spec.predictor", spec["predictor"])
    if predictor is None:
        return None
    check_keys(ctx, "spec.predictor", predictor, _PREDICTOR_KEYS, strict=False)
    return predictor


def _canary_percent(ctx: DocContext, value: object) -> int | None:
    """canaryTrafficPercent, 0..100; None when not set. Which revisions it splits is decided when the
    service is applied (gateway.rollouts), against the rollout recorded before."""
    if value is None:
        return None
    return integer(ctx, "spec.predictor.canaryTrafficPercent", value, lo=0, hi=100)


def _tag_routing(ctx: DocContext, value: str | None) -> bool:
    if value is None:
        return False
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    ctx.error(join("metadata.annotations", TAG_ROUTING_ANNOTATION), f'must be "true" or "false", got {value!r}')
    return False


def runnable(
    ctx: DocContext, base: str, predictor: dict[str, object], name: str, notes: BackendNotes
) -> tuple[RevisionDraft | None, RevisionFields | None]:
    """The revision a predictor at `base` runs: a model served by the built-in model server, or its containers."""
    given = [key for key in ("model", *SERVED_FORMATS, *_OTHER_FORMATS, "containers") if predictor.get(key) is not None]
    if not given:
        ctx.error(base, f"needs model (with modelFormat and storageUri), one of {SERVED}, or containers")
        return None, None
    if len(given) > 1:
        ctx.error(base, f"give exactly one of model, {SERVED} or containers, got {', '.join(given)}")
        return None, None
    key = given[0]
    path = join(base, key)
    if key == "containers":
        fields = RevisionFields(base, f"{path}[0].command", None, f"{path}[0].image", f"{path}[0].resources")
        draft = read_containers(ctx, path, predictor[key], notes.local_notes)
        if draft is not None:
            draft.pod_spec = {"containers": copy.deepcopy(predictor[key])}
            draft.container_name = CONTAINER_NAME
        return draft, fields
    if key in _OTHER_FORMATS:
        ctx.error(path, f"{_UNSUPPORTED_HINT}, got a {key} predictor")
        return None, None
    model = _model_spec(ctx, path, key, predictor[key])
    if model is None:
        return None, None
    found, fmt = model
    fields = RevisionFields(base, None, None, None, join(path, "resources"))
    draft = _model_server(ctx, path, found, name, notes, fmt)
    if draft is not None:
        draft.model_format = fmt
        draft.env_refs = read_given(ctx, path, found, "env", read_env_refs)
        draft.model_runtime = _runtime(ctx, join(path, "runtime"), found.get("runtime"), notes)
    return draft, fields


def _model_spec(ctx: DocContext, path: str, key: str, value: object) -> tuple[dict[str, object], str] | None:
    """`model` (or an older format key: `onnx`, `sklearn`, `xgboost`) of a predictor when it names a model
    of a served format with a storageUri, and that format."""
    found = mapping(ctx, path, value)
    if found is None:
        return None
    check_keys(ctx, path, found, _MODEL_KEYS, strict=False)
    fmt = _format_name(ctx, join(path, "modelFormat"), found.get("modelFormat")) if key == "model" else key
    if fmt is None:
        return None
    if found.get("protocolVersion") is not None:
        choice(ctx, join(path, "protocolVersion"), found["protocolVersion"], ("v1", "v2", "grpc-v2"))
    if found.get("storageUri") is None:
        ctx.error(join(path, "storageUri"), f"required (a local {fmt} model file, a folder holding one, or a storage URI)")
        return None
    return found, fmt


def _runtime(ctx: DocContext, path: str, value: object, notes: BackendNotes) -> str | None:
    """The runtime a model names: it picks the image under kubernetes; the local backend runs the built-in server."""
    if value is None:
        return None
    runtime = string(ctx, path, value)
    if runtime is not None:
        notes.local_notes.append((path, "used by the kubernetes backend only; the local backend runs the built-in model server"))
    return runtime


def _model_server(
    ctx: DocContext, path: str, found: dict[str, object], name: str, notes: BackendNotes, fmt: str = "onnx"
) -> RevisionDraft | None:
    """The built-in model server serving the model a storageUri names (here, or inside its image)."""
    uri_path = join(path, "storageUri")
    written = model_file_path(ctx, uri_path, found["storageUri"])
    resources = read_resources(ctx, join(path, "resources"), found.get("resources"))
    env = read_given(ctx, path, found, "env", read_env_keeping_refs)
    if written is None:
        return None
    if is_remote(written):
        return _downloaded_model(ctx, uri_path, written, name, resources, env, fmt, notes)
    model, problem = locate_model(ctx.directory, written, fmt)
    if problem is not None:
        notes.local_errors.append((uri_path, problem))
    elif (absent := missing(fmt)) is not None:
        notes.local_notes.append((uri_path, f"{absent}; until then its replicas fail to start"))
    if not os.path.isabs(written):
        notes.kubernetes_errors.append(
            (
                uri_path,
                "under the kubernetes backend the model is read inside the model-server image, so the path must be "
                f"absolute there (deploy/Dockerfile puts config/ at /app/config), got {written!r}",
            )
        )
    command = model_server_command(model, fmt, name)
    return RevisionDraft(
        command=command,
        readiness_path=READINESS_PATH,
        workdir=ctx.directory,
        resources=resources,
        env=env,
        model_path=written,
    )


def model_server_command(model: str, fmt: str, name: str) -> tuple[str, ...]:
    """The local replica's command: the built-in model server on `model` (a path or a storage URI)."""
    return (sys.executable, "-m", "gateway", "modelserver", "--model", model, "--format", fmt, "--name", name, "--port", "{port}")


def _downloaded_model(
    ctx: DocContext,
    uri_path: str,
    uri: str,
    name: str,
    resources: dict[str, dict[str, str]] | None,
    env: tuple[tuple[str, str], ...] | None,
    fmt: str,
    notes: BackendNotes,
) -> RevisionDraft:
    """A model the replica downloads: the local backend's replica fetches `uri` itself before it is ready
    (into `$SERVING_GATEWAY_STATE_DIR/models`); under kubernetes an init container fetches it into
    /mnt/models, which the model server reads."""
    for absent in (missing(fmt), missing_library(parse(uri).scheme)):
        if absent is not None:
            notes.local_notes.append((uri_path, f"{absent}; until then its replicas fail to start"))
    command = model_server_command(uri, fmt, name)
    return RevisionDraft(
        command=command,
        readiness_path=READINESS_PATH,
        workdir=ctx.directory,
        resources=resources,
        env=env,
        model_path=KUBERNETES_MODEL_DIR,
        storage_uri=uri,
    )


def _format_name(ctx: DocContext, path: str, value: object) -> str | None:
    """`modelFormat.name`, lowercased (KServe matches it so), when the built-in model server serves it."""
    if value is None:
        ctx.error(path, f"required (name: one of {SERVED})")
        return None
    found = mapping(ctx, path, value)
    if found is None:
        return None
    fmt = found.get("name")
    if isinstance(fmt, str) and fmt.lower() in SERVED_FORMATS:
        return fmt.lower()
    ctx.error(join(path, "name"), f"{_UNSUPPORTED_HINT}, got {describe(fmt)}")
    return None


def model_file_path(ctx: DocContext, path: str, value: object) -> str | None:
    """The storageUri as written, checked for its form only: a remote URI (s3, gs, http, https) whole,
    a local one as a file path (`file://` removed). An unknown scheme or a malformed URI is an error."""
    uri = string(ctx, path, value)
    if uri is None:
        return None
    try:
        parsed = parse(uri)
    except StorageError as exc:
        ctx.error(path, str(exc))
        return None
    if parsed.remote:
        return uri
    if not parsed.path.strip():
        ctx.error(path, "names no file")
        return None
    return parsed.path


def locate_model(directory: str, written: str, fmt: str = "onnx") -> tuple[str, str | None]:
    """The absolute path of the model file of format `fmt` that `written` names on this machine (relative
    to `directory`): a file, or a folder holding one; and what is wrong with it, if anything."""
    candidate = os.path.normpath(os.path.join(directory, os.path.expanduser(written)))
    found, _, problem = locate(candidate, fmt)
    if problem is None and not os.path.isdir(candidate):
        problem = misnamed(candidate, fmt)
    if problem is None and not os.path.isfile(found):
        problem = f"model file {found} is not a file"
    return found, problem


def predictor_scaling(ctx: DocContext, base: str, predictor: dict[str, object], draft: ScalingDraft) -> None:
    for key, found_setting in _PREDICTOR_SCALING.items():
        if predictor.get(key) is not None:
            found_setting.apply(ctx, join(base, key), predictor[key], draft)
    metric = predictor.get("scaleMetric")
    if metric is not None:
        path = join(base, "scaleMetric")
        found = choice(ctx, path, metric, ("concurrency", "rps", "cpu", "memory"))
        if found in ("cpu", "memory"):
            ctx.warn(path, f"{found} is not measured by the gateway; scaling on concurrency")
        elif found is not None:
            draft.metric.give(found, path)
