"""Who may get an offer: signed up, recently active, enough orders, not excluded, not in cool-down."""
from __future__ import annotations

import datetime as dt

import pytest

from promolake.common.config import PromotionConf
from promolake.promo.scoring import assign_arms, eligible_users
from tests.gold.conftest import ts

pytestmark = pytest.mark.spark

AS_OF = dt.date(2025, 6, 1)


@pytest.fixture(scope="module")
def frames(silver):
    users = silver("users", [{"user_id": u, "signup_ts": ts("2024-01-01 00:00:00")} for u in
                             ("active", "dormant", "cooling", "excluded", "one_order", "assigned")]
                   + [{"user_id": "future", "signup_ts": ts("2025-06-02 00:00:00")}])
    buy = {"event_type": "purchase", "quantity": 1, "unit_price": 5.0}
    events = silver("events", [
        {**buy, "event_id": f"e{i}", "user_id": u, "item_id": "I1", "event_ts": ts(t), "order_id": f"o{i}"}
        for i, (u, t) in enumerate([("active", "2025-05-20 10:00:00"), ("active", "2025-04-01 10:00:00"),
                                    ("dormant", "2025-01-01 10:00:00"), ("cooling", "2025-05-25 10:00:00"),
                                    ("cooling", "2025-03-01 10:00:00"), ("excluded", "2025-05-25 10:00:00"),
                                    ("excluded", "2025-05-01 10:00:00"), ("one_order", "2025-05-25 10:00:00"),
                                    ("assigned", "2025-05-25 10:00:00"), ("assigned", "2025-05-02 10:00:00"),
                                    ("future", "2025-05-30 10:00:00"), ("active", "2025-06-01 10:00:00")])])
    exposures = silver("exposures", [
        {"campaign_id": "C9", "offer_id": "O1", "user_id": "cooling", "arm": "treatment",
         "exposed_ts": ts("2025-05-28 00:00:00"), "propensity": 0.8}])
    return {"users": users, "events": events, "exposures": exposures}


def test_eligibility_rules(spark, frames):
    conf = PromotionConf(active_days=90, cooldown_days=14, min_orders=2, exclude_users=("excluded",))
    assignments = spark.createDataFrame(
        [("OTHER", "assigned", "O1", "policy", dt.date(2025, 5, 25)),
         ("OTHER", "active", "none", "policy", dt.date(2025, 5, 25)),         # the policy gave nothing
         ("OTHER", "excluded", "none", "control", dt.date(2025, 5, 25))],
        "campaign_id string, user_id string, offer_id string, arm string, as_of date")
    got = {r.user_id for r in eligible_users(frames, assignments, conf, "NEW", AS_OF).collect()}
    # dormant: no event in 90 days; cooling: treated 4 days ago; excluded: listed; one_order: 1 < 2 orders;
    # assigned: got an offer of another campaign 7 days ago; future: signed up after as_of;
    # active got a 'none' row there (the policy gave nothing): no offer, so no cool-down
    assert got == {"active"}
    relaxed = PromotionConf(active_days=90, cooldown_days=0, min_orders=0)
    got = {r.user_id for r in eligible_users(frames, assignments, relaxed, "NEW", AS_OF).collect()}
    assert got == {"active", "cooling", "excluded", "one_order", "assigned"}


def test_arms_follow_the_shares_and_are_stable(spark):
    users = spark.range(20000).selectExpr("concat('U', cast(id as string)) as user_id")
    conf = PromotionConf(control_share=0.1, explore_share=0.05, seed=3)
    arms = assign_arms(users, conf, "C1").groupBy("arm").count().collect()
    share = {r.arm: r["count"] / 20000 for r in arms}
    assert abs(share["control"] - 0.1) < 0.01 and abs(share["explore"] - 0.05) < 0.008
    first = {(r.user_id, r.arm) for r in assign_arms(users, conf, "C1").collect()}
    assert first == {(r.user_id, r.arm) for r in assign_arms(users, conf, "C1").collect()}
    other = {(r.user_id, r.arm) for r in assign_arms(users, conf, "C2").collect()}
    assert first != other                       # another campaign draws its own arms
