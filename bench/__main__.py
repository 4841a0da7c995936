"""`python -m bench [--quick] [--only FIGURE ...]`: every figure, side by side with its
baselines, as a table of medians and ratios (also written to bench/results/)."""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import figures
from bench.env import BenchEnv
from bench.figures import median, p99

RESULTS = Path(__file__).resolve().parent / "results"
FIGURES = ("trigger", "steps", "logs", "reads", "burst", "scale", "calls", "deliveries")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs and samples")
    parser.add_argument("--only", nargs="+", choices=FIGURES, help="run only these figures")
    parser.add_argument("--no-buildbot", action="store_true", help="skip the Buildbot baseline")
    parser.add_argument("--executions", type=int, help="executions stored for the reads figure "
                        "(default 5000, 500 with --quick)")
    parser.add_argument("--samples", type=int, help="samples of the reads figure "
                        "(default 300, 50 with --quick)")
    args = parser.parse_args()
    # A `timeout` or Ctrl-C ends the run through the context managers, which stop every
    # process the bench started (an orphaned worker would go on acting on the engine).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = args.only or list(FIGURES)
    runs = 5 if args.quick else 20
    results: dict[str, Any] = {"quick": args.quick, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "machine": f"{platform.machine()}, {_cpus()} cores"}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with BenchEnv() as env:
        buildbot = _buildbot(env, args) if {"trigger", "steps"} & set(chosen) else None
        try:
            if "trigger" in chosen:
                results["trigger"] = figures.trigger_latency(env, runs, buildbot)
                save(results, stamp)
            if "steps" in chosen:
                results["steps"] = figures.step_overhead(env, 2 if args.quick else 5, buildbot)
                save(results, stamp)
        finally:
            if buildbot is not None:
                buildbot.__exit__(None, None, None)
        if "logs" in chosen:
            results["logs"] = figures.big_logs(env, 1 if args.quick else 3)
            save(results, stamp)
        if "burst" in chosen:
            results["burst"] = figures.burst(env, 20 if args.quick else 50)
            save(results, stamp)
        if "scale" in chosen:
            results["scale"] = figures.scale_out(env, 20 if args.quick else 40)
        if "scale" in chosen or "calls" in chosen:
            results["calls"] = figures.api_calls(env, 5 if args.quick else 10)
            save(results, stamp)
        if "deliveries" in chosen:
            results["deliveries"] = figures.deliveries(env, 40 if args.quick else 80)
            save(results, stamp)
        # Last: storing thousands of executions takes the longest.
        if "reads" in chosen:
            results["reads"] = figures.api_reads(
                env, args.executions or (500 if args.quick else 5000),
                args.samples or (50 if args.quick else 300))
            save(results, stamp)
    print(save(results, stamp))
    return 0


def save(results: dict[str, Any], stamp: str) -> str:
    """Write the results so far (each figure as it ends: a long run cut short keeps them)."""
    table = render(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stamp}.json").write_text(json.dumps(results, indent=2, default=str))
    (RESULTS / f"{stamp}.md").write_text(table + "\n")
    return table


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _buildbot(env: BenchEnv, args: argparse.Namespace) -> Any:
    if args.no_buildbot:
        return None
    from bench.buildbot_baseline import BuildbotBaseline

    baseline = BuildbotBaseline(env.state / "buildbot")
    return baseline.__enter__()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def trigger_breakdown(runs: list[dict[str, float]]) -> str:
    """Each milestone's median time after `run` was called, and the median step to it."""
    parts, before = [], 0.0
    for name, what in figures.MILESTONES:
        at = median([run[name] for run in runs])
        parts.append(f"{what} {_ms(at)} (+{_ms(at - before)})")
        before = at
    return "; ".join(parts)


