"""Models from storage served end to end on the local backend: the replica downloads before it is ready,
once per URI into the state directory's cache, and a failed download is a fast 503 naming the URI."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.backends.local import LocalBackend
from tests.conftest import free_port, serve_argv, wait_until, wait_until_blocking
from tests.storage.servers import (
    IRIS,
    ROOT,
    FileServer,
    GcsServer,
    S3Server,
    Start,
    cache_entries,
    no_partials,
    predict,
    tar_bytes,
    zip_bytes,
)

pytestmark = pytest.mark.e2e

MODEL = IRIS.read_bytes()


def quick_start(uri: str, name: str = "sklearn-iris", extra: str = "") -> str:
    """KServe's quick-start InferenceService, but for the format (the ONNX iris model this repository ships)."""
    return f"""\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
  namespace: kserve-test
spec:
  predictor:
    model:
      modelFormat:
        name: onnx
      storageUri: "{uri}"
{extra}"""


@pytest.fixture
def gateway_serve(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], str]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(text: str, env: dict[str, str]) -> str:
        cfg = tmp_path / "isvc.yaml"
        cfg.write_text(text)
        port, admin = free_port(), free_port()
        argv = serve_argv(cfg, listen=f"127.0.0.1:{port}", admin=f"127.0.0.1:{admin}", state_dir=tmp_path / "state")
        full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        procs.append(subprocess.Popen(argv, env=full_env, stdin=subprocess.DEVNULL))

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until_blocking(ready, "gateway serve's /readyz", within=30)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_the_quick_start_from_s3_through_gateway_serve(
    s3: S3Server, gateway_serve: Callable[..., str], tmp_path: Path
) -> None:
    s3.put("quickstart", {"models/onnx/iris/model.onnx": MODEL})
    base = gateway_serve(quick_start("s3://quickstart/models/onnx/iris"), s3.env())
    r = await predict(base)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}
    models = tmp_path / "state" / "models"
    assert [name for name in cache_entries(models)] == [next(models.glob("iris-*")).name]


async def test_the_quick_start_from_the_gcs_emulator(gcs: GcsServer, serve: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    gcs.put("kfserving-samples", {"models/onnx/iris/model.onnx": MODEL})
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.env()["STORAGE_EMULATOR_HOST"])
    _, base = await serve(quick_start("gs://kfserving-samples/models/onnx/iris"))
    r = await predict(base)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("model.onnx", lambda: MODEL),
        ("iris.zip", lambda: zip_bytes({"iris/model.onnx": MODEL})),
        ("iris.tar.gz", lambda: tar_bytes({"model.onnx": MODEL})),
    ],
)
async def test_the_quick_start_over_http(files: FileServer, serve: Start, name: str, make: Callable[[], bytes]) -> None:
    files.files[f"/models/{name}"] = make()
    _, base = await serve(quick_start(f"{files.url}/models/{name}"))
    r = await predict(base)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}


async def test_two_revisions_of_one_uri_download_once(files: FileServer, serve: Start, tmp_path: Path) -> None:
    files.files["/iris.tar.gz"] = tar_bytes({"model.onnx": MODEL})
    uri = f"{files.url}/iris.tar.gz"
    _, base = await serve(quick_start(uri, "iris-a") + "---\n" + quick_start(uri, "iris-b"))
    for name in ("iris-a", "iris-b"):
        r = await predict(base, f"{name}.kserve-test.example.com", name)
        assert r.status_code == 200, r.text
    assert files.gets["/iris.tar.gz"] == 1
    assert len(cache_entries(tmp_path / "state" / "models")) == 1


async def failing(serve: Start, uri: str, tmp_path: Path, *needles: str) -> None:
    """A revision whose model cannot be had answers 503 at once, naming the URI and the error, and leaves
    no partial download behind."""
    _, base = await serve(quick_start(uri))
    started = time.monotonic()
    r = await predict(base)
    assert time.monotonic() - started < 20, "not the activation timeout"
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert uri in error, error
    for needle in needles:
        assert needle in error, error
    assert no_partials(tmp_path / "state" / "models")


