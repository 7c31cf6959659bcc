"""Rollout records in Redis (`spec.redis`): one hash shared by every gateway of the deployment.

Redis never says what runs: a record here holds numbers, digests and the percent, never a revision's spec
(command, image, env...): whoever can write Redis could otherwise run anything on every gateway host. The
rolled-out revision's spec comes from a trusted place (gateway.rollouts.specs), else the reload is refused.

Each write is a compare-and-set in Lua (the record is set only if the stored one is still the one the
writer resolved against), so two gateways loading the same new manifest give it the same number: the
second finds the first's record, resolves again against it, and gets what it says.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.rollouts.record import RecordError, RolloutRecord
from gateway.rollouts.stores import Ident, RolloutError, Swap
from gateway.shared.keys import Keys

COMPARE_AND_SET = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current == false and ARGV[2] == '') or current == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return ARGV[3]
end
return current
"""
TIMEOUT = 5.0


class RedisRolloutStore:
    def __init__(self, url: str, keys: Keys | None = None, *, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.key = (keys or Keys()).rollouts
        self.redis: Redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True)
        self._cas = self.redis.register_script(COMPARE_AND_SET)

    async def load(self, idents: Iterable[Ident]) -> dict[Ident, RolloutRecord]:
        wanted = list(idents)
        if not wanted:
            return {}
        try:
            values = await self.redis.hmget(self.key, [f"{ns}/{name}" for ns, name in wanted])
        except RedisError as exc:
            raise RolloutError(f"cannot read the rollout records from Redis ({self.key}): {exc}") from None
        return {ident: self._parse(ident, value) for ident, value in zip(wanted, values, strict=True) if value is not None}

    async def swap(self, swaps: Iterable[Swap]) -> dict[Ident, RolloutRecord | None]:
        stored: dict[Ident, RolloutRecord | None] = {}
        try:
            for ident, expected, record in swaps:
                field = f"{ident[0]}/{ident[1]}"
                before = "" if expected is None else expected.to_json(with_spec=False)
                value = await self._cas(keys=[self.key], args=[field, before, record.to_json(with_spec=False)])
                stored[ident] = None if value is None else self._parse(ident, value)
        except RedisError as exc:
            raise RolloutError(f"cannot write the rollout records to Redis ({self.key}): {exc}") from None
        return stored

    def _parse(self, ident: Ident, value: str | bytes) -> RolloutRecord:
        try:
            return RolloutRecord.from_json(value, trusted=False)
        except RecordError as exc:
            raise RolloutError(f"the rollout record of {ident[0]}/{ident[1]} in Redis ({self.key}) is corrupt: {exc}") from None

    async def close(self) -> None:
        await self.redis.aclose()
