"""Response and uplift models for offers: from past campaigns' randomized exposures, estimate for a
(user, offer) row the chance to buy in the offer's scope during its window without the offer (p0) and
with it (p1), hence the uplift p1 - p0, and the chance to redeem.

- Uplift: a meta-learner from causalml (X-learner by default, T-learner selectable) with LightGBM base
  learners, on promolake.promo.response_data.FEATURES (user features as of the campaign start, scope
  shares, offer features). p0 is the control outcome model's prediction, the uplift the learner's
  treatment effect, p1 = clip(p0 + uplift, 0, 1).
- No control arm in the history (common in real data): a response model only (LightGBM on the
  treated rows) gives p1; p0 and the uplift are unknown (NaN) and `learner` says "response".
- p_redeem: a redemption model (LightGBM on the treated rows: did the user redeem?) when the history
  has enough redemptions, else p1 x redeem_share (the share of treated buyers who redeemed). The cost
  of an offer rests on p_redeem, and the engine picks users whose predicted cost is low, so p_redeem
  must be calibrated where it is low: on the demo world's held-out campaigns, p1 x redeem_share
  predicted 0.066 for the fifth of treated users with the lowest values, who redeemed at 0.104; the
  redemption model predicted 0.106 (AUC 0.69 against 0.63).

Pure pandas/numpy in, pandas out: Spark and MLflow stay in the stage that calls these functions.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

LEARNERS = ("x", "t")
MIN_ROWS_PER_ARM = 20
MIN_REDEMPTIONS = 20      # redeemed and not-redeemed treated rows needed for a redemption model


def _lgbm_params(seed: int, n_jobs: int) -> dict:
    """Small, strongly regularised trees: an offer's effect is a small difference between two noisy
    purchase rates, and deeper trees fit the noise (on the demo world's held-out campaigns, 7 leaves with
    at least 100 rows each ranked users by true uplift better than 15 leaves with 40: Spearman 0.49 vs
    0.46 overall, 0.21 vs 0.18 within an offer)."""
    return dict(n_estimators=200, learning_rate=0.05, num_leaves=7, min_child_samples=100, subsample=0.8,
                subsample_freq=1, colsample_bytree=0.9, random_state=seed, n_jobs=n_jobs, verbose=-1,
                # the same rows, seed and thread count give the same model (LightGBM's documented recipe)
                deterministic=True, force_row_wise=True)


@contextmanager
def _same_columns():
    """Silence sklearn's "X does not have valid feature names" warning (one per base learner and call):
    causalml fits some base learners on DataFrames and predicts on arrays of the same columns."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        yield


