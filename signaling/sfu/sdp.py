"""What an SDP offer sends: its m-lines, their mids and directions. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaLine:
    kind: str  # audio | video | application
    mid: str | None
    direction: str  # sendrecv | sendonly | recvonly | inactive
    port: int

    @property
    def sends(self) -> bool:
        return self.port != 0 and self.direction in ("sendrecv", "sendonly")


def media_lines(sdp: str) -> list[MediaLine]:
    lines: list[MediaLine] = []
    kind: str | None = None
    mid: str | None = None
    direction = "sendrecv"
    port = 0

    def flush() -> None:
        if kind is not None:
            lines.append(MediaLine(kind=kind, mid=mid, direction=direction, port=port))

    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            flush()
            parts = line[2:].split()
            kind = parts[0] if parts else ""
            try:
                port = int(parts[1]) if len(parts) > 1 else 0
            except ValueError:
                port = 0
            mid, direction = None, "sendrecv"
        elif kind is not None and line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif kind is not None and line[2:] in ("sendrecv", "sendonly", "recvonly", "inactive") and line[:2] == "a=":
            direction = line[2:]
    flush()
    return lines


def sent_kinds(sdp: str) -> set[str]:
    """The media kinds an offer sends (audio, video)."""
    return {m.kind for m in media_lines(sdp) if m.sends and m.kind in ("audio", "video")}
