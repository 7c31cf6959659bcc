"""`GatewayConfig.spec.kubernetes`: how the kubernetes backend builds Deployments, read and checked.

Each value is checked the way the API server would check it where it lands (an image reference, an
extended resource name, a taint key, a pull policy), so a typo fails `gateway validate`, not a rollout.
"""

from __future__ import annotations

import re
from dataclasses import replace

from gateway.config.errors import DocContext
from gateway.config.model import KubernetesSettings
from gateway.config.runnable import RESOURCE_NAME
from gateway.config.runtimes import read_runtimes
from gateway.config.sections import SectionKey, section_key
from gateway.config.values import choice, describe, duration

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REGISTRY = rf"{_HOST_PART}(?:\.{_HOST_PART})*(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_REGISTRY}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?"
)
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def image_reference(ctx: DocContext, path: str, value: object) -> str | None:
    if isinstance(value, str) and len(value) <= 4096 and IMAGE_REFERENCE.fullmatch(value):
        return value
    ctx.error(path, f"must be a container image reference like registry.example.com/serving-gateway:0.1.0, got {describe(value)}")
    return None


def resource_name(ctx: DocContext, path: str, value: object) -> str | None:
    """An extended resource name: `domain/name` (baidu.com/xpu, kunlunxin.com/xpu)."""
    if isinstance(value, str) and RESOURCE_NAME.fullmatch(value) and _qualified(value):
        return value
    ctx.error(path, f"must be an extended resource name like baidu.com/xpu or kunlunxin.com/xpu, got {describe(value)}")
    return None


def taint_key(ctx: DocContext, path: str, value: object) -> str | None:
    """A taint (and so toleration) key: a label key, `[prefix/]name`."""
    if isinstance(value, str) and _qualified(value):
        return value
    ctx.error(
        path,
        "must be a taint key: a name of at most 63 letters, digits, '-', '_' or '.' (starting and ending "
        f"with a letter or digit), optionally after a DNS prefix and '/', like baidu.com/xpu; got {describe(value)}",
    )
    return None


def _qualified(value: str) -> bool:
    prefix, _, name = value.rpartition("/")
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and _NAME.fullmatch(name) is not None


def label_value(ctx: DocContext, path: str, value: object) -> str | None:
    """A label's value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit."""
    if isinstance(value, str) and len(value) <= 63 and _NAME.fullmatch(value):
        return value
    ctx.error(
        path,
        "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter "
        f"or digit, like ml.serving-gateway; got {describe(value)}",
    )
    return None


def owner_from(metadata: object) -> str | None:
    """The default `owner`: the GatewayConfig's `metadata` as `namespace.name` (or `name`), made a label value."""
    if not isinstance(metadata, dict):
        return None
    parts = [str(metadata[key]) for key in ("namespace", "name") if isinstance(metadata.get(key), str) and metadata[key]]
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", ".".join(parts))[:63].strip("-_.")
    return value or None


def api_timeout(ctx: DocContext, path: str, value: object) -> float | None:
    """A timeout of the API's requests: a duration from 100ms to 10m (a hung API server must not hold a stop)."""
    return duration(ctx, path, value, ok=lambda v: 0.1 <= v <= 600, expect="from 100ms to 10m")


def pull_policy(ctx: DocContext, path: str, value: object) -> str | None:
    return choice(ctx, path, value, PULL_POLICIES)


KUBERNETES: dict[str, SectionKey[KubernetesSettings]] = {
    "modelServerImage": section_key(image_reference, lambda s, v: replace(s, model_server_image=v)),
    "kunlunResource": section_key(resource_name, lambda s, v: replace(s, kunlun_resource=v)),
    "kunlunTolerationKey": section_key(taint_key, lambda s, v: replace(s, kunlun_toleration_key=v)),
    "imagePullPolicy": section_key(pull_policy, lambda s, v: replace(s, image_pull_policy=v)),
    "runtimes": section_key(lambda c, p, v: read_runtimes(c, p, v, image_reference), lambda s, v: replace(s, runtimes=v)),
    "owner": section_key(label_value, lambda s, v: replace(s, owner=v)),
    "connectTimeout": section_key(lambda c, p, v: api_timeout(c, p, v), lambda s, v: replace(s, connect_timeout=v)),
    "requestTimeout": section_key(lambda c, p, v: api_timeout(c, p, v), lambda s, v: replace(s, request_timeout=v)),
}
"""The keys of GatewayConfig's spec.kubernetes."""
