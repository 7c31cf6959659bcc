"""One apps/v1 Deployment per revision, as a plain dict: what the kubernetes backend creates and updates.

Pure: a service, one of its revisions and the gateway's settings (`GatewayConfig.spec.kubernetes`)
in, a Deployment out; no API calls, no clock. Every Deployment it builds is `{service}-{revision}` in the service's namespace,
labelled with the revision it runs and `app.kubernetes.io/managed-by: serving-gateway` (on the
Deployment and its pods) and, on the Deployment only, with the installation that made it
(`serving-gateway/owner`), and selects its pods by the revision's labels only.

What runs in the pod, by what the manifest gave:
- a pod spec (SimpleMLService `custom.spec`, InferenceService `containers`): kept whole; its first
  container is the one served: it gets the served port (listed first), a readiness probe when it has
  none, and a name when it has none;
- a model (InferenceService: onnx, sklearn, xgboost): what the runtime for its format runs
  (`GatewayConfig.spec.kubernetes.runtimes`; by default `gateway modelserver` in the model-server image);
  a model from storage (s3://, gs://, http(s)://) is first fetched by an init container of the
  model-server image into an emptyDir at /mnt/models, which the model server reads (`with_storage_initializer`);
- otherwise one container from the revision: image, command, args, env (plus `PORT`, as Knative
  gives it), resources, named after the manifest (PaddleService: `runtimeVersion`).
The readiness probe is HTTP on `readinessPath` or TCP on the port. Accelerators add their resource to
limits and the matching toleration; resources the manifest gives always win (see `accelerators`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import partial
from typing import Any

from gateway.backends.accelerators import accelerator_toleration, tolerations_with, with_accelerator
from gateway.backends.errors import BackendConfigError
from gateway.config import runtimes
from gateway.config.model import KubernetesSettings, RevisionSpec, ServiceSpec
from gateway.storage.uris import KUBERNETES_MODEL_DIR
from gateway.types import RevisionKey

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "serving-gateway"
SERVICE_LABEL = "serving-gateway/service"
NAMESPACE_LABEL = "serving-gateway/namespace"
REVISION_LABEL = "serving-gateway/revision"
OWNER_LABEL = (
    "serving-gateway/owner"  # the installation that made a Deployment (`spec.kubernetes.owner`): its orphans are its own
)
DEFAULT_PORT = 8080
DEFAULT_CONTAINER_NAME = "server"
MODEL_SERVER_CONTAINER_NAME = "kserve-container"  # KServe's name for the predictor's container
PORT_NAME = "http"
PROBE_PERIOD_SECONDS = 1  # pods at zero are waited on: learn of readiness within a second

Manifest = dict[str, Any]


def deployment_name(key: RevisionKey) -> str:
    """`{service}-{revision}`: the Deployment that runs a revision (in the service's namespace)."""
    return key.name


def revision_labels(key: RevisionKey) -> dict[str, str]:
    """The labels that identify a revision's pods: the Deployment's selector."""
    return {SERVICE_LABEL: key.service, NAMESPACE_LABEL: key.namespace, REVISION_LABEL: key.revision}


def label_selector(key: RevisionKey) -> str:
    """`revision_labels` as a `labelSelector` query value, for listing and watching a revision's pods."""
    return ",".join(f"{name}={value}" for name, value in revision_labels(key).items())


def managed_labels(key: RevisionKey) -> dict[str, str]:
    """Labels on everything the gateway makes for a revision: the revision's, and managed-by."""
    return {**revision_labels(key), MANAGED_BY_LABEL: MANAGED_BY}


def _labels_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def managed_by_us(deployment: Mapping[str, Any]) -> bool:
    """Whether the gateway made this object (a Deployment or a pod, as a dict): it touches no other."""
    return _labels_of(deployment).get(MANAGED_BY_LABEL) == MANAGED_BY


def build_deployment(
    service: ServiceSpec,
    revision: RevisionSpec,
    settings: KubernetesSettings,
    *,
    replicas: int | None = None,
) -> Manifest:
    """The Deployment that runs `revision` of `service`, built as `settings` (`GatewaySettings.kubernetes`) say.

    `replicas` is set when given (a create, at the initial scale); left out, the Deployment carries no
    replica count, so a patch with it leaves the running count alone. The served port is the first
    port of the first container.
    """
    key = service.key(revision.name)
    template: Manifest = {
        "metadata": {"labels": managed_labels(key)},
        "spec": pod_spec(service, revision, settings),
    }
    spec: Manifest = {"selector": {"matchLabels": revision_labels(key)}, "template": template}
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(key),
            "namespace": key.namespace,
            "labels": {**managed_labels(key), OWNER_LABEL: settings.owner},
        },
        "spec": spec,
    }


