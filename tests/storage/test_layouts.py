"""Bucket layouts a file system cannot hold, and model files named as the storage initializer's own: each a
one-line error naming the URI and the keys, never a traceback or an emptied DEST."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.storage import StorageError, fetch
from gateway.storage.initializer import CACHE, MARKER, initialize
from tests.storage.servers import IRIS, FileServer, GcsServer, S3Server, cache_entries, tar_bytes

MODEL = IRIS.read_bytes()


def refused(uri: str, cache: Path, env: dict[str, str], *needles: str) -> None:
    with pytest.raises(StorageError) as info:
        fetch(uri, str(cache), env)
    message = str(info.value)
    assert message.startswith(f"{uri}: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    assert cache_entries(cache) == []


@pytest.mark.e2e
def test_an_s3_key_that_is_a_file_where_another_needs_a_folder(s3: S3Server, cache: Path) -> None:
    s3.put("layouts", {"filedir/model.onnx": MODEL, "filedir/a": b"x", "filedir/a/b": b"y"})
    refused("s3://layouts/filedir", cache, s3.env(), "key 'filedir/a' is a file where key 'filedir/a/b' needs a folder")


@pytest.mark.e2e
def test_two_s3_keys_for_one_file(s3: S3Server, cache: Path) -> None:
    s3.put("layouts2", {"dup/model.onnx": MODEL, "dup//model.onnx": b"other"})
    refused(
        "s3://layouts2/dup", cache, s3.env(), "keys 'dup//model.onnx' and 'dup/model.onnx' would both be written to 'model.onnx'"
    )


@pytest.mark.e2e
def test_a_gcs_object_that_is_a_file_where_another_needs_a_folder(gcs: GcsServer, cache: Path) -> None:
    gcs.put("layouts", {"filedir/model.onnx": MODEL, "filedir/a": b"x", "filedir/a/b": b"y"})
    refused("gs://layouts/filedir", cache, gcs.env(), "key 'filedir/a' is a file where key 'filedir/a/b' needs a folder")


@pytest.mark.e2e
def test_a_model_with_a_cache_folder_of_its_own(files: FileServer, s3: S3Server, tmp_path: Path) -> None:
    """Hugging Face style `.cache/` folders are the model's: the initializer keeps its own bookkeeping elsewhere."""
    files.files["/m.tar.gz"] = tar_bytes({"model.onnx": MODEL, ".cache/x": b"junk"})
    dest = tmp_path / "tar"
    initialize(f"{files.url}/m.tar.gz", str(dest), {})
    assert (dest / "model.onnx").read_bytes() == MODEL and (dest / ".cache" / "x").read_bytes() == b"junk"
    assert not (dest / CACHE).exists() and (dest / MARKER).read_text() == f"{files.url}/m.tar.gz"
    s3.put("dotcache", {"m/model.onnx": MODEL, "m/.cache/x": b"junk"})
    dest = tmp_path / "s3"
    initialize("s3://dotcache/m", str(dest), s3.env())
    assert sorted(os.listdir(dest)) == sorted([".cache", "model.onnx", MARKER])


def test_a_model_file_named_as_the_initializers_marker_is_refused(files: FileServer, tmp_path: Path) -> None:
    files.files["/m.tar.gz"] = tar_bytes({"model.onnx": MODEL, MARKER: b"junk"})
    uri = f"{files.url}/m.tar.gz"
    with pytest.raises(StorageError) as info:
        initialize(uri, str(tmp_path / "dest"), {})
    assert str(info.value) == (
        f"{uri}: the model has a top-level file {MARKER!r}: names starting with '.serving-gateway-' are the storage "
        "initializer's own in DEST"
    )
    assert os.listdir(tmp_path / "dest") == []
