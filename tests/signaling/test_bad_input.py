"""Everything a client can get wrong on the WebSocket: each gets its error code, the session goes on
after every non-fatal one, and the server keeps serving other clients.

Non-fatal mistakes are checked one per subtest with fresh peers (for a readable report) and all in a
row through one session (for the "after everything" promise). Fatal ones close with their close code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import SESSION_LIMITS, create_app
from server.auth import TokenSigner
from server.settings import Settings
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.helpers import ADMIN, add_participant, create_workshop
from tests.signaling.client import SignalClient, connect, join

MAX = 64 * 1024  # ws_max_message_bytes by default


@dataclass
class Ctx:
    """The two joined peers of a test (a is the one misbehaving) and ids to aim at."""

    a: SignalClient
    b: SignalClient
    far: str = ""  # a peer connected in another room of the same workshop
    rid: str = ""  # the request_id of the case being run

    @property
    def me(self) -> str:
        return self.a.id

    @property
    def peer(self) -> str:
        return self.b.id


Frame = str | bytes
DROP = object()  # a field to leave out


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Ctx], Frame]
    code: str
    echo: bool = True  # the request_id can be read back from the frame
    needs_far: bool = False


def obj(**fields: Any) -> Callable[[Ctx], Frame]:
    """A JSON object case; `fields` values may be callables of the context. request_id is added."""

    def build(c: Ctx) -> Frame:
        out = {k: (v(c) if callable(v) else v) for k, v in fields.items()}
        return json.dumps({**out, "request_id": c.rid})

    return build


def raw(frame: Frame) -> Callable[[Ctx], Frame]:
    return lambda _c: frame


def peer(c: Ctx) -> str:
    return c.peer


def offer_with(**changes: Any) -> Callable[[Ctx], Frame]:
    def build(c: Ctx) -> Frame:
        base: dict[str, Any] = {"type": "offer", "to": c.peer, "sdp": "v=0 fake", "request_id": c.rid}
        for k, v in changes.items():
            if v is DROP:
                base.pop(k)
            else:
                base[k] = v(c) if callable(v) else v
        return json.dumps(base)

    return build


def candidate_with(to: Callable[[Ctx], str] = peer, **changes: Any) -> Callable[[Ctx], Frame]:
    def build(c: Ctx) -> Frame:
        cand: dict[str, Any] = {"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 54321 typ host", "sdpMid": "0"}
        for k, v in changes.items():
            if v is DROP:
                cand.pop(k)
            else:
                cand[k] = v
        return json.dumps({"type": "candidate", "to": to(c), "candidate": cand, "request_id": c.rid})

    return build


def _sized_offer(c: Ctx, total_chars: int, unit: str = "x") -> str:
    """An offer to the peer whose JSON text is exactly `total_chars` characters long."""
    shell = json.dumps({"type": "offer", "to": c.peer, "sdp": "", "request_id": c.rid}, ensure_ascii=False)
    n = (total_chars - len(shell)) // len(unit)
    text = json.dumps({"type": "offer", "to": c.peer, "sdp": unit * n, "request_id": c.rid}, ensure_ascii=False)
    assert len(text) == total_chars or unit != "x", (len(text), total_chars)
    return text


NON_FATAL: list[Case] = [
    # Not a JSON object at all
    Case("not_json", raw("hello?"), "invalid_argument", echo=False),
    Case("empty_string", raw(""), "invalid_argument", echo=False),
    Case("whitespace_only", raw(" \n\t "), "invalid_argument", echo=False),
    Case("truncated_json", raw('{"type": "offer", "sdp": "v=0", "request_id": "t"'), "invalid_argument", echo=False),
    Case("trailing_garbage", raw('{"type": "leave"} {"type": "leave"}'), "invalid_argument", echo=False),
    Case("json_array_empty", raw("[]"), "invalid_argument", echo=False),
    Case(
        "json_array_of_a_message",
        lambda c: json.dumps([{"type": "offer", "to": c.peer, "sdp": "v=0"}]),
        "invalid_argument",
        echo=False,
    ),
    Case("json_number", raw("42"), "invalid_argument", echo=False),
    Case("json_string", raw('"offer"'), "invalid_argument", echo=False),
    Case("json_null", raw("null"), "invalid_argument", echo=False),
    Case("json_true", raw("true"), "invalid_argument", echo=False),
    Case(
        "deeply_nested",
        raw('{"type": "chat", "text": ' + "[" * 20000 + "]" * 20000 + "}"),
        "invalid_argument",
        echo=False,
    ),
    Case(
        "binary_frame",
        lambda c: json.dumps({"type": "offer", "to": c.peer, "sdp": "v=0"}).encode(),
        "invalid_argument",
        echo=False,
    ),
    Case("empty_binary_frame", raw(b""), "invalid_argument", echo=False),
    Case("nan_literal", lambda c: f'{{"type": "update", "audio": NaN, "request_id": "{c.rid}"}}', "invalid_argument"),
    # The message type
    Case("missing_type", obj(to=peer, sdp="v=0"), "invalid_argument"),
    Case("type_null", obj(type=None, to=peer, sdp="v=0"), "invalid_argument"),
    Case("type_number", obj(type=1, to=peer, sdp="v=0"), "invalid_argument"),
    Case("type_list", obj(type=["offer"], to=peer, sdp="v=0"), "invalid_argument"),
    Case("type_unknown", obj(type="subscribe", room="x"), "invalid_argument"),
    Case("type_wrong_case", obj(type="OFFER", to=peer, sdp="v=0"), "invalid_argument"),
    Case("type_empty", obj(type=""), "invalid_argument"),
    Case("server_only_type", obj(type="welcome"), "invalid_argument"),
    # offer / answer
    Case("offer_spoofed_from", offer_with(**{"from": "someone-else"}), "invalid_argument"),
    Case("offer_to_missing", offer_with(to=DROP), "invalid_argument"),
    Case("offer_to_int", offer_with(to=123), "invalid_argument"),
    Case("offer_to_null", offer_with(to=None), "invalid_argument"),
    Case("offer_to_empty", offer_with(to=""), "invalid_argument"),
    Case("offer_to_too_long", offer_with(to="p" * 65), "invalid_argument"),
    Case("offer_to_list", offer_with(to=lambda c: [c.peer]), "invalid_argument"),
    Case("offer_to_object", offer_with(to=lambda c: {"id": c.peer}), "invalid_argument"),
    Case("offer_sdp_missing", offer_with(sdp=DROP), "invalid_argument"),
    Case("offer_sdp_object", offer_with(sdp={"type": "offer", "sdp": "v=0"}), "invalid_argument"),
    Case("offer_sdp_empty", offer_with(sdp=""), "invalid_argument"),
    Case("offer_sdp_number", offer_with(sdp=0), "invalid_argument"),
    Case("offer_sdp_null", offer_with(sdp=None), "invalid_argument"),
    Case("answer_to_bool", obj(type="answer", to=True, sdp="v=0"), "invalid_argument"),
    Case("answer_sdp_list", obj(type="answer", to=peer, sdp=["v=0"]), "invalid_argument"),
    # candidate
    Case("candidate_missing", obj(type="candidate", to=peer), "invalid_argument"),
    Case("candidate_as_string", obj(type="candidate", to=peer, candidate="candidate:1 1 udp"), "invalid_argument"),
    Case("candidate_null", obj(type="candidate", to=peer, candidate=None), "invalid_argument"),
    Case("candidate_candidate_missing", candidate_with(candidate=DROP), "invalid_argument"),
    Case("candidate_candidate_int", candidate_with(candidate=7), "invalid_argument"),
    Case("candidate_candidate_too_long", candidate_with(candidate="c" * 2049), "invalid_argument"),
    Case("candidate_mline_negative", candidate_with(sdpMLineIndex=-1), "invalid_argument"),
    Case("candidate_mline_huge", candidate_with(sdpMLineIndex=5000), "invalid_argument"),
    Case("candidate_mline_fraction", candidate_with(sdpMLineIndex=0.5), "invalid_argument"),
    Case("candidate_mid_int", candidate_with(sdpMid=0), "invalid_argument"),
    Case("candidate_ufrag_list", candidate_with(usernameFragment=["a"]), "invalid_argument"),
    Case("candidate_extra_field", candidate_with(foundation="1"), "invalid_argument"),
    # chat
    Case("chat_text_missing", obj(type="chat"), "invalid_argument"),
    Case("chat_too_long", obj(type="chat", text="x" * 2001), "invalid_argument"),
    Case("chat_blank", obj(type="chat", text=" \n\t "), "invalid_argument"),
    Case("chat_empty", obj(type="chat", text=""), "invalid_argument"),
    Case("chat_text_number", obj(type="chat", text=5), "invalid_argument"),
    Case("chat_text_list", obj(type="chat", text=["hi"]), "invalid_argument"),
    Case("chat_text_null", obj(type="chat", text=None), "invalid_argument"),
    Case("chat_nul_character", obj(type="chat", text="before\x00after"), "invalid_argument"),
    Case(
        "chat_lone_surrogate_escape",
        lambda c: f'{{"type": "chat", "text": "a\\ud800b", "request_id": "{c.rid}"}}',
        "invalid_argument",
    ),
    Case("chat_extra_field", obj(type="chat", text="hi", room_id="elsewhere"), "invalid_argument"),
    # Text that is not acceptable in any field: NUL, lone surrogates (JSON escapes), in values and in keys.
    Case("offer_sdp_nul", offer_with(sdp="v=0\x00x"), "invalid_argument"),
    Case("offer_to_nul", offer_with(to="p\x00"), "invalid_argument"),
    Case("offer_sdp_lone_surrogate", offer_with(sdp="v=0 \ud800"), "invalid_argument"),
    Case("candidate_mid_lone_surrogate", candidate_with(sdpMid="\udc00"), "invalid_argument"),
    Case("candidate_ufrag_nul", candidate_with(usernameFragment="a\x00"), "invalid_argument"),
    Case("ask_help_text_nul", obj(type="ask_help", text="help\x00"), "invalid_argument"),
    Case("dismiss_help_without_participant", obj(type="dismiss_help"), "invalid_argument"),
    Case("dismiss_help_empty_participant", obj(type="dismiss_help", participant_id=""), "invalid_argument"),
    Case("dismiss_help_not_moderator", obj(type="dismiss_help", participant_id=peer), "permission_denied"),
    Case("choose_room_lone_surrogate", obj(type="choose_room", room_id="\ud800"), "invalid_argument"),
    Case("consent_recording_id_nul", obj(type="consent", recording_id="r\x00", granted=True), "invalid_argument"),
    Case("key_lone_surrogate", raw('{"type": "update", "\\ud800": true}'), "invalid_argument", echo=False),
    Case(
        "request_id_lone_surrogate", raw('{"type": "update", "request_id": "\\ud800"}'), "invalid_argument", echo=False
    ),
    Case("request_id_nul", raw('{"type": "update", "request_id": "a\\u0000"}'), "invalid_argument", echo=False),
    # update / lower_hand / leave
    Case("update_audio_word", obj(type="update", audio="maybe"), "invalid_argument"),
    Case("update_hand_object", obj(type="update", hand={"up": True}), "invalid_argument"),
    Case("update_video_list", obj(type="update", video=[True]), "invalid_argument"),
    Case("update_unknown_field", obj(type="update", volume=11), "invalid_argument"),
    Case("update_someone_else", obj(type="update", peer_id=peer, hand=True), "invalid_argument"),
    Case("lower_hand_peer_missing", obj(type="lower_hand"), "invalid_argument"),
    Case("lower_hand_peer_int", obj(type="lower_hand", peer_id=5), "invalid_argument"),
    Case("lower_hand_not_moderator", obj(type="lower_hand", peer_id=peer), "permission_denied"),
    Case("leave_extra_field", obj(type="leave", now=True), "invalid_argument"),
    # request_id itself: only a JSON string or integer is a request id
    Case("request_id_float", raw('{"type": "update", "request_id": 1.5}'), "invalid_argument", echo=False),
    Case("request_id_bool", raw('{"type": "update", "request_id": true}'), "invalid_argument", echo=False),
    Case("request_id_object", raw('{"type": "update", "request_id": {"n": 1}}'), "invalid_argument", echo=False),
    Case("request_id_list", raw('{"type": "update", "request_id": [1]}'), "invalid_argument", echo=False),
    # size
    Case("oversize_just_over_limit", lambda c: _sized_offer(c, MAX + 1), "payload_too_large"),
    Case("oversize_in_utf8_bytes", lambda c: _sized_offer(c, MAX // 3 + 100, unit="€"), "payload_too_large"),
    # relay targets
    Case("relay_to_self", offer_with(to=lambda c: c.me), "invalid_argument"),
    Case("relay_to_unknown_peer", offer_with(to=str(uuid.uuid4())), "not_found"),
    Case("answer_to_unknown_peer", obj(type="answer", to=str(uuid.uuid4()), sdp="v=0"), "not_found"),
    Case(
        "candidate_to_unknown_peer",
        obj(type="candidate", to=str(uuid.uuid4()), candidate={"candidate": ""}),
        "not_found",
    ),
    Case("relay_to_peer_in_another_room", offer_with(to=lambda c: c.far), "not_found", needs_far=True),
    Case("candidate_to_peer_in_another_room", candidate_with(to=lambda c: c.far), "not_found", needs_far=True),
]
assert len({c.name for c in NON_FATAL}) == len(NON_FATAL)


async def create_room(client: TestClient[Any, Any], workshop_id: str, name: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/workshops/{workshop_id}/rooms", json={"name": name, **extra}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def assign(client: TestClient[Any, Any], workshop_id: str, participant_id: str, room_id: str | None) -> None:
    resp = await client.patch(
        f"/api/v1/workshops/{workshop_id}/participants/{participant_id}", json={"room_id": room_id}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()


async def setup_pair(client: TestClient[Any, Any], *, far: bool) -> tuple[Ctx, dict[str, Any]]:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    ben = await add_participant(client, wid, display_name="Ben", country="DE")
    a = await join(client, ana["join_token"])
    b = await join(client, ben["join_token"])
    await a.wait_for("peer_joined")
    ctx = Ctx(a=a, b=b)
    if far:
        room = await create_room(client, wid, "Breakout 1")
        cleo = await add_participant(client, wid, display_name="Cleo", country="FR")
        await assign(client, wid, cleo["id"], room["id"])
        c = await join(client, cleo["join_token"])
        assert c.welcome["room"]["id"] == room["id"]
        ctx.far = c.id
    return ctx, workshop


async def still_works(ctx: Ctx, tag: str) -> None:
    """The misbehaving session still relays: its peer gets the offer stamped `from`, it gets the ack."""
    await ctx.a.send({"type": "offer", "to": ctx.peer, "sdp": f"v=0 {tag}", "request_id": f"ok-{tag}"})
    ack = await ctx.a.recv()
    assert ack == {"type": "ack", "request_id": f"ok-{tag}"}
    relayed = await ctx.b.recv()
    assert relayed == {"type": "offer", "from": ctx.me, "sdp": f"v=0 {tag}"}


async def _run_case(ctx: Ctx, case: Case) -> None:
    ctx.rid = f"r-{case.name}"
    frame = case.build(ctx)
    if isinstance(frame, bytes):
        await ctx.a.ws.send_bytes(frame)
    else:
        await ctx.a.send(frame)
    error = await ctx.a.recv()
    assert error["type"] == "error", (case.name, error)
    assert error["code"] == case.code, (case.name, error)
    assert isinstance(error["message"], str) and error["message"], error
    assert error["request_id"] == (ctx.rid if case.echo else None), (case.name, error)
    await still_works(ctx, case.name)


async def test_each_bad_message_gets_its_error_and_the_session_goes_on(
    client: TestClient[Any, Any], subtests: pytest.Subtests
) -> None:
    """One subtest per case, each with a fresh pair of peers (one app for all: a fresh database per case is slow)."""
    for case in NON_FATAL:
        with subtests.test(case.name):
            ctx, _ = await setup_pair(client, far=case.needs_far)
            try:
                await _run_case(ctx, case)
            finally:
                await ctx.a.close()
                await ctx.b.close()


async def test_every_bad_message_in_one_session_then_the_server_still_serves_another_client(
    client: TestClient[Any, Any],
) -> None:
    ctx, workshop = await setup_pair(client, far=True)
    for case in NON_FATAL:
        await _run_case(ctx, case)
    assert len(NON_FATAL) >= 50
    # The peer never saw anything but the good offers.
    assert all(m["type"] == "offer" for m in ctx.b.seen[1:]), ctx.b.seen
    dora = await add_participant(client, workshop["id"], display_name="Dora", country="ES")
    d = await join(client, dora["join_token"])
    assert {p["id"] for p in d.welcome["peers"]} == {ctx.me, ctx.peer}
    await ctx.a.wait_for("peer_joined")
    await d.send({"type": "offer", "to": ctx.me, "sdp": "v=0 from dora"})
    assert (await ctx.a.wait_for("offer"))["from"] == d.id


async def test_a_message_exactly_at_the_limit_is_relayed(client: TestClient[Any, Any]) -> None:
    ctx, _ = await setup_pair(client, far=False)
    ctx.rid = "at-limit"
    text = _sized_offer(ctx, MAX)
    await ctx.a.send(text)
    assert await ctx.a.recv() == {"type": "ack", "request_id": "at-limit"}
    relayed = await ctx.b.recv()
    assert relayed["type"] == "offer" and relayed["from"] == ctx.me
    assert relayed["sdp"] == json.loads(text)["sdp"]


# Fatal: before hello, the hello itself, a second hello --------------------------------------------


async def expect_fatal(sc: SignalClient, code: str, close_code: int, request_id: Any = None) -> dict[str, Any]:
    error = await sc.recv()
    assert error["type"] == "error", error
    assert error["code"] == code, error
    assert error["request_id"] == request_id, error
    assert await sc.wait_closed() == close_code
    return error


BEFORE_HELLO: list[tuple[str, Frame, str, Any]] = [
    ("offer", '{"type": "offer", "to": "x", "sdp": "v=0", "request_id": "b1"}', "protocol_violation", "b1"),
    ("chat", '{"type": "chat", "text": "hi", "request_id": 7}', "protocol_violation", 7),
    ("leave", '{"type": "leave"}', "protocol_violation", None),
    ("update", '{"type": "update", "hand": true}', "protocol_violation", None),
    ("unknown_type", '{"type": "subscribe"}', "protocol_violation", None),
    ("no_type", '{"token": "x", "protocol": [1]}', "protocol_violation", None),
    ("not_json", "hello", "invalid_argument", None),
    ("empty", "", "invalid_argument", None),
    ("json_array", '[{"type": "hello"}]', "protocol_violation", None),
    ("json_null", "null", "protocol_violation", None),
    ("binary", b'{"type": "hello", "protocol": [1], "token": "x"}', "protocol_violation", None),
    # A lone surrogate in the request_id of the very first frame: refused, and never sent back.
    ("request_id_lone_surrogate", '{"type": "offer", "request_id": "\\ud800"}', "protocol_violation", None),
    ("hello_request_id_lone_surrogate", '{"type": "hello", "request_id": "\\udfff"}', "invalid_argument", None),
]


async def test_anything_before_hello_closes_with_4400(client: TestClient[Any, Any], subtests: pytest.Subtests) -> None:
    for name, frame, code, request_id in BEFORE_HELLO:
        with subtests.test(name):
            sc = SignalClient(await connect(client))
            if isinstance(frame, bytes):
                await sc.ws.send_bytes(frame)
            else:
                await sc.send(frame)
            await expect_fatal(sc, code, 4400, request_id)
    await serves_a_new_client(client)


async def serves_a_new_client(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"], display_name="Eve", country="IE")
    sc = await join(client, person["join_token"])
    assert sc.id == person["id"]
    await sc.close()


def _expired_token(person: dict[str, Any]) -> str:
    from tests.conftest import SECRET_KEY

    return TokenSigner(SECRET_KEY).mint(
        workshop_id=uuid.UUID(person["workshop_id"]),
        participant_id=uuid.UUID(person["id"]),
        role=person["role"],
        generation=0,
        expires_at=datetime.now(UTC) - timedelta(minutes=5),
    )


def _foreign_token(person: dict[str, Any]) -> str:
    """Right claims, signed with another server's key."""
    return TokenSigner("another-servers-secret-key-0123456789abcdef").mint(
        workshop_id=uuid.UUID(person["workshop_id"]),
        participant_id=uuid.UUID(person["id"]),
        role=person["role"],
        generation=0,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


# (id, hello fields given the participant, expected code, expected close code). "$token" is the valid token.
HELLOS: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str, int]] = [
    ("no_token", lambda p: {"protocol": [1]}, "unauthenticated", 4401),
    ("empty_token", lambda p: {"protocol": [1], "token": ""}, "unauthenticated", 4401),
    ("token_int", lambda p: {"protocol": [1], "token": 12345}, "unauthenticated", 4401),
    ("token_null", lambda p: {"protocol": [1], "token": None}, "unauthenticated", 4401),
    ("garbage_token", lambda p: {"protocol": [1], "token": "not-a-token"}, "unauthenticated", 4401),
    ("truncated_token", lambda p: {"protocol": [1], "token": p["join_token"][:-6]}, "unauthenticated", 4401),
    ("foreign_key_token", lambda p: {"protocol": [1], "token": _foreign_token(p)}, "unauthenticated", 4401),
    ("expired_token", lambda p: {"protocol": [1], "token": _expired_token(p)}, "unauthenticated", 4401),
    ("admin_token", lambda p: {"protocol": [1], "token": ADMIN_TOKEN}, "unauthenticated", 4401),
    ("protocol_99", lambda p: {"protocol": [99], "token": p["join_token"]}, "protocol_violation", 4400),
    ("protocol_0_and_2", lambda p: {"protocol": [0, 2], "token": p["join_token"]}, "protocol_violation", 4400),
    ("protocol_empty", lambda p: {"protocol": [], "token": p["join_token"]}, "invalid_argument", 4400),
    ("protocol_missing", lambda p: {"token": p["join_token"]}, "invalid_argument", 4400),
    ("protocol_not_a_list", lambda p: {"protocol": 1, "token": p["join_token"]}, "invalid_argument", 4400),
    ("protocol_words", lambda p: {"protocol": ["v1"], "token": p["join_token"]}, "invalid_argument", 4400),
    ("extra_field", lambda p: {"protocol": [1], "token": p["join_token"], "room": "x"}, "invalid_argument", 4400),
    ("resume_int", lambda p: {"protocol": [1], "token": p["join_token"], "resume": 5}, "invalid_argument", 4400),
    (
        "resume_too_long",
        lambda p: {"protocol": [1], "token": p["join_token"], "resume": "r" * 300},
        "invalid_argument",
        4400,
    ),
    ("token_nul", lambda p: {"protocol": [1], "token": p["join_token"] + "\x00"}, "invalid_argument", 4400),
    (
        "resume_nul",
        lambda p: {"protocol": [1], "token": p["join_token"], "resume": "r\x00"},
        "invalid_argument",
        4400,
    ),
    ("oversize", lambda p: {"protocol": [1], "token": p["join_token"], "pad": "x" * MAX}, "payload_too_large", 4400),
    # Under the limit in characters, over it in UTF-8 bytes (the limit is in bytes).
    (
        "oversize_in_utf8_bytes",
        lambda p: {"protocol": [1], "token": p["join_token"], "pad": "€" * (MAX // 3 + 100)},
        "payload_too_large",
        4400,
    ),
]


async def test_bad_hello_is_fatal_with_its_close_code(client: TestClient[Any, Any], subtests: pytest.Subtests) -> None:
    workshop = await create_workshop(client)
    for name, fields, code, close_code in HELLOS:
        with subtests.test(name):
            person = await add_participant(client, workshop["id"], display_name=name[:100])
            sc = SignalClient(await connect(client))
            await sc.send(json.dumps({"type": "hello", **fields(person), "request_id": "h1"}, ensure_ascii=False))
            await expect_fatal(sc, code, close_code, "h1")
            # Nothing was joined: nobody heard of it, and the same participant can still join with the good token.
            good = await join(client, person["join_token"])
            assert good.welcome["resumed"] is False
            assert person["id"] not in {p["id"] for p in good.welcome["peers"]}
            await good.send({"type": "leave"})
            assert await good.wait_closed() == 1000


@pytest.mark.parametrize("how", ["revoke", "delete"])
async def test_hello_with_a_revoked_or_removed_participants_token_closes_with_4401(
    client: TestClient[Any, Any], how: str
) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    url = f"/api/v1/workshops/{workshop['id']}/participants/{person['id']}"
    if how == "revoke":
        resp = await client.post(url + "/revoke", headers=ADMIN)
        assert resp.status == 200, await resp.text()
    else:
        resp = await client.delete(url, headers=ADMIN)
        assert resp.status == 204, await resp.text()
    sc = SignalClient(await connect(client))
    await sc.send({"type": "hello", "protocol": [1], "token": person["join_token"], "request_id": "h"})
    error = await expect_fatal(sc, "unauthenticated", 4401, "h")
    assert person["join_token"] not in error["message"]
    await serves_a_new_client(client)


async def test_a_token_of_a_deleted_workshop_closes_with_4401(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    resp = await client.delete(f"/api/v1/workshops/{workshop['id']}", headers=ADMIN)
    assert resp.status == 204, await resp.text()
    sc = SignalClient(await connect(client))
    await sc.send({"type": "hello", "protocol": [1], "token": person["join_token"]})
    await expect_fatal(sc, "unauthenticated", 4401)


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(lambda t: {"type": "hello", "protocol": [1], "token": t, "request_id": "again"}, id="valid"),
        pytest.param(lambda t: {"type": "hello", "request_id": "again"}, id="invalid"),
        pytest.param(lambda t: {"type": "hello", "protocol": [1], "token": "x", "request_id": "again"}, id="bad_token"),
    ],
)
async def test_a_second_hello_closes_with_4400(
    client: TestClient[Any, Any], second: Callable[[str], dict[str, Any]]
) -> None:
    ctx, workshop = await setup_pair(client, far=False)
    token = (await _participant(client, workshop["id"], ctx.me))["join_token"]
    await ctx.a.send(second(token))
    await expect_fatal(ctx.a, "protocol_violation", 4400, "again")
    # A client that broke the protocol gets no resume grace: the peer sees it leave at once.
    gone = await ctx.b.wait_for("peer_left")
    assert gone["peer_id"] == ctx.me
    assert gone["reason"] == "protocol_violation"
    await serves_a_new_client(client)


async def _participant(client: TestClient[Any, Any], workshop_id: str, participant_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/workshops/{workshop_id}/participants/{participant_id}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_a_silent_client_is_closed_after_the_hello_timeout(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = create_app(make_settings(database_url, tmp_path / "var"))
    app[SESSION_LIMITS] = replace(app[SESSION_LIMITS], hello_timeout_s=0.3)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    sc = SignalClient(await connect(client))
    await expect_fatal(sc, "protocol_violation", 4400)
    await serves_a_new_client(client)


async def test_a_full_room_refuses_with_4429(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    room = await create_room(client, wid, "Pair room", capacity=1)
    first = await add_participant(client, wid, display_name="First", country="PT", room_id=room["id"])
    second = await add_participant(client, wid, display_name="Second", country="PT", room_id=room["id"])
    a = await join(client, first["join_token"])
    assert a.welcome["room"]["capacity"] == 1
    sc = SignalClient(await connect(client))
    await sc.send({"type": "hello", "protocol": [1], "token": second["join_token"], "request_id": "full"})
    await expect_fatal(sc, "limit_exceeded", 4429, "full")
    # The one inside never heard of the refused one.
    await a.send({"type": "update", "request_id": "sync"})
    assert await a.recv() == {"type": "ack", "request_id": "sync"}
    assert not [m for m in a.seen if m["type"].startswith("peer_")]


# Small limits: the hard cap and the rate limit ----------------------------------------------------


@pytest.fixture
def small_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path / "var",
        ws_max_message_bytes=2048,
        ws_hard_cap_bytes=8192,
        ws_rate_per_s=2.0,
        ws_rate_burst=5,
    )


@pytest.fixture
async def small(small_settings: Settings, aiohttp_client: Any) -> TestClient[Any, Any]:
    result: TestClient[Any, Any] = await aiohttp_client(create_app(small_settings))
    return result


async def test_a_frame_over_the_hard_cap_closes_with_1009(small: TestClient[Any, Any]) -> None:
    ctx, _ = await setup_pair(small, far=False)
    await ctx.a.send({"type": "offer", "to": ctx.peer, "sdp": "x" * 9000})
    assert await ctx.a.wait_closed() == 1009
    # Like any protocol violation: no resume grace, the peer sees it leave at once.
    gone = await ctx.b.wait_for("peer_left")
    assert (gone["peer_id"], gone["reason"]) == (ctx.me, "protocol_violation")
    assert not [m for m in ctx.b.seen if m["type"] == "offer"]
    await serves_a_new_client(small)


async def test_a_first_frame_over_the_hard_cap_closes_with_1009(small: TestClient[Any, Any]) -> None:
    sc = SignalClient(await connect(small))
    await sc.send({"type": "hello", "protocol": [1], "token": "x" * 9000})
    assert await sc.wait_closed() == 1009
    await serves_a_new_client(small)


async def test_between_the_soft_limit_and_the_hard_cap_is_payload_too_large_and_the_session_goes_on(
    small: TestClient[Any, Any],
) -> None:
    ctx, _ = await setup_pair(small, far=False)
    await ctx.a.send({"type": "offer", "to": ctx.peer, "sdp": "x" * 4000, "request_id": "big"})
    error = await ctx.a.recv()
    assert (error["type"], error["code"], error["request_id"]) == ("error", "payload_too_large", "big")
    await still_works(ctx, "after-big")


async def _probe_until_acked(sc: SignalClient, *, attempts: int = 40) -> tuple[str, list[dict[str, Any]]]:
    """Send probes until one is acked (the bucket refills at 2/s); every wait is bounded.

    Returns the acked probe's id and every message read meanwhile. Messages are handled in order,
    so once a probe is acked everything sent before it has been handled."""
    read: list[dict[str, Any]] = []
    for n in range(attempts):
        rid = f"probe-{n}"
        await sc.send({"type": "update", "request_id": rid})
        try:
            while True:
                msg = await sc.recv(timeout=1.0)
                read.append(msg)
                if msg == {"type": "ack", "request_id": rid}:
                    return rid, read
        except TimeoutError:
            continue
    raise AssertionError(f"no probe was acked after {attempts} attempts; read {read[-5:]}")


@pytest.mark.parametrize("kind", ["valid_updates", "garbage_text", "binary_frames"])
async def test_a_flood_is_rate_limited_and_the_session_goes_on(small: TestClient[Any, Any], kind: str) -> None:
    rate, burst, flood = 2.0, 5, 60
    ctx, _ = await setup_pair(small, far=False)
    started = time.monotonic()
    for n in range(flood):
        if kind == "valid_updates":
            await ctx.a.send({"type": "update", "hand": n % 2 == 0, "request_id": f"f{n}"})
        elif kind == "garbage_text":
            await ctx.a.send(f"garbage {n}")
        else:
            await ctx.a.ws.send_bytes(b"\x00" * 10)
    _, read = await _probe_until_acked(ctx.a)
    elapsed = time.monotonic() - started
    limited = [m for m in read if m.get("code") == "rate_limited"]
    if kind == "valid_updates":
        handled = [m for m in read if m["type"] == "ack" and str(m["request_id"]).startswith("f")]
    else:
        handled = [m for m in read if m.get("code") == "invalid_argument"]
    # Never more than the bucket allows (the client's clock spans the server's), and the rest dropped.
    assert burst <= len(handled) <= burst + rate * elapsed + 1, (len(handled), elapsed)
    # Told, but at most once a second: a flood must not become a flood of replies.
    assert 1 <= len(limited) <= 1 + elapsed, (len(limited), elapsed)
    assert all(m["request_id"] is None for m in limited)
    assert "dropped" in limited[0]["message"]
    # The flood of updates reached the peer only as far as it was let through.
    await ctx.b.send({"type": "update", "request_id": "b-sync"})
    await ctx.b.wait_for("ack", request_id="b-sync")
    updates_seen = [m for m in ctx.b.seen if m["type"] == "peer_updated" and m["peer"]["id"] == ctx.me]
    assert len(updates_seen) <= len(handled)
    # And the session goes on.
    for n in range(40):  # the bucket may be empty again after the probes: retry, bounded
        await ctx.a.send({"type": "offer", "to": ctx.peer, "sdp": "v=0 after flood", "request_id": f"after-{n}"})
        try:
            await ctx.a.wait_for("ack", timeout=1.0, request_id=f"after-{n}")
            break
        except TimeoutError:
            continue
    relayed = await ctx.b.wait_for("offer")
    assert relayed == {"type": "offer", "from": ctx.me, "sdp": "v=0 after flood"}


@pytest.mark.parametrize(
    ("field", "hello"),
    [
        pytest.param(
            "token", '{"type": "hello", "protocol": [1], "token": "eyJ\\ud800", "request_id": "h1"}', id="token"
        ),
        pytest.param(
            "resume",
            '{"type": "hello", "protocol": [1], "token": "$token", "resume": "\\udc00x", "request_id": "h1"}',
            id="resume",
        ),
        pytest.param(
            "(object)",
            '{"type": "hello", "protocol": [1], "token": "$token", "\\ud800": 1, "request_id": "h1"}',
            id="key",
        ),
    ],
)
async def test_a_hello_with_a_lone_surrogate_is_refused_naming_the_field(
    client: TestClient[Any, Any], field: str, hello: str
) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    sc = SignalClient(await connect(client))
    await sc.send(hello.replace("$token", person["join_token"]))
    error = await expect_fatal(sc, "invalid_argument", 4400, "h1")
    assert error["message"].startswith(field), error
    await serves_a_new_client(client)


async def test_a_non_ascii_resume_token_matches_nothing_and_joins_afresh(client: TestClient[Any, Any]) -> None:
    workshop = await create_workshop(client)
    person = await add_participant(client, workshop["id"])
    first = await join(client, person["join_token"])
    again = await join(client, person["join_token"], resume="é" * 40)
    assert again.welcome["resumed"] is False
    assert await first.wait_closed() == 4409  # replaced, as by any fresh join of the same participant
    assert again.welcome["resume"] != first.welcome["resume"]
