"""The ports of a workshop's live state across nodes: `RoomCommands`, the breakouts' live actions, the lobby's and
the recordings' (start, stop).
A call goes to the workshop's owner by request/reply on the bus (`rt.node.<owner>.<port>`), and runs here when this
node owns the workshop or nobody does (then nobody is live, and the local rooms answer as an empty owner would:
False, 0, nothing). An action that takes the lease when nobody holds it (a breakout transition, a recording's
start) first offers the workshop to the least loaded node (`server.node_selector`), and goes there when it adopts.

Arguments and results travel as JSON through pydantic `TypeAdapter`s built from the port's own annotations, so a
new method needs no code here beyond its one-line wrapper. A `ServiceError` raised on the owner is raised again here
with its class and message; an owner that does not answer is `Unavailable` (503). An owner that lost the lease
meanwhile answers `not_owner`, and the caller reads the lease again.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any, get_type_hints

from pydantic import TypeAdapter

from recordings.actions import RecordingActions
from recordings.service import Starter
from server.nodes import Node
from signaling.audit import Actor
from signaling.breakout_actions import BreakoutActions
from signaling.breakout_store import BreakoutStore, PlanView
from signaling.bus import BusUnavailable, Message, Subscription
from signaling.commands import FloorHow, Kind, LivePresence, LocalRoomCommands, RoomCommands
from signaling.errors import Internal, ServiceError, Unavailable
from signaling.lobby import AdmitSelector
from signaling.lobby_actions import LobbyActions
from signaling.lobby_store import ActorRef
from signaling.protocol import Knock, RoomInfo, Sender
from signaling.rooms import Profile

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0
ATTEMPTS = 3  # reads of the lease per call: a lease that moves twice while a call is in flight is "unavailable"


# Offers a workshop nobody holds to the least loaded node: the node that adopted it, or None (server.node_selector).
Place = Callable[[uuid.UUID], Awaitable[str | None]]


def port_subject(node_id: str, port: str) -> str:
    return f"rt.node.{node_id}.{port}"


def methods_of(port: type) -> frozenset[str]:
    """The public methods of a port (a Protocol): what travels."""
    return frozenset(name for name in dir(port) if not name.startswith("_") and callable(getattr(port, name)))


@cache
def _shape(name: str, cls: type = RoomCommands) -> tuple[inspect.Signature, dict[str, TypeAdapter[Any]], Any]:
    """The method's signature, a JSON adapter per parameter, and one for its result (None: not carried)."""
    method = getattr(cls, name)
    hints = get_type_hints(method)
    signature = inspect.signature(method)
    params = {p: TypeAdapter(hints[p]) for p in signature.parameters if p != "self"}
    returns = hints["return"]
    return signature, params, TypeAdapter(returns) if returns is not PlanView else None


async def owner_to_ask(node: Node, workshop_id: str | uuid.UUID) -> str | None:
    """The node that owns the workshop when it is another one; None to act here (this node owns it, or nobody)."""
    keeper = node.leases
    try:
        wid = workshop_id if isinstance(workshop_id, uuid.UUID) else uuid.UUID(workshop_id)
    except ValueError:
        return None
    if keeper.fence(wid) is not None:
        return None
    owner = await keeper.owner(wid)
    if owner is None or not owner.live or owner.node_id == node.info.id:
        return None
    return owner.node_id


