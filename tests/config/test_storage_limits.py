"""GatewayConfig `spec.storage` (maxModelBytes, downloadTimeout) reaches what fetches a model: the environment of
a revision with a storageUri, which a local replica and a Kubernetes init container both get."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load
from gateway.storage import MAX_BYTES_ENV, TIMEOUT_ENV
from tests.backends.deployment_support import build, load_kubernetes, pod
from tests.config.support import one_service, paddle, problems, write

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: sklearn-iris}
spec:
  predictor:
    sklearn:
      storageUri: gs://kfserving-samples/models/sklearn/iris
"""
STORAGE = "  storage:\n    maxModelBytes: 2Gi\n    downloadTimeout: 90s\n"


def gateway(tmp_path: Path, spec: str) -> str:
    return write(tmp_path, "gw.yaml", f"apiVersion: serving-gateway/v1\nkind: GatewayConfig\nspec:\n{spec}")


def test_a_revision_fetching_a_model_gets_the_limits_others_do_not(tmp_path: Path) -> None:
    config = load([gateway(tmp_path, STORAGE), write(tmp_path, "s.yaml", ISVC + "---\n" + paddle("plain"))])
    env = dict(one_service(config, "sklearn-iris").default.env)
    assert env[MAX_BYTES_ENV] == str(2 * 1024**3) and env[TIMEOUT_ENV] == "90"
    assert not {MAX_BYTES_ENV, TIMEOUT_ENV} & {name for name, _ in one_service(config, "plain").default.env}


def test_without_spec_storage_nothing_changes(tmp_path: Path) -> None:
    bare = load([gateway(tmp_path, "  domain: example.com\n"), write(tmp_path, "s.yaml", ISVC)])
    service = one_service(bare, "sklearn-iris")
    assert not {MAX_BYTES_ENV, TIMEOUT_ENV} & {name for name, _ in service.default.env}
    limited = load([gateway(tmp_path, STORAGE), write(tmp_path, "s.yaml", ISVC)])
    assert one_service(limited, "sklearn-iris").digest != service.digest  # a changed limit is a changed revision


def test_the_init_container_gets_the_limits(tmp_path: Path) -> None:
    init = pod(build(load_kubernetes(tmp_path, ISVC, gateway=STORAGE)))["initContainers"][0]
    assert {"name": MAX_BYTES_ENV, "value": str(2 * 1024**3)} in init["env"]
    assert {"name": TIMEOUT_ENV, "value": "90"} in init["env"]


def test_bad_storage_settings_are_errors(tmp_path: Path) -> None:
    spec = "  storage:\n    maxModelBytes: lots\n    downloadTimeout: 0s\n    maxBytes: 1\n"
    found = "\n".join(problems([gateway(tmp_path, spec)]))
    assert "spec.storage.maxModelBytes: must be a byte size like 65536 or 64Ki, got 'lots'" in found
    assert "spec.storage.downloadTimeout:" in found and "> 0" in found
    assert "spec.storage.maxBytes" in found
