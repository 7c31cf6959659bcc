"""What the local backend knows of each revision and each of its replica processes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway.backends.process import ReplicaProcess
from gateway.config.model import RevisionSpec
from gateway.types import Endpoint, EndpointSet, RevisionKey


@dataclass(eq=False)
class LocalReplica:
    """One replica process: its slot and port, and where it is in its life."""

    slot: int
    endpoint: Endpoint
    fingerprint: object
    created: float
    process: ReplicaProcess | None = None
    ready: bool = False
    was_ready: bool = False
    probe_failures: int = 0  # failed probes in a row since the replica was last ready
    stopping: bool = False
    failure: str | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class LocalRevision:
    """One revision's replicas, wanted count and crash back-off."""

    def __init__(self, key: RevisionKey, spec: RevisionSpec) -> None:
        self.key = key
        self.spec = spec
        self.desired = 0
        self.replicas: list[LocalReplica] = []
        self.endpoints: EndpointSet = frozenset()
        self.failures = 0
        self.backoff_until = 0.0
        self.last_crash = float("-inf")
        self.message: str | None = None
        self.starting: str | None = None  # why a starting replica is not ready yet (its failing probe)
        self.timer: asyncio.Task[None] | None = None  # the end of a crash back-off
        self.forgotten = False

    @property
    def fingerprint(self) -> object:
        return (self.spec.command, self.spec.env, self.spec.workdir)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
