"""Redis never says what runs: a record there holds numbers, digests and the percent; the rolled-out revision's
spec comes from this gateway's state directory (0600, written when it applied the manifest) or the revision's
Deployment annotation, else the configuration is refused. A spec written into Redis is never run."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from gateway.config.model import Config, GatewaySettings, RevisionSpec, ServiceSpec
from gateway.rollouts.record import revision_digest
from gateway.rollouts.redis_store import RedisRolloutStore
from gateway.rollouts.resolve import advance
from gateway.rollouts.resolver import Rollouts
from gateway.rollouts.spec_json import spec_json
from gateway.rollouts.specs import FILE_NAME
from gateway.rollouts.stores import MemoryRolloutStore, RolloutError
from tests.rollouts.support import B, template
from tests.shared.redis_server import RedisServer

pytestmark = pytest.mark.e2e  # every test starts a redis-server

IRIS = ("models", "iris")
SECRET = "s3cr3t-value-v1"
A = RevisionSpec("predictor", command=("serve", "v1", "{port}"), env=(("AWS_SECRET_ACCESS_KEY", SECRET),))
EVIL = ("sh", "-c", "touch /tmp/owned-by-redis")


def gateway(state: Path, url: str, **kwargs: object) -> Rollouts:
    return Rollouts(state, redis=partial(RedisRolloutStore, url), **kwargs)  # type: ignore[arg-type]


async def resolve(rollouts: Rollouts, url: str, spec: ServiceSpec) -> ServiceSpec:
    (resolved,) = (await rollouts.resolve(Config(GatewaySettings(redis=url), (spec,)))).services
    return resolved


async def raw_record(url: str) -> str:
    store = RedisRolloutStore(url)
    try:
        value = await store.redis.hget(store.key, "models/iris")
        assert isinstance(value, str)
        return value
    finally:
        await store.close()


async def canary_applied(state: Path, url: str) -> None:
    """A gateway applied v1, then v2 at 10 %: Redis holds the canary's record."""
    one = gateway(state, url)
    try:
        await resolve(one, url, template(A))
        resolved = await resolve(one, url, template(B, 10))
        assert resolved.canary is not None and resolved.default.command == A.command
    finally:
        await one.close()


async def test_redis_holds_no_spec_and_no_env_value_the_state_directory_does_0600(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    await canary_applied(tmp_path / "state", redis_server.url)
    raw = await raw_record(redis_server.url)
    assert "rolledOutSpec" not in raw and SECRET not in raw and "serve" not in raw and "AWS_SECRET" not in raw
    assert json.loads(raw)["rolledOutDigest"] == revision_digest(A)
    kept = tmp_path / "state" / FILE_NAME
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert SECRET in kept.read_text()  # what runs, kept where only this gateway writes


async def test_a_spec_written_into_redis_is_never_run(redis_server: RedisServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    await canary_applied(state, redis_server.url)
    tampered = json.loads(await raw_record(redis_server.url))
    tampered["rolledOutSpec"] = spec_json(replace(A, command=EVIL, env=(("REV", "FROM-REDIS"),)))
    store = RedisRolloutStore(redis_server.url)
    await store.redis.hset(store.key, "models/iris", json.dumps(tampered))
    await store.close()
    restarted = gateway(state, redis_server.url)
    try:
        resolved = await resolve(restarted, redis_server.url, template(B, 10))
    finally:
        await restarted.close()
    assert resolved.default.command == A.command and resolved.default.env == A.env  # the rolled-out v1, as applied
    assert resolved.canary is not None and resolved.canary.command == B.command


async def test_a_gateway_that_never_applied_the_rolled_out_revision_refuses_never_invents(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    await canary_applied(tmp_path / "one", redis_server.url)
    fresh = gateway(tmp_path / "two", redis_server.url)
    try:
        with pytest.raises(RolloutError, match=r"never applied: models/iris-predictor-00001.*Promote the latest"):
            await resolve(fresh, redis_server.url, template(B, 10))
        promoted = await resolve(fresh, redis_server.url, template(B))  # promoting needs no old spec
        assert promoted.canary is None and promoted.default.command == B.command
    finally:
        await fresh.close()


async def test_a_worker_reads_the_spec_its_supervisor_kept(redis_server: RedisServer, tmp_path: Path) -> None:
    await canary_applied(tmp_path / "state", redis_server.url)
    worker = gateway(tmp_path / "state", redis_server.url, read_only=True)
    try:
        resolved = await resolve(worker, redis_server.url, template(B, 10))
    finally:
        await worker.close()
    assert resolved.default.command == A.command and resolved.canary is not None


async def test_on_kubernetes_the_spec_comes_from_the_deployment_annotation(redis_server: RedisServer, tmp_path: Path) -> None:
    await canary_applied(tmp_path / "one", redis_server.url)
    annotated = advance(advance(None, A, None), B, 10)  # as the backend wrote it on the revision's Deployments
    wrong = replace(annotated, rolled_out_spec=replace(A, command=EVIL), rolled_out_digest="another")
    for held, expected in ((annotated, A.command), (wrong, None)):
        fresh = Rollouts(
            tmp_path / f"two-{expected is None}",
            redis=partial(RedisRolloutStore, redis_server.url),
            kube=partial(MemoryRolloutStore, {IRIS: held}),
        )
        spec = replace(template(B, 10), backend="kubernetes").digested()
        try:
            if expected is None:  # an annotation of another rolled-out revision is no answer
                with pytest.raises(RolloutError, match="never applied"):
                    await resolve(fresh, redis_server.url, spec)
            else:
                assert (await resolve(fresh, redis_server.url, spec)).default.command == expected
        finally:
            await fresh.close()
