"""Customer segments: k-means (Spark ML) on the standardised numeric user profile, numbered by mean
spend and named after each segment's most distinctive traits."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from pyspark.ml.clustering import KMeans
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from promolake.common.config import SegmentConf

# feature -> (expression over the profile, words when the segment is high, words when low); lambdas
# because building a Column needs a running SparkContext.
SEGMENT_FEATURES: dict[str, tuple[Callable[[], Column], str, str]] = {
    "spend": (lambda: F.log1p("spend_365d"), "big spenders", "low spend"),
    "frequency": (lambda: F.log1p("orders_365d"), "frequent buyers", "rare buyers"),
    "engagement": (lambda: F.log1p("events_30d"), "highly active lately", "inactive lately"),
    "recency": (lambda: F.coalesce(F.col("recency_days"), F.lit(400)), "lapsed", "bought recently"),
    "deal_share": (lambda: F.coalesce("discount_unit_share", F.lit(0.0)), "buy mostly on discount", "pay full price"),
    "price_level": (lambda: F.coalesce("price_index", F.lit(1.0)), "premium items", "cheaper items"),
    "coupon_use": (lambda: F.coalesce("redemption_rate", F.lit(0.0)), "redeem coupons", "ignore coupons"),
    "trend": (lambda: F.coalesce("activity_trend", F.lit(0.0)), "growing activity", "declining activity"),
}
NAME_Z = 0.5  # a trait is named when the segment's mean is at least this many standard deviations off


@dataclass(frozen=True)
class Segment:
    segment: int
    name: str
    users: int
    mean_spend_365d: float


def assign_segments(profile: DataFrame, conf: SegmentConf) -> tuple[DataFrame, list[Segment]]:
    """Return (profile with segment and segment_name, one Segment per segment, largest first).

    k is conf.k (fewer when there are fewer distinct users). Segment 0 has the lowest mean 365-day
    spend. Names list up to two traits whose centroid is >= 0.5 standard deviations from the mean.
    """
    features = list(SEGMENT_FEATURES)
    with_x = profile.select("*", *[SEGMENT_FEATURES[f][0]().cast("double").alias(f"_x_{f}") for f in features])
    n = with_x.count()
    if n == 0:
        return _with_segment(profile, None, {}), []
    vec = VectorAssembler(inputCols=[f"_x_{f}" for f in features], outputCol="_raw").transform(with_x)
    scaled = StandardScaler(inputCol="_raw", outputCol="_z", withMean=True, withStd=True).fit(vec).transform(vec)
    model = KMeans(k=max(2, min(conf.k, n)), seed=conf.seed, maxIter=conf.max_iter, featuresCol="_z",
                   predictionCol="_cluster").fit(scaled)
    clustered = model.transform(scaled)
    stats = clustered.groupBy("_cluster").agg(F.count(F.lit(1)).alias("users"), F.avg("spend_365d").alias("spend")) \
        .collect()
    centers = model.clusterCenters()
    order = sorted(stats, key=lambda r: (r.spend, r._cluster))
    renumber = {r._cluster: i for i, r in enumerate(order)}
    names = {r._cluster: describe_centroid(centers[r._cluster], features) for r in order}
    segments = sorted((Segment(renumber[r._cluster], names[r._cluster], r.users, float(r.spend or 0.0)) for r in order),
                      key=lambda s: (-s.users, s.segment))
    out = _with_segment(clustered, renumber, names)
    return out.select(*profile.columns, "segment", "segment_name"), segments


def describe_centroid(center: np.ndarray, features: list[str]) -> str:
    """Words for a standardised centroid: its (up to two) strongest traits beyond NAME_Z, else 'typical'."""
    strongest = sorted(range(len(features)), key=lambda i: -abs(center[i]))[:2]
    words = [SEGMENT_FEATURES[features[i]][1 if center[i] > 0 else 2] for i in strongest if abs(center[i]) >= NAME_Z]
    return ", ".join(words) if words else "typical customers"


def _with_segment(df: DataFrame, renumber: dict | None, names: dict) -> DataFrame:
    if not renumber:
        return df.withColumn("segment", F.lit(None).cast("int")).withColumn("segment_name", F.lit(None).cast("string"))
    seg = F.create_map(*[x for k, v in renumber.items() for x in (F.lit(k), F.lit(v))])
    name = F.create_map(*[x for k, v in names.items() for x in (F.lit(k), F.lit(v))])
    return df.withColumn("segment", seg[F.col("_cluster")].cast("int")).withColumn("segment_name", name[F.col("_cluster")])
