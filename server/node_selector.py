"""Which node owns a new workshop: the least loaded one (docs/scaling.md, "Which node owns a workshop").

The idea is LiveKit's node selector (pkg/routing/selector: the available nodes sorted by load, a soft limit): every
node publishes its load in PostgreSQL, and a node that is about to take the lease of a workshop nobody holds (its
first session arrives, or an HTTP action that needs an owner) first asks the least loaded live, non-draining node
to take it instead, over the bus (`rt.node.<id>.adopt`). Only with a bus server: a node alone has nobody to ask.

- **Load** = sessions + WORKSHOP_WEIGHT * workshops. `sessions` are those the node serves (its own sockets' and
  those forwarded to it: `Router.sessions`), published at every lease renewal (`nodes.sessions`, migration 0023);
  `workshops` are the live leases it holds, counted from `workshop_leases`, exact at every moment, so that several
  workshops placed within one renewal do not all go to the same node. This node's own load is read from memory.
- **A clear margin:** the workshop is handed away only when the lightest other node is lighter than this one by at
  least `margin` (ROUNDTABLE_NODE_LOAD_MARGIN); equal loads keep it here, so workshops do not bounce between nodes.
  Ties between other nodes go to the smaller node id.
- **A soft limit** (ROUNDTABLE_NODE_MAX_WORKSHOPS): a node holding that many workshops is never chosen, refuses
  to adopt, and hands every new workshop away (it still takes one when nobody else can).
- **Never in the way of a join:** the adopt request is bounded (ADOPT_TIMEOUT_S); a refusal, a timeout or no
  responders make this node take the lease as before. The lease stays the only arbiter: an adopter that answers too
  late finds the lease taken and takes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from server.nodes import Node
from signaling.bus import BusUnavailable, Message, Subscription
from signaling.tasks import OwnedTasks

log = logging.getLogger(__name__)

WORKSHOP_WEIGHT = 10  # a workshop counts as ten sessions: its timers, lease and stage, and the members it will have
DEFAULT_MARGIN = WORKSHOP_WEIGHT  # hand a workshop away only to a node lighter by about one workshop
ADOPT_TIMEOUT_S = 1.0

# The other nodes that may adopt a workshop: seen within the lease TTL (a dead node's leases lapse in that time
# too), not draining; the workshops each holds, from its live leases.
LOADS = """
SELECT n.id, n.sessions, n.max_workshops,
    (SELECT count(*) FROM workshop_leases AS l WHERE l.node_id = n.id AND l.expires_at > now()) AS workshops
