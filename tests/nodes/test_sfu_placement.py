"""SFU rooms on the least loaded Janus of the deployment (issue 12, "media follows the owner"): two real
`python -m server` nodes on one PostgreSQL and one NATS server, each with its embedded Janus in the test network
namespace. The workshop's owner places each new room on the Janus with the fewest live rooms (its own first on a
tie), makes every handle of the room there, and places a room again when its Janus goes away; the choice itself is
tested on its own, and the load as PostgreSQL gives it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from pydantic import ValidationError

from server.settings import Settings
from server.sfu_placement import PgSfuPlacement
from signaling.sfu.janus import JanusClient
from signaling.sfu.placement import Candidate, JanusEndpoint, choose, derived_endpoint
from tests import netns
from tests.conftest import SECRET_KEY
from tests.helpers import ADMIN
from tests.nodes.test_any_node import WAIT_S, Node, NodeClient, new_workshop
from tests.nodes.test_quiet_and_gone_nodes import until
from tests.sfu.peer import BLUE, RED, SfuPeer
from tests.sfu.test_recording import more_video
from tests.signaling.client import SignalClient

RTP_PORTS = {"a": "21000-21099", "b": "21100-21199", "c": "21200-21299"}


def endpoint(url: str, load: int = 0) -> Candidate:
    return Candidate(JanusEndpoint(url, "s", "k"), load)


def test_the_least_loaded_janus_is_chosen_dead_ones_are_skipped_and_ties_keep_the_given_order() -> None:
    home, ext, other = "ws://home:8188", "ws://ext:8188", "ws://other:8188"
    never = lambda url: False  # noqa: E731
    assert choose([endpoint(home, 2), endpoint(ext, 1), endpoint(other, 3)], never) == endpoint(ext).endpoint
    # Ties: the first given wins (this node's own Janus comes first), however often it is asked.
    for _ in range(3):
        assert choose([endpoint(home, 1), endpoint(ext, 1), endpoint(other, 1)], never) == endpoint(home).endpoint
        assert choose([endpoint(ext, 0), endpoint(home, 0)], never) == endpoint(ext).endpoint
    # A dead Janus is never chosen, however idle; none left: None.
    assert choose([endpoint(home, 5), endpoint(ext, 0)], lambda url: url == ext) == endpoint(home).endpoint
    assert choose([endpoint(home, 0)], lambda url: True) is None
    assert choose([], never) is None


def test_a_room_goes_back_to_the_janus_it_already_lives_on_unless_that_one_is_dead() -> None:
    home, ext = "ws://home:8188", "ws://ext:8188"
    lives_on_ext = [endpoint(home, 0), Candidate(JanusEndpoint(ext, "s", "k"), 40, previous=True)]
    assert choose(lives_on_ext, lambda url: False).url == ext  # a new owner takes the room over where it is
    assert choose(lives_on_ext, lambda url: url == ext).url == home  # gone: the least loaded of the others


def test_the_secrets_of_a_nodes_janus_follow_from_the_shared_key_and_its_url_alone() -> None:
    one = derived_endpoint(SECRET_KEY, "ws://127.0.0.1:4000")
    assert one == derived_endpoint(SECRET_KEY, "ws://127.0.0.1:4000")  # what every node computes
    assert one.api_secret != one.admin_key
    assert derived_endpoint(SECRET_KEY, "ws://127.0.0.1:4001").api_secret != one.api_secret
    assert derived_endpoint("another deployment's key, 32 chars", one.url).api_secret != one.api_secret


def test_more_janus_are_a_comma_separated_list_of_websocket_urls_with_the_shared_secrets() -> None:
    secrets = {"sfu_api_secret": "s" * 16, "sfu_admin_key": "k" * 16}
    parsed = Settings(sfu_urls="ws://j1:8188, wss://j2:8989,", **secrets)  # type: ignore[arg-type]
    assert parsed.sfu_urls == ["ws://j1:8188", "wss://j2:8989"]
    with pytest.raises(ValidationError, match="must start with ws://"):
        Settings(sfu_urls="http://j1:8188", **secrets)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="SFU_URLS needs"):
        Settings(sfu_urls="ws://j1:8188")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="no interface of this host holds"):
        Settings(sfu_api_address="192.0.2.1")


async def test_the_load_of_each_janus_counts_the_rooms_of_live_nodes_only(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        nodes = [
            ("n1", "ws://n1:1", "now()"),
            ("n2", "ws://n2:1", "now()"),
            ("gone", "ws://gone:1", "now() - interval '1 hour'"),
        ]
        for node_id, url, seen in nodes:
            await pool.execute(f"INSERT INTO nodes (id, janus_url, seen_at) VALUES ($1, $2, {seen})", node_id, url)
        home = JanusEndpoint("ws://n1:1", "s", "k")
        ext = JanusEndpoint("ws://ext:1", "s", "k")
        n1 = PgSfuPlacement(
            pool, "n1", home=home, external=[ext], nodes_janus=lambda url: JanusEndpoint(url, "d", "d"),
            live_within_s=10,
        )  # fmt: skip
        n2 = PgSfuPlacement(
            pool, "n2", home=JanusEndpoint("ws://n2:1", "s", "k"), external=[], nodes_janus=None, live_within_s=10
        )
        await n1.placed("r1", "ws://n2:1")
        await n1.placed("r2", "ws://ext:1")
        await n2.placed("r3", "ws://n2:1")
        await pool.execute(
            "INSERT INTO sfu_placements (room_id, janus_url, node_id) VALUES ('r9', 'ws://n1:1', 'gone')"
        )
        # The gone node's Janus is not known, and its room counts nowhere; n2's room and n1's count on n2's Janus.
        assert await n1.candidates() == [
            Candidate(home, 0),
            Candidate(ext, 1),
            Candidate(JanusEndpoint("ws://n2:1", "d", "d"), 2),
        ]
        # A room weighs one plus its members, as its owner counts them (another node's rows are not its own).
        await n1.occupancy({"r1": 30, "r2": 4, "r3": 99})
        await n2.occupancy({"r3": 2})
        assert [c.load for c in await n1.candidates()] == [0, 1 + 4, (1 + 30) + (1 + 2)]
        # The Janus a room already lives on is marked, whoever placed it (a new owner takes it over there).
        assert [c.previous for c in await n2.candidates("r2")] == [False]  # n2 knows only its own Janus
        assert [c.previous for c in await n1.candidates("r2")] == [False, True, False]
        assert [c.previous for c in await n1.candidates("r1")] == [False, False, True]
        assert not any(c.previous for c in await n1.candidates("nowhere"))
        await n2.placed("r1", "ws://ext:1")  # a new owner placed r1 again: it moved, with no member yet
        await n1.released("r1")  # the old owner's release does not touch the new owner's row
        await n1.occupancy({"r1": 7})  # nor does its count
        assert [c.load for c in await n1.candidates()] == [0, (1 + 4) + 1, 1 + 2]
        await n2.release_all()
        assert [c.load for c in await n1.candidates()] == [0, 1 + 4, 0]
        # Without nodes_janus (one node with SFU_URLS), only the configured Janus are candidates.
        assert [c.endpoint.url for c in await n2.candidates()] == ["ws://n2:1"]
    finally:
        await pool.close()


# Two nodes with their Janus -----------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def media_address(monkeypatch: pytest.MonkeyPatch) -> str:
    if not netns.private():
        pytest.fail(f"the SFU tests need the private network namespace: {netns.why_not()} (see tests/netns.py)")
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [netns.MEDIA_ADDRESS])
    return netns.MEDIA_ADDRESS


@pytest.fixture
async def janus_nodes(
    media_address: str, database_url: str, bus_url: str, tmp_path: Path
) -> AsyncIterator[dict[str, Node]]:
    """Nodes a and b, each with its embedded Janus, one recordings directory for both."""
    async with janus_cluster(("a", "b"), media_address, database_url, bus_url, tmp_path) as started:
        yield started


@pytest.fixture
async def three_janus_nodes(
    media_address: str, database_url: str, bus_url: str, tmp_path: Path
) -> AsyncIterator[dict[str, Node]]:
    async with janus_cluster(("a", "b", "c"), media_address, database_url, bus_url, tmp_path) as started:
        yield started


@contextlib.asynccontextmanager
async def janus_cluster(
    names: tuple[str, ...], media_address: str, database_url: str, bus_url: str, tmp_path: Path
) -> AsyncIterator[dict[str, Node]]:
    started: dict[str, Node] = {}
    try:
        for name in names:
            started[name] = await Node.start(
                name,
                database_url,
                bus_url,
                tmp_path / name,
                ROUNDTABLE_SFU="auto",
                ROUNDTABLE_SFU_ICE_ADDRESS=media_address,
                ROUNDTABLE_SFU_RTP_PORTS=RTP_PORTS[name],
                ROUNDTABLE_MESH_MAX="0",
                ROUNDTABLE_RECORDINGS_DIR=str(tmp_path / "recordings"),
                # These tests choose which node owns each workshop (where its first session lands), to place its
                # rooms on one Janus or the other: no workshop is handed to the least loaded node here.
                ROUNDTABLE_NODE_LOAD_MARGIN="1000000",
            )
            await started[name].logs("connected to the SFU at")
        yield started
    finally:
        for node in started.values():
            await node.kill()
    for node in started.values():
        assert "Traceback" not in node.log(), f"node {node.name}:\n{node.log()[-4000:]}"


async def janus_of(database_url: str) -> dict[str, str]:
    """Each node's Janus URL, by the node's HTTP port."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT address, janus_url FROM nodes WHERE janus_url IS NOT NULL")
    finally:
        await conn.close()
    return {row["address"].rsplit(":", 1)[1]: row["janus_url"] for row in rows}


