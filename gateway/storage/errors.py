"""What goes wrong fetching a model: one error class, its message naming the URI."""

from __future__ import annotations

EXTRA_HINT = "pip install 'serving-gateway[storage]'"


class StorageError(Exception):
    """A model could not be fetched: bad URI, no credentials, refused, not found, corrupt, too big."""


class MissingExtraError(StorageError):
    """The library a scheme needs is not installed (the `storage` extra)."""

    def __init__(self, uri: str, library: str) -> None:
        super().__init__(f"{uri}: the {library} library is needed to download it: {EXTRA_HINT}")
