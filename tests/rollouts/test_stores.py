"""The rollout stores: a file in the state directory, Redis (compare-and-set), and what they refuse."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.rollouts.record import RecordError, RolloutRecord
from gateway.rollouts.redis_store import RedisRolloutStore
from gateway.rollouts.resolve import advance
from gateway.rollouts.resolver import settle
from gateway.rollouts.specs import FILE_NAME, read_specs
from gateway.rollouts.stores import FileRolloutStore, RolloutError, read_file
from tests.rollouts.support import A, B, C, record, template
from tests.shared.redis_server import RedisServer

IRIS = ("models", "iris")
CANARY = record(2, 1, A, 2, B, 10, 2)


def test_a_record_survives_json_whole() -> None:
    assert RolloutRecord.from_json(CANARY.to_json()) == CANARY
    spec = RolloutRecord.from_json(CANARY.to_json()).rolled_out_spec
    assert spec is not None and spec.tolerations == ({"key": "gpu"},)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"format": 9}', "format 9, this gateway reads format 1"),
        (CANARY.to_json().replace('"percent":10', '"percent":150'), "percent must be null or 0..100, got 150"),
        (CANARY.to_json().replace('"latest":2', '"latest":7'), "needs rolledOut <= latest <= counter, got 1, 7, 2"),
        (CANARY.to_json().replace('"counter":2', '"counter":"2"'), "counter must be an integer >= 1, got '2'"),
        (CANARY.to_json().replace('"workdir":null', '"whatever":1'), "rolledOutSpec has fields this gateway does not know"),
    ],
)
def test_a_bad_record_says_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(RecordError, match=error.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        RolloutRecord.from_json(text)


async def test_the_file_store_keeps_records_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "state" / "rollouts.json"
    first = FileRolloutStore(path)
    assert await first.load([IRIS]) == {}
    assert await first.swap([(IRIS, None, CANARY)]) == {IRIS: CANARY}
    assert json.loads(path.read_text())["models/iris"]["latest"] == 2
    assert not [p for p in path.parent.iterdir() if p.name != "rollouts.json"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the predictors' env values (README says so)
    second = FileRolloutStore(path)  # a restarted gateway
    assert await second.load([IRIS, ("models", "other")]) == {IRIS: CANARY}
    # a compare-and-set against a record that is no longer stored writes nothing and says what is
    assert await second.swap([(IRIS, None, record(1, 1, B, 1, B, None, 1))]) == {IRIS: CANARY}
    assert await FileRolloutStore(path).load([IRIS]) == {IRIS: CANARY}


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("{not json", "not JSON"),
        ('["a"]', "not a JSON object"),
        ('{"iris": {}}', "'iris' is not namespace/name"),
        ('{"models/iris": {"format": 1}}', "models/iris: counter must be an integer"),
    ],
)
async def test_a_corrupt_file_is_an_error_naming_it_never_a_reset(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "rollouts.json"
    path.write_text(content)
    store = FileRolloutStore(path)
    with pytest.raises(RolloutError) as caught:
        await store.load([IRIS])
    assert str(path) in str(caught.value) and "corrupt" in str(caught.value) and error in str(caught.value)
    assert path.read_text() == content  # left for the user to look at
    with pytest.raises(RolloutError):
        read_file(path)


async def test_a_file_that_cannot_be_written_is_an_error_and_keeps_the_old_records(tmp_path: Path) -> None:
    path = tmp_path / "state" / "rollouts.json"
    store = FileRolloutStore(path)
    assert await store.load([IRIS]) == {}
    (tmp_path / "state").write_text("")  # the state directory is a file now: nothing can be written under it (even as root)
    with pytest.raises(RolloutError, match="cannot write the rollout records .*state/rollouts.json"):
        await store.swap([(IRIS, None, CANARY)])
    assert store.records == {}


@pytest.mark.e2e
async def test_two_redis_stores_give_the_same_number_for_the_same_manifest(redis_server: RedisServer) -> None:
    one, two = RedisRolloutStore(redis_server.url), RedisRolloutStore(redis_server.url)
    try:
        v1, v2 = template(A), template(B, 10)
        assert (await settle(one, [v1]))[v1.ident].latest == 1
        assert (await settle(two, [v1]))[v1.ident].latest == 1
        # both load the new manifest at the same moment: one compare-and-set wins, the other resolves again
        first, second = await asyncio.gather(settle(one, [v2]), settle(two, [v2]))
        assert first[v2.ident] == second[v2.ident] == advance(advance(None, A, None), B, 10)
        assert first[v2.ident].latest == 2 and first[v2.ident].counter == 2
        three = RedisRolloutStore(redis_server.url)  # a gateway started later reads the same record
        assert await three.load([v2.ident]) == {v2.ident: first[v2.ident]}
        await three.close()
    finally:
        await one.close()
        await two.close()


@pytest.mark.e2e
async def test_two_redis_stores_never_give_one_number_to_two_revisions(redis_server: RedisServer) -> None:
    """Two gateways loading different manifests at once (one edited between their reads): the second
    compare-and-set finds the first's record and takes the next number."""
    one, two = RedisRolloutStore(redis_server.url), RedisRolloutStore(redis_server.url)
    try:
        await settle(one, [template(A)])
        await settle(two, [template(A)])  # both connected: their reads of v1's record come before either write
        first, second = await asyncio.gather(settle(one, [template(B, 10)]), settle(two, [template(C, 10)]))
        numbers = {(first[IRIS].latest, first[IRIS].latest_digest), (second[IRIS].latest, second[IRIS].latest_digest)}
        assert sorted(number for number, _ in numbers) == [2, 3]
        assert (await one.load([IRIS]))[IRIS].counter == 3
    finally:
        await one.close()
        await two.close()


@pytest.mark.e2e
async def test_a_corrupt_redis_record_is_an_error_naming_it(redis_server: RedisServer) -> None:
    store = RedisRolloutStore(redis_server.url)
    try:
        await store.redis.hset(store.key, "models/iris", "garbage")
        with pytest.raises(RolloutError, match=r"rollout record of models/iris in Redis \(serving-gateway:rollouts\) is corrupt"):
            await store.load([IRIS])
    finally:
        await store.close()


async def test_redis_away_is_an_error_not_a_guess(tmp_path: Path) -> None:
    from tests.conftest import free_port

    store = RedisRolloutStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        with pytest.raises(RolloutError, match="cannot read the rollout records from Redis"):
            await store.load([IRIS])
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("{not json", "not JSON"),
        ('["a"]', "not a JSON object"),
        ('{"iris": {}}', "'iris' is not namespace/name"),
        ('{"models/iris": []}', "'models/iris' does not hold an object of specs"),
    ],
)
def test_a_corrupt_revisions_file_is_an_error_naming_it_and_what_to_do(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(RolloutError) as caught:
        read_specs(path)
    assert str(caught.value).startswith(f"the revisions this gateway applied, {path}, are corrupt (move the file away")
    assert error in str(caught.value)
