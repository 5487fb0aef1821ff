"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd in the test's event loop): what it received, and what it
answers to the next message."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Mailbox:
    messages: asyncio.Queue[EmailMessage] = field(default_factory=asyncio.Queue)
    answer: str = "250 OK"  # what the server says to the next DATA: a 4xx or 5xx answer refuses the message
    port: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answer.startswith("250"):
            raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self.messages.put_nowait(parsed)
        return self.answer

    async def next(self, timeout_s: float = 15) -> EmailMessage:
        return await asyncio.wait_for(self.messages.get(), timeout_s)


@asynccontextmanager
async def smtp_server() -> AsyncIterator[Mailbox]:
    box = Mailbox()
    loop = asyncio.get_running_loop()
    # hostname given: aiosmtpd would otherwise ask getfqdn(), a DNS lookup.
    server = await loop.create_server(lambda: SMTP(box, hostname="localhost"), "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()
