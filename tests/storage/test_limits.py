"""What a download may take: bytes (a setting), disk space, compression ratio, time; and what a lying HTTP
server gets. Real servers on loopback (tests/storage/hostile.py, servers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.storage import MAX_BYTES_ENV, TIMEOUT_ENV, Limits, StorageError, fetch
from gateway.storage.cache import STALE_PARTIAL
from gateway.storage.limits import timeout_from
from tests.storage.hostile import HostileServer, serve_hostile
from tests.storage.servers import IRIS, ROOT, FileServer, cache_entries, tar_bytes, zip_bytes

MODEL = IRIS.read_bytes()
ZEROS = b"\0" * (40 * 1024 * 1024)  # compresses about 1000:1


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    yield from serve_hostile(MODEL)


def failure(uri: str, cache: Path, env: dict[str, str] | None = None, **kwargs: object) -> str:
    """The one-line error naming the URI; nothing left in the cache."""
    with pytest.raises(StorageError) as info:
        fetch(uri, str(cache), env or {}, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(uri) and "\n" not in message, message
    assert cache_entries(cache) == [], cache_entries(cache)
    return message


@pytest.mark.parametrize("name", ["bomb.tar.gz", "bomb.zip"])
def test_an_archive_bomb_is_refused_by_its_compression_ratio(files: FileServer, cache: Path, name: str) -> None:
    files.files[f"/{name}"] = zip_bytes({"model.onnx": ZEROS}) if name.endswith(".zip") else tar_bytes({"model.onnx": ZEROS})
    assert len(files.files[f"/{name}"]) < 200_000
    message = failure(f"{files.url}/{name}", cache)
    assert "compression ratio over 200:1" in message and "archive bomb" in message


def test_an_incompressible_archive_past_the_grace_is_unpacked(files: FileServer, cache: Path) -> None:
    data = os.urandom(20 * 1024 * 1024)
    files.files["/big.tar"] = tar_bytes({"model.bin": data}, mode="w")
    got = Path(fetch(f"{files.url}/big.tar", str(cache), {}))
    assert (got / "model.bin").read_bytes() == data


def test_the_limit_comes_from_the_environment(files: FileServer, cache: Path) -> None:
    files.files["/big.onnx"] = b"\1" * 20_000
    assert "more than the limit of 10000" in failure(f"{files.url}/big.onnx", cache, {MAX_BYTES_ENV: "10000"})
    assert f"${MAX_BYTES_ENV} must be a number of bytes >= 1, got 'ten'" in failure(
        f"{files.url}/big.onnx", cache, {MAX_BYTES_ENV: "ten"}
    )
    assert Path(fetch(f"{files.url}/big.onnx", str(cache), {MAX_BYTES_ENV: "20000"}), "big.onnx").stat().st_size == 20_000


def test_an_endless_body_stops_at_the_limit(hostile: HostileServer, cache: Path) -> None:
    assert "more than the limit of 1000000 bytes" in failure(f"{hostile.url}/endless/model.onnx", cache, max_bytes=1_000_000)


def test_a_download_that_would_fill_the_disk_is_refused_before_it_starts(files: FileServer, cache: Path) -> None:
    files.files["/iris.onnx"] = MODEL
    message = failure(f"{files.url}/iris.onnx", cache, limits=Limits(space=lambda path: (10**6, 10**7), min_free=0.1))
    assert f"not enough disk space in {cache}" in message and f"writing {len(MODEL)} more bytes" in message
    assert "less than 10% free" in message


def test_an_endless_body_stops_before_the_disk_is_full(hostile: HostileServer, cache: Path) -> None:
    """The free space is looked at as the bytes arrive: here a 100 MB disk with 10 MB free, less what was written."""

    def space(path: str) -> tuple[int, int]:
        written = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
        return 10_000_000 - written, 100_000_000

    message = failure(f"{hostile.url}/endless/model.onnx", cache, limits=Limits(space=space, check_every=256 * 1024))
    assert "not enough disk space" in message and "writing on would leave less than 5% free" in message


def test_an_unpacked_archive_is_checked_against_the_disk_too(files: FileServer, cache: Path) -> None:
    files.files["/big.tar"] = tar_bytes({"model.bin": b"\1" * 3_000_000}, mode="w")

    def space(path: str) -> tuple[int, int]:
        written = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
        return 10_000_000 - written, 100_000_000

    message = failure(f"{files.url}/big.tar", cache, limits=Limits(space=space, check_every=256 * 1024))
    assert "not enough disk space" in message


def test_partials_older_than_a_day_are_removed_at_start(files: FileServer, cache: Path) -> None:
    cache.mkdir()
    old, fresh = cache / ".partial-other-abc-123", cache / ".partial-another-def-456"
    old.mkdir()
    (old / "half.onnx").write_bytes(b"x")
    fresh.mkdir()
    then = time.time() - STALE_PARTIAL - 60
    os.utime(old / "half.onnx", (then, then))
    os.utime(old, (then, then))
    files.files["/iris.onnx"] = MODEL
    fetch(f"{files.url}/iris.onnx", str(cache), {})
    assert not old.exists() and fresh.exists()


@pytest.mark.e2e
def test_the_initializer_takes_max_bytes(files: FileServer, tmp_path: Path) -> None:
    files.files["/big.onnx"] = b"\1" * 20_000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "gateway", "storage-initializer", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    refused = run("--max-bytes", "10000", f"{files.url}/big.onnx", str(tmp_path / "a"))
    assert refused.returncode == 1 and "more than the limit of 10000" in refused.stderr, refused.stderr
    bad = run("--max-bytes", "ten", f"{files.url}/big.onnx", str(tmp_path / "b"))
    assert bad.returncode == 2 and "--max-bytes: must be a number of bytes >= 1, got 'ten'" in bad.stderr, bad.stderr
    assert run("--max-bytes", "20000", f"{files.url}/big.onnx", str(tmp_path / "c")).returncode == 0
    assert (tmp_path / "c" / "big.onnx").stat().st_size == 20_000


def test_a_body_shorter_than_its_content_length(hostile: HostileServer, cache: Path) -> None:
    message = failure(f"{hostile.url}/short/model.onnx", cache)
    assert "peer closed connection without sending complete message body" in message


def test_a_body_longer_than_its_content_length(hostile: HostileServer, cache: Path) -> None:
    assert "the server sent more than its Content-Length of 100 bytes" in failure(f"{hostile.url}/long/model.onnx", cache)


def test_an_html_page_is_not_a_model(hostile: HostileServer, cache: Path) -> None:
    message = failure(f"{hostile.url}/html/model.onnx", cache)
    assert "the server answered with an HTML page (text/html), not a model" in message
    got = Path(fetch(f"{hostile.url}/html/page.html", str(cache), {}))
    assert (got / "page.html").read_bytes().startswith(b"<html>")


def test_redirects_are_followed_five_times_to_http_only(hostile: HostileServer, cache: Path) -> None:
    assert "more than 5 redirects" in failure(f"{hostile.url}/redirect/6/model.onnx", cache)
    assert "unsupported protocol 'file://'" in failure(f"{hostile.url}/to-file/model.onnx", cache)
    got = Path(fetch(f"{hostile.url}/redirect/5/model.onnx", str(cache), {}))
    assert (got / "model.onnx").read_bytes() == MODEL


@pytest.mark.e2e  # waits for a 1.5 s deadline
def test_a_dripping_server_fails_at_the_deadline(hostile: HostileServer, cache: Path) -> None:
    started = time.monotonic()
    message = failure(f"{hostile.url}/drip/model.onnx", cache, limits=Limits(timeout=1.5))
    assert "the download deadline (1.5 s) passed before the model was complete" in message
    assert time.monotonic() - started < 10


@pytest.mark.e2e  # waits for a 1 s deadline
def test_the_deadline_comes_from_the_environment(hostile: HostileServer, cache: Path) -> None:
    uri = f"{hostile.url}/drip/model.onnx"
    assert "the download deadline (1 s) passed" in failure(uri, cache, {TIMEOUT_ENV: "1"})
    assert f"${TIMEOUT_ENV} must be a number of seconds > 0, got 'soon'" in failure(uri, cache, {TIMEOUT_ENV: "soon"})
    assert f"${TIMEOUT_ENV} must be a number of seconds > 0, got '-5'" in failure(uri, cache, {TIMEOUT_ENV: "-5"})


def test_the_default_deadline_is_under_the_local_backends_start_timeout() -> None:
    assert timeout_from({}, local=False) == 600.0
    assert timeout_from({}, local=True) == 90.0 < 120.0  # LocalBackend's start_timeout
    assert timeout_from({TIMEOUT_ENV: "30"}, local=True) == 30.0


@pytest.mark.e2e
def test_the_initializer_takes_a_timeout(hostile: HostileServer, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gateway", "storage-initializer", "--timeout", "1", f"{hostile.url}/drip/m.onnx"]
    done = subprocess.run([*command, str(tmp_path / "a")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "the download deadline (1 s) passed before the model was complete" in done.stderr, done.stderr
    command[5] = "0"
    bad = subprocess.run([*command, str(tmp_path / "b")], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--timeout: must be a number of seconds > 0, got '0'" in bad.stderr, bad.stderr
