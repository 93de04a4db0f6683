# Databricks notebook source
# MAGIC %md
# MAGIC # Gold features: user and item profiles, market trends, category forecast
# MAGIC Builds the gold tables as of a date (the same function the jobs and `promolake features` call)
# MAGIC and shows the segments, the trending categories and the forecast. Column meanings: `docs/tables.md`.

# COMMAND ----------

# MAGIC %pip install --quiet ..

# COMMAND ----------

# MAGIC %restart_python

# COMMAND ----------

import datetime as dt

from pyspark.sql import functions as F

from promolake.common.config import load_config
from promolake.common.lake import Lake
from promolake.common.spark import get_spark
from promolake.pipeline import run_features

try:
    dbutils.widgets.dropdown("env", "dev", ["dev", "staging", "prod"])  # noqa: F821 - Databricks global
    dbutils.widgets.text("as_of", "")  # noqa: F821 - empty: the day after the last event
    env, as_of_text = dbutils.widgets.get("env"), dbutils.widgets.get("as_of")  # noqa: F821
except NameError:  # running outside Databricks
    env, as_of_text = "local", ""
cfg = load_config(env)
spark = get_spark(cfg.spark)
lake = Lake(spark, cfg.lake)
as_of = dt.date.fromisoformat(as_of_text) if as_of_text else None

# COMMAND ----------

# MAGIC %md ## Build (re-running a date replaces that date only)

# COMMAND ----------

report = run_features(spark, cfg, as_of)
as_of = max(r.as_of for r in lake.read("gold.user_profile").select("as_of").distinct().collect()) if as_of is None else as_of

# COMMAND ----------

# MAGIC %md ## Segments

# COMMAND ----------

profiles = lake.read("gold.user_profile").where(F.col("as_of") == F.lit(as_of))
(profiles.groupBy("segment", "segment_name")
 .agg(F.count(F.lit(1)).alias("users"), F.round(F.avg("spend_365d"), 2).alias("mean_spend_365d"),
      F.round(F.avg("discount_unit_share"), 3).alias("discount_unit_share"),
      F.round(F.avg("recency_days"), 1).alias("recency_days"))
 .orderBy("segment").show(truncate=False))

# COMMAND ----------

# MAGIC %md ## Market trends and forecast (the same pictures the job writes under features.reports_root)

# COMMAND ----------

from promolake.gold.plots import write_feature_plots

for path in write_feature_plots(lake, as_of, cfg.features):
    print(path)
lake.read("gold.market_trend_daily").where(F.col("day") == F.lit(as_of - dt.timedelta(days=1))) \
    .select("category", "units_ma28", "trend_growth_28d", "trend_flag").orderBy(F.desc("trend_growth_28d")).show()
lake.read("gold.category_forecast").where(F.col("as_of") == F.lit(as_of)).orderBy("category", "horizon").show(60)

# COMMAND ----------

# MAGIC %md ## Data-quality results of this date

# COMMAND ----------

lake.read("ops.dq_results").where(F.col("as_of") == F.lit(as_of)).orderBy("table_name", "check_name") \
    .select("table_name", "check_name", "passed", "observed", "message").show(100, truncate=80)
