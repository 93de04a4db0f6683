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
from typing import TYPE_CHECKING, Callable, Mapping

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


# ----- many lists (and lists derived from them) scored per group of users, in pandas -------------

RELEVANT_SOURCE = "__relevant__"    # the rows of the relevant items in grouped_ranking_metrics' input
_GROUPED_SCHEMA = ("name string, item_id string, users double, users_with_recs double, precision double, "
                   "recall double, ndcg double, map double, hit_rate double, novelty_sum double, pairs double")


def local_metric_sums(recs: "pd.DataFrame", relevant: "pd.DataFrame", population, k: int,
                      p: "pd.Series | None" = None) -> tuple[dict[str, float], "np.ndarray"]:
    """(sums, top-k items) of one list for a group of users, with the definitions of the module docstring.

    recs: user_id, item_id, rank; relevant: user_id, item_id (each population user has >= 1); population:
    the group's users (users without relevant items are ignored, users without recs count as zeros);
    p: item_id -> p for novelty (None: no novelty). sums: users, users_with_recs, precision, recall, ndcg,
    map, hit_rate (sums of the per-user values), novelty_sum (sum of -log2 p over the (user, item) pairs of
    the top-k lists) and pairs; the top-k items are the distinct items listed (for coverage)."""
    import numpy as np
    import pandas as pd

    rel = relevant[["user_id", "item_id"]].drop_duplicates()
    rel = rel[rel.user_id.isin(population)]
    n_rel = rel.groupby("user_id").size()
    top = recs.loc[(recs["rank"] <= k) & recs.user_id.isin(n_rel.index), ["user_id", "item_id", "rank"]]
    top = top.groupby(["user_id", "item_id"], as_index=False)["rank"].min().sort_values(["user_id", "rank"])
    top["is_rel"] = top.merge(rel.assign(_r=1), on=["user_id", "item_id"], how="left")["_r"].fillna(0).to_numpy()
    top["hits_so_far"] = top.groupby("user_id")["is_rel"].cumsum()
    rank = top["rank"].to_numpy(float)
    top["gain"] = top["is_rel"] / np.log2(rank + 1)
    top["prec"] = top["is_rel"] * top["hits_so_far"] / rank
    per = top.groupby("user_id").agg(hits=("is_rel", "sum"), dcg=("gain", "sum"), prec_sum=("prec", "sum"),
                                     n=("item_id", "size")).reindex(n_rel.index, fill_value=0)
    discounts = np.cumsum(1.0 / np.log2(np.arange(1, k + 1) + 1.0))
    ideal = np.minimum(n_rel.to_numpy(), k)
    hits = per["hits"].to_numpy(float)
    sums = {"users": float(len(n_rel)), "users_with_recs": float((per["n"] > 0).sum()),
            "precision": float(hits.sum() / k), "recall": float((hits / n_rel.to_numpy()).sum()),
            "ndcg": float((per["dcg"].to_numpy() / discounts[ideal - 1]).sum()) if len(n_rel) else 0.0,
            "map": float((per["prec_sum"].to_numpy() / ideal).sum()) if len(n_rel) else 0.0,
            "hit_rate": float((hits > 0).sum())}
    if p is not None and len(top):
        sums["novelty_sum"] = float(-np.log2(top["item_id"].map(p).to_numpy(float)).sum())
    else:
        sums["novelty_sum"] = 0.0
    sums["pairs"] = float(len(top))
    return sums, pd.unique(top["item_id"])


