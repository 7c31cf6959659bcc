"""The listing `gateway validate` prints (its "routing table"): hosts, revisions and their share, backend, scale bounds.

Text for people, not the data plane's `RouteTable` (`gateway.router.routes`).
"""

from __future__ import annotations

from gateway.config.model import Config, ServiceSpec
from gateway.config.values import format_duration

_HEADER = ("HOST", "REVISION", "TRAFFIC", "BACKEND", "SCALE", "TARGET / CONCURRENCY")


def _scale(service: ServiceSpec) -> str:
    scaling = service.scaling
    high = str(scaling.max_scale) if scaling.max_scale else "inf"
    return f"{scaling.min_scale}..{high} {scaling.autoscaler_class}"


def _target(service: ServiceSpec, config: Config) -> str:
    scaling = service.scaling
    # The autoscaler's rule (autoscale/settings.py): a concurrency target never exceeds containerConcurrency, and
    # without a target containerConcurrency is the target.
    limited = scaling.metric == "concurrency" and scaling.container_concurrency > 0
    if scaling.autoscaler_class == "fixed":
        target = "-"
    elif scaling.target is not None and limited and scaling.target > scaling.container_concurrency:
        target = f"{scaling.container_concurrency:g} {scaling.metric} (target {scaling.target:g} capped at containerConcurrency)"
    elif scaling.target is not None:
        target = f"{scaling.target:g} {scaling.metric}"
    elif limited:
        target = f"{scaling.container_concurrency:g} {scaling.metric} (containerConcurrency)"
    else:
        defaults = config.gateway.autoscaler
        value = (
            defaults.requests_per_second_target_default
            if scaling.metric == "rps"
            else defaults.container_concurrency_target_default
        )
        target = f"{value:g} {scaling.metric} (default)"
    limit = f"concurrency {scaling.container_concurrency}" if scaling.container_concurrency else "concurrency unlimited"
    return f"{target} / {limit}"


def _static_target(service: ServiceSpec) -> str:
    limit = service.scaling.container_concurrency
    return f"concurrency {limit} per endpoint" if limit else "concurrency unlimited"


def _service_rows(service: ServiceSpec, config: Config) -> list[tuple[str, ...]]:
    domain = config.gateway.domain
    host = service.host(domain)
    backend = service.backend or config.gateway.backend
    rows: list[tuple[str, ...]] = []
    for i, revision in enumerate(service.revisions()):
        key = service.key(revision.name)
        rows.append(
            (
                host if i == 0 else "",
                key.name,
                f"{service.percent(revision.name)}%",
                backend if i == 0 else "",
                (_scale(service) if backend != "static" else "fixed endpoints") if i == 0 else "",
                _static_target(service) if backend == "static" and i == 0 else _target(service, config) if i == 0 else "",
            )
        )
    for tag, revision in service.tagged():
        rows.append((f"  {service.tag_host(tag, domain)}", service.key(revision.name).name, "tag", "", "", ""))
    if service.rollout is not None and not service.rollout.record:
        rows[0] = (rows[0][0], f"{service.name}-predictor-NNNNN", *rows[0][2:])
        for tag, which in (("prev", "rolled out"), ("latest", "latest")):
            if tag in service.claimed_tags():
                rows.append((f"  {service.tag_host(tag, domain)}", f"({which})", "tag", "", "", ""))
    return rows


def _align(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def routing_table(config: Config) -> str:
    """A readable summary of what a config routes where, followed by its warnings.

    An InferenceService's revisions are numbered when it is served (gateway.rollouts, against its record):
    here it shows as `{name}-predictor-NNNNN`."""
    settings = config.gateway
    lines = [
        (
            f"domain {settings.domain}, backend {settings.backend}, listen {settings.listen}, "
            f"admin {settings.admin_listen}, stable window "
            f"{format_duration(settings.autoscaler.stable_window)}"
        ),
        "",
    ]
    if not config.services:
        lines.append("(no services)")
    else:
        rows: list[tuple[str, ...]] = [_HEADER]
        starts: dict[int, ServiceSpec] = {}
        for service in config.services:
            starts[len(rows)] = service
            rows.extend(_service_rows(service, config))
        for i, line in enumerate(_align(rows)):
            first = starts.get(i)
            if first is not None:
                lines.append("")
                if first.source is not None:
                    lines.append(f"# {first.namespace}/{first.name} from {first.source}")
            lines.append(line)
    if config.warnings:
        lines += ["", f"warnings ({len(config.warnings)}):"]
        lines += [f"  - {warning}" for warning in config.warnings]
    return "\n".join(lines) + "\n"
