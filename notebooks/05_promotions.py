# Databricks notebook source
# MAGIC %md
# MAGIC # Promotions: uplift model, offer scores, assignments under the budget, campaign results
# MAGIC Runs the `train-uplift` and `score` stages (the same functions the jobs and the CLI call) for one
# MAGIC campaign, then shows who gets which offer, what it is expected to cost and earn against the budget,
# MAGIC why (reason codes), and, on a generated world, the simulated truth next to an oracle and three
# MAGIC baselines. `evaluate-campaign` runs after the campaign's window. Columns: `docs/tables.md`.

# COMMAND ----------

# MAGIC %pip install --quiet ..

# COMMAND ----------

# MAGIC %restart_python

# COMMAND ----------

import datetime as dt

import matplotlib.pyplot as plt
from pyspark.sql import functions as F

from promolake.common.config import load_config
from promolake.common.lake import Lake
from promolake.common.spark import get_spark
from promolake.pipeline import run_evaluate_campaign, run_score, run_train_uplift

try:
    dbutils.widgets.dropdown("env", "dev", ["dev", "staging", "prod"])  # noqa: F821 - Databricks global
    dbutils.widgets.text("campaign_id", "DEMO01")  # noqa: F821
    dbutils.widgets.text("as_of", "")  # noqa: F821 - empty: the day after the last event
    dbutils.widgets.text("budget", "2000")  # noqa: F821
    dbutils.widgets.dropdown("train", "yes", ["yes", "no"])  # noqa: F821 - no: use the registered @challenger
    env, campaign_id, as_of_text, budget, train = (dbutils.widgets.get(k) for k in  # noqa: F821
                                                   ("env", "campaign_id", "as_of", "budget", "train"))
except NameError:  # running outside Databricks
    env, campaign_id, as_of_text, budget, train = "local", "DEMO01", "", "2000", "yes"
cfg = load_config(env, overrides=[f"promotion.budget={budget}"])
spark = get_spark(cfg.spark)
lake = Lake(spark, cfg.lake)
as_of = dt.date.fromisoformat(as_of_text) if as_of_text else None
show = display if "display" in globals() else (lambda df: df.show(40, truncate=False))  # noqa: F821

# COMMAND ----------

# MAGIC %md ## Uplift model from past campaigns (latest campaigns held out), registered as @challenger

# COMMAND ----------

if train == "yes":
    uplift_report = run_train_uplift(spark, cfg, as_of)

# COMMAND ----------

# MAGIC %md ## Score the campaign and allocate under the budget (a re-run replaces the campaign's rows)

# COMMAND ----------

report = run_score(spark, cfg, campaign_id, as_of)
assignments = lake.read("promo.promotion_assignments").where(F.col("campaign_id") == campaign_id)
show(assignments.groupBy("arm", "offer_id").agg(
    F.count("*").alias("users"), F.round(F.sum("expected_cost"), 2).alias("expected_cost"),
    F.round(F.sum("expected_incremental_profit"), 2).alias("expected_profit")).orderBy("arm", "offer_id"))

# COMMAND ----------

# MAGIC %md ## Why: the policy's offers with their reason codes

# COMMAND ----------

show(assignments.where((F.col("arm") == "policy") & (F.col("offer_id") != "none"))
     .orderBy(F.col("expected_incremental_profit").desc())
     .select("user_id", "offer_id", "target", "expected_uplift", "expected_cost", "expected_incremental_profit",
             "reason_codes").limit(20))

# COMMAND ----------

# MAGIC %md ## Predicted uplift and incremental profit per offer (every eligible user)

# COMMAND ----------

scores = (lake.read("promo.offer_scores").where(F.col("campaign_id") == campaign_id)
          .select("offer_id", "uplift", "expected_incremental_profit").toPandas())
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for offer, g in scores.groupby("offer_id"):
    axes[0].hist(g.uplift.dropna(), bins=40, alpha=0.5, label=offer)
    axes[1].hist(g.expected_incremental_profit, bins=40, alpha=0.5, label=offer)
axes[0].set_title("predicted uplift (p_buy with - without offer)")
axes[1].set_title("expected incremental profit per user")
for ax in axes:
    ax.legend()
plt.show()

# COMMAND ----------

# MAGIC %md ## Simulated truth (generated worlds only): engine vs oracle, blanket, random, propensity

# COMMAND ----------

truth = next((rows for title, rows in report.sections if title.startswith("simulated truth")), None)
if truth:
    show(spark.createDataFrame(truth))

# COMMAND ----------

# MAGIC %md ## After the window: offers against control, IPS value of the policy

# COMMAND ----------

run_evaluate_campaign(spark, cfg, campaign_id)
show(lake.read("promo.campaign_results").where(F.col("campaign_id") == campaign_id))