def served_port(revision: RevisionSpec) -> int:
    """The container port the gateway routes to (pods' `podIP:port`)."""
    return revision.container_port or DEFAULT_PORT


def pod_spec(service: ServiceSpec, revision: RevisionSpec, settings: KubernetesSettings) -> Manifest:
    """The pod template's spec: the manifest's own pod spec, completed, or one built container."""
    port = served_port(revision)
    if revision.pod_spec is not None:
        pod: Manifest = copy.deepcopy(revision.pod_spec)
        _complete_served(pod["containers"][0], revision, port)
    else:
        pod = {"containers": [_container(service, revision, settings, port)]}
    served = pod["containers"][0]
    tolerations = _unique([*(pod.get("tolerations") or ()), *map(dict, revision.tolerations)])
    if revision.accelerator is not None:
        served["resources"] = with_accelerator(served.get("resources") or {}, revision, settings)
        tolerations = tolerations_with(tolerations, accelerator_toleration(revision, settings))
    node_selector = {**dict(revision.node_selector), **(pod.get("nodeSelector") or {})}
    if node_selector:
        pod["nodeSelector"] = node_selector
    if tolerations:
        pod["tolerations"] = tolerations
    if revision.service_account is not None:
        pod.setdefault("serviceAccountName", revision.service_account)
    if revision.storage_uri is not None:
        with_storage_initializer(pod, revision, settings)
    return pod


STORAGE_INITIALIZER = "storage-initializer"  # KServe's name for the init container
STORAGE_VOLUME = "kserve-provision-location"  # KServe's name for the emptyDir the model goes into
STORAGE_SECRET_VOLUME = "storage-secret"
STORAGE_SECRET_DIR = "/var/run/secrets/serving-gateway/storage"


def with_storage_initializer(pod: Manifest, revision: RevisionSpec, settings: KubernetesSettings) -> None:
    """Fetch `revision.storage_uri` before the served container starts, as KServe does.

    An init container of the model-server image runs `gateway storage-initializer URI /mnt/models`
    into an emptyDir that the served container mounts read-only at the same place. The revision's
    env goes to the init container too (S3_ENDPOINT and friends), and a named secret is mounted for it
    (`--secret-dir`: AWS_* keys or an s3cmd .s3cfg), never into the served container.
    """
    model_dir = revision.storage_path or KUBERNETES_MODEL_DIR
    args = [str(revision.storage_uri), model_dir]
    mounts: list[Manifest] = [{"name": STORAGE_VOLUME, "mountPath": model_dir}]
    volumes: list[Manifest] = [{"name": STORAGE_VOLUME, "emptyDir": {}}]
    if revision.storage_secret is not None:
        args = ["--secret-dir", STORAGE_SECRET_DIR, *args]  # options first: what follows DEST is a command
        mounts.append({"name": STORAGE_SECRET_VOLUME, "mountPath": STORAGE_SECRET_DIR, "readOnly": True})
        volumes.append({"name": STORAGE_SECRET_VOLUME, "secret": {"secretName": revision.storage_secret}})
    init: Manifest = {
        "name": STORAGE_INITIALIZER,
        "image": settings.model_server_image,
        "command": ["gateway", "storage-initializer"],
        "args": args,
        "volumeMounts": mounts,
    }
    if revision.env or revision.env_refs:
        init["env"] = [*({"name": name, "value": value} for name, value in revision.env), *_env_refs(revision)]
    if settings.image_pull_policy is not None:
        init["imagePullPolicy"] = settings.image_pull_policy
    pod["initContainers"] = [*(pod.get("initContainers") or ()), init]
    pod["volumes"] = [*(pod.get("volumes") or ()), *volumes]
    served = pod["containers"][0]
    served["volumeMounts"] = [
        *(served.get("volumeMounts") or ()),
        {"name": STORAGE_VOLUME, "mountPath": model_dir, "readOnly": True},
    ]


