"""Benchmark: the promotion engine against the synthetic world's hidden truth.

Trains the uplift model (unless --skip-train) and scores a campaign on an existing generated lake, then
prints, for the same budget, the true expected incremental profit of the engine's assignments, an
oracle that knows the true response, blanket 10% off, random offers and purchase-propensity targeting
(promolake.promo.simulation), with the stage timings.

    .venv/bin/python bench/promotion.py --lake lakehouse                       # after make demo
    .venv/bin/python bench/promotion.py --lake lakehouse --budget 5000 --campaign-id DEMO01
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", default="lakehouse")
    ap.add_argument("--campaign-id", default=None)
    ap.add_argument("--budget", type=float, default=None)
    ap.add_argument("--skip-train", action="store_true", help="use the registered @challenger uplift model")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    os.environ.setdefault("PROMOLAKE_PII_SALT", "bench")
    from promolake.common.config import load_config
    from promolake.common.spark import get_spark
    from promolake.promo.scoring import run_score
    from promolake.promo.train_uplift import run_train_uplift

    overrides = ["spark.show_progress=false", *args.conf] + ([f"promotion.budget={args.budget}"] if args.budget else [])
    cfg = load_config("local", overrides=overrides, environ={**os.environ, "PROMOLAKE_HOME": os.path.abspath(args.lake)})
    spark = get_spark(cfg.spark)
    times = {}
    if not args.skip_train:
        t = time.perf_counter()
        run_train_uplift(spark, cfg)
        times["train-uplift"] = time.perf_counter() - t
    t = time.perf_counter()
    report = run_score(spark, cfg, args.campaign_id)
    times["score"] = time.perf_counter() - t
    rows = next((r for title, r in report.sections if title.startswith("simulated truth")), None)
    print(f"\ncampaign {args.campaign_id or cfg.promotion.campaign_id}, budget {cfg.promotion.budget:,.0f}, "
          f"lake {args.lake}; " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    if rows:
        print("\n| policy | users | true cost | budget | true incremental profit | share of oracle |\n|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['policy']} | {r['users']:,} | {r['true_cost']:,.2f} | {r['budget']:,.0f} | "
                  f"{r['true_incremental_profit']:,.2f} | {r['share_of_oracle']} |")
    agreement = next((r for title, r in report.sections if title.startswith("simulated truth: predicted")), None)
    if agreement:
        print("\n| offer | pairs | Spearman (predicted vs true uplift) | mean predicted | mean true |\n|---|---:|---:|---:|---:|")
        for r in agreement:
            print(f"| {r['offer_id']} | {r['pairs']:,} | {r['spearman']} | {r['mean_predicted']} | {r['mean_true']} |")
    spark.stop()


if __name__ == "__main__":
    main()
