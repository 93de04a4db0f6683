"""Benchmark: ALS engines and top-k on the same data and cores, with the quality they reach.

Compares, in one run:
  - Spark MLlib ALS with default settings (10 x 10 blocks) vs tuned (one block per core, storage
    levels, checkpointing as in promolake.ml.als), and the single-node engine (`implicit`);
  - Spark's recommendForAllUsers(k) vs promolake's blocked top-k over the same factor matrices.
Each fit is scored on a time split (train before T, purchases in [T, T + 28 days)) with the project's
evaluator, so a faster setting never hides a quality loss.

Data: `--online-retail` (default) reads the UCI Online Retail file from ../shared/data directly
(customer x stock code purchase lines, cancellations and non-products dropped); `--lake PATH` uses the
silver.events of an existing lake (e.g. after `make demo`).

    .venv/bin/python bench/als.py                      # UCI Online Retail
    .venv/bin/python bench/als.py --lake lakehouse     # the demo world
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from foundation import PeakMemory  # noqa: E402

RETAIL = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "online_retail",
                      "online_retail.parquet")


def retail_events(spark, path: str):
    """UCI Online Retail as (user_id, item_id, event_type='purchase', event_ts)."""
    from pyspark.sql import functions as F

    raw = spark.read.parquet(path)
    return (raw.where(F.col("CustomerID").isNotNull() & (F.col("Quantity") > 0) & (F.col("UnitPrice") > 0)
                      & ~F.col("InvoiceNo").cast("string").startswith("C")
                      & F.col("StockCode").cast("string").rlike("^[0-9]{5}"))
            .select(F.col("CustomerID").cast("long").cast("string").alias("user_id"),
                    F.col("StockCode").cast("string").alias("item_id"), F.lit("purchase").alias("event_type"),
                    F.col("InvoiceDate").cast("timestamp").alias("event_ts")))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", default=None, help="use silver.events of this lake instead of Online Retail")
    ap.add_argument("--retail", default=RETAIL)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--driver-memory", default="6g")
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from promolake.common.config import AlsConf, load_config
    from promolake.common.lake import Lake
    from promolake.common.spark import get_spark
    from promolake.ml import interactions as ia
    from promolake.ml.als import AlsParams, fit, spark_als, task_slots
    from promolake.ml.evaluation import ranking_metrics
    from promolake.ml.topk import top_k

    home = os.path.abspath(args.lake) if args.lake else "/tmp/promolake-bench-als"
    cfg = load_config("local", overrides=[f"spark.driver_memory={args.driver_memory}", "spark.show_progress=false"],
                      environ={**os.environ, "PROMOLAKE_HOME": home, "PROMOLAKE_PII_SALT": "bench"})
    spark = get_spark(cfg.spark)
    events = (Lake(spark, cfg.lake).read("silver.events") if args.lake else retail_events(spark, args.retail)).cache()
    last = events.agg(F.max("event_ts")).first()[0].date()
    cut = last + dt.timedelta(days=1) - dt.timedelta(days=28)
    ac: AlsConf = cfg.als
    raw = ia.interactions(events, cut, 3650, ac.weights, ac.half_life_days).cache()
    uidx = raw.select("user_id").distinct().withColumn("user", F.row_number().over(
        __import__("pyspark.sql", fromlist=["Window"]).Window.orderBy("user_id")).cast("int") - 1)
    iidx = events.select("item_id").distinct().withColumn("item", F.row_number().over(
        __import__("pyspark.sql", fromlist=["Window"]).Window.orderBy("item_id")).cast("int") - 1)
    train = raw.join(uidx, "user_id").join(iidx, "item_id").select("user", "item", "confidence").cache()
    pairs = train.count()
    relevant = ia.purchases_in(events, cut, last + dt.timedelta(days=1))
    users = uidx.select("user_id")
    n_users, n_items = uidx.count(), iidx.count()
    params = AlsParams(args.rank, ac.reg_param, ac.alpha, args.iterations, 42)
    print(f"data: {'lake ' + home if args.lake else 'UCI Online Retail'}; {pairs:,} (user, item) pairs, "
          f"{n_users:,} users, {n_items:,} items; test purchases in [{cut}, {last + dt.timedelta(days=1)}); "
          f"rank {args.rank}, {args.iterations} iterations, k {args.k}, master {spark.sparkContext.master}")

    def quality(user_factors, item_factors):
        recs = (top_k(user_factors, item_factors, args.k)
                .join(uidx.withColumnRenamed("user", "user"), "user").join(iidx, "item")
                .select("user_id", "item_id", "rank"))
        return ranking_metrics(recs, relevant, users, args.k, n_items)

    rows = []
    sc = spark.sparkContext
    slots = task_slots(sc.master, sc.defaultParallelism)
    with PeakMemory() as mem:
        for name, tuned in (("spark default (10x10 blocks)", False), (f"spark tuned ({slots}x{slots} blocks)", True)):
            if tuned and ac.spark.checkpoint_dir:
                sc.setCheckpointDir(os.path.abspath(ac.spark.checkpoint_dir))
            model, secs = timed(lambda: spark_als(params, ac, slots, tuned=tuned).fit(train))
            m = quality(model.userFactors, model.itemFactors)
            rows.append((name, secs, m))
            if tuned:
                _, rec_all = timed(lambda: model.recommendForAllUsers(args.k).write.format("noop").mode("overwrite").save())
                _, blocked = timed(lambda: top_k(model.userFactors, model.itemFactors, args.k)
                                   .write.format("noop").mode("overwrite").save())
        single, _ = timed(lambda: fit(spark, train, params, ac, engine="single_node", pairs=pairs))
        rows.append(("single_node (implicit)", single.fit_seconds, quality(single.users, single.items)))
    print("| engine | fit s | speed-up vs default | ndcg@k | recall@k | precision@k | users |")
    base = rows[0][1]
    for name, secs, m in rows:
        print(f"| {name} | {secs:.1f} | {base / secs:.1f}x | {m['ndcg']:.4f} | {m['recall']:.4f} | "
              f"{m['precision']:.4f} | {int(m['users']):,} |")
    print(f"| top-k for all {n_users:,} users | recommendForAllUsers {rec_all:.1f} s | blocked top-k {blocked:.1f} s "
          f"| {rec_all / blocked:.1f}x |")
    print(f"peak RSS (driver + JVM) {mem.peak / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
