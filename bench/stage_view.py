"""W9: what one viewer of a plenary receives, in stage view, in grid view and when it asks for everything.

    .venv/bin/python -m bench.stage_view                 # the reference plenary (60 members), 15 s per view
    .venv/bin/python -m bench.stage_view --smoke         # 6 members, seconds (tests/bench runs it)
    .venv/bin/python -m bench.stage_view --cameras 20,40 # rooms with that many cameras, one after the other

Where it runs: like W8 (bench/sfu_plenary.py, whose clients and measurements it reuses), in a private network
namespace (re-executed under `unshare --net`, root) with a Roundtable server and its embedded Janus on core 0 and the
load generator on core 1. The room is W8's reference plenary (60 members, all publishing audio: one talker, the rest
DTX silence; one screen share) with more of its members publishing a camera (aiortc, pre-encoded VP8 at the stage
tile's 320x180, 15 fps; aiortc sends no simulcast, so a layer asked for changes nothing in bytes here: the figures
measure how many videos a viewer receives, the layers are what Chromium publishers would add). One more member is
the viewer: a real headless Chromium page (Debian's chromium through Playwright, 1280x720, the fake camera and
microphone turned off after joining so that it only receives), in four views held `window_s` each:

- `audio`: the tab in the background (sound only, the floor);
- `stage`: the default with a screen shared (the screen large, the presenter's camera and the strip in view);
- `grid`: the grid view, a page of sixteen tiles (oneself and fifteen others);
- `everything`: the page asks for every feed's video at `high`, past its own cap (`window.roundtable.wantEverything`);
  the server clamps it to one high and fifteen others (`subscription.limited`).

Per view: bytes received per second by the page's subscriber connection (its ICE transport's `bytesReceived`: RTP,
RTCP and SRTP overhead included), the videos it receives (inbound video streams whose bytes grew), frames decoded per
second, and the share of a core the whole Chromium (every process of the browser: renderer, GPU, network service)
spent, with the `audio` view's share as the floor. For comparison, what "everything" would be without the cap is
computed from what the publishers sent (every video and audio feed but the viewer's own). Every load is bounded in
count and time; Chromium, the server, its PostgreSQL and Janus are ended by PID and checked gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.measure import alive, children_of
from bench.sfu_plenary import (
    MEDIA_ADDRESS,
    ROOT,
    Ctx,
    LoopLag,
    Member,
    Procs,
    VideoSpec,
    W8Sizes,
    _close,
    _janus_of,
    _member,
    _netns,
    _sent,
    _tracks,
    bounded,
    encode_clip,
    encode_opus,
    install_hooks,
    process_cpu_ns,
    window,
)

CHROMIUM = os.environ.get("ROUNDTABLE_CHROMIUM", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [  # as tests/e2e/conftest.py
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
VIEWS = ("audio", "stage", "grid", "everything")
MAX_VIDEOS = 16  # signaling/sfu/bridge.py: MAX_HIGH_VIDEOS + MAX_OTHER_VIDEOS


CAMERA = VideoSpec(320, 180, 15, 250)  # W8's stage tile
SCREEN = VideoSpec(960, 540, 5, 400)  # W8's screen share


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


@dataclass(frozen=True)
class W9Sizes:
    members: int = 60  # the reference plenary, the viewer not counted
    cameras: tuple[int, ...] = (40,)  # members publishing a camera; one room per entry
    screens: int = 1
    talkers: int = 1
    camera_video: VideoSpec = CAMERA
    screen_video: VideoSpec = SCREEN
    window_s: float = 15.0
    settle_s: float = 4.0
    view_timeout_s: float = 60.0
    join_in_flight: int = 4
    setup_timeout_s: float = 180.0


FULL = W9Sizes()
SMOKE = W9Sizes(members=6, cameras=(4,), window_s=2.0, settle_s=1.0, view_timeout_s=30.0, setup_timeout_s=60.0)

# In the page: what its subscriber connection receives, cumulatively.
_RECEIVED = """
async () => {
  const sub = window.roundtable.connections().find((c) => c.role === "subscribe");
  const out = { transport: 0, audio: 0, video: 0, frames: 0, videoStreams: {} };
  if (!sub) return out;
  for (const s of (await sub.pc.getStats()).values()) {
    if (s.type === "transport") out.transport += s.bytesReceived || 0;
    if (s.type === "inbound-rtp") {
      const bytes = (s.bytesReceived || 0) + (s.headerBytesReceived || 0);
      out[s.kind] += bytes;
      if (s.kind === "video") {
        out.frames += s.framesDecoded || 0;
        out.videoStreams[s.id] = bytes;
      }
    }
  }
  return out;
}
"""

# The page's subscription changed from `before` (what it asked for) and is settled: nothing pending, and the video
# streams that receive are the feeds asked for, as many as the server serves (at most MAX_VIDEOS).
_SETTLED = """
([before, max]) => {
  const sub = window.roundtable.subscription();
  if (!sub || sub.pending || !sub.wanted || JSON.stringify(sub.wanted) === before) return false;
  const asked = new Set(sub.wanted.filter((f) => f.video).map((f) => f.feed_id));
  const carried = sub.streams.filter((s) => s.kind === "video" && s.active).map((s) => s.feed_id);
  return carried.every((id) => asked.has(id)) && carried.length === Math.min(asked.size, max);
}
"""

_NO_DEVICES = """
navigator.mediaDevices.getUserMedia = async () => {
  throw new DOMException("a benchmark viewer has no devices", "NotFoundError");
};
"""

# What the page knows when a wait fails: its feeds, what it asked and what its video streams do.
_DIAGNOSIS = """
() => {
  const sub = window.roundtable.subscription();
  const others = window.roundtable.feeds().filter((f) => f.peer_id !== window.roundtable.state().self.id);
  return {
    feeds: others.length,
    pending: sub && sub.pending,
    asked: sub && sub.wanted ? sub.wanted.filter((f) => f.video).map((f) => `${f.feed_id} ${f.quality}`) : null,
    video: sub ? sub.streams.filter((s) => s.kind === "video").map((s) => `${s.mid} ${s.feed_id} ${s.active}`) : null,
    audio: sub ? sub.streams.filter((s) => s.kind === "audio").length : null,
    layout: window.roundtable.layout().layout,
  };
}
"""

_BACKGROUND = """
(hidden) => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
  const state = hidden ? "hidden" : "visible";
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
  document.dispatchEvent(new Event("visibilitychange"));
}
"""


def descendants_of(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        children = children_of(todo.pop())
        out += children
        todo += children
    return out


def chromium_pids() -> list[int]:
    """Every Chromium process below this one (Playwright's driver starts the browser; it starts the rest)."""
    out = []
    for pid in descendants_of(os.getpid()):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/exe").resolve() == Path(CHROMIUM).resolve():
                out.append(pid)
    return out


def chromium_cpu_ns(pids: dict[int, int]) -> int:
    """CPU of the browser's processes so far; `pids` remembers the last reading of one that ended meanwhile."""
    for pid in chromium_pids():
        pids[pid] = max(pids.get(pid, 0), process_cpu_ns(pid))
    return sum(pids.values())


async def _people(ctx: Ctx, count: int, prefix: str) -> list[dict[str, Any]]:
    """A workshop (its plenary is sfu) and `count` participants: their join tokens and links."""
    api = ctx.base_http + "/api/v1"
    body = {
        "title": f"W9 {prefix}",
        "timezone": "Europe/Brussels",
        "starts_at": "2026-01-01T08:00:00+01:00",
        "ends_at": "2030-12-31T17:00:00+01:00",
        "plenary_capacity": max(count + 4, 10),
    }
    async with ctx.http.post(api + "/workshops", json=body, headers=ctx.admin) as resp:
        if resp.status != 201:
            raise RuntimeError(f"create workshop: {resp.status} {await resp.text()}")
        wid = (await resp.json())["id"]
    rows = [{"display_name": f"{prefix} {k:02d}", "country": "PT", "organisation": "Benchmark"} for k in range(count)]
    async with ctx.http.post(f"{api}/workshops/{wid}/participants/import", json=rows, headers=ctx.admin) as resp:
        if resp.status != 201:
            raise RuntimeError(f"import participants: {resp.status} {await resp.text()}")
        items = (await resp.json())["items"]
    by_name = {i["display_name"]: i for i in items}
    return [by_name[f"{prefix} {k:02d}"] for k in range(count)]


async def _until(page: Any, predicate: str, timeout_s: float, what: str, arg: Any = None) -> None:
    try:
        await page.wait_for_function(predicate, arg=arg, timeout=timeout_s * 1000, polling=250)
    except Exception as exc:
        seen = await page.evaluate(_DIAGNOSIS)
        raise RuntimeError(f"not within {timeout_s:.0f} s: {what}; the page has {json.dumps(seen)[:3000]}") from exc


async def room(ctx: Ctx, sizes: W9Sizes, cameras: int, browser: Any, out: dict[str, Any]) -> None:
    """One plenary with `cameras` cameras, the Chromium viewer in each view; figures under `c<cameras>_`."""
    video_cls, audio_cls = _tracks()
    p = f"c{cameras}"
    people = await _people(ctx, sizes.members + 1, f"Plenary{cameras}")
    viewer_person, publishers = people[0], people[1:]
    members = [_member(ctx, person["join_token"], f"{p}-m{k:02d}") for k, person in enumerate(publishers)]
    context = None
    try:

        async def enter(k: int, m: Member) -> None:
            await m.join()
            audio = audio_cls(ctx.media["tone"], 0.02) if k < sizes.talkers else audio_cls(ctx.media["silence"], 0.4)
            video = video_cls(ctx.media["camera"]) if k < cameras else None
            await m.publish("camera", audio=audio, video=video)
            if k < sizes.screens:  # the first camera's member presents: their screen and their camera
                await m.publish("screen", video=video_cls(ctx.media["screen"]))

        t0 = time.monotonic()
        results = await bounded([enter(k, m) for k, m in enumerate(members)], sizes.join_in_flight)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise RuntimeError(f"{len(failed)} publishers failed, first {failed[0]!r}")
        out[f"{p}_publish_s"] = time.monotonic() - t0
        feeds = sizes.members + sizes.screens

        context = await browser.new_context(viewport={"width": 1280, "height": 720}, locale="en-GB")
        page = await context.new_page()
        # A viewer without camera or microphone (as many in a plenary's audience): it only receives, and the figures
        # hold no encoding. The page joins without devices (the pre-join screen says so).
        await page.add_init_script(_NO_DEVICES)
        await page.goto(viewer_person["join_url"])
        await page.get_by_role("button", name="Join", exact=True).click(timeout=60_000)
        await _until(page, "() => window.roundtable.state().joined", 60, "the viewer joined")
        others = "window.roundtable.feeds().filter((f) => f.peer_id !== window.roundtable.state().self.id).length"
        await _until(page, f"() => {others} >= {feeds}", sizes.setup_timeout_s, "every publisher's feed")
        # The viewer only receives: its fake camera and microphone off, if they came on.
        for name in ("Turn your camera off", "Mute your microphone"):
            button = page.get_by_role("button", name=name, exact=True)
            if await button.count():
                await button.click()
        out[f"{p}_viewer_publishes"] = await page.evaluate(
            "() => window.roundtable.connections().filter((c) => c.role.startsWith('publish')).length"
        )
        await page.wait_for_function(
            "() => window.roundtable.layout().layout === 'stage' && window.roundtable.layout().reason === 'screen'",
            timeout=30_000,
        )
        # The stage's subscription first (the screen and the strip in view), so that every view below changes it.
        await _until(page, _SETTLED, sizes.view_timeout_s, "the stage's first subscription", ["[]", MAX_VIDEOS])
        await _until(
            page,
            "() => window.roundtable.subscription().streams.some((s) => s.kind === 'video' && s.active)",
            sizes.view_timeout_s,
            "video on the stage",
        )
        sent_pcs = members
        cpu_seen: dict[int, int] = {}
        for view in VIEWS:
            before = await page.evaluate("() => JSON.stringify(window.roundtable.subscription().wanted)")
            if view == "audio":
                await page.evaluate(_BACKGROUND, True)
            elif view == "stage":
                await page.evaluate(_BACKGROUND, False)
            elif view == "grid":
                await page.get_by_role("button", name="Grid view").click()
            else:
                await page.evaluate("() => window.roundtable.wantEverything(true)")
            await _until(page, _SETTLED, sizes.view_timeout_s, f"the {view} subscription settled", [before, MAX_VIDEOS])
            await asyncio.sleep(sizes.settle_s)  # media flows at its new rate before the window opens
            a_page, a_sent = await page.evaluate(_RECEIVED), await _sent(sent_pcs)
            a_procs, a_cpu, a_wall = ctx.procs.snapshot(), chromium_cpu_ns(cpu_seen), time.perf_counter()
            await asyncio.sleep(sizes.window_s)
            b_page, b_sent = await page.evaluate(_RECEIVED), await _sent(sent_pcs)
            b_procs, b_cpu, b_wall = ctx.procs.snapshot(), chromium_cpu_ns(cpu_seen), time.perf_counter()
            wall = b_wall - a_wall
            span = window(a_procs, b_procs)
            sub = await page.evaluate("() => window.roundtable.subscription()")
            grown = [k for k, v in b_page["videoStreams"].items() if v > a_page["videoStreams"].get(k, 0)]
            asked = [f for f in sub["wanted"] if f["video"]]
            carried = [s for s in sub["streams"] if s["kind"] == "video"]
            out |= {
                f"{p}_{view}_bytes_per_s": (b_page["transport"] - a_page["transport"]) / wall,
                f"{p}_{view}_video_bytes_per_s": (b_page["video"] - a_page["video"]) / wall,
                f"{p}_{view}_audio_bytes_per_s": (b_page["audio"] - a_page["audio"]) / wall,
                f"{p}_{view}_frames_per_s": (b_page["frames"] - a_page["frames"]) / wall,
                f"{p}_{view}_videos_asked": len(asked),
                f"{p}_{view}_videos_asked_high": sum(1 for f in asked if f.get("quality") == "high"),
                f"{p}_{view}_videos_served": len(carried),
                f"{p}_{view}_videos_served_high": sum(1 for s in carried if s.get("quality") == "high"),
                f"{p}_{view}_videos_receiving": len(grown),
                f"{p}_{view}_audio_streams": sum(1 for s in sub["streams"] if s["kind"] == "audio"),
                f"{p}_{view}_chromium_core_share": (b_cpu - a_cpu) / 1e9 / wall,
                f"{p}_{view}_janus_core_share": span["janus"],
                f"{p}_{view}_others_cores": span["others_cores"],
                f"{p}_{view}_loadavg1": float(loadavg().split()[0]),
            }
            if view == "everything":
                # Without the cap: every published video and audio (the viewer's own sends nothing).
                out[f"{p}_uncapped_bytes_per_s_computed"] = (
                    b_sent["video_bytes"] + b_sent["audio_bytes"] - a_sent["video_bytes"] - a_sent["audio_bytes"]
                ) / wall
                out[f"{p}_uncapped_videos"] = cameras + sizes.screens
            print(
                f"  w9 {p} {view}: {out[f'{p}_{view}_bytes_per_s'] / 1000:.0f} kB/s, "
                f"{len(grown)} videos, chromium {out[f'{p}_{view}_chromium_core_share']:.0%}",
                file=sys.stderr,
                flush=True,
            )
        floor = out[f"{p}_audio_chromium_core_share"]
        for view in VIEWS[1:]:
            out[f"{p}_{view}_chromium_above_audio"] = out[f"{p}_{view}_chromium_core_share"] - floor
        out[f"{p}_within_cap"] = all(
            out[f"{p}_{v}_videos_receiving"] <= MAX_VIDEOS and out[f"{p}_{v}_videos_served_high"] <= 1 for v in VIEWS
        )
    finally:
        if context is not None:
            with contextlib.suppress(Exception):
                await context.close()
        await _close(ctx, members)


async def inner(sizes: W9Sizes, database_url: str | None) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from bench.servers import ADMIN_TOKEN, pin_loadgen, raise_nofile, roundtable

    raise_nofile()
    out: dict[str, Any] = {"loadgen_core": pin_loadgen(), "sizes": json.loads(json.dumps(asdict(sizes)))}
    install_hooks()
    workdir = Path(tempfile.mkdtemp(prefix="rt-w9-"))
    scratch = Path(tempfile.mkdtemp(prefix="rt-w9-tmp-"))  # Chromium's profile and pulse folders
    os.environ["TMPDIR"] = str(scratch)
    server = roundtable(workdir, database_url=database_url)
    server.env.update(
        ROUNDTABLE_SFU="auto",
        ROUNDTABLE_SFU_ICE_ADDRESS=MEDIA_ADDRESS,
        ROUNDTABLE_SFU_RTP_PORTS="20000-29999",
        ROUNDTABLE_SFU_INSTALL="false",
        ROUNDTABLE_MESH_MAX="0",
        ROUNDTABLE_ICE_HOST_ADDRESSES=MEDIA_ADDRESS,
    )
    janus_pid: int | None = None
    browser_pids: set[int] = set()
    lag = LoopLag()
    try:
        media = {
            "tone": encode_opus(440.0),
            "silence": encode_opus(None),
            "camera": encode_clip(sizes.camera_video, seed=2),
            "screen": encode_clip(sizes.screen_video, seed=3),
        }
        for name in ("camera", "screen"):
            deltas = media[name].delta[1:]
            out[f"clip_{name}_kbps"] = sum(map(len, deltas)) * 8 * media[name].spec.fps / len(deltas) / 1000
        await server.start()
        for _ in range(100):
            janus_pid = _janus_of(server.pid)
            if janus_pid:
                break
            await asyncio.sleep(0.1)
        if not janus_pid:
            raise RuntimeError("the server started without its embedded Janus: " + server.log_path.read_text()[-2000:])
        procs = Procs(server.pid, janus_pid, server.postgres_pids)
        lag.start()
        out["loadavg_at_start"] = loadavg()
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
            async_playwright() as playwright,
        ):
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            ctx = Ctx(W8Sizes(), http, server.base_http, server.base_ws, procs, lag, admin)
            ctx.media = media
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            browser_pids.update(chromium_pids())
            try:
                for cameras in sizes.cameras:
                    try:
                        await room(ctx, sizes, cameras, browser, out)
                    except Exception as exc:
                        out["errors"] = out.get("errors", 0) + 1
                        out.setdefault("notes", []).append(f"c{cameras}: {traceback.format_exc()[-1500:]}")
                        print(f"  ! w9 c{cameras}: {exc!r}", file=sys.stderr)
                    browser_pids.update(chromium_pids())
            finally:
                await browser.close()
            await _close(ctx, list(ctx.members))
        out["loadavg_at_end"] = loadavg()
    finally:
        await lag.stop()
        for pid in chromium_pids():  # Playwright closed the browser; anything left goes by its PID
            browser_pids.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if server.proc is not None:
            await server.stop()
        if janus_pid and alive(janus_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(janus_pid, signal.SIGKILL)
        out["left_running"] = [pid for pid in [*server.seen_pids, janus_pid or 0, *browser_pids] if pid and alive(pid)]
        log = server.log_path
        if log.exists():
            out["server_log_tail"] = log.read_text(errors="replace")[-2000:]
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def budget_s(sizes: W9Sizes) -> float:
    per_view = sizes.window_s + sizes.settle_s + sizes.view_timeout_s
    return 60 + len(sizes.cameras) * (sizes.setup_timeout_s + 60 + len(VIEWS) * per_view)


def why_not() -> str:
    if os.geteuid() != 0:
        return "W9 needs root (a private network namespace, as tests/netns.py)"
    for tool in ("unshare", "ip", "janus"):
        if shutil.which(tool) is None:
            return f"W9 needs {tool}"
    if not os.access(CHROMIUM, os.X_OK):
        return f"W9 needs Chromium at {CHROMIUM} (tests/e2e/ensure_chromium.sh)"
    return ""


async def run_isolated(sizes: W9Sizes, *, database_url: str | None = None) -> dict[str, Any]:
    """Run W9 in a child process inside a new network namespace; its figures (or {"n/a": why})."""
    reason = why_not()
    if reason:
        return {"n/a": reason}
    with tempfile.TemporaryDirectory(prefix="rt-w9-out-") as tmp:
        result_path = Path(tmp) / "w9.json"
        argv = ["unshare", "--net", "--", sys.executable, "-m", "bench.stage_view", "--inner"]
        argv += ["--out", str(result_path), "--sizes", json.dumps(asdict(sizes))]
        if database_url:
            argv += ["--database-url", database_url]
        proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL)
        budget = budget_s(sizes)
        try:
            async with asyncio.timeout(budget):
                code = await proc.wait()
        except TimeoutError:
            proc.send_signal(signal.SIGTERM)  # by its PID: it stops its server, Janus and Chromium in a finally
            try:
                async with asyncio.timeout(40):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
            raise RuntimeError(f"W9 did not finish within {budget:.0f} s") from None
        if not result_path.exists():
            raise RuntimeError(f"W9 exited with {code} and no result")
        result: dict[str, Any] = json.loads(result_path.read_text())
        if code:
            result["inner_exit"] = code
        return result


