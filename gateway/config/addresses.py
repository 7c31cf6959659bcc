"""HOST:PORT listen addresses, parsed in one place for the config, the command line and the listeners."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class Address(NamedTuple):
    host: str  # "" for all interfaces; an IPv6 address without its brackets
    port: int  # 0 picks a free port


class AddressError(ValueError):
    """A HOST:PORT that does not parse; the message names the part that is wrong."""


def parse_address(text: str) -> Address:
    """``HOST:PORT``: HOST empty, a DNS name, an IPv4 address or a bracketed IPv6 address; PORT 0..65535."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise AddressError(f"no port in {text!r}: expected HOST:PORT like 0.0.0.0:8080")
    return Address(_host(host), _port(port))


def split_hostport(value: str, what: str) -> tuple[str, int]:
    """`parse_address` for a setting called `what`, with the message the command line prints."""
    try:
        return parse_address(value)
    except AddressError as exc:
        raise ValueError(f"{what}: expected HOST:PORT, got {value!r}") from exc


def _port(text: str) -> int:
    if not text:
        raise AddressError("the port after ':' is missing")
    if not (text.isascii() and text.isdigit()):
        raise AddressError(f"port {text!r} is not a number")
    if int(text) > 65535:
        raise AddressError(f"port {text} is out of range 0..65535")
    return int(text)


def _host(text: str) -> str:
    if text.startswith("[") or text.endswith("]"):
        inner = text[1:-1] if text.startswith("[") and text.endswith("]") else ""
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise AddressError(f"host {text!r} is not an IPv6 address in brackets like [::1]") from None
        return inner
    if ":" in text:
        raise AddressError(f"IPv6 host {text!r} must be in brackets, like [{text}]:8080")
    if text and DNS_NAME.fullmatch(text.lower()) is None:
        raise AddressError(f"host {text!r} is not a DNS name or an IP address")
    return text
