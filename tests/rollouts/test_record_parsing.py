"""Rollout records from every store are parsed defensively: bounded size and depth, every field type-checked,
a RecordError/RolloutError naming the field and the store, never a raw RecursionError or a revision that hangs."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from gateway.config.model import RevisionSpec
from gateway.rollouts.record import MAX_BYTES, RecordError, RolloutRecord
from gateway.rollouts.redis_store import RedisRolloutStore
from gateway.rollouts.spec_json import FIELDS
from gateway.rollouts.stores import FileRolloutStore, RolloutError
from tests.rollouts.support import A, B, record
from tests.shared.redis_server import RedisServer

IRIS = ("models", "iris")
CANARY = record(2, 1, A, 2, B, 10, 2)
DEEP = "[" * 100_000 + "]" * 100_000


def with_spec_field(key: str, value: object) -> str:
    data = json.loads(CANARY.to_json())
    data["rolledOutSpec"][key] = value
    return json.dumps(data)


def test_every_revision_spec_field_is_type_checked() -> None:
    assert set(FIELDS) == {f.name for f in fields(RevisionSpec)}


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("command", 5, "rolledOutSpec.command must be null, a non-empty string or a non-empty list of strings, got 5"),
        ("command", [], "rolledOutSpec.command must be"),
        ("command", ["serve", 1], "rolledOutSpec.command must be"),
        ("env", "AB", "rolledOutSpec.env must be a list of [name, value] string pairs, got 'AB'"),
        ("env", [["A"]], "rolledOutSpec.env must be a list of [name, value] string pairs"),
        ("env", [["A", 1]], "rolledOutSpec.env must be"),
        ("container_port", "80", "rolledOutSpec.container_port must be null or a port number"),
        ("container_port", 70000, "rolledOutSpec.container_port must be"),
        ("pod_spec", [], "rolledOutSpec.pod_spec must be null or an object"),
        ("resources", {"limits": {"cpu": 1}}, "rolledOutSpec.resources must be an object of objects of strings"),
        ("image", ["x"], "rolledOutSpec.image must be null or a string"),
        ("accelerator_count", True, "rolledOutSpec.accelerator_count must be an integer >= 0"),
        ("tolerations", ["gpu"], "rolledOutSpec.tolerations must be a list of objects"),
        ("name", None, "rolledOutSpec.name must be a string"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_by_name(key: str, value: object, error: str) -> None:
    with pytest.raises(RecordError) as caught:
        RolloutRecord.from_json(with_spec_field(key, value))
    assert error in str(caught.value)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (DEEP, "nested too deeply"),
        ('{"format": 1, "rolledOutSpec": ' + DEEP + "}", "nested too deeply"),
        (" " * (MAX_BYTES + 1), f"more than {MAX_BYTES}"),
        (CANARY.to_json().replace('"latestDigest":"', '"latestDigest":1,"x":"'), "latestDigest must be a non-empty string"),
        (CANARY.to_json(with_spec=False).replace('"rolledOutDigest"', '"other"'), "rolledOutSpec must be a JSON object"),
    ],
    ids=["deep", "deep-spec", "huge", "mistyped-digest", "no-spec"],
)
def test_deep_huge_or_mistyped_records_are_record_errors(text: str, error: str) -> None:
    with pytest.raises(RecordError, match=error):
        RolloutRecord.from_json(text)  # an annotation's text goes through this (the kube store names the Deployment)


def test_an_untrusted_record_without_its_rolled_out_digest_is_refused() -> None:
    text = CANARY.to_json(with_spec=False).replace('"rolledOutDigest"', '"other"')
    with pytest.raises(RecordError, match="rolledOutDigest is missing"):
        RolloutRecord.from_json(text, trusted=False)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"models/iris": ' + DEEP + "}", "nested too deeply"),
        (DEEP, "nested too deeply"),
        (json.dumps({"models/iris": json.loads(with_spec_field("command", 5))}), "models/iris: rolledOutSpec.command must be"),
        (json.dumps({"models/iris": json.loads(with_spec_field("env", "AB"))}), "models/iris: rolledOutSpec.env must be"),
    ],
    ids=["deep-record", "deep-file", "command-5", "env-AB"],
)
async def test_the_file_store_names_the_file_and_the_field(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "rollouts.json"
    path.write_text(content)
    with pytest.raises(RolloutError) as caught:
        await FileRolloutStore(path).load([IRIS])
    assert str(path) in str(caught.value) and error in str(caught.value)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("value", "error"),
    [(DEEP, "nested too deeply"), (CANARY.to_json(with_spec=False).replace('"percent":10', '"percent":"10"'), "percent")],
    ids=["deep", "mistyped"],
)
async def test_the_redis_store_names_the_key(redis_server: RedisServer, value: str, error: str) -> None:
    store = RedisRolloutStore(redis_server.url)
    try:
        await store.redis.hset(store.key, "models/iris", value)
        with pytest.raises(RolloutError, match=rf"models/iris in Redis \(serving-gateway:rollouts\) is corrupt: .*{error}"):
            await store.load([IRIS])
    finally:
        await store.close()