async def placed_on(database_url: str, room_id: str) -> str | None:
    conn = await asyncpg.connect(database_url)
    try:
        url: str | None = await conn.fetchval("SELECT janus_url FROM sfu_placements WHERE room_id = $1", room_id)
    finally:
        await conn.close()
    return url


async def janus_has_room(url: str, room_id: str) -> bool:
    """Asked of that Janus itself, with the secrets every node of the deployment derives."""
    client = JanusClient(url, derived_endpoint(SECRET_KEY, url).api_secret)
    await client.connect()
    try:
        handle = await client.attach()
        data, _ = await handle.request({"request": "exists", "room": room_id})
        return bool(data["exists"])
    finally:
        await client.close()


async def room_opened(http: aiohttp.ClientSession, node: Node, token: str) -> tuple[SignalClient, str]:
    """A member joins through `node` and subscribes to nothing: enough for its room to be placed in Janus."""
    sc = SignalClient(await http.ws_connect(f"{node.url}/ws"))
    await sc.send({"type": "hello", "protocol": [1], "token": token})
    sc.welcome = await sc.wait_for("welcome", WAIT_S)
    await sc.send({"type": "subscribe", "feeds": [], "request_id": "s"})
    reply = await sc.wait_for("subscription", WAIT_S)
    assert reply["streams"] == [], reply
    room_id: str = sc.welcome["room"]["id"]
    return sc, room_id


