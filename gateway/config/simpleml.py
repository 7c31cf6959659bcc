"""SimpleMLService (tensorstack.dev/v1beta1): a fixed number of replicas, never autoscaled.

`spec.custom.spec` is a pod spec: the kubernetes backend keeps it whole and serves its first container;
the local backend runs that container's `command + args`. `spec.tensorflow` and `spec.pytorch` become
the container command TensorStack's controller sets (TensorFlow Serving / TorchServe in the given
image): they need a container runtime, so under the local backend they validate with the same warning
as any image-only revision. `spec.service.ports` picks the served port (8080 when absent, whatever ports the container lists).
`spec.storage.s3` (`uri`, `secretName`, `containerPath`) is downloaded before the server starts: under
kubernetes by an init container into an emptyDir mounted at `containerPath` (default /var/lib/t9k/model),
with the secret mounted for it (its `.s3cfg`, or KServe-style AWS_* keys); under the local backend a
`custom` command is run through `gateway storage-initializer URI - -- COMMAND`, which fetches into the cache under
the state directory and starts the command with `MODEL_PATH` naming the model's folder (`containerPath`
is a path inside a container, not made here), the secret read from GatewayConfig `spec.secretsFile`.
`spec.storage.pvc` and `spec.scheduler` are reported as warnings: the gateway neither mounts volumes
locally nor picks schedulers.
"""

from __future__ import annotations

import copy
import sys

from gateway.config.container import read_container_port, read_containers
from gateway.config.errors import DocContext
from gateway.config.manifest import RevisionFields, Translated, open_service
from gateway.config.runnable import RevisionDraft, read_placement, read_resources
from gateway.config.scaling import ScalingDraft
from gateway.config.values import check_keys, integer, join, mapping, string
from gateway.storage import StorageError, parse

API_VERSION = "tensorstack.dev/v1beta1"
KIND = "SimpleMLService"
DEFAULT_PORT = 8080
DEFAULT_MODEL_PATH = "/var/lib/t9k/model"

_SPEC_KEYS = ("replicas", "storage", "tensorflow", "pytorch", "custom", "service", "scheduler")
_FRAMEWORK_KEYS = ("image", "resources", "modelsFlag")
_POD_KEYS = ("containers", "nodeSelector", "tolerations")


def translate(ctx: DocContext, body: dict[str, object]) -> Translated | None:
    doc = open_service(ctx, body, KIND, _SPEC_KEYS)
    if doc is None:
        return None
    spec = doc.spec
    replicas = 1 if spec.get("replicas") is None else integer(ctx, "spec.replicas", spec["replicas"], lo=1)
    model_path, storage = _storage(ctx, spec.get("storage"))
    if spec.get("scheduler") is not None:
        ctx.warn("spec.scheduler", "ignored: replicas are placed by the gateway's backend")
    translated_notes: list[tuple[str, str]] = []
    draft, fields = _runnable(ctx, spec, doc.meta.name, model_path, translated_notes)
    port = None if spec.get("service") is None else _service_port(ctx, spec["service"])
    if draft is not None:
        # TensorStack serves port 8080 unless spec.service says otherwise, whatever the container lists.
        draft.container_port = DEFAULT_PORT if port is None else port
        if port is not None and spec.get("tensorflow") is not None:  # the server listens where it is probed
            draft.args = tensorflow_args(doc.meta.name, model_path, port)
        if port is not None:
            translated_notes.append(
                (
                    "spec.service.ports",
                    "the local backend gives each replica its own port through {port} and PORT",
                )
            )
    scaling = ScalingDraft("spec.replicas")
    scaling.autoscaler_class.value = "fixed"
    if replicas is not None:  # else spec.replicas is wrong (reported) and there is no service
        scaling.min_scale.value = scaling.max_scale.value = replicas
    scaling.apply_annotations(ctx, doc.meta.annotations)
    scaling_spec = scaling.finish(ctx)
    if doc.failed() or draft is None or scaling_spec is None or replicas is None:
        return None
    draft.workdir = ctx.directory
    if storage is not None:
        with_download(draft, *storage, model_path)
    service = doc.service(draft.finish("default"), scaling_spec)
    return Translated(service, ctx, {"default": fields}, translated_notes)


def _runnable(
    ctx: DocContext, spec: dict[str, object], name: str, model_path: str, local_notes: list[tuple[str, str]]
) -> tuple[RevisionDraft | None, RevisionFields]:
    """The revision from `custom` (a pod spec) or a `tensorflow` or `pytorch` model server."""
    given = [key for key in ("custom", "tensorflow", "pytorch") if spec.get(key) is not None]
    if len(given) != 1:
        if not given:
            ctx.error("spec", "needs one of custom, tensorflow or pytorch")
        else:
            ctx.error("spec", f"give exactly one of custom, tensorflow or pytorch, got {', '.join(given)}")
        return None, RevisionFields("spec", None, None, None)
    kind = given[0]
    if kind == "custom":
        base = "spec.custom.spec.containers[0]"
        fields = RevisionFields(base, join(base, "command"), None, join(base, "image"), join(base, "resources"))
        return _custom(ctx, spec[kind], local_notes), fields
    base = join("spec", kind)
    fields = RevisionFields(base, None, None, join(base, "image"), join(base, "resources"))
    return _framework(ctx, kind, spec[kind], name, model_path), fields