def sizes_from_json(text: str) -> W9Sizes:
    raw = json.loads(text)
    for k in ("camera_video", "screen_video"):
        raw[k] = VideoSpec(**raw[k])
    raw["cameras"] = tuple(raw["cameras"])
    return W9Sizes(**raw)


def _inner_main(args: argparse.Namespace) -> int:
    _netns()  # `unshare --net` made the namespace before exec; no thread exists yet
    sizes = sizes_from_json(args.sizes)
    result: dict[str, Any]
    try:
        result = asyncio.run(inner(sizes, args.database_url))
        code = 1 if result.get("errors") else 0
    except Exception:
        result = {"errors": 1, "notes": [traceback.format_exc()[-3000:]]}
        code = 1
    args.out.write_text(json.dumps(result, indent=1, default=str))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_view", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="6 members, 4 cameras, seconds per view")
    parser.add_argument("--cameras", default=None, help="comma-separated camera counts, one room each (default 40)")
    parser.add_argument("--members", type=int, default=None, help="members besides the viewer (default 60)")
    parser.add_argument("--window-s", type=float, default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", type=Path, default=None, help="results JSON")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        return _inner_main(args)
    sizes = SMOKE if args.smoke else FULL
    if args.cameras:
        sizes = replace(sizes, cameras=tuple(int(x) for x in args.cameras.split(",") if x))
    if args.members is not None:
        sizes = replace(sizes, members=args.members)
    if args.window_s is not None:
        sizes = replace(sizes, window_s=args.window_s)
    from bench.servers import pin_loadgen

    pin_loadgen()
    result = asyncio.run(run_isolated(sizes, database_url=args.database_url))
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 1 if result.get("errors") or "n/a" in result else 0


if __name__ == "__main__":
    raise SystemExit(main())