def _unique(tolerations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for toleration in tolerations:
        if toleration not in kept:
            kept.append(toleration)
    return kept


def readiness_probe(revision: RevisionSpec, port: int) -> Manifest:
    """HTTP GET on `readinessPath`, else a TCP connect to the port."""
    if revision.readiness_path is not None:
        check: Manifest = {"httpGet": {"path": revision.readiness_path, "port": port}}
    else:
        check = {"tcpSocket": {"port": port}}
    return {**check, "periodSeconds": PROBE_PERIOD_SECONDS}


def _complete_served(container: Manifest, revision: RevisionSpec, port: int) -> None:
    """A given container, with the served port listed first and a readiness probe unless it has its own.

    The order of ports means nothing to Kubernetes; first, the served one is where readers look.
    """
    ports = list(container.get("ports") or [])
    served = [item for item in ports if isinstance(item, Mapping) and item.get("containerPort") == port]
    others = [item for item in ports if not (isinstance(item, Mapping) and item.get("containerPort") == port)]
    container["ports"] = (served or [{"containerPort": port, "protocol": "TCP"}]) + others
    container.setdefault("readinessProbe", readiness_probe(revision, port))
    if not container.get("name"):
        container["name"] = revision.container_name or DEFAULT_CONTAINER_NAME


def _container(service: ServiceSpec, revision: RevisionSpec, settings: KubernetesSettings, port: int) -> Manifest:
    if revision.model_path is not None:
        name = MODEL_SERVER_CONTAINER_NAME
        image, command, args = _runtime_container(service, revision, settings, revision.model_path, port)
    else:
        if not revision.image:
            raise BackendConfigError(f"{service.key(revision.name)}: no container image to run")
        name = revision.container_name or DEFAULT_CONTAINER_NAME
        image = revision.image
        command, args = revision.container_command, revision.args
    container: Manifest = {"name": name, "image": image}
    if command:
        container["command"] = list(command)
    if args:
        container["args"] = list(args)
    container["ports"] = [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}]
    container["env"] = _env(revision, port)
    if revision.resources:
        container["resources"] = copy.deepcopy(revision.resources)
    container["readinessProbe"] = readiness_probe(revision, port)
    if settings.image_pull_policy is not None:
        container["imagePullPolicy"] = settings.image_pull_policy
    return container


def _runtime_container(
    service: ServiceSpec, revision: RevisionSpec, settings: KubernetesSettings, model: str, port: int
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Image, command and args of the runtime that serves the revision's model format."""
    runtime, problem = runtimes.select(settings, revision)
    if runtime is None:
        raise BackendConfigError(f"{service.key(revision.name)}: {problem}")
    fmt = revision.model_format or "onnx"
    fill = partial(runtimes.expand, name=service.name, model=model, fmt=fmt, port=port)
    return runtime.image or settings.model_server_image, tuple(fill(runtime.command or ())), tuple(fill(runtime.args))


def _env(revision: RevisionSpec, port: int) -> list[dict[str, object]]:
    """The revision's variables (those `valueFrom` a Secret, ConfigMap or field as written) and `PORT` (the served
    port, as Knative gives it) unless set."""
    env: list[dict[str, object]] = [{"name": name, "value": value} for name, value in revision.env]
    env.extend(_env_refs(revision))
    if all(name != "PORT" for name, _ in (*revision.env, *revision.env_refs)):
        env.append({"name": "PORT", "value": str(port)})
    return env


def _env_refs(revision: RevisionSpec) -> list[dict[str, object]]:
    return [{"name": name, "valueFrom": copy.deepcopy(source)} for name, source in revision.env_refs]
