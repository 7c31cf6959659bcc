"""Unpacks .zip and .tar(.gz) archives someone else made, refusing what would escape the target.

Refused: absolute names, `..` that climbs out, symbolic links pointing out of the target, hard links,
devices and fifos, more than `MAX_MEMBERS` entries, more than the budget's bytes unpacked (counted as the
bytes are written, whatever sizes the archive declares, with the disk's free space checked as they are),
and a compression ratio over `MAX_RATIO` to 1 once past `RATIO_GRACE` bytes: an archive bomb.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from typing import IO

from .errors import StorageError
from .limits import Budget

MAX_MEMBERS = 100_000
MAX_RATIO = 200  # bytes unpacked per byte of archive read; a model's files compress far less
RATIO_GRACE = 16 * 1024**2  # unpacked bytes before the ratio is judged (small files of zeros compress well)
_CHUNK = 1024 * 1024


class _Unpacked:
    """The bytes unpacked so far, against the budget and against the archive's bytes read (`consumed`)."""

    def __init__(self, budget: Budget, consumed: Callable[[], int]) -> None:
        self.budget = budget
        self.limit = budget.limit
        self.consumed = consumed
        self.total = 0

    def take(self, n: int) -> None:
        self.total += n
        if self.total > self.limit:
            raise StorageError(f"unpacks to more than {self.limit} bytes (the limit)")
        self.budget.progress(n)
        if self.total > RATIO_GRACE and self.total > MAX_RATIO * max(1, self.consumed()):
            raise StorageError(
                f"unpacks {self.total} bytes from {self.consumed()} bytes of archive, a compression ratio over "
                f"{MAX_RATIO}:1: refused as an archive bomb"
            )


def unpack(archive: str, target: str, budget: Budget) -> None:
    """Unpack `archive` (by its name's suffix) into the existing directory `target`, counting in `budget`."""
    try:
        with open(archive, "rb") as raw:
            unpacked = _Unpacked(budget, raw.tell)  # the file's position: the archive's bytes read so far
            if archive.lower().endswith(".zip"):
                _unzip(raw, target, unpacked)
            else:
                _untar(raw, target, unpacked)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise StorageError(f"corrupt archive: {' '.join(str(exc).split())}") from exc


def safe_join(target: str, name: str) -> str:
    """Where member `name` goes inside `target`; refuses names that leave it."""
    if not name or "\0" in name:
        raise StorageError(f"archive member with an empty or invalid name {name!r}")
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise StorageError(f"archive member with an absolute name {name!r}")
    normal = posixpath.normpath(cleaned)
    if normal == ".." or normal.startswith("../"):
        raise StorageError(f"archive member {name!r} would be written outside the target directory")
    return os.path.join(target, *[part for part in normal.split("/") if part not in ("", ".")])


def place_keys(dest: str, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Where each (key, name relative to the prefix) of a bucket listing goes in `dest`, as (key, path).

    Refused, naming both keys: two keys landing on the same file (`p/a` and `p//a`), and a key that is a file
    where another needs a folder (`p/a` and `p/a/b`): a file system cannot hold both, a bucket can."""
    files: dict[str, str] = {}
    placed = []
    for key, relative in keys:
        path = safe_join(dest, relative)
        if path in files:
            raise StorageError(f"keys {files[path]!r} and {key!r} would both be written to {path[len(dest) + 1 :]!r}")
        files[path] = key
        placed.append((key, path))
    for path, key in files.items():
        parent = os.path.dirname(path)
        while len(parent) > len(dest):
            if parent in files:
                raise StorageError(
                    f"key {files[parent]!r} is a file where key {key!r} needs a folder: a file system cannot hold both"
                )
            parent = os.path.dirname(parent)
    return placed


def _copy(source: IO[bytes], dest: str, budget: _Unpacked) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.islink(dest) or os.path.isdir(dest):
        raise StorageError(f"archive member {dest!r} overwrites a link or a directory")
    with open(dest, "wb") as out:
        while chunk := source.read(_CHUNK):
            budget.take(len(chunk))
            out.write(chunk)


def _unzip(archive: IO[bytes], target: str, budget: _Unpacked) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS:
            raise StorageError(f"archive has more than {MAX_MEMBERS} entries")
        if sum(m.file_size for m in members) > budget.limit:
            raise StorageError(f"unpacks to more than {budget.limit} bytes (the limit)")
        for member in members:
            dest = safe_join(target, member.filename)
            mode = (member.external_attr >> 16) & 0o170000
            if mode == 0o120000:  # zip stores symlinks as files whose content is the target
                raise StorageError(f"archive member {member.filename!r} is a symbolic link")
            if member.is_dir():
                os.makedirs(dest, exist_ok=True)
                continue
            with zf.open(member) as source:
                _copy(source, dest, budget)


def _untar(archive: IO[bytes], target: str, budget: _Unpacked) -> None:
    with tarfile.open(fileobj=archive, mode="r:*") as tf:
        links: list[tuple[str, str]] = []
        for count, member in enumerate(tf, 1):
            if count > MAX_MEMBERS:
                raise StorageError(f"archive has more than {MAX_MEMBERS} entries")
            dest = safe_join(target, member.name)
            if member.issym():
                links.append((dest, _link_target(target, dest, member)))
            else:
                _untar_member(tf, member, dest, budget)
        # Links last, so that no file is ever written through one.
        for dest, points_to in links:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.symlink(points_to, dest)
        root = os.path.realpath(target)
        for dest, points_to in links:  # a link through another link may still lead out: resolve them all
            resolved = os.path.realpath(dest)
            if resolved != root and not resolved.startswith(root + os.sep):
                raise StorageError(
                    f"archive member {dest[len(target) + 1 :]!r} links outside the target directory ({points_to!r})"
                )


def _untar_member(tf: tarfile.TarFile, member: tarfile.TarInfo, dest: str, budget: _Unpacked) -> None:
    if member.isdir():
        os.makedirs(dest, exist_ok=True)
    elif member.isfile():
        source = tf.extractfile(member)
        if source is None:
            raise StorageError(f"archive member {member.name!r} cannot be read")
        with source:
            _copy(source, dest, budget)
    elif member.islnk():
        raise StorageError(f"archive member {member.name!r} is a hard link (not unpacked)")
    else:
        raise StorageError(f"archive member {member.name!r} is a device or fifo (not unpacked)")


def _link_target(target: str, dest: str, member: tarfile.TarInfo) -> str:
    points_to = member.linkname
    if not points_to or points_to.startswith("/"):
        raise StorageError(f"archive member {member.name!r} links to an absolute path {points_to!r}")
    resolved = os.path.normpath(os.path.join(os.path.dirname(dest), points_to))
    root = os.path.normpath(target)
    if resolved != root and not resolved.startswith(root + os.sep):
        raise StorageError(f"archive member {member.name!r} links outside the target directory ({points_to!r})")
    return points_to


def remove(path: str) -> None:
    """Remove a file or a directory tree, whichever `path` is; nothing if it is gone."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)
