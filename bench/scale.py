"""Benchmark: the whole pipeline on synthetic worlds of growing size (the scale curve).

For each target number of events (default 1e5, 1e6, 1e7), a world is generated with the default world's
shape (items, days, sessions per user-day) and users scaled to reach the target, then every stage of the
main job runs as its own process, as a Databricks task would: `promolake <stage>`. For each stage it
records the wall time, the peak resident memory of the process tree (Python driver + JVM, sampled every
0.5 s), the world's events and events/second; at the end it prints a Markdown table and the log-log slope
of time against events per stage (1 = linear). Results are appended as JSON lines to --out.

    .venv/bin/python bench/scale.py                                   # 1e5, 1e6, 1e7 events
    .venv/bin/python bench/scale.py --events 1e5 1e6 --root /tmp/scale --conf als.tuning.trials=4
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
STAGES = ("generate", "ingest", "features", "train-als", "train-text", "train-uplift", "validate-and-promote", "score")
DEFAULT_EVENTS_PER_USER = 1_839_617 / 20_000       # measured on the default world (BENCHMARKS.md)


def run_stage(stage: str, home: Path, conf: list[str], log) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB of the process tree, exit code) of `promolake <stage>`."""
    cmd = [str(REPO / ".venv" / "bin" / "promolake"), stage, "--env", "local"] + [a for c in conf for a in ("--conf", c)]
    env = {**os.environ, "PROMOLAKE_HOME": str(home), "PROMOLAKE_PII_SALT": os.environ.get("PROMOLAKE_PII_SALT", "bench")}
    peak, done = [0], threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def sample():
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            done.wait(0.5)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    code = proc.wait()
    done.set()
    t.join()
    return time.perf_counter() - started, peak[0] / 2**20, code


def count_events(home: Path) -> int:
    code = ("import os,sys; from promolake.common.config import load_config; from promolake.common.spark import get_spark;"
            "from promolake.common.lake import Lake; cfg=load_config('local', overrides=['spark.show_progress=false']);"
            "print(Lake(get_spark(cfg.spark), cfg.lake).read('silver.events').count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PROMOLAKE_HOME": str(home)})
    return int(out.stdout.strip().splitlines()[-1])


def slope(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 2:
        return None
    xs, ys = [math.log(x) for x, _ in points], [math.log(max(y, 1e-3)) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    ap.add_argument("--root", default="/tmp/promolake-scale", help="one lake per size under this folder")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="passed to every stage")
    ap.add_argument("--stages", nargs="+", default=list(STAGES))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "scale.jsonl"))
    ap.add_argument("--report", metavar="SINCE", help="run nothing: print the table and slopes of the rows of --out "
                    "measured on or after SINCE (e.g. 2026-11-30), so sizes run by separate invocations combine")
    args = ap.parse_args()
    if args.report:
        with open(args.out) as f:
            rows = [r for r in map(json.loads, f) if r["measured_at"] >= args.report and r["exit_code"] == 0]
        print_report(rows, [s for s in STAGES if s in args.stages])
        return
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for target in args.events:
        users = max(50, round(target / DEFAULT_EVENTS_PER_USER))
        home = Path(args.root) / f"events-{int(target):d}"
        conf = [f"world.users={users}", "spark.show_progress=false", *args.conf]
        home.mkdir(parents=True, exist_ok=True)
        events = None
        with open(home / "bench.log", "a") as log:
            for stage in args.stages:
                seconds, peak, code = run_stage(stage, home, conf, log)
                if stage == "ingest" or (events is None and stage != "generate"):
                    events = count_events(home)
                row = {"target_events": int(target), "users": users, "events": events, "stage": stage,
                       "seconds": round(seconds, 1), "peak_mib": round(peak), "exit_code": code,
                       "events_per_s": round(events / seconds) if events else None, "conf": conf,
                       "cores": os.cpu_count(), "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
                rows.append(row)
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{int(target):>10,} events target ({users:,} users): {stage:<22} {seconds:8.1f} s "
                      f"peak {peak:7.0f} MiB exit {code}", flush=True)
                if code != 0:
                    print(f"  {stage} failed: see {home / 'bench.log'}; later stages of this size skipped")
                    break
        for r in rows:      # generate runs before there is a silver table to count: the world's count
            if r["target_events"] == int(target) and r["events"] is None and events:
                r["events"], r["events_per_s"] = events, round(events / r["seconds"])
    print_report(rows, args.stages)


def print_report(rows: list[dict], stages) -> None:
    """A Markdown table of rows and the log-log slope of time against events per stage. A generate row
    (written before its world's events were counted) takes the count of a later row of its size."""
    counted = {r["target_events"]: r["events"] for r in rows if r["events"]}
    for r in rows:
        if r["events"] is None and counted.get(r["target_events"]):
            r["events"] = counted[r["target_events"]]
            r["events_per_s"] = round(r["events"] / r["seconds"])
    print("\n| events | stage | seconds | peak MiB | events/s |\n|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['events'] or r['target_events']:,} | {r['stage']} | {r['seconds']:,.1f} | {r['peak_mib']:,} | "
              f"{r['events_per_s'] or '-'} |")
    print("\n| stage | log-log slope (time vs events) |\n|---|---:|")
    for stage in stages:
        pts = [(r["events"], r["seconds"]) for r in rows if r["stage"] == stage and r["events"] and r["exit_code"] == 0]
        s = slope(pts)
        print(f"| {stage} | {'-' if s is None else f'{s:.2f}'} |")


if __name__ == "__main__":
    main()
