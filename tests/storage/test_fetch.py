"""`gateway.storage.fetch` against real servers: moto's S3, the GCS emulator and an HTTP file server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway.storage import MissingExtraError, StorageError, fetch
from tests.conftest import wait_until_blocking
from tests.storage.servers import IRIS, ROOT, FileServer, GcsServer, S3Server, cache_entries, no_partials, tar_bytes, zip_bytes

MODEL = IRIS.read_bytes()
BIG = os.urandom(4 * 1024 * 1024)


def files_in(folder: str) -> dict[str, bytes]:
    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.e2e
def test_an_s3_prefix_is_fetched_as_a_folder(s3: S3Server, cache: Path) -> None:
    s3.put("folder", {"iris/model.onnx": MODEL, "iris/meta/labels.txt": b"setosa", "iris2/other.onnx": b"not ours"})
    got = fetch("s3://folder/iris", str(cache), s3.env())
    assert files_in(got) == {"model.onnx": MODEL, "meta/labels.txt": b"setosa"}
    assert Path(got).parent == cache


@pytest.mark.e2e
def test_an_s3_object_is_fetched_under_its_name(s3: S3Server, cache: Path) -> None:
    s3.put("single", {"models/iris.onnx": MODEL})
    assert files_in(fetch("s3://single/models/iris.onnx", str(cache), s3.env())) == {"iris.onnx": MODEL}


@pytest.mark.e2e
def test_s3_endpoint_as_kserve_writes_it(s3: S3Server, cache: Path) -> None:
    """S3_ENDPOINT is a host:port, with S3_USE_HTTPS=0 for plain HTTP (minio's usual form)."""
    s3.put("kserve-form", {"iris/model.onnx": MODEL})
    host = s3.endpoint.removeprefix("http://")
    env = s3.env(AWS_ENDPOINT_URL="", S3_ENDPOINT=host, S3_USE_HTTPS="0", AWS_REGION="", AWS_DEFAULT_REGION="us-east-1")
    assert files_in(fetch("s3://kserve-form/iris", str(cache), env)) == {"model.onnx": MODEL}


@pytest.mark.e2e
def test_anonymous_s3_sends_unsigned_requests(s3: S3Server, cache: Path) -> None:
    s3.put("public", {"iris/model.onnx": MODEL}, acl="public-read")
    s3.put("public", {"private/model.onnx": MODEL})
    env = {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_REGION": "us-east-1", "awsAnonymousCredential": "true"}
    assert files_in(fetch("s3://public/iris", str(cache), env)) == {"model.onnx": MODEL}
    expect_failure("s3://public/private", cache / "other", env, "S3 refused: 403")  # not signed: no access to it


@pytest.mark.e2e
def test_a_gcs_prefix_is_fetched_anonymously_from_the_emulator(gcs: GcsServer, cache: Path) -> None:
    gcs.put("kfserving-samples", {"models/onnx/iris/model.onnx": MODEL, "models/onnx/iris/README": b"hi"})
    got = fetch("gs://kfserving-samples/models/onnx/iris", str(cache), gcs.env())
    assert files_in(got) == {"model.onnx": MODEL, "README": b"hi"}


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("model.onnx", lambda: MODEL),
        ("iris.zip", lambda: zip_bytes({"iris/model.onnx": MODEL, "iris/": b""})),
        ("iris.tar.gz", lambda: tar_bytes({"model.onnx": MODEL})),
        ("iris.tgz", lambda: tar_bytes({"./model.onnx": MODEL}, links={"latest.onnx": "model.onnx"})),
    ],
)
def test_http_file_zip_and_tarball(files: FileServer, cache: Path, name: str, make: object) -> None:
    files.files[f"/models/{name}"] = make()  # type: ignore[operator]
    got = files_in(fetch(f"{files.url}/models/{name}", str(cache), {}))
    assert MODEL in got.values() and not any(key.endswith((".zip", ".gz", ".tgz")) for key in got)


@pytest.mark.e2e
def test_a_second_fetch_of_the_same_version_downloads_nothing(files: FileServer, s3: S3Server, cache: Path) -> None:
    files.files["/iris.onnx"] = MODEL
    first = fetch(f"{files.url}/iris.onnx", str(cache), {})
    assert fetch(f"{files.url}/iris.onnx", str(cache), {}) == first
    assert files.gets["/iris.onnx"] == 1
    s3.put("cached", {"iris/model.onnx": MODEL})
    first = fetch("s3://cached/iris", str(cache), s3.env())
    before = s3.gets()
    assert fetch("s3://cached/iris", str(cache), s3.env()) == first
    assert s3.gets() == before


