"""Embedded parts from Debian: find a program, or install its package when allowed (as `make test` does
for Chromium). Used for Janus and coturn; never for anything the service could not run without."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

INSTALL_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Found:
    path: str | None
    why_not: str = ""


def find_or_install(binary: str, packages: tuple[str, ...], *, allow_install: bool) -> Found:
    """The path of `binary`; when it is missing and we are root with apt-get, install `packages` first.

    Blocking (apt-get can take a minute): call it outside the event loop. Never raises: a part that
    cannot be had is reported with the reason, and the caller decides (mesh instead of SFU, say)."""
    path = shutil.which(binary) or _in_sbin(binary)
    if path:
        return Found(path)
    if not allow_install:
        return Found(None, f"{binary} is not installed (Debian package {' '.join(packages)})")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return Found(None, f"{binary} is not installed; install Debian's {' '.join(packages)} (needs root and apt)")
    log.warning("installing Debian's %s for the embedded %s (once per machine)", " ".join(packages), binary)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *packages],
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            # The package lists may be missing on a fresh machine.
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=INSTALL_TIMEOUT_S, check=False)
            result = subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", *packages],
                env=env,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
    except (OSError, subprocess.SubprocessError) as exc:
        return Found(None, f"installing {' '.join(packages)} failed: {exc}")
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        return Found(None, f"installing {' '.join(packages)} failed: {tail[0]}")
    path = shutil.which(binary) or _in_sbin(binary)
    return Found(path) if path else Found(None, f"{binary} still missing after installing {' '.join(packages)}")


def _in_sbin(binary: str) -> str | None:
    for folder in ("/usr/sbin", "/usr/bin", "/sbin"):
        candidate = os.path.join(folder, binary)
        if os.access(candidate, os.X_OK):
            return candidate
    return None
