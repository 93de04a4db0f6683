"""validate-and-promote: the challenger's holdout (from its version tags) and metrics (from its training
run), and the whole stage on a real sqlite registry over the shared trained world: the champion is
loaded and evaluated for real on the challenger's holdout, and the alias moves only when it should."""
from __future__ import annotations

import datetime as dt
import io
from types import SimpleNamespace

import pytest

from promolake.common.reporting import StageReport
from promolake.ml import validate as val

D = dt.date


def version(tags, name="m", number="2", run_id="r"):
    return SimpleNamespace(name=name, version=number, tags=tags, run_id=run_id)


def test_holdout_comes_from_the_version_tags():
    h = val.holdout_of(version({"holdout_start": "2026-01-01", "holdout_end": "2026-01-15",
                                "holdout_campaigns": "C2,C3"}))
    assert h == val.Holdout(D(2026, 1, 1), D(2026, 1, 15), ("C2", "C3"))
    with pytest.raises(val.GateError, match="m v2 has no holdout_start/holdout_end tags"):
        val.holdout_of(version({"as_of": "2026-01-15"}))


def test_trained_through_is_the_text_models_cut_and_the_others_as_of():
    tags = {"as_of": "2026-01-15", "holdout_start": "2026-01-01"}
    assert val.trained_through("als", version(tags)) == D(2026, 1, 15)
    assert val.trained_through("uplift", version(tags)) == D(2026, 1, 15)
    assert val.trained_through("text", version(tags)) == D(2026, 1, 1)
    assert val.trained_through("als", version({})) is None


def test_run_metrics_keeps_the_holdout_metrics_of_the_gated_list(make_config):
    cfg = make_config()
    k = cfg.als.k
    logged = {f"test_all_als_ndcg_at_{k}": 0.2, f"test_new_als_ndcg_at_{k}": 0.1, f"test_all_blend_ndcg_at_{k}": 0.3,
              f"test_all_als_recall_at_{k}": 0.4, "fit_seconds": 3.0}
    assert val.run_metrics("als", logged, cfg) == {"ndcg": 0.2, "recall": 0.4}
    assert val.run_metrics("uplift", {"holdout_qini": 0.1, "holdout_auc_treated": 0.7, "qini": 9}, cfg) == {
        "qini": 0.1, "auc_treated": 0.7}


# ----- the stage on a real registry -------------------------------------------------------------

@pytest.fixture(scope="module")
def gate(spark, trained, tmp_path_factory):
    """(cfg, lake, client, add): the shared trained world with its own sqlite registry, where add(metrics)
    registers the world's trained ALS model once more as a new @challenger version whose training run
    logged `metrics` (the holdout tags are the real ones)."""
    import mlflow
    from mlflow import MlflowClient

    from promolake.common import tracking

    cfg, lake, _ = trained
    tracking.setup(cfg.mlflow)
    shared = MlflowClient()
    src = shared.get_model_version_by_alias(cfg.als.model_name, "challenger")
    real = shared.get_run(src.run_id).data.metrics
    tmp = tmp_path_factory.mktemp("gate")
    local = mlflow.artifacts.download_artifacts(f"models:/{cfg.als.model_name}/{src.version}", dst_path=str(tmp / "m"))
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    conf = cfg.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}", "registry_uri": None,
                                         "artifact_location": str(tmp / "artifacts")})
    cfg = cfg.model_copy(update={"mlflow": conf, "validation": cfg.validation.model_copy(update={"models": ["als"]})})
    tracking.setup(conf)
    client = MlflowClient()
    client.create_registered_model(cfg.als.model_name)
    tags = {k: v for k, v in src.tags.items() if k in ("as_of", "holdout_start", "holdout_end")}

    def add(metrics: dict[str, float]) -> str:
        with mlflow.start_run() as run:
            mlflow.log_metrics(metrics)
        mv = client.create_model_version(cfg.als.model_name, source=local, run_id=run.info.run_id, tags=tags)
        client.set_registered_model_alias(cfg.als.model_name, "challenger", mv.version)
        return str(mv.version)

    yield cfg, lake, client, add, real
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def als_metrics(cfg, ndcg: float, recall: float) -> dict[str, float]:
    return {f"test_all_als_ndcg_at_{cfg.als.k}": ndcg, f"test_all_als_recall_at_{cfg.als.k}": recall}


