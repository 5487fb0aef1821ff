"""W10: how fast the composer makes a recording's video: a multiple of real time, and CPU seconds per minute.

    .venv/bin/python -m bench.compose_speed                    # 60 s, four people at 640x480, the default output
    .venv/bin/python -m bench.compose_speed --seconds 20 --sizes 960x540@15,1280x720@25
    .venv/bin/python -m bench.compose_speed --smoke            # 4 s, for a quick check

The recording is synthetic and made first (not timed): four participants, each a 640x480 VP8 track at 30 fps
(a panning noise texture, so that VP8 spends about a megabit a second, like a webcam; about what the recorder
writes for a browser) and an Opus track (a tone in bursts, the four taking turns, so that the active speaker and
the layout change every few seconds). The fourth joins 10% into the recording and the second leaves at 80%.
The composer then runs exactly as the server runs it: `python -m recordings.compose` in a subprocess, pinned to one
core (`taskset -c 1`, when there is more than one) and niced like the server's, after waiting (at most 30 s) for
the machine to be quiet (the busy fraction is recorded). Measured: its wall time (a multiple of real time: the
recording's length divided by it), its CPU time (user + system of the subprocess, from `wait4`) per minute of
recording, and the multiple of real time that CPU time means on a core of its own. Each run is bounded (a timeout of
20x the recording's length plus 60 s); results go to bench/results/compose-<stamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench.measure import wait_quiet

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT, FPS = 640, 480, 30
PEOPLE = 4
TONES = (220, 330, 440, 550)


def _texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, size=(HEIGHT // 4, (WIDTH * 2) // 4), dtype=np.uint8)
    return np.kron(big, np.ones((4, 4), dtype=np.uint8))  # blocks of 4: noise VP8 can still code at ~1 Mbit/s


CLIP_S = 6.0  # encoded once per person, then repeated (by stream copy) to the recording's length


def write_video(path: Path, seed: int, seconds: float) -> None:
    """A clip of CLIP_S encoded, then its packets repeated with shifted timestamps: decoding costs the same as
    a long original, making it does not (the clip starts with a keyframe, so every repetition decodes)."""
    texture = _texture(seed)
    chroma_u = np.full((HEIGHT // 2) * (WIDTH // 2), 90 + 40 * seed, np.uint8)
    chroma_v = np.full((HEIGHT // 2) * (WIDTH // 2), 200 - 30 * seed, np.uint8)
    clip = path.with_suffix(".clip.webm")
    with av.open(str(clip), "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.bit_rate = 1_000_000
        stream.codec_context.gop_size = 10_000  # one keyframe, at the start
        stream.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
        for i in range(round(min(seconds, CLIP_S) * FPS)):
            shift = (i * 4) % WIDTH
            y = texture[:, shift : shift + WIDTH]
            planes = np.concatenate([y.reshape(-1), chroma_u, chroma_v]).reshape(HEIGHT * 3 // 2, WIDTH)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(clip)) as source:
        packets = [(bytes(p), p.pts, p.is_keyframe) for p in source.demux(video=0) if p.pts is not None]
        time_base = source.streams.video[0].time_base
        template = source.streams.video[0]
        with av.open(str(path), "w", format="webm") as out:
            stream = out.add_stream_from_template(template)
            span = max(pts for _, pts, _ in packets) + round(1 / FPS / time_base)
            shift = 0
            while True:
                for data, pts, key in packets:
                    if float((pts + shift) * time_base) >= seconds:
                        break
                    packet = av.Packet(data)
                    packet.pts = packet.dts = pts + shift
                    packet.time_base = time_base
                    packet.is_keyframe = key
                    packet.stream = stream
                    out.mux(packet)
                else:
                    shift += span
                    continue
                break
    clip.unlink()


def write_audio(path: Path, person: int, seconds: float) -> None:
    """A tone in bursts: person k speaks in the k-th of every four 3-second turns, silence otherwise."""
    rate, n, frame_size = 48_000, 0, 960
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libopus", rate=rate)
        stream.layout = "mono"
        while n < seconds * rate:
            t = n / rate
            speaking = int(t // 3) % PEOPLE == person
            level = 0.3 if speaking else 0.003
            samples = (level * np.sin(2 * np.pi * TONES[person] * (n + np.arange(frame_size)) / rate)).astype(
                np.float32
            )
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, n, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
            n += frame_size
        for packet in stream.encode(None):
            out.mux(packet)


def make_recording(folder: Path, seconds: float) -> list[dict[str, Any]]:
    tracks = []
    for person in range(PEOPLE):
        start = 0.1 * seconds if person == 3 else 0.0
        end = 0.8 * seconds if person == 1 else seconds
        for kind in ("video", "audio"):
            path = folder / f"p{person}.{kind}.webm"
            (write_video if kind == "video" else write_audio)(path, person, end - start)  # type: ignore[operator]
            tracks.append(
                {
                    "id": f"p{person}-{kind}",
                    "participant_id": f"person-{person}",
                    "name": f"Delegate {person + 1}",
                    "kind": kind,
                    "source": "camera" if kind == "video" else None,
                    "path": str(path),
                    "offset_s": start,
                    "duration_s": end - start,
                }
            )
    return tracks


def compose_once(folder: Path, tracks: list[dict[str, Any]], size: str, seconds: float) -> dict[str, Any]:
    dims, fps = size.split("@")
    width, height = (int(x) for x in dims.split("x"))
    manifest = folder / f"job-{size}.json"
    output = folder / f"composed-{width}x{height}-{fps}.webm"
    manifest.write_text(
        json.dumps({"output": str(output), "width": width, "height": height, "fps": int(fps), "tracks": tracks})
    )
    command = [sys.executable, "-m", "recordings.compose", "--manifest", str(manifest), "--nice", "10"]
    cores = os.cpu_count() or 1
    if cores > 1 and shutil.which("taskset"):
        command = ["taskset", "-c", "1", *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        out, err = process.communicate(timeout=60 + 20 * seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every child so far: take the difference per run
    if process.returncode != 0:
        raise RuntimeError(f"the composer failed ({process.returncode}): {err.decode()[-500:]} {out.decode()[-500:]}")
    done = json.loads(out.decode().strip().splitlines()[-1])["done"]
    return {
        "size": size,
        "wall_s": round(wall, 2),
        "usage": (usage.ru_utime, usage.ru_stime),
        "bytes": done["bytes"],
        "duration_s": done["duration_s"],
        "layout_changes": len(done["layout"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sizes", default="960x540@15", help="comma-separated WIDTHxHEIGHT@FPS")
    parser.add_argument("--smoke", action="store_true", help="4 s, the default size")
    args = parser.parse_args()
    seconds = 4.0 if args.smoke else args.seconds
    folder = Path(tempfile.mkdtemp(prefix="roundtable-compose-bench-"))
    try:
        t0 = time.monotonic()
        tracks = make_recording(folder, seconds)
        print(f"made the recording ({PEOPLE} people, {seconds:.0f} s) in {time.monotonic() - t0:.1f} s", flush=True)
        results = []
        before = (0.0, 0.0)
        for size in args.sizes.split(","):
            quiet = asyncio.run(wait_quiet(threshold=0.3, max_wait_s=30.0))
            run = compose_once(folder, tracks, size.strip(), seconds)
            run["machine_busy_before"] = round(quiet.busy, 2)
            run["loadavg_before"] = quiet.loadavg
            cpu = (run["usage"][0] - before[0]) + (run["usage"][1] - before[1])
            before = run.pop("usage")
            run["cpu_s"] = round(cpu, 2)
            run["x_real_time"] = round(seconds / run["wall_s"], 2)
            run["x_real_time_by_cpu"] = round(seconds / max(cpu, 1e-6), 2)  # had it one core to itself
            run["cpu_s_per_minute"] = round(cpu / seconds * 60, 1)
            results.append(run)
            print(json.dumps(run), flush=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        report = {
            "workload": "w10_compose_speed",
            "seconds": seconds,
            "people": PEOPLE,
            "input": f"{WIDTH}x{HEIGHT}@{FPS} VP8 + Opus",
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
            "av": av.__version__,
            "results": results,
        }
        target = ROOT / "bench" / "results"
        target.mkdir(parents=True, exist_ok=True)
        (target / f"compose-{stamp}.json").write_text(json.dumps(report, indent=2))
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
