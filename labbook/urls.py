"""Redirect targets: only same-site paths are followed (STYLE: never trust ``?next=``)."""
from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(target: str | None, fallback: str) -> str:
    """Return ``target`` if it is a path on this site, else ``fallback``.

    Refuses absolute URLs, scheme-relative ``//host`` forms, backslash tricks and control
    characters, which browsers may normalise into another host.
    """
    if not target or any(ord(c) < 32 for c in target) or "\\" in target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target
