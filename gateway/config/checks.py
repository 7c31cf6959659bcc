"""Checks that need every document: duplicate services, colliding hosts, runnable revisions.

Which backend runs a service (its own `spec.backend`, else the GatewayConfig's, else local) is only
known after all files are read, so what a revision must give is checked here:

- static: `endpoints` (error without them).
- kubernetes: a container image (error without one); an InferenceService model runs the image of
  the runtime for its format (`GatewayConfig.spec.kubernetes.runtimes`, by default the gateway's own
  `modelServerImage`), so it needs none, but there must be such a runtime (error naming it).
- local: a `command` (error without one) — except that a revision with a container image and no
  command is a warning, not an error: the local backend runs commands, not images, so it has no
  replicas and its requests get an immediate 503 naming the reason. This keeps manifests written
  for a cluster (ElasticServing's `sample_service.yaml`, TensorFlow SimpleMLServices) loadable,
  and `gateway validate` says plainly what will happen.

A translator that finds something wrong for one backend only (a model file missing on this machine
matters to local, a container name Kubernetes would refuse matters to kubernetes) records it in
`Translated.local_errors` or `Translated.kubernetes_errors`; it is reported here when that backend runs
the service.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.config import runtimes
from gateway.config.manifest import RevisionFields, Translated
from gateway.config.model import BackendKind, GatewaySettings, RevisionSpec, ServiceSpec
from gateway.config.values import quantity_value


def service_hosts(service: ServiceSpec, domain: str) -> list[tuple[str, str]]:
    """(host, what) pairs a service claims: its own host and its tag hosts (default and canary with a canary
    or not; an InferenceService's prev and latest with tag routing on), lowercase."""
    hosts = [(service.host(domain).lower(), "host")]
    hosts += [(service.tag_host(tag, domain).lower(), f"{tag} tag host") for tag in service.claimed_tags()]
    return hosts


def check_duplicates(translated: Sequence[Translated], settings: GatewaySettings) -> None:
    seen: dict[tuple[str, str], Translated] = {}
    claimed: dict[str, tuple[str, Translated]] = {}
    for item in translated:
        service = item.service
        first = seen.setdefault((service.namespace, service.name), item)
        if first is not item:
            item.ctx.error(
                "metadata.name",
                f"service {service.namespace}/{service.name} is already defined in {first.ctx.label}",
            )
            continue
        for host, what in service_hosts(service, settings.domain):
            owner = claimed.setdefault(host, (what, item))
            if owner[1] is not item:
                item.ctx.error(
                    "metadata.name",
                    f"{what} {host} collides with the {owner[0]} of {owner[1].ctx.label}",
                )


def effective_backend(item: Translated, settings: GatewaySettings) -> BackendKind:
    return item.service.backend or settings.backend


def check_runnable(translated: Sequence[Translated], settings: GatewaySettings) -> None:
    for item in translated:
        backend = effective_backend(item, settings)
        for revision in item.service.revisions():
            _check_revision(item, revision, item.fields[revision.name], backend)
            if backend == "kubernetes" and revision.model_path is not None:
                _check_runtime(item, revision, item.fields[revision.name], settings)
        if backend == "local":
            for path, message in item.local_notes:
                item.ctx.warn(path, message)
            for path, message in item.local_errors:
                item.ctx.error(path, message)
        elif backend == "kubernetes":
            for path, message in item.kubernetes_errors:
                item.ctx.error(path, message)


def _gets_its_port(revision: RevisionSpec) -> bool:
    command = revision.command
    texts = [command] if isinstance(command, str) else list(command or ())
    texts += [value for _, value in revision.env]
    return any("{port}" in text or "$PORT" in text or "${PORT}" in text for text in texts)


def _check_revision(item: Translated, revision: RevisionSpec, fields: RevisionFields, backend: str) -> None:
    if backend == "static":
        _check_static(item, revision, fields)
    elif backend == "kubernetes":
        _check_kubernetes(item, revision, fields)
    else:
        _check_local(item, revision, fields)


def _check_static(item: Translated, revision: RevisionSpec, fields: RevisionFields) -> None:
    if revision.endpoints:
        return
    if fields.endpoints is None:
        item.ctx.error(
            fields.base,
            f"the static backend needs endpoints, which this {item.ctx.kind} cannot give; use a PaddleService with endpoints",
        )
    else:
        item.ctx.error(fields.endpoints, "required for the static backend (a list of base URLs)")


def _check_kubernetes(item: Translated, revision: RevisionSpec, fields: RevisionFields) -> None:
    for message in resource_problems(revision.resources):
        item.ctx.error(fields.resources or fields.base, message)
    if revision.endpoints and fields.endpoints is not None:
        item.ctx.warn(fields.endpoints, "ignored under the kubernetes backend (set spec.backend: static to use them)")
    if revision.command and revision.pod_spec is None and revision.model_path is None and fields.command is not None:
        item.ctx.warn(
            fields.command,
            "run only by the local backend; under kubernetes the container runs its image's entrypoint "
            "(or /bin/bash -c with arg)",
        )
    if revision.image or revision.model_path:
        return
    if fields.image is None:
        item.ctx.error(
            fields.base,
            "the kubernetes backend needs a container image, and this revision has none",
        )
    else:
        item.ctx.error(fields.image, "required for the kubernetes backend")


def _check_runtime(item: Translated, revision: RevisionSpec, fields: RevisionFields, settings: GatewaySettings) -> None:
    """A model's format (or the runtime it names) must have a runtime in `spec.kubernetes.runtimes`."""
    _, problem = runtimes.select(settings.kubernetes, revision)
    if problem is not None:
        item.ctx.error(fields.base, problem)


def resource_problems(resources: dict[str, dict[str, str]]) -> list[str]:
    """What the API server would refuse in a container's resources: a request above its limit, or an
    extended resource (a name with a domain, like nvidia.com/gpu) whose request differs from its limit."""
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    found = []
    for name in sorted(requests.keys() & limits.keys()):
        request, limit = quantity_value(requests[name]), quantity_value(limits[name])
        if "/" in name and request != limit:
            found.append(
                f"requests.{name} ({requests[name]}) must equal limits.{name} ({limits[name]}): "
                "extended resources cannot be overcommitted"
            )
        elif request > limit:
            found.append(f"requests.{name} ({requests[name]}) exceeds limits.{name} ({limits[name]})")
    return found


def _check_local(item: Translated, revision: RevisionSpec, fields: RevisionFields) -> None:
    ctx = item.ctx
    if revision.endpoints and fields.endpoints is not None:
        ctx.warn(fields.endpoints, "ignored under the local backend (set spec.backend: static to use them)")
    if revision.command:
        if not _gets_its_port(revision):
            ctx.warn(
                fields.command or fields.base,
                "uses neither {port} nor $PORT: each replica must listen on the port the gateway picks for it, "
                "given as {port} in the command and as the PORT environment variable; unless the program "
                "reads PORT itself, a fixed port never becomes ready",
            )
        return
    if revision.image:
        ctx.warn(
            fields.base,
            f"has a container image ({revision.image}) and no command: the local backend runs commands, "
            "not images, so this revision has no replicas and its requests get 503; add a command to run it here",
        )
    elif fields.command is None:
        ctx.error(fields.base, "nothing to run under the local backend")
    else:
        ctx.error(fields.command, "required for the local backend (an argv list or a shell string)")
