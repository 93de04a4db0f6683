"""Offline ranking metrics at k for recommendations, computed in Spark.

Inputs:
- recs: user_id, item_id, rank (int, 1 = best). Rows with rank > k and users outside the population
  are ignored. Rank values are used as given, never renumbered: if a user's ranks have gaps (1, 3, 4),
  the item at rank 3 is discounted as position 3 and only ranks <= k count. Ranks are expected unique
  per user; an item recommended twice to the same user keeps only its best rank.
- relevant: user_id, item_id, the ground-truth items of the evaluation period (duplicates dropped).
- users: user_id, the candidate evaluation population.

Population: the users of `users` that have at least one relevant item (`users` INNER relevant users).
Users without relevant items are left out, since recall, NDCG and AP are undefined for them; the
reported `users` is the population size. A population user without any rec (or none with rank <= k)
scores 0 on every per-user metric and counts in every mean.

Per population user u with relevant set R_u, top-k list L_u (recs with rank <= k) and
rel(i) = 1 if the item at rank i is in R_u, else 0:
- precision@k = |L_u ∩ R_u| / k  (divides by k even with fewer than k recs, as MLlib's precisionAt)
- recall@k    = |L_u ∩ R_u| / |R_u|
- NDCG@k      = DCG / IDCG, DCG = sum_{i<=k} rel(i) / log2(i + 1),
                IDCG = sum_{i=1}^{min(|R_u|, k)} 1 / log2(i + 1)  (binary gains)
- AP@k        = (1 / min(|R_u|, k)) * sum_{i<=k} rel(i) * precision@i,
                precision@i = (hits at ranks <= i) / i
- hit@k       = 1 if |L_u ∩ R_u| >= 1 else 0
Model-level metrics:
- precision, recall, ndcg: means of the per-user values over the population
- map: mean AP@k; hit_rate: mean hit@k (share of users with at least one hit)
- coverage@k = |union of L_u over the population| / catalogue_size
- novelty@k  = mean over all (population user, item with rank <= k) pairs of -log2(p_i), where p_i is
  the item's `p` in item_popularity (share of training users who interacted with it). An item missing
  from item_popularity, or with p <= 0, gets the smallest positive p in item_popularity: it is
  treated as at least as rare as the rarest known item, which keeps novelty finite. NaN when
  item_popularity is None or there are no such pairs.
- users = population size; users_with_recs = population users with at least one rec of rank <= k.

With every user holding >= k distinct recs, precision, recall, ndcg and map equal
pyspark.mllib.evaluation.RankingMetrics' precisionAt, recallAt, ndcgAt and meanAveragePrecisionAt on
the same users (tests/ml/test_evaluation.py checks it).
"""
from __future__ import annotations

import numbers
from functools import reduce
from typing import TYPE_CHECKING, Mapping

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

if TYPE_CHECKING:  # annotations only; the functions import them where they run
    import numpy as np
    import pandas as pd

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage", "novelty", "users", "users_with_recs")
_COUNTS = ("users", "users_with_recs")


def _check_k(k: int) -> None:
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")


