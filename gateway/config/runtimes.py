"""`GatewayConfig.spec.kubernetes.runtimes`: which image serves a model of each format, as KServe's
ClusterServingRuntimes say it.

    runtimes:
      kserve-sklearnserver:                     # the name `predictor.model.runtime` may give
        modelFormats: [sklearn]
        image: kserve/sklearnserver:v0.14.1
        args: ["--model_name={{.Name}}", "--model_dir={model}", "--http_port={port}"]

A runtime without `command` runs its image's entrypoint with `args`; one with neither runs `gateway
modelserver` with the gateway's arguments (an image built from deploy/Dockerfile, say with other
versions of the frameworks). The runtimes given are tried in order for a model's format before the
built-in one (`serving-gateway`: `modelServerImage` for onnx, sklearn and xgboost), which a runtime of
that name replaces.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config.errors import DocContext
from gateway.config.model import BUILTIN_RUNTIME, KubernetesSettings, ModelRuntime, RevisionSpec
from gateway.config.runnable import read_args
from gateway.config.values import check_keys, describe, join, mapping, sequence, string
from gateway.modelserver.formats import NAMES, SERVED

_KEYS = ("modelFormats", "image", "command", "args")
_PLACEHOLDERS = (("{{.Name}}", "{name}"),)
ImageCheck = Callable[[DocContext, str, object], "str | None"]


def read_runtimes(ctx: DocContext, path: str, value: object, image_reference: ImageCheck) -> tuple[ModelRuntime, ...] | None:
    """The runtimes given, by name, followed by the built-in one unless a runtime of its name replaces it.

    `image_reference` checks an image (`gateway.config.cluster`'s, which reads this section).
    """
    found = mapping(ctx, path, value)
    if found is None:
        return None
    errors = ctx.error_count
    runtimes = [_runtime(ctx, join(path, name), name, item, image_reference) for name, item in found.items()]
    if ctx.error_count != errors:
        return None
    given = tuple(runtime for runtime in runtimes if runtime is not None)
    if any(runtime.name == BUILTIN_RUNTIME.name for runtime in given):
        return given
    return (*given, BUILTIN_RUNTIME)


def _runtime(ctx: DocContext, path: str, name: str, value: object, image_reference: ImageCheck) -> ModelRuntime | None:
    found = mapping(ctx, path, value)
    if found is None:
        return None
    check_keys(ctx, path, found, _KEYS, strict=True)
    formats = _formats(ctx, join(path, "modelFormats"), found.get("modelFormats"))
    image = None if found.get("image") is None else image_reference(ctx, join(path, "image"), found["image"])
    command = None if found.get("command") is None else read_args(ctx, join(path, "command"), found["command"])
    args = None if found.get("args") is None else read_args(ctx, join(path, "args"), found["args"])
    if found.get("image") is None and name != BUILTIN_RUNTIME.name:
        ctx.error(join(path, "image"), "required (the container image that serves these formats)")
    if formats is None:
        return None
    if command is None and args is None:
        command, args = BUILTIN_RUNTIME.command, BUILTIN_RUNTIME.args
    return ModelRuntime(name, formats, image, command, args or ())


def _formats(ctx: DocContext, path: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        ctx.error(path, f"required (the model formats it serves, of {SERVED})")
        return None
    items = sequence(ctx, path, value)
    if items is None:
        return None
    if not items:
        ctx.error(path, "must list at least one format")
        return None
    names = []
    for index, item in enumerate(items):
        text = string(ctx, join(path, index), item)
        if text is not None and text.lower() not in NAMES:
            ctx.error(join(path, index), f"must be a format the gateway serves ({SERVED}), got {describe(item)}")
        elif text is not None:
            names.append(text.lower())
    return tuple(names) if len(names) == len(items) else None


def select(settings: KubernetesSettings, revision: RevisionSpec) -> tuple[ModelRuntime | None, str | None]:
    """The runtime that serves the revision's model (the one it names, else the first for its format), or why none."""
    fmt = revision.model_format or "onnx"
    known = ", ".join(runtime.name for runtime in settings.runtimes)
    if revision.model_runtime is not None:
        for runtime in settings.runtimes:
            if runtime.name == revision.model_runtime:
                if fmt in runtime.model_formats:
                    return runtime, None
                return None, (
                    f"runtime {runtime.name!r} does not serve {fmt} models (it serves {', '.join(runtime.model_formats)})"
                )
        return None, f"no runtime {revision.model_runtime!r} in GatewayConfig spec.kubernetes.runtimes (there are: {known})"
    for runtime in settings.runtimes:
        if fmt in runtime.model_formats:
            return runtime, None
    return None, f"no runtime in GatewayConfig spec.kubernetes.runtimes serves {fmt} models (there are: {known})"


def expand(words: tuple[str, ...], *, name: str, model: str, fmt: str, port: int) -> list[str]:
    """`words` with the placeholders filled in."""
    values = {"{name}": name, "{model}": model, "{format}": fmt, "{port}": str(port)}
    filled = []
    for word in words:
        for alias, placeholder in _PLACEHOLDERS:
            word = word.replace(alias, placeholder)
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)
        filled.append(word)
    return filled
