"""deploy/: every kustomization builds offline, every object it builds is valid Kubernetes, and what it
ships agrees with itself: the configuration the gateway loads, the pod that runs it, the Services in
front of it, the RBAC it needs (and nothing more) and the image deploy/Dockerfile builds.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.backends.deployment import build_deployment
from gateway.config import Config, RevisionSpec, load
from gateway.config.addresses import split_hostport

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBECTL = shutil.which("kubectl")
KUBERNETES_VERSION = "1.30.0"
KUBERNETES_TARGETS = ("base", "overlays/namespaced")  # spec.backend: kubernetes
TARGETS = (*KUBERNETES_TARGETS, "overlays/local")
GATEWAY = "Deployment/serving-gateway"
# What the kubernetes backend calls, and all the gateway's ServiceAccount may do.
RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},  # patch: pod numbers
]
RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}

# A developer without kubectl skips these; CI must not pass them silently (a missing kubectl fails there).
# scripts/test.sh cannot install it: Debian's kubernetes-client is 1.20, too old for `kubectl kustomize`
# with kustomize v5 (deploy/ needs >= 1.27), and kubectl comes with these machines (KUBERNETES.md).
pytestmark = [
    pytest.mark.skipif(
        KUBECTL is None and not os.environ.get("CI"),
        reason="kubectl is not installed: deploy/ is built with `kubectl kustomize` (kubectl >= 1.27, kustomize v5)",
    ),
    pytest.mark.e2e,  # deploy/ is built by kubectl processes
]

Obj = dict[str, Any]


@functools.cache
def _built(target: str) -> str:
    assert KUBECTL is not None, (
        "kubectl is not installed, and CI builds deploy/ with `kubectl kustomize` (kubectl >= 1.27, kustomize v5)"
    )
    done = subprocess.run([KUBECTL, "kustomize", str(DEPLOY / target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize deploy/{target} failed:\n{done.stderr}"
    return done.stdout


def build(target: str) -> dict[str, Obj]:
    """The objects `kubectl kustomize deploy/<target>` builds, by kind/name (names are unique per kind here)."""
    objects: dict[str, Obj] = {}
    for obj in yaml.safe_load_all(_built(target)):
        key = f"{obj['kind']}/{obj['metadata']['name']}"
        assert key not in objects, f"deploy/{target} builds {key} twice"
        objects[key] = obj
    return objects


def of_kind(objects: dict[str, Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects.values() if obj["kind"] == kind]


def configmap(objects: dict[str, Obj]) -> Obj:
    """The gateway's ConfigMap: the one its pod mounts (its name carries kustomize's hash)."""
    volumes = pod_spec(objects)["volumes"]
    name = next(v["configMap"]["name"] for v in volumes if v["name"] == "config")
    return objects[f"ConfigMap/{name}"]


def pod_spec(objects: dict[str, Obj]) -> Obj:
    spec: Obj = objects[GATEWAY]["spec"]["template"]["spec"]
    return spec


def gateway_container(objects: dict[str, Obj]) -> Obj:
    container: Obj = pod_spec(objects)["containers"][0]
    return container


def load_shipped(objects: dict[str, Obj], folder: Path) -> Config:
    """The ConfigMap's files written out as the pod sees them, loaded by the gateway's own loader."""
    folder.mkdir()
    for name, text in configmap(objects)["data"].items():
        (folder / name).write_text(text)
    return load([str(folder)])


def test_every_kustomization_under_deploy_is_tested() -> None:
    found = sorted(str(path.parent.relative_to(DEPLOY)) for path in DEPLOY.rglob("kustomization.yaml"))
    assert found == sorted(TARGETS)
    assert not (DEPLOY / "kubernetes").exists()  # one way to install: kubectl apply -k


@pytest.mark.parametrize("target", TARGETS)
def test_every_built_object_is_valid_kubernetes(target: str) -> None:
    objects = build(target)
    assert objects
    for key, obj in objects.items():
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"deploy/{target}: {key} is not valid Kubernetes {KUBERNETES_VERSION}: {exc}")


def test_strict_validation_refuses_a_misspelt_key() -> None:
    """The check above would catch a typo: strict validation refuses a key Kubernetes does not know."""
    deployment = build("base")[GATEWAY]
    bad = yaml.safe_load(yaml.safe_dump(deployment))
    bad["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("target", KUBERNETES_TARGETS)
def test_configmap_is_the_kubernetes_backend_with_elasticservings_sample(target: str, tmp_path: Path) -> None:
    objects = build(target)
    config = load_shipped(objects, tmp_path / "etc")
    assert config.gateway.backend == "kubernetes"
    assert [(s.namespace, s.name) for s in config.services] == [("paddleservice-system", "paddleservice-sample")]
    assert not config.warnings
    sample = (ROOT / "config/examples/paddleservice-sample.yaml").read_text()
    assert (DEPLOY / "base/config/paddleservice-sample.yaml").read_text() == sample  # byte for byte
    assert configmap(objects)["data"]["paddleservice-sample.yaml"] == sample
    # the gateway never creates namespaces: the example's is installed with it
    assert "Namespace/paddleservice-system" in objects
    # the gateway's image is also the model-server image it runs ONNX InferenceServices in
    assert config.gateway.kubernetes.model_server_image == gateway_container(objects)["image"]


@pytest.mark.parametrize("target", KUBERNETES_TARGETS)
def test_the_examples_deployments_are_valid_kubernetes(target: str, tmp_path: Path) -> None:
    config = load_shipped(build(target), tmp_path / "etc")
    service = config.services[0]
    revisions = [r for r in (service.default, service.canary) if r is not None]
    assert len(revisions) == 2
    for revision in revisions:
        manifest = build_deployment(service, revision, config.gateway.kubernetes, replicas=0)
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        assert manifest["metadata"]["namespace"] == "paddleservice-system"


def test_local_overlay_runs_the_shipped_model_in_the_gateways_pod(tmp_path: Path) -> None:
    objects = build("overlays/local")
    config = load_shipped(objects, tmp_path / "etc")
    assert config.gateway.backend == "local"
    assert config.warnings == ()
    assert [s.name for s in config.services] == ["iris"]
    assert objects[GATEWAY]["spec"]["replicas"] == 1
    assert pod_spec(objects)["automountServiceAccountToken"] is False
    assert not [key for key in objects if key.split("/")[0] in RBAC_KINDS]
    assert not [key for key in objects if "redis" in key]
    assert not of_kind(objects, "PodDisruptionBudget")  # with one gateway it would block node drains


@pytest.mark.parametrize("target", TARGETS)
def test_the_pod_agrees_with_its_configuration(target: str, tmp_path: Path) -> None:
    objects = build(target)
    config = load_shipped(objects, tmp_path / "etc")
    pod = pod_spec(objects)
    container = gateway_container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert split_hostport(config.gateway.listen, "listen") == ("0.0.0.0", ports["http"])
    assert split_hostport(config.gateway.admin_listen, "admin") == ("0.0.0.0", ports["admin"])
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "admin"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["config"]["readOnly"] is True
    assert container["args"] == ["-f", mounts["config"]["mountPath"]]
    assert pod["terminationGracePeriodSeconds"] > config.gateway.proxy.drain_timeout
    assert pod["serviceAccountName"] == "serving-gateway"
    labels = objects[GATEWAY]["spec"]["template"]["metadata"]["labels"]
    assert objects[GATEWAY]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only: the objects here use nothing else) picks pods with `labels`."""
    assert set(selector) == {"matchLabels"}, selector
    match: dict[str, str] = selector["matchLabels"]
    return bool(match) and match.items() <= labels.items()