def test_a_new_version_is_a_new_download(files: FileServer, cache: Path) -> None:
    files.files["/iris.onnx"] = MODEL
    first = fetch(f"{files.url}/iris.onnx", str(cache), {})
    files.files["/iris.onnx"] = MODEL + b"v2"  # a new ETag
    second = fetch(f"{files.url}/iris.onnx", str(cache), {})
    assert second != first and files_in(second) == {"iris.onnx": MODEL + b"v2"}
    assert files.gets["/iris.onnx"] == 2


def test_a_server_refusing_head_is_fetched_with_get(files: FileServer, cache: Path) -> None:
    files.files["/iris.onnx"] = MODEL
    files.head_allowed = False
    assert files_in(fetch(f"{files.url}/iris.onnx", str(cache), {})) == {"iris.onnx": MODEL}


def test_replicas_starting_together_fetch_once(files: FileServer, cache: Path) -> None:
    files.files["/iris.tar.gz"] = tar_bytes({"model.onnx": MODEL})
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(fetch(f"{files.url}/iris.tar.gz", str(cache), {}))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(got) == 4 and len(set(got)) == 1
    assert files.gets["/iris.tar.gz"] == 1


def test_a_local_path_is_read_in_place(tmp_path: Path, cache: Path) -> None:
    assert fetch(str(IRIS), str(cache)) == str(IRIS)
    assert fetch(f"file://{IRIS}", str(cache)) == str(IRIS)
    with pytest.raises(StorageError, match="file:///nowhere/iris.onnx: no such file or directory"):
        fetch("file:///nowhere/iris.onnx", str(cache))
    assert not cache.exists()


def expect_failure(uri: str, cache: Path, env: dict[str, str], *needles: str, max_bytes: int | None = None) -> None:
    """The fetch fails with one message naming the URI and each needle, and leaves nothing complete or partial."""
    with pytest.raises(StorageError) as info:
        if max_bytes is None:
            fetch(uri, str(cache), env)
        else:
            fetch(uri, str(cache), env, max_bytes=max_bytes)
    message = str(info.value)
    assert message.startswith(uri) and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    assert cache_entries(cache) == []


@pytest.mark.e2e
def test_missing_s3_key(s3: S3Server, cache: Path) -> None:
    s3.put("missing", {"iris/model.onnx": MODEL})
    expect_failure("s3://missing/nothing-here", cache, s3.env(), "no such object or prefix in bucket missing")
    expect_failure("s3://no-such-bucket/iris", cache, s3.env(), "NoSuchBucket")


@pytest.mark.e2e
def test_wrong_s3_credentials(s3_auth: S3Server, cache: Path) -> None:
    s3_auth.put("private", {"iris/model.onnx": MODEL})
    assert files_in(fetch("s3://private/iris", str(cache), s3_auth.env())) == {"model.onnx": MODEL}
    cache = cache.with_name("other")
    expect_failure("s3://private/iris", cache, s3_auth.env(AWS_SECRET_ACCESS_KEY="wrong"), "S3 refused", "SignatureDoesNotMatch")
    expect_failure("s3://private/iris", cache, s3_auth.env(AWS_ACCESS_KEY_ID="AKIANOBODY"), "S3 refused", "InvalidAccessKeyId")


