"""The train-text stage end to end on the small world of tests/ml/conftest.py (after train-als):
tables, registry, the pyfunc reproducing the stored embeddings, cold-start items, the evaluation
table, and an idempotent re-run."""
from __future__ import annotations

import io

import numpy as np
import pytest
from pyspark.sql import functions as F

from promolake.common.reporting import StageReport
from promolake.ml.train_text import TEXT_RECOMMENDERS, TEXT_VIEWS, run_text
from tests.ml.conftest import AS_OF

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TEXT_TABLES = ("ml.item_text_embeddings", "ml.user_text_embeddings", "ml.text_candidates", "ml.user_candidates",
               "ml.ranking_evaluation")


@pytest.fixture(scope="module")
def text_trained(spark, trained):
    cfg, lake, _ = trained
    report = run_text(spark, cfg, report=StageReport("text", out=io.StringIO()))
    return cfg, lake, report


def at(lake, table):
    return lake.read(table).where(F.col("as_of") == F.lit(AS_OF))


def test_tables_written_and_the_model_is_the_challenger(text_trained):
    from mlflow import MlflowClient

    cfg, lake, report = text_trained
    assert [r["table"] for r in report.rows] == list(TEXT_TABLES)
    mv = MlflowClient().get_model_version_by_alias(cfg.text.model_name, "challenger")
    versions = {r.model_version for t in TEXT_TABLES[:3] for r in at(lake, t).select("model_version").distinct().collect()}
    assert versions == {str(mv.version)}
    run = MlflowClient().get_run(mv.run_id)
    assert run.data.params["engine"] == "horovod" and run.data.params["world_size"] == "2"
    assert "val_recall_at_10" in run.data.metrics and "samples_per_second" in run.data.metrics

    items = at(lake, "ml.item_text_embeddings")
    assert items.count() == lake.read("silver.items").where(
        F.col("created_ts") < F.lit(AS_OF).cast("timestamp")).count()
    norms = np.array([np.linalg.norm(r.embedding) for r in items.select("embedding").collect()])
    assert np.allclose(norms, 1.0, atol=1e-4)


def test_registered_model_reproduces_the_stored_embeddings(text_trained):
    import mlflow
    import pandas as pd

    from promolake.gold.item_profile import item_text

    cfg, lake, _ = text_trained
    stored = at(lake, "ml.item_text_embeddings").orderBy("item_id").limit(5).toPandas()
    texts = (lake.read("silver.items").select("item_id", item_text(cfg.features.item_text_max_chars).alias("t"))
             .toPandas().set_index("item_id").loc[stored.item_id, "t"])
    model = mlflow.pyfunc.load_model(f"models:/{cfg.text.model_name}@challenger")
    # the stage encodes at text.embed_precision (auto: bf16 on a CPU that has it); the pyfunc at the same
    # precision reproduces the stored rows
    out = model.predict(pd.DataFrame({"text": texts.to_list(), "tower": ["item"] * len(texts)}),
                        params={"precision": cfg.text.embed_precision})
    np.testing.assert_allclose(np.stack(out["embedding"].to_numpy()), np.stack(stored.embedding.to_numpy()),
                               atol=1e-4)


def test_cold_start_items_get_text_candidates_and_the_blend_uses_text(text_trained):
    cfg, lake, _ = text_trained
    tc = at(lake, "ml.text_candidates")
    assert tc.where("cold_start_item").count() > 0
    assert tc.groupBy("user_id", "item_id").count().where("count > 1").count() == 0
    cands = at(lake, "ml.user_candidates")
    assert cands.groupBy("user_id", "item_id").count().where("count > 1").count() == 0
    assert cands.where(F.col("text_rank").isNotNull()).count() > 0
    assert cands.where(F.array_contains("sources", "text")).count() > 0
    # every active user still has candidates, warm and cold
    assert cands.where("cold_start_user").count() > 0 and cands.where("not cold_start_user").count() > 0


def test_evaluation_table_has_als_text_and_blends_on_every_view(text_trained):
    cfg, lake, report = text_trained
    ev = {(r.recommender, r.view, r.metric): r.value for r in at(lake, "ml.ranking_evaluation").where(
        F.col("model_name") == cfg.text.model_name).collect()}
    for rec in TEXT_RECOMMENDERS:
        for view in TEXT_VIEWS:
            assert (rec, view, "ndcg") in ev
    # ALS has no factors for items without interactions: zero by construction on that view
    assert ev[("als", "cold_items", "recall")] == 0.0
    # coverage is a share of the catalogue the lists draw from (text ranks items listed up to as_of): <= 1
    assert all(0 <= v <= 1 for (_, _, metric), v in ev.items() if metric == "coverage"), \
        {k: v for k, v in ev.items() if k[2] == "coverage"}
    # the blend with text is at least as good as ALS alone on all purchases
    assert ev[("blend_text", "all", "ndcg")] > ev[("als", "all", "ndcg")]
    # the ALS stage's own evaluation rows survive the text stage's write
    als_rows = at(lake, "ml.ranking_evaluation").where(F.col("model_name") == cfg.als.model_name).count()
    assert als_rows > 0


def test_the_gate_evaluates_a_text_version_as_the_stage_did(spark, text_trained):
    """validate-and-promote evaluates a champion text model with the stage's own test evaluation on the
    challenger's holdout: run on the registered challenger itself (the model trained before its holdout),
    it reproduces the text list's metrics its training run logged."""
    from mlflow import MlflowClient

    from promolake.ml import validate as val

    cfg, lake, _ = text_trained
    client = MlflowClient()
    mv = client.get_model_version_by_alias(cfg.text.model_name, "challenger")
    holdout = val.holdout_of(mv)
    assert holdout.end == AS_OF and (holdout.end - holdout.start).days == cfg.als.horizon_days
    logged = val.run_metrics("text", client.get_run(mv.run_id).data.metrics, cfg)
    got = val.evaluate_text_version(spark, lake, cfg, f"models:/{mv.name}/{mv.version}", holdout,
                                    mv.tags["als_version"], StageReport("validate", out=io.StringIO()))
    for metric in ("ndcg", "recall", "hit_rate"):
        assert got[metric] == pytest.approx(logged[metric], abs=1e-4), metric


def test_rerunning_the_date_replaces_it(spark, text_trained):
    cfg, lake, _ = text_trained
    before = {t: at(lake, t).count() for t in TEXT_TABLES[:4]}
    # a shorter fine-tune in-process (Horovod is covered by the first run): the re-run's point is what it writes
    quick = cfg.model_copy(update={"text": cfg.text.model_copy(update={"engine": "local", "max_pairs": 64})})
    run_text(spark, quick, report=StageReport("text", out=io.StringIO()))
    after = {t: at(lake, t).count() for t in TEXT_TABLES[:4]}
    assert after == before
    assert at(lake, "ml.user_candidates").groupBy("user_id", "item_id").count().where("count > 1").count() == 0
