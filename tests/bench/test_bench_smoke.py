"""The benchmarks at smoke size (`python -m bench.run --smoke`): correctness under load, never timing.

Roundtable and the bare relay only: PeerJS runs from bench/peerjs/node_modules, which `make test` does not
install (docs/benchmarks.md). Nothing here compares or bounds a time; the figures the run prints are not read.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE_WORKLOADS = {"w1", "w2", "w3", "w4", "w5", "w6"}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


async def _bench(module: str, out: Path, timeout_s: float, *args: str) -> tuple[int, str]:
    """`python -m <module> --smoke <args> --out <out>`, bounded in time: its exit status and stderr. On the time
    limit it is killed by its own PID (each bench module stops what it started in a finally, but not after
    SIGKILL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUNDTABLE_")}
    env["PYTHONWARNINGS"] = "error"  # as pytest's filterwarnings, for the run and the servers it starts
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, "--smoke", *args, "--out", str(out),
        cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout_s):
            _, stderr = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, stderr.decode(errors="replace")


async def _smoke(database_url: str, out: Path) -> tuple[int, str, dict[str, Any]]:
    returncode, stderr = await _bench("bench.run", out, 170, "--database-url", database_url)
    return returncode, stderr, _load(out)


def _load(path: Path) -> dict[str, Any]:
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return results


