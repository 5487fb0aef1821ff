"""`RoomCommands` (and the breakouts' live actions) across nodes: a command goes to the workshop's owner by
request/reply on the bus (`rt.node.<owner>.cmd`, `rt.node.<owner>.breakouts`), and runs here when this node owns
the workshop or nobody does (then nobody is live, and the local rooms answer as an empty owner would: False, 0,
nothing).

Arguments and results travel as JSON through pydantic `TypeAdapter`s built from `LocalRoomCommands`' own
annotations, so a new command needs no code here beyond its one-line method. A `ServiceError` raised on the owner
is raised again here with its class and message; an owner that does not answer is `Unavailable` (503).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any, get_type_hints

from pydantic import TypeAdapter

from server.nodes import Node
from signaling.audit import Actor
from signaling.breakout_actions import BreakoutActions
from signaling.breakout_store import BreakoutStore, PlanView
from signaling.bus import BusUnavailable, Message, Subscription
from signaling.commands import FloorHow, Kind, LivePresence, LocalRoomCommands
from signaling.errors import Internal, ServiceError, Unavailable
from signaling.protocol import RoomInfo, Sender
from signaling.rooms import Profile

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0


def command_subject(node_id: str) -> str:
    return f"rt.node.{node_id}.cmd"


def breakouts_subject(node_id: str) -> str:
    return f"rt.node.{node_id}.breakouts"


@cache
def _shape(name: str, cls: type = LocalRoomCommands) -> tuple[inspect.Signature, dict[str, TypeAdapter[Any]], Any]:
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


def _error_of(answer: dict[str, Any], classes: dict[str, type[ServiceError]]) -> ServiceError:
    return classes.get(str(answer["error"]), Internal)(str(answer.get("message", "")))


async def _ask_owner(node: Node, subject: str, data: bytes, timeout_s: float) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = json.loads(await node.bus.request(subject, data, timeout_s=timeout_s))
    except BusUnavailable as exc:
        raise Unavailable(f"the workshop's node did not answer: {exc.message}") from exc
    if answer.get("not_owner"):
        raise NotOwner
    return answer


def _errors() -> dict[str, type[ServiceError]]:
    found: dict[str, type[ServiceError]] = {}
    pending: list[type[ServiceError]] = list(ServiceError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


class NotOwner(Exception):
    """The node asked does not hold the workshop's lease (any more)."""


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
        self.local = local
        self.node = node
        self.timeout_s = timeout_s
        # Run on the owner before a command from another node: that node changed PostgreSQL first (a revoke, a
        # new room), which this node's caches have not seen.
        self.before_remote = before_remote
        self._sub: Subscription | None = None
        self._error_classes = _errors()

    async def start(self) -> None:
        self._sub = await self.node.bus.subscribe(command_subject(self.node.info.id), self._serve)

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(BusUnavailable):
                await self._sub.unsubscribe()

    async def _call(self, name: str, workshop_id: str, *args: Any, **kwargs: Any) -> Any:
        for _attempt in range(3):
            owner = await owner_to_ask(self.node, workshop_id)
            if owner is None:
                return await getattr(self.local, name)(workshop_id, *args, **kwargs)
            try:
                return await self._ask(owner, name, workshop_id, *args, **kwargs)
            except NotOwner:
                continue  # the lease moved between our read and its answer: read it again
        raise Unavailable("the workshop is moving between nodes; try again")

    async def _ask(self, owner: str, name: str, *args: Any, **kwargs: Any) -> Any:
        signature, params, result = _shape(name)
        bound = signature.bind(self.local, *args, **kwargs).arguments
        payload = {p: params[p].dump_python(v, mode="json") for p, v in bound.items() if p != "self"}
        data = json.dumps({"command": name, "args": payload}).encode()
        answer = await _ask_owner(self.node, command_subject(owner), data, self.timeout_s)
        if "error" in answer:
            raise _error_of(answer, self._error_classes)
        return result.validate_python(answer.get("result"))

    async def _serve(self, message: Message) -> None:
        """A command from another node, for a workshop it believes this node owns."""
        bus = self.node.bus
        try:
            request = json.loads(message.data)
            name = request["command"]
            signature, params, result = _shape(name) if name in COMMANDS else (None, {}, None)
            if signature is None or result is None:
                raise ValueError(f"unknown command {name!r}")
            args = {p: params[p].validate_python(v) for p, v in request["args"].items()}
            workshop_id = uuid.UUID(args["workshop_id"])
        except Exception as exc:
            log.warning("a bus command could not be read: %r", exc)
            await bus.reply(message, json.dumps({"error": "invalid_argument", "message": "bad command"}).encode())
            return
        if self.node.leases.fence(workshop_id) is None:
            await bus.reply(message, b'{"not_owner": true}')
            return
        self.before_remote()
        try:
            value = await getattr(self.local, name)(**args)
            answer: dict[str, Any] = {"result": result.dump_python(value, mode="json")}
        except ServiceError as exc:
            answer = {"error": exc.code, "message": exc.message}
        except Exception:
            log.exception("bus command %s failed", name)
            answer = {"error": "internal", "message": "internal error"}
        await bus.reply(message, json.dumps(answer).encode())

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


