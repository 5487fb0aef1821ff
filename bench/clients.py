"""The load generator's side of the wire: one `Wire` per server protocol, a `Client` per WebSocket.

Relayed payloads carry a marker `~SEQ:<n>~` (inside the ICE candidate string or an SDP line), so a receiver
finds which message arrived with one `str.find`, whatever the protocol wraps around it. Everything connects to
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

MARK = "~SEQ:"
JOIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Ident:
    """Who a client is: the peer id others see, what it says in hello (or the PeerJS token), its room."""

    peer_id: str
    token: str
    room: str


def seq_of(text: str) -> int:
    """The sequence number of a relayed message, -1 when it carries none."""
    i = text.find(MARK)
    if i < 0:
        return -1
    i += len(MARK)
    return int(text[i : text.index("~", i)])


def _sdp(size: int) -> str:
    """A plausible audio+video offer of about `size` characters, with the marker in its o= line."""
    lines = [
        "v=0",
        f"o=- {MARK}0~ 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS stream",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:4ZcD",
        "a=ice-pwd:2/1muCWoOi3uLifh0NuRHlOs",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58"
        ":D0:A1:2C:19:08",
        "a=setup:actpass",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=sendrecv",
        "a=msid:stream audio0",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 98 99 100 101",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=mid:1",
        "a=sendrecv",
        "a=msid:stream video0",
        "a=rtcp-mux",
        "a=rtcp-rsize",
    ]
    codecs = ["VP8/90000", "rtx/90000", "H264/90000", "rtx/90000", "VP9/90000", "rtx/90000", "AV1/90000"]
    pt = 96
    while len("\r\n".join(lines)) < size - 120:
        codec = codecs[pt % len(codecs)]
        lines += [
            f"a=rtpmap:{pt} {codec}",
            f"a=rtcp-fb:{pt} goog-remb",
            f"a=rtcp-fb:{pt} nack pli",
            f"a=fmtp:{pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ]
        pt += 1
    lines.append("a=ssrc-group:FID 1111111111 2222222222")
    text = "\r\n".join(lines) + "\r\n"
    return text[: size - 2] + "\r\n" if len(text) > size else text


SDP_TEMPLATE = _sdp(3000)
CANDIDATE_TEMPLATE = (
    "candidate:842163049 1 udp 1677729535 203.0.113.7 50123 typ srflx raddr 10.0.0.5 rport 50123 "
    f"generation 0 ufrag 4ZcD network-cost 999 {MARK}0~"
)


def _split(template_json: str) -> tuple[str, str]:
    """Cut a JSON text around the marker's number, so a message is head + str(seq) + tail."""
    i = template_json.index(MARK) + len(MARK)
    return template_json[:i], template_json[template_json.index("~", i) :]


class Wire:
    """What differs between the servers' protocols, as prebuilt text."""

    name = ""
    has_rooms = True

    def url(self, base: str, ident: Ident) -> str:
        return base + "/ws"

    def hello(self, ident: Ident) -> str | None:
        return json.dumps({"type": "hello", "protocol": [1], "token": ident.token})

    def is_welcome(self, data: dict[str, Any]) -> bool:
        return data.get("type") == "welcome"

    def roster_of(self, welcome: dict[str, Any]) -> set[str]:
        return {p["id"] for p in welcome.get("peers", [])}

    def relay_parts(self, kind: str, to: str) -> tuple[str, str]:
        """(head, tail) of a relayed `kind` ("candidate" or "offer") message to `to`."""
        if kind == "candidate":
            ice = {"candidate": CANDIDATE_TEMPLATE, "sdpMid": "0", "sdpMLineIndex": 0}
            return _split(json.dumps({"type": "candidate", "to": to, "candidate": ice}))
        return _split(json.dumps({"type": "offer", "to": to, "sdp": SDP_TEMPLATE}))

    def update(self, hand: bool) -> str:
        return '{"type":"update","hand":true}' if hand else '{"type":"update","hand":false}'

    def leave(self) -> str | None:
        return '{"type":"leave"}'


class RoundtableWire(Wire):
    name = "roundtable"


class BareWire(Wire):
    name = "bare"