def grouped_ranking_metrics(components: Mapping[str, DataFrame], relevant: DataFrame, users: DataFrame, k: int,
                            catalogue_size: int, lists: Mapping[str, "Callable[[dict], pd.DataFrame]"],
                            item_popularity: DataFrame | None = None, users_per_group: int = 5000
                            ) -> dict[str, dict[str, float]]:
    """ranking_metrics of lists built from component lists, for every population user in groups, in pandas.

    components: source -> Spark list (user_id, item_id, rank), each computed once; lists: name -> a function
    of one group's components ({source: pandas user_id, item_id, rank}) giving that group's list (a
    component itself, or a blend of them: `candidates.blend_local`). The users are hashed into groups of
    about users_per_group population users; each group is scored by local_metric_sums in one
    applyInPandas task, and only sums and the listed items come back to be aggregated in Spark: the
    driver holds one row per list, whatever the number of users, and a task one group's rows. Returns
    {name: metrics} with exactly ranking_metrics' definitions (tests/ml/test_evaluation.py).
    """
    import pandas as pd

    _check_k(k)
    if not isinstance(catalogue_size, numbers.Integral) or catalogue_size < 1:
        raise ValueError(f"catalogue_size must be a positive int, got {catalogue_size!r}")
    population, pairs = _population(users, relevant)
    n_users = population.count()
    if n_users == 0:
        raise ValueError("no user of `users` has a relevant item: the evaluation population is empty")
    groups = max(1, -(-n_users // users_per_group))
    floor = None
    if item_popularity is not None:
        floor = item_popularity.filter(F.col("p") > 0).agg(F.min("p")).first()[0]
        if floor is None:
            raise ValueError("item_popularity has no item with p > 0")
    rows = [df.join(population, "user_id", "left_semi").select(
        F.lit(name).alias("source"), "user_id", F.col("item_id").cast("string"), F.col("rank").cast("int"))
        for name, df in components.items()]
    rows.append(pairs.select(F.lit(RELEVANT_SOURCE).alias("source"), "user_id", F.col("item_id").cast("string"),
                             F.lit(None).cast("int").alias("rank")))
    long = reduce(DataFrame.unionByName, rows)
    if item_popularity is not None:
        p = F.when(F.col("p") > 0, F.col("p")).otherwise(F.lit(floor))
        long = (long.join(item_popularity.select(F.col("item_id").cast("string"), p.alias("p")), "item_id", "left")
                .fillna(floor, subset=["p"]))
    else:
        long = long.withColumn("p", F.lit(None).cast("double"))
    names, sources, with_novelty = list(lists), list(components), item_popularity is not None

    def score(group: pd.DataFrame) -> pd.DataFrame:     # runs on the executors: no DataFrame in its closure
        rel = group[group.source == RELEVANT_SOURCE]
        population_ = pd.unique(rel.user_id)
        parts = {s: g[["user_id", "item_id", "rank"]] for s, g in group[group.source != RELEVANT_SOURCE]
                 .groupby("source")}
        parts.update({s: group.iloc[:0][["user_id", "item_id", "rank"]] for s in sources if s not in parts})
        p_of = group.drop_duplicates("item_id").set_index("item_id")["p"] if with_novelty else None
        out = []
        for name in names:
            sums, items = local_metric_sums(lists[name](parts), rel, population_, k, p_of)
            out.append({"name": name, "item_id": None, **sums})
            out.extend({"name": name, "item_id": item} for item in items)
        return pd.DataFrame(out, columns=[c.split()[0] for c in _GROUPED_SCHEMA.split(", ")])

    bucket = F.pmod(F.xxhash64("user_id"), F.lit(groups))
    scored = long.withColumn("_group", bucket).groupBy("_group").applyInPandas(score, _GROUPED_SCHEMA)
    sums = ("users", "users_with_recs", "precision", "recall", "ndcg", "map", "hit_rate", "novelty_sum", "pairs")
    got = {r["name"]: r for r in scored.groupBy("name").agg(
        *[F.sum(c).alias(c) for c in sums], F.countDistinct("item_id").alias("items")).collect()}
    out = {}
    for name in names:
        r = got[name]
        metrics = {m: float(r[m]) / float(r["users"]) for m in ("precision", "recall", "ndcg", "map", "hit_rate")}
        metrics.update(users=float(r["users"]), users_with_recs=float(r["users_with_recs"]),
                       coverage=r["items"] / catalogue_size,
                       novelty=(float(r["novelty_sum"]) / r["pairs"]) if item_popularity is not None and r["pairs"]
                       else float("nan"))
        out[name] = {m: metrics[m] for m in METRICS}
    return out