async def test_a_missing_key_is_a_503_naming_it(
    s3: S3Server, serve: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    s3.put("empty-bucket", {"other/model.onnx": MODEL})
    await failing(serve, "s3://empty-bucket/iris", tmp_path, "no such object or prefix")


async def test_wrong_credentials_are_a_503_naming_them(
    s3_auth: S3Server, serve: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_auth.put("guarded", {"iris/model.onnx": MODEL})
    for name, value in s3_auth.env(AWS_SECRET_ACCESS_KEY="not-the-secret").items():
        monkeypatch.setenv(name, value)
    await failing(serve, "s3://guarded/iris", tmp_path, "SignatureDoesNotMatch")
    assert cache_entries(tmp_path / "state" / "models") == []


async def test_a_corrupt_archive_is_a_503_naming_it(files: FileServer, serve: Start, tmp_path: Path) -> None:
    files.files["/iris.tar.gz"] = b"\x1f\x8b\x08 truncated"
    await failing(serve, f"{files.url}/iris.tar.gz", tmp_path, "corrupt archive")
    assert cache_entries(tmp_path / "state" / "models") == []


async def test_a_traversal_archive_is_a_503_naming_it(files: FileServer, serve: Start, tmp_path: Path) -> None:
    files.files["/iris.zip"] = zip_bytes({"../../../escaped.onnx": MODEL})
    await failing(serve, f"{files.url}/iris.zip", tmp_path, "outside the target directory")
    assert not escaped(tmp_path)


def escaped(root: Path) -> list[Path]:
    """Files named like the archive's escaping member anywhere under the test's folder (a blocking walk)."""
    return list(root.rglob("escaped.onnx"))


async def test_a_model_that_does_not_load_is_a_503_naming_the_uri(files: FileServer, serve: Start, tmp_path: Path) -> None:
    files.files["/models/model.onnx"] = b"this is not protobuf"
    await failing(serve, f"{files.url}/models/model.onnx", tmp_path, "cannot load model file")


async def test_a_404_is_a_503_naming_it(files: FileServer, serve: Start, tmp_path: Path) -> None:
    await failing(serve, f"{files.url}/models/missing.onnx", tmp_path, "HTTP 404")


SIMPLEML = """\
apiVersion: serving-gateway/v1
kind: GatewayConfig
spec:
  secretsFile: secrets.yaml
---
apiVersion: tensorstack.dev/v1beta1
kind: SimpleMLService
metadata: {{name: mnist}}
spec:
  replicas: 1
  storage:
    s3:
      secretName: s3-secret
      uri: s3://{bucket}/mnist  # (moto checking signatures miscomputes prefixes with a slash)
      containerPath: /var/lib/t9k/model
  custom:
    spec:
      containers:
      - name: user-container
        image: serving-gateway:0.1.0
        command: [/bin/sh, -c]
        args: ['exec "{{python}}" -m gateway modelserver --model "$MODEL_PATH" --name mnist --port {{port}}']
        readinessProbe:
          httpGet: {{path: /v2/health/ready}}
"""


def s3_secret(server: S3Server, secret: str) -> str:
    """TensorStack's S3 secret: an s3cmd configuration, base64 in data[.s3cfg]."""
    import base64

    host = server.endpoint.removeprefix("http://")
    s3cfg = f"host_base = {host}\nhost_bucket = {host}\nbucket_location = us-east-1\nuse_https = False\naccess_key = {server.access_key}\nsecret_key = {secret}\n"
    encoded = base64.b64encode(s3cfg.encode()).decode()
    return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-secret\n  labels: {{tensorstack.dev/resource: s3}}\ndata:\n  .s3cfg: {encoded}\n"


async def test_a_simpleml_service_reads_its_s3_secret_from_the_secrets_file(
    s3_auth: S3Server, serve: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "S3_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)  # only the secret gives them
    s3_auth.put("t9k", {"mnist/model.onnx": MODEL})
    (tmp_path / "secrets.yaml").write_text(s3_secret(s3_auth, s3_auth.secret_key))
    _, base = await serve(SIMPLEML.format(bucket="t9k"))
    r = await predict(base, "mnist.default.example.com", "mnist")
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}


async def test_a_wrong_secret_is_a_503_naming_the_uri(
    s3_auth: S3Server, serve: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "S3_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    s3_auth.put("t9kwrong", {"mnist/model.onnx": MODEL})
    (tmp_path / "secrets.yaml").write_text(s3_secret(s3_auth, "not-the-secret"))
    _, base = await serve(SIMPLEML.format(bucket="t9kwrong"))
    r = await predict(base, "mnist.default.example.com", "mnist")
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert "s3://t9kwrong/mnist" in error and "SignatureDoesNotMatch" in error, error


async def test_a_replica_killed_mid_download_leaves_nothing_served_and_the_next_one_serves(
    files: FileServer, serve: Start, tmp_path: Path
) -> None:
    padding = os.urandom(4 * 1024 * 1024)  # stored, not compressed: the stall comes while the body is on its way
    files.files["/iris.tar"] = tar_bytes({"model.onnx": MODEL, "padding.bin": padding}, mode="w")
    files.stall.add("/iris.tar")
    gw, base = await serve(quick_start(f"{files.url}/iris.tar"))
    key = next(iter(gw.runtimes))
    local = gw.backends["local"]
    assert isinstance(local, LocalBackend)
    models = tmp_path / "state" / "models"
    await wait_until(lambda: half_written(models), "half the download on disk", within=30)
    for pid in local.pids(key):
        os.kill(pid, signal.SIGKILL)
    assert [name for name in cache_entries(models) if not name.startswith(".partial-")] == []
    files.stall.clear()
    files.release.set()
    # The replica restarts after its crash back-off (requests meanwhile get a 503 saying so) and fetches afresh.
    await wait_until(lambda: len(local.ready_endpoints(key)) == 1, "a replica ready again", within=60)
    r = await predict(base)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}
    assert no_partials(models)


def half_written(models: Path) -> bool:
    partials = list(models.glob(".partial-*/iris.tar")) if models.exists() else []
    return bool(partials) and partials[0].stat().st_size > 0
