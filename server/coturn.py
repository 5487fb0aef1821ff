"""An embedded TURN server: Debian's coturn, configured and supervised by Roundtable (as the embedded
PostgreSQL and Janus are), for `make run` on a host that clients behind strict NATs must reach.

Roundtable writes the configuration (the TURN REST scheme: `use-auth-secret` with the secret it mints
credentials from, see signaling/turn.py), starts `turnserver` as a child process, waits until it answers
a STUN binding request, and stops it on shutdown. It never uses /etc/turnserver.conf or the system service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import secrets
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 0.25
STUN_MAGIC = 0x2112A442
UNPRIVILEGED_USER = "turnserver"  # created by Debian's package
# Peers a relay must never reach on a real network (RFC 6890 special ranges); loopback is refused by
# coturn itself unless allow-loopback-peers.
DENIED_PEERS = (
    "0.0.0.0-0.255.255.255",
    "100.64.0.0-100.127.255.255",
    "169.254.0.0-169.254.255.255",
    "192.0.0.0-192.0.0.255",
    "198.18.0.0-198.19.255.255",
    "240.0.0.0-255.255.255.255",
    "::1",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)


class CoturnError(RuntimeError):
    pass


@dataclass(frozen=True)
class CoturnConfig:
    secret: str
    listen_ip: str = "127.0.0.1"
    port: int = 3478
    relay_ip: str | None = None  # default: listen_ip
    external_ip: str | None = None  # the public address, when the host is behind a 1:1 NAT
    min_port: int = 49160
    max_port: int = 49200
    realm: str = "roundtable"
    allow_loopback_peers: bool = False  # tests only: peers on 127.x

    def urls(self) -> list[str]:
        host = self.external_ip or self.listen_ip
        host = f"[{host}]" if ":" in host else host
        return [f"turn:{host}:{self.port}?transport=udp", f"turn:{host}:{self.port}?transport=tcp"]

    def render(self, folder: Path) -> str:
        """turnserver.conf. One option a line and never a comment after a value: coturn would read it as
        part of the value."""
        lines = [
            f"listening-ip={self.listen_ip}",
            f"listening-port={self.port}",
            f"relay-ip={self.relay_ip or self.listen_ip}",
            f"min-port={self.min_port}",
            f"max-port={self.max_port}",
            "use-auth-secret",
            f"static-auth-secret={self.secret}",
            f"realm={self.realm}",
            "fingerprint",
            "no-tls",
            "no-dtls",
            "no-cli",
            "no-multicast-peers",
            "no-software-attribute",
            "log-file=stdout",
            "simple-log",
            f"pidfile={folder / 'turnserver.pid'}",
        ]
        if self.external_ip:
            lines.append(f"external-ip={self.external_ip}/{self.relay_ip or self.listen_ip}")
        if self.allow_loopback_peers:
            lines.append("allow-loopback-peers")
        lines += [f"denied-peer-ip={r}" for r in DENIED_PEERS]
        if os.geteuid() == 0 and _user_exists(UNPRIVILEGED_USER):
            lines += [f"proc-user={UNPRIVILEGED_USER}", f"proc-group={UNPRIVILEGED_USER}"]
        return "\n".join(lines) + "\n"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class EmbeddedCoturn:
    """`turnserver -c <folder>/turnserver.conf`, its output in `<folder>/turnserver.log`."""

    def __init__(self, binary: str, folder: Path, config: CoturnConfig) -> None:
        self.binary = binary
        self.folder = folder
        self.config = config
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "turnserver.log"

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)  # coturn, once it drops to its own user, writes its pid file here
        conf = self.folder / "turnserver.conf"
        conf.touch(mode=0o600, exist_ok=True)
        conf.chmod(0o600)  # holds the secret; read before coturn drops its privileges
        conf.write_text(self.config.render(self.folder), encoding="utf-8")
        with self.log_path.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary,
                "-c",
                str(conf),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
            )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "started embedded TURN (coturn) on %s:%d, relaying on %s",
            self.config.listen_ip,
            self.config.port,
            self.config.relay_ip or self.config.listen_ip,
        )

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while not await stun_answers(self.config.listen_ip, self.config.port):
                    if self._proc.returncode is not None:
                        raise CoturnError(f"turnserver exited with {self._proc.returncode}: {self._tail()}")
                    await asyncio.sleep(0.05)  # paces the probe: a refused one returns at once
        except TimeoutError:
            raise CoturnError(f"turnserver did not answer within {START_TIMEOUT_S:g} s: {self._tail()}") from None

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            return " | ".join(lines[-3:])
        return "(no log)"

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.info("stopped embedded TURN (coturn)")


async def stun_answers(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """One STUN binding request over UDP (RFC 8489); True when a binding response comes back in time."""
    loop = asyncio.get_running_loop()
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", 0x0001, 0, STUN_MAGIC) + transaction
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            await loop.sock_sendto(sock, request, (host, port))
            async with asyncio.timeout(timeout_s):
                while True:
                    data = await loop.sock_recv(sock, 2048)
                    if len(data) >= 20 and data[0:2] == b"\x01\x01" and data[8:20] == transaction:
                        return True
        except (TimeoutError, OSError):  # nobody listening yet: ICMP refusal or silence
            return False
