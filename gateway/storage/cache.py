"""Fetching a model into the cache: once per URI and version, whole or not at all.

Layout under the cache directory (`{state_dir}/models`):
- `{name}-{hash}/`: a complete download, `hash` of the URI and the store's version of it (S3 ETags,
  GCS generations, an HTTP ETag or Last-Modified), `name` the URI's last part, for people reading;
- `{name}-{hash}.lock`: held (fcntl) while one process downloads, so replicas starting together
  fetch once and the others then find the complete copy; removed by its holder when done (a waiter
  that then holds a removed lock opens it afresh), so no lock outlives a fetch, failed or not;
- `.partial-{name}-{hash}-{pid}/`: a download in progress, renamed into place only when complete.
  One left by a crash is removed by the next fetch of that URI before it starts afresh, and any partial
  older than `STALE_PARTIAL` seconds by every fetch into the cache.
Limits (see limits.py): at most `max_bytes` per model, downloaded or unpacked, and no download that would
leave the cache's filesystem with less than 5 % free.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from typing import Protocol

from .archives import remove, unpack
from .errors import StorageError
from .limits import Budget, Limits, max_bytes_from, timeout_from
from .uris import StorageUri, archive_suffix, parse, redact

log = logging.getLogger("gateway.storage")

STALE_PARTIAL = 24 * 3600.0  # seconds: a partial download this old is a dead process's, whatever its URI
STATE_DIR_ENV = "SERVING_GATEWAY_STATE_DIR"  # set by the local backend for every replica (backends/process.py)


def default_cache_dir(env: Mapping[str, str] | None = None) -> str:
    """`$SERVING_GATEWAY_STATE_DIR/models` (the gateway's state directory, for its replicas), else
    `$XDG_STATE_HOME/serving-gateway/models` or ~/.local/state/serving-gateway/models."""
    env = os.environ if env is None else env
    state = env.get(STATE_DIR_ENV)
    if state:
        return os.path.join(state, "models")
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "serving-gateway", "models")


class Store(Protocol):
    def version(self) -> str: ...

    def download(self, dest: str, budget: Budget) -> None: ...


def open_store(uri: StorageUri, env: Mapping[str, str]) -> Store:
    """The store for a remote URI; imports its library only now (the `storage` extra)."""
    if uri.scheme == "s3":
        from .s3 import S3Store

        return S3Store(uri, env)
    if uri.scheme == "gs":
        from .gcs import GcsStore

        return GcsStore(uri, env)
    from .web import HttpStore

    return HttpStore(uri, env)


def entry_name(uri: str, version: str) -> str:
    """The cache entry for `uri` at `version`: readable, and distinct for every (URI, version)."""
    digest = hashlib.sha256(f"{uri}\0{version}".encode()).hexdigest()[:24]
    tail = redact(uri).partition("?")[0].rstrip("/").rsplit("/", 1)[-1]  # no query string (a signature) in the name
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", tail)[:48].lstrip(".") or "model"
    return f"{readable}-{digest}"


def local_path(uri: StorageUri, base: str | None = None) -> str:
    path = os.path.expanduser(uri.path)
    if base is not None:
        path = os.path.join(base, path)
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise StorageError(f"{uri.shown}: no such file or directory: {path}")
    return path


def fetch(
    uri: str,
    cache_dir: str,
    credentials: Mapping[str, str] | None = None,
    *,
    max_bytes: int | None = None,
    timeout: float | None = None,
    limits: Limits | None = None,
) -> str:
    """The local path of the model `uri` names, downloading it into `cache_dir` if it is remote.

    A local path or `file://` URI is returned as it is (made absolute); a remote one as the directory
    holding its download (an archive unpacked). `credentials` is the environment the stores read
    (default: this process's). `limits` default to `max_bytes`, else $SERVING_GATEWAY_MAX_MODEL_BYTES of
    that environment, else 16 GiB; and to `timeout`, else $SERVING_GATEWAY_DOWNLOAD_TIMEOUT, else 10 minutes
    (90 s in a local backend's replica, which has 120 s to become ready). Raises :class:`StorageError` naming the URI.
    """
    parsed = parse(uri)
    if not parsed.remote:
        return local_path(parsed)
    env = os.environ if credentials is None else credentials
    if limits is None:
        try:
            limits = Limits(
                max_bytes=max_bytes_from(env) if max_bytes is None else max_bytes,
                timeout=timeout_from(env, local=bool(env.get(STATE_DIR_ENV))) if timeout is None else timeout,
            )
        except StorageError as exc:
            raise StorageError(f"{parsed.shown}: {exc}") from exc
    store = open_store(parsed, env)
    try:
        return _fetch_into(store, parsed, cache_dir, limits)
    finally:
        close = getattr(store, "close", None)  # the http client's connections
        if close is not None:
            close()


def _fetch_into(store: Store, parsed: StorageUri, cache_dir: str, limits: Limits) -> str:
    uri = parsed.raw
    name = entry_name(uri, store.version())
    os.makedirs(cache_dir, exist_ok=True)
    remove_stale_partials(cache_dir, time.time())
    final = os.path.join(cache_dir, name)
    with _locked(os.path.join(cache_dir, f"{name}.lock")):
        if os.path.isdir(final):
            return final
        for stale in glob.glob(os.path.join(glob.escape(cache_dir), f".partial-{glob.escape(name)}-*")):
            remove(stale)
        partial = os.path.join(cache_dir, f".partial-{name}-{os.getpid()}")
        os.makedirs(partial)
        started = time.monotonic()
        try:
            budget = Budget(limits, partial)
            store.download(partial, budget)
            _unpack_single_archive(parsed, partial, budget)
            os.rename(partial, final)
        except StorageError as exc:
            remove(partial)
            message = str(exc)
            raise StorageError(message if message.startswith(parsed.shown) else f"{parsed.shown}: {message}") from exc
        except BaseException:
            remove(partial)
            raise
    log.info("downloaded %s into %s in %.1f s", parsed.shown, final, time.monotonic() - started)
    return final


def remove_stale_partials(cache_dir: str, now: float) -> None:
    """Remove the partial downloads in `cache_dir` last written before `now - STALE_PARTIAL` (wall-clock
    seconds): a process killed mid-download leaves one behind, and nothing else would fetch its URI again."""
    for stale in glob.glob(os.path.join(glob.escape(cache_dir), ".partial-*")):
        try:  # a folder's time changes as files are added to it, not written: its files' times count too
            touched = os.lstat(stale).st_mtime
            with os.scandir(stale) as entries:  # closed however the walk ends: a file can vanish under it
                for entry in entries:
                    touched = max(touched, entry.stat(follow_symlinks=False).st_mtime)
        except OSError:  # gone meanwhile (its download finished), or not a folder
            continue
        if touched < now - STALE_PARTIAL:
            log.info("removing %s, a partial download untouched for %.0f hours", stale, (now - touched) / 3600)
            remove(stale)


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold the lock file `path` (fcntl), then remove it. A waiter whose file was removed meanwhile opens it again."""
    while True:
        with open(path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue
            if os.path.samestat(current, os.fstat(lock.fileno())):
                try:
                    yield
                finally:
                    os.unlink(path)
                return


def _unpack_single_archive(uri: StorageUri, folder: str, budget: Budget) -> None:
    """A URI naming one archive (.zip, .tar.gz, .tgz, .tar) is unpacked in place of it, as KServe does."""
    if archive_suffix(uri.key) is None:
        return
    entries = os.listdir(folder)
    if len(entries) != 1 or archive_suffix(entries[0]) is None:
        return
    archive = os.path.join(folder, entries[0])
    hidden = os.path.join(folder, f".archive{archive_suffix(entries[0])}")
    os.rename(archive, hidden)
    unpack(hidden, folder, budget)
    os.unlink(hidden)
