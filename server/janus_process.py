"""The embedded SFU: a Janus process Roundtable configures, starts, watches and restarts.

Never Debian's /etc/janus (it listens everywhere with a well-known secret): the configuration is written
under DATA_DIR/janus with fresh random secrets (several nodes: derived from the shared secret key, so that other
nodes can use it), the API listens on 127.0.0.1 only (or ROUNDTABLE_SFU_API_ADDRESS), and only the VideoRoom
plugin and the WebSocket transport are loaded. Janus is GPL-3: we talk to it over its network API only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import secrets
import signal
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

log = logging.getLogger(__name__)

JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
SIOCGIFADDR = 0x8915
START_TIMEOUT_S = 15.0
RESTART_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# Folders Janus may never write recordings into.
PROTECTED = ", ".join(
    f'"{p}"' for p in ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr")
)


class SfuConfigError(Exception):
    """A setting the SFU cannot work with (the start stops with one line)."""


def default_route_address() -> str | None:
    """The IPv4 address of the interface that holds the default route, read from the kernel (no traffic)."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 0x2:
            return interface_address(fields[0])
    return None


def interface_address(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock, SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def address_is_local(address: str) -> bool:
    """Whether an interface of this host holds `address` (binding to it succeeds only then)."""
    try:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


def resolve_ice_address(configured: str | None) -> str:
    """The address Janus gathers candidates on; raises SfuConfigError with one clear line."""
    if configured:
        if not address_is_local(configured):
            raise SfuConfigError(f"ROUNDTABLE_SFU_ICE_ADDRESS={configured}: no interface of this host holds it")
        if configured.startswith("127.0.0.1") or configured == "::1":
            # Janus skips loopback interfaces; libnice would then fall back to every interface.
            raise SfuConfigError(
                f"ROUNDTABLE_SFU_ICE_ADDRESS={configured}: Janus cannot gather on the loopback interface"
            )
        return configured
    found = default_route_address()
    if not found:
        raise SfuConfigError("no default route to take the SFU's ICE address from; set ROUNDTABLE_SFU_ICE_ADDRESS")
    return found


def free_tcp_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class JanusTurn:
    server: str
    port: int
    transport: str
    user: str
    password: str


@dataclass(frozen=True)
class JanusConfig:
    ice_address: str
    rtp_ports: str
    ws_port: int
    api_secret: str
    admin_key: str
    public_address: str | None = None
    turn: JanusTurn | None = None
    api_address: str = "127.0.0.1"

    @property
    def url(self) -> str:
        host = f"[{self.api_address}]" if ":" in self.api_address else self.api_address
        return f"ws://{host}:{self.ws_port}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _others(folder: Path, keep: set[str]) -> str:
    """Every shared object in a Janus folder but the ones we keep (Janus loads all it finds)."""
    if not folder.is_dir():
        return ""
    names = sorted(p.name for p in folder.glob("*.so") if p.name not in keep)
    return ",".join(names)


def write_config(folder: Path, config: JanusConfig, *, lib: Path = JANUS_LIB) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    nat = [
        "\tnice_debug = false",
        f"\tice_enforce_list = {_quote(config.ice_address)}",
        "\tignore_mdns = true",
        "\tfull_trickle = false",
    ]
    if config.public_address:
        nat.append(f"\tnat_1_1_mapping = {_quote(config.public_address)}")
        nat.append("\tkeep_private_host = false")
    if config.turn:
        nat += [
            f"\tturn_server = {_quote(config.turn.server)}",
            f"\tturn_port = {config.turn.port}",
            f"\tturn_type = {_quote(config.turn.transport)}",
            f"\tturn_user = {_quote(config.turn.user)}",
            f"\tturn_pwd = {_quote(config.turn.password)}",
        ]
    core = f"""general: {{
\tconfigs_folder = {_quote(str(folder))}
\tplugins_folder = {_quote(str(lib / "plugins"))}
\ttransports_folder = {_quote(str(lib / "transports"))}
\tevents_folder = {_quote(str(lib / "events"))}
\tloggers_folder = {_quote(str(lib / "loggers"))}
\tdebug_level = 3
\tserver_name = "roundtable-sfu"
\tsession_timeout = 60
\tapi_secret = {_quote(config.api_secret)}
\ttoken_auth = false
\tadmin_secret = {_quote(secrets.token_urlsafe(24))}
\tinterface = {_quote(config.ice_address)}
\thide_dependencies = true
\tprotected_folders = [{PROTECTED}]
}}
certificates: {{
}}
media: {{
\tipv6 = false
\trtp_port_range = {_quote(config.rtp_ports)}
\tdtls_timeout = 500
\tno_media_timer = 2
}}
nat: {{
{chr(10).join(nat)}
}}
plugins: {{
\tdisable = {_quote(_others(lib / "plugins", {"libjanus_videoroom.so"}))}
}}
transports: {{
\tdisable = {_quote(_others(lib / "transports", {"libjanus_websockets.so"}))}
}}
loggers: {{
\tdisable = {_quote(_others(lib / "loggers", set()))}
}}
events: {{
\tbroadcast = false
}}
"""
    # On loopback, this host alone; on another address (several nodes reach it), the api_secret guards it.
    acl = '\tws_acl = "127.0.0.1"\n' if config.api_address == "127.0.0.1" else ""
    websockets = f"""general: {{
\tjson = "compact"
\tws = true
\tws_port = {config.ws_port}
\tws_ip = {_quote(config.api_address)}
{acl}\twss = false
}}
admin: {{
\tadmin_ws = false
\tadmin_wss = false
}}
"""
    videoroom = f"""general: {{
\tadmin_key = {_quote(config.admin_key)}
\tlock_rtp_forward = true
\tstring_ids = true
}}
"""
    for name, text in (
        ("janus.jcfg", core),
        ("janus.transport.websockets.jcfg", websockets),
        ("janus.plugin.videoroom.jcfg", videoroom),
    ):
        path = folder / name
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(text, encoding="utf-8")


class EmbeddedJanus:
    """One Janus process, restarted whenever it dies (or is declared unhealthy) until `stop`."""

    def __init__(self, binary: str, folder: Path, config: JanusConfig) -> None:
        self.binary = binary
        self.folder = folder
        self.config = config
        self.restarts = 0
        self._process: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self.on_restart: Callable[[], None] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    async def start(self) -> None:
        write_config(self.folder, self.config)
        await self._spawn()
        self._watch = asyncio.create_task(self._supervise(), name="janus-supervisor")

    async def _spawn(self) -> None:
        log_path = self.folder / "janus.log"
        with log_path.open("ab") as out:
            self._process = await asyncio.create_subprocess_exec(
                self.binary,
                "-F",
                str(self.folder),
                "-C",
                str(self.folder / "janus.jcfg"),
                "-o",  # no colours in the log
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to handle, not Janus's
                preexec_fn=_die_with_parent,
            )
        try:
            await self._wait_listening()
        except Exception:
            await self._kill()
            raise
        log.info("embedded Janus %s (pid %s), API on %s", self.binary, self._process.pid, self.config.url)

    async def _wait_listening(self) -> None:
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(
                        f"Janus exited at start with {self._process.returncode}: see {self.folder}/janus.log"
                    )
                try:
                    async with asyncio.timeout(1.0), http.ws_connect(self.config.url, protocols=("janus-protocol",)):
                        return
                except (OSError, aiohttp.ClientError, TimeoutError):
                    if loop.time() > deadline:
                        raise RuntimeError(
                            f"Janus did not listen on {self.config.url} within {START_TIMEOUT_S:.0f} s"
                        ) from None
                # Polling a port that is not open yet: nothing to wait on but time.
                await asyncio.sleep(0.05)

    async def _supervise(self) -> None:
        attempt = 0
        while not self._stopping:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            log.error("embedded Janus exited with %s; restarting it", code)
            while not self._stopping:
                await asyncio.sleep(RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)])
                attempt += 1
                try:
                    await self._spawn()
                except Exception as exc:
                    log.error("restarting Janus failed: %s", exc)
                    continue
                self.restarts += 1
                attempt = 0
                if self.on_restart is not None:
                    self.on_restart()
                break

    def unhealthy(self) -> None:
        """The API stopped answering although the process lives: kill it so that the supervisor restarts it."""
        if self._process is not None and self._process.returncode is None:
            log.error("embedded Janus stopped answering; killing it (pid %s)", self._process.pid)
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    async def _kill(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._kill()
        log.info("stopped embedded Janus")


def _die_with_parent() -> None:
    """In the child before exec: Janus gets SIGTERM when Roundtable dies, even by SIGKILL (Linux prctl)."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def new_config(
    *,
    ice_address: str,
    rtp_ports: str,
    public_address: str | None,
    turn: JanusTurn | None,
    api_address: str = "127.0.0.1",
    derive: Callable[[str], tuple[str, str]] | None = None,
) -> JanusConfig:
    """Fresh random secrets, or (several nodes) `derive(url)`: the (api_secret, admin_key) every node can compute."""
    config = JanusConfig(
        ice_address=ice_address,
        rtp_ports=rtp_ports,
        ws_port=free_tcp_port(api_address),
        api_secret=secrets.token_urlsafe(24),
        admin_key=secrets.token_urlsafe(24),
        public_address=public_address,
        turn=turn,
        api_address=api_address,
    )
    if derive is not None:
        api_secret, admin_key = derive(config.url)
        config = dataclasses.replace(config, api_secret=api_secret, admin_key=admin_key)
    return config


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