def port_of(node: Node) -> str:
    return node.url.rsplit(":", 1)[1]


def janus_pid(data_dir: Path) -> int:
    """The pid of the embedded Janus a node started under `data_dir` (found by its configuration folder)."""
    folder = str(data_dir / "janus")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"janus") and folder.encode() in argv:
            return int(entry)
    raise AssertionError(f"no Janus runs from {folder}")


async def both_see(one: SfuPeer, other: SfuPeer, one_colour: Any, other_colour: Any) -> None:
    one_feed, other_feed = one.published["camera"].feed_id, other.published["camera"].feed_id
    await one.wait_until(lambda: other_feed in one.feeds, "the other's feed")
    await other.wait_until(lambda: one_feed in other.feeds, "the other's feed")
    await asyncio.gather(one.subscribe(), other.subscribe())
    await one.wait_until(lambda: one.sees(other_feed, other_colour) and one.hears(other_feed), "the other's media")
    await other.wait_until(lambda: other.sees(one_feed, one_colour) and other.hears(one_feed), "the other's media")


@pytest.mark.slow
async def test_a_room_goes_to_the_other_nodes_janus_when_the_owners_is_busier_and_media_flows_through_it(
    janus_nodes: dict[str, Node], database_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a, b = janus_nodes["a"], janus_nodes["b"]
    janus = await janus_of(database_url)
    on_a, on_b = janus[port_of(a)], janus[port_of(b)]
    assert on_a != on_b

    # A first workshop owned by a: both Janus are idle, so its room goes to a's own.
    _w1, t1 = await new_workshop(http, a, "olga")
    olga, first_room = await room_opened(http, a, t1["olga"])
    assert await placed_on(database_url, first_room) == on_a

    # A second workshop owned by a: a's Janus has a room, b's none, so the room goes to b's.
    _w2, t2 = await new_workshop(http, a, "ana", "ben")
    ana = SfuPeer(NodeClient(http, a), t2["ana"], "ana")  # type: ignore[arg-type]
    ben = SfuPeer(NodeClient(http, b), t2["ben"], "ben")  # type: ignore[arg-type]
    peers = [ana, ben]
    try:
        await ana.start()  # a owns the workshop; ben is forwarded to it by b
        await ben.start()
        room = ana.welcome["room"]["id"]
        assert (await ana.publish(colour=RED, hz=440))["type"] == "published"
        assert (await ben.publish(colour=BLUE, hz=660))["type"] == "published"
        assert await placed_on(database_url, room) == on_b
        assert await janus_has_room(on_b, room) and not await janus_has_room(on_a, room)
        await both_see(ana, ben, RED, BLUE)

        # Recorded through b's API: the owner drives b's Janus, which writes into the shared directory, and the
        # owner turns those files into the tracks.
        async with http.post(f"{b.url}/api/v1/rooms/{room}/recordings", headers=ADMIN) as resp:
            assert resp.status == 201, await resp.text()
            rec = await resp.json()
        for peer in peers:
            assert (await peer.wait_message("recording_started"))["recording_id"] == rec["id"]
            assert (await peer.request({"type": "consent", "recording_id": rec["id"], "granted": True}))[
                "type"
            ] == "ack"
        await more_video(ana, [ben.published["camera"].feed_id], 40)
        await more_video(ben, [ana.published["camera"].feed_id], 40)
        async with http.post(f"{b.url}/api/v1/recordings/{rec['id']}/stop", headers=ADMIN) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["state"] == "ready"
        async with http.get(f"{b.url}/api/v1/recordings/{rec['id']}", headers=ADMIN) as resp:
            detail = await resp.json()
        assert detail["partial"] is False, (detail["failure_reason"], detail["tracks"])
        tracks = sorted((t["participant_id"], t["kind"], t["state"]) for t in detail["tracks"])
        assert tracks == sorted((p.id, kind, "complete") for p in peers for kind in ("audio", "video"))

        # Another room goes to the least loaded: the first room ends (a's Janus is empty again), and a workshop
        # owned by b places its room on a's Janus rather than on b's own.
        mark = len(a.server.output)
        await olga.send({"type": "leave"})
        await a.logs(f"SFU room {first_room} no longer placed", after=mark)
        _w3, t3 = await new_workshop(http, b, "carl")
        carl, third_room = await room_opened(http, b, t3["carl"])
        assert await placed_on(database_url, third_room) == on_a
        assert await janus_has_room(on_a, third_room)
        await carl.close()
    finally:
        for peer in peers:
            await peer.close()
        await olga.close()


@pytest.mark.slow
async def test_a_janus_that_goes_away_takes_only_its_rooms_which_are_placed_again_and_renegotiated(
    janus_nodes: dict[str, Node], database_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a, b = janus_nodes["a"], janus_nodes["b"]
    janus = await janus_of(database_url)
    on_a, on_b = janus[port_of(a)], janus[port_of(b)]
    _w1, t1 = await new_workshop(http, a, "olga")
    olga, first_room = await room_opened(http, a, t1["olga"])  # on a's Janus
    _w2, t2 = await new_workshop(http, a, "ana", "ben")
    ana = SfuPeer(NodeClient(http, a), t2["ana"], "ana")  # type: ignore[arg-type]
    ben = SfuPeer(NodeClient(http, b), t2["ben"], "ben")  # type: ignore[arg-type]
    try:
        await ana.start()
        await ben.start()
        room = ana.welcome["room"]["id"]
        await ana.publish(colour=RED, hz=440)
        await ben.publish(colour=BLUE, hz=660)
        assert await placed_on(database_url, room) == on_b
        await both_see(ana, ben, RED, BLUE)
        # A feed's id follows from its member and source, so it is the same once published again (read now: the
        # peers publish again in the background after sfu_restored, and `published` is empty meanwhile).
        ana_feed, ben_feed = ana.published["camera"].feed_id, ben.published["camera"].feed_id

        # b's Janus dies: the owner (a) places the room again, on its own Janus, and its members renegotiate
        # (sfu_unavailable, then sfu_restored: they publish and subscribe again, as when one Janus restarts).
        mark = len(a.server.output)
        os.kill(janus_pid(tmp_path / "b"), signal.SIGKILL)
        await asyncio.gather(ana.wait_message("sfu_unavailable"), ben.wait_message("sfu_unavailable"))
        await asyncio.gather(ana.wait_message("sfu_restored"), ben.wait_message("sfu_restored"))
        await a.logs(f"SFU room {room} placed on {on_a}", after=mark)
        assert await placed_on(database_url, room) == on_a
        assert await janus_has_room(on_a, room)
        await ana.wait_until(lambda: ana.sees(ben_feed, BLUE) and ana.hears(ben_feed), "ben again, through a's Janus")
        await ben.wait_until(lambda: ben.sees(ana_feed, RED) and ben.hears(ana_feed), "ana again, through a's Janus")
        # The room on a's Janus never noticed.
        await olga.send({"type": "subscribe", "feeds": [], "request_id": "again"})
        seen: list[str] = []
        while (message := await olga.recv(WAIT_S))["type"] != "subscription":
            seen.append(message["type"])
        assert "sfu_unavailable" not in seen
        assert await janus_has_room(on_a, first_room)
    finally:
        await ana.close()
        await ben.close()
        await olga.close()


@pytest.mark.slow
async def test_a_new_owner_takes_over_the_room_a_dead_owner_left_on_another_nodes_janus_instead_of_leaving_it_empty(
    three_janus_nodes: dict[str, Node], database_url: str, http: aiohttp.ClientSession
) -> None:
    a, b, c = (three_janus_nodes[n] for n in "abc")
    janus = await janus_of(database_url)
    on_b, on_c = (janus[port_of(n)] for n in (b, c))
    # A room on a's Janus and one on c's (each its owner's own, on a tie): b's is the least loaded.
    _w1, t1 = await new_workshop(http, a, "olga")
    olga, _ = await room_opened(http, a, t1["olga"])
    _w3, t3 = await new_workshop(http, c, "pat")
    pat, pats_room = await room_opened(http, c, t3["pat"])
    assert await placed_on(database_url, pats_room) == on_c
    # A workshop owned by a (eva's session came first), whose members are forwarded through c: its room goes to b's.
    _w2, t2 = await new_workshop(http, a, "eva", "ana", "ben")
    eva = SignalClient(await http.ws_connect(f"{a.url}/ws"))
    await eva.send({"type": "hello", "protocol": [1], "token": t2["eva"]})
    eva.welcome = await eva.wait_for("welcome", WAIT_S)
    room = eva.welcome["room"]["id"]
    ana = SfuPeer(NodeClient(http, c), t2["ana"], "ana")  # type: ignore[arg-type]
    ben = SfuPeer(NodeClient(http, c), t2["ben"], "ben")  # type: ignore[arg-type]
    peers = [ana, ben]
    try:
        await ana.start()
        await ben.start()
        await ana.publish(colour=RED, hz=440)
        await ben.publish(colour=BLUE, hz=660)
        assert await placed_on(database_url, room) == on_b
        # c's Janus is idle again: with the load alone, c would now keep the room on its own Janus.
        await pat.close()
        await wait_placed(database_url, pats_room, None)

        await a.kill()  # a's Janus dies with it; the room stays on b's, with a's row (which no longer counts)
        for peer in peers:
            await peer.close()
        ana = SfuPeer(NodeClient(http, c), t2["ana"], "ana")  # type: ignore[arg-type]
        ben = SfuPeer(NodeClient(http, c), t2["ben"], "ben")  # type: ignore[arg-type]
        peers = [ana, ben]
        await ana.start()  # c takes the workshop over once a's lease lapsed
        await ben.start()
        await ana.publish(colour=RED, hz=440)
        await ben.publish(colour=BLUE, hz=660)
        # c made the room again where it lived (Janus's 427: destroyed with its derived secret, created again).
        assert await placed_on(database_url, room) == on_b
        await c.logs(f"SFU room {room} placed on {on_b}")
        assert await janus_has_room(on_b, room) and not await janus_has_room(on_c, room)
        await both_see(ana, ben, RED, BLUE)
    finally:
        for peer in peers:
            await peer.close()
        await olga.close()
        await eva.close()


async def wait_placed(database_url: str, room_id: str, url: str | None) -> None:
    """Until the room's placement is `url` (None: released), polled within WAIT_S (written in the background)."""

    async def there() -> bool:
        return await placed_on(database_url, room_id) == url

    await until(there, f"room {room_id} placed on {url}")
