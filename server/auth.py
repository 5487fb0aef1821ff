"""Who is asking: the admin token, or a participant's signed join token.

A join token is a JWT (HS256) naming the workshop, participant, role and the participant's token
generation; revoking a participant bumps the generation, which refuses every earlier token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import jwt

from signaling.errors import Banned, Unauthenticated

ISSUER = "roundtable"
JOIN_AUDIENCE = "roundtable:join"
Role = Literal["organiser", "moderator", "participant", "observer"]
ROLES: tuple[Role, ...] = ("organiser", "moderator", "participant", "observer")
MANAGER_ROLES: frozenset[str] = frozenset({"organiser", "moderator"})


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def read_or_create_secret_file(path: Path) -> tuple[str, bool]:
    """The secret kept in `path` (mode 0600), created on first use. Returns (secret, created)."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = new_secret()
    # O_EXCL: two processes starting at once cannot both write a different secret.
    try:
        fd = path.open("x", encoding="utf-8")
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip(), False
    with fd:
        path.chmod(0o600)
        fd.write(secret + "\n")
    return secret, True


@dataclass(frozen=True)
class JoinClaims:
    workshop_id: uuid.UUID
    participant_id: uuid.UUID
    role: Role
    generation: int
    expires_at: datetime


VERIFIED_TOKENS_KEPT = 20_000


