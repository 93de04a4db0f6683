"""The main job end to end on a tiny synthetic world, through the CLI: every deliberately broken
record of the generated world is quarantined under the right rule, and nothing else is."""
from __future__ import annotations

from collections import Counter

import pytest
from pyspark.sql import functions as F

from promolake.cli import main
from promolake.common.config import load_config
from promolake.common.lake import Lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# generator's dirty kind -> the ingestion rule that must catch it
EXPECTED_RULE = {
    "unknown_event_type": "unknown_event_type", "negative_unit_price": "negative_price",
    "bad_timestamp": "unparsable_event_ts", "missing_user_id": "missing_user_id",
    "zero_quantity_purchase": "non_positive_quantity", "unknown_item_id": "orphan_item_id",
    "duplicate_event_id": "duplicate_key", "rating_out_of_range": "rating_out_of_range",
}
WORLD = ["world.users=400", "world.items=120", "world.days=90", "world.campaigns=2", "world.dirty_fraction=0.01",
         "spark.show_progress=false", "als.tuning.trials=1", "text.max_pairs=128", "text.batch_size=16",
         "text.max_user_len=24", "text.max_item_len=24", "text.validation_users=30",
         # a 400-user world with 2 campaigns teaches the uplift model nothing (holdout AUC about 0.5): the
         # gate's uplift minimum is lowered so that run-all reaches scoring (the gate: tests/ml/test_validate.py)
         "validation.uplift.minimums.auc_treated=0.0"]


def test_run_all_quarantines_exactly_the_broken_records(spark, lake_root, monkeypatch):
    monkeypatch.setenv("PROMOLAKE_HOME", str(lake_root))
    monkeypatch.setenv("PROMOLAKE_PII_SALT", "e2e")
    args = [a for c in WORLD for a in ("--conf", c)]
    assert main(["run-all", *args]) == 0
    cfg = load_config("local", overrides=WORLD)
    lake = Lake(spark, cfg.lake)

    truth = spark.read.parquet(f"{cfg.world.truth_root}/dirty_records").collect()
    assert truth, "the tiny world should contain broken records"
    expected = Counter((r.source, r.record_key, EXPECTED_RULE[r.kind]) for r in truth)
    key = F.coalesce(F.get_json_object("raw_record", "$.event_id"), F.get_json_object("raw_record", "$.review_id"))
    got = Counter((r.source, r.key, r.rule) for r in lake.read("silver.quarantine").select("source", key.alias("key"),
                                                                                            "rule").collect())
    assert got == expected

    runs = lake.read("ops.ingest_runs").collect()
    assert {r.source for r in runs} == {"users", "items", "campaigns", "campaign_items", "events", "reviews",
                                        "exposures", "redemptions"}
    for r in runs:
        assert r.rows_read == r.rows_accepted + r.rows_quarantined
        assert lake.read(f"silver.{r.source}").count() == r.rows_accepted  # first ingest: every accepted row is new
    # ingesting again is a no-op: same world (not regenerated), nothing new to ingest (re-running the
    # later stages for a date is covered by each stage's own re-run test)
    before = lake.read("silver.events").count()
    assert main(["ingest", *args]) == 0
    assert lake.read("silver.events").count() == before
    assert lake.read("ops.ingest_runs").count() == len(runs)
    # the gate promoted the first version of every model, and scoring used the champions
    from mlflow import MlflowClient

    from promolake.ml import gate
    client = MlflowClient()
    for name in (cfg.als.model_name, cfg.text.model_name, cfg.promotion.model_name):
        challenger, champion = gate.versions(client, name)
        assert champion == challenger == "1", name
    used = lake.read("promo.promotion_assignments").select("model_versions").first()[0]
    assert used[cfg.promotion.model_name] == "1"
    # the main job ends with candidates for the latest date, blended with the text model's list
    assert lake.read("ml.user_candidates").where(F.col("text_rank").isNotNull()).count() > 0
    assert lake.read("ml.text_candidates").count() > 0
