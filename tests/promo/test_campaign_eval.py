"""Campaign evaluation arithmetic on hand cases: differences with confidence intervals, per-offer rows
against control, and the inverse-propensity value estimates."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from promolake.promo.campaign_eval import difference, ips_values, per_offer_results


def test_difference_and_its_interval():
    a, b = np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0, 0.0])
    d, lo, hi = difference(a, b)
    se = math.sqrt(a.var(ddof=1) / 4 + b.var(ddof=1) / 4)            # 0.25 + 0.25 -> sqrt(0.125)
    assert d == 0.5 and lo == pytest.approx(0.5 - 1.959964 * se) and hi == pytest.approx(0.5 + 1.959964 * se)
    assert all(math.isnan(x) for x in difference(a[:1], b))


def test_each_offer_is_compared_with_control_on_its_own_scope():
    # two users got O1, two are control; outcomes are measured per offer scope
    o = pd.DataFrame({
        "user_id": ["u1", "u2", "c1", "c2"] * 2, "given": ["O1", "O1", "none", "none"] * 2,
        "arm": ["policy", "explore", "control", "control"] * 2, "offer_id": ["O1"] * 4 + ["O2"] * 4,
        "bought": [1, 1, 1, 0, 1, 0, 0, 0], "redeemed": [1, 0, 0, 0, 0, 0, 0, 0],
        "profit": [10.0, 6.0, 4.0, 0.0, 9.0, 0.0, 0.0, 0.0]})
    rows = {(r["offer_id"], r["metric"]): r for r in per_offer_results(o)}
    assert {k[0] for k in rows} == {"O1"}                  # nobody was given O2
    assert rows[("O1", "conversion")]["value"] == 1.0 and rows[("O1", "control_conversion")]["value"] == 0.5
    assert rows[("O1", "redemption_rate")]["value"] == 0.5
    assert rows[("O1", "incremental_conversion")]["value"] == 0.5
    assert rows[("O1", "incremental_profit_per_user")]["value"] == 6.0   # 8 - 2
    assert rows[("O1", "incremental_profit_per_user")]["users"] == 2


def test_inverse_propensity_values_by_hand():
    rows = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "offer_id": ["O1", "O2", "none", "O1"],
                         "policy_offer_id": ["O1", "O1", "O1", "none"], "propensity": [0.8, 0.05, 0.1, 0.05]})
    profit = pd.Series({"a": 8.0, "b": 5.0, "c": 2.0, "d": 1.0})
    got = ips_values(rows, profit)
    assert got["ips_policy_profit_per_user"] == pytest.approx((8.0 / 0.8) / 4)       # only a followed the policy
    assert got["ips_no_offer_profit_per_user"] == pytest.approx((2.0 / 0.1) / 4)
