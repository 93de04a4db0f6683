# Databricks notebook source
# MAGIC %md
# MAGIC # Profiles and trends: segments, rising and falling categories, the sales forecast
# MAGIC Reads the gold tables of one as_of date (`promolake features` writes them; set `run_features` to
# MAGIC build the date first): user segments with their profiles, the categories whose sales rise or fall
# MAGIC (robust 28-day trend), and the weekly forecast per category with 80% / 95% intervals.
# MAGIC Locally: `python -m promolake.notebook notebooks/02_profiles_and_trends.py env=local`.

# COMMAND ----------

# MAGIC %pip install --quiet ..

# COMMAND ----------

# MAGIC %restart_python

# COMMAND ----------

import datetime as dt

import matplotlib.pyplot as plt
from pyspark.sql import functions as F

from promolake.common.config import ENVIRONMENTS, load_config
from promolake.common.lake import Lake
from promolake.common.spark import get_spark
from promolake.gold.market_trend import latest_trends
from promolake.gold.plots import forecast_figure
from promolake.notebook import conf_overrides
from promolake.pipeline import run_features

dbutils.widgets.dropdown("env", "dev", list(ENVIRONMENTS))  # noqa: F821 - Databricks global
dbutils.widgets.text("conf", "", "overrides KEY=VALUE; ...")  # noqa: F821
dbutils.widgets.text("as_of", "")  # noqa: F821 - empty: the latest date in gold.user_profile
dbutils.widgets.dropdown("run_features", "no", ["no", "yes"])  # noqa: F821 - yes: build the date first
env, conf, as_of_text, build = (dbutils.widgets.get(k) for k in ("env", "conf", "as_of", "run_features"))  # noqa: F821
cfg = load_config(env, overrides=conf_overrides(conf))
spark = get_spark(cfg.spark)
lake = Lake(spark, cfg.lake)
as_of = dt.date.fromisoformat(as_of_text) if as_of_text else None

# COMMAND ----------

# MAGIC %md ## Build the date (optional; re-running a date replaces that date only)

# COMMAND ----------

if build == "yes":
    run_features(spark, cfg, as_of)
if not lake.exists("gold.user_profile"):
    raise RuntimeError("no gold tables yet: run `promolake features` (or this notebook with run_features = yes)")
as_of = as_of or lake.read("gold.user_profile").agg(F.max("as_of")).first()[0]
print(f"as of {as_of}")

# COMMAND ----------

# MAGIC %md ## Segments: sizes and profiles

# COMMAND ----------

profiles = lake.read("gold.user_profile").where(F.col("as_of") == F.lit(as_of))
segments = (profiles.groupBy("segment", "segment_name")
            .agg(F.count(F.lit(1)).alias("users"), F.round(F.avg("spend_365d"), 2).alias("mean_spend_365d"),
                 F.round(F.avg("avg_order_value"), 2).alias("avg_order_value"),
                 F.round(F.avg("discount_unit_share"), 3).alias("discount_unit_share"),
                 F.round(F.avg("recency_days"), 1).alias("recency_days"))
            .orderBy("segment"))
display(segments)  # noqa: F821
seg = segments.toPandas()
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
labels = [f"{s}: {n[:28]}" for s, n in zip(seg["segment"], seg["segment_name"].fillna(""))]
axes[0].barh(labels, seg["users"])
axes[0].set_title("users per segment")
axes[1].barh(labels, seg["mean_spend_365d"].fillna(0))
axes[1].set_title("mean spend, last 365 days")
for ax in axes:
    ax.invert_yaxis()
plt.tight_layout()
plt.show()

# COMMAND ----------

# MAGIC %md ## Rising and falling categories (trend of the last 28 days before as_of)

# COMMAND ----------

daily = lake.read("gold.market_trend_daily").where(F.col("day") < F.lit(as_of))
trends = latest_trends(daily).select("category", "day", "units_ma28", "trend_growth_28d", "trend_flag")
display(trends.orderBy(F.desc("trend_growth_28d")))  # noqa: F821
flags = trends.toPandas().set_index("category")
history = (daily.where(F.col("day") >= F.lit(as_of - dt.timedelta(days=182)))
           .select("category", "day", "units_ma7").toPandas())
fig, ax = plt.subplots(figsize=(11, 4.5))
colours = {"rising": "tab:green", "falling": "tab:red"}
for category, part in history.groupby("category"):
    flag = flags["trend_flag"].get(category)
    part = part.sort_values("day")
    ax.plot(part["day"], part["units_ma7"], color=colours.get(flag, "lightgrey"), lw=1.6 if flag in colours else 0.8,
            label=f"{category} ({flag})" if flag in colours else None)
ax.set_title("Units per day (7-day mean): rising in green, falling in red")
ax.legend(fontsize=7, loc="upper left")
plt.show()

# COMMAND ----------

# MAGIC %md ## Forecast with intervals (weekly units; statsmodels ETS chosen per category by backtest)

# COMMAND ----------

forecast = lake.read("gold.category_forecast").where(F.col("as_of") == F.lit(as_of)).toPandas()
weekly = (lake.read("gold.market_trend_weekly").where(F.col("week_start") < F.lit(as_of))
          .select("category", "week_start", "units").toPandas())
if forecast.empty:
    print(f"no forecast for {as_of}")
else:
    display(forecast.groupby("category").agg(model=("model", "first"), backtest_smape=("backtest_smape", "first"),  # noqa: F821
                                              naive_smape=("naive_smape", "first"), weeks=("horizon", "max"))
            .reset_index())
    forecast_figure(weekly, forecast, as_of)
    plt.show()
