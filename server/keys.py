"""Every aiohttp AppKey of the application, so a handler's dependencies are typed and discoverable."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from recordings.actions import RecordingActions
from recordings.composition import CompositionStore, CompositionSupervisor
from recordings.service import RecordingCoordinator
from recordings.storage import Storage
from recordings.store import RecordingStore
from server.agenda import AgendaScheduler
from server.agenda_store import AgendaStore
from server.auth import Authenticator, JoinTokenIssuer
from server.invitations.service import InvitationService
from server.nodes import Node
from server.records_store import RecordsStore
from server.settings import Settings
from server.store import Store
from signaling.audit_store import AuditLog
from signaling.breakout_actions import BreakoutActions
from signaling.breakout_store import BreakoutStore
from signaling.breakouts import BreakoutCoordinator
from signaling.clock import Clock
from signaling.commands import RoomCommands
from signaling.lobby import AdmissionLobby
from signaling.lobby_actions import LobbyActions
from signaling.service import SignalingService
from signaling.sfu.bridge import SfuBridge

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
STORE = web.AppKey("store", Store)
RECORDS = web.AppKey("records", RecordsStore)
# The audit log: `await app[AUDIT].append(conn, ...)` inside the transaction of a change (docs/records.md).
AUDIT = web.AppKey("audit", AuditLog)
AUTH = web.AppKey("auth", Authenticator)
ISSUER = web.AppKey("issuer", JoinTokenIssuer)
SIGNALING = web.AppKey("signaling", SignalingService)
# What HTTP handlers call to change live rooms (signaling/commands.py); they never reach into SIGNALING.
COMMANDS = web.AppKey("commands", RoomCommands)
LOBBY = web.AppKey("lobby", AdmissionLobby)
# The lobby's moderator actions (knocks, admit, deny): this process's lobby, or with several nodes the bus client that
# sends them to the workshop's owner, where the knocks wait (server/bus_commands.py).
LOBBY_ACTIONS = web.AppKey("lobby_actions", LobbyActions)
BREAKOUTS = web.AppKey("breakouts", BreakoutCoordinator)
# The breakouts' live actions (open, extend, close, broadcast, move): the coordinator, or with several nodes the bus
# client that sends them to the workshop's owner (server/bus_commands.py).
BREAKOUT_ACTIONS = web.AppKey("breakout_actions", BreakoutActions)
BREAKOUT_STORE = web.AppKey("breakout_store", BreakoutStore)
RECORDINGS = web.AppKey("recordings", RecordingCoordinator)
# Recording start and stop: this process's recordings, or with several nodes the bus client that sends them to the
# workshop's owner, where the recorder runs (server/bus_commands.py).
RECORDING_ACTIONS = web.AppKey("recording_actions", RecordingActions)
RECORDING_STORE = web.AppKey("recording_store", RecordingStore)
STORAGE = web.AppKey("storage", Storage)
# Composed video: the job table and composed files, and the supervisor of composer subprocesses
# (recordings/composition.py).
COMPOSITIONS = web.AppKey("compositions", CompositionStore)
COMPOSER = web.AppKey("composer", CompositionSupervisor)
SIGNING_SECRET = web.AppKey("signing_secret", str)
# The wall clock of the record (attendance, heartbeat, reports, certificates); see signaling/clock.py.
CLOCK = web.AppKey("clock", Clock)
# The SFU bridge, absent when the server runs mesh only (ROUNDTABLE_SFU=off, or no Janus could be had).
SFU = web.AppKey("sfu", SfuBridge)
# Invitations: calendar files and the one background sender of the e-mail outbox (docs/invitations.md).
INVITATIONS = web.AppKey("invitations", InvitationService)
# The agenda's sessions and the scheduler that fires their starts and ends (server/agenda.py).
AGENDA = web.AppKey("agenda", AgendaStore)
AGENDA_SCHEDULER = web.AppKey("agenda_scheduler", AgendaScheduler)
# This process as a node: its id, bus and workshop leases (server/nodes.py, docs/scaling.md).
NODE = web.AppKey("node", Node)
