"""``--set KEY=VALUE``: one setting changed on top of the config file, read exactly as the file's would be.

Keys:

* ``autoscaler.<key>`` — any key of ``GatewayConfig.spec.autoscaler`` (``stableWindow``,
  ``panicWindowPercentage``, ``panicThresholdPercentage``, ``maxScaleUpRate``, ``maxScaleDownRate``,
  ``scaleToZeroGracePeriod``, ``scaleToZeroPodRetentionPeriod``, ``scaleDownDelay``,
  ``targetBurstCapacity``, ``containerConcurrencyTargetDefault``, ``targetUtilization`` (also
  ``containerConcurrencyTargetPercentage``, Knative's name),
  ``requestsPerSecondTargetDefault``, ``enableScaleToZero``, ``initialScale``,
  ``allowZeroInitialScale``, ``tickInterval``), checked by GatewayConfig's own readers;
* ``activator.<key>`` — ``queueDepth``, ``requestTimeout``, ``activationTimeout``;
* ``scaling.<key>`` — the simulated service's own scaling, which wins over the gateway-wide
  defaults as the service's manifest does: ``minScale``, ``maxScale``, ``initialScale``,
  ``containerConcurrency``, ``target``, ``targetUtilization``, ``metric`` (concurrency | rps),
  ``window`` (the stable window), ``panicWindowPercentage``, ``panicThresholdPercentage``,
  ``targetBurstCapacity``, ``scaleDownDelay``, ``scaleToZeroGracePeriod``,
  ``scaleToZeroPodRetentionPeriod``, ``activationScale`` (Knative's annotation names in camelCase).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.config.errors import DocContext
from gateway.config.gateway_config import _ACTIVATOR, _AUTOSCALER  # the tables GatewayConfig's own keys are read with
from gateway.config.model import GatewaySettings, ScalingSpec
from gateway.config.scaling import (
    read_activation_scale,
    read_container_concurrency,
    read_panic_threshold_percentage,
    read_panic_window_percentage,
    read_retention,
    read_scale,
    read_scale_down_delay,
    read_target,
    read_target_burst_capacity,
    read_target_utilization,
    read_window,
)
from gateway.config.sections import SectionKey, section_key
from gateway.config.values import choice, duration
from gateway.simulate.errors import SimulateError


class OverrideError(SimulateError):
    """A ``--set``/``--compare`` item that cannot be applied; the message names it."""


class _Context(DocContext):
    """Problems named by the key alone: the item itself says where it came from."""

    def _format(self, path: str, message: str) -> str:
        return f"{path}: {message}"


def _field(read: Callable[[DocContext, str, object], Any], name: str) -> SectionKey[ScalingSpec]:
    return section_key(read, lambda spec, value: replace(spec, **{name: value}))


_SCALING: dict[str, SectionKey[ScalingSpec]] = {
    "minScale": _field(read_scale, "min_scale"),
    "maxScale": _field(read_scale, "max_scale"),
    "initialScale": _field(read_scale, "initial_scale"),
    "containerConcurrency": _field(read_container_concurrency, "container_concurrency"),
    "target": _field(read_target, "target"),
    "targetUtilization": _field(read_target_utilization, "target_utilization"),
    "metric": _field(lambda c, p, v: choice(c, p, v, ("concurrency", "rps")), "metric"),
    "window": _field(read_window, "stable_window"),
    "panicWindowPercentage": _field(read_panic_window_percentage, "panic_window_percentage"),
    "panicThresholdPercentage": _field(read_panic_threshold_percentage, "panic_threshold_percentage"),
    "targetBurstCapacity": _field(read_target_burst_capacity, "target_burst_capacity"),
    "scaleDownDelay": _field(read_scale_down_delay, "scale_down_delay"),
    "scaleToZeroGracePeriod": _field(
        lambda c, p, v: duration(c, p, v, ok=lambda s: s > 0, expect="> 0"), "scale_to_zero_grace_period"
    ),
    "scaleToZeroPodRetentionPeriod": _field(read_retention, "scale_to_zero_pod_retention_period"),
    "activationScale": _field(read_activation_scale, "activation_scale"),
}

SECTIONS: dict[str, Mapping[str, object]] = {"autoscaler": _AUTOSCALER, "activator": _ACTIVATOR, "scaling": _SCALING}
"""Every key ``--set`` knows, by section."""


@dataclass(frozen=True)
class Override:
    key: str  # section.name
    value: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


def parse_overrides(items: Sequence[str], option: str = "--set") -> list[Override]:
    """``KEY=VALUE`` items, each checked to name a known key (the value is read when applied)."""
    found = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OverrideError(f"{option} {item!r}: expected KEY=VALUE, e.g. autoscaler.stableWindow=30s")
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise OverrideError(f"{option} {item}: unknown key {key!r}: keys start with {', '.join(s + '.' for s in SECTIONS)}")
        if name not in SECTIONS[section]:
            known = list(SECTIONS[section])
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {section}.{close[0]}?)" if close else ""
            raise OverrideError(f"{option} {item}: unknown key {key!r}{hint}; {section}. keys: {', '.join(known)}")
        found.append(Override(key, value.strip()))
    return found


def apply_overrides(
    settings: GatewaySettings, scaling: ScalingSpec, overrides: Sequence[Override], option: str = "--set"
) -> tuple[GatewaySettings, ScalingSpec]:
    """``settings`` and ``scaling`` with every override applied in order; OverrideError names the first bad one."""
    autoscaler, activator = settings.autoscaler, settings.activator
    for item in overrides:
        ctx = _Context(file=option, index=0, directory=".", problems=[], warnings=[])
        section, _, name = item.key.partition(".")
        if section == "autoscaler":
            autoscaler = _AUTOSCALER[name](ctx, item.key, item.value, autoscaler)
        elif section == "activator":
            activator = _ACTIVATOR[name](ctx, item.key, item.value, activator)
        else:
            scaling = _SCALING[name](ctx, item.key, item.value, scaling)
        if ctx.problems:
            raise OverrideError(f"{option} {item}: {ctx.problems[0]}")
    if autoscaler.initial_scale == 0 and not autoscaler.allow_zero_initial_scale:
        raise OverrideError(f"{option}: autoscaler.initialScale 0 needs autoscaler.allowZeroInitialScale=true")
    low, high = scaling.min_scale, scaling.max_scale
    if high and high < low:
        raise OverrideError(f"{option}: scaling.maxScale must be 0 (unbounded) or >= scaling.minScale {low}, got {high}")
    activation = scaling.activation_scale
    if activation is not None and (activation < low or (high and activation > high)):
        raise OverrideError(f"{option}: scaling.activationScale must be within the scale bounds, got {activation}")
    return replace(settings, autoscaler=autoscaler, activator=activator), scaling
