"""Implicit feedback, purchase sets, baselines and the stored index: hand-computed on tiny inputs."""
from __future__ import annotations

import datetime as dt

import pytest

from promolake.common.config import EventWeights
from promolake.ml import interactions as ia

pytestmark = pytest.mark.spark

CUT = dt.date(2025, 3, 1)


def ev(spark, rows):
    """rows: (user_id, item_id, event_type, 'YYYY-MM-DD HH:MM')"""
    return spark.createDataFrame(
        [(u, i, t, dt.datetime.fromisoformat(ts)) for u, i, t, ts in rows],
        "user_id string, item_id string, event_type string, event_ts timestamp")


def test_confidence_weights_decay_and_window(spark):
    events = ev(spark, [
        ("u1", "a", "purchase", "2025-02-28 00:00"),  # 1 day old: 8 * 0.5 ** (1/10)
        ("u1", "a", "view", "2025-02-19 00:00"),      # 10 days old (one half-life): 1 * 0.5
        ("u1", "b", "cart", "2025-02-09 00:00"),      # 20 days: 3 * 0.25
        ("u1", "c", "view", "2025-03-01 00:00"),      # at the cut: not before it
        ("u1", "d", "view", "2024-12-01 00:00"),      # outside the 60-day history
        ("u2", None, "search", "2025-02-20 00:00"),   # searches have no item
    ])
    got = {(r.user_id, r.item_id): r for r in
           ia.interactions(events, CUT, 60, EventWeights(), half_life_days=10).collect()}
    assert set(got) == {("u1", "a"), ("u1", "b")}
    assert got[("u1", "a")].confidence == pytest.approx(8 * 0.5 ** 0.1 + 0.5)
    assert (got[("u1", "a")].events, got[("u1", "a")].purchases) == (2, 1)
    assert got[("u1", "b")].confidence == pytest.approx(0.75)


def test_zero_weight_event_types_are_left_out(spark):
    events = ev(spark, [("u1", "a", "view", "2025-02-28 00:00"), ("u1", "b", "purchase", "2025-02-28 00:00")])
    got = ia.interactions(events, CUT, 60, EventWeights(view=0.0), 10).collect()
    assert [r.item_id for r in got] == ["b"]


def test_purchase_sets_and_seen(spark):
    events = ev(spark, [
        ("u1", "a", "purchase", "2025-01-10 00:00"),
        ("u1", "a", "purchase", "2025-03-02 00:00"),
        ("u1", "b", "purchase", "2025-03-05 00:00"),
        ("u1", "c", "view", "2025-03-05 00:00"),
        ("u2", "c", "purchase", "2025-03-29 23:59"),
        ("u2", "d", "purchase", "2025-03-29 00:00"),
    ])
    window = {(r.user_id, r.item_id) for r in ia.purchases_in(events, CUT, dt.date(2025, 3, 29)).collect()}
    assert window == {("u1", "a"), ("u1", "b")}
    assert {(r.user_id, r.item_id) for r in ia.bought_before(events, CUT).collect()} == {("u1", "a")}


def test_repeat_scores_rank_by_decayed_count(spark):
    events = ev(spark, [
        ("u1", "a", "purchase", "2025-02-19 00:00"),  # 0.5
        ("u1", "a", "purchase", "2025-02-19 00:00"),  # 0.5 -> a: 1.0
        ("u1", "b", "purchase", "2025-02-28 00:00"),  # 0.5 ** 0.1 = 0.933
        ("u1", "c", "view", "2025-02-28 00:00"),
    ])
    got = [(r.item_id, r.rank, round(r.score, 3)) for r in
           ia.repeat_scores(events, CUT, 60, 10, depth=5).orderBy("rank").collect()]
    assert got == [("a", 1, 1.0), ("b", 2, 0.933)]


def test_popularity_counts_distinct_buyers_globally_and_per_segment(spark):
    events = ev(spark, [
        ("u1", "a", "purchase", "2025-02-20 00:00"), ("u1", "a", "purchase", "2025-02-21 00:00"),
        ("u2", "a", "purchase", "2025-02-22 00:00"), ("u2", "b", "purchase", "2025-02-22 00:00"),
        ("u3", "b", "purchase", "2025-02-22 00:00"), ("u3", "c", "purchase", "2025-02-22 00:00"),
        ("u3", "z", "purchase", "2025-01-01 00:00"),  # older than the 28 days
    ])
    glob = [(r.item_id, r.rank, r.score) for r in ia.popularity(events, CUT, 28).orderBy("rank").collect()]
    assert glob == [("a", 1, 2.0), ("b", 2, 2.0), ("c", 3, 1.0)]
    segs = spark.createDataFrame([("u1", 0), ("u2", 0), ("u3", 1)], "user_id string, segment int")
    per = {(r.segment, r.item_id): (r.rank, r.score) for r in ia.popularity(events, CUT, 28, segs).collect()}
    assert per == {(0, "a"): (1, 2.0), (0, "b"): (2, 1.0), (1, "b"): (1, 1.0), (1, "c"): (2, 1.0)}


def test_index_is_extended_never_renumbered(spark):
    first = ia.extend_index(None, spark.createDataFrame([("b",), ("a",), ("a",), (None,)], "user_id string"),
                            "user_id", "user_idx", CUT)
    assert sorted((r.user_id, r.user_idx) for r in first.collect()) == [("a", 0), ("b", 1)]
    more = ia.extend_index(first, spark.createDataFrame([("c",), ("a",), ("0",)], "user_id string"),
                           "user_id", "user_idx", dt.date(2025, 4, 1))
    got = sorted((r.user_id, r.user_idx, r.first_as_of) for r in more.collect())
    assert got == [("0", 2, dt.date(2025, 4, 1)), ("c", 3, dt.date(2025, 4, 1))]
