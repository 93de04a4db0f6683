"""gold.user_profile on a hand-built history: every metric family checked against numbers worked out
by hand, and nothing on or after as_of leaks in."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from promolake.common.config import FeaturesConf, SegmentConf, UserTextConf
from promolake.gold.history import prepare_events
from promolake.gold.segments import assign_segments
from promolake.gold.user_profile import build_user_profile
from tests.gold.conftest import ts

pytestmark = pytest.mark.spark

AS_OF = dt.date(2026, 1, 11)

ITEMS = [
    dict(item_id="i1", title="Red Kettle", category="A", brand="X", list_price=10, unit_cost=6, created_ts=ts("2025-01-01")),
    dict(item_id="i2", title="Blue Mug", category="B", brand="Y", list_price=20, created_ts=ts("2025-01-01")),
    dict(item_id="i3", title="Tea", category="A", brand="Y", list_price=5, created_ts=ts("2026-01-05")),
    dict(item_id="i4", title="Pot", category="A", brand="X", list_price=8, created_ts=ts("2025-01-01")),
]
USERS = [
    dict(user_id="u1", signup_ts=ts("2025-06-01"), region="north", age_band="25-34", gender="f"),
    dict(user_id="u2", signup_ts=ts("2026-01-01"), region="south"),
    dict(user_id="u3", signup_ts=ts("2026-02-01")),  # signs up after as_of: not profiled
]


def purchase(eid, user, item, qty, price, disc, order, when):
    return dict(event_id=eid, user_id=user, item_id=item, event_type="purchase", quantity=qty, unit_price=price,
                discount_amount=disc, order_id=order, event_ts=ts(when))


EVENTS = [
    purchase("e1", "u1", "i1", 2, 10, 0, "o1", "2026-01-10 12:00"),   # age 1
    purchase("e2", "u1", "i2", 1, 15, 5, "o1", "2026-01-10 12:00"),   # age 1, discounted
    purchase("e3", "u1", "i1", 1, 8, 2, "o2", "2025-12-20 10:00"),    # age 22, discounted
    dict(event_id="e4", user_id="u1", item_id="i2", event_type="view", event_ts=ts("2025-12-01 09:00")),  # age 41
    dict(event_id="e5", user_id="u1", event_type="search", query_text="Cheap Kettle ", event_ts=ts("2026-01-09 08:00")),
    dict(event_id="e7", user_id="u1", item_id="i1", event_type="view", event_ts=ts("2026-01-10 13:00")),
    purchase("e8", "u1", "i2", 1, 20, 0, "o4", "2025-03-01 10:00"),   # age 316
    dict(event_id="e9", user_id="u2", item_id="i3", event_type="view", event_ts=ts("2026-01-06 10:00")),
]
LATE_EVENTS = [  # on or after as_of: must change nothing
    purchase("e6", "u1", "i1", 1, 10, 0, "o3", "2026-01-11 00:00"),
    purchase("e10", "u2", "i2", 3, 20, 0, "o9", "2026-01-15 00:00"),
    dict(event_id="e11", user_id="u2", event_type="search", query_text="late", event_ts=ts("2026-01-11 00:00:01")),
]
CAMPAIGNS = [
    dict(campaign_id="C1", offer_id="O1", offer_type="percent_off", value=10, scope="basket",
         start_ts=ts("2025-12-01"), end_ts=ts("2025-12-15")),
    dict(campaign_id="C1", offer_id="O2", offer_type="gift", value=5, scope="basket",
         start_ts=ts("2025-12-01"), end_ts=ts("2025-12-15")),
    dict(campaign_id="C2", offer_id="O3", offer_type="amount_off", value=5, scope="basket",
         start_ts=ts("2026-01-20"), end_ts=ts("2026-01-30")),
]
EXPOSURES = [
    dict(campaign_id="C1", offer_id="O1", user_id="u1", arm="treatment", exposed_ts=ts("2025-12-01 00:00")),
    dict(campaign_id="C1", user_id="u2", arm="control", exposed_ts=ts("2025-12-01 00:00")),
]
LATE_EXPOSURES = [dict(campaign_id="C2", offer_id="O3", user_id="u1", arm="treatment", exposed_ts=ts("2026-01-20"))]
REDEMPTIONS = [dict(redemption_id="r1", campaign_id="C1", offer_id="O1", user_id="u1", redeemed_ts=ts("2025-12-05"))]
LATE_REDEMPTIONS = [dict(redemption_id="r2", campaign_id="C2", offer_id="O3", user_id="u1", redeemed_ts=ts("2026-01-21"))]
REVIEWS = [
    dict(review_id="v1", user_id="u1", item_id="i1", rating=2, review_text="Too   small, broke quickly",
         review_ts=ts("2026-01-05")),
    dict(review_id="v2", user_id="u1", item_id="i2", rating=5, review_text="Love it", review_ts=ts("2025-06-01")),
]
LATE_REVIEWS = [dict(review_id="v3", user_id="u1", item_id="i1", rating=1, review_text="awful", review_ts=ts("2026-01-11"))]


def profile(spark, silver, late: bool = False, conf: FeaturesConf = FeaturesConf()):
    extra = (lambda rows, more: rows + more) if late else (lambda rows, more: rows)
    items = silver("items", ITEMS)
    ev = prepare_events(silver("events", extra(EVENTS, LATE_EVENTS)), items, AS_OF).cache()
    df = build_user_profile(silver("users", USERS), ev, silver("exposures", extra(EXPOSURES, LATE_EXPOSURES)),
                            silver("redemptions", extra(REDEMPTIONS, LATE_REDEMPTIONS)), silver("campaigns", CAMPAIGNS),
                            silver("reviews", extra(REVIEWS, LATE_REVIEWS)), AS_OF, conf)
    return {r.user_id: r.asDict() for r in df.collect()}


@pytest.fixture(scope="module")
def rows(spark, silver):
    return profile(spark, silver)


def test_only_users_signed_up_before_as_of(rows):
    assert set(rows) == {"u1", "u2"}
    assert rows["u2"]["tenure_days"] == 10 and rows["u1"]["as_of"] == AS_OF


def test_rfm_windows(rows):
    u1 = rows["u1"]
    assert (u1["recency_days"], u1["days_since_last_event"]) == (1, 1)
    assert [u1[f"units_{w}d"] for w in (7, 30, 90, 365)] == [3, 4, 4, 5]
    assert [u1[f"spend_{w}d"] for w in (7, 30, 90, 365)] == pytest.approx([35.0, 43.0, 43.0, 63.0])
    assert [u1[f"events_{w}d"] for w in (7, 30, 90, 365)] == [4, 5, 6, 7]
    assert [u1[f"orders_{w}d"] for w in (7, 30, 90, 365)] == [1, 2, 2, 3]
    assert u1["avg_order_value"] == pytest.approx(21.0) and u1["avg_basket_units"] == pytest.approx(5 / 3)
    u2 = rows["u2"]
    assert u2["recency_days"] is None and u2["days_since_last_event"] == 5
    assert (u2["units_365d"], u2["spend_365d"], u2["orders_365d"], u2["avg_order_value"]) == (0, 0.0, 0, None)


def test_affinities_are_shares_that_sum_to_one(rows):
    u1 = rows["u1"]
    assert u1["category_spend_share"] == pytest.approx({"A": 28 / 63, "B": 35 / 63})
    assert u1["category_interaction_share"] == pytest.approx({"A": 0.5, "B": 0.5})
    assert u1["brand_spend_share"] == pytest.approx({"X": 28 / 63, "Y": 35 / 63})
    assert u1["top_category"] == "B"  # interaction tie broken by spend
    assert sum(u1["category_spend_share"].values()) == pytest.approx(1.0)
    assert rows["u2"]["category_interaction_share"] == {"A": 1.0} and rows["u2"]["category_spend_share"] is None


def test_top_n_keeps_the_largest_shares(spark, silver):
    got = profile(spark, silver, conf=FeaturesConf(top_n=1))["u1"]
    assert got["category_spend_share"] == pytest.approx({"B": 35 / 63})


def test_price_sensitivity(rows):
    u1 = rows["u1"]
    assert u1["discount_unit_share"] == pytest.approx(2 / 5)
    assert u1["avg_discount_depth"] == pytest.approx(7 / 30)
    assert u1["paid_to_list_ratio"] == pytest.approx(63 / 70)
    # median list price: A = 8 (5, 8, 10), B = 20; item events e1 e2 e3 e4 e7 e8 on i1 i2 i1 i2 i1 i2
    assert u1["price_index"] == pytest.approx((10 / 8 + 1 + 10 / 8 + 1 + 10 / 8 + 1) / 6)
    assert rows["u2"]["price_index"] == pytest.approx(5 / 8)
    assert rows["u2"]["discount_unit_share"] is None


def test_coupon_history(rows):
    u1, u2 = rows["u1"], rows["u2"]
    assert (u1["offers_received"], u1["offers_redeemed"], u1["redemption_rate"]) == (1, 1, 1.0)
    assert u1["offers_received_by_type"] == {"percent_off": 1} and u1["redemption_rate_by_type"] == {"percent_off": 1.0}
    assert (u1["control_exposures"], u1["days_since_last_offer"]) == (0, 41)
    assert (u2["offers_received"], u2["control_exposures"], u2["redemption_rate"], u2["days_since_last_offer"]) == \
        (0, 1, None, None)


def test_activity_trend_and_reviews(rows):
    u1 = rows["u1"]
    assert u1["events_prev_30d"] == 1 and u1["activity_trend"] == pytest.approx(4 / 6)
    assert u1["spend_trend"] == pytest.approx(1.0)
    assert (u1["review_count"], u1["mean_rating"], u1["negative_review_share"]) == (2, 3.5, 0.5)
    assert rows["u2"]["review_count"] == 0 and rows["u2"]["mean_rating"] is None


def test_user_text_newest_first_per_kind(rows):
    assert rows["u1"]["user_text"] == ('searched: cheap kettle. bought: Blue Mug; Red Kettle. viewed: Red Kettle; '
                                       'Blue Mug. reviewed: "Too small, broke quickly"; "Love it"')
    assert rows["u2"]["user_text"] == "viewed: Tea"


def test_user_text_is_bounded(spark, silver):
    conf = FeaturesConf(user_text=UserTextConf(max_chars=40, max_reviews=0, max_viewed=1))
    text = profile(spark, silver, conf=conf)["u1"]["user_text"]
    assert text == "searched: cheap kettle. bought: Blue Mug"[:40] and len(text) <= 40


def test_nothing_on_or_after_as_of_leaks_in(spark, silver, rows):
    assert profile(spark, silver, late=True) == rows


def test_segments_split_big_spenders_from_the_rest(spark):
    rows = [(f"big{i}", 5000.0 + i, 3, 5, 20) for i in range(6)] + [(f"low{i}", float(i), 3, 5, 20) for i in range(6)]
    df = spark.createDataFrame(rows, "user_id string, spend_365d double, orders_365d long, events_30d long, "
                                     "recency_days int")
    for c in ("discount_unit_share", "price_index", "redemption_rate", "activity_trend"):
        df = df.withColumn(c, F.lit(None).cast("double"))
    out, segments = assign_segments(df, SegmentConf(k=2, seed=1))
    got = {r.user_id: (r.segment, r.segment_name) for r in out.collect()}
    assert {got[f"big{i}"][0] for i in range(6)} == {1} and {got[f"low{i}"][0] for i in range(6)} == {0}
    assert "big spenders" in got["big0"][1] and "low spend" in got["low0"][1]
    assert sorted((s.segment, s.users) for s in segments) == [(0, 6), (1, 6)]


def test_as_of_cut_off_is_midnight_utc_whatever_the_drivers_time_zone(spark, silver, monkeypatch):
    import time

    from promolake.gold.history import before

    events = silver("events", [dict(event_id="late_evening", user_id="u", event_type="search", event_ts=ts("2026-01-10 23:30")),
                               dict(event_id="early_next_day", user_id="u", event_type="search", event_ts=ts("2026-01-11 03:00"))])
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        kept = [r.event_id for r in before(events, "event_ts", AS_OF).collect()]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert kept == ["late_evening"]
