"""Uplift learners on a simulated randomized experiment whose true uplift is known: sign recovery,
Qini above a random ranking, the response-only fallback, and readable errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promolake.promo.uplift import evaluate_uplift, fit_uplift, uplift_at

FEATURES = ("x_uplift", "x_base", "noise")


def experiment(n: int, seed: int, treated_share: float = 0.5) -> pd.DataFrame:
    """p0 depends on x_base; the offer adds 0.3 x x_uplift (negative uplift for x_uplift < 0)."""
    rng = np.random.default_rng(seed)
    x_uplift, x_base, noise = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.normal(0, 1, n)
    treated = (rng.random(n) < treated_share).astype(int)
    p0 = 0.3 + 0.15 * x_base
    p1 = np.clip(p0 + 0.3 * x_uplift, 0, 1)
    bought = (rng.random(n) < np.where(treated == 1, p1, p0)).astype(int)
    redeemed = bought * treated * (rng.random(n) < 0.8)
    return pd.DataFrame({"x_uplift": x_uplift, "x_base": x_base, "noise": noise, "treated": treated,
                         "propensity": np.where(treated == 1, treated_share, 1 - treated_share),
                         "bought": bought, "redeemed": redeemed.astype(int), "true_uplift": p1 - p0})


@pytest.mark.parametrize("learner", ["x", "t"])
def test_learners_recover_the_sign_of_the_true_uplift(learner):
    model = fit_uplift(experiment(6000, 1), FEATURES, learner=learner, seed=3)
    test = experiment(3000, 2)
    pred = model.predict(test)
    clear = test["true_uplift"].abs() > 0.12
    agree = np.sign(pred.loc[clear, "uplift"]) == np.sign(test.loc[clear, "true_uplift"])
    assert agree.mean() > 0.85
    assert ((pred.p_buy_with_offer >= 0) & (pred.p_buy_with_offer <= 1)).all()
    assert np.allclose(pred.uplift, pred.p_buy_with_offer - pred.p_buy_without_offer)
    assert model.redeem_share == pytest.approx(0.8, abs=0.05)
    metrics = evaluate_uplift(model, test)
    assert metrics["qini"] > 0.1                        # a random ranking scores about 0
    assert metrics["uplift_at_10pct"] > metrics["observed_uplift"]
    assert metrics["auc_control"] > 0.53                # p0 depends on x_base only, and weakly


def test_p_redeem_comes_from_a_calibrated_redemption_model():
    """Redemptions here depend on the features (80% of treated buyers redeem), so a redemption model is
    fitted; its predicted redemptions match the actual ones on new rows. A configured redeem_share
    turns it off: p_redeem = p_buy_with_offer x redeem_share."""
    train, test = experiment(6000, 1), experiment(3000, 2)
    model = fit_uplift(train, FEATURES, learner="x", seed=3)
    assert model.redeem_model is not None
    metrics = evaluate_uplift(model, test)
    assert metrics["redeem_calibration"] == pytest.approx(1.0, abs=0.1)
    assert metrics["auc_redeem"] > 0.6
    fixed = fit_uplift(train, FEATURES, learner="x", seed=3, redeem_share=0.5)
    pred = fixed.predict(test)
    assert fixed.redeem_model is None
    assert np.allclose(pred.p_redeem, 0.5 * pred.p_buy_with_offer)


def test_few_redemptions_fall_back_to_the_redeem_share():
    df = experiment(3000, 1)
    df["redeemed"] = 0
    df.loc[df.index[(df.treated == 1) & (df.bought == 1)][:15], "redeemed"] = 1
    model = fit_uplift(df, FEATURES, learner="x", seed=3)
    assert model.redeem_model is None and any("redemption model" in n for n in model.notes)
    pred = model.predict(df.head(50))
    assert np.allclose(pred.p_redeem, model.redeem_share * pred.p_buy_with_offer)


def test_contributions_point_at_the_feature_that_drives_uplift():
    model = fit_uplift(experiment(6000, 1), FEATURES, learner="x", seed=3)
    contrib = model.contributions(experiment(500, 4))
    assert contrib.shape == (500, 3)
    top = np.abs(contrib).mean(axis=0)
    assert top.argmax() == FEATURES.index("x_uplift")


def test_without_a_control_arm_only_a_response_model_is_fitted():
    df = experiment(3000, 5, treated_share=1.0)
    model = fit_uplift(df, FEATURES, learner="x")
    assert model.learner == "response" and any("control" in n for n in model.notes)
    pred = model.predict(df)
    assert pred.p_buy_without_offer.isna().all() and pred.uplift.isna().all()
    assert pred.p_buy_with_offer.between(0, 1).all()


def test_uplift_at_k_by_hand():
    tau = np.array([0.9, 0.8, 0.1, 0.0])
    w = np.array([1, 0, 1, 0])
    y = np.array([1, 0, 0, 1])
    assert uplift_at(0.5, tau, w, y) == 1.0            # top 2: treated bought, control did not
    assert uplift_at(1.0, tau, w, y) == 0.0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="learner"):
        fit_uplift(experiment(100, 1), FEATURES, learner="causal_forest")
    with pytest.raises(ValueError, match="noise"):
        fit_uplift(experiment(100, 1).drop(columns="noise"), FEATURES)
    with pytest.raises(ValueError, match="no training rows"):
        fit_uplift(experiment(100, 1).iloc[:0], FEATURES)
