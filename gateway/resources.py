"""The process's own limits: file descriptors, and telling a local shortage from a replica's failure."""

from __future__ import annotations

import errno
import logging
import resource

log = logging.getLogger(__name__)

# The gateway ran out of something; the replica it was talking to is not at fault.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def is_local_shortage(exc: BaseException | None) -> bool:
    """True for EMFILE, ENFILE, ENOBUFS, ENOMEM, also when wrapped (aiohttp keeps the OSError as the cause)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno in LOCAL_ERRNOS:
            return True
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
        seen += 1
    return False


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as nginx's worker_rlimit_nofile would); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open file limit from %d to %d: %s", soft, target, exc)
    return soft


def fd_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_max_connections(limit: int | None = None) -> int:
    """Client connections the descriptor limit allows, with room kept for everything else.

    Each client connection may hold one upstream connection, and idle keep-alive connections to
    replicas (capped at a quarter of this number) need descriptors too; a reserve of a sixteenth of
    the limit (at least 64) covers listeners, probes, replica processes, logs and the admin API:
    ``clients + clients + clients / 4 <= limit - reserve``.
    """
    limit = fd_limit() if limit is None else limit
    reserve = max(64, limit // 16)
    return max(16, (limit - reserve) * 4 // 9)
