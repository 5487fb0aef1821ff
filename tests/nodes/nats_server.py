"""A nats-server process of the tests' own, on the network namespace's 127.0.0.1 (tests/netns.py).

Started on a free port (nats-server picks it: `-p -1`) and ready once it logs so; killed by its PID. `restart`
brings it back on the same port, which is what a client reconnecting after an outage sees.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

BINARY_CANDIDATES = ("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")
READY_S = 10.0
_LISTENING = re.compile(rb"Listening for client connections on [^\s]*:(\d+)")
_READY = b"Server is ready"


def find_binary() -> str | None:
    for candidate in BINARY_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a NATS server answers at `url` (it greets every client with an INFO line)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            return s.recv(5) == b"INFO "
    except OSError:
        return False


class NatsServer:
    def __init__(self, binary: str, log_dir: Path) -> None:
        self.binary = binary
        self.log_dir = log_dir
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self._copier: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (on the port of the previous run, if any) and wait until it accepts clients."""
        assert self.proc is None
        self._starts += 1
        port = str(self.port) if self.port is not None else "-1"
        self.proc = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", port, "-n", f"roundtable-test-{os.getpid()}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        seen = b""
        deadline = time.monotonic() + READY_S
        fd = self.proc.stderr.fileno()
        while _READY not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(f"nats-server did not become ready: {seen.decode(errors='replace')[-2000:]}")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    continue
                seen += chunk
        found = _LISTENING.search(seen)
        assert found is not None, seen
        self.port = int(found[1])
        # Keep reading its log so that the pipe never fills and stalls it; kept for a failing test's report.
        log_path = self.log_dir / f"nats-server-{self._starts}.log"
        log_path.write_bytes(seen)
        self._copier = threading.Thread(target=_copy, args=(fd, log_path), daemon=True)
        self._copier.start()

    def kill(self) -> None:
        """SIGKILL by PID: the clients see their connection drop, with no goodbye."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self._copier is not None:
            self._copier.join(timeout=10)  # the pipe ends with the process, its only writer
            self._copier = None
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the connections stay open but nothing answers, as with a partition or a stalled host."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()


def _copy(fd: int, path: Path) -> None:
    with path.open("ab") as out:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            out.write(chunk)
