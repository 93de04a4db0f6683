"""allocate_spark makes the same choices as the numpy allocation, caps included."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promolake.common.spark import PersistScope
from promolake.promo.allocation import Cap, SparkCap, allocate, allocate_spark

pytestmark = pytest.mark.spark


def random_options(seed: int, n_users: int = 120, n_offers: int = 3):
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(n_users), n_offers)
    offer = np.tile(np.arange(n_offers), n_users)
    cost = rng.gamma(2.0, 2.0, len(user))
    profit = cost * rng.uniform(-0.5, 2.5, len(user)) + rng.normal(0, 1, len(user))
    category = np.where(offer == 2, 1, 0)
    return user, offer, category, profit, cost


@pytest.mark.parametrize("with_caps", [False, True])
def test_spark_allocation_equals_the_numpy_one(spark, with_caps):
    user, offer, category, profit, cost = random_options(11)
    budget, n = 0.25 * cost[profit > 0].sum(), 2
    caps, spark_caps = (), ()
    if with_caps:
        caps = (Cap("offer_count", offer, np.array([25.0, 1000.0, 1000.0]), "count"),
                Cap("category_cost", category, np.array([1e9, 40.0]), "cost"))
        spark_caps = (SparkCap("offer_count", "offer_id", {"O0": 25.0}, "count"),
                      SparkCap("category_cost", "category", {"c1": 40.0}, "cost"))
    want = allocate(user, profit, cost, budget, n, caps)
    frame = pd.DataFrame({"user_id": [f"U{u:04d}" for u in user], "offer_id": [f"O{o}" for o in offer],
                          "category": [f"c{c}" for c in category], "profit": profit, "cost": cost})
    spark.catalog.clearCache()
    keep = PersistScope()
    df, got = allocate_spark(spark.createDataFrame(frame), budget, n, spark_caps, tiebreak=("offer_id",), keep=keep)
    assert len(keep) == 1                 # the repair steps' frames are released, the result's is held
    rows = df.where("chosen").select("user_id", "offer_id").collect()
    keep.release()
    assert spark._jsparkSession.sharedState().cacheManager().isEmpty()
    assert {(r.user_id, r.offer_id) for r in df.where("chosen").collect()} == {(r.user_id, r.offer_id) for r in rows}
    got_set = {(r.user_id, r.offer_id) for r in rows}
    want_set = {(f"U{u:04d}", f"O{o}") for u, o in zip(user[want.chosen], offer[want.chosen])}
    assert got_set == want_set
    assert got.cost == pytest.approx(want.cost) and got.cost <= budget
    assert got.profit == pytest.approx(want.profit)
    assert got.lam == pytest.approx(want.lam, rel=1e-6)
    if with_caps:
        assert sum(1 for r in rows if r.offer_id == "O0") <= 25
        assert cost[want.chosen & (category == 1)].sum() <= 40.0


def test_missing_columns_are_named(spark):
    df = spark.createDataFrame(pd.DataFrame({"user_id": ["u"], "profit": [1.0]}))
    with pytest.raises(ValueError, match="cost"):
        allocate_spark(df, 10.0)