def _errors() -> dict[str, type[ServiceError]]:
    found: dict[str, type[ServiceError]] = {}
    pending: list[type[ServiceError]] = list(ServiceError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


# The breakouts' live actions that take the lease when nobody holds it (BreakoutCoordinator._fence).
BREAKOUT_TRANSITIONS = frozenset({"open", "extend", "close", "move"})


class NotOwner(Exception):
    """The node asked does not hold the workshop's lease (any more)."""


class OwnerCalls:
    """One port's methods, called on the workshop's owner. Every method's first argument is the workshop."""

    def __init__(
        self,
        node: Node,
        port: type,
        local: Any,
        name: str,
        *,
        timeout_s: float = COMMAND_TIMEOUT_S,
        before_remote: Callable[[], None] = lambda: None,
        place: Place | None = None,
        placed: frozenset[str] = frozenset(),
    ) -> None:
        self.node = node
        self.port = port
        # The methods that take the lease of a workshop nobody holds: `place` offers it to the least loaded node
        # first (None: taken here), and the call goes to the node that adopted it.
        self.place = place
        self.placed = placed
        self.local = local
        self.name = name
        self.methods = methods_of(port)
        self.timeout_s = timeout_s
        # Run on the owner before a call from another node: that node changed PostgreSQL first (a revoke, a new
        # room), which this node's caches have not seen.
        self.before_remote = before_remote
        self._sub: Subscription | None = None
        self._error_classes = _errors()

    async def start(self) -> None:
        self._sub = await self.node.bus.subscribe(port_subject(self.node.info.id, self.name), self._serve)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(BusUnavailable):
                await self._sub.unsubscribe()

    async def call(self, method: str, workshop_id: Any, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """(True, result) when it ran on another node (the result is None when the port's result does not travel),
        (False, result) when it ran here."""
        offered = self.place is None or method not in self.placed
        for _attempt in range(ATTEMPTS):
            owner = await owner_to_ask(self.node, workshop_id)
            if owner is None and not offered and self.place is not None:
                offered = True
                with contextlib.suppress(ValueError):
                    wid = workshop_id if isinstance(workshop_id, uuid.UUID) else uuid.UUID(workshop_id)
                    if await self.place(wid) is not None:
                        continue  # adopted by a lighter node: ask it
            if owner is None:
                return False, await getattr(self.local, method)(workshop_id, *args, **kwargs)
            try:
                return True, await self._ask(owner, method, workshop_id, *args, **kwargs)
            except NotOwner:
                continue  # the lease moved between our read and its answer: read it again
        raise Unavailable("the workshop is moving between nodes; try again")

    async def _ask(self, owner: str, method: str, *args: Any, **kwargs: Any) -> Any:
        signature, params, result = _shape(method, self.port)
        bound = signature.bind(self.local, *args, **kwargs).arguments
        payload = {p: params[p].dump_python(v, mode="json") for p, v in bound.items() if p != "self"}
        data = json.dumps({"method": method, "args": payload}).encode()
        try:
            reply = await self.node.bus.request(port_subject(owner, self.name), data, timeout_s=self.timeout_s)
        except BusUnavailable as exc:
            raise Unavailable(f"the workshop's node did not answer: {exc.message}") from exc
        answer = json.loads(reply)
        if answer.get("not_owner"):
            raise NotOwner
        if "error" in answer:
            raise self._error_classes.get(str(answer["error"]), Internal)(str(answer.get("message", "")))
        return None if result is None else result.validate_python(answer.get("result"))

    async def _serve(self, message: Message) -> None:
        """A call from another node, for a workshop it believes this node owns."""
        bus = self.node.bus
        try:
            request = json.loads(message.data)
            method = request["method"]
            if method not in self.methods:
                raise ValueError(f"unknown method {method!r}")
            _, params, result = _shape(method, self.port)
            args = {p: params[p].validate_python(v) for p, v in request["args"].items()}
            workshop_id = args["workshop_id"]
            workshop_id = workshop_id if isinstance(workshop_id, uuid.UUID) else uuid.UUID(workshop_id)
        except Exception as exc:
            log.warning("a call to %s could not be read: %r", self.name, exc)
            await bus.reply(message, json.dumps({"error": "invalid_argument", "message": "bad call"}).encode())
            return
        if self.node.leases.fence(workshop_id) is None:
            await bus.reply(message, b'{"not_owner": true}')
            return
        self.before_remote()
        try:
            value = await getattr(self.local, method)(**args)
            answer: dict[str, Any] = {"result": None if result is None else result.dump_python(value, mode="json")}
        except ServiceError as exc:
            answer = {"error": exc.code, "message": exc.message}
        except Exception:
            log.exception("%s.%s failed", self.name, method)
            answer = {"error": "internal", "message": "internal error"}
        await bus.reply(message, json.dumps(answer).encode())


class BusRoomCommands:
    """Implements `RoomCommands` for a node among several."""

    def __init__(
        self,
        local: LocalRoomCommands,
        node: Node,
        *,
        timeout_s: float = COMMAND_TIMEOUT_S,
        before_remote: Callable[[], None] = lambda: None,
    ) -> None:
        self.node = node
        self._calls = OwnerCalls(node, RoomCommands, local, "cmd", timeout_s=timeout_s, before_remote=before_remote)

    async def start(self) -> None:
        await self._calls.start()

    async def close(self) -> None:
        await self._calls.stop()

    async def _call(self, method: str, workshop_id: str, *args: Any, **kwargs: Any) -> Any:
        _, value = await self._calls.call(method, workshop_id, *args, **kwargs)
        return value

    # RoomCommands ---------------------------------------------------------------------------------

    async def presence(self, workshop_id: str) -> LivePresence:
        value: LivePresence = await self._call("presence", workshop_id)
        return value

    async def live_room(self, workshop_id: str, room_id: str) -> RoomInfo | None:
        value: RoomInfo | None = await self._call("live_room", workshop_id, room_id)
        return value

    async def present_in(self, workshop_id: str, room_id: str) -> list[tuple[str, str | None]]:
        value: list[tuple[str, str | None]] = await self._call("present_in", workshop_id, room_id)
        return value

    async def room_changed(self, workshop_id: str, info: RoomInfo) -> None:
        await self._call("room_changed", workshop_id, info)

    async def send_home(self, workshop_id: str, room_id: str, *, reason: str) -> int:
        value: int = await self._call("send_home", workshop_id, room_id, reason=reason)
        return value

    async def participant_changed(self, workshop_id: str, participant_id: str, profile: Profile) -> None:
        await self._call("participant_changed", workshop_id, participant_id, profile)

    async def remove_participant(
        self, workshop_id: str, participant_id: str, *, close_code: int, reason: str, by: str | None
    ) -> bool:
        value: bool = await self._call(
            "remove_participant", workshop_id, participant_id, close_code=close_code, reason=reason, by=by
        )
        return value

    async def close_workshop(self, workshop_id: str) -> int:
        value: int = await self._call("close_workshop", workshop_id)
        return value

    async def interpretation_changed(
        self, workshop_id: str, languages: Sequence[str], interpreters: Sequence[str]
    ) -> None:
        await self._call("interpretation_changed", workshop_id, list(languages), list(interpreters))

    async def is_interpreted(self, workshop_id: str, room_id: str) -> bool:
        value: bool = await self._call("is_interpreted", workshop_id, room_id)
        return value

    async def request_mute(self, workshop_id: str, participant_id: str, kind: Kind, by: Sender) -> bool:
        value: bool = await self._call("request_mute", workshop_id, participant_id, kind, by)
        return value

    async def request_unmute(self, workshop_id: str, participant_id: str, kind: Kind, by: Sender) -> bool:
        value: bool = await self._call("request_unmute", workshop_id, participant_id, kind, by)
        return value

    async def set_floor(self, workshop_id: str, participant_id: str, granted: bool, by: Sender) -> bool:
        value: bool = await self._call("set_floor", workshop_id, participant_id, granted, by)
        return value

    async def hand_floor(self, workshop_id: str, participant_id: str, by: Sender) -> FloorHow | None:
        value: FloorHow | None = await self._call("hand_floor", workshop_id, participant_id, by)
        return value

    async def mute_room(self, workshop_id: str, room_id: str, kind: Kind, by: Sender) -> int:
        value: int = await self._call("mute_room", workshop_id, room_id, kind, by)
        return value

    async def lower_hands(self, workshop_id: str, room_id: str) -> int:
        value: int = await self._call("lower_hands", workshop_id, room_id)
        return value


class BusBreakoutActions:
    """Implements `BreakoutActions` for a node among several: the breakouts' live actions run on the workshop's
    owner, whose coordinator moves its members and arms the deadline; the caller then reads the plan as the owner
    left it in PostgreSQL (the view itself holds database rows, which do not travel)."""

    def __init__(
        self,
        local: BreakoutActions,
        store: BreakoutStore,
        node: Node,
        *,
        timeout_s: float = COMMAND_TIMEOUT_S,
        place: Place | None = None,
    ) -> None:
        self.store = store
        self._calls = OwnerCalls(
            node, BreakoutActions, local, "breakouts", timeout_s=timeout_s, place=place, placed=BREAKOUT_TRANSITIONS
        )

    async def start(self) -> None:
        await self._calls.start()

    async def stop(self) -> None:
        await self._calls.stop()

    async def _call(self, method: str, workshop_id: uuid.UUID, plan_id: uuid.UUID, *args: Any) -> PlanView:
        remote, view = await self._calls.call(method, workshop_id, plan_id, *args)
        if remote:
            return await self.store.get_plan(workshop_id, plan_id)
        found: PlanView = view
        return found

    async def open(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, duration_s: int | None, actor: Actor) -> PlanView:
        return await self._call("open", workshop_id, plan_id, duration_s, actor)

    async def extend(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, seconds: int, actor: Actor) -> PlanView:
        return await self._call("extend", workshop_id, plan_id, seconds, actor)

    async def close(
        self, workshop_id: uuid.UUID, plan_id: uuid.UUID, countdown_s: int | None, actor: Actor
    ) -> PlanView:
        return await self._call("close", workshop_id, plan_id, countdown_s, actor)

    async def broadcast(self, workshop_id: uuid.UUID, plan_id: uuid.UUID, text: str, actor: Actor) -> PlanView:
        return await self._call("broadcast", workshop_id, plan_id, text, actor)

    async def move(
        self, workshop_id: uuid.UUID, plan_id: uuid.UUID, participant_id: uuid.UUID, room_id: uuid.UUID, actor: Actor
    ) -> PlanView:
        return await self._call("move", workshop_id, plan_id, participant_id, room_id, actor)


class BusLobbyActions:
    """Implements `LobbyActions` for a node among several: the knocks wait on the workshop's owner."""

    def __init__(self, local: LobbyActions, node: Node, *, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self._calls = OwnerCalls(node, LobbyActions, local, "lobby", timeout_s=timeout_s)

    async def start(self) -> None:
        await self._calls.start()

    async def stop(self) -> None:
        await self._calls.stop()

    async def knocks(self, workshop_id: str) -> list[Knock]:
        _, value = await self._calls.call("knocks", workshop_id)
        knocks: list[Knock] = value
        return knocks

    async def admit(self, workshop_id: str, selector: AdmitSelector, actor: ActorRef) -> int:
        _, value = await self._calls.call("admit", workshop_id, selector, actor)
        admitted: int = value
        return admitted

    async def deny(self, workshop_id: str, knock_id: str, actor: ActorRef, message: str | None) -> None:
        await self._calls.call("deny", workshop_id, knock_id, actor, message)


class BusRecordingActions:
    """Implements `RecordingActions` for a node among several: a recording starts, runs and stops on the
    workshop's owner (its recorder joins the owner's room). `serve` and `close` are its own lifecycle (the port
    has a `start` and a `stop` of its own)."""

    def __init__(
        self, local: RecordingActions, node: Node, *, timeout_s: float = COMMAND_TIMEOUT_S, place: Place | None = None
    ) -> None:
        self._calls = OwnerCalls(
            node, RecordingActions, local, "recordings", timeout_s=timeout_s, place=place, placed=frozenset({"start"})
        )

    async def serve(self) -> None:
        await self._calls.start()

    async def close(self) -> None:
        await self._calls.stop()

    async def start(self, workshop_id: uuid.UUID, room: RoomInfo, consent_mode: str, starter: Starter) -> uuid.UUID:
        _, value = await self._calls.call("start", workshop_id, room, consent_mode, starter)
        recording_id: uuid.UUID = value
        return recording_id

    async def stop(self, workshop_id: uuid.UUID, recording_id: uuid.UUID, reason: str | None, actor: Actor) -> None:
        await self._calls.call("stop", workshop_id, recording_id, reason, actor)

    async def recorder_peer(self, workshop_id: uuid.UUID, recording_id: uuid.UUID) -> str | None:
        _, value = await self._calls.call("recorder_peer", workshop_id, recording_id)
        peer: str | None = value
        return peer

    async def stop_workshop(self, workshop_id: uuid.UUID, actor: Actor) -> list[uuid.UUID]:
        _, value = await self._calls.call("stop_workshop", workshop_id, actor)
        ids: list[uuid.UUID] = value
        return ids


# What travels: every method of each port.
COMMANDS = methods_of(RoomCommands)
BREAKOUT_ACTIONS = methods_of(BreakoutActions)
LOBBY_ACTIONS = methods_of(LobbyActions)
RECORDING_ACTIONS = methods_of(RecordingActions)
