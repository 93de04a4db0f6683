# Databricks notebook source
# MAGIC %md
# MAGIC # Synthetic world
# MAGIC Writes the seeded synthetic e-commerce world into the landing volume (users, items, events,
# MAGIC reviews, campaigns, exposures, redemptions) and its hidden truth into a separate folder that no
# MAGIC pipeline stage reads. Size it with widgets; it runs as a Spark job and scales to 10^7+ events.
# MAGIC Locally: `python -m promolake.notebook notebooks/00_generate_world.py env=local users=2000`.

# COMMAND ----------

# MAGIC %md The bundle syncs this repository next to the notebooks; install the same package the jobs run.

# COMMAND ----------

# MAGIC %pip install --quiet ..

# COMMAND ----------

# MAGIC %restart_python

# COMMAND ----------

from promolake.common.config import ENVIRONMENTS, load_config
from promolake.common.spark import get_spark
from promolake.notebook import conf_overrides
from promolake.pipeline import run_generate

dbutils.widgets.dropdown("env", "dev", list(ENVIRONMENTS))  # noqa: F821 - Databricks global
dbutils.widgets.text("users", "200000")  # noqa: F821
dbutils.widgets.text("conf", "", "overrides KEY=VALUE; ...")  # noqa: F821
env, users, conf = (dbutils.widgets.get(k) for k in ("env", "users", "conf"))  # noqa: F821
cfg = load_config(env, overrides=[f"world.users={users}", *conf_overrides(conf)])
spark = get_spark(cfg.spark)

# COMMAND ----------

report = run_generate(spark, cfg)

# COMMAND ----------

# MAGIC %md ## Daily purchases per category: rising, flat and falling categories should be visible

# COMMAND ----------

from pyspark.sql import functions as F
import matplotlib.pyplot as plt

events = spark.read.parquet(f"{cfg.landing.root}/events/*.parquet")
items = spark.read.json(f"{cfg.landing.root}/items/*.jsonl")
daily = (events.where("event_type = 'purchase'").join(items.select("item_id", "category"), "item_id")
         .groupBy(F.date_trunc("week", "event_ts").alias("week"), "category").count().toPandas()
         .pivot(index="week", columns="category", values="count"))
daily.plot(figsize=(11, 5), title="Weekly purchases per category")
plt.show()
