"""Implicit feedback for collaborative filtering: weighted, decayed (user, item) interactions, the
purchase sets that evaluation and the baselines read, and the stored integer index of ids.

Every function takes a cut-off date T and reads only events strictly before T (or, for the labels of an
evaluation window, in [T, T + horizon)). Pure DataFrame -> DataFrame functions; the stage does the I/O.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from promolake.common.config import EventWeights
from promolake.gold.history import as_of_start

SECONDS_PER_DAY = 86_400.0


def _between(events: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    ts = F.col("event_ts")
    return events.where((ts >= as_of_start(start)) & (ts < as_of_start(end)) & F.col("item_id").isNotNull())


def interactions(events: DataFrame, cutoff: dt.date, history_days: int, weights: EventWeights,
                 half_life_days: float) -> DataFrame:
    """(user_id, item_id, confidence, events, purchases, last_ts) over the events in
    [cutoff - history_days, cutoff).

    confidence = sum over the pair's events of weight(event_type) x 0.5 ** (age / half_life_days), where
    age is the event's age in days (fractional) at the cut-off: an event one half-life old counts half.
    Search events (no item) and event types with weight 0 are left out; a purchase line counts once,
    whatever its quantity (quantities are bulky in retail data and would swamp the signal).
    """
    w = weights.model_dump()
    weight = F.coalesce(*[F.when(F.col("event_type") == t, F.lit(float(v))) for t, v in w.items()], F.lit(0.0))
    age = (F.unix_timestamp(as_of_start(cutoff)) - F.unix_timestamp("event_ts")) / SECONDS_PER_DAY
    decay = F.pow(F.lit(0.5), age / F.lit(float(half_life_days)))
    start = cutoff - dt.timedelta(days=history_days)
    return (_between(events, start, cutoff)
            .where(weight > 0)
            .groupBy("user_id", "item_id")
            .agg(F.sum(weight * decay).alias("confidence"),
                 F.count(F.lit(1)).cast("int").alias("events"),
                 F.sum((F.col("event_type") == "purchase").cast("int")).alias("purchases"),
                 F.max("event_ts").alias("last_ts")))


def purchases_in(events: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Distinct (user_id, item_id) bought in [start, end): the relevant items of an evaluation window."""
    return _between(events, start, end).where(F.col("event_type") == "purchase").select(
        "user_id", "item_id").distinct()


def bought_before(events: DataFrame, cutoff: dt.date) -> DataFrame:
    """Distinct (user_id, item_id) bought at any time before the cut-off: 'seen' for the new-to-user view."""
    return events.where((F.col("event_type") == "purchase") & (F.col("event_ts") < as_of_start(cutoff))
                        & F.col("item_id").isNotNull()).select("user_id", "item_id").distinct()


def repeat_scores(events: DataFrame, cutoff: dt.date, history_days: int, half_life_days: float,
                  depth: int) -> DataFrame:
    """The repeat-purchase baseline: (user_id, item_id, rank, score) where score is the user's decayed
    count of purchase lines of the item in the history window (same decay as `interactions`), ranked
    per user by score (ties: newest purchase first, then item id), top `depth` kept."""
    age = (F.unix_timestamp(as_of_start(cutoff)) - F.unix_timestamp("event_ts")) / SECONDS_PER_DAY
    decay = F.pow(F.lit(0.5), age / F.lit(float(half_life_days)))
    start = cutoff - dt.timedelta(days=history_days)
    scored = (_between(events, start, cutoff).where(F.col("event_type") == "purchase")
              .groupBy("user_id", "item_id").agg(F.sum(decay).alias("score"), F.max("event_ts").alias("_last")))
    order = Window.partitionBy("user_id").orderBy(F.desc("score"), F.desc("_last"), "item_id")
    return (scored.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= depth)
            .select("user_id", "item_id", F.col("rank").cast("int"), F.col("score").cast("double")))


def popularity(events: DataFrame, cutoff: dt.date, days: int, group: DataFrame | None = None,
               group_col: str = "segment") -> DataFrame:
    """Items ranked by distinct buyers in [cutoff - days, cutoff): (item_id, rank, score), or, with
    `group` = (user_id, <group_col>), per group: (<group_col>, item_id, rank, score). Ties: item id."""
    bought = purchases_in(events, cutoff - dt.timedelta(days=days), cutoff)
    keys = []
    if group is not None:
        bought = bought.join(group.select("user_id", group_col), "user_id")
        keys = [group_col]
    counts = bought.groupBy(*keys, "item_id").agg(F.countDistinct("user_id").cast("double").alias("score"))
    order = Window.partitionBy(*keys).orderBy(F.desc("score"), "item_id") if keys else \
        Window.orderBy(F.desc("score"), "item_id")
    return counts.withColumn("rank", F.row_number().over(order).cast("int"))


def extend_index(existing: DataFrame | None, ids: DataFrame, id_col: str, idx_col: str,
                 as_of: dt.date) -> DataFrame:
    """New rows for an id -> dense integer index mapping: the ids in `ids` not yet in `existing`,
    numbered from max(existing idx) + 1 in id order (deterministic). Existing ids keep their number,
    so factors, candidates and artifacts of different runs refer to the same integers."""
    new = ids.select(id_col).where(F.col(id_col).isNotNull()).distinct()
    offset = 0
    if existing is not None:
        new = new.join(existing.select(id_col), id_col, "left_anti")
        top = existing.agg(F.max(idx_col)).first()[0]
        offset = 0 if top is None else int(top) + 1
    number = F.row_number().over(Window.orderBy(id_col)) - 1 + F.lit(offset)
    return new.select(id_col, number.cast("int").alias(idx_col), F.lit(as_of).alias("first_as_of"))
