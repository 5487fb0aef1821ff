"""One WebSocket session: the hello handshake, then one reader dispatching to the service.

Every error a client can cause becomes an `error` message here (the session goes on) or a close
code (fatal) — this is the one place where service errors meet the WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WebSocketError, WSMsgType, web
from pydantic import ValidationError

from signaling.connection import Connection
from signaling.errors import (
    Banned,
    Conflict,
    InvalidArgument,
    LimitExceeded,
    ServiceError,
    Unauthenticated,
    Unavailable,
)
from signaling.lobby import Waiter
from signaling.origins import origin_matches
from signaling.outage import as_unavailable
from signaling.protocol import (
    CLIENT_MESSAGES,
    SFU,
    SUPPORTED_VERSIONS,
    Admit,
    Answer,
    AskHelp,
    AskUnmute,
    Bye,
    Candidate,
    ChatSend,
    ChooseRoom,
    Consent,
    Deny,
    DismissHelp,
    Error,
    GiveFloor,
    GrantFloor,
    Hello,
    Interpret,
    Leave,
    Listen,
    LockRoom,
    LowerAllHands,
    LowerHand,
    MuteAll,
    Offer,
    Publish,
    React,
    RevokeFloor,
    SpotlightSet,
    Subscribe,
    SubscriptionAnswer,
    Unpublish,
    Update,
    negotiate,
)
from signaling.ratelimit import TokenBucket
from signaling.rooms import Member
from signaling.service import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_PROTOCOL,
    CLOSE_REMOVED,
    CLOSE_REPLACED,
    CLOSE_ROOM_FULL,
    CLOSE_UNAUTHENTICATED,
    CLOSE_UNAVAILABLE,
    SignalingService,
    encode,
)
from signaling.text import find_bad_text, is_clean

log = logging.getLogger(__name__)

# The messages that may use max_sdp_message_bytes (checked again by validation: a lie about the type fails there).
_SDP_MESSAGE = re.compile(r'"type"\s*:\s*"(?:publish|subscription_answer)"')

__all__ = ["CLOSE_REMOVED", "CLOSE_UNAUTHENTICATED", "SessionLimits", "serve_websocket"]


@dataclass(frozen=True)
class SessionLimits:
    max_message_bytes: int = 64 * 1024
    # Messages that carry an SDP may be larger: a subscription to every audio of a plenary is ~0.6 KB per stream.
    max_sdp_message_bytes: int = 256 * 1024
    hard_cap_bytes: int = 1024 * 1024
    heartbeat_s: float = 10.0
    hello_timeout_s: float = 10.0
    queue_size: int = 256
    rate_per_s: float = 50.0
    rate_burst: int = 200
    allowed_origins: frozenset[str] = field(default_factory=frozenset)


def origin_allowed(request: web.Request, allowed: frozenset[str]) -> bool:
    """Non-browser clients send no Origin; browsers must come from our own origin or a listed one, compared
    exactly: scheme, host and port (an http page may not open the WebSocket of an https server, nor another port)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin_matches(origin, allowed, own=f"{request.scheme}://{request.host}")


async def serve_websocket(
    request: web.Request, service: SignalingService, limits: SessionLimits, *, connection_id: str = ""
) -> web.StreamResponse:
    if not origin_allowed(request, limits.allowed_origins):
        raise web.HTTPForbidden(reason="origin not allowed")
    ws = web.WebSocketResponse(
        heartbeat=limits.heartbeat_s,
        max_msg_size=limits.hard_cap_bytes,
        compress=False,
        timeout=2.0,
    )
    await ws.prepare(request)
    connection = Connection(ws, queue_size=limits.queue_size, on_evicted=service.telemetry.evicted)
    try:
        await Session(service, connection, limits, connection_id=connection_id).run()
    finally:
        await connection.finish()
    return ws


def _describe(exc: ValidationError) -> str:
    """A short, safe summary: field paths and reasons, never the input."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:3]:
        if err["type"] == "union_tag_invalid":
            return f"unknown message type {err.get('ctx', {}).get('tag')!r}"
        if err["type"] == "union_tag_not_found":
            return "message has no 'type'"
        loc = ".".join(str(p) for p in err["loc"][1:]) or "(message)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts) or "invalid message"


def _loose_request_id(text: str) -> Any:
    """The request_id of a message that failed validation, when it can be read at all."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    rid = data.get("request_id") if isinstance(data, dict) else None
    if isinstance(rid, str) and not is_clean(rid):
        return None  # it could not even be sent back
    return rid if isinstance(rid, str | int) and not isinstance(rid, bool) and len(str(rid)) <= 64 else None


