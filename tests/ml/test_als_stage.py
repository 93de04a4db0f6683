"""The train-als stage end to end on a small synthetic world: tables, registry, evaluation, re-runs."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from pyspark.sql import functions as F

from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.ml.train_als import RECOMMENDERS, run_als

pytestmark = [pytest.mark.spark, pytest.mark.slow]

AS_OF = dt.date(2025, 1, 1) + dt.timedelta(days=120)
ML_TABLES = ("ml.als_user_factors", "ml.als_item_factors", "ml.als_candidates", "ml.user_candidates",
             "ml.similar_items", "ml.ranking_evaluation")


def at(lake: Lake, table: str):
    return lake.read(table).where(F.col("as_of") == F.lit(AS_OF))


def test_every_table_is_written_and_the_model_is_the_challenger(trained):
    from mlflow import MlflowClient

    cfg, lake, report = trained
    assert [r["table"] for r in report.rows] == list(ML_TABLES)
    versions = {r.model_version for t in ML_TABLES[:-1] for r in at(lake, t).select("model_version").distinct().collect()}
    assert len(versions) == 1
    mv = MlflowClient().get_model_version_by_alias(cfg.als.model_name, "challenger")
    assert str(mv.version) == versions.pop()

    cands = at(lake, "ml.user_candidates")
    assert cands.groupBy("user_id", "item_id").count().where("count > 1").count() == 0
    per_user = cands.groupBy("user_id").agg(F.count("*").alias("n"), F.max("rank").alias("top"))
    assert per_user.where((F.col("n") != F.col("top")) | (F.col("n") > cfg.als.candidates)).count() == 0
    # every active user gets candidates, including users without history (cold start)
    since = F.lit(AS_OF - dt.timedelta(days=cfg.als.active_days)).cast("timestamp")
    active = lake.read("silver.events").where((F.col("event_ts") >= since)
                                              & (F.col("event_ts") < F.lit(AS_OF).cast("timestamp")))
    assert active.select("user_id").distinct().join(cands, "user_id", "left_anti").count() == 0
    # item factors cover the catalogue; items nobody touched are flagged for the text model
    items = at(lake, "ml.als_item_factors")
    assert items.count() == lake.read("silver.items").count()
    assert items.where(F.col("cold_start") != F.col("features").isNull()).count() == 0
    sims = at(lake, "ml.similar_items")
    assert sims.where(F.col("item_id") == F.col("neighbour_item_id")).count() == 0


def test_evaluation_table_als_blend_and_baselines(trained):
    cfg, lake, report = trained
    ev = {(r.recommender, r.view, r.metric): r.value for r in
          at(lake, "ml.ranking_evaluation").where(F.col("split") == "test").collect()}
    for rec in RECOMMENDERS:
        for view in ("all", "new"):
            assert (rec, view, "ndcg") in ev
    ndcg = {(rec, view): ev[(rec, view, "ndcg")] for rec in RECOMMENDERS for view in ("all", "new")}
    # the world has taste: ALS beats popularity on items new to the user
    assert ndcg[("als", "new")] > ndcg[("popularity", "new")]
    assert ndcg[("als", "new")] > ndcg[("segment_popularity", "new")]
    # the blend beats every baseline on all purchases (repeats included) and keeps ALS's edge on new items
    for base in ("popularity", "segment_popularity", "repeat"):
        assert ndcg[("blend", "all")] > ndcg[(base, "all")]
    assert ndcg[("blend", "new")] >= 0.9 * ndcg[("als", "new")]
    assert ndcg[("repeat", "new")] == 0.0
    assert any("ranking evaluation" in title for title, _ in report.sections)


def test_registered_model_predicts_like_the_candidate_table(trained):
    import mlflow

    cfg, lake, _ = trained
    model = mlflow.pyfunc.load_model(f"models:/{cfg.als.model_name}@challenger")
    assert model.metadata.signature is not None
    user = at(lake, "ml.als_candidates").select("user_id").first()[0]
    want = [r.item_id for r in at(lake, "ml.als_candidates").where(F.col("user_id") == user)
            .where(F.col("rank") <= 5).orderBy("rank").collect()]
    import pandas as pd
    got = model.predict(pd.DataFrame({"user_id": [user], "k": [5]}))
    assert got.item_id.tolist() == want


def test_rerunning_the_date_replaces_it_and_keeps_the_index(spark, trained):
    cfg, lake, _ = trained
    index_before = {r.user_id: r.user_idx for r in lake.read("ml.als_user_index").collect()}
    counts = {t: at(lake, t).count() for t in ML_TABLES}
    # without the tuning trials (the re-run's point is what it writes, not the search)
    untuned = cfg.model_copy(update={"als": cfg.als.model_copy(update={"tune": False})})
    run_als(spark, untuned, AS_OF, report=StageReport("als", out=io.StringIO()))
    assert {t: at(lake, t).count() for t in ML_TABLES} == counts
    assert {r.user_id: r.user_idx for r in lake.read("ml.als_user_index").collect()} == index_before
    versions = at(lake, "ml.user_candidates").select("model_version").distinct().collect()
    assert len(versions) == 1 and versions[0][0] != "1"
