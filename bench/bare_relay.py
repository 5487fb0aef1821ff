"""The bare relay: Roundtable's wire messages with nothing else, the reference for what Python can do.

Rooms live in a dict, nothing is persisted or validated, the hello token is the peer id, and the room is the
part of the peer id before its last '-' ("r0007-p03" is in room "r0007"). Messages: hello → welcome;
peer_joined / peer_left / peer_updated to the room; offer / answer / candidate relayed with `from` stamped;
leave → bye. Sends go straight to the socket (`await ws.send_str`), no per-connection queue: the simplest
thing, and the one a stuck receiver can stall (W6 shows it).

    python -m bench.bare_relay --port 8090
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging

from aiohttp import WSMsgType, web

RELAYED = frozenset({"offer", "answer", "candidate"})


class Relay:
    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, web.WebSocketResponse]] = {}
        self.states: dict[str, dict[str, bool]] = {}

    async def broadcast(self, room: dict[str, web.WebSocketResponse], text: str, skip: str | None) -> None:
        for peer, ws in list(room.items()):
            if peer != skip and not ws.closed:
                await ws.send_str(text)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=1024 * 1024, compress=False)
        await ws.prepare(request)
        try:
            first = await ws.receive(timeout=10.0)
        except TimeoutError:
            await ws.close(code=4400, message=b"no hello")
            return ws
        if first.type != WSMsgType.TEXT:
            return ws
        hello = json.loads(first.data)
        peer = hello["token"]
        room_id = peer.rpartition("-")[0] or "lobby"
        room = self.rooms.setdefault(room_id, {})
        old = room.get(peer)
        if old is not None:
            await old.close(code=4409, message=b"replaced")
        state = self.states[peer] = {"audio": True, "video": True, "screen": False, "hand": False}
        joined = json.dumps({"type": "peer_joined", "peer": {"id": peer, "state": state}})
        await self.broadcast(room, joined, skip=peer)
        room[peer] = ws
        peers = [{"id": p, "state": self.states.get(p)} for p in room if p != peer]
        await ws.send_str(
            json.dumps({"type": "welcome", "self": {"id": peer}, "room": {"id": room_id}, "peers": peers})
        )
        reason = "disconnected"
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                kind = data.get("type")
                if kind in RELAYED:
                    target = room.get(data.pop("to", None))
                    if target is not None:
                        data["from"] = peer
                        await target.send_str(json.dumps(data))
                elif kind == "update":
                    state.update((k, v) for k, v in data.items() if k in state)
                    text = json.dumps({"type": "peer_updated", "peer": {"id": peer, "state": state}})
                    await self.broadcast(room, text, skip=None)
                elif kind == "leave":
                    reason = "left"
                    await ws.send_str('{"type":"bye","reason":"left"}')
                    await ws.close(code=1000)
                    break
        finally:
            if room.get(peer) is ws:
                del room[peer]
                self.states.pop(peer, None)
                if not room:
                    del self.rooms[room_id]
                left = json.dumps({"type": "peer_left", "peer_id": peer, "reason": reason})
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.broadcast(room, left, skip=peer)
        return ws


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    relay = Relay()
    app = web.Application()
    app.router.add_get("/ws", relay.handle)
    app.router.add_get("/healthz", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_relay", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None, shutdown_timeout=5)


if __name__ == "__main__":
    main()