@dataclass
class UpliftModel:
    """A fitted response/uplift model; `predict` and `contributions` take a DataFrame with `features`."""

    learner: str                     # "x", "t" or "response"
    features: tuple[str, ...]
    estimator: Any
    redeem_share: float
    p_treat: float                   # share of treated rows in training (the X-learner's weighting)
    notes: list[str] = field(default_factory=list)
    redeem_model: Any = None         # P(redeem | treated, features); None: p1 x redeem_share

    def _x(self, df: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise ValueError(f"uplift model needs the columns {missing}")
        return df[list(self.features)].to_numpy(dtype=float)

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """p_buy_without_offer, p_buy_with_offer, uplift and p_redeem per row (same index as df)."""
        with _same_columns():
            return self._predict(df)

    def _predict(self, df: pd.DataFrame) -> pd.DataFrame:
        X = self._x(df)
        if self.learner == "response":
            p1 = self.estimator.predict_proba(X)[:, 1]
            p0 = np.full(len(X), np.nan)
            uplift = np.full(len(X), np.nan)
        else:
            if self.learner == "x":
                te = self.estimator.predict(X, p=np.full(len(X), self.p_treat), verbose=False)
            else:
                te = self.estimator.predict(X, verbose=False)
            p0 = np.clip(self._control_model().predict_proba(X)[:, 1], 0.0, 1.0)
            p1 = np.clip(p0 + np.asarray(te, dtype=float).reshape(len(X), -1)[:, 0], 0.0, 1.0)
            uplift = p1 - p0
        p_redeem = (self.redeem_model.predict_proba(X)[:, 1] if self.redeem_model is not None
                    else p1 * self.redeem_share)
        return pd.DataFrame({"p_buy_without_offer": p0, "p_buy_with_offer": p1, "uplift": uplift,
                             "p_redeem": p_redeem}, index=df.index)

    def contributions(self, df: pd.DataFrame) -> np.ndarray:
        """[rows, features]: each feature's additive contribution (LightGBM SHAP values) to the predicted
        uplift (to the response's log-odds for a response model), for reason codes."""
        with _same_columns():
            return self._contributions(self._x(df))

    def _contributions(self, X: np.ndarray) -> np.ndarray:
        if self.learner == "response":
            return self.estimator.predict(X, pred_contrib=True)[:, :-1]
        if self.learner == "x":
            c = self.estimator.models_tau_c[1].predict(X, pred_contrib=True)[:, :-1]
            t = self.estimator.models_tau_t[1].predict(X, pred_contrib=True)[:, :-1]
            return self.p_treat * c + (1 - self.p_treat) * t
        # T-learner: difference of the two outcome models' log-odds contributions
        mu_t = self.estimator.models_t[1].predict(X, pred_contrib=True)[:, :-1]
        return mu_t - self._control_model().predict(X, pred_contrib=True)[:, :-1]

    def _control_model(self):
        """The outcome model fitted on the control arm (treatment group 1 against control 0)."""
        return self.estimator.models_mu_c[1] if self.learner == "x" else self.estimator.models_c[1]


def fit_uplift(df: pd.DataFrame, features: Sequence[str], learner: str = "x", seed: int = 17,
               n_jobs: int = 1, redeem_share: float | None = None) -> UpliftModel:
    """Fit on rows with `features`, treated (0/1), propensity (probability of the row's arm), bought
    (0/1) and redeemed (0/1). Falls back to a response model when either arm has fewer than
    MIN_ROWS_PER_ARM rows; `redeem_share` None: learned (treated buyers who redeemed)."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    if learner not in LEARNERS:
        raise ValueError(f"learner must be one of {LEARNERS}, got {learner!r}")
    need = [*features, "treated", "propensity", "bought", "redeemed"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"training rows lack the columns {missing}")
    if df.empty:
        raise ValueError("no training rows: no past campaign with exposures has ended before the cut-off")
    X = df[list(features)].to_numpy(dtype=float)
    w = df["treated"].to_numpy(dtype=int)
    y = df["bought"].to_numpy(dtype=int)
    notes = []
    treated_buyers = (w == 1) & (y == 1)
    learn_share = redeem_share is None
    if redeem_share is None:
        if treated_buyers.sum() >= 10:
            redeem_share = float(np.clip(df.loc[treated_buyers, "redeemed"].mean(), 0.01, 1.0))
        else:
            redeem_share = 1.0
            notes.append("fewer than 10 treated buyers: redeem_share assumed 1.0 (every treated buyer redeems)")
    params = _lgbm_params(seed, n_jobs)
    redeem_model = None
    if learn_share:
        r = df.loc[w == 1, "redeemed"].to_numpy(dtype=int)
        if min(int(r.sum()), int(len(r) - r.sum())) >= MIN_REDEMPTIONS:
            redeem_model = LGBMClassifier(**params).fit(X[w == 1], r)
        else:
            notes.append(f"{int(r.sum())} redemptions in {len(r)} treated rows: too few for a redemption model, "
                         "p_redeem = p_buy_with_offer x redeem_share")
    n_t, n_c = int((w == 1).sum()), int((w == 0).sum())
    if min(n_t, n_c) < MIN_ROWS_PER_ARM or len(np.unique(y[w == 1])) < 2 or len(np.unique(y[w == 0])) < 2:
        notes.append(f"no usable control arm ({n_c} control rows, {n_t} treated): response model only, "
                     "p_buy_without_offer and uplift unknown")
        rows = w == 1 if n_t >= MIN_ROWS_PER_ARM else np.ones(len(w), dtype=bool)
        model = LGBMClassifier(**params).fit(X[rows], y[rows])
        return UpliftModel("response", tuple(features), model, redeem_share, float(w.mean()), notes, redeem_model)
    from causalml.inference.meta import BaseTClassifier, BaseXClassifier

    p_treat = np.where(w == 1, df["propensity"].to_numpy(float), 1.0 - df["propensity"].to_numpy(float))
    if learner == "x":
        est = BaseXClassifier(outcome_learner=LGBMClassifier(**params), effect_learner=LGBMRegressor(**params),
                              control_name=0)
        with _same_columns():
            est.fit(X, treatment=w, y=y, p=np.clip(p_treat, 0.01, 0.99))
    else:
        est = BaseTClassifier(learner=LGBMClassifier(**params), control_name=0)
        with _same_columns():
            est.fit(X, treatment=w, y=y)
    return UpliftModel(learner, tuple(features), est, redeem_share, float(np.mean(p_treat)), notes, redeem_model)


def uplift_at(frac: float, tau: np.ndarray, w: np.ndarray, y: np.ndarray) -> float:
    """Observed uplift among the top `frac` rows by predicted uplift: treated minus control buy rate
    (NaN when an arm is empty there)."""
    n = max(1, int(round(frac * len(tau))))
    top = np.argsort(-tau, kind="stable")[:n]
    t, c = top[w[top] == 1], top[w[top] == 0]
    return float(y[t].mean() - y[c].mean()) if len(t) and len(c) else float("nan")


def evaluate_uplift(model: UpliftModel, df: pd.DataFrame) -> dict[str, float]:
    """Holdout metrics: AUC of the response (p1 on treated rows, p0 on control rows), normalised Qini
    coefficient and AUUC (causalml.metrics) of the predicted uplift, and observed uplift@10%/30%, plus
    the observed average uplift for reference; for p_redeem on the treated rows, its AUC and
    redeem_calibration = predicted / actual redemptions."""
    from sklearn.metrics import roc_auc_score

    pred = model.predict(df)
    w, y = df["treated"].to_numpy(int), df["bought"].to_numpy(int)
    out: dict[str, float] = {"rows": float(len(df)), "treated_rows": float(w.sum())}
    if w.sum() and w.sum() < len(w):
        out["observed_uplift"] = float(y[w == 1].mean() - y[w == 0].mean())
    for arm, col in ((1, "p_buy_with_offer"), (0, "p_buy_without_offer")):
        rows = w == arm
        if rows.any() and len(np.unique(y[rows])) == 2 and not pred.loc[rows, col].isna().any():
            out[f"auc_{'treated' if arm else 'control'}"] = float(roc_auc_score(y[rows], pred.loc[rows, col]))
    treated = w == 1
    if "redeemed" in df.columns and treated.any() and df.loc[treated, "redeemed"].sum() > 0:
        r = df.loc[treated, "redeemed"].to_numpy(int)
        p_r = pred.loc[treated, "p_redeem"].to_numpy(float)
        # predicted / actual redemptions of the treated rows: above 1 the costs are overestimated
        out["redeem_calibration"] = float(p_r.sum() / r.sum())
        if len(np.unique(r)) == 2:
            out["auc_redeem"] = float(roc_auc_score(r, p_r))
    if model.learner != "response" and 0 < w.sum() < len(w):
        from causalml.metrics import auuc_score, qini_score

        # the prediction's column must not be called "tau": causalml reads that name as the true effect
        frame = pd.DataFrame({"y": y, "w": w, "model": pred["uplift"].to_numpy()})
        out["qini"] = float(qini_score(frame, outcome_col="y", treatment_col="w", normalize=True)["model"])
        out["auuc"] = float(auuc_score(frame, outcome_col="y", treatment_col="w", normalize=True)["model"])
        for frac in (0.1, 0.3):
            out[f"uplift_at_{int(frac * 100)}pct"] = uplift_at(frac, pred["uplift"].to_numpy(), w, y)
    return out
