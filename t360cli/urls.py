"""What t360 says and decides about URLs: a password never shown, the loopback host known."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def mask_url(url: str) -> str:
    """`url` with the password of its user information shown as `***` (SPEC 11: output never
    shows a password that is part of a URL): `https://user:***@host/path`."""
    head, sep, rest = url.partition("//")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{head}//{userinfo.split(':', 1)[0]}:***@{host}{rest[end:]}"


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8, ::1 (an IPv4-mapped loopback address too)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def host_of(url: str | None) -> str:
    """host[:port] of a URL ("" without one): what the progress log remembers."""
    parts = urlsplit(url or "")
    if not parts.hostname:
        return ""
    return parts.hostname + (f":{parts.port}" if parts.port else "")