def pod_labels(objects: dict[str, Obj], deployment: str) -> dict[str, str]:
    labels: dict[str, str] = objects[f"Deployment/{deployment}"]["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("target", KUBERNETES_TARGETS)
def test_two_gateways_share_their_load_through_redis_and_one_survives_a_drain(target: str, tmp_path: Path) -> None:
    objects = build(target)
    gateway = objects[GATEWAY]
    namespace = gateway["metadata"]["namespace"]
    assert gateway["spec"]["replicas"] == 2
    assert gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    gateways = pod_labels(objects, "serving-gateway")
    spread = pod_spec(objects)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert selects(spread["podAffinityTerm"]["labelSelector"], gateways)  # not both on one node if avoidable

    budget = objects["PodDisruptionBudget/serving-gateway"]
    assert budget["metadata"]["namespace"] == namespace
    assert budget["spec"] == {"minAvailable": 1, "selector": budget["spec"]["selector"]}
    assert selects(budget["spec"]["selector"], gateways)

    # the config names the Redis Service, in the gateways' namespace, on its port
    config = load_shipped(objects, tmp_path / "etc")
    assert config.gateway.redis is not None
    match = re.fullmatch(r"redis://([a-z0-9-]+)(?:\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?)?:(\d+)", config.gateway.redis)
    assert match is not None, config.gateway.redis
    name, port = match[1], int(match[3])
    assert (match[2] or namespace) == namespace
    service = objects[f"Service/{name}"]
    assert service["metadata"]["namespace"] == namespace
    assert [p["port"] for p in service["spec"]["ports"]] == [port] == [6379]

    # the Service selects the Redis pods, and only them
    redis_labels = pod_labels(objects, name)
    assert selects({"matchLabels": service["spec"]["selector"]}, redis_labels)
    assert not selects({"matchLabels": service["spec"]["selector"]}, gateways)
    assert not selects(budget["spec"]["selector"], redis_labels)
    redis = objects[f"Deployment/{name}"]
    assert redis["metadata"]["namespace"] == namespace and redis["spec"]["replicas"] == 1
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container_ports[service["spec"]["ports"][0]["targetPort"]] == port
    assert re.fullmatch(r"redis:7[.\d]*-alpine", container["image"]), container["image"]
    assert container["resources"]["requests"].keys() >= {"cpu", "memory"} and "memory" in container["resources"]["limits"]
    # soft state: no snapshots, no append-only file, nothing on a persistent volume
    assert container["args"] == ["--save", "", "--appendonly", "no"]
    assert not of_kind(objects, "PersistentVolumeClaim")
    assert all("persistentVolumeClaim" not in v for v in redis["spec"]["template"]["spec"].get("volumes", []))

    # only the gateways may reach it
    (policy,) = [p for p in of_kind(objects, "NetworkPolicy") if selects(p["spec"]["podSelector"], redis_labels)]
    assert policy["metadata"]["namespace"] == namespace and policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert [selects(peer["podSelector"], gateways) for peer in rule["from"]] == [True]
    assert [container_ports.get(p["port"], p["port"]) for p in rule["ports"]] == [port]


@pytest.mark.parametrize("target", TARGETS)
def test_the_services_expose_the_data_plane_and_keep_admin_inside(target: str) -> None:
    objects = build(target)
    labels = objects[GATEWAY]["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in gateway_container(objects)["ports"]}
    public = objects["Service/serving-gateway"]["spec"]
    assert public["type"] == "LoadBalancer"
    assert [(p["port"], ports[p["targetPort"]]) for p in public["ports"]] == [(80, 8080)]
    admin = objects["Service/serving-gateway-admin"]["spec"]
    assert admin["type"] == "ClusterIP"
    assert [ports[p["targetPort"]] for p in admin["ports"]] == [ports["admin"]]
    for service in (public, admin):
        assert service["selector"].items() <= labels.items()
    for service in of_kind(objects, "Service"):
        spec = service["spec"]
        if spec.get("type", "ClusterIP") != "ClusterIP":  # nothing else leaves the cluster
            assert service["metadata"]["name"] == "serving-gateway"
            assert {p["targetPort"] for p in spec["ports"]} == {"http"}


def _rules(obj: Obj) -> list[Obj]:
    rules: list[Obj] = obj["rules"]
    return rules


def _binds_the_gateway(binding: Obj, kind: str, objects: dict[str, Obj]) -> None:
    account = pod_spec(objects)["serviceAccountName"]
    namespace = objects[GATEWAY]["metadata"]["namespace"]
    assert f"ServiceAccount/{account}" in objects
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": "serving-gateway"}


def test_base_rbac_is_exactly_what_the_backend_calls_cluster_wide() -> None:
    objects = build("base")
    assert sorted(key for key in objects if key.split("/")[0] in RBAC_KINDS) == [
        "ClusterRole/serving-gateway",
        "ClusterRoleBinding/serving-gateway",
    ]
    assert _rules(objects["ClusterRole/serving-gateway"]) == RULES
    _binds_the_gateway(objects["ClusterRoleBinding/serving-gateway"], "ClusterRole", objects)


def test_namespaced_rbac_is_the_same_rules_in_the_services_namespace_only(tmp_path: Path) -> None:
    objects = build("overlays/namespaced")
    assert sorted(key for key in objects if key.split("/")[0] in RBAC_KINDS) == [
        "Role/serving-gateway",
        "RoleBinding/serving-gateway",
    ]
    role, binding = objects["Role/serving-gateway"], objects["RoleBinding/serving-gateway"]
    assert _rules(role) == RULES
    _binds_the_gateway(binding, "Role", objects)
    config = load_shipped(objects, tmp_path / "etc")
    assert {s.namespace for s in config.services} == {role["metadata"]["namespace"]} == {binding["metadata"]["namespace"]}


def _paths_in_the_image(revision: RevisionSpec | None) -> list[str]:
    if revision is None:
        return []
    command = revision.command if isinstance(revision.command, tuple) else ()
    words = [*command, *revision.args, revision.model_path or ""]
    return [word for word in words if word.startswith("/app/")]


def test_dockerfile_builds_the_image_the_pod_runs_with_what_the_configmap_refers_to(tmp_path: Path) -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "WORKDIR /app" in text and "COPY config ./config" in text
    assert 'ENTRYPOINT ["gateway", "serve"]' in text
    user = re.search(r"^USER (\d+)$", text, re.MULTILINE)
    assert user is not None
    paths: list[str] = []
    for target in TARGETS:
        objects = build(target)
        container = gateway_container(objects)
        assert f"-t {container['image']} " in text  # the build command the Dockerfile gives
        assert pod_spec(objects)["securityContext"]["runAsUser"] == int(user[1])
        config = load_shipped(objects, tmp_path / target.replace("/", "-"))
        paths += [p for s in config.services for r in (s.default, s.canary) for p in _paths_in_the_image(r)]
    assert "/app/config/models/iris.onnx" in paths  # the local overlay's model
    for path in paths:
        assert path.startswith("/app/config/"), f"{path}: the Dockerfile copies only config/ to /app/config"
        assert (ROOT / path.removeprefix("/app/")).is_file(), f"{path}: not in the repository's config/"


def test_the_install_docs_name_paths_that_exist() -> None:
    """README's "In a cluster" and deploy/README.md send users to these paths: each one is there."""
    for doc in (ROOT / "README.md", DEPLOY / "README.md"):
        text = doc.read_text()
        named = set(re.findall(r"(?<![\w/])deploy/[\w./-]*[\w]", text))
        named |= {f"deploy/{p}" for p in re.findall(r"`((?:base|overlays)/[\w./-]*[\w])`", text)}
        assert "deploy/base" in named or doc.parent == DEPLOY
        for path in named:
            assert (ROOT / path).exists(), f"{doc.relative_to(ROOT)} names {path}, which does not exist"
    assert "kubectl apply -k deploy/base" in (ROOT / "README.md").read_text()