class PeerJsWire(Wire):
    name = "peerjs"
    has_rooms = False

    def url(self, base: str, ident: Ident) -> str:
        return f"{base}/peerjs?key=peerjs&id={ident.peer_id}&token={ident.token}"

    def hello(self, ident: Ident) -> str | None:
        return None  # the id and token travel in the URL; the server answers OPEN

    def is_welcome(self, data: dict[str, Any]) -> bool:
        return data.get("type") == "OPEN"

    def roster_of(self, welcome: dict[str, Any]) -> set[str]:
        return set()

    def relay_parts(self, kind: str, to: str) -> tuple[str, str]:
        # What the PeerJS client library sends for a media connection.
        if kind == "candidate":
            ice = {"candidate": CANDIDATE_TEMPLATE, "sdpMid": "0", "sdpMLineIndex": 0}
            payload: dict[str, Any] = {"candidate": ice, "type": "media", "connectionId": "mc_bench0123456789"}
            return _split(json.dumps({"type": "CANDIDATE", "dst": to, "payload": payload}))
        payload = {"sdp": {"type": "offer", "sdp": SDP_TEMPLATE}, "type": "media", "connectionId": "mc_bench0123456789"}
        return _split(json.dumps({"type": "OFFER", "dst": to, "payload": payload}))

    def update(self, hand: bool) -> str:
        raise NotImplementedError("PeerJS has no rooms, so no presence fan-out")

    def leave(self) -> str | None:
        return None


WIRES: dict[str, Wire] = {w.name: w for w in (RoundtableWire(), BareWire(), PeerJsWire())}

Sink = Callable[["Client", str, int], None]


class JoinError(Exception):
    pass


@dataclass(eq=False)
class Client:
    """One WebSocket of the load generator. Its reader hands every text frame to `sink` with the arrival time."""

    ident: Ident
    wire: Wire
    ws: aiohttp.ClientWebSocketResponse | None = None
    welcome: dict[str, Any] = field(default_factory=dict)
    roster: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    sink: Sink | None = None
    reader: asyncio.Task[None] | None = None
    close_code: int | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def join(self, session: aiohttp.ClientSession, base: str) -> float:
        """Connect, say hello, wait for welcome (OPEN for PeerJS); the seconds it took."""
        start = time.perf_counter()
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            self.ws = await session.ws_connect(self.wire.url(base, self.ident), max_msg_size=4 * 1024 * 1024)
            hello = self.wire.hello(self.ident)
            if hello is not None:
                await self.ws.send_str(hello)
            msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise JoinError(f"{self.ident.peer_id}: {msg.type.name} {self.ws.close_code} {msg.extra}")
        data = json.loads(msg.data)
        if not self.wire.is_welcome(data):
            raise JoinError(f"{self.ident.peer_id}: first message {str(msg.data)[:200]}")
        self.welcome = data
        self.roster = self.wire.roster_of(data)
        self.ended = asyncio.Event()
        self.reader = asyncio.create_task(self._read(), name=f"read-{self.ident.peer_id}")
        return time.perf_counter() - start

    async def _read(self) -> None:
        ws = self.ws
        assert ws is not None
        try:
            async for msg in ws:  # autoping answers the server's pings here
                if msg.type == aiohttp.WSMsgType.TEXT:
                    now = time.perf_counter_ns()
                    sink = self.sink
                    if sink is None:
                        self.presence(msg.data)
                    else:
                        sink(self, msg.data, now)
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self.close_code = ws.close_code
            self.ended.set()

    def presence(self, text: str) -> None:
        """The default sink: keep the roster and count message types."""
        data = json.loads(text)
        kind = data.get("type", "?")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "peer_joined":
            self.roster.add(data["peer"]["id"])
        elif kind == "peer_left":
            self.roster.discard(data["peer_id"])

    @property
    def open(self) -> bool:
        return self.ws is not None and not self.ws.closed and not self.ended.is_set()

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def leave(self, timeout: float = 10.0) -> None:
        """Say leave (where the protocol has it) and wait for the server to close; then release the socket."""
        if self.ws is None:
            return
        text = self.wire.leave()
        try:
            if text is not None and not self.ws.closed:
                await self.ws.send_str(text)
                async with asyncio.timeout(timeout):
                    await self.ended.wait()
        except (TimeoutError, ConnectionError, aiohttp.ClientError):
            pass
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            try:
                async with asyncio.timeout(5):
                    await self.ws.close()
            except (TimeoutError, ConnectionError, aiohttp.ClientError):
                pass
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


