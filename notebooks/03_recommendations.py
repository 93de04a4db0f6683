# Databricks notebook source
# MAGIC %md
# MAGIC # Recommendations: ALS, text and blended candidates
# MAGIC The ranking evaluation of the ALS and text models on their test windows (ALS alone, the text model
# MAGIC alone, the blends and the baselines; all purchases, new-to-user items, cold users and cold items),
# MAGIC example users with their candidates and where each came from, and the cold-start items that only
# MAGIC the text model can propose. Set `train` to run `train-als` (and `train-text`) for the date first.
# MAGIC Metric definitions: `promolake.ml.evaluation`; columns: `docs/tables.md`.
# MAGIC Locally: `python -m promolake.notebook notebooks/03_recommendations.py env=local`.

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
from promolake.pipeline import run_train_als, run_train_text

dbutils.widgets.dropdown("env", "dev", list(ENVIRONMENTS))  # noqa: F821 - Databricks global
dbutils.widgets.text("conf", "", "overrides KEY=VALUE; ...")  # noqa: F821
dbutils.widgets.text("as_of", "")  # noqa: F821 - empty: the latest date of ml.user_candidates
dbutils.widgets.dropdown("train", "none", ["none", "als", "als_and_text"])  # noqa: F821
dbutils.widgets.text("user_id", "")  # noqa: F821 - empty: a few example users
env, conf, as_of_text, train, user_id = (dbutils.widgets.get(k) for k in  # noqa: F821
                                         ("env", "conf", "as_of", "train", "user_id"))
cfg = load_config(env, overrides=conf_overrides(conf))
spark = get_spark(cfg.spark)
lake = Lake(spark, cfg.lake)
as_of = dt.date.fromisoformat(as_of_text) if as_of_text else None

# COMMAND ----------

# MAGIC %md ## Train for the date (optional: registers new @challenger versions; the gate decides on @champion)

# COMMAND ----------

if train in ("als", "als_and_text"):
    run_train_als(spark, cfg, as_of)
if train == "als_and_text":
    run_train_text(spark, cfg, as_of)
if not lake.exists("ml.user_candidates"):
    raise RuntimeError("no candidates yet: run `promolake train-als` (or this notebook with train = als)")
as_of = as_of or lake.read("ml.user_candidates").agg(F.max("as_of")).first()[0]
candidates = lake.read("ml.user_candidates").where(F.col("as_of") == F.lit(as_of))
items = lake.read("silver.items").select("item_id", "title", "category")
print(f"as of {as_of}: candidates written by model version(s) "
      f"{[r.model_version for r in candidates.select('model_version').distinct().collect()]}")

# COMMAND ----------

# MAGIC %md ## Evaluation tables (test window, k = als.k / text.k)

# COMMAND ----------

ev = (lake.read("ml.ranking_evaluation").where((F.col("as_of") == F.lit(as_of)) & (F.col("split") == "test"))
      .groupBy("model_name", "view", "recommender").pivot("metric").agg(F.round(F.first("value"), 4))
      .orderBy("model_name", "view", "recommender"))
display(ev)  # noqa: F821
pdf = ev.toPandas()
views = [v for v in ("all", "new", "cold", "cold_items") if v in set(pdf["view"])]
fig, axes = plt.subplots(1, len(views), figsize=(4.2 * len(views), 3.8), squeeze=False)
for ax, view in zip(axes[0], views):
    # the text stage's rows (ALS, text and both blends) where they exist, else the ALS stage's
    part = pdf[pdf["view"] == view].drop_duplicates("recommender", keep="last").set_index("recommender")
    part["ndcg"].sort_values().plot.barh(ax=ax, title=f"ndcg@k, view {view}")
plt.tight_layout()
plt.show()

# COMMAND ----------

# MAGIC %md ## Example users: their candidates and where each came from

# COMMAND ----------

examples = [user_id] if user_id else (
    [r.user_id for r in candidates.where(~F.col("cold_start_user")).select("user_id").distinct()
     .orderBy("user_id").limit(2).collect()]
    + [r.user_id for r in candidates.where(F.col("cold_start_user")).select("user_id").distinct()
       .orderBy("user_id").limit(1).collect()])
bought = (lake.read("silver.events").where((F.col("event_type") == "purchase")
                                           & (F.col("event_ts") < F.lit(str(as_of)).cast("timestamp")))
          .select("user_id", "item_id", "event_ts"))
for user in examples:
    rows = candidates.where(F.col("user_id") == user)
    cold = rows.select("cold_start_user").first()
    print(f"user {user} ({'no history: segment and trend popularity' if cold and cold[0] else 'with history'})")
    display(bought.where(F.col("user_id") == user).join(items, "item_id")  # noqa: F821
            .orderBy(F.desc("event_ts")).select("event_ts", "title", "category").limit(5))
    display(rows.join(items, "item_id").orderBy("rank")  # noqa: F821
            .select("rank", "title", "category", F.round("score", 4).alias("score"), "sources", "als_rank",
                    "text_rank", "repeat_rank", "segment_rank", "popularity_rank", "previously_bought").limit(10))

# COMMAND ----------

# MAGIC %md ## Cold-start items: no interactions before as_of, so only the text model can propose them

# COMMAND ----------

cold_items = (lake.read("ml.als_item_factors").where((F.col("as_of") == F.lit(as_of)) & F.col("cold_start"))
              .select("item_id"))
print(f"{cold_items.count():,} cold-start items")
if lake.exists("ml.text_candidates"):
    reach = (lake.read("ml.text_candidates").where((F.col("as_of") == F.lit(as_of)) & F.col("cold_start_item"))
             .groupBy("item_id").agg(F.count(F.lit(1)).alias("users_proposed_to"), F.min("rank").alias("best_rank")))
    display(cold_items.join(items, "item_id").join(reach, "item_id", "left")  # noqa: F821
            .fillna({"users_proposed_to": 0}).orderBy(F.desc("users_proposed_to")).limit(20))
else:
    display(cold_items.join(items, "item_id").limit(20))  # noqa: F821
    print("no text candidates: run `promolake train-text` to reach these items")
