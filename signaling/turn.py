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
    # ASCII digits only: str.isdigit() also accepts '¹' and other scripts' digits, which int() refuses.
    if not (expiry.isascii() and expiry.isdigit()) or int(expiry) < now_s:
        return False
    try:  # compare bytes: compare_digest raises on non-ASCII str, and a client may send anything
        digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
        given = password.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(base64.b64encode(digest), given)
