"""The typed configuration every manifest kind is translated into.

Durations are seconds (float). Percentages are kept as the user wrote them (70 means 70 %).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Literal

from gateway.types import RevisionKey, RevisionName

BackendKind = Literal["local", "kubernetes", "static"]
Metric = Literal["concurrency", "rps"]
AutoscalerClass = Literal["kpa", "hpa", "fixed"]


@dataclass(frozen=True)
class AutoscalerSettings:
    """Knative's config-autoscaler, camelCase keys in ``GatewayConfig.spec.autoscaler``."""

    stable_window: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_to_zero_grace_period: float = 30.0
    scale_to_zero_pod_retention_period: float = 0.0
    scale_down_delay: float = 0.0
    target_burst_capacity: float = 211.0
    container_concurrency_target_default: float = 100.0
    target_utilization: float = 70.0
    requests_per_second_target_default: float = 200.0
    enable_scale_to_zero: bool = True
    initial_scale: int = 1
    allow_zero_initial_scale: bool = False
    tick_interval: float = 2.0


@dataclass(frozen=True)
class ActivatorSettings:
    queue_depth: int = 10_000
    request_timeout: float = 300.0
    activation_timeout: float = 120.0


@dataclass(frozen=True)
class StorageSettings:
    """GatewayConfig spec.storage: what one model download may take (None: the storage initializer's defaults,
    16 GiB and 10 minutes, 90 s under the local backend); passed to revisions fetching a model as environment."""

    max_model_bytes: int | None = None
    download_timeout: float | None = None


@dataclass(frozen=True)
class ProxySettings:
    """Limits and timeouts of the data plane (``GatewayConfig.spec.proxy``)."""

    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 100 * 1024 * 1024
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    upstream_keepalive_timeout: float = 4.0
    connect_timeout: float = 5.0
    response_start_timeout: float = 300.0  # from the end of the request body to the response head
    drain_timeout: float = 30.0
    max_response_header_bytes: int = 64 * 1024
    max_connections: int = 0  # 0: derived from the process's file descriptor limit at start
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-Proto/-Host, Forwarded, X-Real-IP are kept
    send_timeout: float = 60.0  # a client that reads nothing of its response for this long is cut off
    body_timeout: float = 60.0  # a client that sends nothing of its request body for this long gets 408
    buffer_bytes: int = 256 * 1024  # not configurable: bytes held per direction before reading pauses


@dataclass(frozen=True, slots=True)
class ModelRuntime:
    """What runs a model of a format under kubernetes, as KServe's ClusterServingRuntime says it.

    `image` None is `KubernetesSettings.model_server_image`. In `command` and `args`, `{name}` (also
    KServe's `{{.Name}}`), `{model}`, `{format}` and `{port}` are the service's name, the model's path,
    its format and the served port. `command` None runs the image's entrypoint.
    """

    name: str
    model_formats: tuple[str, ...]
    image: str | None = None
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] = ()


# The gateway's own image serves the three formats itself (deploy/Dockerfile installs their extras).
BUILTIN_RUNTIME = ModelRuntime(
    name="serving-gateway",
    model_formats=("onnx", "sklearn", "xgboost"),
    command=("gateway", "modelserver"),
    args=("--model", "{model}", "--format", "{format}", "--name", "{name}", "--port", "{port}", "--host", "0.0.0.0"),
)


@dataclass(frozen=True)
class KubernetesSettings:
    """How the kubernetes backend builds Deployments (``GatewayConfig.spec.kubernetes``)."""

    model_server_image: str = "serving-gateway:0.1.0"  # deploy/Dockerfile's image: runs `gateway modelserver`
    kunlun_resource: str = "baidu.com/xpu"  # the Kunlunxin device plugin's name; HAMi and newer plugins: kunlunxin.com/xpu
    kunlun_toleration_key: str | None = None  # None: the KunLun resource name (there is no standard XPU taint)
    image_pull_policy: str | None = None  # None: Kubernetes' default (Always for :latest, else IfNotPresent)
    # Model runtimes, tried in order for a model's format (`spec.kubernetes.runtimes`, then the built-in).
    runtimes: tuple[ModelRuntime, ...] = (BUILTIN_RUNTIME,)
    # The value of the `serving-gateway/owner` label on every Deployment this installation makes: only those
    # are deleted as orphans. Default: the GatewayConfig's metadata (namespace.name), else "serving-gateway".
    owner: str = "serving-gateway"
    connect_timeout: float = 5.0  # seconds to connect to the API server, per request
    request_timeout: float = 30.0  # seconds for the API server's answer, per request (a watch: its own, longer)

    @property
    def kunlun_taint_key(self) -> str:
        """The toleration key a KunLun revision gets."""
        return self.kunlun_toleration_key or self.kunlun_resource


