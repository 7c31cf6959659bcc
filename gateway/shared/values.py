"""Small readings of what Redis holds: a URL fit to show, a lease's epoch, a stream entry id's time."""

from __future__ import annotations


def redacted(url: str) -> str:
    """The URL without its password, for logs and the admin API."""
    if "password=" in url:
        base, _, query = url.partition("?")
        kept = "&".join("password=***" if part.startswith("password=") else part for part in query.split("&"))
        url = f"{base}?{kept}"
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***@' if user else '***@'}{host}"


MAX_EPOCH = 2**53  # exact in Redis's Lua numbers; a lease claiming more is not from a gateway


def epoch_of(holder: str) -> int:
    """The epoch in a lease's value "instance|epoch" (0 when there is none, or it is not believable)."""
    number = holder.rpartition("|")[2]
    if not number.isdigit() or len(number) > 16:
        return 0
    return int(number) if int(number) < MAX_EPOCH else 0


def id_ms(entry_id: str) -> int:
    """The Redis server time (ms) a stream entry id was made at."""
    head = entry_id.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


MAX_PLANES = 256  # data planes one instance may claim (its workers)


def planes_of(value: object) -> int:
    """The data planes a member says it runs, within 1..MAX_PLANES (anything else is not from a gateway)."""
    try:
        return min(MAX_PLANES, max(1, int(str(value))))
    except ValueError:
        return 1
