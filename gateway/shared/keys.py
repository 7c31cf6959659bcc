"""The Redis keys and channels of one gateway deployment, and how a revision is named in them."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.types import RevisionKey, RevisionName, is_revision_name

PREFIX = "serving-gateway"


@dataclass(frozen=True)
class Keys:
    """Every key under one prefix: gateways that share a Redis (and a database) form one deployment."""

    prefix: str = PREFIX

    @property
    def members(self) -> str:
        return f"{self.prefix}:members"  # sorted set: instance -> expiry (Redis server time, ms)

    @property
    def planes(self) -> str:
        return f"{self.prefix}:planes"  # hash: instance -> data planes it runs (workers)

    @property
    def leader(self) -> str:
        return f"{self.prefix}:leader"  # "instance|epoch", with a TTL

    @property
    def epoch(self) -> str:
        return f"{self.prefix}:epoch"  # the fencing counter: one more per leadership

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"  # stream: one entry per instance per second

    @property
    def pokes(self) -> str:
        return f"{self.prefix}:pokes"  # channel: a revision at zero got a request

    @property
    def endpoints(self) -> str:
        return f"{self.prefix}:endpoints"  # hash: revision -> the leader's ready endpoints; and a channel

    @property
    def rollouts(self) -> str:
        return f"{self.prefix}:rollouts"  # hash: namespace/name -> an InferenceService's rollout record (JSON)


def encode_key(key: RevisionKey) -> str:
    return f"{key.namespace}/{key.service}/{key.revision}"


def decode_key(text: str) -> RevisionKey | None:
    """None for anything that is not a revision this version knows (a newer gateway's, or garbage)."""
    parts = text.split("/")
    if len(parts) != 3 or not all(parts) or not is_revision_name(parts[2]):
        return None
    revision: RevisionName = parts[2]
    return RevisionKey(parts[0], parts[1], revision)
