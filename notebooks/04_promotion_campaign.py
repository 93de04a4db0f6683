# Databricks notebook source
# MAGIC %md
# MAGIC # A promotion campaign: offers and budget, scoring and allocation, assignments and why
# MAGIC Define a campaign here (offers as a YAML list, a window, a budget), score every eligible user with
# MAGIC the `@champion` uplift model, allocate under the budget (the same `score` stage the jobs run: a
# MAGIC re-run replaces the campaign's rows), then look at who gets which offer and why (reason codes),
# MAGIC what it is expected to cost and earn, and what more or less budget would buy. On a generated world
# MAGIC the simulated truth compares the allocation with an oracle and three baselines.
# MAGIC Locally: `python -m promolake.notebook notebooks/04_promotion_campaign.py env=local`.

# COMMAND ----------

# MAGIC %pip install --quiet .. -r ../runtimes/libraries/dbr-15.4-lts-ml.txt

# COMMAND ----------

# MAGIC %restart_python

# COMMAND ----------

import datetime as dt

import matplotlib.pyplot as plt
from pyspark.sql import functions as F

from promolake.common.config import ENVIRONMENTS, load_config
from promolake.common.lake import Lake
from promolake.common.spark import get_spark
from promolake.notebook import conf_overrides
from promolake.pipeline import run_score, run_train_uplift, run_validate_and_promote
from promolake.report.demo import best_options, budget_curve, curve_figure

OFFERS = ("[{offer_id: NB-P10, offer_type: percent_off, value: 10, scope: category, scope_value: kitchen}, "
          "{offer_id: NB-A5, offer_type: amount_off, value: 5, scope: basket}, "
          "{offer_id: NB-T10, offer_type: spend_threshold, value: 10, min_spend: 60, scope: basket}]")
dbutils.widgets.dropdown("env", "dev", list(ENVIRONMENTS))  # noqa: F821 - Databricks global
dbutils.widgets.text("conf", "", "overrides KEY=VALUE; ...")  # noqa: F821
dbutils.widgets.text("campaign_id", "NB01")  # noqa: F821
dbutils.widgets.text("offers", OFFERS, "offers (YAML list)")  # noqa: F821
dbutils.widgets.text("days", "14")  # noqa: F821
dbutils.widgets.text("budget", "1000")  # noqa: F821
dbutils.widgets.text("as_of", "")  # noqa: F821 - empty: the day after the last event
dbutils.widgets.dropdown("train", "no", ["no", "yes"])  # noqa: F821 - yes: train-uplift + the gate first
env, conf, campaign_id, offers, days, budget, as_of_text, train = (dbutils.widgets.get(k) for k in (  # noqa: F821
    "env", "conf", "campaign_id", "offers", "days", "budget", "as_of", "train"))
# the campaign is configuration: validated like conf/*.yml (a wrong offer is refused with its key)
cfg = load_config(env, overrides=conf_overrides(conf) + [
    f"promotion.campaigns.{campaign_id}={{days: {days}, offers: {offers}}}", f"promotion.budget={budget}",
    "validation.models=[uplift]"])
spark = get_spark(cfg.spark)
lake = Lake(spark, cfg.lake)
as_of = dt.date.fromisoformat(as_of_text) if as_of_text else None
display(spark.createDataFrame([o.model_dump() for o in cfg.promotion.campaigns[campaign_id].offers]))  # noqa: F821

# COMMAND ----------

# MAGIC %md ## Uplift model (optional): train on past campaigns, then the promotion gate decides on @champion

# COMMAND ----------

if train == "yes":
    run_train_uplift(spark, cfg, as_of)
    run_validate_and_promote(spark, cfg)

# COMMAND ----------

# MAGIC %md ## Score and allocate under the budget

# COMMAND ----------

report = run_score(spark, cfg, campaign_id, as_of)
assignments = lake.read("promo.promotion_assignments").where(F.col("campaign_id") == campaign_id)
display(assignments.groupBy("arm", "offer_id").agg(  # noqa: F821
    F.count("*").alias("users"), F.round(F.sum("expected_cost"), 2).alias("expected_cost"),
    F.round(F.sum("expected_incremental_profit"), 2).alias("expected_profit")).orderBy("arm", "offer_id"))

# COMMAND ----------

# MAGIC %md ## Who gets what, and why (reason codes of the policy's offers)

# COMMAND ----------

display(assignments.where((F.col("arm") == "policy") & (F.col("offer_id") != "none"))  # noqa: F821
        .orderBy(F.col("expected_incremental_profit").desc())
        .select("user_id", "offer_id", "target", F.round("expected_uplift", 4).alias("uplift"),
                F.round("expected_cost", 2).alias("cost"), F.round("expected_incremental_profit", 2).alias("profit"),
                "reason_codes").limit(20))

# COMMAND ----------

# MAGIC %md ## Budget / profit curve: the same allocation at budgets from 0 to twice the budget

# COMMAND ----------

scored_on = lake.read("promo.offer_scores").where(F.col("campaign_id") == campaign_id).agg(F.max("as_of")).first()[0]
curve = budget_curve(best_options(lake, campaign_id, scored_on), cfg.promotion.budget, cfg.promotion.max_offers_per_user)
display(curve.round(2))  # noqa: F821
curve_figure(curve, cfg.promotion.budget, campaign_id)
plt.show()

# COMMAND ----------

# MAGIC %md ## Simulated truth (generated worlds only): the allocation against oracle, blanket, random, propensity

# COMMAND ----------

for title, rows in report.sections:
    if title.startswith("simulated truth"):
        print(title)
        display(spark.createDataFrame(rows))  # noqa: F821
