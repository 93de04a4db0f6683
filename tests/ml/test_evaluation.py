"""Ranking metrics at k: a hand-worked case, agreement with MLlib's RankingMetrics on random data,
coverage and novelty by hand, input hygiene, and the printable table."""
from __future__ import annotations

import math
import random

import pytest

from promolake.ml.evaluation import METRICS, evaluation_table, per_user_metrics, ranking_metrics, ranking_metrics_by

pytestmark = pytest.mark.spark

RECS = "user_id string, item_id string, rank int"
PAIRS = "user_id string, item_id string"
L3 = 1 / math.log2(3)  # discount at rank 2; rank 1 -> 1, rank 3 -> 1/2

# k = 3. Population = users with a relevant item: a, b, c (d has none, e is not in `users`).
# a: recs x y z | w (rank 4, ignored), R = {x, z, w}: hits 2 (x@1, z@3)
#    precision 2/3, recall 2/3, DCG = 1 + 1/2, IDCG = 1 + L3 + 1/2, AP = (1/min(3,3)) (1/1 + 2/3) = 5/9
# b: recs p x q, R = {q}: hits 1 (q@3)
#    precision 1/3, recall 1, DCG = 1/2, IDCG = 1, NDCG 1/2, AP = (1/1)(1/3) = 1/3
# c: no recs, R = {y}: every metric 0, still counted in the means
HAND_RECS = [("a", "x", 1), ("a", "y", 2), ("a", "z", 3), ("a", "w", 4),
             ("b", "p", 1), ("b", "x", 2), ("b", "q", 3),
             ("e", "v", 1)]
HAND_RELEVANT = [("a", "x"), ("a", "z"), ("a", "w"), ("b", "q"), ("c", "y"), ("e", "v")]
HAND_USERS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def hand(spark):
    return (spark.createDataFrame(HAND_RECS, RECS), spark.createDataFrame(HAND_RELEVANT, PAIRS),
            spark.createDataFrame([(u,) for u in HAND_USERS], "user_id string"))


def test_hand_worked_per_user_and_means(hand):
    recs, relevant, users = hand
    rows = {r["user_id"]: r.asDict() for r in per_user_metrics(recs, relevant, users, 3).collect()}
    assert set(rows) == {"a", "b", "c"}
    ndcg_a = 1.5 / (1.5 + L3)
    expected = {
        "a": dict(n_relevant=3, n_recs=3, hits=2, precision=2 / 3, recall=2 / 3, ndcg=ndcg_a, ap=5 / 9, hit=1),
        "b": dict(n_relevant=1, n_recs=3, hits=1, precision=1 / 3, recall=1.0, ndcg=0.5, ap=1 / 3, hit=1),
        "c": dict(n_relevant=1, n_recs=0, hits=0, precision=0.0, recall=0.0, ndcg=0.0, ap=0.0, hit=0),
    }
    for user, want in expected.items():
        got = {name: rows[user][name] for name in want}
        assert got == pytest.approx(want, abs=1e-12), user

    m = ranking_metrics(recs, relevant, users, 3, catalogue_size=10)
    assert list(m) == list(METRICS)
    assert all(type(v) is float for v in m.values())
    # means over 3 users, c's zeros included
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["ndcg"] == pytest.approx((ndcg_a + 0.5 + 0) / 3)
    assert m["map"] == pytest.approx((5 / 9 + 1 / 3 + 0) / 3)
    assert m["hit_rate"] == pytest.approx(2 / 3)
    assert (m["users"], m["users_with_recs"]) == (3.0, 2.0)
    assert math.isnan(m["novelty"])


def test_coverage_and_novelty_by_hand(spark, hand):
    recs, relevant, users = hand
    popularity = spark.createDataFrame(
        [("x", 0.5), ("y", 0.25), ("z", 0.125), ("p", 0.0), ("w", 1.0)], "item_id string, p double")
    m = ranking_metrics(recs, relevant, users, 3, catalogue_size=10, item_popularity=popularity)
    # top-3 items of a, b, c: {x, y, z, p, q} (w is rank 4, v belongs to e) -> 5 / 10
    assert m["coverage"] == pytest.approx(0.5)
    # -log2 p per (user, item): a: x 1, y 2, z 3; b: p 3 (p = 0 -> floor 0.125), x 1, q 3 (missing -> floor)
    assert m["novelty"] == pytest.approx((1 + 2 + 3 + 3 + 1 + 3) / 6)