FROM nodes AS n
WHERE n.id <> $1 AND NOT n.draining AND n.seen_at > now() - make_interval(secs => $2)
"""


def adopt_subject(node_id: str) -> str:
    return f"rt.node.{node_id}.adopt"


@dataclass(frozen=True)
class NodeLoad:
    node_id: str
    sessions: int
    workshops: int
    max_workshops: int | None = None
    draining: bool = False

    @property
    def load(self) -> int:
        return self.sessions + WORKSHOP_WEIGHT * self.workshops

    @property
    def full(self) -> bool:
        """At or over its soft limit: it takes no new workshop."""
        return self.max_workshops is not None and self.workshops >= self.max_workshops

    @property
    def accepting(self) -> bool:
        return not self.full and not self.draining


def choose(me: NodeLoad, others: Sequence[NodeLoad], *, margin: int) -> str | None:
    """The node to hand a new workshop to, or None to take it here.

    The lightest other node that is not full (ties: the smaller id) when it is lighter than this one by at least
    `margin`, or whenever this node is full or draining; None when no other node may take it."""
    candidates = [o for o in others if o.node_id != me.node_id and o.accepting]
    if not candidates:
        return None
    best = min(candidates, key=lambda o: (o.load, o.node_id))
    if not me.accepting or best.load <= me.load - margin:
        return best.node_id
    return None


class Placement:
    """This node's side of the choice: asking another node to adopt a workshop, and adopting when asked."""

    def __init__(
        self,
        node: Node,
        *,
        sessions: Callable[[], int],
        margin: int = DEFAULT_MARGIN,
        adopt_timeout_s: float = ADOPT_TIMEOUT_S,
    ) -> None:
        if margin < 1:
            raise ValueError("margin must be at least 1: equal loads keep a workshop where it is")
        self.node = node
        self.sessions = sessions
        self.margin = margin
        self.adopt_timeout_s = adopt_timeout_s
        self._sub: Subscription | None = None
        self._tasks = OwnedTasks("placement", expected=(OSError, asyncpg.PostgresError, asyncpg.InterfaceError))
        # One placement at a time per workshop here: the first sessions of a workshop arriving together wait for
        # the one answer instead of each asking another node.
        self._placing: dict[uuid.UUID, asyncio.Future[str | None]] = {}

    @property
    def _me(self) -> str:
        return self.node.info.id

    async def start(self) -> None:
        self._sub = await self.node.bus.subscribe(adopt_subject(self._me), self._on_adopt)

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(BusUnavailable):
                await sub.unsubscribe()
        await self._tasks.cancel_all()

    def mine(self) -> NodeLoad:
        keeper = self.node.leases
        return NodeLoad(
            self._me, self.sessions(), len(keeper.held()), self.node.info.max_workshops, draining=keeper.draining
        )

    async def loads(self) -> list[NodeLoad]:
        """The other nodes that may adopt a workshop, with their published loads."""
        keeper = self.node.leases
        rows = await keeper.pool.fetch(LOADS, self._me, keeper.ttl_s)
        return [NodeLoad(r["id"], r["sessions"], r["workshops"], r["max_workshops"]) for r in rows]  # none draining

    # Asking ---------------------------------------------------------------------------------------

    async def place(self, workshop_id: uuid.UUID) -> str | None:
        """For a workshop nobody holds: the node that adopted it, or None (this node takes it as before, or the
        workshop has an owner already)."""
        pending = self._placing.get(workshop_id)
        if pending is None:
            pending = asyncio.ensure_future(self._place(workshop_id))
            self._placing[workshop_id] = pending
            pending.add_done_callback(lambda done: self._placed(workshop_id, done))
        return await asyncio.shield(pending)

    def _placed(self, workshop_id: uuid.UUID, done: asyncio.Future[str | None]) -> None:
        self._placing.pop(workshop_id, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter has it raised already

    async def _place(self, workshop_id: uuid.UUID) -> str | None:
        keeper = self.node.leases
        if not self.node.bus.connected or keeper.fence(workshop_id) is not None:
            return None
        if await keeper.owner(workshop_id) is not None:
            return None  # held, or lapsed: a takeover, which goes to whoever is first, as before
        chosen = choose(self.mine(), await self.loads(), margin=self.margin)
        if chosen is None:
            return None
        request = json.dumps({"workshop_id": str(workshop_id)}).encode()
        try:
            answer = json.loads(
                await self.node.bus.request(adopt_subject(chosen), request, timeout_s=self.adopt_timeout_s)
            )
        except (BusUnavailable, ValueError) as exc:
            log.info("node %s did not adopt workshop %s (%s): taking it here", chosen, workshop_id, exc)
            return None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            log.info("node %s refused to adopt workshop %s: taking it here", chosen, workshop_id)
            return None
        log.info(
            "workshop %s handed to node %s, the least loaded (fence %s)",
            workshop_id,
            chosen,
            answer.get("fence"),
            extra={"workshop_id": str(workshop_id)},
        )
        return chosen

    # Adopting -------------------------------------------------------------------------------------

    async def _on_adopt(self, message: Message) -> None:
        self._tasks.spawn(self._adopt(message), name="adopt")  # the lease's statement is not the bus's to wait on

    def refuses(self) -> str | None:
        """Why this node takes no workshop from another now, or None."""
        if self.node.leases.draining:
            return "draining"
        if not self.node.bus.connected:
            return "bus down"
        if self.mine().full:
            return "at its soft limit of workshops"
        return None

    async def _adopt(self, message: Message) -> None:
        try:
            workshop_id = uuid.UUID(json.loads(message.data)["workshop_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("an adopt request could not be read")
            return
        answer: dict[str, object] = {"ok": False}
        reason = self.refuses()
        if reason is None:
            fence = await self.node.leases.acquire(workshop_id)
            if fence is not None:
                answer = {"ok": True, "fence": fence.value}
            else:
                reason = "another node holds it"
        if reason is not None:
            log.info("adopting workshop %s refused: %s", workshop_id, reason, extra={"workshop_id": str(workshop_id)})
        with contextlib.suppress(BusUnavailable):
            await self.node.bus.reply(message, json.dumps(answer).encode())
