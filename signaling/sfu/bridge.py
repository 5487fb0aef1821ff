"""The SFU bridge: Roundtable's rooms and members, carried by Janus VideoRoom rooms and handles.

Roundtable stays the authority: the hub decides who may publish and calls the bridge; the bridge
holds every Janus secret, names Janus participants after the roster (`<participant>:<source>`), creates
rooms with a secret, `require_pvtid` and `lock_record`, and destroys them when the room ends. Browsers
never see Janus's API: their SDP comes and goes through the Roundtable WebSocket.

Per member: one publisher handle per source (the camera handle is joined first and gives the
`private_id` every subscription needs), and one multistream subscriber handle. A feed becomes visible
(`feed_added`) when its PeerConnection is up (Janus refuses subscriptions to a feed before that).

Several Janus (docs/sfu.md#several-janus): each room lives on one of them, chosen when it is created by the
`Placement` port (least loaded first; signaling/sfu/placement.py), and every handle of a member in that room is made
on that room's Janus. The home Janus (this node's) is kept connected; the others are connected when a room is
placed on them. A Janus that goes away takes only its rooms: they are placed again and their members told
(`sfu_down` / `sfu_up` with the room ids; without ids when no Janus is left, as with one Janus).

Nothing here is on the media path: packets go browser -> Janus -> browser. The bridge only talks to Janus's API
(create, join, publish, subscribe, moderate, kick, record); PostgreSQL is behind the placement port, asked when a
room is created or ended, never per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from signaling.errors import InvalidArgument, NotFound, ServiceError, Unavailable
from signaling.protocol import (
    FeedInfo,
    Quality,
    RoomInfo,
    ServerMessage,
    SubscribedStream,
    Subscription,
    WantedFeed,
)
from signaling.sfu.janus import Handle, JanusClient, JanusError, JanusGone
from signaling.sfu.placement import Candidate, JanusEndpoint, Placement, choose
from signaling.sfu.sdp import sent_kinds
from signaling.tasks import OwnedTasks

log = logging.getLogger(__name__)

SUBSTREAMS = {"low": 0, "medium": 1, "high": 2}  # Janus's simulcast substreams, smallest first
QUALITIES: dict[int, Quality] = {0: "low", 1: "medium", 2: "high"}
MAX_HIGH_VIDEOS = 1
"""Video feeds one viewer may receive at the `high` layer at once (the stage: a shared screen or the speaker)."""
MAX_OTHER_VIDEOS = 15
"""Video feeds one viewer may receive at the `low` or `medium` layer at once, beside the high one (a laptop's grid
page of sixteen is oneself and fifteen others; the stage's strip shows fewer). Together the two bound what Janus
forwards per viewer whatever the room size: at most one full layer and fifteen small ones. Audio is never capped."""
SPEAKING_MIN_INTERVAL_S = 0.3  # at most about three speaking updates a second per room
RECONNECT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0)
DEAD_FOR_S = 30.0
"""A Janus other than the home one that could not be reached (or went away) is not chosen for this long."""
MAX_PLACEMENT_TRIES = 3
OCCUPANCY_EVERY_S = 1.0  # how often at most a room's member count goes to the placement (a Janus's load)
Source = Literal["camera", "screen", "interpretation"]


class SfuListener(Protocol):
    """What the bridge tells the hub (implemented by SignalingService)."""

    def sfu_feed_added(self, room_id: str, feed: FeedInfo) -> None: ...

    def sfu_feed_removed(self, room_id: str, feed: FeedInfo, reason: str) -> None: ...

    def sfu_to_member(self, member_id: str, message: ServerMessage) -> None: ...

    def sfu_speaking(self, room_id: str, peer_id: str, speaking: bool) -> None: ...

    def sfu_down(self, reason: str, room_ids: Collection[str] | None = None) -> None:
        """The Janus of these rooms went away (None: every sfu room's)."""
        ...

    def sfu_up(self, room_ids: Collection[str] | None = None) -> None:
        """These rooms are placed again (None: every sfu room)."""
        ...

    def sfu_rooms(self) -> list[RoomInfo]:
        """The live rooms whose media is sfu (re-created after Janus comes back)."""
        ...

    def sfu_may_receive(self, member_id: str, feed: FeedInfo) -> bool:
        """Whether the member may receive the feed at all (interpretation: only its own channel's live
        interpreter). Asked for every feed of every subscription: must not block."""
        ...


class RecordingPolicy(Protocol):
    """Asked when a feed comes up: the base path of its recording files, or None (not recorded)."""

    def recording_base(self, room_id: str, feed: FeedInfo) -> str | None: ...


@dataclass
class Feed:
    info: FeedInfo
    room_id: str
    handle: Handle
    mids: dict[str, str]  # kind -> the publisher's mid in Janus
    live: bool = False
    recording_base: str | None = None


@dataclass
class SfuMember:
    id: str
    room_id: str
    display: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    base: Handle | None = None  # the camera publisher handle: joined at first use, gives private_id
    private_id: int | None = None
    screen: Handle | None = None
    interpretation: Handle | None = None  # an interpreter's audio-only feed into their channel
    subscriber: Handle | None = None
    subscribed: dict[tuple[str, str], str] = field(default_factory=dict)  # (feed id, feed mid) -> kind
    streams: list[SubscribedStream] = field(default_factory=list)
    moderated: set[str] = field(default_factory=set)  # kinds muted by a moderator
    # Janus takes one renegotiation at a time: a subscribe that arrives while an offer is unanswered
    # waits here (the newest wins) and runs when the answer comes.
    answer_pending: bool = False
    deferred: tuple[list[WantedFeed], Any] | None = None
    layers: dict[str, int] = field(default_factory=dict)  # feed id -> the simulcast substream asked of Janus
    wanted: list[WantedFeed] = field(default_factory=list)  # the last subscribe, as asked (re-filtered on change)


@dataclass
class SfuRoom:
    info: RoomInfo
    secret: str
    pin: str = field(default_factory=lambda: secrets.token_urlsafe(12))  # nobody but Roundtable joins
    created: bool = False
    create_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    feeds: dict[str, Feed] = field(default_factory=dict)
    talking: dict[str, bool] = field(default_factory=dict)  # peer -> last state sent
    talking_pending: dict[str, bool] = field(default_factory=dict)
    talking_flush: asyncio.TimerHandle | None = None
    talking_sent_at: float = 0.0
    link: JanusLink | None = None  # the Janus it lives on (set when created there)
    displaced: bool = False  # its Janus went away: to be placed again


def cap_videos(wanted: list[WantedFeed], counts: Callable[[WantedFeed], bool]) -> tuple[list[WantedFeed], bool]:
    """The subscription the server serves for `wanted`, and whether it is less than what was asked.

    In the order of the list, over the feeds that `counts` (live, not one's own, with video): the first `high` keeps its
    layer and a later one is served `medium`; video beyond MAX_OTHER_VIDEOS feeds at `low`/`medium` is left out (the
    feed's audio stays). A client that stays within the caps gets exactly what it asked for."""
    high = other = 0
    out: list[WantedFeed] = []
    limited = False
    for want in wanted:
        served = want
        if want.video and counts(want):
            if want.quality == "high" and high < MAX_HIGH_VIDEOS:
                high += 1
            elif other < MAX_OTHER_VIDEOS:
                other += 1
                if want.quality == "high":
                    served = want.model_copy(update={"quality": "medium"})
            else:
                served = want.model_copy(update={"video": False})
        limited = limited or served is not want
        out.append(served)
    return out, limited


def feed_id_of(member_id: str, source: str) -> str:
    return f"{member_id}:{source}"


class JanusLink:
    """One Janus the bridge talks to: its session and the admin handle that creates and moderates its rooms.

    The home link (this node's own Janus, or ROUNDTABLE_SFU_URL) is kept and reconnected forever; the others are
    opened when a room is placed on them and forgotten when they go away (the rooms on them are placed again)."""

    def __init__(self, endpoint: JanusEndpoint, *, home: bool) -> None:
        self.endpoint = endpoint
        self.home = home
        self.client: JanusClient | None = None
        self.admin: Handle | None = None
        self.available = False

    @property
    def url(self) -> str:
        return self.endpoint.url


class SfuBridge:
    def __init__(
        self,
        endpoint: JanusEndpoint,
        *,
        rec_dir: str | None = None,
        on_unhealthy: Callable[[], None] | None = None,
        room_secret: Callable[[str], str] | None = None,
    ) -> None:
        # A room's Janus secret. Several nodes derive it from the deployment's secret key, so that a new owner can
        # destroy and re-create a room a previous owner left on a Janus (random per process otherwise).
        self._room_secret = room_secret or (lambda _room_id: secrets.token_urlsafe(18))
        self.endpoint = endpoint  # the home Janus: this node's own (what it registers in `nodes`)
        self.rec_dir = rec_dir  # where every Janus writes recordings: the same (shared) path on every host
        self.on_unhealthy = on_unhealthy
        self.listener: SfuListener | None = None
        self._recording: RecordingPolicy | None = None
        self._placement: Placement | None = None
        self.rooms: dict[str, SfuRoom] = {}
        self.members: dict[str, SfuMember] = {}
        self.home = JanusLink(endpoint, home=True)
        self.links: dict[str, JanusLink] = {endpoint.url: self.home}
        self._linking: dict[str, asyncio.Lock] = {}
        self._dead: dict[str, float] = {}  # url -> monotonic time until which it is not chosen
        self._losses: dict[str, int] = {}  # room id -> times its Janus went away under it
        self._tasks = OwnedTasks("SFU", expected=(JanusGone, JanusError, ServiceError))
        self._reconnect: asyncio.Task[None] | None = None
        self._replacing: asyncio.Task[None] | None = None
        self._occupancy_dirty: set[str] = set()  # rooms whose member count the placement has not seen
        self._occupancy_task: asyncio.Task[None] | None = None
        self._replace_lock = asyncio.Lock()
        self._closed = False
        # True from the start and after a loss that left no Janus up, until the rooms are placed again: every sfu
        # room is told (sfu_down / sfu_up without room ids), as with one Janus.
        self._all_down = True
        self.generation = 0  # bumped on every (re)connection and loss: handles of older ones are dead
        self.connected_event = asyncio.Event()  # the home Janus is connected

    def bind(self, listener: SfuListener) -> None:
        self.listener = listener

    def plug_recording(self, policy: RecordingPolicy) -> None:
        """Who decides which feeds Janus records (the recordings coordinator); plugged once, at start."""
        if self._recording is not None:
            raise RuntimeError("the recording policy is plugged already")
        self._recording = policy

    def plug_placement(self, placement: Placement) -> None:
        """Where new rooms go (several Janus: server/sfu_placement.py); unplugged, every room is on the home Janus."""
        if self._placement is not None:
            raise RuntimeError("the placement is plugged already")
        self._placement = placement

    @property
    def available(self) -> bool:
        """Some Janus answers (rooms can be served)."""
        return any(link.available for link in self.links.values())

    def available_for(self, room_id: str) -> bool:
        """Whether the room can be served now: its Janus answers (or, not placed yet, some Janus may take it)."""
        room = self.rooms.get(room_id)
        if room is not None and room.link is not None:
            return room.link.available
        if room is not None and room.displaced:
            return False
        return not self._all_down and (self.available or self._placement is not None)

    def generation_of(self, room_id: str) -> int | None:
        """Changes whenever the room's Janus went away under it; None while it is away."""
        if not self.available_for(room_id) and room_id in self.rooms:
            return None
        return self._losses.get(room_id, 0)

    def rooms_on(self, url: str) -> int:
        return sum(1 for room in self.rooms.values() if room.link is not None and room.link.url == url)

    # Lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect now if Janus answers; otherwise keep trying in the background."""
        try:
            await self._connect(self.home)
        except (JanusGone, JanusError) as exc:
            log.warning("the SFU is not reachable yet (%s); retrying", exc)
            self._start_reconnect()
        else:
            self._all_down = False

    async def close(self) -> None:
        self._closed = True
        for task in (self._reconnect, self._replacing, self._occupancy_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._tasks.cancel_all()
        for room in list(self.rooms.values()):
            link = room.link
            if room.created and link is not None and link.client is not None and link.client.connected:
                with contextlib.suppress(ServiceError, JanusError, JanusGone):
                    await self._destroy(room, link)
        if self._placement is not None:
            await self._placement.release_all()
        for link in list(self.links.values()):
            if link.client is not None:
                await link.client.close()
            link.available = False

    async def end_rooms(self) -> None:
        """The node stops (its sessions are closed): destroy every room in its Janus and release its placements,
        before the node gives its leases back, so that a new owner's room of the same id is never destroyed."""
        for room_id in list(self.rooms):
            room = self.rooms[room_id]
            link = room.link if room.created else None
            room.created = False  # destroyed here, not in the background
            self.room_ended(room_id)
            if link is not None:
                with contextlib.suppress(ServiceError, JanusError, JanusGone, TimeoutError):
                    async with asyncio.timeout(5):
                        await self._destroy(room, link)
        if self._placement is not None:
            await self._placement.release_all()

    async def _connect(self, link: JanusLink) -> None:
        client = JanusClient(link.url, link.endpoint.api_secret)
        client.on_lost = lambda why: self._lost(link, client, why)
        await client.connect()
        try:
            admin = await client.attach()
        except BaseException:
            await client.close()
            raise
        link.client, link.admin = client, admin
        self.generation += 1
        link.available = True
        self._dead.pop(link.url, None)
        if link.home:
            self.connected_event.set()
        log.info("connected to the SFU at %s", link.url)

    def _lost(self, link: JanusLink, client: JanusClient, why: str) -> None:
        if self._closed or link.client is not client:
            return
        link.available = False
        self.generation += 1
        if link.home:
            self.connected_event.clear()
            if "did not answer" in why and self.on_unhealthy is not None:
                self.on_unhealthy()
        else:
            if self.links.get(link.url) is link:
                del self.links[link.url]
            self._dead[link.url] = time.monotonic() + DEAD_FOR_S
        everything = not self.available
        # Every handle, room and feed on the lost Janus is gone with it; the rooms are placed again.
        lost = [r for r in self.rooms.values() if r.link is link or (everything and r.link is None)]
        for room in lost:
            room.created = False
            room.link = None
            room.displaced = True
            self._losses[room.info.id] = self._losses.get(room.info.id, 0) + 1
            room.feeds.clear()
            if room.talking_flush is not None:
                room.talking_flush.cancel()
                room.talking_flush = None
            room.talking.clear()
            room.talking_pending.clear()
        ids = {room.info.id for room in lost}
        for member in self.members.values():
            if everything or member.room_id in ids:
                self._forget_handles(member)
        if everything:
            self._all_down = True
        log.warning("lost the SFU at %s (%s): %d room(s) to place again", link.url, why, len(ids))
        if self.listener is not None:
            self.listener.sfu_down(why, None if everything else sorted(ids))
        if link.home:
            self._start_reconnect()
        self._start_replacing()

    def _start_reconnect(self) -> None:
        if self._closed or (self._reconnect is not None and not self._reconnect.done()):
            return
        self._reconnect = asyncio.create_task(self._reconnect_loop(), name="sfu-reconnect")

    async def _reconnect_loop(self) -> None:
        attempt = 0
        while not self._closed:
            await asyncio.sleep(RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)])
            attempt += 1
            old = self.home.client
            if old is not None:
                with contextlib.suppress(Exception):
                    await old.close()
            try:
                await self._connect(self.home)
            except (JanusGone, JanusError) as exc:
                log.debug("SFU reconnect attempt %d failed: %s", attempt, exc)
                continue
            # Re-create the rooms people are in, then tell them to publish and subscribe again.
            await self._replace()
            return

    def _start_replacing(self) -> None:
        if self._closed or (self._replacing is not None and not self._replacing.done()):
            return
        self._replacing = asyncio.create_task(self._replace_loop(), name="sfu-replace")

    async def _replace_loop(self) -> None:
        attempt = 0
        while not self._closed and not await self._replace():
            # Nothing could take the rooms yet (the home Janus is restarting): try again, as the reconnection does.
            await asyncio.sleep(RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)])
            attempt += 1

    async def _replace(self) -> bool:
        """Place the rooms whose Janus went away (all sfu rooms after a loss that left none up) again and tell
        their members to publish and subscribe again. True once nothing is left to place."""
        async with self._replace_lock:
            if self._closed or self.listener is None:
                return True
            everything = self._all_down
            wanted = [
                info
                for info in self.listener.sfu_rooms()
                if everything or ((room := self.rooms.get(info.id)) is not None and room.displaced)
            ]
            placed: list[str] = []
            for info in wanted:
                try:
                    await self._ensure_room(info)
                except Unavailable:
                    return False  # no Janus can take it now
                except (ServiceError, JanusError, JanusGone) as exc:
                    log.warning("re-creating SFU room %s failed: %s", info.id, exc)
                    continue
                placed.append(info.id)
            if everything:
                if not self.available:
                    return False
                self._all_down = False
                self.listener.sfu_up()
            elif placed:
                self.listener.sfu_up(placed)
            return not any(room.displaced for room in self.rooms.values())

    def _client_of(self, room: SfuRoom) -> JanusClient:
        link = room.link
        if link is None or not link.available or link.client is None:
            raise Unavailable("the SFU is not available right now; wait for sfu_restored")
        return link.client

    # Placement ------------------------------------------------------------------------------------

    async def _candidates(self, room_id: str) -> list[Candidate]:
        if self._placement is None:
            return [Candidate(self.endpoint, 0)]
        return await self._placement.candidates(room_id)

    def _occupancy_changed(self, room_id: str) -> None:
        """A member came or went: the room's count (part of its Janus's load) is written soon, in the background,
        a room's changes within OCCUPANCY_EVERY_S coalesced into one write (never on the media or message path)."""
        if self._placement is None or self._closed:
            return
        self._occupancy_dirty.add(room_id)
        if self._occupancy_task is None or self._occupancy_task.done():
            self._occupancy_task = asyncio.get_running_loop().create_task(self._write_occupancy())

    async def _write_occupancy(self) -> None:
        assert self._placement is not None
        while self._occupancy_dirty and not self._closed:
            await asyncio.sleep(OCCUPANCY_EVERY_S)  # coalesce a burst of joins (a plenary filling up)
            dirty, self._occupancy_dirty = self._occupancy_dirty, set()
            counts = {room_id: 0 for room_id in dirty if room_id in self.rooms}
            for member in self.members.values():
                if member.room_id in counts:
                    counts[member.room_id] += 1
            await self._placement.occupancy(counts)

    def _skipped(self, url: str) -> bool:
        link = self.links.get(url)
        if link is not None and link.home:
            return not link.available
        return self._dead.get(url, 0.0) > time.monotonic()

    async def _link(self, endpoint: JanusEndpoint) -> JanusLink:
        """The connected link to a chosen Janus (connecting to it now if need be)."""
        link = self.links.get(endpoint.url)
        if link is not None and link.available:
            return link
        if link is not None and link.home:
            raise Unavailable("the SFU is not available right now; wait for sfu_restored")
        async with self._linking.setdefault(endpoint.url, asyncio.Lock()):
            link = self.links.get(endpoint.url)
            if link is not None and link.available:
                return link
            link = JanusLink(endpoint, home=False)
            try:
                await self._connect(link)
            except (JanusGone, JanusError) as exc:
                log.warning("the SFU at %s cannot take rooms now: %s", endpoint.url, exc)
                self._dead[endpoint.url] = time.monotonic() + DEAD_FOR_S
                raise
            if self._closed:
                assert link.client is not None
                await link.client.close()
                raise Unavailable("the SFU bridge is closing")
            self.links[endpoint.url] = link
            return link

    async def _place(self, room: SfuRoom) -> JanusLink:
        """Choose the room's Janus (least loaded first, dead ones skipped) and connect to it."""
        for _ in range(MAX_PLACEMENT_TRIES):
            endpoint = choose(await self._candidates(room.info.id), self._skipped)
            if endpoint is None:
                break
            try:
                return await self._link(endpoint)
            except (JanusGone, JanusError):
                continue  # marked dead: the next choice skips it
        raise Unavailable("the SFU is not available right now; wait for sfu_restored")

    # Rooms ----------------------------------------------------------------------------------------

    def feeds(self, room_id: str) -> list[FeedInfo]:
        room = self.rooms.get(room_id)
        return [f.info for f in room.feeds.values() if f.live] if room is not None else []

    def member_feeds(self, member_id: str) -> list[FeedInfo]:
        member = self.members.get(member_id)
        room = self.rooms.get(member.room_id) if member is not None else None
        if room is None:
            return []
        return [f.info for f in room.feeds.values() if f.info.peer_id == member_id]

    def room_of(self, info: RoomInfo) -> SfuRoom:
        room = self.rooms.get(info.id)
        if room is None:
            room = self.rooms[info.id] = SfuRoom(info=info, secret=self._room_secret(info.id))
        else:
            room.info = info
        return room

    def janus_url_of(self, room_id: str) -> str | None:
        """Which Janus the room lives on now (None: not placed)."""
        room = self.rooms.get(room_id)
        return room.link.url if room is not None and room.link is not None and room.created else None

    async def _ensure_room(self, info: RoomInfo) -> SfuRoom:
        room = self.room_of(info)
        async with room.create_lock:
            if room.created and room.link is not None and room.link.available:
                return room
            if room.link is not None and not room.link.available:
                raise Unavailable("the SFU is not available right now; wait for sfu_restored")
            for _ in range(MAX_PLACEMENT_TRIES):
                link = await self._place(room)
                try:
                    await self._create(link, room, info)
                except JanusGone:
                    continue  # it went away meanwhile (its loss marked it): choose again
                break
            else:
                raise Unavailable("the SFU is not available right now; wait for sfu_restored")
            if self._placement is not None:
                # Counted in the Janus's load before anyone else places a room (bounded; never fails the room).
                await self._placement.placed(info.id, link.url)
                self._occupancy_changed(info.id)  # members who came before it was placed count too
            return room

    async def _create(self, link: JanusLink, room: SfuRoom, info: RoomInfo) -> None:
        client, admin = link.client, link.admin
        if client is None or admin is None:
            raise JanusGone("not connected")
        body: dict[str, Any] = {
            "request": "create",
            "room": info.id,
            "admin_key": link.endpoint.admin_key,
            "secret": room.secret,
            "pin": room.pin,
            "description": info.name[:100],
            "is_private": True,
            "require_pvtid": True,
            "lock_record": True,
            "publishers": max(2 * info.capacity, 2),
            "bitrate": 1_500_000,
            "fir_freq": 10,
            "audiocodec": "opus",
            "videocodec": "vp8,h264",
            "audiolevel_ext": True,
            "audiolevel_event": True,
            "audio_active_packets": 50,
            "audio_level_average": 40,
            "notify_joining": False,
            "permanent": False,
        }
        if self.rec_dir:
            body["rec_dir"] = self.rec_dir
        try:
            await admin.request(body)
        except JanusError as exc:
            if exc.code != 427:  # 427: the room exists (a Janus that outlived us, or a previous owner's); take it over
                raise
            await admin.request({"request": "destroy", "room": info.id, "secret": room.secret})
            await admin.request(body)
        if link.client is not client or not link.available:
            raise JanusGone("the SFU went away while the room was created")
        room.link = link
        room.created = True
        room.displaced = False

    def room_ended(self, room_id: str) -> None:
        """Nobody is left in the room (or it switched to mesh): drop its feeds quietly and destroy it in Janus."""
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        for member in [m for m in self.members.values() if m.room_id == room_id]:
            self._drop_member(member, reason="room_closed", notify=False)
        if room.talking_flush is not None:
            room.talking_flush.cancel()
        if room.created and room.link is not None:
            self._tasks.spawn(self._destroy(room, room.link), name=f"sfu-destroy-{room_id}")
        if self._placement is not None:
            self._tasks.spawn(self._placement.released(room_id), name=f"sfu-released-{room_id}")
        if not self._losses.get(room_id):
            self._losses.pop(room_id, None)

    @staticmethod
    async def _destroy(room: SfuRoom, link: JanusLink) -> None:
        if link.admin is None or not link.available:
            return
        with contextlib.suppress(JanusError):
            await link.admin.request({"request": "destroy", "room": room.info.id, "secret": room.secret})

    # Members --------------------------------------------------------------------------------------

    def _member(self, member_id: str, room: RoomInfo, display: str) -> SfuMember:
        member = self.members.get(member_id)
        if member is not None and member.room_id != room.id:
            self._drop_member(member, reason="moved", notify=True)
            member = None
        if member is None:
            member = self.members[member_id] = SfuMember(id=member_id, room_id=room.id, display=display)
            self._occupancy_changed(room.id)
        return member

    async def _ensure_base(self, member: SfuMember, room: SfuRoom) -> Handle:
        if member.base is not None and not member.base.detached:
            return member.base
        handle, data = await self._join_publisher(member, room, "camera", member.display)
        member.base = handle
        member.private_id = int(data["private_id"])
        return handle

    async def _join_publisher(
        self, member: SfuMember, room: SfuRoom, source: Source, display: str
    ) -> tuple[Handle, dict[str, Any]]:
        """A new handle joined to the room as the member's `source` publisher (not publishing yet)."""
        handle = await self._client_of(room).attach()
        handle.on_event = lambda event: self._on_publisher_event(member.id, source, handle, event)
        try:
            data, _ = await handle.request(
                {
                    "request": "join",
                    "ptype": "publisher",
                    "room": room.info.id,
                    "pin": room.pin,
                    "id": feed_id_of(member.id, source),
                    "display": display,
                }
            )
        except BaseException:
            await handle.detach()
            raise
        return handle, data

    def member_left(self, member_id: str, reason: str, *, kick: bool = False) -> None:
        """The member left the room (or was removed): its feeds end now, its handles go in the background."""
        member = self.members.get(member_id)
        if member is None:
            return
        room = self.rooms.get(member.room_id)
        if kick and room is not None and room.created:
            self._tasks.spawn(self._kick(room, member_id), name=f"sfu-kick-{member_id}")
        self._drop_member(member, reason=reason, notify=True)

    def _drop_member(self, member: SfuMember, *, reason: str, notify: bool) -> None:
        if self.members.pop(member.id, None) is not None:
            self._occupancy_changed(member.room_id)
        room = self.rooms.get(member.room_id)
        if room is not None:
            for feed in [f for f in room.feeds.values() if f.info.peer_id == member.id]:
                self._remove_feed(room, feed, reason=reason, notify=notify)
            room.talking.pop(member.id, None)
            room.talking_pending.pop(member.id, None)
        handles = [h for h in (member.subscriber, member.screen, member.interpretation, member.base) if h is not None]
        self._forget_handles(member)
        for handle in handles:
            self._tasks.spawn(handle.detach(), name=f"sfu-detach-{member.id}")

    @staticmethod
    def _forget_handles(member: SfuMember) -> None:
        member.base = member.screen = member.interpretation = member.subscriber = None
        member.private_id = None
        member.subscribed.clear()
        member.streams = []
        member.moderated.clear()
        member.answer_pending = False
        member.deferred = None
        member.layers.clear()

    async def _kick(self, room: SfuRoom, member_id: str) -> None:
        admin = room.link.admin if room.link is not None else None
        if admin is None:
            return
        for source in ("camera", "screen", "interpretation"):
            with contextlib.suppress(JanusError):
                await admin.request(
                    {
                        "request": "kick",
                        "room": room.info.id,
                        "secret": room.secret,
                        "id": feed_id_of(member_id, source),
                    }
                )

    async def participants(self, room_id: str) -> list[dict[str, Any]]:
        """Janus's own view of a room (listparticipants), for tests and diagnostics."""
        room = self.rooms.get(room_id)
        admin = room.link.admin if room is not None and room.link is not None else None
        if room is None or not room.created or admin is None:
            return []
        data, _ = await admin.request({"request": "listparticipants", "room": room_id})
        return list(data.get("participants", []))

    # Publishing -----------------------------------------------------------------------------------

    async def publish(
        self, member_id: str, display: str, info: RoomInfo, source: Source, sdp: str, *, language: str | None = None
    ) -> tuple[str, str]:
        """Publish the offer's media as the member's `source` feed; returns (feed id, answer SDP).

        An `interpretation` feed is audio only, into the channel `language`."""
        kinds = sent_kinds(sdp)
        if not kinds:
            raise InvalidArgument("the offer sends no audio or video")
        if source == "screen" and "video" not in kinds:
            raise InvalidArgument("a screen feed must send video")
        if source == "interpretation" and kinds != {"audio"}:
            raise InvalidArgument("an interpretation feed is audio only: send one audio track and no video")
        room = await self._ensure_room(info)
        member = self._member(member_id, info, display)
        async with member.lock:
            feed_id = feed_id_of(member_id, source)
            existing = room.feeds.get(feed_id)
            if source == "camera":
                handle = await self._ensure_base(member, room)
                if existing is not None:
                    self._remove_feed(room, existing, reason="republished", notify=True)
                    with contextlib.suppress(JanusError):
                        await handle.request({"request": "unpublish"})
            else:
                await self._ensure_base(member, room)  # the private id lives there
                old = self._side_handle(member, source)
                if old is not None:
                    self._set_side_handle(member, source, None)
                    if existing is not None:
                        self._remove_feed(room, existing, reason="republished", notify=True)
                    await old.detach()
                handle, _ = await self._join_publisher(member, room, source, f"{display} ({source})")
                self._set_side_handle(member, source, handle)
            # "record": false because Janus keeps a publisher's recording switched on across an unpublish and
            # would record a republish on its own, under a name of its own; the recording policy decides.
            data, jsep = await handle.request(
                {
                    "request": "publish",
                    "descriptions": [],
                    "record": False,
                    "secret": room.secret,
                },
                {"type": "offer", "sdp": sdp},
            )
            if not jsep or jsep.get("type") != "answer":
                raise InvalidArgument("the SFU did not accept the offer")
            mids = {s["type"]: str(s["mid"]) for s in data.get("streams", []) if s.get("type") in ("audio", "video")}
            feed = Feed(
                info=FeedInfo(
                    feed_id=feed_id,
                    peer_id=member_id,
                    source=source,
                    audio="audio" in mids,
                    video="video" in mids,
                    language=language if source == "interpretation" else None,
                ),
                room_id=info.id,
                handle=handle,
                mids=mids,
            )
            room.feeds[feed_id] = feed
            for kind in member.moderated:  # a moderator's mute holds across a republish, as on every source
                if kind in mids:
                    self._tasks.spawn(self._moderate(room, feed, kind, True), name=f"sfu-moderate-{feed_id}")
            return feed_id, str(jsep["sdp"])

    async def unpublish(self, member_id: str, feed_id: str, *, reason: str = "unpublished") -> None:
        member = self.members.get(member_id)
        room = self.rooms.get(member.room_id) if member is not None else None
        feed = room.feeds.get(feed_id) if room is not None else None
        if member is None or room is None or feed is None or feed.info.peer_id != member_id:
            raise NotFound(f"you publish no feed {feed_id}")
        async with member.lock:
            self._remove_feed(room, feed, reason=reason, notify=True)
            source = feed.info.source
            if source != "camera" and self._side_handle(member, source) is feed.handle:
                self._set_side_handle(member, source, None)
                await feed.handle.detach()
            else:
                with contextlib.suppress(JanusError, JanusGone):
                    await feed.handle.request({"request": "unpublish"})

    @staticmethod
    def _side_handle(member: SfuMember, source: str) -> Handle | None:
        """The publisher handle of a source that has its own (screen, interpretation)."""
        return member.interpretation if source == "interpretation" else member.screen

    @staticmethod
    def _set_side_handle(member: SfuMember, source: str, handle: Handle | None) -> None:
        if source == "interpretation":
            member.interpretation = handle
        else:
            member.screen = handle

    async def unpublish_sources(self, member_id: str, sources: tuple[str, ...], *, reason: str) -> int:
        """End the member's feeds of these sources (an interpreter's camera, a former interpreter's channel)."""
        feeds = [f for f in self.member_feeds(member_id) if f.source in sources]
        for feed in feeds:
            with contextlib.suppress(NotFound):
                await self.unpublish(member_id, feed.feed_id, reason=reason)
        return len(feeds)

    def set_language(self, member_id: str, language: str | None) -> None:
        """An interpreter switched the direction of their pair: their interpretation feed now goes into the
        channel `language`. The media goes on; the room hears the feed go and come back with its new language,
        and a running recording starts a new segment (the policy is asked again)."""
        member = self.members.get(member_id)
        room = self.rooms.get(member.room_id) if member is not None else None
        feed = room.feeds.get(feed_id_of(member_id, "interpretation")) if room is not None else None
        if room is None or feed is None or feed.info.language == language:
            return
        old = feed.info
        feed.info = old.model_copy(update={"language": language})
        if feed.live and self.listener is not None:
            self.listener.sfu_feed_removed(room.info.id, old, "language_changed")
            self.listener.sfu_feed_added(room.info.id, feed.info)
        if feed.live and self._recording is not None:
            self._recording.recording_base(room.info.id, feed.info)

    def refilter(self, room_id: str) -> None:
        """Who may receive what changed in the room (a listener's channel, a live interpreter): every member's
        subscription is worked out again from what it last asked for, and renegotiated where it differs."""
        room = self.rooms.get(room_id)
        if room is None:
            return
        interpretation = {f for f, feed in room.feeds.items() if feed.info.source == "interpretation"}
        for member in [m for m in self.members.values() if m.room_id == room_id and m.subscriber is not None]:
            asked = {w.feed_id for w in member.wanted} | {feed for feed, _mid in member.subscribed}
            if not asked & interpretation:
                continue  # only the floor: nothing to filter
            if member.answer_pending:
                if member.deferred is None:  # runs when the answer comes, filtered then
                    member.deferred = (member.wanted, None)
                continue
            self._tasks.spawn(self._refilter(member, room), name=f"sfu-refilter-{member.id}")

    async def _refilter(self, member: SfuMember, room: SfuRoom) -> None:
        if self.members.get(member.id) is not member or member.subscriber is None:
            return
        reply = await self._subscribe(member, room, room.info, member.wanted)
        if reply.sdp is not None and self.listener is not None:
            self.listener.sfu_to_member(member.id, reply)

    async def unpublish_all(self, member_id: str, *, reason: str) -> int:
        feeds = self.member_feeds(member_id)
        for feed in feeds:
            with contextlib.suppress(NotFound):
                await self.unpublish(member_id, feed.feed_id, reason=reason)
        return len(feeds)

    def _remove_feed(self, room: SfuRoom, feed: Feed, *, reason: str, notify: bool) -> None:
        if room.feeds.get(feed.info.feed_id) is not feed:
            return
        del room.feeds[feed.info.feed_id]
        for member in self.members.values():
            if member.room_id == room.info.id:
                for key in [k for k in member.subscribed if k[0] == feed.info.feed_id]:
                    del member.subscribed[key]
        if feed.live and notify and self.listener is not None:
            self.listener.sfu_feed_removed(room.info.id, feed.info, reason)

    def _on_publisher_event(self, member_id: str, source: str, handle: Handle, event: dict[str, Any]) -> None:
        member = self.members.get(member_id)
        room = self.rooms.get(member.room_id) if member is not None else None
        if member is None or room is None:
            return
        feed = room.feeds.get(feed_id_of(member_id, source))
        kind = event.get("janus")
        if kind == "webrtcup" and feed is not None and feed.handle is handle and not feed.live:
            feed.live = True
            if self.listener is not None:
                self.listener.sfu_feed_added(room.info.id, feed.info)
            policy = self._recording
            base = policy.recording_base(room.info.id, feed.info) if policy is not None else None
            if base is not None:
                self._tasks.spawn(self.record_feed(feed.info.feed_id, base), name=f"sfu-record-{feed.info.feed_id}")
        elif kind == "hangup" and feed is not None and feed.handle is handle:
            self._remove_feed(room, feed, reason="connection_lost", notify=True)
        elif kind == "event":
            data = event.get("plugindata", {}).get("data", {})
            what = data.get("videoroom")
            if what in ("talking", "stopped-talking"):
                self._talking(room, str(data.get("id", "")), what == "talking")
            elif (data.get("leaving") == "ok" or data.get("reason") == "kicked") and (
                feed is not None and feed.handle is handle
            ):
                self._remove_feed(room, feed, reason="kicked", notify=True)

    # Recording ------------------------------------------------------------------------------------

    async def record_feed(self, feed_id: str, base: str | None) -> bool:
        """Start (base = the files' base path) or stop (None) Janus's recording of one feed."""
        for room in self.rooms.values():
            feed = room.feeds.get(feed_id)
            if feed is None:
                continue
            if base == feed.recording_base:
                return True
            body: dict[str, Any] = {"request": "configure", "secret": room.secret, "record": base is not None}
            if base is not None:
                body["filename"] = base
            await feed.handle.request(body)
            feed.recording_base = base
            return True
        return False

    def recorded_feeds(self, room_id: str) -> list[FeedInfo]:
        room = self.rooms.get(room_id)
        return [f.info for f in room.feeds.values() if f.recording_base] if room is not None else []

    # Subscribing ----------------------------------------------------------------------------------

    async def subscribe(
        self, member_id: str, display: str, info: RoomInfo, wanted: list[WantedFeed], request_id: Any = None
    ) -> Subscription | None:
        """The new subscription (its offer), or None when it must wait for the answer to the previous offer:
        the reply then comes through the listener once that answer arrived."""
        room = await self._ensure_room(info)
        member = self._member(member_id, info, display)
        if member.answer_pending and member.subscriber is not None:
            superseded, member.deferred = member.deferred, (wanted, request_id)
            if superseded is not None and self.listener is not None:
                self.listener.sfu_to_member(
                    member_id, Subscription(sdp=None, streams=member.streams, request_id=superseded[1])
                )
            return None
        reply = await self._subscribe(member, room, info, wanted)
        return reply.model_copy(update={"request_id": request_id})

    async def _subscribe(
        self, member: SfuMember, room: SfuRoom, info: RoomInfo, wanted: list[WantedFeed]
    ) -> Subscription:
        member_id = member.id
        async with member.lock:
            target: dict[tuple[str, str], str] = {}

            def servable(want: WantedFeed) -> Feed | None:
                feed = room.feeds.get(want.feed_id)
                if feed is None or not feed.live or feed.info.peer_id == member_id:
                    return None
                if self.listener is not None and not self.listener.sfu_may_receive(member_id, feed.info):
                    return None  # another channel's interpretation: left out as if it were not there
                return feed

            member.wanted = list(wanted)

            def has_video(want: WantedFeed) -> bool:
                feed = servable(want)
                return feed is not None and "video" in feed.mids

            wanted, limited = cap_videos(wanted, has_video)
            layers = {w.feed_id: SUBSTREAMS[w.quality] for w in wanted if w.video}
            for want in wanted:
                feed = servable(want)
                if feed is None:
                    continue  # gone meanwhile, never there, or one's own: skipped, the streams list tells
                for kind, mid in feed.mids.items():
                    if (kind == "audio" and want.audio) or (kind == "video" and want.video):
                        target[(want.feed_id, mid)] = kind
            if member.subscriber is None:
                if not target:
                    return Subscription(sdp=None, streams=[], limited=limited)
                await self._ensure_base(member, room)
                handle = await self._client_of(room).attach()
                handle.on_event = lambda event: self._on_subscriber_event(member_id, handle, event)
                try:
                    data, jsep = await handle.request(
                        {
                            "request": "join",
                            "ptype": "subscriber",
                            "room": info.id,
                            "pin": room.pin,
                            "private_id": member.private_id,
                            "use_msid": False,
                            "streams": [{"feed": feed, "mid": mid} for feed, mid in target],
                        }
                    )
                except BaseException:
                    await handle.detach()
                    raise
                member.subscriber = handle
            else:
                add = [{"feed": f, "mid": m} for (f, m) in target if (f, m) not in member.subscribed]
                drop = [{"feed": f, "mid": m} for (f, m) in member.subscribed if (f, m) not in target]
                if not add and not drop:
                    await self._apply_layers(member, layers)
                    return Subscription(sdp=None, streams=member.streams, limited=limited)
                body: dict[str, Any] = {"request": "update"}
                if add:
                    body["subscribe"] = add
                if drop:
                    body["unsubscribe"] = drop
                data, jsep = await member.subscriber.request(body)
            member.subscribed = target
            member.streams = self._streams_of(data)
            member.layers = {f: n for f, n in member.layers.items() if any(s.feed_id == f for s in member.streams)}
            await self._apply_layers(member, layers)
            sdp = str(jsep["sdp"]) if jsep and jsep.get("type") == "offer" else None
            if sdp is not None:
                member.answer_pending = True
            return Subscription(sdp=sdp, streams=member.streams, limited=limited)

    async def _apply_layers(self, member: SfuMember, layers: dict[str, int]) -> None:
        """Ask Janus for the simulcast layer each video tile wants (Janus ignores it for feeds without layers)."""
        if member.subscriber is None:
            return
        changes = []
        for stream in member.streams:
            if stream.kind != "video":
                continue
            wanted = layers.get(stream.feed_id, SUBSTREAMS["high"])
            if member.layers.get(stream.feed_id, SUBSTREAMS["high"]) != wanted:
                changes.append({"mid": stream.mid, "substream": wanted})
                member.layers[stream.feed_id] = wanted
        if changes:
            await member.subscriber.request({"request": "configure", "streams": changes})
        self._label_layers(member)

    @staticmethod
    def _label_layers(member: SfuMember) -> None:
        """Each video stream of the subscription says the layer asked of Janus for it."""
        member.streams = [
            s.model_copy(update={"quality": QUALITIES[member.layers.get(s.feed_id, SUBSTREAMS["high"])]})
            if s.kind == "video"
            else s
            for s in member.streams
        ]

    @staticmethod
    def _streams_of(data: dict[str, Any]) -> list[SubscribedStream]:
        streams = []
        for s in data.get("streams", []):
            if s.get("active", True) and s.get("type") in ("audio", "video") and s.get("feed_id"):
                streams.append(SubscribedStream(mid=str(s["mid"]), feed_id=str(s["feed_id"]), kind=s["type"]))
        return streams

    async def subscription_answer(self, member_id: str, sdp: str) -> None:
        member = self.members.get(member_id)
        if member is None or member.subscriber is None:
            raise NotFound("there is no subscription to answer")
        try:
            await member.subscriber.request({"request": "start"}, {"type": "answer", "sdp": sdp})
        finally:
            member.answer_pending = False
        deferred, member.deferred = member.deferred, None
        room = self.rooms.get(member.room_id)
        if deferred is not None and room is not None:
            self._tasks.spawn(self._run_deferred(member, room, *deferred), name=f"sfu-subscribe-{member_id}")

    async def _run_deferred(self, member: SfuMember, room: SfuRoom, wanted: list[WantedFeed], request_id: Any) -> None:
        if self.members.get(member.id) is not member:
            return
        reply = await self._subscribe(member, room, room.info, wanted)
        if self.listener is not None:
            self.listener.sfu_to_member(member.id, reply.model_copy(update={"request_id": request_id}))

    def _on_subscriber_event(self, member_id: str, handle: Handle, event: dict[str, Any]) -> None:
        member = self.members.get(member_id)
        if member is None or member.subscriber is not handle:
            return
        kind = event.get("janus")
        if kind == "hangup":
            # The subscriber PeerConnection died: the next subscribe starts a new one.
            member.subscriber = None
            member.answer_pending = False
            member.subscribed.clear()
            member.streams = []
            self._tasks.spawn(handle.detach(), name=f"sfu-detach-sub-{member_id}")
            return
        data = event.get("plugindata", {}).get("data", {})
        jsep = event.get("jsep")
        if data.get("videoroom") == "updated" and jsep and jsep.get("type") == "offer":
            # Janus renegotiates on its own (a subscribed feed went away): pass its offer on.
            member.streams = self._streams_of(data)
            self._label_layers(member)
            member.answer_pending = True
            if self.listener is not None:
                self.listener.sfu_to_member(member_id, Subscription(sdp=str(jsep["sdp"]), streams=member.streams))

    # ICE ------------------------------------------------------------------------------------------

    async def trickle(self, member_id: str, pc: str, candidate: dict[str, Any] | None) -> None:
        member = self.members.get(member_id)
        handle: Handle | None = None
        if member is not None:
            handle = {
                "publish:camera": member.base,
                "publish:screen": member.screen,
                "publish:interpretation": member.interpretation,
                "subscribe": member.subscriber,
            }.get(pc)
        if handle is None:
            raise NotFound(f"no {pc} connection to the SFU")
        if candidate is not None and not candidate.get("candidate"):
            candidate = None  # end of candidates
        await handle.trickle(candidate)

    # Moderation -----------------------------------------------------------------------------------

    async def moderate(self, member_id: str, kind: str, mute: bool) -> bool:
        """A moderator's mute stops the member's `kind` at Janus (every source); unmute lifts the block."""
        member = self.members.get(member_id)
        if member is None:
            return False
        if mute:
            member.moderated.add(kind)
        else:
            member.moderated.discard(kind)
        room = self.rooms.get(member.room_id)
        done = False
        for feed in [f for f in room.feeds.values() if f.info.peer_id == member_id] if room else []:
            if kind in feed.mids:
                assert room is not None
                await self._moderate(room, feed, kind, mute)
                done = True
        return done

    def is_moderated(self, member_id: str, kind: str) -> bool:
        member = self.members.get(member_id)
        return member is not None and kind in member.moderated

    async def _moderate(self, room: SfuRoom, feed: Feed, kind: str, mute: bool) -> None:
        admin = room.link.admin if room.link is not None else None
        if admin is None:
            return
        await admin.request(
            {
                "request": "moderate",
                "room": room.info.id,
                "secret": room.secret,
                "id": feed.info.feed_id,
                "mid": feed.mids[kind],
                "mute": mute,
            }
        )

    # Active speaker -------------------------------------------------------------------------------

    def _talking(self, room: SfuRoom, janus_id: str, talking: bool) -> None:
        peer_id = janus_id.rsplit(":", 1)[0]
        if peer_id not in self.members:
            return
        room.talking_pending[peer_id] = talking
        if room.talking_flush is not None:
            return
        wait = room.talking_sent_at + SPEAKING_MIN_INTERVAL_S - time.monotonic()
        loop = asyncio.get_running_loop()
        room.talking_flush = loop.call_later(max(wait, 0.0), self._flush_talking, room)

    def _flush_talking(self, room: SfuRoom) -> None:
        room.talking_flush = None
        room.talking_sent_at = time.monotonic()
        pending, room.talking_pending = room.talking_pending, {}
        for peer_id, talking in pending.items():
            if room.talking.get(peer_id, False) != talking and self.listener is not None:
                room.talking[peer_id] = talking
                self.listener.sfu_speaking(room.info.id, peer_id, talking)