def test_duplicates_outsiders_and_rank_gaps(spark):
    recs = spark.createDataFrame([("b", "p", 1), ("b", "q", 3), ("b", "r", 4),  # ranks 1, 3: no renumbering
                                  ("out", "q", 1), ("out", "s", 2)], RECS)
    relevant = spark.createDataFrame([("b", "q"), ("b", "q"), ("b", "r"), ("out", "q")], PAIRS)
    users = spark.createDataFrame([("b",), ("b",)], "user_id string")
    (row,) = per_user_metrics(recs, relevant, users, 3).collect()
    # R_b = {q, r} (duplicate dropped); top-3 = p@1, q@3; q is discounted at its given rank 3
    assert (row["n_relevant"], row["n_recs"], row["hits"]) == (2, 2, 1)
    assert row["recall"] == pytest.approx(1 / 2)
    assert row["ap"] == pytest.approx((1 / 3) / 2)
    assert row["ndcg"] == pytest.approx(0.5 / (1 + L3))
    m = ranking_metrics(recs, relevant, users, 3, catalogue_size=4)
    assert m["users"] == 1.0
    assert m["coverage"] == pytest.approx(2 / 4)  # p, q only: "out" is not in the population


def test_empty_population_and_bad_arguments_raise(spark, hand):
    recs, relevant, _ = hand
    only_d = spark.createDataFrame([("d",)], "user_id string")
    with pytest.raises(ValueError, match="population is empty"):
        ranking_metrics(recs, relevant, only_d, 3, catalogue_size=10)
    with pytest.raises(ValueError, match="k must"):
        ranking_metrics(recs, relevant, only_d, 0, catalogue_size=10)
    with pytest.raises(ValueError, match="catalogue_size"):
        ranking_metrics(recs, relevant, only_d, 3, catalogue_size=0)


def test_matches_mllib_ranking_metrics(spark):
    from pyspark.mllib.evaluation import RankingMetrics

    rng, k = random.Random(7), 5
    items = [f"i{n}" for n in range(20)]
    predicted, labels = {}, {}
    for n in range(30):
        user = f"u{n}"
        predicted[user] = rng.sample(items, rng.randint(k, 8))  # every user has >= k recs
        labels[user] = rng.sample(items, rng.randint(1, 7))  # some |R_u| > k: AP and IDCG cap at k
    recs = spark.createDataFrame([(u, i, r) for u, ps in predicted.items() for r, i in enumerate(ps, 1)], RECS)
    relevant = spark.createDataFrame([(u, i) for u, ls in labels.items() for i in ls], PAIRS)
    users = spark.createDataFrame([(u,) for u in predicted], "user_id string")

    ours = ranking_metrics(recs, relevant, users, k, catalogue_size=len(items))
    mllib = RankingMetrics(spark.sparkContext.parallelize([(predicted[u], labels[u]) for u in predicted], 2))
    assert ours["users"] == 30.0
    assert ours["precision"] == pytest.approx(mllib.precisionAt(k), abs=1e-9)
    assert ours["recall"] == pytest.approx(mllib.recallAt(k), abs=1e-9)
    assert ours["ndcg"] == pytest.approx(mllib.ndcgAt(k), abs=1e-9)
    assert ours["map"] == pytest.approx(mllib.meanAveragePrecisionAt(k), abs=1e-9)


