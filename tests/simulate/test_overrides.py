"""`--set KEY=VALUE`: applied as the config file's own keys would be, and every bad item named."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.config.model import RevisionSpec
from gateway.simulate import OverrideError, SimulateError, Trace, run
from gateway.simulate.overrides import SECTIONS, apply_overrides, parse_overrides
from tests.simulate.support import config


def test_overrides_change_the_settings_the_run_uses() -> None:
    cfg = config(min_scale=1)
    items = parse_overrides(
        [
            "autoscaler.stableWindow=30s",
            "autoscaler.panicThresholdPercentage=300",
            "autoscaler.enableScaleToZero=false",
            "activator.queueDepth=5",
            "scaling.maxScale=4",
            "scaling.containerConcurrency=2",
            "scaling.window=20s",
            "scaling.metric=rps",
        ]
    )
    settings, scaling = apply_overrides(cfg.gateway, cfg.services[0].scaling, items)
    assert (settings.autoscaler.stable_window, settings.autoscaler.panic_threshold_percentage) == (30.0, 300.0)
    assert settings.autoscaler.enable_scale_to_zero is False and settings.activator.queue_depth == 5
    assert (scaling.min_scale, scaling.max_scale, scaling.container_concurrency) == (1, 4, 2)
    assert (scaling.stable_window, scaling.metric) == (20.0, "rps")
    result = run(cfg, "m", Trace.from_rates([(9, 0, 1.0)]), overrides=[str(item) for item in items])
    used = result.summary["settings"]
    assert used["scaling"]["stable_window"] == 20.0  # the service's own window wins over the gateway's
    assert used["scaling"]["max_scale"] == 4 and used["activator"]["queue_depth"] == 5
    assert used["overrides"][0] == "autoscaler.stableWindow=30s"


def test_later_overrides_win() -> None:
    cfg = config()
    items = parse_overrides(["autoscaler.maxScaleDownRate=4", "autoscaler.maxScaleDownRate=8"])
    assert apply_overrides(cfg.gateway, cfg.services[0].scaling, items)[0].autoscaler.max_scale_down_rate == 8.0


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("stableWindow", "--set 'stableWindow': expected KEY=VALUE, e.g. autoscaler.stableWindow=30s"),
        ("=30s", "expected KEY=VALUE"),
        ("autoscalr.stableWindow=30s", "unknown key 'autoscalr.stableWindow': keys start with autoscaler., activator., scaling."),
        ("autoscaler.stableWindw=30s", "unknown key 'autoscaler.stableWindw' (did you mean autoscaler.stableWindow?)"),
        ("scaling.nope=1", "unknown key 'scaling.nope'; scaling. keys: minScale, maxScale"),
    ],
)
def test_unknown_keys_are_named(item: str, message: str) -> None:
    with pytest.raises(OverrideError) as caught:
        parse_overrides([item])
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("autoscaler.stableWindow=5s", "--set autoscaler.stableWindow=5s: autoscaler.stableWindow: must be 6s..1h, got 5s"),
        ("autoscaler.stableWindow=soon", "must be a duration like 60s, got 'soon'"),
        ("autoscaler.stableWindow=30.5s", "must be whole seconds, got 30.5s"),
        ("autoscaler.maxScaleDownRate=1", "autoscaler.maxScaleDownRate: must be > 1, got 1"),
        ("autoscaler.enableScaleToZero=maybe", "must be true or false, got 'maybe'"),
        ("activator.queueDepth=0", "activator.queueDepth: must be >= 1, got 0"),
        ("scaling.minScale=-1", "scaling.minScale: must be >= 0, got -1"),
        ("scaling.containerConcurrency=2.5", "must be an integer 0..1000, got '2.5'"),
        ("scaling.metric=cpu", "scaling.metric: must be one of concurrency, rps, got 'cpu'"),
        ("autoscaler.initialScale=0", "autoscaler.initialScale 0 needs autoscaler.allowZeroInitialScale=true"),
    ],
)
def test_bad_values_are_named(item: str, message: str) -> None:
    cfg = config()
    with pytest.raises(OverrideError) as caught:
        apply_overrides(cfg.gateway, cfg.services[0].scaling, parse_overrides([item]))
    assert message in str(caught.value)


def test_bounds_are_checked_after_all_overrides() -> None:
    cfg = config()
    items = parse_overrides(["scaling.minScale=3", "scaling.maxScale=2"])
    with pytest.raises(OverrideError, match="scaling.maxScale must be 0 \\(unbounded\\) or >= scaling.minScale 3, got 2"):
        apply_overrides(cfg.gateway, cfg.services[0].scaling, items)
    fine = parse_overrides(["scaling.minScale=3", "scaling.maxScale=2", "scaling.maxScale=5"])
    assert apply_overrides(cfg.gateway, cfg.services[0].scaling, fine)[1].max_scale == 5


def test_every_documented_key_is_known() -> None:
    from gateway.simulate import overrides

    doc = overrides.__doc__ or ""
    for section, keys in SECTIONS.items():
        for key in keys:
            assert f"``{key}``" in doc or f"``{key}`` " in doc, f"{section}.{key} is not documented"


def test_choosing_the_service() -> None:
    one = config()
    other = replace(one.services[0], name="n", namespace="team")
    both = replace(one, services=(one.services[0], other))
    trace = Trace.from_rates([(3, 0, 1.0)])
    assert run(one, None, trace).summary["settings"]["service"] == "default/m"
    with pytest.raises(SimulateError, match=r"the config has 2 services: choose one with --service \(default/m, team/n\)"):
        run(both, None, trace)
    assert run(both, "team/n", trace).summary["settings"]["service"] == "team/n"
    assert run(both, "n", trace).summary["settings"]["service"] == "team/n"
    with pytest.raises(SimulateError, match=r"no service 'x' in the config; services: default/m, team/n"):
        run(both, "x", trace)
    twins = replace(one, services=(one.services[0], replace(one.services[0], namespace="team")))
    with pytest.raises(SimulateError, match=r"service 'm' is in several namespaces: say which \(default/m, team/m\)"):
        run(twins, "m", trace)
    with pytest.raises(SimulateError, match="the config has no service to simulate"):
        run(replace(one, services=()), None, trace)


def test_what_cannot_be_simulated_is_named() -> None:
    one = config()
    trace = Trace.from_rates([(3, 0, 1.0)])
    static = replace(one, services=(replace(one.services[0], backend="static"),))
    with pytest.raises(SimulateError, match="service m runs on the static backend: its endpoints are fixed"):
        run(static, None, trace)
    with pytest.raises(SimulateError, match="startup must be one or more times >= 0 seconds, got -1"):
        run(one, None, trace, startup=-1)
    with pytest.raises(SimulateError, match=r"startup must be one or more times >= 0 seconds, got \[\]"):
        run(one, None, trace, startup=[])
    # Outside attack: a 1 ns tick never finished; a billion replicas took the memory before an error.
    with pytest.raises(SimulateError, match="autoscaler.tickInterval 1e-09s: the simulator steps"):
        run(one, None, trace, overrides=["autoscaler.tickInterval=0.000000001s"])
    with pytest.raises(SimulateError, match="at most 100,000 replicas are simulated"):
        run(one, None, trace, overrides=["scaling.minScale=1000000000", "scaling.maxScale=0"])


def test_a_revision_gets_its_share_of_the_trace_as_the_router_splits_it() -> None:
    base = config(min_scale=1)
    split = replace(base.services[0], canary=RevisionSpec(name="canary", command="true"), canary_percent=30)
    cfg = replace(base, services=(split,))
    trace = Trace.from_requests([(i / 10, 0.05) for i in range(100)])
    default = run(cfg, None, trace)
    canary = run(cfg, None, trace, revision="canary")
    # smooth weighted round-robin: exactly 70 and 30 of any 100 consecutive requests
    assert (default.summary["requests"], canary.summary["requests"]) == (70, 30)
    assert (default.summary["settings"]["revision"], canary.summary["settings"]["revision"]) == ("m-default", "m-canary")
    assert (default.summary["settings"]["traffic_percent"], canary.summary["settings"]["traffic_percent"]) == (70, 30)
    assert canary.summary["settings"]["trace"]["requests"] == 100
    half = replace(cfg, services=(replace(split, canary_percent=50),))
    # 50/50 alternates, the default first: it serves requests 0, 2, 4, ...
    assert run(half, None, Trace.from_requests([(float(i), 0.1) for i in range(10)])).summary["requests"] == 5
    assert run(base, None, trace, revision="default").summary["requests"] == 100  # no canary: all of it
    with pytest.raises(SimulateError, match=r"service m has no revision 'canary'; its revisions: default"):
        run(base, None, trace, revision="canary")
    with pytest.raises(SimulateError, match=r"service m has no revision 'blue'; its revisions: default, canary"):
        run(cfg, None, trace, revision="blue")


def test_only_keeps_the_picked_requests_over_the_same_span() -> None:
    trace = Trace.from_requests([(0.0, 1.0), (1.0, 2.0), (2.5, 3.0)])
    kept = trace.only([True, False, True])
    assert (list(kept.arrivals), list(kept.durations), kept.seconds) == ([0.0, 2.5], [1.0, 3.0], 3)