def _bad_text(raw: Any) -> str | None:
    """The error message for the first string that is not acceptable text, with its field path."""
    bad = find_bad_text(raw)
    return None if bad is None else f"{bad[0]}: {bad[1]}"


class Session:
    def __init__(
        self, service: SignalingService, connection: Connection, limits: SessionLimits, *, connection_id: str = ""
    ) -> None:
        self.service = service
        self.connection = connection
        self.connection_id = connection_id
        self.ws = connection.ws
        self.limits = limits
        self.bucket = TokenBucket(rate=limits.rate_per_s, burst=limits.rate_burst)
        self._last_rate_error = 0.0
        self._dropped = 0
        self._stop = False  # a fatal error or `leave`: read no further
        self._left = False
        self._broken = False  # the client broke the protocol: no resume grace for it

    def error(self, code: str, message: str, request_id: Any = None) -> None:
        self.service.telemetry.error(code)
        self.connection.send(encode(Error(code=code, message=message, request_id=request_id)))

    def fatal(self, code: str, message: str, close_code: int, request_id: Any = None) -> None:
        self.error(code, message, request_id)
        self.connection.close(close_code, message)
        self._stop = self._broken = True

    async def run(self) -> None:
        member = await self._handshake()
        if member is None:
            return
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(member, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    if self._rate_ok():  # a flood of binary frames must not become a flood of errors
                        self.error("invalid_argument", "binary frames are not part of the protocol")
                elif msg.type == WSMsgType.ERROR:
                    # Only a frame the protocol forbids (over the hard cap, not UTF-8, a bad opcode) is the
                    # client's fault. A missed pong, a reset or a read error is a drop: the place is kept.
                    self._broken = isinstance(msg.data, WebSocketError)
                    break
                if self._stop:
                    break
        finally:
            if self.ws.close_code == 1009:  # aiohttp closed it for a frame over the hard cap
                self._broken = True
            if self._left:
                pass
            elif self._broken:
                self.service.leave(member, reason="protocol_violation")
            else:
                self.service.detach(member, self.connection)

    async def _handshake(self) -> Member | None:
        try:
            msg = await self.ws.receive(timeout=self.limits.hello_timeout_s)
        except TimeoutError:
            self.fatal("protocol_violation", "no hello in time", CLOSE_PROTOCOL)
            return None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
        if msg.type != WSMsgType.TEXT:
            self.fatal("protocol_violation", "the first message must be a hello (text)", CLOSE_PROTOCOL)
            return None
        text: str = msg.data
        request_id = _loose_request_id(text)
        if len(text.encode()) > self.limits.max_message_bytes:  # bytes of UTF-8, not characters
            self.fatal("payload_too_large", "hello is too large", CLOSE_PROTOCOL, request_id)
            return None
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            self.fatal("invalid_argument", "not JSON; the first message must be a hello", CLOSE_PROTOCOL)
            return None
        if not isinstance(raw, dict) or raw.get("type") != "hello":
            self.fatal("protocol_violation", "the first message must be a hello", CLOSE_PROTOCOL, request_id)
            return None
        bad = _bad_text(raw)
        if bad is not None:
            self.fatal("invalid_argument", bad, CLOSE_PROTOCOL, request_id)
            return None
        if not isinstance(raw.get("token"), str) or not raw["token"]:
            self.fatal("unauthenticated", "hello carries no token", CLOSE_UNAUTHENTICATED, request_id)
            return None
        try:
            hello = Hello.model_validate(raw)
        except ValidationError as exc:
            self.fatal("invalid_argument", _describe(exc), CLOSE_PROTOCOL, request_id)
            return None
        version = negotiate(hello.protocol)
        if version is None:
            self.fatal(
                "protocol_violation",
                f"no common protocol version; this server speaks {list(SUPPORTED_VERSIONS)}",
                CLOSE_PROTOCOL,
                request_id,
            )
            return None
        admitted = False
        while True:
            joined = await self._join(hello, version, request_id, admitted=admitted)
            if not isinstance(joined, Waiter):
                return joined
            if not await self._wait_in_lobby(joined):
                return None
            admitted = True

    async def _join(self, hello: Hello, version: int, request_id: Any, *, admitted: bool) -> Member | Waiter | None:
        try:
            return await self.service.join(
                hello, version, self.connection, connection_id=self.connection_id, admitted=admitted
            )
        except Banned as exc:
            self.fatal(exc.code, exc.message, CLOSE_REMOVED, request_id)
        except Unauthenticated as exc:
            self.fatal(exc.code, exc.message, CLOSE_UNAUTHENTICATED, request_id)
        except LimitExceeded as exc:
            self.fatal(exc.code, exc.message, CLOSE_ROOM_FULL, request_id)
        except Conflict as exc:  # another connection is resuming this place right now: it has it
            self.fatal(exc.code, exc.message, CLOSE_REPLACED, request_id)
        except Unavailable as exc:
            self.fatal(exc.code, exc.message, CLOSE_GOING_AWAY, request_id)
        except ServiceError as exc:
            self.fatal(exc.code, exc.message, CLOSE_PROTOCOL, request_id)
        except Exception as exc:
            outage = as_unavailable(exc)
            if outage is not None:
                log.warning("join refused, the database is unavailable: %r", exc)
                self.fatal(outage.code, outage.message, CLOSE_UNAVAILABLE, request_id)
            else:
                log.exception("error admitting a hello")
                self.fatal("internal", "internal error", CLOSE_INTERNAL, request_id)
        return None

    async def _wait_in_lobby(self, waiter: Waiter) -> bool:
        """Read the socket while a moderator decides: only `leave` means anything here. True when admitted."""
        lobby = self.service.lobby
        assert lobby is not None
        reader: asyncio.Future[Any] | None = None
        try:
            while not waiter.decision.done():
                reader = asyncio.ensure_future(self.ws.receive())
                await asyncio.wait({reader, waiter.decision}, return_when=asyncio.FIRST_COMPLETED)
                if not reader.done():
                    break
                msg = reader.result()
                reader = None
                if msg.type == WSMsgType.TEXT:
                    if not self._lobby_text(waiter, msg.data):
                        return False
                elif msg.type == WSMsgType.BINARY:
                    if self._rate_ok():
                        self.error("invalid_argument", "binary frames are not part of the protocol")
                else:
                    lobby.detach(waiter)  # closed, or a read error: the knock waits for the grace period
                    return False
        except BaseException:
            # aiohttp cancels the handler when the connection is lost: the knock waits for the grace period.
            lobby.detach(waiter)
            raise
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        return waiter.decision.result() == "admitted"

    def _lobby_text(self, waiter: Waiter, text: str) -> bool:
        """One message from a waiting client; False when the session ends."""
        if not self._rate_ok():
            return True
        if len(text.encode()) > self.limits.max_message_bytes:
            self.error("payload_too_large", f"message over {self.limits.max_message_bytes} bytes")
            return True
        try:
            message = CLIENT_MESSAGES.validate_json(text)
        except ValidationError as exc:
            self._on_invalid(text, exc)
            return not self._stop
        if isinstance(message, Leave):
            assert self.service.lobby is not None
            self.service.lobby.leave(waiter)
            self._left = self._stop = True
            self.connection.send(encode(Bye(reason="left")))
            self.connection.close(1000, "left")
            return False
        if isinstance(message, Hello):
            self.fatal("protocol_violation", "hello was already said", CLOSE_PROTOCOL, message.request_id)
            assert self.service.lobby is not None
            self.service.lobby.detach(waiter)
            return False
        self.error("permission_denied", "you are waiting in the lobby for a moderator", message.request_id)
        return True

    def _rate_ok(self) -> bool:
        now = time.monotonic()
        if self.bucket.take(now):
            return True
        self._dropped += 1
        # One error a second at most: a flood must not turn into a flood of replies.
        if now - self._last_rate_error >= 1.0:
            self._last_rate_error = now
            self.error("rate_limited", f"too many messages; {self._dropped} dropped so far")
        return False

    async def _on_text(self, member: Member, text: str) -> None:
        if not self._rate_ok():
            return
        if len(text) > self.limits.max_message_bytes or (
            len(text) * 4 > self.limits.max_message_bytes and len(text.encode()) > self.limits.max_message_bytes
        ):
            size = len(text.encode())
            limit = self.limits.max_sdp_message_bytes if _SDP_MESSAGE.search(text) else self.limits.max_message_bytes
            if size > max(limit, self.limits.max_message_bytes):
                self.error("payload_too_large", f"message over {limit} bytes", _loose_request_id(text))
                return
        try:
            message = CLIENT_MESSAGES.validate_json(text)
        except ValidationError as exc:
            self._on_invalid(text, exc)
            return
        # Strings with NUL parse (lone surrogates do not): find and name the field. The test is cheap for the rest.
        if "\\u0000" in text and (bad := _bad_text(json.loads(text))) is not None:
            self.error("invalid_argument", bad, _loose_request_id(text))
            return
        try:
            await self._dispatch(member, message)
        except ServiceError as exc:
            self.error(exc.code, exc.message, message.request_id)
        except Exception as exc:
            outage = as_unavailable(exc)
            if outage is not None:
                log.warning("%s from %s: the database is unavailable: %r", type(message).__name__, member.id, exc)
                self.error(outage.code, outage.message, message.request_id)
                return
            log.exception("error handling %s from %s", type(message).__name__, member.id)
            self.error("internal", "internal error", message.request_id)

    def _on_invalid(self, text: str, exc: ValidationError) -> None:
        request_id = _loose_request_id(text)
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            self.error("invalid_argument", "not JSON")
            return
        if isinstance(raw, dict) and raw.get("type") == "hello":
            self.fatal("protocol_violation", "hello was already said", CLOSE_PROTOCOL, request_id)
            return
        if not isinstance(raw, dict):
            self.error("invalid_argument", "a message must be a JSON object", request_id)
            return
        self.error("invalid_argument", _bad_text(raw) or _describe(exc), request_id)

    async def _dispatch(self, member: Member, message: Any) -> None:
        service = self.service
        if isinstance(message, Candidate) and message.to == SFU:
            await service.trickle_to_sfu(member, message)
        elif isinstance(message, Offer | Answer | Candidate):
            service.relay(member, message)
        elif isinstance(message, Publish):
            await service.publish(member, message)
        elif isinstance(message, Unpublish):
            await service.unpublish(member, message)
        elif isinstance(message, Subscribe):
            await service.subscribe(member, message)
        elif isinstance(message, SubscriptionAnswer):
            await service.subscription_answer(member, message)
        elif isinstance(message, GrantFloor | RevokeFloor):
            await service.grant_floor(member, message)
        elif isinstance(message, SpotlightSet):
            await service.spotlight(member, message)
        elif isinstance(message, React):
            service.react(member, message)
        elif isinstance(message, Update):
            service.update(member, message)
        elif isinstance(message, ChatSend):
            await service.chat(member, message)
        elif isinstance(message, LowerHand):
            await service.lower_hand(member, message)
        elif isinstance(message, AskHelp):
            service.ask_help(member, message)
        elif isinstance(message, DismissHelp):
            service.dismiss_help(member, message)
        elif isinstance(message, ChooseRoom):
            await service.choose_room(member, message)
        elif isinstance(message, Consent):
            await service.consent(member, message)
        elif isinstance(message, Admit):
            await service.admit(member, message)
        elif isinstance(message, Deny):
            await service.deny(member, message)
        elif isinstance(message, LockRoom):
            await service.lock_room(member, message)
        elif isinstance(message, MuteAll):
            await service.mute_all(member, message)
        elif isinstance(message, AskUnmute):
            await service.ask_unmute(member, message)
        elif isinstance(message, LowerAllHands):
            await service.lower_all_hands(member, message)
        elif isinstance(message, GiveFloor):
            await service.give_floor(member, message)
        elif isinstance(message, Listen):
            service.listen(member, message)
        elif isinstance(message, Interpret):
            service.interpret(member, message)
        elif isinstance(message, Leave):
            service.leave(member)
            self._left = self._stop = True
            self.connection.send(encode(Bye(reason="left")))
            self.connection.close(1000, "left")
        elif isinstance(message, Hello):
            self.fatal("protocol_violation", "hello was already said", CLOSE_PROTOCOL, message.request_id)
        else:  # pragma: no cover - the union is exhaustive
            raise InvalidArgument("unsupported message")
