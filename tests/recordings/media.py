"""Recorded tracks made without a call: solid-colour VP8 video and Opus tones in WebM, as the recorder writes them,
and readers of what the composer made (frames as YUV planes, the audio as samples)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from recordings.compose import SAMPLE_RATE


def write_colour(path: Path, yuv: tuple[int, int, int], seconds: float, *, size: tuple[int, int] = (160, 120)) -> None:
    width, height = size
    fps = 30
    y, u, v = yuv
    planes = np.concatenate(
        [
            np.full(width * height, y, np.uint8),
            np.full(width * height // 4, u, np.uint8),
            np.full(width * height // 4, v, np.uint8),
        ]
    ).reshape(height * 3 // 2, width)
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def write_tone(path: Path, hz: float, seconds: float) -> None:
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=SAMPLE_RATE)
        stream.layout = "mono"
        n = 0
        while n < seconds * SAMPLE_RATE:
            samples = (0.25 * np.sin(2 * np.pi * hz * (n + np.arange(960)) / SAMPLE_RATE)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, n, Fraction(1, SAMPLE_RATE)
            for packet in stream.encode(frame):
                out.mux(packet)
            n += 960
        for packet in stream.encode(None):
            out.mux(packet)


@dataclass
class Frame:
    t: float
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    def chroma(self, x: int, y: int, w: int, h: int) -> tuple[float, float]:
        """Mean U and V over the middle half of a rectangle given in luma pixels."""
        x0, y0, x1, y1 = (x + w // 4) // 2, (y + h // 4) // 2, (x + 3 * w // 4) // 2, (y + 3 * h // 4) // 2
        return float(self.u[y0:y1, x0:x1].mean()), float(self.v[y0:y1, x0:x1].mean())

    def share_of(self, uv: tuple[int, int], tolerance: int = 20) -> float:
        """How much of the frame has this chroma."""
        hit = (np.abs(self.u.astype(int) - uv[0]) < tolerance) & (np.abs(self.v.astype(int) - uv[1]) < tolerance)
        return float(hit.mean())


def decode_frames(path: Path) -> list[Frame]:
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            planes = frame.to_ndarray(format="yuv420p")
            h, w = frame.height, frame.width
            chroma = planes[h:].reshape(-1)
            q = (h // 2) * (w // 2)
            out.append(
                Frame(
                    float(frame.time or 0.0),
                    planes[:h],
                    chroma[:q].reshape(h // 2, w // 2),
                    chroma[q : 2 * q].reshape(h // 2, w // 2),
                )
            )
    return out


def decode_audio(path: Path) -> np.ndarray:
    """The audio as mono samples at 48 kHz, from the file's start."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def tone_strength(samples: np.ndarray, hz: float) -> float:
    """The magnitude of the spectrum at `hz` (the largest bin within 5 Hz), by FFT."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    return float(spectrum[(freqs > hz - 5) & (freqs < hz + 5)].max())


def tiles_at(layout: list[dict[str, Any]], t: float) -> dict[str, dict[str, Any]]:
    """Where each participant's camera tile is at `t`, by the composer's layout timeline."""
    for segment in layout:
        if segment["from_s"] <= t < segment["to_s"]:
            return {tile["participant_id"]: tile for tile in segment["tiles"] if tile["source"] == "camera"}
    return {}