@pytest.mark.e2e
def test_no_s3_credentials(s3_auth: S3Server, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3_auth.put("nokey", {"iris/model.onnx": MODEL})
    env = s3_auth.env(AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")
    expect_failure("s3://nokey/iris", cache, env, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")


@pytest.mark.e2e
def test_missing_gcs_object(gcs: GcsServer, cache: Path) -> None:
    gcs.put("gcs-missing", {"a/model.onnx": MODEL})
    expect_failure("gs://gcs-missing/b", cache, gcs.env(), "no such object or prefix")
    expect_failure("gs://no-such-gcs-bucket/b", cache, gcs.env(), "Google Cloud Storage refused")


def test_an_unreachable_gcs_fails_within_its_retry_timeout(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.storage import gcs

    monkeypatch.setattr(gcs, "RETRY_TIMEOUT", 1.0)
    started = time.monotonic()
    expect_failure("gs://models/iris", cache, {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:1"}, "Google Cloud Storage refused")
    assert time.monotonic() - started < 15  # the library alone would retry for 120 s


def test_http_404_and_unreachable(files: FileServer, cache: Path) -> None:
    expect_failure(f"{files.url}/nothing.onnx", cache, {}, "HTTP 404")
    expect_failure("http://127.0.0.1:1/iris.onnx", cache, {})


def test_a_corrupt_archive(files: FileServer, cache: Path) -> None:
    files.files["/iris.tar.gz"] = b"\x1f\x8b this is no tarball"
    files.files["/iris.zip"] = zip_bytes({"model.onnx": MODEL})[:-30]
    expect_failure(f"{files.url}/iris.tar.gz", cache, {}, "corrupt archive")
    expect_failure(f"{files.url}/iris.zip", cache, {}, "corrupt archive")


@pytest.mark.parametrize(
    ("archive", "needle"),
    [
        (lambda: zip_bytes({"../../evil.onnx": b"x"}), "outside the target directory"),
        (lambda: zip_bytes({"/etc/evil.onnx": b"x"}), "absolute name"),
        (lambda: tar_bytes({"a/../../evil.onnx": b"x"}), "outside the target directory"),
        (lambda: tar_bytes({"/tmp/evil.onnx": b"x"}), "absolute name"),
        (lambda: tar_bytes({}, links={"model.onnx": "/etc/passwd"}), "links to an absolute path"),
        (lambda: tar_bytes({}, links={"model.onnx": "../../../etc/passwd"}), "links outside the target directory"),
        (lambda: tar_bytes({}, links={"d": ".", "d/x": ".."}), "links outside the target directory"),
    ],
)
def test_a_hostile_archive_is_refused(files: FileServer, cache: Path, tmp_path: Path, archive: object, needle: str) -> None:
    data = archive()  # type: ignore[operator]
    name = "/m.zip" if data[:2] == b"PK" else "/m.tar.gz"
    files.files[name] = data
    expect_failure(f"{files.url}{name}", cache, {}, needle)
    assert not (tmp_path / "evil.onnx").exists() and not Path("/tmp/evil.onnx").exists()


def test_absurd_sizes_are_refused(files: FileServer, cache: Path) -> None:
    files.files["/bomb.zip"] = zip_bytes({"model.onnx": b"\0" * 100_000})  # compresses to a few hundred bytes
    files.files["/bomb.tar.gz"] = tar_bytes({"model.onnx": b"\0" * 100_000})
    files.files["/big.onnx"] = b"\0" * 100_000
    expect_failure(f"{files.url}/bomb.zip", cache, {}, "more than 10000 bytes", max_bytes=10_000)
    expect_failure(f"{files.url}/bomb.tar.gz", cache, {}, "more than 10000 bytes", max_bytes=10_000)
    expect_failure(f"{files.url}/big.onnx", cache, {}, "more than the limit of 10000", max_bytes=10_000)


def test_without_the_storage_extra_the_error_says_what_to_install(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now raises ImportError
    monkeypatch.setitem(sys.modules, "google.cloud", None)
    for uri in ("s3://models/iris", "gs://models/iris"):
        with pytest.raises(MissingExtraError) as info:
            fetch(uri, str(cache), {})
        assert str(info.value).startswith(uri) and "pip install 'serving-gateway[storage]'" in str(info.value)


@pytest.mark.parametrize(
    ("uri", "needle"),
    [("ftp://host/m.onnx", "unsupported scheme 'ftp'"), ("s3://", "expected s3://BUCKET/PREFIX"), ("", "empty storage URI")],
)
def test_malformed_uris(cache: Path, uri: str, needle: str) -> None:
    with pytest.raises(StorageError, match=needle):
        fetch(uri, str(cache), {})


def test_no_partial_is_left_by_a_failure(files: FileServer, cache: Path) -> None:
    files.files["/iris.tar.gz"] = b"garbage"
    with pytest.raises(StorageError):
        fetch(f"{files.url}/iris.tar.gz", str(cache), {})
    assert no_partials(cache)


@pytest.mark.e2e
def test_a_killed_download_leaves_nothing_served_and_the_next_starts_clean(files: FileServer, cache: Path) -> None:
    files.files["/big.onnx"] = BIG
    files.stall.add("/big.onnx")
    code = f"from gateway.storage import fetch; fetch({files.url + '/big.onnx'!r}, {str(cache)!r}, {{}})"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:

        def half_written() -> bool:
            partials = list(cache.glob(".partial-*/big.onnx")) if cache.exists() else []
            return bool(partials) and partials[0].stat().st_size > 0

        wait_until_blocking(half_written, "half the download on disk", within=30)
    finally:
        proc.kill()
        proc.wait()
    assert [name for name in cache_entries(cache) if not name.startswith(".partial-")] == []  # nothing looks complete
    files.stall.clear()
    files.release.set()
    got = fetch(f"{files.url}/big.onnx", str(cache), {})
    assert files_in(got) == {"big.onnx": BIG}
    assert no_partials(cache) and cache_entries(cache) == [Path(got).name]
