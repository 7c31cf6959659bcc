"""What a new user's trial of issue 12 found in gateway.storage: a presigned URL refusing HEAD, credentials shown
in messages, a silent S3 endpoint holding a replica past its start timeout, gs:// without the extra, locks and
caches left behind by a failure, malformed URIs and unhelpful messages."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.storage import StorageError, fetch, parse, redact
from gateway.storage.initializer import CACHE, initialize
from tests.storage.servers import IRIS, ROOT, FileServer, GcsServer, cache_entries

MODEL = IRIS.read_bytes()
SIGNED = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=deadbeefsecret"


def test_a_presigned_url_refusing_head_is_fetched_with_get(files: FileServer, cache: Path) -> None:
    """S3 presigned GET URLs answer HEAD with 403 (the signature covers the method): the version comes from a
    GET's headers, the same ETag a HEAD would give, so a second fetch finds the same cache entry."""
    files.files[f"/iris.onnx{SIGNED}"] = MODEL
    files.head_allowed, files.head_refusal = False, 403
    uri = f"{files.url}/iris.onnx{SIGNED}"
    first = fetch(uri, str(cache), {})
    assert {p.name: p.read_bytes() for p in Path(first).iterdir()} == {"iris.onnx": MODEL}
    assert fetch(uri, str(cache), {}) == first
    assert len(cache_entries(cache)) == 1 and "deadbeefsecret" not in first and "Credential" not in first
    files.head_allowed = True  # a HEAD gives the same version: the same entry
    assert fetch(uri, str(cache), {}) == first


def test_a_get_refused_after_a_refused_head_names_the_get_status(files: FileServer, cache: Path) -> None:
    files.head_allowed, files.head_refusal = False, 403
    with pytest.raises(StorageError, match=r"/gone.onnx\?\*\*\*: HTTP 404"):
        fetch(f"{files.url}/gone.onnx{SIGNED}", str(cache), {})


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://user:secret@host:8080/m.onnx", "http://***@host:8080/m.onnx"),
        (f"https://bucket.s3.amazonaws.com/m.onnx{SIGNED}#frag", "https://bucket.s3.amazonaws.com/m.onnx?***#frag"),
        ("https://u:p@h/a@b/m.onnx?sig=1", "https://***@h/a@b/m.onnx?***"),
        ("s3://bucket/prefix/m.onnx", "s3://bucket/prefix/m.onnx"),
        ("models/m.onnx", "models/m.onnx"),
    ],
)
def test_credentials_in_a_uri_are_redacted(uri: str, shown: str) -> None:
    assert redact(uri) == shown
    assert parse(uri).shown == shown


def test_errors_never_show_userinfo_or_the_query_string(files: FileServer, cache: Path) -> None:
    host = files.url.removeprefix("http://")
    for uri in (
        f"http://alice:hunter2@{host}/nothing.onnx{SIGNED}",  # refused
        f"http://alice:hunter2@127.0.0.1:1/iris.onnx{SIGNED}",  # unreachable
        f"http://alice:hunter2@{host}{SIGNED}",  # names no file
        f"http:/alice:hunter2@{host}/m.onnx{SIGNED}",  # malformed
    ):
        with pytest.raises(StorageError) as info:
            fetch(uri, str(cache), {})
        message = str(info.value)
        assert "***" in message and "hunter2" not in message and "deadbeefsecret" not in message, message


