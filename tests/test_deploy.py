"""deploy/: the manifests parse, and the configuration they ship is one the gateway accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.config import load
from gateway.config.addresses import split_hostport

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "deploy/kubernetes/serving-gateway.yaml"


def documents() -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(MANIFEST.read_text())}


def test_configmap_config_validates_and_matches_the_pod(tmp_path: Path) -> None:
    docs = documents()
    data = docs["ConfigMap/serving-gateway-config"]["data"]
    folder = tmp_path / "etc"
    folder.mkdir()
    for name, text in data.items():
        (folder / name).write_text(text)
    config = load([str(folder)])
    assert [s.name for s in config.services] == ["iris"]
    assert config.warnings == ()
    command = config.services[0].default.command
    assert command is not None
    model = Path(command[5])
    assert model.as_posix() == "/app/config/models/iris.onnx"
    assert (ROOT / "config/models/iris.onnx").is_file()  # what the Dockerfile copies to /app/config

    pod = docs["Deployment/serving-gateway"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert split_hostport(config.gateway.listen, "listen") == ("0.0.0.0", ports["http"])
    assert split_hostport(config.gateway.admin_listen, "admin") == ("0.0.0.0", ports["admin"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mount = container["volumeMounts"][0]
    assert container["args"] == ["-f", mount["mountPath"]]
    assert pod["terminationGracePeriodSeconds"] > config.gateway.proxy.drain_timeout


def test_dockerfile_copies_what_the_configmap_refers_to() -> None:
    text = (ROOT / "deploy/Dockerfile").read_text()
    assert "COPY config ./config" in text and "WORKDIR /app" in text
    assert 'ENTRYPOINT ["gateway", "serve"]' in text
