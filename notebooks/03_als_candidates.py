# Databricks notebook source
# MAGIC %md
# MAGIC # ALS candidates: tuning, honest evaluation, registry
# MAGIC Runs the `train-als` stage (the same function the job and `promolake train-als` call): an optuna search
# MAGIC on a validation window, the reported evaluation on a later test window (ALS, the blend and three
# MAGIC baselines, all purchases and new-to-user items), then the final model, its tables and its registration
# MAGIC with alias `@challenger`. Metric definitions: `promolake.ml.evaluation`; columns: `docs/tables.md`.

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
from promolake.pipeline import run_train_als

try:
    dbutils.widgets.dropdown("env", "dev", ["dev", "staging", "prod"])  # noqa: F821 - Databricks global
    dbutils.widgets.text("as_of", "")  # noqa: F821 - empty: the day after the last event
    dbutils.widgets.text("trials", "8")  # noqa: F821
    env, as_of_text, trials = (dbutils.widgets.get(k) for k in ("env", "as_of", "trials"))  # noqa: F821
except NameError:  # running outside Databricks
    env, as_of_text, trials = "local", "", "8"
cfg = load_config(env, overrides=[f"als.tuning.trials={trials}"])
spark = get_spark(cfg.spark)
lake = Lake(spark, cfg.lake)
as_of = dt.date.fromisoformat(as_of_text) if as_of_text else None

# COMMAND ----------

# MAGIC %md ## Train, evaluate, register (re-running a date replaces that date's tables)

# COMMAND ----------

report = run_train_als(spark, cfg, as_of)
as_of = lake.read("ml.user_candidates").agg(F.max("as_of")).first()[0] if as_of is None else as_of

# COMMAND ----------

# MAGIC %md ## Evaluation on the test window: ALS, blend and baselines

# COMMAND ----------

ev = (lake.read("ml.ranking_evaluation").where((F.col("as_of") == F.lit(as_of)) & (F.col("split") == "test")
                                              & (F.col("model_name") == cfg.als.model_name))
      .groupBy("view", "recommender").pivot("metric").agg(F.first("value")).orderBy("view", "recommender"))
display(ev) if "display" in globals() else ev.show(truncate=False)  # noqa: F821

# COMMAND ----------

pdf = ev.toPandas()
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, view in zip(axes, ("all", "new")):
    part = pdf[pdf.view == view].set_index("recommender")[["ndcg", "recall"]]
    part.plot.bar(ax=ax, title=f"{view} purchases, k = {cfg.als.k}", rot=30)
fig.tight_layout()
plt.show()

# COMMAND ----------

# MAGIC %md ## One user's candidates and where they came from

# COMMAND ----------

cands = lake.read("ml.user_candidates").where(F.col("as_of") == F.lit(as_of))
some_user = cands.where(~F.col("cold_start_user")).select("user_id").first()[0]
(cands.where(F.col("user_id") == some_user).orderBy("rank")
 .join(lake.read("silver.items").select("item_id", "title", "category"), "item_id")
 .select("rank", "title", "category", "score", "sources", "als_rank", "repeat_rank", "segment_rank",
         "popularity_rank", "previously_bought").show(20, truncate=40))

# COMMAND ----------

# MAGIC %md ## Similar items and cold-start items (left to the text model)

# COMMAND ----------

lake.read("ml.similar_items").where((F.col("as_of") == F.lit(as_of)) & (F.col("rank") <= 3)).show(9)
print(lake.read("ml.als_item_factors").where((F.col("as_of") == F.lit(as_of)) & F.col("cold_start")).count(),
      "cold-start items")
