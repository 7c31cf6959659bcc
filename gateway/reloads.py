"""Reloads: requested by SIGHUP or ``POST /admin/reload``; those asked for while one runs collapse into one more."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.config import ConfigError

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadOutcome:
    """What one reload did; every caller it served gets the same one."""

    generation: int  # reloads run since start, this one included
    ok: bool
    services: int
    report: str  # "N services: a added, c changed, r removed", or why it was refused
    warnings: tuple[str, ...]
    problems: tuple[str, ...] = ()

    def document(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "reloaded": self.ok,
            "generation": self.generation,
            "services": self.services,
            "warnings": list(self.warnings),
        }
        if self.ok:
            doc["changes"] = self.report
        else:
            doc["error"] = self.report
            doc["problems"] = list(self.problems)
        return doc


class Reloader:
    """One reload at a time. A request made while a reload runs is served by the next one, which
    starts when the current one ends and serves every request made meanwhile: ten SIGHUPs in a
    second cost at most two reloads, and no request is answered by a reload that read the files
    before the request was made."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.generation = 0
        self.in_progress: int | None = None  # the generation running now
        self._next: asyncio.Future[ReloadOutcome] | None = None
        self._running: asyncio.Task[None] | None = None

    async def request(self, why: str) -> ReloadOutcome:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
            log.info("reload requested (%s)", why)
        served_by = self._next
        if self._running is None:
            self._running = loop.create_task(self._run())
        return await asyncio.shield(served_by)

    async def _run(self) -> None:
        try:
            while self._next is not None:
                waiting, self._next = self._next, None
                self.generation += 1
                self.in_progress = self.generation
                outcome = await self._one(self.generation)
                if not waiting.done():
                    waiting.set_result(outcome)
        finally:
            self._running = None
            self.in_progress = None

    async def _one(self, generation: int) -> ReloadOutcome:
        try:
            config, report = await self._gateway.reload()
        except ConfigError as exc:
            log.error("reload %d refused, the previous configuration keeps serving:\n%s", generation, exc)
            for warning in exc.warnings:
                log.warning("%s", warning)
            services = len(self._gateway.config.services)
            return ReloadOutcome(generation, False, services, str(exc), tuple(exc.warnings), tuple(exc.problems))
        except Exception as exc:  # a bug must not kill the reloader: every later reload would hang
            log.exception("reload %d failed", generation)
            message = f"reload failed: {type(exc).__name__}: {exc}"
            return ReloadOutcome(generation, False, len(self._gateway.config.services), message, (), (message,))
        warnings = (*config.warnings, *report.warnings)
        log.info("reload %d: %s", generation, report)
        for warning in warnings:
            log.warning("%s", warning)
        return ReloadOutcome(generation, True, len(config.services), str(report), warnings)
