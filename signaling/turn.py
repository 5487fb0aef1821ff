"""TURN REST API credentials (coturn `use-auth-secret`), minted per participant. Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac


def turn_credentials(secret: str, user_id: str, *, now_s: int, ttl_s: int) -> tuple[str, str]:
    """(username, password): the username is `<expiry unix time>:<user id>`, the password
    base64(HMAC-SHA1(secret, username)), exactly what coturn checks with the same secret."""
    username = f"{now_s + ttl_s}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def verify_turn_credentials(secret: str, username: str, password: str, *, now_s: int) -> bool:
    expiry, _, _ = username.partition(":")
    if not expiry.isdigit() or int(expiry) < now_s:
        return False
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), password)