# The commands that travel: every public coroutine of LocalRoomCommands (the RoomCommands protocol).
COMMANDS = frozenset(
    name
    for name, member in inspect.getmembers(LocalRoomCommands, inspect.iscoroutinefunction)
    if not name.startswith("_")
)


class BusBreakoutActions:
    """Implements `BreakoutActions` for a node among several: the breakouts' live actions run on the workshop's
    owner, whose coordinator moves its members and arms the deadline; the caller then reads the plan as the owner
    left it in PostgreSQL (the view itself holds database rows, which do not travel)."""

    def __init__(
        self, local: BreakoutActions, store: BreakoutStore, node: Node, *, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> None:
        self.local = local
        self.store = store
        self.node = node
        self.timeout_s = timeout_s
        self._sub: Subscription | None = None
        self._error_classes = _errors()

    async def start(self) -> None:
        self._sub = await self.node.bus.subscribe(breakouts_subject(self.node.info.id), self._serve)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(BusUnavailable):
                await self._sub.unsubscribe()

    async def _call(self, name: str, workshop_id: uuid.UUID, plan_id: uuid.UUID, *args: Any) -> PlanView:
        signature, params, _ = _shape(name, BreakoutActions)
        bound = signature.bind(self.local, workshop_id, plan_id, *args).arguments
        for _attempt in range(3):
            owner = await owner_to_ask(self.node, workshop_id)
            if owner is None:
                view: PlanView = await getattr(self.local, name)(workshop_id, plan_id, *args)
                return view
            payload = {p: params[p].dump_python(v, mode="json") for p, v in bound.items() if p != "self"}
            data = json.dumps({"action": name, "args": payload}).encode()
            try:
                answer = await _ask_owner(self.node, breakouts_subject(owner), data, self.timeout_s)
            except NotOwner:
                continue
            if "error" in answer:
                raise _error_of(answer, self._error_classes)
            return await self.store.get_plan(workshop_id, plan_id)
        raise Unavailable("the workshop is moving between nodes; try again")

    async def _serve(self, message: Message) -> None:
        bus = self.node.bus
        try:
            request = json.loads(message.data)
            name = request["action"]
            if name not in BREAKOUT_ACTIONS:
                raise ValueError(f"unknown breakout action {name!r}")
            _, params, _ = _shape(name, BreakoutActions)
            args = {p: params[p].validate_python(v) for p, v in request["args"].items()}
            workshop_id: uuid.UUID = args["workshop_id"]
        except Exception as exc:
            log.warning("a bus breakout action could not be read: %r", exc)
            await bus.reply(message, json.dumps({"error": "invalid_argument", "message": "bad action"}).encode())
            return
        if self.node.leases.fence(workshop_id) is None:
            await bus.reply(message, b'{"not_owner": true}')
            return
        answer: dict[str, Any] = {"ok": True}
        try:
            await getattr(self.local, name)(**args)
        except ServiceError as exc:
            answer = {"error": exc.code, "message": exc.message}
        except Exception:
            log.exception("bus breakout action %s failed", name)
            answer = {"error": "internal", "message": "internal error"}
        await bus.reply(message, json.dumps(answer).encode())

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


BREAKOUT_ACTIONS = frozenset({"open", "extend", "close", "broadcast", "move"})
