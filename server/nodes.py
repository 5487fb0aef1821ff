"""This process as one node of a deployment: its id, its bus and its leases (docs/scaling.md).

With no ROUNDTABLE_BUS_URL the node is alone: an in-process bus, and a LeaseKeeper that registers the node and
beats its row (no workshop is leased yet: the hub does not ask for leases until forwarding lands). With a bus URL,
the node connects to NATS at start (failing the start when it does not answer) and stays up across bus outages,
saying so in /readyz.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from server.leases import LeaseKeeper, NodeInfo
from signaling.bus import Bus, InProcessBus

log = logging.getLogger(__name__)

BusEngine = Literal["in_process", "nats"]


def new_node_id() -> str:
    """Unique per process start (host, pid and a random tail): a restarted process is a new node."""
    host = socket.gethostname().split(".")[0][:60] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class Node:
    info: NodeInfo
    bus: Bus
    engine: BusEngine
    leases: LeaseKeeper


async def open_bus(url: str | None, *, name: str) -> tuple[Bus, BusEngine]:
    """The bus ROUNDTABLE_BUS_URL names, or the in-process one."""
    if url is None:
        return InProcessBus(), "in_process"
    # Imported here: a one-node install never needs the NATS client.
    from server.bus_nats import NatsBus

    return await NatsBus.connect(url, name=name), "nats"


async def node_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: connect the bus and register the node; at shutdown release its leases, then disconnect."""
    from server import keys  # keys names Node: imported here, not at the top, to keep the import one-way

    settings = app[keys.SETTINGS]
    sfu = app.get(keys.SFU)
    info = NodeInfo(
        id=new_node_id(),
        address=f"{settings.host}:{settings.port}",
        janus_url=sfu.endpoint.url if sfu is not None else None,
        max_workshops=settings.node_max_workshops,
    )
    bus, engine = await open_bus(settings.bus_url, name=f"roundtable {info.id}")
    try:
        keeper = LeaseKeeper(
            app[keys.POOL],
            info,
            ttl_s=settings.lease_ttl_s,
            healthy=lambda: bus.connected,
            janus_rooms=lambda: sfu.rooms_on(sfu.endpoint.url) if sfu is not None else None,
        )
        await keeper.register()
        keeper.start()
        app[keys.NODE] = Node(info=info, bus=bus, engine=engine, leases=keeper)
        log.info("node %s up (bus: %s)", info.id, engine)
        try:
            yield
        finally:
            await keeper.close()
            try:
                await keeper.drain()
            except Exception as exc:  # the database may be gone at shutdown: the leases then lapse by themselves
                log.warning("node %s: releasing its leases failed (%s); they lapse on their own", info.id, exc)
    finally:
        await bus.close()
