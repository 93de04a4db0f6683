# Databricks notebook source
# MAGIC %md
# MAGIC # Ingestion and data quality
# MAGIC Runs landing -> bronze -> silver for the chosen environment (the same function the `promo_daily`
# MAGIC job calls) and shows what was accepted and what went to quarantine, by rule.
# MAGIC The rules are documented in `docs/data-contract.md`.

# COMMAND ----------

# MAGIC %md The bundle syncs this repository next to the notebooks; install the same package the jobs run.

# COMMAND ----------

# MAGIC %pip install --quiet ..

# COMMAND ----------

# MAGIC %restart_python

# COMMAND ----------

from promolake.common.config import load_config
from promolake.common.lake import Lake
from promolake.common.spark import get_spark
from promolake.pipeline import run_ingest

try:
    dbutils.widgets.dropdown("env", "dev", ["dev", "staging", "prod"])  # noqa: F821 - Databricks global
    env = dbutils.widgets.get("env")  # noqa: F821
except NameError:  # running outside Databricks
    env = "local"
cfg = load_config(env)
spark = get_spark(cfg.spark)
lake = Lake(spark, cfg.lake)

# COMMAND ----------

# MAGIC %md ## Run ingestion (safe to re-run: only new landing files are read)

# COMMAND ----------

report = run_ingest(spark, cfg)

# COMMAND ----------

# MAGIC %md ## Accepted vs quarantined per source, over all runs

# COMMAND ----------

from pyspark.sql import functions as F

runs = lake.read("ops.ingest_runs")
per_source = (runs.groupBy("source").agg(F.sum("rows_read").alias("read"), F.sum("rows_accepted").alias("accepted"),
                                        F.sum("rows_quarantined").alias("quarantined"))
              .withColumn("quarantine_rate", F.round(F.col("quarantined") / F.col("read"), 4)).orderBy("source"))
per_source.show()

# COMMAND ----------

import matplotlib.pyplot as plt

rules = (lake.read("silver.quarantine").groupBy("source", "rule").count().orderBy(F.desc("count")).toPandas())
fig, ax = plt.subplots(figsize=(9, max(2, 0.35 * len(rules))))
ax.barh(rules["source"] + " / " + rules["rule"], rules["count"])
ax.invert_yaxis()
ax.set_xlabel("quarantined records")
ax.set_title("Quarantine by source and rule")
plt.tight_layout()
plt.show()

# COMMAND ----------

# MAGIC %md ## Look at a few rejected records

# COMMAND ----------

lake.read("silver.quarantine").orderBy(F.desc("quarantined_at")).select("source", "rule", "raw_record", "_source_file").show(20, truncate=120)