async def join_all(
    clients: list[Client], session: aiohttp.ClientSession, base: str, *, in_flight: int
) -> tuple[list[float], list[str]]:
    """Join every client with at most `in_flight` joins pending; (join seconds, errors)."""
    gate = asyncio.Semaphore(in_flight)
    times: list[float] = []
    errors: list[str] = []

    async def one(client: Client) -> None:
        async with gate:
            try:
                times.append(await client.join(session, base))
            except (JoinError, TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])

    await asyncio.gather(*(one(c) for c in clients))
    return times, errors


async def leave_all(clients: list[Client], *, in_flight: int = 200) -> None:
    gate = asyncio.Semaphore(in_flight)

    async def one(client: Client) -> None:
        async with gate:
            await client.leave()

    await asyncio.gather(*(one(c) for c in clients))


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))


# A receiver that stops reading --------------------------------------------------------------------------------


class StuckReceiver:
    """A raw WebSocket client that joins and then never reads again.

    Its receive buffer is set to 4 KiB before connecting, so the server's socket fills within kilobytes instead of
    megabytes of kernel buffering; what happens next is up to the server."""

    def __init__(self, host: str, port: int, path: str, hello: str | None, rcvbuf: int = 4096) -> None:
        self.host, self.port, self.path, self.hello, self.rcvbuf = host, port, path, hello, rcvbuf
        self.sock: socket.socket | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.setblocking(False)
        self.sock = sock
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            await loop.sock_connect(sock, (self.host, self.port))
            request = (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            )
            await loop.sock_sendall(sock, request.encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += await loop.sock_recv(sock, 4096)
            if b" 101 " not in buf.split(b"\r\n", 1)[0]:
                raise JoinError(f"stuck receiver: upgrade refused: {buf[:80]!r}")
            if self.hello is not None:
                await loop.sock_sendall(sock, masked_text_frame(self.hello))
            while b'"welcome"' not in buf and b'"OPEN"' not in buf:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    raise JoinError("stuck receiver: closed before welcome")
                buf += chunk
        # From here on nothing reads this socket until drain().

    async def drain(self, timeout_s: float = 3.0, max_bytes: int = 64 * 1024 * 1024) -> tuple[int, int | None, bool]:
        """Read what the server left for us: (bytes, close code seen or None, server closed the TCP connection)."""
        loop = asyncio.get_running_loop()
        assert self.sock is not None
        data = bytearray()
        eof = False
        try:
            async with asyncio.timeout(timeout_s):
                while len(data) < max_bytes:
                    chunk = await loop.sock_recv(self.sock, 256 * 1024)
                    if not chunk:
                        eof = True
                        break
                    data += chunk
        except (TimeoutError, ConnectionError):
            pass
        return len(data), _close_code(bytes(data)), eof

    def abort(self) -> None:
        if self.sock is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.sock.close()
            self.sock = None


def masked_text_frame(text: str) -> bytes:
    """A client text frame. The mask key is zero, which RFC 6455 allows: the payload goes as it is."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes([0x81, 0x80 | n])
    elif n < 65536:
        header = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


def _close_code(data: bytes) -> int | None:
    """Walk the server's (unmasked) frames and return the close code, if a close frame is among them."""
    i = 0
    while i + 2 <= len(data):
        opcode = data[i] & 0x0F
        n = data[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            n, j = int.from_bytes(data[j : j + 2], "big"), j + 2
        elif n == 127:
            n, j = int.from_bytes(data[j : j + 8], "big"), j + 8
        if j + n > len(data):
            return None
        if opcode == 0x8:
            return int.from_bytes(data[j : j + 2], "big") if n >= 2 else 1005
        i = j + n
    return None
