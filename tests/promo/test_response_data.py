"""Model rows for past campaigns: features as of the campaign start (nothing from the window leaks
in), scope shares, offer features, control pseudo-offers and outcomes, on a hand-made world."""
from __future__ import annotations

import datetime as dt

import pytest

from promolake.promo.response_data import FEATURES, exposure_rows, outcomes, scope_members, with_features
from tests.gold.conftest import ts

pytestmark = pytest.mark.spark

START = dt.date(2025, 3, 1)


@pytest.fixture(scope="module")
def world(silver):
    items = silver("items", [
        {"item_id": "I1", "title": "pan", "category": "kitchen", "list_price": 10.0},
        {"item_id": "I2", "title": "novel", "category": "books", "list_price": 20.0},
        {"item_id": "I3", "title": "knife", "category": "kitchen", "list_price": 30.0}])
    users = silver("users", [
        {"user_id": "U1", "signup_ts": ts("2024-01-01 00:00:00")},
        {"user_id": "U2", "signup_ts": ts("2024-06-01 00:00:00")},
        {"user_id": "U3", "signup_ts": ts("2025-03-10 00:00:00")}])
    buy = {"event_type": "purchase"}
    events = silver("events", [
        {**buy, "event_id": "e1", "user_id": "U1", "item_id": "I1", "event_ts": ts("2025-02-20 10:00:00"),
         "quantity": 2, "unit_price": 10.0, "order_id": "o1"},
        {**buy, "event_id": "e2", "user_id": "U1", "item_id": "I2", "event_ts": ts("2025-02-25 10:00:00"),
         "quantity": 1, "unit_price": 20.0, "order_id": "o2"},
        {"event_id": "e3", "user_id": "U1", "item_id": "I3", "event_type": "view", "event_ts": ts("2025-02-27 10:00:00")},
        # searches: one asks for a bargain; "cheapskate" is not the word "cheap"
        {"event_id": "s1", "user_id": "U1", "event_type": "search", "event_ts": ts("2025-02-26 10:00:00"),
         "query_text": "Cheap pan"},
        {"event_id": "s2", "user_id": "U1", "event_type": "search", "event_ts": ts("2025-02-26 11:00:00"),
         "query_text": "cheapskate novel"},
        # inside the campaign window: outcome only, never a feature
        {**buy, "event_id": "e4", "user_id": "U1", "item_id": "I3", "event_ts": ts("2025-03-05 10:00:00"),
         "quantity": 1, "unit_price": 24.0, "order_id": "o3"},
        {**buy, "event_id": "e5", "user_id": "U2", "item_id": "I2", "event_ts": ts("2025-03-03 10:00:00"),
         "quantity": 1, "unit_price": 20.0, "order_id": "o4"},
        # after the window: neither
        {**buy, "event_id": "e6", "user_id": "U2", "item_id": "I1", "event_ts": ts("2025-03-20 10:00:00"),
         "quantity": 1, "unit_price": 10.0, "order_id": "o5"}])
    window = {"start_ts": ts("2025-03-01 00:00:00"), "end_ts": ts("2025-03-15 00:00:00")}
    campaigns = silver("campaigns", [
        {"campaign_id": "C1", "offer_id": "O1", "offer_type": "percent_off", "value": 20.0, "scope": "category",
         "scope_value": "kitchen", **window},
        {"campaign_id": "C1", "offer_id": "O2", "offer_type": "amount_off", "value": 5.0, "scope": "basket", **window}])
    exposures = silver("exposures", [
        {"campaign_id": "C1", "offer_id": "O1", "user_id": "U1", "arm": "treatment",
         "exposed_ts": ts("2025-03-01 00:00:00"), "propensity": 0.5},
        {"campaign_id": "C1", "offer_id": None, "user_id": "U2", "arm": "control",
         "exposed_ts": ts("2025-03-01 00:00:00"), "propensity": 0.5}])
    redemptions = silver("redemptions", [
        {"redemption_id": "r1", "campaign_id": "C1", "offer_id": "O1", "user_id": "U1", "order_id": "o3",
         "redeemed_ts": ts("2025-03-05 10:01:00"), "discount_amount": 6.0}])
    campaign_items = silver("campaign_items", [])
    return dict(items=items, users=users, events=events, campaigns=campaigns, exposures=exposures,
                redemptions=redemptions, campaign_items=campaign_items)


@pytest.fixture(scope="module")
def rows(world):
    w = world
    members = scope_members(w["campaigns"], w["items"], w["campaign_items"])
    base = exposure_rows(w["exposures"], w["campaigns"], dt.date(2026, 1, 1))
    feats = with_features(base, w["users"], w["events"], w["items"], w["exposures"], w["redemptions"],
                          w["campaigns"], members, START)
    out = outcomes(base, w["events"], members, w["redemptions"])
    return {r.user_id: r for r in feats.join(out, ["user_id", "campaign_id", "offer_id"]).collect()}


def test_scope_members_are_the_category_items(world):
    members = scope_members(world["campaigns"], world["items"], world["campaign_items"]).collect()
    assert sorted((r.offer_id, r.item_id) for r in members) == [("O1", "I1"), ("O1", "I3")]


def test_features_are_as_of_the_campaign_start(rows):
    u = rows["U1"]
    assert u.treated == 1 and u.propensity == 0.5 and u.offer_id == "O1"
    assert u.tenure_days == 425.0                       # 2024-01-01 .. 2025-03-01
    assert u.recency_days == 4.0                        # last purchase 2025-02-25
    assert u.orders_30d == 2.0 and u.spend_30d == 40.0  # the window's purchase (24.0) is not a feature
    assert u.avg_order_value == 20.0
    assert u.scope_spend_share == 0.5                   # kitchen 20 of 40
    assert u.scope_event_share == pytest.approx(2 / 3)  # 2 of 3 item events were kitchen items
    assert u.scope_spend_365d == 20.0
    # the campaign's theme is its category offer's kitchen items, for every offer of the campaign
    assert u.theme_spend_share == 0.5 and u.theme_event_share == pytest.approx(2 / 3)
    assert u.search_share == pytest.approx(2 / 3)      # 2 searches per 3 item events
    assert u.bargain_search_share == 0.5
    assert (u.is_percent_off, u.scope_is_category, u.offer_depth, u.need_ratio) == (1.0, 1.0, 0.2, 0.0)
    assert all(getattr(u, f) is not None for f in FEATURES)


def test_outcomes_count_only_in_scope_purchases_inside_the_window(rows):
    u1, u2 = rows["U1"], rows["U2"]
    assert (u1.bought, u1.scope_spend, u1.redeemed) == (1, 24.0, 1)
    # the control user got a pseudo-offer of the campaign; only the basket one covers the book bought
    assert u2.treated == 0 and u2.offer_id in ("O1", "O2")
    assert u2.bought == (1 if u2.offer_id == "O2" else 0) and u2.redeemed == 0
    assert u2.recency_days == 999.0 and u2.orders_365d == 0.0   # no history before the start
    assert (u2.theme_spend_share, u2.bargain_search_share, u2.price_index) == (0.0, 0.0, 1.0)  # neutral values
    assert "U3" not in rows                                      # signed up after the start
