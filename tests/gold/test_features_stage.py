"""The features stage end to end on a small synthetic world: all gold tables for an as_of, gated by
data-quality checks, idempotent per date, and recovering the world's hidden signals."""
from __future__ import annotations

import datetime as dt
import io
import os

import pandas as pd
import pytest
from pyspark.sql import functions as F

from promolake.common.config import load_config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.gold.features import FEATURE_TABLES, FeatureWriter, run_features
from promolake.gold.quality import DataQualityError
from promolake.landing.synthetic_world import run_generate
from promolake.silver.ingest import run_ingest
from tests.conftest import REPO

pytestmark = [pytest.mark.spark, pytest.mark.slow]

WORLD = ["world.users=1500", "world.items=150", "world.days=140", "world.campaigns=2", "world.seed=11",
         "spark.show_progress=false", "features.trend.window_days=126"]


def quiet(stage: str) -> StageReport:
    return StageReport(stage, out=io.StringIO())


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("features") / "lakehouse"
    environ = {"PROMOLAKE_HOME": str(root), "PROMOLAKE_PII_SALT": "test-salt"}
    cfg = load_config("local", overrides=WORLD, conf_dir=REPO / "conf", environ=environ)
    mp = pytest.MonkeyPatch()
    mp.setenv("PROMOLAKE_PII_SALT", "test-salt")
    run_generate(spark, cfg, report=quiet("generate"))
    run_ingest(spark, cfg)
    report = run_features(spark, cfg, report=quiet("features"))
    mp.undo()
    return cfg, Lake(spark, cfg.lake), report


def snapshot(lake: Lake, table: str, as_of: dt.date) -> pd.DataFrame:
    df = lake.read(table)
    df = df.where(F.col("as_of") == F.lit(as_of)) if "as_of" in df.columns else df
    pdf = df.drop("computed_at").toPandas()
    keys = [c for c in ("user_id", "item_id", "category", "day", "week_start") if c in pdf.columns]
    return pdf.sort_values(keys).reset_index(drop=True)


AS_OF = dt.date(2025, 1, 1) + dt.timedelta(days=140)  # the day after the world's last day


def test_every_table_is_built_for_the_latest_date_and_passes_its_checks(world):
    cfg, lake, report = world
    assert [r["table"] for r in report.rows] == list(FEATURE_TABLES)
    users = lake.read("silver.users").where(F.col("signup_ts") < F.lit(AS_OF)).count()
    assert lake.read("gold.user_profile").where(F.col("as_of") == F.lit(AS_OF)).count() == users
    categories = lake.read("silver.items").select("category").distinct().count()
    assert lake.read("gold.category_forecast").where(F.col("as_of") == F.lit(AS_OF)).count() == 4 * categories
    assert lake.read("gold.market_trend_daily").agg(F.max("day")).first()[0] == AS_OF - dt.timedelta(days=1)
    dq = lake.read("ops.dq_results").where(F.col("as_of") == F.lit(AS_OF))
    assert {r.table_name for r in dq.collect()} == set(FEATURE_TABLES)
    assert dq.where(~F.col("passed")).count() == 0
    titles = [t for t, _ in report.sections]
    assert any("segments" in t for t in titles) and any("rising" in t for t in titles)
    assert sum(r["users"] for r in report.sections[0][1]) == users
    assert os.path.isfile(os.path.join(cfg.features.reports_root, "features", str(AS_OF), "market_trend.png"))


def test_rerunning_a_date_replaces_that_date_only(spark, world):
    cfg, lake, _ = world
    earlier = AS_OF - dt.timedelta(days=7)
    run_features(spark, cfg, earlier, report=quiet("features"))
    before = {t: snapshot(lake, t, AS_OF) for t in ("gold.user_profile", "gold.item_profile", "gold.category_forecast")}
    report = run_features(spark, cfg, AS_OF, report=quiet("features"))
    for t, frame in before.items():
        pd.testing.assert_frame_equal(snapshot(lake, t, AS_OF), frame, check_like=True)
    written = {r["table"]: r for r in report.rows}
    assert written["gold.user_profile"]["inserted"] == 0 and written["gold.user_profile"]["deleted"] == 0
    profiles = lake.read("gold.user_profile").groupBy("as_of").count().collect()
    assert {r.as_of for r in profiles} == {earlier, AS_OF}
    # the earlier date only saw users who had signed up by then
    counts = {r.as_of: r["count"] for r in profiles}
    assert counts[earlier] == lake.read("silver.users").where(F.col("signup_ts") < F.lit(earlier)).count()


def test_profiles_recover_the_worlds_price_sensitivity(spark, world):
    cfg, lake, _ = world
    measured = snapshot(lake, "gold.user_profile", AS_OF)[["user_id", "price_index", "events_365d"]]
    truth = spark.read.parquet(f"{cfg.world.truth_root}/users").select("user_id", "price_sensitivity").toPandas()
    both = measured.merge(truth, on="user_id")
    both = both[both["events_365d"] >= 10]
    rho = both["price_index"].corr(both["price_sensitivity"], method="spearman")
    assert rho < -0.1, f"price-sensitive users should go for cheaper items (Spearman {rho:.3f})"
    top = both[both["price_sensitivity"] >= both["price_sensitivity"].quantile(0.75)]["price_index"].mean()
    bottom = both[both["price_sensitivity"] <= both["price_sensitivity"].quantile(0.25)]["price_index"].mean()
    assert top < bottom


def test_rising_categories_are_flagged_rising(spark, world):
    # Weekly trend over 18 weeks: a 1,500-user world sells only 2-20 units a day per category, too few
    # for a daily trend; the default 20,000-user world is checked the same way in BENCHMARKS.md.
    cfg, lake, _ = world
    truth = {r.category: r.label for r in spark.read.parquet(f"{cfg.world.truth_root}/category_trends").collect()}
    weekly = lake.read("gold.market_trend_weekly")
    last = weekly.where(F.col("week_start") == weekly.agg(F.max("week_start")).first()[0]).collect()
    got = {r.category: (r.trend_flag, r.trend_growth_4w) for r in last}
    rising = {c for c, label in truth.items() if label == "rising"}
    falling = {c for c, label in truth.items() if label == "falling"}
    assert rising and {got[c][0] for c in rising} == {"rising"}, got
    # the falling trends are damped by the world's growing user base; they still rank below the rising ones
    mean_falling = sum(got[c][1] for c in falling) / len(falling)
    assert mean_falling < min(got[c][1] for c in rising) - 0.05, got


def test_a_failed_check_stops_the_write_and_is_recorded(spark, world):
    cfg, lake, _ = world
    bad_day = AS_OF + dt.timedelta(days=30)
    rows = lake.read("gold.user_profile").where(F.col("as_of") == F.lit(AS_OF)).limit(5) \
        .withColumn("as_of", F.lit(bad_day))
    writer = FeatureWriter(lake, cfg, bad_day, quiet("features"))
    with pytest.raises(DataQualityError, match="unique_key"):
        writer.write(rows.unionByName(rows.limit(1)), "gold.user_profile")
    assert lake.read("gold.user_profile").where(F.col("as_of") == F.lit(bad_day)).count() == 0
    failed = lake.read("ops.dq_results").where((F.col("as_of") == F.lit(bad_day)) & ~F.col("passed")).collect()
    assert [r.check_name for r in failed] == ["unique_key"]
