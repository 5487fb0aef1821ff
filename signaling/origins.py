"""Web origins compared exactly: scheme, host and port (RFC 6454), the default port made explicit-free.

Pure: the standard library only.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise_origin(value: str) -> str | None:
    """`scheme://host[:port]` in lower case without a default port, or None when `value` is not an http(s) origin
    (an opaque "null", a path, credentials, a query)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port is None or port == _DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{port}"


def origin_matches(origin: str, allowed: frozenset[str], own: str) -> bool:
    """Whether a browser's Origin header is our own origin (`own`: scheme and Host of the request) or a listed one."""
    normal = normalise_origin(origin)
    if normal is None:
        return False
    return normal == normalise_origin(own) or normal in {normalise_origin(a) for a in allowed}
