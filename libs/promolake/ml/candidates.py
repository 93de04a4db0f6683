"""Ranked candidate lists: ALS, the three baselines, and their reciprocal-rank blend.

Every list has the same shape, (user_id, item_id, rank, score) with rank 1 = best, so that one
evaluator (promolake.ml.evaluation) scores all of them and the blend can fuse any of them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from promolake.ml.topk import top_k

if TYPE_CHECKING:  # annotations only; the functions import them where they run
    import pandas as pd

LIST_COLUMNS = ("user_id", "item_id", "rank", "score")
SOURCES = ("als", "repeat", "segment", "popularity")


def als_list(user_factors: DataFrame, item_factors: DataFrame, user_index: DataFrame, item_index: DataFrame,
             depth: int, seen: DataFrame | None = None, users: DataFrame | None = None) -> DataFrame:
    """Top `depth` items per user from ALS factors (blocked top-k over the factor matrices), optionally
    without the (user_id, item_id) pairs in `seen`, for the users in `users` (default: all with factors)."""
    uidx = user_index.select("user_id", F.col("user_idx").alias("id"))
    iidx = item_index.select("item_id", F.col("item_idx").alias("id"))
    uf = user_factors
    if users is not None:
        uf = uf.join(users.select("user_id").distinct().join(uidx, "user_id").select("id"), "id")
    seen_idx = None
    if seen is not None:
        seen_idx = (seen.join(uidx.withColumnRenamed("id", "user"), "user_id")
                    .join(iidx.withColumnRenamed("id", "item"), "item_id").select("user", "item"))
    recs = top_k(uf, item_factors, depth, seen=seen_idx)
    return (recs.join(uidx.withColumnRenamed("id", "user"), "user")
            .join(iidx.withColumnRenamed("id", "item"), "item")
            .select("user_id", "item_id", F.col("rank").cast("int"), F.col("score").cast("double")))


def without_seen(recs: DataFrame, seen: DataFrame, depth: int | None = None) -> DataFrame:
    """recs without the (user_id, item_id) pairs in `seen`, re-ranked 1..n per user in the old order."""
    kept = recs.join(seen.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti")
    renumbered = kept.withColumn("rank", F.row_number().over(
        Window.partitionBy("user_id").orderBy("rank", "item_id")).cast("int"))
    return renumbered if depth is None else renumbered.where(F.col("rank") <= depth)


def global_list(ranked: DataFrame, users: DataFrame, depth: int, seen: DataFrame | None = None) -> DataFrame:
    """The same ranked items (item_id, rank, score) for every user in `users`; with `seen`, each user's
    own purchases are skipped and the next items move up (the list is read deep enough for that)."""
    extra = 0 if seen is None else 4 * depth
    top = F.broadcast(ranked.where(F.col("rank") <= depth + extra).select("item_id", "rank", "score"))
    out = users.select("user_id").distinct().crossJoin(top)
    return without_seen(out, seen, depth) if seen is not None else out.select(*LIST_COLUMNS)


def segment_list(ranked_by_segment: DataFrame, user_segments: DataFrame, depth: int,
                 seen: DataFrame | None = None, segment_col: str = "segment") -> DataFrame:
    """Each user gets the ranked items (segment, item_id, rank, score) of their segment."""
    extra = 0 if seen is None else 4 * depth
    top = ranked_by_segment.where(F.col("rank") <= depth + extra)
    out = user_segments.select("user_id", segment_col).join(F.broadcast(top), segment_col).select(*LIST_COLUMNS)
    return without_seen(out, seen, depth) if seen is not None else out


def blend(lists: Mapping[str, DataFrame], weights: Mapping[str, float], rrf_constant: float,
          depth: int) -> DataFrame:
    """Reciprocal-rank fusion: score(u, i) = sum over sources s of weights[s] / (rrf_constant + rank_s(u, i)),
    a source that does not list i adding nothing. Ranked by score (ties: item id), top `depth` per user.

    Columns: user_id, item_id, rank, score, and for every source s: s_rank, s_score (null when s did
    not list the item), and `sources` (the sources with a positive weight that listed it). Rank
    fusion needs no calibration between sources whose scores live on different scales (dot products,
    decayed counts, buyer counts). Sources with weight 0 still appear in the component columns.
    """
    parts = []
    for name, df in lists.items():
        w = float(weights.get(name, 0.0))
        parts.append(df.select("user_id", "item_id", F.lit(name).alias("source"), F.col("rank").cast("int"),
                               F.col("score").cast("double"),
                               (F.lit(w) / (F.lit(float(rrf_constant)) + F.col("rank"))).alias("contribution"),
                               F.lit(w > 0).alias("weighted")))
    long = parts[0]
    for p in parts[1:]:
        long = long.unionByName(p)
    aggs = [F.sum("contribution").alias("blend_score"),
            F.array_sort(F.collect_list(F.when(F.col("weighted"), F.col("source")))).alias("sources")]
    for name in lists:
        aggs += [F.min(F.when(F.col("source") == name, F.col("rank"))).alias(f"{name}_rank"),
                 F.max(F.when(F.col("source") == name, F.col("score"))).alias(f"{name}_score")]
    fused = long.groupBy("user_id", "item_id").agg(*aggs).where(F.size("sources") > 0)
    order = Window.partitionBy("user_id").orderBy(F.desc("blend_score"), "item_id")
    return (fused.withColumn("rank", F.row_number().over(order).cast("int")).where(F.col("rank") <= depth)
            .withColumnRenamed("blend_score", "score"))


def blend_local(lists: Mapping[str, "pd.DataFrame"], weights: Mapping[str, float], rrf_constant: float,
                depth: int) -> "pd.DataFrame":
    """`blend` on pandas frames (user_id, item_id, rank): the same scores, order and cut, without the
    component columns. Used to score blends per group of users (evaluation.grouped_ranking_metrics, on the
    executors); tests check it equals `blend`."""
    import pandas as pd

    parts = [df[["user_id", "item_id", "rank"]].assign(c=float(weights.get(name, 0.0)) / (rrf_constant + df["rank"]))
             for name, df in lists.items() if weights.get(name, 0.0) > 0 and len(df)]
    if not parts:
        return pd.DataFrame({"user_id": [], "item_id": [], "rank": [], "score": []})
    fused = pd.concat(parts).groupby(["user_id", "item_id"], as_index=False)["c"].sum()
    fused = fused.sort_values(["user_id", "c", "item_id"], ascending=[True, False, True])
    fused["rank"] = fused.groupby("user_id").cumcount() + 1
    return fused[fused["rank"] <= depth].rename(columns={"c": "score"})