def _population(users: DataFrame, relevant: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(population, relevant pairs): population is one row per user_id of `users` with >= 1 relevant
    item; relevant pairs are the distinct (user_id, item_id) of those users."""
    population = users.select("user_id").distinct().join(
        relevant.select("user_id").distinct(), "user_id")
    pairs = relevant.select("user_id", "item_id").distinct().join(population, "user_id", "left_semi")
    return population, pairs


_REC = "_recommender"       # the recommender's name in the unioned lists of ranking_metrics_by


def _top_k(recs: DataFrame, population: DataFrame, k: int) -> DataFrame:
    """One row per (recommender, population user, item) recommended at rank <= k: _recommender,
    user_id, item_id, rank (the item's best rank when it was recommended twice)."""
    return (recs.filter(F.col("rank") <= k).join(population, "user_id", "left_semi")
            .groupBy(_REC, "user_id", "item_id").agg(F.min("rank").alias("rank")))


def _tagged(recs: Mapping[str, DataFrame]) -> DataFrame:
    """The lists of several recommenders as one frame: _recommender, user_id, item_id, rank."""
    return reduce(DataFrame.unionByName, [
        df.select(F.lit(name).alias(_REC), "user_id", "item_id", F.col("rank").cast("int").alias("rank"))
        for name, df in recs.items()])


def _per_user(top_k: DataFrame, population: DataFrame, pairs: DataFrame, k: int,
              recommenders: DataFrame) -> DataFrame:
    """One row per (recommender, population user): every population user counts for every recommender of
    `recommenders` (one column, _recommender), with zeros where its list misses them."""
    flagged = (top_k.join(pairs.withColumn("is_rel", F.lit(1)), ["user_id", "item_id"], "left")
               .fillna(0, subset=["is_rel"]))
    by_rank = Window.partitionBy(_REC, "user_id").orderBy("rank").rowsBetween(Window.unboundedPreceding, 0)
    terms = (flagged.withColumn("hits_so_far", F.sum("is_rel").over(by_rank))
             .withColumn("gain", F.col("is_rel") / F.log2(F.col("rank") + 1))
             .withColumn("prec_term", F.col("is_rel") * F.col("hits_so_far") / F.col("rank")))
    scored = terms.groupBy(_REC, "user_id").agg(
        F.count("*").alias("n_recs"), F.sum("is_rel").alias("hits"),
        F.sum("gain").alias("dcg"), F.sum("prec_term").alias("prec_sum"))
    n_relevant = pairs.groupBy("user_id").agg(F.count("*").alias("n_relevant"))
    ideal_len = F.least(F.col("n_relevant"), F.lit(k))
    idcg = F.aggregate(F.sequence(F.lit(1), ideal_len), F.lit(0.0), lambda acc, i: acc + 1.0 / F.log2(i + 1))
    return (population.join(n_relevant, "user_id").crossJoin(F.broadcast(recommenders))
            .join(scored, [_REC, "user_id"], "left")
            .fillna(0, subset=["n_recs", "hits", "dcg", "prec_sum"])
            .select(_REC, "user_id", F.col("n_relevant").cast("long"), F.col("n_recs").cast("long"),
                    F.col("hits").cast("long"),
                    (F.col("hits") / k).alias("precision"),
                    (F.col("hits") / F.col("n_relevant")).alias("recall"),
                    (F.col("dcg") / idcg).alias("ndcg"),
                    (F.col("prec_sum") / ideal_len).alias("ap"),
                    (F.col("hits") > 0).cast("int").alias("hit")))


def per_user_metrics(recs: DataFrame, relevant: DataFrame, users: DataFrame, k: int) -> DataFrame:
    """One row per population user (see the module docstring): user_id, n_relevant (|R_u|), n_recs
    (recs with rank <= k), hits (|L_u ∩ R_u|), precision, recall, ndcg, ap (all @k) and hit (0/1)."""
    _check_k(k)
    population, pairs = _population(users, relevant)
    one = relevant.sparkSession.createDataFrame([("recs",)], f"{_REC} string")
    return _per_user(_top_k(_tagged({"recs": recs}), population, k), population, pairs, k, one).drop(_REC)


def _distinct_items_and_novelty(top_k: DataFrame, item_popularity: DataFrame | None
                                ) -> dict[str, tuple[int, float]]:
    """{recommender: (distinct items in its top_k, novelty as defined in the module docstring)}, one pass."""
    if item_popularity is None:
        return {r[0]: (int(r[1]), float("nan"))
                for r in top_k.groupBy(_REC).agg(F.countDistinct("item_id")).collect()}
    floor = item_popularity.filter(F.col("p") > 0).agg(F.min("p")).first()[0]
    if floor is None:
        raise ValueError("item_popularity has no item with p > 0")
    p = F.when(F.col("p") > 0, F.col("p")).otherwise(F.lit(floor))
    rows = (top_k.join(item_popularity.select("item_id", "p"), "item_id", "left")
            .groupBy(_REC).agg(F.countDistinct("item_id"), F.avg(-F.log2(p))).collect())
    return {r[0]: (int(r[1]), float("nan") if r[2] is None else float(r[2])) for r in rows}


def ranking_metrics(recs: DataFrame, relevant: DataFrame, users: DataFrame, k: int,
                    catalogue_size: int, item_popularity: DataFrame | None = None) -> dict[str, float]:
    """The model-level metrics of METRICS at k, as defined in the module docstring, as Python floats.

    Args:
        recs: user_id, item_id, rank (1 = best).
        relevant: user_id, item_id ground truth of the evaluation period.
        users: user_id, the candidate population (only users with >= 1 relevant item are scored).
        k: cut-off, >= 1.
        catalogue_size: number of recommendable items, the denominator of coverage; >= 1.
        item_popularity: item_id, p (share of training users who interacted with the item), for
            novelty; None gives novelty NaN.

    Raises:
        ValueError: bad k or catalogue_size, or no user of `users` has a relevant item.
    """
    return ranking_metrics_by({"recs": recs}, relevant, users, k, catalogue_size, item_popularity)["recs"]


def ranking_metrics_by(recs: Mapping[str, DataFrame], relevant: DataFrame, users: DataFrame, k: int,
                       catalogue_size: int, item_popularity: DataFrame | None = None) -> dict[str, dict[str, float]]:
    """ranking_metrics of several recommenders' lists on the same population: {name: metrics}.

    The lists are tagged with their name and unioned, so all recommenders are scored by the same two
    aggregations (per-user metrics averaged by recommender; distinct items and novelty by recommender):
    evaluating n lists costs about what one did, not n times the Spark jobs. Each recommender's numbers
    are exactly ranking_metrics of its list alone (tests/ml/test_evaluation.py).
    """
    _check_k(k)
    if not isinstance(catalogue_size, numbers.Integral) or catalogue_size < 1:
        raise ValueError(f"catalogue_size must be a positive int, got {catalogue_size!r}")
    if not recs:
        raise ValueError("ranking_metrics_by needs at least one recommender's list")
    names = list(recs)
    population, pairs = _population(users, relevant)
    top_k = _top_k(_tagged(recs), population, k).cache()
    try:
        recommenders = relevant.sparkSession.createDataFrame([(n,) for n in names], f"{_REC} string")
        rows = {r[_REC]: r for r in _per_user(top_k, population, pairs, k, recommenders).groupBy(_REC).agg(
            F.avg("precision").alias("precision"), F.avg("recall").alias("recall"),
            F.avg("ndcg").alias("ndcg"), F.avg("ap").alias("map"), F.avg("hit").alias("hit_rate"),
            F.count("*").alias("users"), F.sum((F.col("n_recs") > 0).cast("int")).alias("users_with_recs"),
        ).collect()}
        if not rows:
            raise ValueError("no user of `users` has a relevant item: the evaluation population is empty")
        items = _distinct_items_and_novelty(top_k, item_popularity)
    finally:
        top_k.unpersist()
    out = {}
    for name in names:
        metrics = {m: float(rows[name][m]) for m in ("precision", "recall", "ndcg", "map", "hit_rate", "users",
                                                    "users_with_recs")}
        distinct, novelty = items.get(name, (0, float("nan")))
        metrics.update(coverage=distinct / catalogue_size, novelty=novelty)
        out[name] = {m: metrics[m] for m in METRICS}
    return out


def evaluation_table(results: dict[str, dict[str, dict[str, float]]], k: int) -> list[dict]:
    """Rows for printing {model: {view: metrics}}: one dict per (model, view) with "model", "view",
    then each metric of METRICS present, named "<metric>@<k>" (counts keep their name and become
    ints), rounded to 4 decimals."""
    rows = []
    for model, views in results.items():
        for view, metrics in views.items():
            row: dict = {"model": model, "view": view}
            for name in METRICS:
                if name not in metrics:
                    continue
                if name in _COUNTS:
                    row[name] = int(metrics[name])
                else:
                    row[f"{name}@{k}"] = round(float(metrics[name]), 4)
            rows.append(row)
    return rows


def ndcg_local(recs: "pd.DataFrame", relevant: "pd.DataFrame", users: set, k: int) -> float:
    """Mean NDCG@k with exactly the definition above, on pandas frames in driver memory.

    For searches that score many variants of small lists (the blend-weight grid), where a Spark job
    per variant costs more than the arithmetic. Same population rule: users in `users` with >= 1
    relevant item; users without recs count as 0. tests/ml/test_evaluation.py checks it equals
    ranking_metrics()["ndcg"].
    """
    import numpy as np
    import pandas as pd

    _check_k(k)
    rel = relevant[["user_id", "item_id"]].drop_duplicates()
    rel = rel[rel.user_id.isin(users)]
    n_rel = rel.groupby("user_id").size()
    if n_rel.empty:
        raise ValueError("no user of the population has a relevant item")
    top = recs.loc[(recs["rank"] <= k) & recs.user_id.isin(n_rel.index), ["user_id", "item_id", "rank"]]
    top = top.groupby(["user_id", "item_id"], as_index=False)["rank"].min()
    hits = top.merge(rel, on=["user_id", "item_id"])
    dcg = (1.0 / np.log2(hits["rank"].to_numpy(float) + 1)).astype(float)
    dcg = pd.Series(dcg, index=hits.user_id).groupby(level=0).sum()
    discounts = np.cumsum(1.0 / np.log2(np.arange(1, k + 1) + 1.0))
    idcg = pd.Series(discounts[np.minimum(n_rel.to_numpy(), k) - 1], index=n_rel.index)
    return float((dcg.reindex(idcg.index, fill_value=0.0) / idcg).mean())


# ----- the same metrics on numpy lists, for per-epoch validation inside training workers ---------

_SUMMED = ("precision", "recall", "ndcg", "map", "hit_rate")


def ranking_metric_sums(recommended: "list[np.ndarray]", relevant: "list[np.ndarray]", k: int) -> dict[str, float]:
    """Per-user metrics of the module docstring summed over a shard of users, for averaging across
    processes: add the dicts of disjoint shards, then divide each of precision, recall, ndcg, map and
    hit_rate by users (ranking_metrics_arrays does it for one shard).

    recommended[u] lists user u's items best first (position i is rank i + 1; a repeated item keeps
    its first position, like the best rank in ranking_metrics); relevant[u] holds u's ground-truth
    items. Users with no relevant item are outside the population and add nothing; users with fewer
    than k (or no) recommendations count with zeros where they miss. Returns the five sums plus
    users (population size) and users_with_recs, as floats.
    """
    import math

    _check_k(k)
    if len(recommended) != len(relevant):
        raise ValueError(f"recommended and relevant must list the same users: {len(recommended)} != {len(relevant)}")
    sums = dict.fromkeys((*_SUMMED, "users", "users_with_recs"), 0.0)
    for recs, rel in zip(recommended, relevant):
        rel_set = set(_as_list(rel))
        if not rel_set:
            continue
        listed: set = set()
        hits, dcg, prec_sum = 0, 0.0, 0.0
        for position, item in enumerate(_as_list(recs)[:k], start=1):
            if item in listed:
                continue
            listed.add(item)
            if item in rel_set:
                hits += 1
                dcg += 1.0 / math.log2(position + 1)
                prec_sum += hits / position
        ideal_len = min(len(rel_set), k)
        idcg = sum(1.0 / math.log2(i + 1) for i in range(1, ideal_len + 1))
        sums["precision"] += hits / k
        sums["recall"] += hits / len(rel_set)
        sums["ndcg"] += dcg / idcg
        sums["map"] += prec_sum / ideal_len
        sums["hit_rate"] += float(hits > 0)
        sums["users"] += 1.0
        sums["users_with_recs"] += float(bool(listed))
    return sums


def ranking_metrics_arrays(recommended: "list[np.ndarray]", relevant: "list[np.ndarray]", k: int) -> dict[str, float]:
    """precision, recall, ndcg, map and hit_rate at k (means over the population), users and
    users_with_recs: the values ranking_metrics gives for the same lists (ranks = positions + 1; see
    ranking_metric_sums for the inputs), without Spark. Raises ValueError when no user has a
    relevant item. tests/text/test_trainer.py checks it equals ranking_metrics."""
    sums = ranking_metric_sums(recommended, relevant, k)
    if sums["users"] == 0:
        raise ValueError("no user has a relevant item: the evaluation population is empty")
    return {**{name: sums[name] / sums["users"] for name in _SUMMED},
            "users": sums["users"], "users_with_recs": sums["users_with_recs"]}


def _as_list(values) -> list:
    """Items of a numpy array (as Python scalars, so 3 and np.int64(3) match) or any sequence."""
    return values.tolist() if hasattr(values, "tolist") else list(values)
