"""Offer economics on hand-worked cases, and finding a campaign's offers."""
from __future__ import annotations

import datetime as dt

import pytest

from promolake.common.config import PromotionConf
from promolake.promo.offers import UnknownCampaignError, campaign_offers, with_economics

pytestmark = pytest.mark.spark

COLUMNS = ("name string, offer_type string, value double, min_spend double, order_value double, gift_cost double, "
           "margin_rate double, p_buy_without_offer double, p_buy_with_offer double, redeem_share double")


def test_cost_and_incremental_profit_by_hand(spark):
    rows = [
        # 20% off a 50 order: 0.27 redeem x 10 off = 2.7; margin 0.3x50x0.4 - 0.2x50x0.4 = 2.0; profit -0.7
        ("percent", "percent_off", 20.0, None, 50.0, None, 0.4, 0.2, 0.3, 0.9),
        # 10 off over 60 lifts a 40 basket to 60 for the 0.2 who redeem: cost 0.2x10 = 2;
        # (0.05x40 + 0.2x60 - 0.1x40) x 0.3 - 2 = 1.0
        ("threshold", "spend_threshold", 10.0, 60.0, 40.0, None, None, 0.1, 0.25, 0.8),
        # 15 off a 12 order gives at most 12: cost 0.6x12 = 7.2; 0.6x12x0.5 - 0.5x12x0.5 - 7.2 = -6.6
        ("amount", "amount_off", 15.0, None, 12.0, None, 0.5, 0.5, 0.6, 1.0),
        # gift worth 20 without a unit cost: 20 x (1 - 0.25) = 15; cost 0.4x0.5x15 = 3;
        # (0.2x30 + 0.2x50 - 0.2x30) x 0.25 - 3 = -0.5
        ("gift", "gift", 20.0, 50.0, 30.0, None, 0.25, 0.2, 0.4, 0.5),
    ]
    got = {r.name: r for r in with_economics(spark.createDataFrame(rows, COLUMNS), margin_rate=0.3).collect()}
    expected = {"percent": (0.27, 2.7, -0.7), "threshold": (0.2, 2.0, 1.0), "amount": (0.6, 7.2, -6.6),
                "gift": (0.2, 3.0, -0.5)}
    for name, (p_redeem, cost, profit) in expected.items():
        assert got[name].p_redeem == pytest.approx(p_redeem)
        assert got[name].expected_cost == pytest.approx(cost)
        assert got[name].expected_incremental_profit == pytest.approx(profit)


def campaigns_table(spark):
    rows = [("C1", "C1-O1", "percent_off", 10.0, None, "category", "books",
             dt.datetime(2025, 3, 1), dt.datetime(2025, 3, 15))]
    schema = ("campaign_id string, offer_id string, offer_type string, value decimal(12,2), "
              "min_spend decimal(12,2), scope string, scope_value string, start_ts timestamp, end_ts timestamp")
    from decimal import Decimal
    return spark.createDataFrame([r[:3] + (Decimal(str(r[3])),) + r[4:] for r in rows], schema)


def test_offers_come_from_silver_first_then_config(spark):
    conf = PromotionConf(campaigns={"NEW": {"days": 7, "offers": [
        {"offer_id": "N1", "offer_type": "amount_off", "value": 5.0}]}})
    offers, source = campaign_offers(spark, campaigns_table(spark), conf, "C1", dt.date(2026, 1, 1))
    assert source == "silver.campaigns" and offers.first().scope_value == "books"
    assert dict(offers.dtypes)["value"] == "double"          # silver holds decimals
    offers, source = campaign_offers(spark, campaigns_table(spark), conf, "NEW", dt.date(2026, 1, 1))
    row = offers.first()
    assert source == "config" and row.offer_id == "N1" and row.scope == "basket"
    assert (row.start_ts, row.end_ts) == (dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 8))


def test_an_unknown_campaign_is_refused_with_the_known_ones(spark):
    with pytest.raises(UnknownCampaignError, match=r"'NOPE'.*known: \['C1'"):
        campaign_offers(spark, campaigns_table(spark), PromotionConf(), "NOPE", dt.date(2026, 1, 1))


@pytest.mark.parametrize("offer, message", [
    ({"offer_type": "percent_off", "value": 120.0}, "percent_off value"),
    ({"offer_type": "spend_threshold", "value": 10.0}, "needs min_spend"),
    ({"offer_type": "gift", "value": 10.0, "min_spend": 50.0}, "names its item"),
    ({"offer_type": "percent_off", "value": 10.0, "scope": "category"}, "category scope"),
])
def test_inconsistent_offers_in_config_are_refused(offer, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        PromotionConf(campaigns={"X": {"offers": [{"offer_id": "X1", **offer}]}})


def test_a_predicted_p_redeem_is_used_as_it_is(spark):
    """The redemption model's p_redeem wins over p_buy_with_offer x redeem_share; a null one falls back."""
    schema = COLUMNS + ", p_redeem double"
    rows = [
        # 20% off a 50 order, p_redeem 0.1 (not 0.3 x 0.9): cost 0.1 x 10 = 1; 0.3x50x0.4 - 0.2x50x0.4 - 1 = 1
        ("given", "percent_off", 20.0, None, 50.0, None, 0.4, 0.2, 0.3, 0.9, 0.1),
        ("fallback", "percent_off", 20.0, None, 50.0, None, 0.4, 0.2, 0.3, 0.9, None),
    ]
    got = {r.name: r for r in with_economics(spark.createDataFrame(rows, schema), margin_rate=0.3).collect()}
    assert (got["given"].p_redeem, got["given"].expected_cost) == (pytest.approx(0.1), pytest.approx(1.0))
    assert got["given"].expected_incremental_profit == pytest.approx(1.0)
    assert got["fallback"].p_redeem == pytest.approx(0.27) and got["fallback"].expected_cost == pytest.approx(2.7)
