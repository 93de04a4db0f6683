"""Benchmark: generate a synthetic world of a given size and ingest it (landing -> bronze -> silver).

Records wall time, rows and rows/second per stage and the peak resident memory of the whole
process tree (Python driver + JVM), sampled every 0.5 s. Appends a Markdown row to stdout; copy it to
BENCHMARKS.md with the date and machine.

    .venv/bin/python bench/foundation.py --users 20000 --days 365
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time

import psutil


class PeakMemory:
    """Peak RSS of this process and its children (the JVM), sampled in a background thread."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            procs = [me] + me.children(recursive=True)
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, rss)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--keep", action="store_true", help="keep the lake folder")
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="promolake-bench-")
    os.environ.setdefault("PROMOLAKE_PII_SALT", "bench")
    from promolake.common.config import load_config
    from promolake.common.spark import get_spark
    from promolake.landing.synthetic_world import run_generate
    from promolake.silver.ingest import run_ingest

    cfg = load_config("local", overrides=[f"world.users={args.users}", f"world.items={args.items}",
                                          f"world.days={args.days}", f"spark.driver_memory={args.driver_memory}",
                                          "spark.show_progress=false"],
                      environ={**os.environ, "PROMOLAKE_HOME": home})
    spark = get_spark(cfg.spark)
    results = []
    with PeakMemory() as mem:
        t = time.perf_counter()
        gen = run_generate(spark, cfg, force=True)
        results.append(("generate", time.perf_counter() - t, sum(r.get("rows", 0) for r in gen.rows)))
        t = time.perf_counter()
        ing = run_ingest(spark, cfg)
        results.append(("ingest", time.perf_counter() - t, sum(r.get("read", 0) for r in ing.rows)))
    events = next(r.get("rows", 0) for r in gen.rows if r.get("source") == "events")
    print(f"\nusers={args.users} items={args.items} days={args.days} events={events:,} "
          f"peak RSS (driver+JVM)={mem.peak / 2**30:.1f} GiB")
    print("| stage | users | events | rows | seconds | rows/s |")
    for stage, secs, rows in results:
        print(f"| {stage} | {args.users:,} | {events:,} | {rows:,} | {secs:.0f} | {rows / secs:,.0f} |")
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