@dataclass(frozen=True)
class GatewaySettings:
    domain: str = "example.com"
    listen: str = "0.0.0.0:8080"
    admin_listen: str = "127.0.0.1:9090"
    backend: BackendKind = "local"
    redis: str | None = None
    state_dir: str | None = None  # default: $XDG_STATE_HOME/serving-gateway or ~/.local/state/...
    secrets_file: str | None = None  # Kubernetes Secret manifests the local backend reads storage credentials from
    autoscaler: AutoscalerSettings = field(default_factory=AutoscalerSettings)
    activator: ActivatorSettings = field(default_factory=ActivatorSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)


@dataclass(frozen=True, slots=True)
class ScalingSpec:
    """Per-service autoscaling; ``None`` means "use the GatewayConfig autoscaler default"."""

    min_scale: int = 0
    max_scale: int = 0  # 0 = unbounded
    autoscaler_class: AutoscalerClass = "kpa"
    metric: Metric = "concurrency"
    target: float | None = None  # per-pod total value (Knative's autoscaling.knative.dev/target)
    container_concurrency: int = 0  # hard per-replica limit, 0 = unlimited
    target_utilization: float | None = None  # percent
    stable_window: float | None = None
    panic_window_percentage: float | None = None
    panic_threshold_percentage: float | None = None
    target_burst_capacity: float | None = None
    initial_scale: int | None = None
    scale_down_delay: float | None = None
    scale_to_zero_grace_period: float | None = None
    scale_to_zero_pod_retention_period: float | None = None
    activation_scale: int | None = None  # Knative's activation-scale: the least replicas a scale from zero asks for