def _storage(ctx: DocContext, value: object) -> tuple[str, tuple[str, str | None] | None]:
    """The model's path in the container, and (uri, secretName) when it comes from S3."""
    if value is None:
        return DEFAULT_MODEL_PATH, None
    found = mapping(ctx, "spec.storage", value)
    if found is None:
        return DEFAULT_MODEL_PATH, None
    check_keys(ctx, "spec.storage", found, ("s3", "pvc"), strict=False)
    if found.get("pvc") is not None:
        ctx.warn("spec.storage.pvc", "not applicable: the gateway does not mount volumes")
    source = found.get("s3")
    if source is None:
        pvc = found.get("pvc")
        if isinstance(pvc, dict) and isinstance(pvc.get("containerPath"), str):
            return str(pvc["containerPath"]), None
        return DEFAULT_MODEL_PATH, None
    s3 = mapping(ctx, "spec.storage.s3", source)
    if s3 is None:
        return DEFAULT_MODEL_PATH, None
    check_keys(ctx, "spec.storage.s3", s3, ("secretName", "uri", "containerPath"), strict=False)
    path = DEFAULT_MODEL_PATH
    if s3.get("containerPath") is not None:
        path = string(ctx, "spec.storage.s3.containerPath", s3["containerPath"]) or DEFAULT_MODEL_PATH
        if not path.startswith("/"):
            ctx.error("spec.storage.s3.containerPath", f"must be an absolute path in the container, got {path!r}")
    secret = None if s3.get("secretName") is None else string(ctx, "spec.storage.s3.secretName", s3["secretName"])
    return path, _s3_uri(ctx, s3.get("uri"), secret)


def _s3_uri(ctx: DocContext, value: object, secret: str | None) -> tuple[str, str | None] | None:
    if value is None:
        ctx.warn("spec.storage.s3.uri", "not given (s3://BUCKET/PREFIX): nothing is downloaded")
        return None
    uri = string(ctx, "spec.storage.s3.uri", value)
    if uri is None:
        return None
    try:
        parsed = parse(uri)
    except StorageError as exc:
        ctx.error("spec.storage.s3.uri", str(exc))
        return None
    if parsed.scheme != "s3":
        ctx.error("spec.storage.s3.uri", f"must be an s3:// URI, got {parsed.shown!r}")
        return None
    return uri, secret


def with_download(draft: RevisionDraft, uri: str, secret: str | None, container_path: str) -> None:
    """The revision fetches `uri` before its server starts: kubernetes through an init container, the
    local backend by running its command through `gateway storage-initializer URI - -- COMMAND`."""
    draft.storage_uri, draft.storage_secret, draft.storage_path = uri, secret, container_path
    if draft.command is None:
        return
    fetch: tuple[str, ...] = (sys.executable, "-m", "gateway", "storage-initializer")
    if secret is not None:  # options first: argparse takes no option between its positionals
        fetch += ("--secret", secret)
    command = ("/bin/sh", "-c", draft.command) if isinstance(draft.command, str) else draft.command
    draft.command = (*fetch, uri, "-", "--", *command)


def _custom(ctx: DocContext, value: object, local_notes: list[tuple[str, str]]) -> RevisionDraft | None:
    custom = mapping(ctx, "spec.custom", value)
    if custom is None:
        return None
    check_keys(ctx, "spec.custom", custom, ("spec",), strict=False)
    if custom.get("spec") is None:
        ctx.error("spec.custom.spec", "required (a pod spec with containers)")
        return None
    pod = mapping(ctx, "spec.custom.spec", custom["spec"])
    if pod is None:
        return None
    for key in pod:
        if key not in _POD_KEYS:
            local_notes.append((join("spec.custom.spec", key), "pod setting the local backend does not use, ignored"))
    if pod.get("containers") is None:
        ctx.error("spec.custom.spec.containers", "required (at least one container)")
        return None
    draft = read_containers(ctx, "spec.custom.spec.containers", pod["containers"], local_notes)
    if draft is None:
        return None
    read_placement(ctx, "spec.custom.spec", pod, draft)
    draft.pod_spec = copy.deepcopy(pod)
    return draft


def _framework(ctx: DocContext, kind: str, value: object, name: str, model_path: str) -> RevisionDraft | None:
    path = join("spec", kind)
    found = mapping(ctx, path, value)
    if found is None:
        return None
    check_keys(ctx, path, found, _FRAMEWORK_KEYS, strict=False)
    if found.get("image") is None:
        ctx.error(join(path, "image"), "required")
        return None
    image = string(ctx, join(path, "image"), found["image"])
    resources = read_resources(ctx, join(path, "resources"), found.get("resources"))
    if kind == "tensorflow":
        command: tuple[str, ...] = ("/usr/bin/tensorflow_model_server",)
        args = tensorflow_args(name, model_path, DEFAULT_PORT)
    else:
        flag = found.get("modelsFlag")
        models = string(ctx, join(path, "modelsFlag"), flag) if flag is not None else None
        command = ("torchserve",)
        args = ("--start", f"--model-store={model_path}") + (("--models", models) if models else ())
    if image is None or resources is None:
        return None
    return RevisionDraft(image=image, container_command=command, args=args, resources=resources, container_name=kind)


def tensorflow_args(name: str, model_path: str, port: int) -> tuple[str, ...]:
    """TensorFlow Serving's flags: REST on the served `port`, gRPC on 9090 (9091 when REST takes 9090)."""
    grpc = 9091 if port == 9090 else 9090
    return (f"--port={grpc}", f"--rest_api_port={port}", f"--model_name={name}", f"--model_base_path={model_path}")


def _service_port(ctx: DocContext, value: object) -> int | None:
    service = mapping(ctx, "spec.service", value)
    if service is None:
        return None
    check_keys(ctx, "spec.service", service, ("ports",), strict=False)
    if service.get("ports") is None:
        return None
    return read_container_port(ctx, "spec.service.ports", service["ports"])
