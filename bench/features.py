"""Benchmark: the features stage (silver -> gold) on a synthetic world of a given size.

Generates and ingests the world (not timed), then times `run_features` for the day after the last
event, and prints events/second and the peak resident memory of driver + JVM. Run it on the default
world and on 10x that size to see how the cost grows with events:

    .venv/bin/python bench/features.py --users 20000              # default world
    .venv/bin/python bench/features.py --users 200000 --driver-memory 10g
    .venv/bin/python bench/features.py --lake lakehouse           # an existing lake (e.g. after make demo)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from foundation import PeakMemory  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--lake", default=None, help="use this existing lake (skip generate and ingest)")
    args = ap.parse_args()

    home = os.path.abspath(args.lake) if args.lake else tempfile.mkdtemp(prefix="promolake-bench-")
    os.environ.setdefault("PROMOLAKE_PII_SALT", "bench")

    from promolake.common.config import load_config
    from promolake.common.lake import Lake
    from promolake.common.spark import get_spark
    from promolake.gold.features import run_features

    cfg = load_config("local", overrides=[f"world.users={args.users}", f"world.items={args.items}",
                                          f"world.days={args.days}", f"spark.driver_memory={args.driver_memory}",
                                          "spark.show_progress=false"],
                      environ={**os.environ, "PROMOLAKE_HOME": home})
    spark = get_spark(cfg.spark)
    if not args.lake:
        from promolake.landing.synthetic_world import run_generate
        from promolake.silver.ingest import run_ingest

        run_generate(spark, cfg, force=True)
        run_ingest(spark, cfg)
    lake = Lake(spark, cfg.lake)
    events = lake.read("silver.events").count()
    users = lake.read("silver.users").count()
    with PeakMemory() as mem:
        t = time.perf_counter()
        report = run_features(spark, cfg)
        secs = time.perf_counter() - t
    print(f"\nusers={users:,} events={events:,} features {secs:.0f} s, {events / secs:,.0f} events/s, "
          f"peak RSS (driver+JVM)={mem.peak / 2**30:.1f} GiB")
    print("| users | events | seconds | events/s | peak GiB | per table (s, cumulative) |")
    per_table = ", ".join(f"{r['table'].split('.')[1]} {r['elapsed_s']:.0f}" for r in report.rows)
    print(f"| {users:,} | {events:,} | {secs:.0f} | {events / secs:,.0f} | {mem.peak / 2**30:.1f} | {per_table} |")
    if not args.lake:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