class TokenSigner:
    """Mints and verifies join tokens with the server's secret key.

    A token that verified once is remembered (by its exact text) with its claims, so that reconnecting does not pay
    for PyJWT again: the signature of the same bytes verifies the same way, and the one check that depends on time,
    expiry, is made at every use. Revocation is not the signer's business (see `check_claims`)."""

    def __init__(self, secret_key: str) -> None:
        self._key = secret_key
        self._verified: dict[str, JoinClaims] = {}

    def mint(
        self,
        *,
        workshop_id: uuid.UUID,
        participant_id: uuid.UUID,
        role: str,
        generation: int,
        expires_at: datetime,
    ) -> str:
        claims = {
            "iss": ISSUER,
            "aud": JOIN_AUDIENCE,
            "sub": str(participant_id),
            "wid": str(workshop_id),
            "role": role,
            "gen": generation,
            "iat": int(datetime.now(UTC).timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str) -> JoinClaims:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                self._verified.clear()
            self._verified[token] = claims
        elif claims.expires_at.timestamp() <= time.time():  # as PyJWT decides it: exp <= now
            del self._verified[token]
            raise Unauthenticated("token expired")
        return claims

    def _decode(self, token: str) -> JoinClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=JOIN_AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
            role = claims["role"]
            if role not in ROLES:
                raise ValueError("role")
            return JoinClaims(
                workshop_id=uuid.UUID(claims["wid"]),
                participant_id=uuid.UUID(claims["sub"]),
                role=role,
                generation=int(claims["gen"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as exc:
            raise Unauthenticated("invalid token") from exc


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request or session."""

    is_admin: bool
    workshop_id: uuid.UUID | None = None
    participant_id: uuid.UUID | None = None
    role: Role | None = None

    def member_of(self, workshop_id: uuid.UUID) -> bool:
        return self.is_admin or self.workshop_id == workshop_id

    def manages(self, workshop_id: uuid.UUID) -> bool:
        """Organiser-level rights: edit the workshop and its roster."""
        return self.is_admin or (self.workshop_id == workshop_id and self.role == "organiser")

    def moderates(self, workshop_id: uuid.UUID) -> bool:
        """Moderator-level rights: read the roster, run rooms."""
        return self.is_admin or (self.workshop_id == workshop_id and self.role in MANAGER_ROLES)


ADMIN = Principal(is_admin=True)


class AdminCredential:
    """The admin token, held only as a hash."""

    def __init__(self, token_hash: str) -> None:
        self._hash = token_hash

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(hash_token(token), self._hash)


class ParticipantLookup(Protocol):
    async def find_participant(self, participant_id: uuid.UUID) -> Mapping[str, Any] | None: ...


class Authenticator:
    """Turns a bearer token into a Principal, checking revocation against the database."""

    def __init__(self, signer: TokenSigner, admin: AdminCredential, people: ParticipantLookup) -> None:
        self.signer = signer
        self.admin = admin
        self.people = people

    async def principal(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated("missing bearer token")
        if self.admin.matches(token):
            return ADMIN
        row = await self.participant(token)
        return Principal(
            is_admin=False,
            workshop_id=row["workshop_id"],
            participant_id=row["id"],
            role=row["role"],
        )

    async def participant(self, token: str) -> Mapping[str, Any]:
        """The live roster row behind a join token; refuses expired, revoked and removed ones."""
        claims = self.signer.verify(token)
        return check_claims(claims, await self.people.find_participant(claims.participant_id))


def check_claims(claims: JoinClaims, row: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The participant a verified token names, if it still exists in that workshop and the token is not revoked."""
    if row is None or row["workshop_id"] != claims.workshop_id:
        raise Unauthenticated("token refers to no participant")
    # Before the generation: a ban also revoked every token, and each of them must say "banned", not "revoked".
    if row["banned_at"] is not None:
        raise banned(row["ban_reason"])
    if row["token_generation"] != claims.generation:
        raise Unauthenticated("token revoked")
    return row


CLOSE_REASON_MAX_BYTES = 123  # RFC 6455: a close frame's reason fits in 125 bytes with the code


def banned(reason: str | None) -> Banned:
    """The refusal every token of a banned participant gets; its message is also the WebSocket close reason."""
    return Banned(fit_close_reason("banned" + (f": {reason}" if reason else "")))


def fit_close_reason(text: str, limit: int = CLOSE_REASON_MAX_BYTES) -> str:
    """`text` cut to `limit` bytes of UTF-8 without splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[:limit].decode(errors="ignore")


# RFC 6750 b64token, which covers both our JWTs and the admin token. aiohttp hands header bytes that are not UTF-8 on
# as lone surrogates: they fail here, before anything tries to encode them.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Authorization must be 'Bearer <token>'")
    if not _TOKEN.fullmatch(token):
        raise Unauthenticated("the bearer token is malformed")
    return token


@dataclass(frozen=True)
class IssuedToken:
    token: str
    url: str
    expires_at: datetime


class JoinTokenIssuer:
    """Mints a participant's join token and the join URL that carries it.

    The token travels in the URL fragment (`/join#<token>`): browsers never send a fragment to a server, so it
    stays out of access logs and Referer headers.
    """

    def __init__(self, signer: TokenSigner, *, base_url: str, grace_s: int, min_ttl_s: int) -> None:
        self.signer = signer
        self.base_url = base_url
        self.grace = timedelta(seconds=grace_s)
        self.min_ttl = timedelta(seconds=min_ttl_s)

    def expiry(self, workshop_ends_at: datetime) -> datetime:
        try:
            after_end = workshop_ends_at + self.grace
        except OverflowError:  # a workshop stored before its times were bounded, ending near year 9999
            after_end = datetime.max.replace(tzinfo=UTC)
        return max(after_end, datetime.now(UTC) + self.min_ttl).replace(microsecond=0)

    def issue(
        self,
        participant: Mapping[str, Any],
        *,
        workshop_ends_at: datetime,
        expires_at: datetime | None = None,
    ) -> IssuedToken:
        expires = expires_at or self.expiry(workshop_ends_at)
        token = self.signer.mint(
            workshop_id=participant["workshop_id"],
            participant_id=participant["id"],
            role=participant["role"],
            generation=participant["token_generation"],
            expires_at=expires,
        )
        return IssuedToken(token=token, url=f"{self.base_url}/join#{token}", expires_at=expires)
