"""The kubernetes backend's pure parts: which pods are ready endpoints, the watch's event lines, Retry-After."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from gateway.autoscale.revision import RevisionScaler
from gateway.autoscale.settings import RevisionScaling
from gateway.backends.deployment import managed_labels
from gateway.backends.kube_api import MAX_RETRY_AFTER, KubeApi, api_message, retry_after
from gateway.backends.kube_pods import PodIndex, pod_endpoint
from gateway.backends.kube_watch import Gone, NotAStream, PodWatch, _lines
from gateway.config.model import AutoscalerSettings, ScalingSpec
from gateway.types import Endpoint, RevisionKey

KEY = RevisionKey("default", "iris", "default")
CANARY = RevisionKey("default", "iris", "canary")


def pod(name: str, ip: str | None = "127.0.5.1", *, ready: bool = True, key: RevisionKey = KEY, **meta: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": {"name": name, "namespace": key.namespace, "labels": managed_labels(key), **meta}, "status": status}


def test_a_pod_is_an_endpoint_only_when_ready_with_an_ip_and_not_terminating() -> None:
    assert pod_endpoint(pod("a"), 8080) == Endpoint("127.0.5.1", 8080)
    assert pod_endpoint(pod("a", ready=False), 8080) is None
    assert pod_endpoint(pod("a", ip=None), 8080) is None
    assert pod_endpoint(pod("a", deletionTimestamp="2026-11-26T00:00:00Z"), 8080) is None


@pytest.mark.parametrize(
    "ip",
    ["0.0.0.0", "::", "169.254.169.254", "fe80::1", "224.0.0.1", "255.255.255.255", "7", "pod.example.com", "", "1.2.3.4.5"],
)
def test_a_pod_ip_no_pod_can_have_is_never_routed_to(ip: str, caplog: pytest.LogCaptureFixture) -> None:
    # an outside check made pods with these podIPs Ready under our labels: each entered the routing set
    hostile = pod("evil", ip)
    hostile["status"]["podIP"] = ip
    assert pod_endpoint(hostile, 8080) is None
    assert pod_endpoint(hostile, 8080) is None
    said = [r.getMessage() for r in caplog.records if "evil" in r.getMessage()]
    assert len(said) == (1 if ip else 0)  # said once, not on every event


def test_pod_ips_a_pod_can_have_are_routed_to_and_ipv6_shows_in_brackets() -> None:
    assert pod_endpoint(pod("a", "10.244.1.7"), 8080) == Endpoint("10.244.1.7", 8080)
    six = pod_endpoint(pod("b", "fd00:0:0:0::7"), 8080)
    assert six == Endpoint("fd00::7", 8080)  # the address's one spelling
    assert str(six) == "[fd00::7]:8080" and six.url == "http://[fd00::7]:8080"
    assert pod_endpoint(pod("c", "::1"), 8080) == Endpoint("::1", 8080)  # loopback: the test bed's pods live there


def test_the_index_follows_events_and_filters_by_our_labels() -> None:
    index = PodIndex(lambda key: 9000 if key == CANARY else 8080)
    assert index.reset("default", [pod("a"), pod("b", "127.0.5.2", ready=False), pod("c", "127.0.6.1", key=CANARY)]) == {
        KEY,
        CANARY,
    }
    assert index.endpoints(KEY) == {Endpoint("127.0.5.1", 8080)}
    assert index.endpoints(CANARY) == {Endpoint("127.0.6.1", 9000)}
    assert index.changed(index.apply("MODIFIED", pod("b", "127.0.5.2"), "default")) == [KEY]
    assert len(index.endpoints(KEY)) == 2
    terminating = pod("a", deletionTimestamp="2026-11-26T00:00:00Z")
    assert index.changed(index.apply("MODIFIED", terminating, "default")) == [KEY]
    assert index.endpoints(KEY) == {Endpoint("127.0.5.2", 8080)}  # gone at once, before the pod is
    foreign = {"metadata": {"name": "x", "labels": {"app": "iris"}}, "status": pod("x")["status"]}
    assert index.changed(index.apply("ADDED", foreign, "default")) == []  # not ours, whatever the selector did
    elsewhere = pod("y", key=RevisionKey("other", "iris", "default"))
    assert index.changed(index.apply("ADDED", elsewhere, "default")) == []  # labelled for another namespace
    assert index.changed(index.apply("DELETED", pod("b", "127.0.5.2"), "default")) == [KEY]
    assert index.endpoints(KEY) == frozenset()
    assert index.reset("default", []) == {CANARY}


class Response:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self, amt: None = None, decode_content: bool = False) -> list[bytes]:
        return self.chunks


def test_event_lines_are_split_across_chunks_and_a_body_without_newline_is_kept() -> None:
    lines = list(_lines(Response([b'{"type": "ADD', b'ED"}\n{"a"', b": 1}\n\n", b'{"kind": "List"}'])))  # type: ignore[arg-type]
    assert lines == [b'{"type": "ADDED"}', b'{"a": 1}', b'{"kind": "List"}']


def test_retry_after_in_seconds_or_as_a_date_capped() -> None:
    assert retry_after(ApiException(status=429)) is None
    with_header = ApiException(status=429)
    with_header.headers = {"Retry-After": "3"}
    assert retry_after(with_header) == 3.0
    with_header.headers = {"Retry-After": email.utils.formatdate(time.time() + 10, usegmt=True)}
    assert 8.0 <= (retry_after(with_header) or 0) <= 10.0
    with_header.headers = {"Retry-After": "86400"}
    assert retry_after(with_header) == MAX_RETRY_AFTER
    with_header.headers = {"Retry-After": "soon"}
    assert retry_after(with_header) is None


def test_the_api_message_comes_from_the_status_body() -> None:
    refused = ApiException(status=422, reason="Unprocessable Entity")
    refused.body = '{"kind": "Status", "message": "spec.template: Invalid value"}'
    assert api_message(refused) == "spec.template: Invalid value"
    refused.body = "not json"
    assert api_message(refused) == "Unprocessable Entity"


def test_watch_lines_events_bookmarks_410_and_what_is_not_a_stream() -> None:
    events: list[tuple[str, str]] = []
    api = KubeApi(kubernetes.client.Configuration())
    watch = PodWatch(
        api,
        "default",
        "x=y",
        reset=print,
        event=lambda k, o: events.append((k, o["metadata"]["name"])),
        failure=print,
        answered=print,
    )
    try:
        watch._post = lambda fn, *args: fn(*args)  # type: ignore[method-assign]  # no loop: deliver at once
        line = b'{"type": "MODIFIED", "object": {"metadata": {"name": "a", "resourceVersion": "7"}}}'
        assert watch._handle(line, "5") == "7" and events == [("MODIFIED", "a")]
        assert watch._handle(b'{"type": "ADDED", "object": {"metadata": {"name": "b"}}}', "7") == "7"  # no version: keep ours
        assert watch._handle(b'{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}', "7") == "9"
        assert events == [("MODIFIED", "a"), ("ADDED", "b")]
        with pytest.raises(Gone):
            watch._handle(b'{"type": "ERROR", "object": {"kind": "Status", "code": 410}}', "9")
        with pytest.raises(ApiException):
            watch._handle(b'{"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}}', "9")
        with pytest.raises(NotAStream, match="a List with items, not a stream of events"):
            watch._handle(b'{"kind": "List", "items": []}', None)
        with pytest.raises(NotAStream, match="not JSON"):
            watch._handle(b"<html>", None)
    finally:
        api.close()


def test_an_adopted_revision_starts_from_what_runs() -> None:
    scaling = RevisionScaling.resolve(AutoscalerSettings(initial_scale=1), ScalingSpec(max_scale=4))
    idle = RevisionScaler(scaling, 100.0, 0, adopted=0)
    assert (idle.desired, idle.state) == (0, "inactive")
    for now in (102.0, 104.0, 200.0):
        assert idle.tick(now, 0) in (None, 0)  # never woken without a request
        assert idle.desired == 0
    busy = RevisionScaler(scaling, 100.0, 3, adopted=3)
    assert (busy.desired, busy.state) == (3, "active")
    assert busy.tick(102.0, 3) is None and busy.desired == 3  # no data yet: the scale is held
    starting = RevisionScaler(scaling, 100.0, 0, adopted=2)
    assert (starting.desired, starting.state) == (2, "activating")
    assert RevisionScaler(scaling, 100.0, 9, adopted=9).desired == 4  # the bounds still hold
    fresh = RevisionScaler(scaling, 100.0, 0)
    assert (fresh.desired, fresh.state) == (1, "activating")  # created: initial scale