def test_several_lists_scored_in_one_pass_equal_each_list_scored_alone(spark):
    """ranking_metrics_by (all recommenders in one aggregation) gives each list exactly its own numbers,
    including a list that reaches no population user (zeros, coverage 0) and a list with long ranks."""
    from pyspark.sql import functions as F

    rng, k, items = random.Random(3), 4, [f"i{n}" for n in range(15)]
    users = [f"u{n}" for n in range(12)]
    lists = {name: spark.createDataFrame([(u, i, r) for u in users for r, i in enumerate(rng.sample(items, 6), 1)],
                                         RECS) for name in ("als", "popularity")}
    lists["long_ranks"] = lists["als"].withColumn("rank", (F.col("rank") + 1).cast("long"))
    lists["nobody"] = spark.createDataFrame([("stranger", "i1", 1)], RECS)
    relevant = spark.createDataFrame([(u, i) for u in users[:10] for i in rng.sample(items, 3)], PAIRS)
    population = spark.createDataFrame([(u,) for u in users], "user_id string")
    popularity = spark.createDataFrame([(i, (n + 1) / 20) for n, i in enumerate(items[:10])],
                                       "item_id string, p double")
    together = ranking_metrics_by(lists, relevant, population, k, len(items), popularity)
    assert list(together) == list(lists)
    for name, recs in lists.items():
        alone = ranking_metrics(recs, relevant, population, k, len(items), popularity)
        assert together[name] == pytest.approx(alone, abs=1e-12, nan_ok=True), name
    assert together["nobody"]["users"] == 10.0 and together["nobody"]["ndcg"] == 0.0
    assert together["nobody"]["coverage"] == 0.0 and math.isnan(together["nobody"]["novelty"])
    assert together["als"]["ndcg"] > 0 and together["als"] != together["popularity"]


@pytest.mark.parametrize("users_per_group", [1000, 3])
def test_lists_scored_per_group_of_users_in_pandas_equal_spark_ranking_metrics(spark, users_per_group):
    """grouped_ranking_metrics (components once, lists and metrics per group of users in pandas) gives
    exactly ranking_metrics_by's numbers, for component lists and for a blend built from them in the group
    (the same blend as candidates.blend in Spark), in one group or in several."""
    from promolake.ml import candidates as cand
    from promolake.ml.evaluation import grouped_ranking_metrics

    rng, k, items = random.Random(11), 4, [f"i{n}" for n in range(15)]
    users = [f"u{n}" for n in range(14)]
    rows = {name: [(u, i, r, 1.0 / r) for u in users[:12] for r, i in enumerate(rng.sample(items, 7), 1)]
            for name in ("als", "repeat")}
    schema = "user_id string, item_id string, rank int, score double"
    components = {name: spark.createDataFrame(r, schema) for name, r in rows.items()}
    relevant = spark.createDataFrame([(u, i) for u in users[2:] for i in rng.sample(items, 3)], PAIRS)
    population = spark.createDataFrame([(u,) for u in users], "user_id string")
    popularity = spark.createDataFrame([(i, n / 20) for n, i in enumerate(items[:12])], "item_id string, p double")
    weights = {"als": 1.0, "repeat": 2.0}
    spark_lists = {**components, "blend": cand.blend(components, weights, 10.0, 7).select("user_id", "item_id", "rank")}
    expected = ranking_metrics_by(spark_lists, relevant, population, k, len(items), popularity)
    got = grouped_ranking_metrics(
        components, relevant, population, k, len(items),
        {"als": lambda c: c["als"], "repeat": lambda c: c["repeat"],
         "blend": lambda c: cand.blend_local(c, weights, 10.0, k)}, popularity, users_per_group=users_per_group)
    assert list(got) == ["als", "repeat", "blend"]
    for name in got:
        assert got[name] == pytest.approx(expected[name], abs=1e-12, nan_ok=True), name
    assert got["blend"]["users"] == 12.0        # u0, u1 have no relevant item; u12, u13 have no recs


def test_evaluation_table_rows():
    metrics = {"precision": 0.123456, "recall": 0.5, "ndcg": 1 / 3, "map": 0.2, "hit_rate": 2 / 3,
               "coverage": 0.05, "novelty": float("nan"), "users": 30.0, "users_with_recs": 28.0}
    rows = evaluation_table({"als": {"all": metrics, "new_users": {**metrics, "recall": 0.25}},
                             "popular": {"all": metrics}}, k=10)
    assert [(r["model"], r["view"]) for r in rows] == [("als", "all"), ("als", "new_users"), ("popular", "all")]
    first = rows[0]
    assert list(first) == ["model", "view", "precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10",
                           "coverage@10", "novelty@10", "users", "users_with_recs"]
    assert (first["precision@10"], first["ndcg@10"], first["hit_rate@10"]) == (0.1235, 0.3333, 0.6667)
    assert math.isnan(first["novelty@10"])
    assert (first["users"], first["users_with_recs"]) == (30, 28) and type(first["users"]) is int
    assert rows[1]["recall@10"] == 0.25
