"""KFServing's InferenceService (serving.kubeflow.org/v1alpha2): `default` and `canary` endpoints.

Before KServe's v1beta1 tracked rollouts itself, KFServing's v1alpha2 named two endpoints in one
manifest, each with a predictor, and `canaryTrafficPercent` sent that share of the traffic to the
canary: the same default/canary split as a PaddleService. Each predictor is read as a v1beta1
predictor is (gateway/config/kserve.py), after two spellings of v1alpha2 are put in its terms:

- `custom: {container: {...}}` (one container) is `containers: [{...}]`;
- `parallelism` (how many requests a replica serves at once) is `containerConcurrency`.

So a predictor's `onnx`, `sklearn` or `xgboost` key with a `storageUri` (local or remote) runs the built-in model
server with that format, as in v1beta1; the other framework keys are refused there, naming these.

The service's scaling (minReplicas, maxReplicas, parallelism, scaleTarget...) comes from the default
predictor; the gateway scales both revisions with one set of settings, so a canary's own are warned
about and not used. Transformers and explainers are warned about and not run.
"""

from __future__ import annotations

from gateway.config.errors import DocContext
from gateway.config.kserve import KIND, BackendNotes, predictor_scaling, runnable
from gateway.config.manifest import RevisionFields, Translated, open_service
from gateway.config.model import RevisionSpec
from gateway.config.runnable import read_placement
from gateway.config.scaling import ScalingDraft
from gateway.config.values import check_keys, integer, join, mapping
from gateway.types import RevisionName

API_VERSION = "serving.kubeflow.org/v1alpha2"

_ENDPOINT_KEYS = ("predictor", "transformer", "explainer")
_PREDICTOR_KEYS = (
    "custom",
    "onnx",
    "tensorflow",
    "tensorrt",
    "triton",
    "xgboost",
    "sklearn",
    "pytorch",
    "pmml",
    "lightgbm",
    "minReplicas",
    "maxReplicas",
    "parallelism",
    "serviceAccountName",
    "logger",
    "batcher",
)
_SCALING_KEYS = ("minReplicas", "maxReplicas", "parallelism")


def translate(ctx: DocContext, body: dict[str, object]) -> Translated | None:
    doc = open_service(ctx, body, KIND, ("default", "canary", "canaryTrafficPercent"))
    if doc is None:
        return None
    spec = doc.spec
    notes = BackendNotes()
    fields: dict[RevisionName, RevisionFields] = {}
    revisions: dict[RevisionName, RevisionSpec] = {}
    predictors: dict[RevisionName, dict[str, object]] = {}
    for name in ("default", "canary"):
        if spec.get(name) is None:
            if name == "default":
                ctx.error("spec.default", "required")
            continue
        found = _endpoint(ctx, join("spec", name), spec[name], doc.meta.name, notes)
        if found is not None:
            predictors[name], revisions[name], fields[name] = found
    percent = _canary_percent(ctx, spec.get("canaryTrafficPercent"), spec.get("canary") is not None)
    scaling = ScalingDraft("spec.default.predictor")
    scaling.min_scale.value = 1
    if "default" in predictors:
        predictor_scaling(ctx, "spec.default.predictor", predictors["default"], scaling)
    if "canary" in predictors and any(key in predictors["canary"] for key in _SCALING_KEYS):
        ctx.warn("spec.canary.predictor", "scaling settings are taken from spec.default.predictor for both endpoints")
    scaling.apply_annotations(ctx, doc.meta.annotations)
    scaling_spec = scaling.finish(ctx)
    if doc.failed() or scaling_spec is None or "default" not in revisions:
        return None
    service = doc.service(revisions["default"], scaling_spec, canary=revisions.get("canary"), canary_percent=percent)
    return Translated(service, ctx, fields, notes.local_notes, notes.local_errors, notes.kubernetes_errors)


def _endpoint(
    ctx: DocContext, path: str, value: object, name: str, notes: BackendNotes
) -> tuple[dict[str, object], RevisionSpec, RevisionFields] | None:
    endpoint = mapping(ctx, path, value)
    if endpoint is None:
        return None
    check_keys(ctx, path, endpoint, _ENDPOINT_KEYS, strict=False)
    for key in ("transformer", "explainer"):
        if endpoint.get(key) is not None:
            ctx.warn(join(path, key), "not supported by the gateway, ignored; only the predictor is served")
    base = join(path, "predictor")
    if endpoint.get("predictor") is None:
        ctx.error(base, "required")
        return None
    raw = mapping(ctx, base, endpoint["predictor"])
    if raw is None:
        return None
    check_keys(ctx, base, raw, _PREDICTOR_KEYS, strict=False)
    for key in ("logger", "batcher"):
        if raw.get(key) is not None:
            ctx.warn(join(base, key), "not supported by the gateway, ignored")
    predictor = _in_v1beta1_terms(ctx, base, raw)
    if predictor is None:
        return None
    draft, fields = runnable(ctx, base, predictor, name, notes)
    if draft is None or fields is None:
        return None
    read_placement(ctx, base, predictor, draft)
    return predictor, draft.finish("default" if path == "spec.default" else "canary"), fields


def _in_v1beta1_terms(ctx: DocContext, base: str, raw: dict[str, object]) -> dict[str, object] | None:
    predictor = {key: value for key, value in raw.items() if key not in ("custom", "parallelism")}
    if raw.get("custom") is not None:
        custom = mapping(ctx, join(base, "custom"), raw["custom"])
        if custom is None:
            return None
        check_keys(ctx, join(base, "custom"), custom, ("container",), strict=False)
        if custom.get("container") is None:
            ctx.error(join(join(base, "custom"), "container"), "required (the predictor's container)")
            return None
        predictor["containers"] = [custom["container"]]
    if raw.get("parallelism") is not None:
        parallelism = integer(ctx, join(base, "parallelism"), raw["parallelism"], lo=0)
        if parallelism is None:
            return None
        predictor["containerConcurrency"] = parallelism
    return predictor


def _canary_percent(ctx: DocContext, value: object, has_canary: bool) -> int:
    if value is None:
        return 0
    percent = integer(ctx, "spec.canaryTrafficPercent", value, lo=0, hi=100)
    if percent and not has_canary:
        ctx.error("spec.canaryTrafficPercent", f"given ({percent}) without spec.canary")
    return percent if percent is not None and has_canary else 0
