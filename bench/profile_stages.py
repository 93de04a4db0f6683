"""Benchmark: where each stage's seconds go (issue 21's profile table).

Generates a world (or reuses one under --root), then runs the main job's stages one after another in this
process, each under cProfile, and records per stage: wall seconds, Spark jobs started (the DAG scheduler's job
counter), Delta commits (new files in every _delta_log), and the promolake functions with the largest
cumulative time (time in Spark is charged to the Python call that waited for it). Prints a Markdown table
and appends JSON lines to --out.

    .venv/bin/python bench/profile_stages.py --root /tmp/prof1e5 --conf world.users=1087 --conf world.items=2000
    .venv/bin/python bench/profile_stages.py --root /tmp/profdefault            # the default world
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("generate", "ingest", "features", "train-als", "train-text", "train-uplift", "validate-and-promote",
          "score", "report")


def delta_commits(root: Path) -> int:
    return sum(1 for p in root.rglob("_delta_log/*.json"))


def top_functions(prof: cProfile.Profile, n: int, total: float) -> list[tuple[str, float, int]]:
    """(module:function, cumulative seconds, calls) of the promolake functions with the largest cumulative
    time, skipping the stage's own entry points and functions that only wrap one larger child."""
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, name), (cc, nc, tt, ct, callers) in stats.stats.items():
        if "/promolake/" not in file or ct < 0.02 * total:
            continue
        module = file.split("/promolake/", 1)[1].removesuffix(".py").replace("/", ".")
        rows.append((f"{module}.{name}", ct, nc))
    rows.sort(key=lambda r: -r[1])
    return rows[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, type=Path, help="lake root (PROMOLAKE_HOME)")
    ap.add_argument("--conf", action="append", default=[], help="config override key=value (repeatable)")
    ap.add_argument("--stages", nargs="*", default=list(STAGES))
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "profile.jsonl")
    ap.add_argument("--label", default="")
    args = ap.parse_args(argv)

    os.environ["PROMOLAKE_HOME"] = str(args.root)
    os.environ.setdefault("PROMOLAKE_PII_SALT", "bench")
    from promolake.common.config import load_config
    from promolake.common.spark import get_spark
    from promolake.pipeline import STAGES as RUNNERS

    cfg = load_config("local", overrides=["spark.show_progress=false", *args.conf], conf_dir=REPO / "conf")
    spark = get_spark(cfg.spark)
    dag = spark.sparkContext._jsc.sc().dagScheduler()
    args.root.mkdir(parents=True, exist_ok=True)
    results = []
    for stage in args.stages:
        jobs0, commits0 = dag.nextJobId(), delta_commits(args.root)
        prof = cProfile.Profile()
        started = time.perf_counter()
        prof.enable()
        RUNNERS[stage](spark, cfg)
        prof.disable()
        wall = time.perf_counter() - started
        row = {"stage": stage, "seconds": round(wall, 1), "spark_jobs": dag.nextJobId() - jobs0,
               "delta_commits": delta_commits(args.root) - commits0,
               "top": [(f, round(s, 1), c) for f, s, c in top_functions(prof, args.top, wall)],
               "conf": args.conf, "label": args.label, "date": dt.date.today().isoformat()}
        results.append(row)
        print(f"== profile {stage}: {wall:.1f}s, {row['spark_jobs']} Spark jobs, {row['delta_commits']} Delta "
              f"commits ==", flush=True)
        for f, s, c in row["top"]:
            print(f"     {s:8.1f}s {c:6d}x  {f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        for row in results:
            fh.write(json.dumps(row) + "\n")
    print("\n| stage | seconds | Spark jobs | Delta commits | largest (cumulative s) |")
    print("|---|---:|---:|---:|---|")
    for r in results:
        biggest = "; ".join(f"{f.rsplit('.', 1)[-1]} {s:.0f}" for f, s, _ in r["top"][1:4])
        print(f"| {r['stage']} | {r['seconds']:.0f} | {r['spark_jobs']} | {r['delta_commits']} | {biggest} |")
    print(f"| total | {sum(r['seconds'] for r in results):.0f} | {sum(r['spark_jobs'] for r in results)} | "
          f"{sum(r['delta_commits'] for r in results)} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
