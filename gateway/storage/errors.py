"""What goes wrong fetching a model: one error class, its message naming the URI."""

from __future__ import annotations

EXTRA_HINT = "pip install 'serving-gateway[storage]'"
LIBRARIES = {"s3": ("boto3", "boto3"), "gs": ("google.cloud.storage", "google-cloud-storage")}  # scheme: (module, package)


def missing_library(scheme: str) -> str | None:
    """What to install before a URI of `scheme` can be fetched here, or None when nothing is missing."""
    import importlib.util

    if scheme not in LIBRARIES:
        return None
    module, package = LIBRARIES[scheme]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module blocked in sys.modules
        found = False
    return None if found else f"{scheme}:// needs the {package} library: {EXTRA_HINT}"


class StorageError(Exception):
    """A model could not be fetched: bad URI, no credentials, refused, not found, corrupt, too big."""


class MissingExtraError(StorageError):
    """The library a scheme needs is not installed (the `storage` extra)."""

    def __init__(self, uri: str, library: str) -> None:
        super().__init__(f"{uri}: the {library} library is needed to download it: {EXTRA_HINT}")
