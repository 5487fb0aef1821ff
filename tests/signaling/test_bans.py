"""Bans that stick: every token of a banned participant is refused, over the WebSocket and HTTP, until lifted."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.api.recordings import _sign
from server.auth import TokenSigner
from tests.conftest import SECRET_KEY
from tests.helpers import ADMIN, add_participant, bearer, create_workshop, error_of
from tests.signaling.admission import Client, closed, enter, hello, knock

REASON = "Shared the link on a public forum."


def mint_directly(person: dict[str, Any], generation: int) -> str:
    """A token as the server would mint it, for any generation (the mint route refuses banned participants)."""
    return TokenSigner(SECRET_KEY).mint(
        workshop_id=person["workshop_id"],
        participant_id=person["id"],
        role=person["role"],
        generation=generation,
        expires_at=datetime.now(UTC) + timedelta(hours=2),
    )


async def refused_on_the_socket(client: Client, token: str, resume: str | None = None) -> str:
    sc, first = await hello(client, token, resume=resume)
    assert (first["type"], first["code"]) == ("error", "banned"), first
    code, reason = await closed(sc)
    assert code == 4403
    return reason


async def test_a_ban_refuses_the_old_token_tokens_minted_before_and_after_and_the_resume_token(
    client: Client, database_url: str
) -> None:
    workshop = await create_workshop(client)
    wid = workshop["id"]
    mod = await add_participant(client, wid, display_name="Mia", country="IE", role="moderator")
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    base = f"/api/v1/workshops/{wid}/participants/{ana['id']}"
    resp = await client.post(f"{base}/token", headers=ADMIN)
    minted_before = (await resp.json())["join_token"]
    m = await enter(client, mod["join_token"])
    a = await enter(client, ana["join_token"])
    resume = a.welcome["resume"]

    resp = await client.post(f"{base}/remove", json={"ban": True, "reason": REASON}, headers=bearer(mod["join_token"]))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"participant_id": ana["id"], "live": True}
    code, reason = await closed(a)
    assert (code, reason) == (4403, f"banned: {REASON}")
    assert (await m.wait_for("peer_left"))["peer_id"] == ana["id"]

    # Every way back: the old join token, one minted before the ban, one minted after it, the resume token.
    resp = await client.post(f"{base}/token", headers=ADMIN)
    await error_of(resp, 403, "banned")
    minted_after = mint_directly(ana, generation=1)
    for token in (ana["join_token"], minted_before, minted_after):
        assert await refused_on_the_socket(client, token) == f"banned: {REASON}"
        resp = await client.get(f"/api/v1/workshops/{wid}", headers=bearer(token))
        error = await error_of(resp, 403, "banned")
        assert error["message"] == f"banned: {REASON}"
    assert await refused_on_the_socket(client, ana["join_token"], resume=resume) == f"banned: {REASON}"

    # Visible on the participant and in the list of bans; join links are not minted for them.
    resp = await client.get(base, headers=ADMIN)
    record = await resp.json()
    assert (record["banned_by"], record["ban_reason"], record["join_token"]) == (mod["id"], REASON, None)
    assert record["banned_at"] is not None
    resp = await client.get(f"/api/v1/workshops/{wid}/bans", headers=bearer(mod["join_token"]))
    assert [p["id"] for p in (await resp.json())["items"]] == [ana["id"]]

    # Only the organiser lifts it; a token minted afterwards gets in, the old ones stay revoked.
    resp = await client.post(f"{base}/unban", headers=bearer(mod["join_token"]))
    await error_of(resp, 403, "permission_denied")
    organiser = await add_participant(client, wid, display_name="Olga", country="LT", role="organiser")
    resp = await client.post(f"{base}/unban", headers=bearer(organiser["join_token"]))
    assert resp.status == 200, await resp.text()
    lifted = await resp.json()
    assert (lifted["banned_at"], lifted["banned_by"], lifted["ban_reason"]) == (None, None, None)
    for token in (ana["join_token"], minted_before):
        sc, first = await hello(client, token)
        assert first["code"] == "unauthenticated"
        assert (await closed(sc))[0] == 4401
    resp = await client.post(f"{base}/token", headers=ADMIN)
    fresh = (await resp.json())["join_token"]
    back = await enter(client, fresh)
    assert back.welcome["self"]["id"] == ana["id"]
    resp = await client.get(f"/api/v1/workshops/{wid}/bans", headers=ADMIN)
    assert (await resp.json())["items"] == []
    resp = await client.get(f"/api/v1/workshops/{wid}/moderator-actions", headers=ADMIN)
    actions = [(e["action"], e["actor_id"]) for e in (await resp.json())["items"]]
    assert ("participant.ban", mod["id"]) in actions
    assert ("participant.unban", organiser["id"]) in actions
    await back.close()
    await m.close()


async def test_a_ban_closes_a_waiting_socket_and_withdraws_the_knock(client: Client) -> None:
    workshop = await create_workshop(client, lobby="everyone")
    wid = workshop["id"]
    mod = await add_participant(client, wid, display_name="Mia", country="IE", role="moderator")
    ana = await add_participant(client, wid, display_name="Ana", country="PT")
    m = await enter(client, mod["join_token"])
    a, lobby = await knock(client, ana["join_token"])
    await m.wait_for("knock")
    resp = await client.post(
        f"/api/v1/workshops/{wid}/participants/{ana['id']}/remove", json={"ban": True}, headers=ADMIN
    )
    assert resp.status == 200
    assert await resp.json() == {"participant_id": ana["id"], "live": False}
    assert await closed(a) == (4403, "banned")
    withdrawn = await m.wait_for("knock_withdrawn")
    assert (withdrawn["knock_id"], withdrawn["outcome"], withdrawn["by"]) == (lobby["knock_id"], "denied", None)
    assert await refused_on_the_socket(client, ana["join_token"]) == "banned"
    await m.close()


async def test_a_long_ban_reason_is_cut_to_fit_a_close_frame(client: Client) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    a = await enter(client, ana["join_token"])
    reason = "Ж" * 300  # two bytes each: the cut must not split one
    resp = await client.post(
        f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}/remove",
        json={"ban": True, "reason": reason[:500]},
        headers=ADMIN,
    )
    assert resp.status == 200
    code, close_reason = await closed(a)
    assert code == 4403
    assert close_reason.startswith("banned: Ж") and len(close_reason.encode()) <= 123


async def test_remove_without_a_body_still_removes_without_banning(client: Client) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    base = f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}"
    resp = await client.post(f"{base}/remove", headers=ADMIN)
    assert resp.status == 200
    resp = await client.get(base, headers=ADMIN)
    assert (await resp.json())["banned_at"] is None
    resp = await client.post(f"{base}/token", headers=ADMIN)
    assert resp.status == 200, "a removed (not banned) participant may be invited back with a new link"


@pytest.mark.parametrize(
    "body",
    [
        {"ban": "yes"},
        {"ban": True, "reason": "r" * 501},
        {"reason": "no ban"},
        {"ban": True, "extra": 1},
        [True],
        {"ban": True, "reason": "nul\u0000"},
    ],
)
async def test_bad_remove_bodies_are_refused_and_change_nothing(client: Client, body: Any) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    base = f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}"
    resp = await client.post(f"{base}/remove", json=body, headers=ADMIN)
    await error_of(resp, 400, "invalid_argument")
    resp = await client.get(base, headers=bearer(ana["join_token"]))
    assert resp.status == 200, "the token still works: nothing happened"


async def test_unban_of_someone_not_banned_changes_nothing_and_unknown_people_are_not_found(client: Client) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}/unban", headers=ADMIN)
    assert resp.status == 200
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}", headers=bearer(ana["join_token"]))
    assert resp.status == 200
    unknown = "00000000-0000-4000-8000-000000000000"
    resp = await client.post(f"/api/v1/workshops/{workshop['id']}/participants/{unknown}/unban", headers=ADMIN)
    await error_of(resp, 404, "not_found")
    resp = await client.get(f"/api/v1/workshops/{workshop['id']}/moderator-actions", headers=ADMIN)
    assert [e["action"] for e in (await resp.json())["items"]] == []


async def test_a_signed_recording_link_made_for_someone_is_refused_once_they_are_banned(client: Client) -> None:
    workshop = await create_workshop(client)
    ana = await add_participant(client, workshop["id"], display_name="Ana", country="PT")
    recording_id, track_id = uuid.uuid4(), uuid.uuid4()
    exp = int(time.time()) + 600
    sig = _sign(SECRET_KEY, recording_id, track_id, exp, ana["id"])
    url = f"/api/v1/recordings/{recording_id}/tracks/{track_id}/file?exp={exp}&by={ana['id']}&sig={sig}"
    resp = await client.get(url)
    await error_of(resp, 404, "not_found")  # a good signature: on to the (absent) recording
    resp = await client.post(
        f"/api/v1/workshops/{workshop['id']}/participants/{ana['id']}/remove", json={"ban": True}, headers=ADMIN
    )
    assert resp.status == 200
    resp = await client.get(url)
    await error_of(resp, 403, "banned")