@pytest.mark.e2e
def test_the_model_server_and_the_initializer_show_no_credentials(files: FileServer, tmp_path: Path) -> None:
    """Their stderr is what the local backend shows in 503 bodies, `gateway status` and its log."""
    host = files.url.removeprefix("http://")
    files.files["/iris.onnx"] = b"not an onnx model"
    uri = f"http://alice:hunter2@{host}/iris.onnx{SIGNED}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SERVING_GATEWAY_STATE_DIR": str(tmp_path / "state")}
    for argv in (
        ["modelserver", "--model", uri, "--format", "onnx", "--name", "m", "--port", "0"],
        ["storage-initializer", uri.replace("iris.onnx", "missing.onnx"), str(tmp_path / "dest")],
    ):
        done = subprocess.run([sys.executable, "-m", "gateway", *argv], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert f"http://***@{host}/" in done.stderr and "hunter2" not in done.stderr and "deadbeefsecret" not in done.stderr


@pytest.mark.e2e
def test_the_model_server_says_what_it_fetches_before_and_after(files: FileServer, tmp_path: Path) -> None:
    files.files["/iris.onnx"] = b"not an onnx model"
    uri = f"{files.url}/iris.onnx"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SERVING_GATEWAY_STATE_DIR": str(tmp_path / "state")}
    argv = ["modelserver", "--model", uri, "--format", "onnx", "--name", "m", "--port", "0"]
    done = subprocess.run([sys.executable, "-m", "gateway", *argv], env=env, capture_output=True, text=True, timeout=60)
    lines = done.stderr.splitlines()
    assert lines[0] == f"gateway modelserver: fetching {uri}", lines
    assert lines[1].startswith(f"gateway modelserver: fetched {uri} in ") and lines[1].endswith(" s"), lines
    assert any("loading model from " in line for line in lines[2:]), lines  # then says it loads it


@pytest.fixture
def silent() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server that accepts connections and never answers a byte (a hung S3 endpoint)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()
    for conn in accepted:
        conn.close()


@pytest.mark.e2e  # waits for two 1 s read timeouts
def test_a_silent_s3_endpoint_fails_well_inside_the_start_timeout(
    silent: tuple[int, list[socket.socket]], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request waits at most connect + read timeout and is tried twice: about a minute at worst, half the
    local backend's 120 s start timeout, so the replica prints its error before it is killed. Measured here with
    the read timeout at 1 s: two attempts, then the error."""
    from gateway.backends.local import LocalBackend
    from gateway.storage import s3

    start_timeout = LocalBackend("/nonexistent")._start_timeout
    assert (s3.CONNECT_TIMEOUT + s3.READ_TIMEOUT) * s3.ATTEMPTS <= start_timeout / 2
    monkeypatch.setattr(s3, "READ_TIMEOUT", 1)
    port, accepted = silent
    env = {"S3_ENDPOINT": f"127.0.0.1:{port}", "S3_USE_HTTPS": "0", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"^s3://models/iris: .*[Rr]ead timeout"):
        fetch("s3://models/iris", str(cache), env)
    assert time.monotonic() - started < 10
    assert len(accepted) == s3.ATTEMPTS


@pytest.mark.e2e  # boto3 tries the handshake again: over a second
def test_s3_over_https_to_a_plain_http_endpoint_says_to_set_s3_use_https(
    files: FileServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"S3_ENDPOINT": files.url.removeprefix("http://"), "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    with pytest.raises(StorageError, match="is the endpoint http\\? set S3_USE_HTTPS=0"):
        fetch("s3://models/iris", str(cache), env)


@pytest.mark.e2e
def test_gs_without_the_extra_says_what_to_install_even_where_it_is_installed(tmp_path: Path) -> None:
    """A base install has no google.cloud: simulated in a fresh interpreter, nothing of it imported before."""
    code = (
        "import sys\n"
        "for name in ('google.cloud', 'google.cloud.storage', 'google.auth', 'boto3'):\n"
        "    sys.modules[name] = None\n"
        "from gateway.storage import MissingExtraError, fetch\n"
        "for uri in ('gs://models/iris', 's3://models/iris'):\n"
        "    try:\n"
        f"        fetch(uri, {str(tmp_path)!r}, {{}})\n"
        "    except MissingExtraError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [
        f"{uri}: the {library} library is needed to download it: pip install 'serving-gateway[storage]'"
        for uri, library in (("gs://models/iris", "google-cloud-storage"), ("s3://models/iris", "boto3"))
    ]


@pytest.mark.e2e
def test_a_missing_gcs_bucket_says_not_found(gcs: GcsServer, cache: Path) -> None:
    with pytest.raises(StorageError) as info:
        fetch("gs://no-such-bucket-404/b", str(cache), gcs.env())
    message = str(info.value)
    assert "(404)" in message and "bucket no-such-bucket-404 or object not found" in message and "unknown error" not in message


def test_a_failed_fetch_leaves_no_lock(files: FileServer, cache: Path, tmp_path: Path) -> None:
    files.files["/iris.tar.gz"] = b"garbage"
    with pytest.raises(StorageError):
        fetch(f"{files.url}/iris.tar.gz", str(cache), {})
    assert list(cache.iterdir()) == []
    files.files["/iris.onnx"] = MODEL
    fetch(f"{files.url}/iris.onnx", str(cache), {})
    assert [p.name for p in cache.iterdir() if p.name.endswith(".lock")] == []
    dest = tmp_path / "dest"
    with pytest.raises(StorageError):
        initialize(f"{files.url}/iris.tar.gz", str(dest), {})
    assert not (dest / CACHE).exists() and list(dest.iterdir()) == []


def test_fetches_waiting_on_one_lock_all_succeed_once_it_is_removed(files: FileServer, cache: Path) -> None:
    files.files["/iris.onnx"] = MODEL
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(fetch(f"{files.url}/iris.onnx", str(cache), {}))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(got) == 6 and len(set(got)) == 1 and files.gets["/iris.onnx"] == 1
    assert [p.name for p in cache.iterdir()] == [Path(got[0]).name]


@pytest.mark.parametrize(
    ("uri", "meant"),
    [("s3:/bucket/x", "s3://bucket/x"), ("gs:bucket/x", "gs://bucket/x"), ("file:/abs/m.onnx", "file:///abs/m.onnx")],
)
def test_a_uri_with_one_slash_is_malformed_not_a_local_path(uri: str, meant: str, cache: Path) -> None:
    with pytest.raises(StorageError) as info:
        fetch(uri, str(cache), {})
    assert str(info.value) == f"{uri}: malformed URI, did you mean {meant}?"
