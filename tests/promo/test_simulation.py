"""The truth simulation's pieces on hand cases: theme, true probabilities from the world's model,
true economics and spending a budget in order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promolake.promo.simulation import campaign_theme, spend_in_order, true_economics, true_probabilities


def test_theme_is_the_category_offers_category_else_the_items_category():
    items = pd.DataFrame({"item_id": ["I1", "I2"], "category": ["books", "toys"]})
    offers = pd.DataFrame({"scope": ["basket", "category"], "scope_value": [None, "kitchen"]})
    assert campaign_theme(offers, items) == "kitchen"
    offers = pd.DataFrame({"scope": ["item", "item", "basket"], "scope_value": ["I2", "I2", None]})
    assert campaign_theme(offers, items) == "toys"
    with pytest.raises(ValueError, match="theme"):
        campaign_theme(pd.DataFrame({"scope": ["basket"], "scope_value": [None]}), items)


def test_true_probabilities_follow_the_worlds_response_model():
    taste = {"kitchen": 0.4, "books": 0.6}          # the truth table's map category -> taste share
    truth = pd.DataFrame({"user_id": ["U1"], "taste": [taste], "activity": [0.2], "price_sensitivity": [0.5],
                          "deal_proneness": [0.8]})
    opts = pd.DataFrame({"user_id": ["U1"], "offer_type": ["percent_off"], "value": [20.0], "min_spend": [np.nan]})
    got = true_probabilities(opts, truth, "kitchen", 14).iloc[0]
    p0 = 1 - np.exp(-0.2 * 14 * (0.1 + 0.4) * 0.8)
    uplift = 2.0 * 0.2 * (0.2 + 0.8 * 0.8) * (0.6 + 0.4 * 0.5) * (0.3 + min(1.0, 3 * 0.4))
    assert got.true_p0 == pytest.approx(p0)
    assert got.true_p1 == pytest.approx(min(0.95, p0 + uplift))


def test_true_economics_and_budget_order():
    df = pd.DataFrame({"offer_type": ["amount_off", "spend_threshold"], "value": [5.0, 10.0],
                       "min_spend": [np.nan, 60.0], "order_value": [40.0, 40.0], "margin_rate": [0.5, None],
                       "true_p0": [0.2, 0.2], "true_p1": [0.4, 0.3]})
    out = true_economics(df, margin_default=0.3)
    # amount_off: cost 0.4 x 0.9 x 5 = 1.8; profit 0.4x40x0.5 - 0.2x40x0.5 - 1.8 = 2.2
    assert out.true_cost[0] == pytest.approx(1.8) and out.true_profit[0] == pytest.approx(2.2)
    # threshold 10 over 60: the 0.27 who redeem spend 60, the other 0.03 buyers 40: cost 0.27 x 10 = 2.7;
    # profit (0.03x40 + 0.27x60 - 0.2x40) x 0.3 - 2.7 = 0.12
    assert out.true_cost[1] == pytest.approx(2.7) and out.true_profit[1] == pytest.approx(0.12)
    assert len(spend_in_order(out, 2.0)) == 1 and len(spend_in_order(out, 4.5)) == 2


def test_uplift_agreement_per_offer_and_overall():
    from promolake.promo.simulation import uplift_agreement

    df = pd.DataFrame({"offer_id": ["A"] * 4 + ["B"] * 4, "uplift": [0.1, 0.2, 0.3, 0.4, 0.4, 0.3, 0.2, 0.1],
                       "true_p0": [0.1] * 8, "true_p1": [0.2, 0.3, 0.4, 0.5, 0.2, 0.3, 0.4, 0.5]})
    rows = {r["offer_id"]: r for r in uplift_agreement(df)}
    assert rows["A"]["spearman"] == 1.0 and rows["B"]["spearman"] == -1.0
    assert rows["all"]["pairs"] == 8 and rows["A"]["mean_true"] == pytest.approx(0.25)
