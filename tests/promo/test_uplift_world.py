"""The uplift model against the synthetic world's hidden truth: trained on the past campaigns of a
generated world through the real feature pipeline (silver -> training rows), it must recover the
sign of the true uplift of held-out campaigns' exposures and rank them in the true order."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from promolake.common.lake import Lake
from promolake.promo.response_data import FEATURES
from promolake.promo.train_uplift import silver_frames, time_split, training_rows
from promolake.promo.uplift import fit_uplift
from tests.conftest import generated_world

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# enough past campaigns and exposures for a learner to see users differ, and enough history per user
# for the features to show who they are: 12 campaigns over 200 days, 80% of 3,000 users targeted by
# each (about 23,000 exposures, 80% treated), twice the default sessions per user and day. A smaller
# world (2,500 users, 150 days, 10 campaigns at 60%) left too little to learn from: Spearman 0.05.
WORLD = ["world.users=3000", "world.items=150", "world.days=200", "world.sessions_per_user_day=0.12",
         "world.campaigns=12", "world.seed=11", "world.targeted_share=0.8", "spark.show_progress=false"]


@pytest.fixture(scope="module")
def held_out(spark, tmp_path_factory):
    """(holdout rows with the model's predictions and the true p0/uplift, train rows)."""
    cfg = generated_world(spark, tmp_path_factory.mktemp("uplift_world") / "lakehouse", WORLD)
    end = cfg.world.start_date + dt.timedelta(days=cfg.world.days)
    rows = training_rows(silver_frames(Lake(spark, cfg.lake)), end)
    train, holdout = time_split(rows, 0.3)
    model = fit_uplift(train, FEATURES, "x", seed=3, n_jobs=2)
    pred = model.predict(holdout)
    truth = pd.read_parquet(f"{cfg.world.truth_root}/exposures", columns=["campaign_id", "user_id", "p0", "uplift"])
    out = pd.concat([holdout, pred], axis=1).merge(truth.rename(columns={"uplift": "true_uplift", "p0": "true_p0"}),
                                                    on=["campaign_id", "user_id"], validate="one_to_one")
    return out, train


def test_the_world_gives_enough_history_to_learn_from(held_out):
    out, train = held_out
    assert train.campaign_id.nunique() >= 6 and len(train) > 12000
    assert out.campaign_id.nunique() >= 2 and len(out) > 5000
    assert out.treated.mean() == pytest.approx(0.8, abs=0.05)


def test_the_model_recovers_the_sign_of_the_true_uplift(held_out):
    """Every offer of the world helps (true uplift >= 0); where it clearly helps the model must say so."""
    out, _ = held_out
    clear = out.true_uplift > 0.05
    assert clear.mean() > 0.4
    assert (out.loc[clear, "uplift"] > 0).mean() > 0.7     # measured 0.79 (a coin: 0.5)
    assert out.uplift.mean() > 0


def test_the_model_ranks_exposures_by_their_true_uplift(held_out):
    """Rank agreement with the truth over all held-out exposures, and within offers: users the model
    ranks in its top third have a clearly larger true uplift than those in its bottom third."""
    out, _ = held_out
    overall = out[["uplift", "true_uplift"]].corr(method="spearman").iloc[0, 1]
    assert overall > 0.1                                     # measured 0.21
    thirds = out.groupby("offer_id", group_keys=False).apply(
        lambda g: g.assign(third=pd.qcut(g.uplift.rank(method="first"), 3, labels=False)))
    means = thirds.groupby("third").true_uplift.mean()
    assert means[2] > 1.15 * means[0]                        # measured 1.28
    # the baseline model knows who would buy anyway
    assert out[["p_buy_without_offer", "true_p0"]].corr(method="spearman").iloc[0, 1] > 0.3   # measured 0.47
    assert np.isfinite(out.p_buy_with_offer).all()
