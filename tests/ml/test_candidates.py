"""Candidate lists and the reciprocal-rank blend, on hand-made lists."""
from __future__ import annotations

import pytest

from promolake.ml import candidates as cand

pytestmark = pytest.mark.spark

LIST = "user_id string, item_id string, rank int, score double"


def test_blend_reciprocal_rank_fusion_by_hand(spark):
    als = spark.createDataFrame([("u", "a", 1, 0.9), ("u", "b", 2, 0.5)], LIST)
    repeat = spark.createDataFrame([("u", "b", 1, 3.0), ("u", "c", 2, 1.0)], LIST)
    pop = spark.createDataFrame([("u", "d", 1, 100.0)], LIST)
    got = {r.item_id: r for r in cand.blend({"als": als, "repeat": repeat, "popularity": pop},
                                            {"als": 1.0, "repeat": 2.0, "popularity": 0.0}, 10.0, 10).collect()}
    # a: 1/11 = 0.0909; b: 1/12 + 2/11 = 0.2652; c: 2/12 = 0.1667; d: weight 0 -> not proposed
    assert set(got) == {"a", "b", "c"}
    assert got["b"].score == pytest.approx(1 / 12 + 2 / 11)
    assert [got[i].rank for i in ("b", "c", "a")] == [1, 2, 3]
    assert got["b"].sources == ["als", "repeat"]
    assert (got["b"].als_rank, got["b"].repeat_rank, got["b"].repeat_score) == (2, 1, 3.0)
    assert got["a"].repeat_rank is None and got["a"].popularity_rank is None


def test_blend_keeps_depth_and_breaks_ties_by_item(spark):
    als = spark.createDataFrame([("u", "b", 1, 1.0), ("u", "a", 1, 1.0), ("u", "c", 3, 0.1)], LIST)
    got = [r.item_id for r in cand.blend({"als": als}, {"als": 1.0}, 10.0, 2).orderBy("rank").collect()]
    assert got == ["a", "b"]


def test_without_seen_reranks_and_global_list_reads_deeper(spark):
    pop = spark.createDataFrame([("a", 1, 9.0), ("b", 2, 8.0), ("c", 3, 7.0), ("d", 4, 1.0)],
                                "item_id string, rank int, score double")
    users = spark.createDataFrame([("u1",), ("u2",)], "user_id string")
    seen = spark.createDataFrame([("u1", "a"), ("u1", "b")], "user_id string, item_id string")
    got = {(r.user_id, r.rank): r.item_id for r in cand.global_list(pop, users, 2, seen).collect()}
    assert got == {("u1", 1): "c", ("u1", 2): "d", ("u2", 1): "a", ("u2", 2): "b"}


def test_segment_list_gives_each_user_their_segment_items(spark):
    ranked = spark.createDataFrame([(0, "a", 1, 5.0), (0, "b", 2, 4.0), (1, "c", 1, 3.0)],
                                   "segment int, item_id string, rank int, score double")
    segs = spark.createDataFrame([("u1", 0), ("u2", 1), ("u3", 2)], "user_id string, segment int")
    got = sorted((r.user_id, r.item_id, r.rank) for r in cand.segment_list(ranked, segs, 5).collect())
    assert got == [("u1", "a", 1), ("u1", "b", 2), ("u2", "c", 1)]


def test_blend_local_equals_spark_blend(spark):
    import random

    rnd = random.Random(5)
    lists = {}
    for name in ("als", "repeat", "popularity"):
        rows = [(f"u{u}", f"i{i}", r + 1, 1.0) for u in range(12) for r, i in enumerate(rnd.sample(range(20), 6))]
        lists[name] = spark.createDataFrame(rows, LIST)
    weights = {"als": 1.0, "repeat": 0.5, "popularity": 0.25}
    want = sorted((r.user_id, r.item_id, r.rank, round(r.score, 12)) for r in
                  cand.blend(lists, weights, 10.0, 5).collect())
    local = cand.blend_local({n: df.toPandas() for n, df in lists.items()}, weights, 10.0, 5)
    got = sorted((r.user_id, r.item_id, int(r.rank), round(r.score, 12)) for r in local.itertuples())
    assert got == want