def _runs(results: dict[str, Any], server: str) -> dict[str, dict[str, Any]]:
    return {r["workload"]: r["result"] for r in results["runs"] if r["server"] == server and "result" in r}


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_smoke_run_loses_nothing_holds_every_connection_and_stops_every_server(
    database_url: str, tmp_path: Path
) -> None:
    code, stderr, results = await _smoke(database_url, tmp_path / "smoke.json")
    assert code == 0, stderr[-4000:]
    assert results["errors"] == [], results["errors"]
    assert results["summary"]["correctness"] == [], results["summary"]["correctness"]

    for server in ("roundtable", "bare"):
        runs = _runs(results, server)
        assert set(runs) == SMOKE_WORKLOADS, (server, sorted(runs))

        w1 = runs["w1"]
        assert w1["burst_errors"] == 0 and w1["burst_joins"] == results["meta"]["sizes"]["w1_clients"]
        assert w1["burst_rosters_converged"] and w1["rejoin_rosters_converged"] and w1["workshop_rosters_converged"]
        assert w1["rejoin_errors"] == 0 and w1["workshop_errors"] == 0
        assert w1["held_after_rejoin"] == w1["expected_held"]

        w2 = runs["w2"]
        assert w2["sent"] > 0 and (w2["lost"], w2["duplicated"], w2["misdelivered"]) == (0, 0, 0)

        w3 = runs["w3"]
        for kind in ("candidate", "offer"):
            assert w3[f"{kind}_complete"] and w3[f"{kind}_sent"] > 0
            assert (w3[f"{kind}_lost"], w3[f"{kind}_duplicated"], w3[f"{kind}_misdelivered"]) == (0, 0, 0)
        assert w3["held"] == w3["expected_held"]

        w4 = runs["w4"]
        for room in ("room10", "room60"):
            assert w4[f"{room}_complete"] and w4[f"{room}_wrong_counts"] == 0
            assert w4[f"{room}_deliveries"] == w4[f"{room}_expected"] > 0

        w5 = runs["w5"]
        for step in results["meta"]["sizes"]["w5_steps"]:
            assert w5[f"errors_{step}"] == 0 and w5[f"open_{step}"] == step
        assert w5["held_after_hold"] == w5["expected_held"]
        assert w5["probe_errors"] == 0 and (w5["probe_lost"], w5["probe_duplicated"]) == (0, 0)

        w6 = runs["w6"]
        assert w6["control_readers_all_delivered"]
        assert w6["control_readers_delivered"] == w6["control_readers_expected"] > 0

    # Roundtable's readers never wait on the member that stopped reading (the bare relay's may: that is W6's point).
    w6 = _runs(results, "roundtable")["w6"]
    assert w6["stuck_readers_all_delivered"]
    assert w6["stuck_readers_delivered"] == w6["stuck_readers_expected"]

    for server, stopped in results["stopped"].items():
        assert stopped["pids"], server
        assert stopped["left_running"] == [], (server, stopped)
        assert not any(_alive(pid) for pid in stopped["pids"]), (server, stopped)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_w8_smoke_an_sfu_plenary_holds_and_stops_its_server_and_janus(tmp_path: Path) -> None:
    """W8 at smoke size (bench.sfu_plenary --smoke: one publisher to 2 subscribers, a 4-member plenary, seconds
    each) in a network namespace of its own. Correctness only: every stream arrives, nothing is left running."""
    out = tmp_path / "w8.json"
    returncode, stderr = await _bench("bench.sfu_plenary", out, 110)
    result = _load(out)
    assert "n/a" not in result, result.get("n/a")
    assert returncode == 0, (stderr[-4000:], result.get("notes"))
    assert result.get("n2_subscribers") == 2 and result["n2_setup_errors"] == 0, result.get("notes")
    assert result["n2_streams_below_90pct_lost"] == 0, result.get("notes")
    assert result["p4_held"] is True and result["p4_dead_or_missing_streams_lost"] == 0, result.get("notes")
    assert result["p4_streams_subscribed"] == result["p4_streams_expected"] > 0
    assert result["left_running"] == []
    for pid in (result["server_pid"], result["janus_pid"]):
        assert not _alive(pid), pid


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_w9_smoke_a_chromium_viewer_stays_within_the_video_cap_in_every_view(tmp_path: Path) -> None:
    """W9 at smoke size (bench.stage_view --smoke: 6 members, 4 cameras and a screen, a headless Chromium viewer in
    the audio, stage, grid and subscribe-to-everything views, seconds each). Correctness only: every view settles,
    the viewer receives sound only in the background, at most one high and fifteen other videos in every view, the
    "everything" request is clamped by the server, and Chromium, the server and Janus are gone afterwards."""
    out = tmp_path / "w9.json"
    returncode, stderr = await _bench("bench.stage_view", out, 230)
    result = _load(out)
    assert "n/a" not in result, result.get("n/a")
    assert returncode == 0, (stderr[-4000:], result.get("notes"))
    p = "c4"
    assert result[f"{p}_viewer_publishes"] == 0
    assert result[f"{p}_audio_videos_receiving"] == 0 and result[f"{p}_audio_audio_streams"] == 6
    assert result[f"{p}_stage_videos_served_high"] == 1  # the shared screen
    assert result[f"{p}_grid_videos_receiving"] == 5  # one's own tile and every other of the six on one page
    assert result[f"{p}_everything_videos_asked_high"] == 5 and result[f"{p}_everything_videos_served_high"] == 1
    for view in ("stage", "grid", "everything"):
        assert result[f"{p}_{view}_bytes_per_s"] > result[f"{p}_audio_bytes_per_s"] > 0, view
        assert result[f"{p}_{view}_audio_streams"] == 6, view
    assert result[f"{p}_within_cap"] is True
    assert result["left_running"] == []


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_w10_smoke_the_composer_makes_a_four_person_recording_s_video(tmp_path: Path) -> None:
    """W10 at smoke size (bench.compose_speed --smoke: four people at 640x480 for 4 s, composed as the server does).
    Correctness only: the video is made, as long as the recording, and its layout follows the speakers and the
    late joiner."""
    out = tmp_path / "w10.json"
    returncode, stderr = await _bench("bench.compose_speed", out, 230)
    assert returncode == 0, stderr[-4000:]
    (run,) = json.loads(out.read_text())["results"]
    assert run["size"] == "960x540@15"
    assert abs(run["duration_s"] - 4.0) < 0.2
    assert run["layout_changes"] >= 2  # the late joiner arrives, the speaker changes
    assert run["bytes"] > 0 and run["cpu_s"] > 0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_w11_smoke_relays_across_two_nodes_resumes_everyone_after_the_owner_is_killed_and_stops_everything(
    tmp_path: Path,
) -> None:
    """W11 at smoke size (bench.nodes --smoke: its own PostgreSQL, nats-server and three nodes; 2 pairs and a room of
    6 on one node and on two, then the owner SIGKILLed under 6 members of the two others). Correctness only: nothing
    relayed is lost, every delivery arrives, every member comes back with `resumed: true`, the figures are there and
    positive, and every process the run started is gone afterwards."""
    out = tmp_path / "w11.json"
    returncode, stderr = await _bench("bench.nodes", out, 170)
    results = _load(out)
    assert returncode == 0, (stderr[-4000:], results.get("errors"))
    assert results["errors"] == [] and results["summary"]["correctness"] == []
    placements = {r["placement"]: r["result"] for r in results["relay"]}
    assert set(placements) == {"one", "two"}
    for placement, r in placements.items():
        for kind in ("paced", "candidate", "offer"):
            assert r[f"{kind}_sent"] > 0 and r[f"{kind}_lost"] == r[f"{kind}_duplicated"] == 0, (placement, kind)
        assert r["candidate_complete"] and r["offer_complete"] and r["held"] == r["expected_held"]
        assert r["fanout_complete"] and r["fanout_deliveries"] == r["fanout_expected"] > 0
        assert r["candidate_msg_cpu_us"] > 0 and r["delivery_cpu_us"] > 0 and r["paced_candidate_p99_ms"] > 0
        assert r["leases"] == [1, 0, 0]  # node A owns the workshop in both placements
    (size,) = results["failover"]
    (run,) = results["failover"][size]
    failover = run["result"]
    assert failover["resumed"] == failover["members"] == int(size) > 0, failover
    assert failover["all_resumed_s"] > 0 and set(failover["close_codes"]) == {"1012"}
    assert results["stopped"]["pids"] and results["stopped"]["left_running"] == []
    assert not any(_alive(pid) for pid in results["stopped"]["pids"])
    assert set(results["tracebacks"].values()) == {0}, results["logs_tail"]
