"""Reason codes: the strongest positive contributions, described in words."""
from __future__ import annotations

import numpy as np

from promolake.promo.reasons import PHRASES, describe, reason_codes
from promolake.promo.response_data import FEATURES


def test_top_positive_contributions_in_words_strongest_first():
    features = ("scope_spend_share", "discount_unit_share", "recency_days", "noise_feature")
    contrib = np.array([[0.02, 0.05, -0.3, 0.0], [-0.1, -0.2, -0.1, -0.1]])
    values = np.array([[0.45, 0.8, 12.0, 1.0], [0.0, 0.0, 999.0, 0.0]])
    codes = reason_codes(contrib, values, features, ["kitchen", "kitchen"])
    assert codes[0] == ["buys mostly on discount (80% of units)", "high affinity to kitchen (45% of spend)"]
    assert codes[1] == []                       # nothing raised the prediction


def test_every_model_feature_has_a_phrase():
    assert set(FEATURES) <= set(PHRASES)
    assert describe("recency_days", 999.0, "x") == "has never ordered"
    assert describe("recency_days", 12.0, "x") == "last order 12 days ago (recent)"
    assert describe("unknown", 0.5, "x") == "unknown=0.5"
