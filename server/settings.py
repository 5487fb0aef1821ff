"""Settings from the environment (prefix ROUNDTABLE_), validated once at start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, HttpUrl, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROUNDTABLE_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("ROUNDTABLE_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL DSN; unset starts an embedded PostgreSQL under DATA_DIR.",
    )
    data_dir: Path = Path("./var")
    public_url: HttpUrl | None = Field(None, description="Base of every join_url; defaults to http://HOST:PORT.")
    admin_token: str | None = Field(None, min_length=16)
    secret_key: str | None = Field(None, min_length=32)
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object a line, for log pipelines.")

    # Join tokens stay valid this long after the workshop ends (and at least join_token_min_ttl_s).
    join_token_grace_s: int = Field(24 * 3600, ge=60)
    join_token_min_ttl_s: int = Field(3600, ge=60)
    plenary_capacity: int = Field(300, ge=1, le=10_000)
    breakout_capacity: int = Field(50, ge=1, le=10_000)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    header_timeout_s: float = Field(
        15.0, gt=0, description="A request's headers must arrive within this; also the keep-alive idle timeout."
    )
    clock_file: Path | None = Field(
        None,
        description="Tests only: read the time of the record (attendance, heartbeat) from this file, ISO 8601 with "
        "an offset, instead of the system clock.",
    )
    server_heartbeat_s: float = Field(
        10.0, ge=0.1, description="How often the server writes that it is alive (closes visits after a crash)."
    )
    agenda_tick_s: float = Field(
        1.0, ge=0.05, le=60, description="How often the agenda's scheduler looks for a session start or end due."
    )

    # Signalling
    ws_heartbeat_s: float = Field(10.0, gt=0)
    ws_max_message_bytes: int = Field(64 * 1024, ge=1024)
    ws_max_sdp_message_bytes: int = Field(
        256 * 1024, ge=1024, description="The larger limit of messages carrying an SDP (publish, subscription_answer)."
    )
    ws_hard_cap_bytes: int = Field(1024 * 1024, ge=1024)
    ws_send_queue: int = Field(256, ge=8, description="Outbound messages buffered per connection.")
    ws_rate_per_s: float = Field(50.0, gt=0)
    ws_rate_burst: int = Field(200, ge=1)
    resume_grace_s: float = Field(30.0, ge=0)
    chat_history: int = Field(50, ge=0, le=1000)
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated; empty allows same-origin and non-browser clients."
    )

    # Recordings
    recordings_dir: Path | None = Field(None, description="Where recording files live; default DATA_DIR/recordings.")
    recording_retention_days: int = Field(0, ge=0, description="Delete recordings older than this; 0 keeps them.")
    records_retention_days: int = Field(
        0,
        ge=0,
        le=36500,
        description="Days after a workshop ends that its attendance, chat and audit content are kept, unless the "
        "workshop says otherwise; 0 keeps them.",
    )
    audit_anchor_interval_s: float = Field(
        3600.0, ge=0, description="How often the heads of the audit chains are signed (when they moved); 0: never."
    )
    recording_min_free_bytes: int = Field(
        1 << 30, ge=0, description="Refuse to start a recording with less free disk than this; 0 never refuses."
    )
    composition_workers: int | None = Field(
        None,
        ge=0,
        le=64,
        description="Composer subprocesses at a time (docs/recordings.md#composed-video); default min(2, cores); "
        "0 runs none (jobs stay queued).",
    )
    composition_width: int = Field(960, ge=160, le=3840, multiple_of=16, description="Width of the composed video.")
    composition_height: int = Field(540, ge=90, le=2160, multiple_of=2, description="Height of the composed video.")
    composition_fps: int = Field(15, ge=5, le=30, description="Frames per second of the composed video.")
    composition_time_limit_s: float = Field(
        0.0, ge=0, description="A composer running longer is killed (failed); 0: 120 s plus 3x the recording's length."
    )
    composition_max_attempts: int = Field(
        3, ge=1, le=20, description="Runs of one composition started before a composer that keeps dying is given up."
    )
    composition_heartbeat_lapse_s: float = Field(
        60.0, gt=0, description="A running composition without a heartbeat for this long is queued again."
    )

    # Invitations and reminders by e-mail (docs/invitations.md). Unset SMTP_HOST: they are queued, not sent.
    smtp_host: str | None = Field(None, description="SMTP server for invitations and reminders; unset: none sent.")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS (port 587).")
    smtp_from: str = Field(
        "Roundtable <roundtable@localhost>", description="From: of every e-mail; also the calendar's ORGANIZER."
    )
    smtp_timeout_s: float = Field(30.0, gt=0, description="One SMTP exchange must finish within this.")
    invitation_max_attempts: int = Field(5, ge=1, le=100, description="Tries per e-mail before it is `failed`.")
    invitation_retry_s: float = Field(
        60.0, gt=0, description="Wait before the first retry of a failed send; doubled at each further try."
    )
    invitation_poll_s: float = Field(
        30.0, gt=0, description="How often the sender looks for due e-mails and reminders."
    )

    # Several nodes (docs/scaling.md). Unset BUS_URL: one node, with an in-process bus.
    bus_url: str | None = Field(
        None, description="The NATS server the nodes talk through (nats://host:4222); unset: one node, in-process bus."
    )
    lease_ttl_s: float = Field(
        6.0,  # with the keepalive below, a dead owner's clients are back within 10 s (W11, docs/benchmarks.md)
        ge=1,
        le=300,
        description="A workshop's owner must renew its lease within this, or another node may take the workshop over.",
    )
    lease_idle_s: float = Field(
        60.0,
        ge=0.1,
        le=86400,
        description="A node gives a workshop's lease back once the workshop has been quiet this long (no member, "
        "no place kept for the grace period, no knock, no running breakout plan, no live recording).",
    )
    node_load_margin: int = Field(
        10,  # server/node_selector.py DEFAULT_MARGIN: one workshop's weight
        ge=1,
        le=1_000_000,
        description="A node hands a workshop nobody owns to another node only when that node's load (sessions + "
        "10 per workshop) is lighter than its own by at least this much; equal loads keep it where it landed.",
    )
    node_max_workshops: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="A node's soft limit of workshops: holding this many, it adopts none from other nodes and hands "
        "every new one to another node (it still takes one when no other node can). Unset: no limit.",
    )
    node_sweep_s: float = Field(
        5.0,
        ge=0.1,
        le=3600,
        description="How often every node looks for what gone nodes left in workshops nobody took over (their "
        "recordings finalised, their visits closed); one node at a time does the work.",
    )
    forward_keepalive_s: float = Field(
        1.5,
        gt=0,
        le=60,
        description="A session forwarded between nodes is pinged this often; three silent intervals end it (the "
        "client is asked to reconnect at once, or the owner keeps the member's place for the resume grace period).",
    )

    # Operations
    metrics_token: str | None = Field(
        None, min_length=16, description="When set, GET /metrics needs it as a bearer token; unset, it is open."
    )

    # TURN: off (clients get TURN_URLS if set), or embedded (Roundtable runs Debian's coturn; see docs/operations.md).
    turn: Literal["off", "embedded"] = "off"
    turn_listen_ip: str = Field("127.0.0.1", description="Where the embedded coturn listens (its public address).")
    turn_port: int = Field(3478, ge=1, le=65535)
    turn_relay_ip: str | None = Field(None, description="Where it relays from; default TURN_LISTEN_IP.")
    turn_external_ip: str | None = Field(None, description="The public address when the host is behind a 1:1 NAT.")
    turn_relay_ports: str = Field("49160-49200", pattern=r"^\d{1,5}-\d{1,5}$")
    turn_install: bool = Field(True, description="Install Debian's coturn when it is missing (as root).")
    turn_allow_loopback_peers: bool = Field(False, description="Relay to 127.x peers: for tests only.")

    # ICE servers handed to clients in `welcome`.
    stun_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    turn_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    turn_secret: str | None = None
    turn_ttl_s: int = Field(6 * 3600, ge=60)
    ice_host_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses the server's own WebRTC peer (the recorder) gathers host candidates on; "
        "empty means every interface. 127.0.0.1 for a loopback-only host.",
    )

    # The SFU (Janus VideoRoom) for large rooms; see docs/sfu.md.
    sfu: Literal["auto", "off", "external"] = Field(
        "auto",
        description="auto: an embedded Janus when it can be had, else mesh only; off: mesh only; external: SFU_URL.",
    )
    sfu_url: str | None = Field(None, description="Janus WebSocket API (ws://host:8188) when SFU=external.")
    sfu_api_secret: str | None = Field(None, description="Janus api_secret (SFU=external).")
    sfu_admin_key: str | None = Field(None, description="Janus VideoRoom admin_key (SFU=external).")
    sfu_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More Janus to place SFU rooms on (comma-separated ws:// URLs), sharing SFU_API_SECRET and "
        "SFU_ADMIN_KEY; docs/sfu.md#several-janus.",
    )
    sfu_api_address: str = Field(
        "127.0.0.1",
        description="Where the embedded Janus's API listens, and the address other nodes reach it at (several nodes).",
    )
    sfu_ice_address: str | None = Field(
        None, description="Address the embedded Janus gathers ICE candidates on; default: that of the default route."
    )
    sfu_rtp_ports: str = Field("20000-20199", pattern=r"^\d{1,5}-\d{1,5}$")
    sfu_public_address: str | None = Field(None, description="Janus nat_1_1_mapping: the public address of the host.")
    sfu_install: bool = Field(True, description="Install Debian's janus package when it is missing (as root).")
    mesh_max: int = Field(6, ge=0, le=1000, description="A mesh room growing past this switches to sfu (0: never).")

    @field_validator("sfu_ice_address")
    @classmethod
    def _check_ice_address(cls, value: str | None) -> str | None:
        from server.janus_process import address_is_local

        if value and not address_is_local(value):
            raise ValueError(f"no interface of this host holds {value}")
        return value or None

    @field_validator("sfu_rtp_ports")
    @classmethod
    def _check_ports(cls, value: str) -> str:
        low, high = (int(p) for p in value.split("-"))
        if not 1024 <= low < high <= 65535:
            raise ValueError("must be LOW-HIGH with 1024 <= LOW < HIGH <= 65535")
        return value

    @field_validator("sfu_url")
    @classmethod
    def _check_sfu_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value or None

    @field_validator("sfu_urls", mode="before")
    @classmethod
    def _split_sfu_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list):
            for url in value:
                if not str(url).startswith(("ws://", "wss://")):
                    raise ValueError(f"{url}: each must start with ws:// or wss://")
        return value

    @field_validator("sfu_api_address")
    @classmethod
    def _check_api_address(cls, value: str) -> str:
        from server.janus_process import address_is_local

        if not address_is_local(value):
            raise ValueError(f"no interface of this host holds {value}")
        return value

    @model_validator(mode="after")
    def _external_sfu_needs_url(self) -> Settings:
        if self.sfu == "external" and not (self.sfu_url and self.sfu_api_secret and self.sfu_admin_key):
            raise ValueError("ROUNDTABLE_SFU=external needs ROUNDTABLE_SFU_URL, _SFU_API_SECRET and _SFU_ADMIN_KEY")
        if self.sfu_urls and not (self.sfu_api_secret and self.sfu_admin_key):
            raise ValueError("ROUNDTABLE_SFU_URLS needs ROUNDTABLE_SFU_API_SECRET and ROUNDTABLE_SFU_ADMIN_KEY")
        return self

    @field_validator("allowed_origins", "stun_urls", "turn_urls", "ice_host_addresses", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("bus_url")
    @classmethod
    def _check_bus_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("nats://", "tls://")):
            raise ValueError("must start with nats:// (or tls://)")
        return value or None

    @field_validator("database_url")
    @classmethod
    def _check_dsn(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must start with postgresql://")
        return value or None

    @model_validator(mode="after")
    def _turn_needs_secret(self) -> Settings:
        if self.turn == "embedded" and self.turn_urls:
            raise ValueError("ROUNDTABLE_TURN=embedded makes its own TURN URLs: unset ROUNDTABLE_TURN_URLS")
        low, _, high = self.turn_relay_ports.partition("-")
        if not 1024 <= int(low) <= int(high) <= 65535:
            raise ValueError("ROUNDTABLE_TURN_RELAY_PORTS must be LOW-HIGH within 1024-65535")
        if self.turn_urls and not self.turn_secret:
            raise ValueError("ROUNDTABLE_TURN_URLS needs ROUNDTABLE_TURN_SECRET (coturn's static-auth-secret)")
        return self

    @property
    def base_url(self) -> str:
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def resolved_data_dir(self) -> Path:
        return (Path(os.getcwd()) / self.data_dir).resolve()

    def resolved_composition_workers(self) -> int:
        if self.composition_workers is not None:
            return self.composition_workers
        return min(2, os.cpu_count() or 1)

    def resolved_recordings_dir(self) -> Path:
        if self.recordings_dir is not None:
            return (Path(os.getcwd()) / self.recordings_dir).resolve()
        return self.resolved_data_dir() / "recordings"


def describe_validation_error(exc: Exception) -> str:
    """One line naming each bad setting, for the start-up failure message."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for err in errors():
        loc = err.get("loc", ())
        message = str(err.get("msg")).removeprefix("Value error, ")
        parts.append(f"ROUNDTABLE_{'_'.join(str(p) for p in loc).upper()}: {message}" if loc else message)
    return "invalid setting: " + "; ".join(parts)


def unknown_environment(environ: dict[str, str]) -> list[str]:
    """ROUNDTABLE_* variables that name no setting (a typo would otherwise be silently ignored)."""
    known = {f"ROUNDTABLE_{name.upper()}" for name in Settings.model_fields}
    return sorted(k for k in environ if k.startswith("ROUNDTABLE_") and k not in known)