def aliases(client, name):
    from promolake.ml.gate import versions

    return versions(client, name)


def test_gate_stage_promotes_the_first_model_then_judges_against_the_evaluated_champion(spark, gate):
    import mlflow
    import pandas as pd

    from promolake.ml import train_als as ta
    from promolake.ml.evaluation import ranking_metrics

    cfg, lake, client, add, real = gate
    name, k = cfg.als.model_name, cfg.als.k
    quiet = lambda: StageReport("validate-and-promote", out=io.StringIO())  # noqa: E731

    # the first version: its run's real holdout metrics against the minimums only
    first = add(als_metrics(cfg, real[f"test_all_als_ndcg_at_{k}"], real[f"test_all_als_recall_at_{k}"]))
    assert real[f"test_all_als_ndcg_at_{k}"] >= cfg.validation.als.minimums["ndcg"]
    val.run_validate(spark, cfg, report=quiet())
    assert aliases(client, name) == (first, first)
    assert client.get_model_version(name, first).tags["validation_champion_version"] == "none"

    # the champion evaluated on the challenger's holdout, as the serving path (the pyfunc) would rank
    holdout = val.holdout_of(client.get_model_version(name, first))
    champ = val.evaluate_als_version(spark, lake, cfg, f"models:/{name}/{first}", holdout)
    assert 0 < champ["ndcg"] < 1 and champ["users"] > 0
    model = mlflow.pyfunc.load_model(f"models:/{name}/{first}").unwrap_python_model()
    from pyspark.sql import functions as F
    events = lake.read("silver.events").where(F.col("event_ts") < F.lit(str(holdout.end)).cast("timestamp"))
    split = ta.build_split(lake, cfg, events, holdout.start, lake.read("ml.als_user_index"),
                           lake.read("ml.als_item_index"), holdout.end)
    users = [r.user_id for r in split.warm_users.collect()]
    served = model.predict(None, pd.DataFrame({"user_id": users, "k": k}))
    again = ranking_metrics(spark.createDataFrame(served[["user_id", "item_id", "rank"]]), split.relevant["all"],
                            split.warm_users, k, split.catalogue, split.item_popularity)
    assert champ["ndcg"] == pytest.approx(again["ndcg"], abs=2e-3)
    assert champ["recall"] == pytest.approx(again["recall"], abs=2e-3)

    # a better challenger is promoted; the verdict and both versions' numbers land on its tags
    better = add(als_metrics(cfg, champ["ndcg"] + 0.02, champ["recall"]))
    report = quiet()
    val.run_validate(spark, cfg, report=report)
    assert aliases(client, name) == (better, better)
    mv = client.get_model_version(name, better)
    assert mv.tags["validation_status"] == "passed" and mv.tags["previous_champion"] == first
    assert float(mv.tags["validation_champion_ndcg"]) == pytest.approx(champ["ndcg"], rel=1e-4)
    assert "in-sample" in mv.description     # the champion was trained through the holdout
    assert dict(report.sections)["promotion gate (mode enabled)"][0]["verdict"] == "passed"

    # a worse one is rejected: the alias stays
    worse = add(als_metrics(cfg, champ["ndcg"] - 0.05, champ["recall"]))
    val.run_validate(spark, cfg, report=quiet())
    assert aliases(client, name) == (worse, better)
    mv = client.get_model_version(name, worse)
    assert mv.tags["validation_status"] == "failed" and "regresses more than" in mv.description

    # dry_run: a better one is reported, nothing is written
    dry = add(als_metrics(cfg, champ["ndcg"] + 0.05, champ["recall"] + 0.05))
    report = quiet()
    val.run_validate(spark, cfg.model_copy(update={"validation": cfg.validation.model_copy(
        update={"mode": "dry_run"})}), report=report)
    assert aliases(client, name) == (dry, better)
    assert "validation_status" not in client.get_model_version(name, dry).tags
    assert "would move @champion" in dict(report.sections)["promotion gate (mode dry_run)"][0]["action"]
