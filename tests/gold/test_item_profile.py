"""gold.item_profile on the same hand-built history as the user profile tests."""
from __future__ import annotations

import pandas as pd
import pytest

from promolake.common.config import FeaturesConf
from promolake.gold.history import prepare_events
from promolake.gold.item_profile import build_item_profile, vader_compound
from tests.gold.test_user_profile import AS_OF, EVENTS, ITEMS, LATE_EVENTS, LATE_REVIEWS, REVIEWS

pytestmark = pytest.mark.spark


def item_rows(silver, late: bool = False):
    items = silver("items", ITEMS + [dict(item_id="i9", title="Future", category="A", list_price=1,
                                          created_ts=pd.Timestamp("2026-01-11").to_pydatetime())])
    ev = prepare_events(silver("events", EVENTS + (LATE_EVENTS if late else [])), items, AS_OF)
    df = build_item_profile(items, ev, silver("reviews", REVIEWS + (LATE_REVIEWS if late else [])), AS_OF,
                            FeaturesConf())
    return {r.item_id: r.asDict() for r in df.collect()}


@pytest.fixture(scope="module")
def rows(silver):
    return item_rows(silver)


def test_items_listed_before_as_of_only(rows):
    assert set(rows) == {"i1", "i2", "i3", "i4"}


def test_sales_windows_velocity_and_prices(rows):
    i1, i2 = rows["i1"], rows["i2"]
    assert [i1[f"units_{w}d"] for w in (7, 30, 90, 365)] == [2, 3, 3, 3]
    assert [i1[f"revenue_{w}d"] for w in (7, 30, 90, 365)] == pytest.approx([20.0, 28.0, 28.0, 28.0])
    assert [i2[f"units_{w}d"] for w in (7, 30, 90, 365)] == [1, 1, 1, 2]
    assert (i1["velocity_7d"], i1["velocity_30d"], i1["velocity_trend"]) == pytest.approx((2 / 7, 0.1, 1.0))
    assert i1["avg_paid_price"] == pytest.approx(28 / 3) and i1["discount_unit_share"] == pytest.approx(1 / 3)
    assert i2["avg_paid_price"] == pytest.approx(17.5) and i2["discount_unit_share"] == pytest.approx(0.5)
    assert (i1["views_30d"], i1["conversion_30d"]) == (1, 2.0)
    assert (i2["views_30d"], i2["conversion_30d"]) == (0, None)
    assert rows["i3"]["conversion_30d"] == 0.0


def test_buyers_margin_and_reviews(rows):
    i1, i2 = rows["i1"], rows["i2"]
    assert (i1["buyers_365d"], i1["repeat_buyer_share"]) == (1, 1.0)
    assert (rows["i3"]["buyers_365d"], rows["i3"]["repeat_buyer_share"]) == (0, None)
    assert i1["margin_rate"] == pytest.approx(0.4) and i2["margin_rate"] is None
    assert (i1["rating_count"], i1["rating_mean"], i2["rating_mean"]) == (1, 2.0, 5.0)
    expected = vader_compound(pd.Series(["Too   small, broke quickly", "Love it"])).tolist()
    assert i1["review_sentiment"] == pytest.approx(expected[0]) and expected[0] < 0
    assert i2["review_sentiment"] == pytest.approx(expected[1]) and expected[1] > 0
    assert rows["i4"]["rating_count"] == 0 and rows["i4"]["review_sentiment"] is None


def test_text_age_and_cold_start_flags(rows):
    assert rows["i1"]["item_text"] == "Red Kettle. A. X"
    assert (rows["i1"]["days_since_first_seen"], rows["i1"]["is_new"], rows["i1"]["has_interactions"]) == (375, False, True)
    assert (rows["i3"]["days_since_first_seen"], rows["i3"]["is_new"], rows["i3"]["has_interactions"]) == (6, True, True)
    assert rows["i4"]["has_interactions"] is False and rows["i4"]["units_365d"] == 0


def test_nothing_on_or_after_as_of_leaks_in(silver, rows):
    assert item_rows(silver, late=True) == rows
