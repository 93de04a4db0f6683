# Databricks notebook source
# MAGIC %md
# MAGIC # Text model: BERT two-tower fine-tuning, embeddings, text candidates
# MAGIC Runs the `train-text` stage (the function the job and `promolake train-text` call): training pairs
# MAGIC (user_text as of T, items bought in [T, T + horizon)) built in Spark, fed through Petastorm to a
# MAGIC training loop launched by Horovod (HorovodRunner on a GPU cluster, np = GPUs) or TorchDistributor,
# MAGIC the model registered with alias `@challenger`, embeddings for users and items, text candidates
# MAGIC (cold-start items included), and the candidate blend re-weighted with the text list.
# MAGIC On Databricks use an ML GPU runtime (15.4 LTS ML GPU ships Horovod; later ones: engine torch_distributor).

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
from promolake.pipeline import run_train_text

try:
    dbutils.widgets.dropdown("env", "dev", ["dev", "staging", "prod"])  # noqa: F821 - Databricks global
    dbutils.widgets.text("as_of", "")  # noqa: F821 - empty: the day after the last event
    dbutils.widgets.dropdown("engine", "horovod", ["horovod", "torch_distributor", "local"])  # noqa: F821
    dbutils.widgets.text("epochs", "2")  # noqa: F821
    env, as_of_text, engine, epochs = (dbutils.widgets.get(k) for k in ("env", "as_of", "engine", "epochs"))  # noqa: F821
except NameError:  # running outside Databricks
    env, as_of_text, engine, epochs = "local", "", "horovod", "1"
cfg = load_config(env, overrides=[f"text.engine={engine}", f"text.epochs={epochs}"])
spark = get_spark(cfg.spark)
lake = Lake(spark, cfg.lake)
as_of = dt.date.fromisoformat(as_of_text) if as_of_text else None

# COMMAND ----------

# MAGIC %md ## Train, evaluate, register, embed (re-running a date replaces that date's rows)

# COMMAND ----------

report = run_train_text(spark, cfg, as_of)
as_of = lake.read("ml.text_candidates").agg(F.max("as_of")).first()[0] if as_of is None else as_of

# COMMAND ----------

# MAGIC %md ## Test window: ALS alone, text alone, and the blends (half B of the judged users)

# COMMAND ----------

ev = (lake.read("ml.ranking_evaluation")
      .where((F.col("as_of") == F.lit(as_of)) & (F.col("model_name") == cfg.text.model_name))
      .groupBy("view", "recommender").pivot("metric").agg(F.first("value")).orderBy("view", "recommender"))
display(ev) if "display" in globals() else ev.show(truncate=False)  # noqa: F821
pdf = ev.toPandas()
fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=False)
for ax, view in zip(axes, ("all", "new", "cold_items")):
    pdf[pdf.view == view].set_index("recommender")[["ndcg", "recall"]].plot.bar(ax=ax, title=view, rot=30)
fig.tight_layout()
plt.show()

# COMMAND ----------

# MAGIC %md ## One user's text, and the items the text model proposes

# COMMAND ----------

texts = lake.read("gold.user_profile").where(F.col("as_of") == F.lit(as_of)).select("user_id", "user_text")
tc = lake.read("ml.text_candidates").where(F.col("as_of") == F.lit(as_of))
user = tc.where("cold_start_item").select("user_id").first() or tc.select("user_id").first()
print(texts.where(F.col("user_id") == user[0]).first()["user_text"])
(tc.where(F.col("user_id") == user[0]).orderBy("rank")
 .join(lake.read("silver.items").select("item_id", "title", "category"), "item_id")
 .select("rank", "title", "category", "score", "cold_start_item").show(10, truncate=50))
