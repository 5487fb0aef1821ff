"""A WebSocket client on a bare TCP stream, for tests that need a peer to misbehave at the socket level:
stop reading (so pings go unanswered) or vanish without a close frame."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
from typing import Any

OP_TEXT = 0x1
OP_CLOSE = 0x8


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int, path: str = "/ws", *, timeout: float = 10.0) -> RawWebSocket:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                (
                    f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send_json(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        if len(payload) < 126:
            header = struct.pack("!BB", 0x80 | OP_TEXT, 0x80 | len(payload))
        else:
            header = struct.pack("!BBH", 0x80 | OP_TEXT, 0x80 | 126, len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)
        await self.writer.drain()

    async def recv_json(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next text frame as JSON (pings and pongs are skipped, and not answered)."""
        async with asyncio.timeout(timeout):
            while True:
                first, second = await self.reader.readexactly(2)
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
                payload = await self.reader.readexactly(length)
                opcode = first & 0x0F
                if opcode == OP_TEXT:
                    data: dict[str, Any] = json.loads(payload)
                    return data
                if opcode == OP_CLOSE:
                    raise ConnectionError(f"closed by the server: {payload[:2].hex()}")

    def abort(self) -> None:
        """Vanish: no close frame, a reset instead of a FIN."""
        transport = self.writer.transport
        transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
