"""`gateway storage-initializer URI DEST`, what a revision's init container runs, as a real subprocess against moto."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.storage import StorageError
from gateway.storage.initializer import CACHE
from gateway.storage.secrets import credentials, parse_s3cfg, read_secret_dir
from tests.storage.servers import IRIS, ROOT, FileServer, S3Server, tar_bytes

MODEL = IRIS.read_bytes()
S3CFG = """\
[default]
host_base = {host}
host_bucket = {host}
bucket_location = US
use_https = False
access_key = {access}
secret_key = {secret}
signature_v2 = False
"""


def initialize(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    full = {**clean, **(env or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "storage-initializer", *args], env=full, capture_output=True, text=True, timeout=60
    )


@pytest.mark.e2e
def test_fetches_into_the_folder_then_does_nothing_the_second_time(s3: S3Server, tmp_path: Path) -> None:
    s3.put("init", {"iris/model.onnx": MODEL, "iris/meta/labels.txt": b"setosa"})
    dest = tmp_path / "mnt" / "models"
    done = initialize("s3://init/iris", str(dest), env=s3.env())
    assert done.returncode == 0, done.stderr
    assert (dest / "model.onnx").read_bytes() == MODEL and (dest / "meta" / "labels.txt").read_bytes() == b"setosa"
    assert not (dest / CACHE).exists()
    before = s3.gets()
    again = initialize("s3://init/iris", str(dest), env=s3.env())
    assert again.returncode == 0, again.stderr
    assert s3.gets() == before


@pytest.mark.e2e
def test_credentials_from_a_mounted_s3cmd_secret(s3_auth: S3Server, tmp_path: Path) -> None:
    s3_auth.put("mounted", {"mnist/model.onnx": MODEL})
    secret = tmp_path / "secret"
    secret.mkdir()
    host = s3_auth.endpoint.removeprefix("http://")
    (secret / ".s3cfg").write_text(S3CFG.format(host=host, access=s3_auth.access_key, secret=s3_auth.secret_key))
    dest = tmp_path / "models"
    done = initialize("--secret-dir", str(secret), "s3://mounted/mnist", str(dest))
    assert done.returncode == 0, done.stderr
    assert (dest / "model.onnx").read_bytes() == MODEL


@pytest.mark.e2e
def test_a_failure_is_one_line_naming_the_uri_and_leaves_no_model(s3_auth: S3Server, tmp_path: Path) -> None:
    s3_auth.put("refused", {"iris/model.onnx": MODEL})
    dest = tmp_path / "models"
    done = initialize("s3://refused/iris", str(dest), env=s3_auth.env(AWS_SECRET_ACCESS_KEY="wrong"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gateway storage-initializer: error: s3://refused/iris: S3 refused: "), (
        done.stderr
    )
    assert "SignatureDoesNotMatch" in lines[0]
    assert not (dest / "model.onnx").exists() and not list(dest.glob(f"{CACHE}/.partial-*"))


@pytest.mark.e2e
def test_an_archive_over_http_is_unpacked_into_the_folder(files: FileServer, tmp_path: Path) -> None:
    files.files["/iris.tgz"] = tar_bytes({"model.onnx": MODEL})
    done = initialize(f"{files.url}/iris.tgz", str(tmp_path / "models"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / "model.onnx").read_bytes() == MODEL


@pytest.mark.e2e
def test_a_local_model_is_copied(tmp_path: Path) -> None:
    done = initialize(f"file://{IRIS}", str(tmp_path / "models"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / "iris.onnx").read_bytes() == MODEL


def test_an_s3cmd_config_becomes_kserves_variables() -> None:
    text = S3CFG.format(host="minio.storage:9000", access="user", secret="password")
    assert parse_s3cfg(text) == {
        "AWS_ACCESS_KEY_ID": "user",
        "AWS_SECRET_ACCESS_KEY": "password",
        "S3_ENDPOINT": "minio.storage:9000",
        "S3_USE_HTTPS": "0",
        "AWS_REGION": "us-east-1",
    }
    # TensorStack's sample has no section header; KServe-style keys pass through, others do not.
    assert parse_s3cfg("host_base = example.s3\nuse_https = True\nbucket_location = eu-west-1\n") == {
        "S3_ENDPOINT": "example.s3",
        "S3_USE_HTTPS": "1",
        "AWS_REGION": "eu-west-1",
    }
    assert credentials({"AWS_ACCESS_KEY_ID": "a", "S3_ENDPOINT": "h:1", "password": "x"}) == {
        "AWS_ACCESS_KEY_ID": "a",
        "S3_ENDPOINT": "h:1",
    }


def test_an_unreadable_s3cmd_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot read .s3cfg"):
        parse_s3cfg("[default\naccess_key = x")
    with pytest.raises(StorageError, match="cannot read the secret mounted at"):
        read_secret_dir(str(tmp_path / "missing"))


@pytest.mark.e2e
def test_options_after_dest_are_refused(tmp_path: Path) -> None:
    done = initialize("s3://b/m", str(tmp_path), "--secret", "x")
    assert done.returncode == 2
    assert done.stderr.strip() == "gateway storage-initializer: error: options go before URI, got --secret after DEST"


@pytest.mark.e2e
def test_a_command_runs_after_the_download_with_model_path(files: FileServer, tmp_path: Path) -> None:
    files.files["/iris.tgz"] = tar_bytes({"model.onnx": MODEL})
    code = "import os, sys; print(sorted(os.listdir(os.environ['MODEL_PATH']))); sys.exit(7)"
    env = {"SERVING_GATEWAY_STATE_DIR": str(tmp_path / "state")}
    done = initialize(f"{files.url}/iris.tgz", "-", "--", sys.executable, "-c", code, env=env)
    assert done.returncode == 7, done.stderr  # the command's own status: it ran in the initializer's place
    assert done.stdout.strip() == "['model.onnx']"
    assert len([p for p in (tmp_path / "state" / "models").glob("iris.tgz-*") if p.is_dir()]) == 1  # and its lock


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("uri", "dest", "error"),
    [
        ("src", "src/sub", "DEST src/sub is inside the source src: it would be copied into itself"),
        ("src", "src", "DEST src is the source src itself"),
        ("src/sub/..", "src", "DEST src is the source src/sub/.. itself"),
        ("src", "afile", "DEST afile exists and is not a folder"),
        ("http://[::1", "out", "'http://[::1' is not a storage URI: Invalid IPv6 URL"),
        ("s3://", "out", "s3://: expected s3://BUCKET/PREFIX"),
    ],
)
def test_odd_arguments_are_one_line_exit_2_and_copy_nothing(tmp_path: Path, uri: str, dest: str, error: str) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "model.onnx").write_bytes(MODEL)
    (tmp_path / "afile").write_text("x")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "storage-initializer", uri, dest],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"gateway storage-initializer: error: {error}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # no traceback
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing copied, not into itself either


@pytest.mark.e2e
def test_the_commands_model_path_reference_is_filled_in(files: FileServer, tmp_path: Path) -> None:
    """SimpleMLService commands written for Kubernetes say `$(MODEL_PATH)`; only the initializer knows it."""
    files.files["/iris.onnx"] = MODEL
    code = "import os, sys; print(sys.argv[1:] == [os.environ['MODEL_PATH'], '$(OTHER)'])"
    env = {"SERVING_GATEWAY_STATE_DIR": str(tmp_path / "state")}
    done = initialize(f"{files.url}/iris.onnx", "-", "--", sys.executable, "-c", code, "$(MODEL_PATH)", "$(OTHER)", env=env)
    assert done.returncode == 0 and done.stdout.strip() == "True", (done.stdout, done.stderr)