def render(results: dict[str, Any]) -> str:
    """The table: figure, what, ours, baselines, ratio, target."""
    rows = [
        "| Figure | Measure | prefect-pipelines | Baselines | Ratio | Target |",
        "|---|---|---|---|---|---|",
    ]
    if "trigger" in results:
        t = results["trigger"]
        ours = median(t["ours"])
        stock = median(t["stock_process_worker"])
        line = f"stock process worker {_s(stock)}"
        ratio = f"{stock / ours:.1f}x faster than stock"
        if "buildbot" in t:
            bb = median(t["buildbot"])
            line += f"; Buildbot 4.3 {_s(bb)}"
            ratio += f", {bb / ours:.1f}x than Buildbot"
        rows.append(f"| 1. Trigger latency | `run` response -> container running, median of {len(t['ours'])} | "
                    f"{_s(ours)} | {line} | {ratio} | <= 1.0 s, ahead of both |")
        if t.get("breakdown"):
            rows.append(f"| 1a. Where it goes | {trigger_breakdown(t['breakdown'])} | | | | |")
    if "steps" in results:
        s = results["steps"]
        ours, bare = median(s["ours"]), median(s["bare_docker_20"])
        line = f"20 x `docker run --rm busybox true` {_s(bare)}"
        if "buildbot" in s:
            line += f"; Buildbot 20 steps {_s(median(s['buildbot']))} ({median(s['buildbot']) / bare:.2f}x bare)"
        total = median(s["ours_trigger_to_finished"])
        rows.append(f"| 2. Step overhead | 20 stages of `true`: the run's start to end, median of {len(s['ours'])} "
                    f"(`run` response to finished: {_s(total)}, {total / bare:.2f}x) | "
                    f"{_s(ours)} | {line} | {ours / bare:.2f}x bare | <= 1.3x |")
    if "logs" in results:
        g = results["logs"]
        wall, bare = median(g["step_wall"]), median(g["bare_container"])
        rows.append(f"| 3. Logs | 200,000 lines (~10 MB): step wall time | {_s(wall)} | "
                    f"container alone, output to /dev/null {_s(bare)} | {wall / bare:.2f}x | <= 1.5x |")
        rows.append(f"| 3. Logs | container end -> last line in /v3 log | {_s(median(g['last_line_visible_after']))} | | | <= 3 s |")
        peak = g["peak_rss_mb"]
        rows.append(f"| 3. Logs | peak memory (RSS) | worker {peak['worker']:.0f} MB, facade {peak['facade']:.0f} MB | | | < 300 MB each |")
        rows.append(f"| 3. Logs | GET the log (latest 1 MiB), median | {_ms(median(g['log_read_latency']))} | | | < 200 ms |")
    if "reads" in results:
        r = results["reads"]
        for key, label in (("get_one", "GET one execution"), ("list_page", "GET first page (50) of a pipeline's executions")):
            ours, prefect = r[key], r[f"{key}_prefect"]
            rows.append(f"| 4. API reads ({r['executions']} executions x 10 steps) | {label}: median / p99 | "
                        f"{_ms(median(ours))} / {_ms(p99(ours))} | Prefect API for the same flow run(s) "
                        f"{_ms(median(prefect))} / {_ms(p99(prefect))} | {median(ours) / median(prefect):.1f}x | "
                        "< 30 ms / < 100 ms |")
        if "list_page_parts" in r:
            parts = r["list_page_parts"]
            rest = median(r["list_page"]) - median(parts["prefect_calls"]) - median(parts["parse"])
            rows.append("| 4. API reads | a list page, measured apart: the Prefect calls it makes (deployment, "
                        "page of flow runs, count; at once) / parsing the 50 flow runs / the rest (the facade's "
                        f"own work, HTTP) | {_ms(median(parts['prefect_calls']))} / {_ms(median(parts['parse']))} / "
                        f"{_ms(rest)} | reading the 500 task runs, which finished runs' records of their steps "
                        f"save: {_ms(median(parts['task_runs_saved']))} | | |")
    if "burst" in results:
        b = results["burst"]
        rows.append(f"| 5. Burst | {b['calls']} `run` calls at once, 5 pipelines | {b['succeeded']}/{b['calls']} succeeded "
                    f"({b.get('answered_503_then_retried', 0)} first answered 503 + Retry-After), "
                    f"{b['stored']} stored, gap-free {b['gap_free']}, started twice {b['containers_started_twice']}, "
                    f"most running at once {b['max_running']} (quota {b['quota']}) | makespan {_s(b['makespan'])} vs "
                    f"{b['calls']} x one run ({_s(b['one_run'])}) / quota = {_s(b['ideal_makespan'])} | "
                    f"{b['makespan'] / b['ideal_makespan']:.2f}x | all finish, none lost or twice, quota holds |")
    if "scale" in results:
        for key in ("one_worker", "two_workers"):
            c = results["scale"][key]
            cpu = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in c["cpu_seconds_per_run"].items())
            rows.append(f"| 6. Scale-out | {c['runs']} one-step runs at once, 10 projects, {c['label']} | "
                        f"{c['succeeded']}/{c['runs']} in {_s(c['makespan'])}, {c['runs_per_minute']:.0f} runs/min | "
                        f"CPU per run: {cpu} | | (docs/scaling.md) |")
    if "calls" in results:
        a = results["calls"]
        top = ", ".join(f"{name} {count:.1f}" for name, count in list(a["calls_per_run"].items())[:12])
        events = ", ".join(f"{name} {count:.1f}" for name, count in sorted(
            a["stored_events_per_run"].items(), key=lambda item: -item[1])[:8])
        rows.append(f"| 6a. Prefect's work per run | a counting pass: {a['runs']} one-step runs one "
                    f"after another through a counting proxy (idle polling, "
                    f"{a['idle_calls_per_second']:.1f} calls/s, taken off) | "
                    f"{a['calls_per_run_total']:.0f} API calls and "
                    f"{a['stored_events_per_run_total']:.0f} stored events per run "
                    f"({a['client_events_per_run']:.0f} sent by clients) | calls: {top}; events: "
                    f"{events} | | half the server CPU per run |")
    if "deliveries" in results:
        d = results["deliveries"]
        rows.append(f"| 7. Webhook burst | {d['deliveries']} signed pushes at once to one pipeline, "
                    f"redelivered until 2xx | {d['accepted']}/{d['deliveries']} accepted in "
                    f"{d['attempts']} attempts ({d['refused']} refused); answers: median "
                    f"{_ms(d['median_answer'])}, p99 {_ms(d['p99_answer'])}, longest "
                    f"{_ms(d['longest_answer'])}; {d['executions']} executions, "
                    f"{d['succeeded']} succeeded, all done in {_s(d['makespan'])} | GitHub waits 10 s | "
                    f"{d['longest_answer'] / 10:.2f} of GitHub's wait | longest answer < 1 s, one "
                    "execution per delivery |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
