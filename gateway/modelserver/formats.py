"""The model formats the server loads: their files, what they need installed, and where a model is.

Light on purpose (no framework is imported here): the config reads it to check a model path at load
time, the server to pick and check the model before it binds.

- ``onnx``: ``model.onnx`` or one ``.onnx`` file, run by ONNX Runtime (always installed).
- ``sklearn``: ``model.joblib``, ``model.pkl`` or ``model.pickle`` (or one such file), loaded with
  ``joblib.load`` as KServe's sklearn server does: a pickle runs code when it is loaded.
- ``xgboost``: ``model.bst``, ``model.json`` or ``model.ubj`` (or one such file), loaded into a
  Booster as KServe's xgbserver does.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelFormat:
    name: str
    extensions: tuple[str, ...]
    modules: tuple[str, ...]  # what loading it imports
    extra: str | None  # the serving-gateway extra that installs them (None: always installed)

    @property
    def preferred(self) -> tuple[str, ...]:
        """The file names a folder is searched for first, in order: ``model`` with each extension."""
        return tuple(f"model{extension}" for extension in self.extensions)

    def install_hint(self) -> str:
        return f"pip install 'serving-gateway[{self.extra}]'" if self.extra else "pip install serving-gateway"


FORMATS: dict[str, ModelFormat] = {
    "onnx": ModelFormat("onnx", (".onnx",), ("onnxruntime",), None),
    "sklearn": ModelFormat("sklearn", (".joblib", ".pkl", ".pickle"), ("sklearn", "joblib"), "sklearn"),
    "xgboost": ModelFormat("xgboost", (".bst", ".json", ".ubj"), ("xgboost",), "xgboost"),
}
NAMES = tuple(FORMATS)
SERVED = ", ".join(NAMES)


def missing(fmt: str) -> str | None:
    """Why the format cannot be loaded here (its packages are not installed), or None."""
    found = FORMATS[fmt]
    absent = [module for module in found.modules if importlib.util.find_spec(module) is None]
    if not absent:
        return None
    return f"the {fmt} model format needs {' and '.join(absent)}, which is not installed: {found.install_hint()}"


def of_file(path: str) -> str | None:
    """The format a file's name says (by its extension), or None."""
    lowered = path.lower()
    for name, found in FORMATS.items():
        if lowered.endswith(found.extensions):
            return name
    return None


def _candidates(folder: str, fmt: ModelFormat) -> list[str]:
    names = sorted(os.listdir(folder))
    return [n for n in names if n.lower().endswith(fmt.extensions) and os.path.isfile(os.path.join(folder, n))]


def locate(path: str, fmt: str | None) -> tuple[str, str, str | None]:
    """(model file, format, problem): the file of format ``fmt`` that ``path`` names or holds, and what is wrong.

    A folder holds ``model.EXT`` (the format's extensions, in order) or exactly one file with one of
    them; without ``fmt`` its format is the only one with a ``model.EXT`` there, else the only one whose
    files it holds. A file is taken as it is
    named, its format told by its extension (onnx when the extension says nothing).
    """
    if os.path.isdir(path):
        return _in_folder(path, fmt)
    fmt = fmt or of_file(path) or "onnx"
    if not os.path.exists(path):
        return path, fmt, f"model file not found: {path}"
    return path, fmt, None


def misnamed(path: str, fmt: str) -> str | None:
    """What is wrong with naming ``path`` as a model file of format ``fmt``: its extension, or nothing."""
    wanted = FORMATS[fmt]
    if path.lower().endswith(wanted.extensions):
        return None
    return f"must name a {fmt} model file (ending {' or '.join(wanted.extensions)}), got {path}"


def _in_folder(folder: str, fmt: str | None) -> tuple[str, str, str | None]:
    if fmt is None:
        # model.EXT names its format even beside other files (a metadata.json, say); else any file of one format does.
        named = [name for name, found in FORMATS.items() if any(os.path.isfile(os.path.join(folder, n)) for n in found.preferred)]
        holding = named if len(named) == 1 else [name for name, found in FORMATS.items() if _candidates(folder, found)]
        if not holding:
            return folder, "onnx", f"folder {folder} holds no model file (one of {_all_extensions()})"
        if len(holding) > 1:
            return folder, holding[0], f"folder {folder} holds model files of formats {', '.join(holding)}; name the format"
        fmt = holding[0]
    wanted = FORMATS[fmt]
    for name in wanted.preferred:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name), fmt, None
    found = _candidates(folder, wanted)
    if len(found) == 1:
        return os.path.join(folder, found[0]), fmt, None
    what = " or ".join(wanted.preferred)
    held = sorted(name for name in os.listdir(folder) if not name.startswith("."))
    seen = f"({_some(found)})" if found else f"(it holds {_some(held)})" if held else "(it is empty)"
    return (
        folder,
        fmt,
        f"folder {folder} must hold {what} or exactly one {'/'.join(wanted.extensions)} file, found {len(found)} {seen}",
    )


def _some(names: list[str], most: int = 5) -> str:
    """Up to `most` names, and how many more."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _all_extensions() -> str:
    return ", ".join(extension for found in FORMATS.values() for extension in found.extensions)
