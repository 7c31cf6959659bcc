"""The dashboard's JSON API on the admin listener (the page in static/ reads only these):

``GET /admin/dashboard/services?search=&page=1&per_page=50``
    One page of services, sorted by namespace and name; ``search`` keeps those whose ``namespace/name``,
    host or a revision's name contains it (case-insensitive). Per revision: traffic percent, ready and
    desired replicas, in-flight, queued, the scaler's concurrencies, and over the last 10 s the request
    rate, error share (5xx) and p50/p99 latency in seconds (null without requests).

``GET /admin/dashboard/revisions/{namespace}/{service}/{revision}/history?since=``
    One revision's samples (only changes: each value holds until the next row) and scale and panic events
    of the last 15 minutes, or those after ``since`` (the ``now`` of an earlier answer: the page polls
    with it every second, so each answer carries only what is new). ``revision`` is the suffix of the
    revision's name: ``default``, ``canary``, or an InferenceService's numbered ``predictor-00001``.

A bad parameter, or one that does not exist, is a 400 naming it; an unknown revision a 404.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.config.model import Config, ServiceSpec
from gateway.dashboard.history import History
from gateway.metrics import scaling_status
from gateway.types import RevisionKey, is_revision_name

if TYPE_CHECKING:
    from gateway.app import Gateway

MAX_PER_PAGE = 500
MAX_SEARCH = 200
MAX_PAGE = 10**9  # static/dashboard.js holds the same bound


@dataclass(frozen=True)
class Fixed:
    """A revision nothing scales, as the history reads a scaler."""

    desired: int
    ready: int
    stable: float | None = None
    panic: float | None = None
    panicking: bool = False


class BadRequest(ValueError):
    """A query parameter the dashboard API refuses: 400 with this message."""


class NotFound(LookupError):
    """No such revision: 404 with this message."""


def _only(params: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    for name in params:
        if name not in allowed:
            raise BadRequest(f"unknown query parameter {name!r} (allowed: {', '.join(allowed)})")


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer from {low} to {high}, got {text!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name!r} must be an integer from {low} to {high}, got {text!r}")
    return value


@dataclass(frozen=True)
class _Index:
    """One configuration's services in page order, and per service the lowercase text a search looks in."""

    config: Config
    ordered: tuple[ServiceSpec, ...]
    texts: tuple[str, ...]


_last_index: _Index | None = None


def _index_of(config: Config) -> _Index:
    """The page order and search texts of `config`, built once per configuration (a reload makes a new one),
    so a poll of the first page is a slice and a search one substring test per service: a dashboard polling
    every second against 10,000 services does not hold the event loop the data plane shares."""
    global _last_index
    if _last_index is None or _last_index.config is not config:
        domain = config.gateway.domain
        ordered = tuple(sorted(config.services, key=lambda s: (s.namespace, s.name)))
        texts = tuple(
            "\n".join((f"{s.namespace}/{s.name}", s.host(domain), *(s.key(r.name).name for r in s.revisions()))).lower()
            for s in ordered
        )
        _last_index = _Index(config, ordered, texts)
    return _last_index


def services_page(gateway: Gateway, history: History, params: Mapping[str, str]) -> dict[str, object]:
    """``/admin/dashboard/services``: O(services) to search and sort, then O(page) to describe."""
    _only(params, ("search", "page", "per_page"))
    search = params.get("search", "").strip().lower()
    if len(search) > MAX_SEARCH:
        raise BadRequest(f"query parameter 'search' is longer than {MAX_SEARCH} characters")
    per_page = _integer(params, "per_page", 50, 1, MAX_PER_PAGE)
    page = _integer(params, "page", 1, 1, MAX_PAGE)
    domain = gateway.config.gateway.domain
    index = _index_of(gateway.config)
    ordered: Sequence[ServiceSpec] = index.ordered
    if search:
        ordered = [spec for spec, text in zip(index.ordered, index.texts, strict=True) if search in text]
    pages = max(1, math.ceil(len(ordered) / per_page))
    chosen = ordered[(page - 1) * per_page : page * per_page]
    services = []
    for spec in chosen:
        revisions = []
        tags = {rev.name: tag for tag, rev in spec.tagged()}
        for rev in spec.revisions():
            key = spec.key(rev.name)
            runtime = gateway.runtimes.get(key)
            scaling = scaling_status(gateway.autoscaler, gateway.revision_backends, key)
            throttler = runtime.throttler if runtime is not None else None
            if key not in gateway.autoscaler and throttler is not None:
                # Nothing scales it (static endpoints), so no tick samples it: sampled while its page is looked at.
                history.sample(key, Fixed(scaling.desired, throttler.ready), ticked=False)
            revisions.append(
                {
                    "name": key.name,
                    "revision": rev.name,
                    "tag": tags.get(rev.name),
                    "percent": spec.percent(rev.name),
                    "ready": throttler.ready if throttler is not None else 0,
                    "desired": scaling.desired,
                    "state": gateway.revision_backends.status(key).state,
                    "in_flight": sum(t.in_flight for t in throttler.trackers.values()) if throttler is not None else 0,
                    "queued": throttler.queued if throttler is not None else 0,
                    "stable": scaling.stable,
                    "panic": scaling.panic,
                    "panicking": scaling.panicking,
                    "history": f"/admin/dashboard/revisions/{key.namespace}/{key.service}/{key.revision}/history",
                    **history.recent(key),
                }
            )
        services.append({"namespace": spec.namespace, "name": spec.name, "host": spec.host(domain), "revisions": revisions})
    return {
        "search": search,
        "page": page,
        "per_page": per_page,
        "pages": pages,
        "total": len(ordered),
        "services": services,
    }


def revision_history(
    gateway: Gateway, history: History, namespace: str, service: str, revision: str, params: Mapping[str, str]
) -> dict[str, object]:
    """``/admin/dashboard/revisions/{namespace}/{service}/{revision}/history``."""
    _only(params, ("since",))
    if not is_revision_name(revision):
        raise BadRequest(
            f"revision must be default, canary or predictor-NNNNN (a numbered InferenceService revision), got {revision!r}"
        )
    since: float | None = None
    text = params.get("since")
    if text is not None:
        try:
            since = float(text)
        except ValueError:
            raise BadRequest(
                f"query parameter 'since' must be a time in seconds (a 'now' answered before), got {text!r}"
            ) from None
        if not math.isfinite(since) or since < 0:
            raise BadRequest(f"query parameter 'since' must be a time in seconds (a 'now' answered before), got {text!r}")
    key = RevisionKey(namespace, service, revision)
    if key not in gateway.runtimes:
        raise NotFound(f"no revision {revision!r} of service {namespace}/{service}")
    return {"namespace": namespace, "service": service, "revision": revision, "name": key.name, **history.history(key, since)}
