"""A Kubernetes container (InferenceService predictor, SimpleMLService custom pod) as a revision draft.

The local backend runs `command + args` on this machine; the kubernetes backend keeps the containers
as given (the translator stores them in `RevisionSpec.pod_spec`) and serves the first. A container
with args but no command relies on the image's entrypoint, so it has no local command. What only the
local backend leaves out (other containers, probes, mounts) goes to `local_notes`: warnings shown when
the local backend runs the service.
"""

from __future__ import annotations

from gateway.config.errors import DocContext
from gateway.config.runnable import (
    RevisionDraft,
    read_args,
    read_env,
    read_given,
    read_port,
    read_readiness_path,
    read_resources,
)
from gateway.config.values import check_keys, join, mapping, sequence, string

_CONTAINER_KEYS = (
    "name",
    "image",
    "command",
    "args",
    "env",
    "ports",
    "resources",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "imagePullPolicy",
    "workingDir",
    "volumeMounts",
    "securityContext",
)
_IGNORED_KEYS = ("livenessProbe", "startupProbe", "volumeMounts", "securityContext")


Notes = list[tuple[str, str]]


def read_containers(ctx: DocContext, path: str, value: object, local_notes: Notes) -> RevisionDraft | None:
    """A revision draft from the first container of a list (others noted for the local backend)."""
    items = sequence(ctx, path, value)
    if items is None:
        return None
    if not items:
        ctx.error(path, "must list at least one container")
        return None
    for extra in range(1, len(items)):
        local_notes.append((join(path, extra), "only the first container is run, ignored"))
    return read_container(ctx, join(path, 0), items[0], local_notes)


def read_container(ctx: DocContext, path: str, value: object, local_notes: Notes) -> RevisionDraft | None:
    found = mapping(ctx, path, value)
    if found is None:
        return None
    errors = ctx.error_count
    _check_container_keys(ctx, path, found, local_notes)
    draft = RevisionDraft(workdir=ctx.directory)
    _read_command(ctx, path, found, draft)
    draft.image = read_given(ctx, path, found, "image", string)
    draft.env = read_given(ctx, path, found, "env", read_env)
    draft.resources = read_given(ctx, path, found, "resources", read_resources)
    draft.container_port = read_given(ctx, path, found, "ports", read_container_port)
    draft.readiness_path = read_given(ctx, path, found, "readinessProbe", _readiness_path)
    return None if ctx.error_count > errors else draft


def _check_container_keys(ctx: DocContext, path: str, found: dict[str, object], local_notes: Notes) -> None:
    check_keys(ctx, path, found, _CONTAINER_KEYS, strict=False)
    for key in _IGNORED_KEYS:
        if key in found:
            local_notes.append((join(path, key), "not supported by the local backend, ignored"))
    if found.get("workingDir") is not None:
        local_notes.append(
            (join(path, "workingDir"), "a path inside the container, ignored; the local backend runs in the config file's folder")
        )


def _read_command(ctx: DocContext, path: str, found: dict[str, object], draft: RevisionDraft) -> None:
    """The container's command and args; locally it runs `command + args` (without a command, nothing)."""
    command = read_args(ctx, join(path, "command"), found["command"]) if found.get("command") is not None else ()
    args = read_args(ctx, join(path, "args"), found["args"]) if found.get("args") is not None else ()
    if command is not None and args is not None:
        draft.container_command = command
        draft.args = args
        if command:
            draft.command = command + args


def read_container_port(ctx: DocContext, path: str, value: object) -> int | None:
    """The first entry of a Kubernetes `ports` list (`containerPort`, or `port` for Service ports)."""
    items = sequence(ctx, path, value)
    if not items:
        if items is not None:
            ctx.error(path, "must list at least one port")
        return None
    first = mapping(ctx, join(path, 0), items[0])
    if first is None:
        return None
    key = "containerPort" if "containerPort" in first else "port"
    if first.get(key) is None:
        ctx.error(join(join(path, 0), key), "required")
        return None
    return read_port(ctx, join(join(path, 0), key), first[key])


def _readiness_path(ctx: DocContext, path: str, value: object) -> str | None:
    probe = mapping(ctx, path, value)
    if probe is None:
        return None
    http_get = probe.get("httpGet")
    if http_get is None:
        return None  # tcpSocket/exec probes: the gateway's TCP connect check stands in
    found = mapping(ctx, join(path, "httpGet"), http_get)
    if found is None or found.get("path") is None:
        return None
    return read_readiness_path(ctx, join(join(path, "httpGet"), "path"), found["path"])
