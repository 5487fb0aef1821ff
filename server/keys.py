"""Every aiohttp AppKey of the application, so a handler's dependencies are typed and discoverable."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from recordings.composition import CompositionStore, CompositionSupervisor
from recordings.service import RecordingCoordinator
from recordings.storage import Storage
from recordings.store import RecordingStore
from server.agenda import AgendaScheduler
from server.agenda_store import AgendaStore
from server.auth import Authenticator, JoinTokenIssuer
from server.invitations.service import InvitationService
from server.records_store import RecordsStore
from server.settings import Settings
from server.store import Store
from signaling.audit_store import AuditLog
from signaling.breakout_store import BreakoutStore
from signaling.breakouts import BreakoutCoordinator
from signaling.clock import Clock
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
BREAKOUTS = web.AppKey("breakouts", BreakoutCoordinator)
BREAKOUT_STORE = web.AppKey("breakout_store", BreakoutStore)
RECORDINGS = web.AppKey("recordings", RecordingCoordinator)
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
