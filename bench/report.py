"""Turn a run's raw repetitions into medians, per-repetition ratios and the targets table."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bench.measure import Spread

X = "\u00d7"  # the multiplication sign of ratios
DASH = "\u2013"

# Figures compared between servers, repetition by repetition (Roundtable ÷ other).
RATIO_KEYS: dict[str, list[str]] = {
    "w1": [
        "burst_cpu_us_per_join",
        "burst_cpu_pg_us_per_join",
        "rejoin_cpu_us_per_cycle",
        "rejoin_cpu_pg_us_per_cycle",
        "workshop_cpu_us_per_join",
        "workshop_cpu_pg_us_per_join",
        "burst_join_p50_ms",
        "burst_join_p99_ms",
        "workshop_join_p99_ms",
        "workshop_all_see_all_s",
    ],
    "w2": ["candidate_p50_ms", "candidate_p99_ms", "offer_p50_ms", "offer_p99_ms", "cpu_us_per_msg"],
    "w3": ["candidate_cpu_us_per_msg", "offer_cpu_us_per_msg", "candidate_msgs_per_s", "offer_msgs_per_s"],
    "w4": [
        "room10_cpu_us_per_delivery",
        "room60_cpu_us_per_delivery",
        "room10_deliveries_per_s",
        "room60_deliveries_per_s",
    ],
    "w5": ["kib_per_conn_1000", "kib_per_conn_5000", "kib_per_conn_10000", "kib_per_conn_100", "kib_per_conn_200"],
    "w6": ["control_cpu_us_per_delivery", "stuck_readers_p50_ms", "stuck_readers_p99_ms"],
}
# Counters that must be zero (or equal to what was expected) for a repetition to be correct.
MUST_BE_ZERO = (
    "errors",
    "lost",
    "duplicated",
    "misdelivered",
    "wrong_counts",
    "wrong_rosters",
)


def _with_pg(result: dict[str, Any]) -> dict[str, Any]:
    """Roundtable's join figures with its PostgreSQL's CPU added (the other servers have none)."""
    out = dict(result)
    for key in ("burst_cpu_us_per_join", "rejoin_cpu_us_per_cycle", "workshop_cpu_us_per_join"):
        pg_key = key.replace("_cpu_", "_pg_")
        if isinstance(result.get(key), int | float):
            out[key.replace("_cpu_", "_cpu_pg_")] = result[key] + (result.get(pg_key) or 0.0)
    return out


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    runs = [r for r in results["runs"] if "result" in r]
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["workload"], r["server"]), []).append(r)
    summary: dict[str, Any] = {"workloads": {}, "quiet": {}, "correctness": []}
    workloads = sorted({w for w, _ in by}, key=lambda w: int(w[1:]))
    servers = results["meta"]["servers"]
    for w in workloads:
        table: dict[str, Any] = {"figures": {}, "ratios": {}, "notes": {}}
        per_rep: dict[str, dict[int, dict[str, Any]]] = {}
        for s in servers:
            reps = by.get((w, s), [])
            if any("n/a" in r["result"] for r in reps):
                table["notes"][s] = reps[0]["result"]["n/a"]
                continue
            per_rep[s] = {r["rep"]: _with_pg(r["result"]) for r in reps}
            keys = sorted({k for r in per_rep[s].values() for k, v in r.items() if _numeric(v)})
            for k in keys:
                spread = Spread.of(r.get(k) for r in per_rep[s].values())
                if spread is not None:
                    table["figures"].setdefault(k, {})[s] = spread.as_dict()
        if "roundtable" in per_rep:
            for other in (s for s in servers if s != "roundtable" and s in per_rep):
                for k in RATIO_KEYS.get(w, []):
                    base_k = k.replace("_cpu_pg_", "_cpu_") if other != "roundtable" else k
                    ratios = []
                    for rep, rt in per_rep["roundtable"].items():
                        o = per_rep[other].get(rep, {})
                        a, b = rt.get(k), o.get(base_k)
                        if _numeric(a) and _numeric(b) and b:
                            ratios.append(a / b)
                    spread = Spread.of(ratios)
                    if spread is not None:
                        table["ratios"].setdefault(k, {})[other] = spread.as_dict()
        summary["workloads"][w] = table
    busy = [r["quiet"]["busy"] for r in runs if "quiet" in r]
    if busy:
        summary["quiet"] = {
            "phases": len(busy),
            "busy_median": Spread.of(busy).median if Spread.of(busy) else None,  # type: ignore[union-attr]
            "busy_max": max(busy),
            "quiet_phases": sum(1 for r in runs if r.get("quiet", {}).get("quiet")),
        }
    for r in runs:
        bad = {
            k: v
            for k, v in r["result"].items()
            if _numeric(v) and v and any(k.endswith(z) or f"_{z}_" in k or k == z for z in MUST_BE_ZERO)
        }
        bad |= {k: v for k, v in r["result"].items() if k.endswith(("complete", "converged")) and v is False}
        held, expected = r["result"].get("held_after_hold", r["result"].get("held")), r["result"].get("expected_held")
        if held is not None and expected is not None and held != expected:
            bad["not_held"] = expected - held
        if bad:
            summary["correctness"].append({"workload": r["workload"], "server": r["server"], "rep": r["rep"], **bad})
    summary["targets"] = targets(results, summary)
    return summary


def _ratio(summary: dict[str, Any], w: str, key: str, other: str) -> Spread | None:
    d = summary["workloads"].get(w, {}).get("ratios", {}).get(key, {}).get(other)
    return Spread(d["median"], d["min"], d["max"], int(d["n"])) if d else None


def _figure(summary: dict[str, Any], w: str, key: str, server: str) -> Spread | None:
    d = summary["workloads"].get(w, {}).get("figures", {}).get(key, {}).get(server)
    return Spread(d["median"], d["min"], d["max"], int(d["n"])) if d else None


def targets(results: dict[str, Any], summary: dict[str, Any]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    runs = [r for r in results["runs"] if "result" in r]

    def ratio_row(label: str, goal: str, w: str, key: str, other: str, *, ok: Callable[[float], bool]) -> None:
        if w not in results["meta"]["workloads"]:
            return
        s = _ratio(summary, w, key, other)
        if s is None:
            rows.append({"target": label, "goal": goal, "measured": "not measured", "met": "no"})
            return
        rt, ot = _figure(summary, w, key, "roundtable"), _figure(summary, w, key, other)
        detail = f" ({rt.median:.1f} vs {ot.median:.1f} µs)" if rt and ot else ""
        rows.append({"target": label, "goal": goal, "measured": s.fmt(2, X) + detail, "met": _yn(ok(s.median))})

    at_most = f"{X} bare relay"
    for label, goal, w, key, other, limit in (
        ("W3 relay CPU/msg, ICE candidates ~200 B", f"≤ 1.3{at_most}", "w3", "candidate_cpu_us_per_msg", "bare", 1.3),
        ("W3 relay CPU/msg, SDP offers ~3 KB", f"≤ 1.3{at_most}", "w3", "offer_cpu_us_per_msg", "bare", 1.3),
        ("W3 relay CPU/msg, SDP offers ~3 KB", f"below PeerJS (< 1.0{X})", "w3", "offer_cpu_us_per_msg", "peerjs", 0.0),
        ("W4 fan-out CPU/delivery, rooms of 10", f"≤ 1.3{at_most}", "w4", "room10_cpu_us_per_delivery", "bare", 1.3),
        ("W4 fan-out CPU/delivery, rooms of 60", f"≤ 1.3{at_most}", "w4", "room60_cpu_us_per_delivery", "bare", 1.3),
        ("W1 join CPU/join, 1 000 burst (server process)", f"≤ 2{at_most}", "w1", "burst_cpu_us_per_join", "bare", 2.0),
        (
            "W1 join CPU/join, 1 000 burst (server + PostgreSQL)",
            f"≤ 2{at_most}",
            "w1",
            "burst_cpu_pg_us_per_join",
            "bare",
            2.0,
        ),
    ):
        # limit 0.0 means "strictly below 1.0".
        ratio_row(label, goal, w, key, other, ok=(lambda m, lim=limit: m <= lim) if limit else (lambda m: m < 1.0))
    burst = [r for r in runs if r["workload"] == "w1" and r["server"] == "roundtable"]
    if burst:
        errors = sum(r["result"].get("burst_errors", 0) for r in burst)
        wrong = sum(1 for r in burst if not r["result"].get("burst_rosters_converged"))
        rows.append(
            {
                "target": "W1 errors in the 1 000 burst",
                "goal": "0",
                "measured": f"{errors} errors, {wrong} reps with a wrong roster, over {len(burst)} reps",
                "met": _yn(errors == 0 and wrong == 0),
            }
        )
    steps = results["meta"]["sizes"]["w5_steps"]
    top = max(steps) if steps else 0
    mem = _figure(summary, "w5", f"kib_per_conn_{top}", "roundtable")
    if mem is not None:
        rows.append(
            {
                "target": f"W5 memory per idle connection at {top:,}".replace(",", " "),
                "goal": "≤ 24 KiB",
                "measured": mem.fmt(1, " KiB"),
                "met": _yn(mem.median <= 24.0),
            }
        )
    slow = [r["result"] for r in runs if r["workload"] == "w6" and r["server"] == "roundtable"]
    if slow:
        evicted = sum(
            1
            for s in slow
            if s.get("stuck_receiver_evicted_seen_by_room") or s.get("stuck_receiver_close_code") == 1013
        )
        growth = max(s.get("stuck_rss_max_growth_kib", 0) for s in slow)
        complete = all(s.get("stuck_readers_all_delivered") for s in slow)
        # "Beyond noise": the run's own noise is the spread of the control phases over the repetitions.
        c50 = Spread.of(s.get("control_readers_p50_ms") for s in slow)
        c99 = Spread.of(s.get("control_readers_p99_ms") for s in slow)
        s50 = Spread.of(s.get("stuck_readers_p50_ms") for s in slow)
        s99 = Spread.of(s.get("stuck_readers_p99_ms") for s in slow)
        within_noise = bool(c50 and c99 and s50 and s99 and s50.median <= c50.high and s99.median <= c99.high)
        ok = evicted == len(slow) and growth <= 4096 and complete and within_noise
        lat = (
            f"readers' p50 {s50.median:.2f} ms, p99 {s99.median:.2f} ms "
            f"vs control p50 {c50.fmt(2)}, p99 {c99.fmt(2)} ms"
            if c50 and c99 and s50 and s99
            else "latency not measured"
        )
        rows.append(
            {
                "target": "W6 slow receiver",
                "goal": "memory bounded (≤ 4 MiB growth), evicted, readers' p50/p99 within the control phases' range",
                "measured": (
                    f"evicted {evicted}/{len(slow)}, RSS growth ≤ {growth / 1024:.1f} MiB, readers got "
                    f"{'every' if complete else 'NOT every'} update, {lat}"
                ),
                "met": _yn(ok),
            }
        )
    w7 = [r["result"] for r in runs if r["workload"] == "w7" and r["server"] == "roundtable"]
    if w7:
        share = Spread.of(r.get("core_share_per_participant") for r in w7)
        if share is None:
            measured, met = str(w7[0].get("n/a", "not measured")), False
        else:
            kbps = Spread.of(r.get("video_kbps_per_participant") for r in w7)
            ready = sum(1 for r in w7 if r.get("state_after_stop") == "ready")
            measured = (
                f"{share.median:.1%} [{share.low:.1%}{DASH}{share.high:.1%}] of a core per participant "
                f"({w7[0].get('participants')} {X} {w7[0].get('video')} at {kbps.median if kbps else 0:.0f} kbit/s + "
                f"Opus; {ready}/{len(w7)} recordings ready after stop)"
            )
            met = share.median <= 0.12
        rows.append(
            {
                "target": "W7 recorder CPU per audio+video participant",
                "goal": "≤ 12% of a core",
                "measured": measured,
                "met": _yn(met),
            }
        )
    rows += _w8_rows([r["result"] for r in runs if r["workload"] == "w8" and r["server"] == "roundtable"])
    return rows


def _w8_rows(w8: list[dict[str, Any]]) -> list[dict[str, str]]:
    """W8 (bench.sfu_plenary): Janus per forwarded stream, Roundtable above idle, the plenary held."""
    if not w8:
        return []
    if "n/a" in w8[0]:
        return [{"target": "W8 sfu plenary", "goal": DASH, "measured": str(w8[0]["n/a"]), "met": "no"}]
    r = w8[0]
    sweep = sorted(int(m[1]) for k in r if (m := re.fullmatch(r"n(\d+)_janus_share_per_av_stream_pct", k)))
    per = [r[f"n{n}_janus_share_per_av_stream_pct"] / 100 for n in sweep]
    above = [v / 100 for k, v in r.items() if k.endswith("_roundtable_above_idle_pct") and _numeric(v)]
    held = r.get("plenary_largest_held", 0)
    tried = sorted((int(m[1]) for k in r if (m := re.fullmatch(r"p(\d+)_held", k))), reverse=True)
    return [
        {
            "target": "W8 Janus CPU per forwarded audio+video stream",
            "goal": "≤ 0.3% of a core",
            "measured": ", ".join(f"N={n}: {v:.2%}" for n, v in zip(sweep, per, strict=True)) or "not measured",
            "met": _yn(bool(per) and max(per) <= 0.003),
        },
        {
            "target": "W8 Roundtable CPU above idle during steady media",
            "goal": "≤ 2% of a core",
            "measured": f"at most {max(above):.2%}" if above else "not measured",
            "met": _yn(bool(above) and max(above) <= 0.02),
        },
        {
            "target": "W8 reference plenary held, every subscription alive",
            "goal": "60 members",
            "measured": f"largest held {held} (tried {', '.join(map(str, tried)) or 'none'})"
            + (
                f"; at {held}: {r.get(f'p{held}_streams_subscribed')} streams, video delivered "
                f"{r.get(f'p{held}_video_delivered_ratio', 0):.1%} to the clients "
                f"({r.get(f'p{held}_udp_rcvbuf_drops')} datagrams dropped at their receive buffers)"
                if held
                else ""
            ),
            "met": _yn(held >= 60),
        },
    ]


def _yn(ok: bool) -> str:
    return "yes" if ok else "no"


def _fmt_spread(d: dict[str, float] | None, digits: int = 2) -> str:
    if not d:
        return DASH
    if d["n"] == 1:
        return f"{d['median']:.{digits}f}"
    return f"{d['median']:.{digits}f} [{d['min']:.{digits}f}{DASH}{d['max']:.{digits}f}]"


def markdown(results: dict[str, Any]) -> str:
    meta, summary = results["meta"], results["summary"]
    lines = [
        f"# Benchmark run {meta['started']}",
        "",
        f"Command: `{meta['command']}`; {meta['reps']} repetition(s); elapsed {meta.get('elapsed_s')} s.",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, {meta['machine']['memory_gib']} GiB, "
        f"kernel {meta['machine']['kernel']}; load generator on core {meta['loadgen_core']}, servers on core 0.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
    ]
    if summary.get("quiet"):
        q = summary["quiet"]
        lines.append(
            f"Machine busy before phases (all cores, 1 s): median {q['busy_median']:.0%}, max {q['busy_max']:.0%}; "
            f"{q['quiet_phases']}/{q['phases']} phases started quiet (≤ 30%)."
        )
    servers = meta["servers"]
    others = [s for s in servers if s != "roundtable"]
    for w, table in summary["workloads"].items():
        lines += ["", f"## {w.upper()}", ""]
        for s, note in table["notes"].items():
            lines.append(f"- {s}: {note}")
        if not table["figures"]:
            continue
        head = ["figure", *servers, *(f"RT÷{o}" for o in others if "roundtable" in servers)]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, per in table["figures"].items():
            row = [key, *(_fmt_spread(per.get(s)) for s in servers)]
            if "roundtable" in servers:
                row += [_fmt_spread(table["ratios"].get(key, {}).get(o)) for o in others]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Correctness", ""]
    if summary["correctness"]:
        lines += [f"- {c}" for c in summary["correctness"]]
    else:
        lines.append("No errors, losses, duplicates, wrong rosters or dropped connections.")
    if results.get("errors"):
        lines += ["", "## Failed phases", ""] + [
            f"- {e['workload']} {e['server']} rep {e['rep']}" for e in results["errors"]
        ]
    lines += ["", "## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
    lines += [f"| {t['target']} | {t['goal']} | {t['measured']} | {t['met']} |" for t in summary["targets"]]
    stopped = results.get("stopped", {})
    lines += [
        "",
        "Server processes stopped: "
        + ", ".join(f"{n} pids {v['pids']} left {v['left_running']}" for n, v in stopped.items()),
    ]
    return "\n".join(lines) + "\n"
