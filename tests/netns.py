"""The test run's private network: a network namespace of its own, entered before any thread starts.

Inside it there is `lo` (127.0.0.1) and a veth pair whose end `rt0` holds 127.0.0.2/32: Janus skips
loopback interfaces when it gathers ICE candidates, so the SFU, its aiortc peers and Chromium meet on
127.0.0.2 (see /work/shared/sfu.md). No media, DNS or STUN look-up can leave the namespace, and
Chromium cannot prefer a real network card.

It needs root (CI runs as root). ROUNDTABLE_TEST_NETNS=0 opts out; so does a TEST_DATABASE_URL over
TCP, which the namespace would cut off. Tests that need the namespace (the SFU tests) fail with
the reason when it is missing; the others run on the host's loopback as before.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from urllib.parse import parse_qs, urlsplit

CLONE_NEWNET = 0x40000000
MEDIA_ADDRESS = "127.0.0.2"  # what Janus, its peers and Chromium gather candidates on
MEDIA_INTERFACE = "rt0"

_state: dict[str, str] = {"why_not": "not entered yet"}
# Set by the process that made the namespace, for the processes it starts (pytest-xdist's workers) to know it.
_INHERITED = "ROUNDTABLE_TEST_NETNS_INODE"


def _database_over_tcp() -> bool:
    dsn = os.environ.get("TEST_DATABASE_URL")
    if not dsn:
        return False  # the embedded PostgreSQL listens on a unix socket only
    parts = urlsplit(dsn)
    host = parts.hostname or parse_qs(parts.query).get("host", [""])[0]
    return bool(host) and not host.startswith("/")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def enter() -> str:
    """Move this process into a new network namespace with lo and rt0 (127.0.0.2). Returns why not, or ""."""
    why_not = _enter()
    _state["why_not"] = why_not
    return why_not


def _enter() -> str:
    if os.environ.get("ROUNDTABLE_TEST_NETNS", "1") == "0":
        return "ROUNDTABLE_TEST_NETNS=0"
    if os.geteuid() != 0:
        return "not root"
    if _database_over_tcp():
        return "TEST_DATABASE_URL is a TCP address"
    inherited = os.environ.get(_INHERITED)
    if inherited and inherited == _namespace():
        return ""  # a pytest-xdist worker: its controller made the namespace, and every process started in it shares it
    if threading.active_count() != 1:
        return "threads already running"  # unshare would move this thread only
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return f"unshare failed: {os.strerror(ctypes.get_errno())}"
    try:
        _ip("link", "set", "lo", "up")
        # This kernel has no dummy module: a veth pair, one end holding the media address.
        _ip("link", "add", MEDIA_INTERFACE, "type", "veth", "peer", "name", "rt1")
        _ip("addr", "add", f"{MEDIA_ADDRESS}/32", "dev", MEDIA_INTERFACE)
        _ip("link", "set", MEDIA_INTERFACE, "up")
        _ip("link", "set", "rt1", "up")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"setting up the namespace failed: {exc}"
    os.environ[_INHERITED] = _namespace()
    return ""


def _namespace() -> str:
    """The network namespace this process is in (its inode), or "" where /proc does not tell."""
    try:
        return str(os.stat("/proc/self/ns/net").st_ino)
    except OSError:
        return ""


def private() -> bool:
    return not _state["why_not"]


def why_not() -> str:
    return _state["why_not"]


def describe() -> str:
    if private():
        return f"private network namespace (lo, {MEDIA_INTERFACE} {MEDIA_ADDRESS})"
    return f"host network ({why_not()})"