@dataclass(frozen=True, slots=True)
class RevisionSpec:
    name: RevisionName
    tag: str | None = None  # the tag that pins it (`{tag}-{host}`, Knative-Serving-Tag); None: its name
    command: tuple[str, ...] | str | None = None  # argv list or shell string (local backend)
    endpoints: tuple[str, ...] = ()  # base URLs (static backend)
    readiness_path: str | None = None  # None: TCP connect
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    # Kubernetes backend
    image: str | None = None
    container_command: tuple[str, ...] = ()  # the container's entrypoint override (k8s `command`)
    args: tuple[str, ...] = ()  # the container's arguments (k8s `args`)
    container_port: int | None = None
    accelerator: str | None = None  # "nvidia" | "kunlun" | a resource name
    accelerator_count: int = 1
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[dict[str, object], ...] = ()
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    container_name: str | None = None  # None: the kind's default (PaddleService: runtimeVersion)
    # A pod spec the manifest gives whole (SimpleMLService `custom.spec`, InferenceService `containers`);
    # the kubernetes backend keeps it and serves containers[0].
    pod_spec: dict[str, object] | None = None
    model_path: str | None = None  # a model inside the model-server image (InferenceService, kubernetes)
    # A model to download before serving (s3://, gs://, http(s)://): the local backend's replica fetches it
    # itself (`--model URI`); the kubernetes backend adds an init container fetching it into /mnt/models.
    storage_uri: str | None = None
    storage_secret: str | None = None  # a Secret holding the credentials (kubernetes: mounted; local: spec.secretsFile)
    storage_path: str | None = None  # where the model goes in the pod (None: /mnt/models; SimpleMLService: containerPath)
    model_format: str | None = None  # onnx | sklearn | xgboost: the model at model_path (InferenceService)
    model_runtime: str | None = None  # the runtime the manifest names (`predictor.model.runtime`), None: by format
    # Variables whose value is elsewhere (InferenceService env `valueFrom`: secretKeyRef, configMapKeyRef, fieldRef),
    # (name, valueFrom) as written: the kubernetes backend passes them on; the local backend resolves a
    # secretKeyRef from spec.secretsFile when it starts a replica (the value is never kept in the spec).
    env_refs: tuple[tuple[str, dict[str, object]], ...] = ()
    service_account: str | None = None  # the pods' serviceAccountName (kubernetes; the local backend has none)


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """An InferenceService's rollout (KServe v1beta1): what its manifest asks, and once resolved against
    the stored record (gateway.rollouts), which numbered revision is rolled out and which is latest."""

    canary_percent: int | None = None  # spec.predictor.canaryTrafficPercent; None: not set (promote the latest)
    tag_routing: bool = False  # serving.kserve.io/enable-tag-routing: prev-/latest- tag hosts
    revision: str = ""  # the predictor's digest as written (gateway.rollouts.record.predictor_digest): a change is a new revision
    record: str = ""  # the stored record as JSON once resolved ("" in a translated manifest)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a document came from, for error messages."""

    file: str
    index: int  # 1-based document index in the file
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.file}: document {self.index} ({self.kind}/{self.name})"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    namespace: str
    default: RevisionSpec
    canary: RevisionSpec | None = None
    canary_percent: int = 0  # share of traffic for the canary, 0..100
    scaling: ScalingSpec = field(default_factory=ScalingSpec)
    backend: BackendKind | None = None  # None: GatewayConfig's backend
    timeout: float | None = None  # request timeout override (seconds)
    rollout: RolloutSpec | None = None  # an InferenceService's: numbered revisions (gateway.rollouts)
    source: Source | None = None
    # Of everything above but `source`: equal digests, equal services (set by `digested()`).
    digest: str = field(default="", compare=False, repr=False)

    # (namespace, name), made once: a reload that keeps this spec allocates nothing for it.
    ident: tuple[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ident", (self.namespace, self.name))

    def digested(self) -> ServiceSpec:
        """This spec with its digest filled in: reloads compare services by digest, not field by field.

        Every compared field but `source` goes in, so a field added later is covered without a change here.
        """
        what = tuple(_canonical(getattr(self, f.name)) for f in fields(self) if f.compare and f.name != "source")
        digest = hashlib.blake2b(repr(what).encode(), digest_size=16).hexdigest()
        return replace(self, digest=digest)

    def revisions(self) -> tuple[RevisionSpec, ...]:
        return (self.default,) if self.canary is None else (self.default, self.canary)

    def key(self, revision: RevisionName) -> RevisionKey:
        return RevisionKey(self.namespace, self.name, revision)

    def host(self, domain: str) -> str:
        """The host the service answers on: ``{name}.{namespace}.{domain}``."""
        return f"{self.name}.{self.namespace}.{domain}"

    def tag_host(self, tag: RevisionName, domain: str) -> str:
        """The host that pins one revision: ``{tag}-{name}.{namespace}.{domain}``."""
        return f"{tag}-{self.host(domain)}"

    def percent(self, revision: RevisionName) -> int:
        """The share of the service's traffic (0..100) the split sends to `revision`; all of it to
        default when there is no canary."""
        if self.canary is None:
            return 100 if revision == self.default.name else 0
        if revision == self.canary.name:
            return self.canary_percent
        return 100 - self.canary_percent if revision == self.default.name else 0

    def tagged(self) -> tuple[tuple[str, RevisionSpec], ...]:
        """(tag, revision) for every revision a tag host pins: none for an InferenceService without
        `serving.kserve.io/enable-tag-routing: "true"` (as KServe)."""
        if self.rollout is not None:  # tagged prev/latest once resolved (gateway.rollouts)
            return tuple((rev.tag, rev) for rev in self.revisions() if rev.tag) if self.rollout.tag_routing else ()
        return tuple((rev.tag or rev.name, rev) for rev in self.revisions())

    def claimed_tags(self) -> tuple[str, ...]:
        """The tags whose hosts this service owns whatever its revisions are now (for collision checks)."""
        if self.rollout is None:
            return ("default", "canary")
        return ("prev", "latest") if self.rollout.tag_routing else ()


def canonical(value: object) -> object:
    """`value` as a comparable, printable structure: dataclasses opened, mappings in key order."""
    return _canonical(value)


def _canonical(value: object) -> object:
    """`value` with its dataclasses opened and its mappings in key order: equal values, equal reprs."""
    if is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, tuple(_canonical(getattr(value, f.name)) for f in fields(value) if f.compare))
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((key, _canonical(item)) for key, item in value.items()), key=repr)))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_canonical(item) for item in value))
    return value


@dataclass(frozen=True)
class Config:
    gateway: GatewaySettings
    services: tuple[ServiceSpec, ...]
    warnings: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    namespace: str | None = None  # `-n NAME` it was read with: reloads read the files the same way
