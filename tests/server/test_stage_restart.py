"""The stage survives a restart of a single server (docs/scaling.md, "The stage survives its owner"): a real
`python -m server` is drained (SIGTERM) while a participant has the floor and the spotlight and another waits for
help; started again on the same database, those who resume find the floor, the spotlight and the waiting request as
they were, and the request of the one who never comes back ends with her resume grant."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.server.test_durable_resume import ADMIN, WAIT_S, Proc, connect, free_port, procs, workshop_with_people
from tests.signaling.client import SignalClient

__all__ = ["procs"]  # the fixture, imported for the test below


async def _ack(sc: SignalClient, message: dict[str, object], request_id: str) -> None:
    await sc.send({**message, "request_id": request_id})
    await sc.wait_for("ack", WAIT_S, request_id=request_id)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_after_a_restart_the_floor_the_spotlight_and_help_requests_are_back_and_a_leavers_request_expires(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    port = free_port()
    server = await Proc.start(database_url, tmp_path / "var", port)
    procs.append(server)
    db = await asyncpg.connect(database_url)
    try:
        async with aiohttp.ClientSession() as http:
            workshop, people = await workshop_with_people(http, server.url)
            # A moderated sfu room (set in SQL: this server runs no Janus), so that the floor decides who may publish.
            await db.execute(
                "UPDATE rooms SET media = 'sfu', publishing = 'moderated' WHERE id = $1",
                uuid.UUID(workshop["plenary_room_id"]),
            )
            eve = await connect(http, server.url, people["Eve"]["join_token"])
            ben = await connect(http, server.url, people["Ben"]["join_token"])
            cleo = await connect(http, server.url, people["Cleo"]["join_token"])
            assert ben.welcome["self"]["may_publish"] is False
            await _ack(eve, {"type": "grant_floor", "peer_id": ben.id}, "floor")
            await _ack(eve, {"type": "spotlight", "peer_id": ben.id}, "spot")
            await _ack(cleo, {"type": "ask_help", "text": "no sound"}, "help")
            tokens = {"Eve": eve.welcome["resume"], "Ben": ben.welcome["resume"]}

            assert await server.signal(signal.SIGTERM) == 0, server.log()
            for sc in (eve, ben, cleo):
                await sc.close()
            assert await db.fetchval("SELECT count(*) FROM live_stage WHERE floor AND spotlight") == 1
            assert await db.fetchval("SELECT count(*) FROM live_help") == 1

            server = await Proc.start(database_url, tmp_path / "var", port)
            procs.append(server)
            eve2 = await connect(http, server.url, people["Eve"]["join_token"], resume=tokens["Eve"])
            ben2 = await connect(http, server.url, people["Ben"]["join_token"], resume=tokens["Ben"])
            for sc in (eve2, ben2):
                assert sc.welcome["resumed"] is True and sc.welcome["spotlight"] == ben.id
            assert ben2.welcome["self"]["may_publish"] is True, "he still has the floor"
            async with http.get(f"{server.url}/api/v1/workshops/{workshop['id']}/presence", headers=ADMIN) as resp:
                waiting = (await resp.json())["help_requests"]
            assert [(h["participant_id"], h["text"]) for h in waiting] == [(cleo.id, "no sound")]

            # Cleo never comes back: when her place runs out, so does her request (the one wait on time here).
            handled = await eve2.wait_for("help_handled", WAIT_S)
            assert (handled["participant_id"], handled["reason"]) == (cleo.id, "left")
            for sc in (eve2, ben2):
                await sc.send({"type": "leave"})
                assert await sc.wait_closed(WAIT_S) == 1000
            assert await server.signal(signal.SIGINT) == 0, server.log()
        # Gone for good: their floor and spotlight, and the expired request, are gone from PostgreSQL too.
        assert await db.fetchval("SELECT count(*) FROM live_stage") == 0
        assert await db.fetchval("SELECT count(*) FROM live_help") == 0
    finally:
        await db.close()
