"""Unpacks .zip and .tar(.gz) archives someone else made, refusing what would escape the target.

Refused: absolute names, `..` that climbs out, symbolic links pointing out of the target, hard links,
devices and fifos, more than `MAX_MEMBERS` entries, and more than `limit` bytes unpacked: counted as the
bytes are written, whatever sizes the archive declares.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import zipfile
from typing import IO

from .errors import StorageError

MAX_MEMBERS = 100_000
_CHUNK = 1024 * 1024


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise StorageError(f"unpacks to more than {self.limit} bytes (the limit)")


def unpack(archive: str, target: str, limit: int) -> None:
    """Unpack `archive` (by its name's suffix) into the existing directory `target`."""
    budget = _Budget(limit)
    try:
        if archive.lower().endswith(".zip"):
            _unzip(archive, target, budget)
        else:
            _untar(archive, target, budget)
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


def _copy(source: IO[bytes], dest: str, budget: _Budget) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.islink(dest) or os.path.isdir(dest):
        raise StorageError(f"archive member {dest!r} overwrites a link or a directory")
    with open(dest, "wb") as out:
        while chunk := source.read(_CHUNK):
            budget.take(len(chunk))
            out.write(chunk)


def _unzip(archive: str, target: str, budget: _Budget) -> None:
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


def _untar(archive: str, target: str, budget: _Budget) -> None:
    with tarfile.open(archive, "r:*") as tf:
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


def _untar_member(tf: tarfile.TarFile, member: tarfile.TarInfo, dest: str, budget: _Budget) -> None:
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
