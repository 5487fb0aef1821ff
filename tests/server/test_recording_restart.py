"""A single server's restart does not end the session's recording (docs/recordings.md "Continuation after a
failover"): a real `python -m server` records a mesh room with two aiortc peers, one consenting and one declining,
and is drained (SIGTERM); started again on the same database and storage, it starts the recording's continuation as
soon as the peers resume, with their answers carried over, and a stop of the first part stops it."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import pytest

from tests.nodes.test_recording_continuation import Peer
from tests.server.test_durable_resume import ADMIN, Proc, free_port, procs, workshop_with_people
from tests.signaling.rtc_peer import loopback_ice

__all__ = ["procs"]  # the fixture, imported for the test below


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_drained_single_servers_recording_is_continued_when_it_is_back_and_its_members_resume(
    database_url: str, tmp_path: Path, procs: list[Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_ice(monkeypatch)
    port = free_port()
    env = {"ROUNDTABLE_RECORDINGS_DIR": str(tmp_path / "recordings"), "ROUNDTABLE_ICE_HOST_ADDRESSES": "127.0.0.1"}
    server = await Proc.start(database_url, tmp_path / "var", port, **env)
    procs.append(server)
    async with aiohttp.ClientSession() as http:
        workshop, people = await workshop_with_people(http, server.url)
        ana = Peer(http, server, people["Ben"]["join_token"], "red", 440)  # type: ignore[arg-type]
        ben = Peer(http, server, people["Cleo"]["join_token"], "blue", 660)  # type: ignore[arg-type]
        try:
            await ana.join()
            await ben.join()
            async with http.post(
                f"{server.url}/api/v1/rooms/{workshop['plenary_room_id']}/recordings", headers=ADMIN
            ) as resp:
                assert resp.status == 201, await resp.text()
                old_id = (await resp.json())["id"]
            started = await ana.next("recording_started")
            await ben.next("recording_started")
            await ana.consent(old_id, True)
            await ben.consent(old_id, False)
            await ana.send_media(started["recorder_peer_id"])
            await ana.wait_sending()

            assert await server.signal(signal.SIGTERM) == 0, server.log()[-3000:]
            server = await Proc.start(database_url, tmp_path / "var", port, **env)
            procs.append(server)
            welcomes = [await ana.come_back(server), await ben.come_back(server)]  # type: ignore[arg-type]
            assert all(w["resumed"] for w in welcomes)
            statuses = [await p.continuation_of(old_id, w) for p, w in zip((ana, ben), welcomes, strict=True)]
            new_id = statuses[0]["recording_id"]
            assert statuses[1]["recording_id"] == new_id != old_id
            await ana.send_media(statuses[0]["recorder_peer_id"])
            await ana.wait_sending()
            await ben.send_media(statuses[1]["recorder_peer_id"])
            assert (await ben.next("error"))["code"] == "permission_denied"

            async with http.post(f"{server.url}/api/v1/recordings/{old_id}/stop", headers=ADMIN) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["continued_by"] == new_id
            assert (await ana.next("recording_stopped"))["recording_id"] == new_id
            async with http.get(f"{server.url}/api/v1/recordings/{new_id}", headers=ADMIN) as resp:
                new = await resp.json()
            assert (new["state"], new["partial"], new["continues"]) == ("ready", False, old_id)
            assert sorted((t["participant_id"], t["kind"]) for t in new["tracks"]) == [
                (ana.id, "audio"),
                (ana.id, "video"),
            ]
        finally:
            await ana.close()
            await ben.close()
    assert "Traceback" not in server.log(), server.log()[-3000:]
