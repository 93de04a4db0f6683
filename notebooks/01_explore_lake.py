# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the lake: table sizes, quarantine reasons, data-quality results
# MAGIC For data engineers: what is in each layer (bronze, silver, gold, ml, promo, ops), how much of each
# MAGIC landing source was accepted or quarantined and why, and the data-quality checks of the latest
# MAGIC features run. Columns of every table: `docs/tables.md`; the landing contract: `docs/data-contract.md`.
# MAGIC Locally: `python -m promolake.notebook notebooks/01_explore_lake.py env=local`.

# COMMAND ----------

# MAGIC %pip install --quiet ..

# COMMAND ----------

# MAGIC %restart_python

# COMMAND ----------

import matplotlib.pyplot as plt
from pyspark.sql import functions as F

from promolake.common.config import ENVIRONMENTS, load_config
from promolake.common.lake import Lake
from promolake.common.spark import get_spark
from promolake.notebook import conf_overrides
from promolake.pipeline import run_ingest

dbutils.widgets.dropdown("env", "dev", list(ENVIRONMENTS))  # noqa: F821 - Databricks global
dbutils.widgets.text("conf", "", "overrides KEY=VALUE; ...")  # noqa: F821
dbutils.widgets.dropdown("run_ingest", "no", ["no", "yes"])  # noqa: F821 - yes: ingest new landing files first
env, conf, ingest = (dbutils.widgets.get(k) for k in ("env", "conf", "run_ingest"))  # noqa: F821
cfg = load_config(env, overrides=conf_overrides(conf))
spark = get_spark(cfg.spark)
lake = Lake(spark, cfg.lake)

# COMMAND ----------

# MAGIC %md ## Ingest new landing files (optional; safe to re-run: files already read are skipped)

# COMMAND ----------

if ingest == "yes":
    run_ingest(spark, cfg)

# COMMAND ----------

# MAGIC %md ## Table sizes per layer

# COMMAND ----------

sizes = spark.createDataFrame(
    [(name.split(".")[0], name, lake.read(name).count(), lake.location(name)) for name in lake.tables()],
    "layer string, table string, rows long, location string").orderBy("layer", "table")
display(sizes)  # noqa: F821
per_layer = sizes.groupBy("layer").agg(F.sum("rows").alias("rows")).orderBy("layer").toPandas()
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(per_layer["layer"], per_layer["rows"])
ax.set_yscale("log")
ax.set_ylabel("rows (log scale)")
ax.set_title("Rows per layer")
plt.show()

# COMMAND ----------

# MAGIC %md ## Accepted vs quarantined per landing source (all ingest runs)

# COMMAND ----------

runs = lake.read("ops.ingest_runs")
per_source = (runs.groupBy("source").agg(F.sum("rows_read").alias("read"), F.sum("rows_accepted").alias("accepted"),
                                        F.sum("rows_quarantined").alias("quarantined"), F.count("*").alias("runs"))
              .withColumn("quarantine_rate", F.round(F.col("quarantined") / F.col("read"), 4)).orderBy("source"))
display(per_source)  # noqa: F821
balance = per_source.where(F.col("read") != F.col("accepted") + F.col("quarantined")).count()
print("every source balances: read = accepted + quarantined" if balance == 0
      else f"{balance} sources do not balance: look at ops.ingest_runs")

# COMMAND ----------

# MAGIC %md ## Quarantine reasons (rule per source) and a few rejected records

# COMMAND ----------

rules = lake.read("silver.quarantine").groupBy("source", "rule").count().orderBy(F.desc("count")).toPandas()
if rules.empty:
    print("nothing quarantined")
else:
    fig, ax = plt.subplots(figsize=(9, max(2, 0.35 * len(rules))))
    ax.barh(rules["source"] + " / " + rules["rule"], rules["count"])
    ax.invert_yaxis()
    ax.set_xlabel("quarantined records")
    ax.set_title("Quarantine by source and rule")
    plt.tight_layout()
    plt.show()
display(lake.read("silver.quarantine").orderBy(F.desc("quarantined_at"))  # noqa: F821
        .select("source", "rule", "raw_record", "_source_file").limit(20))

# COMMAND ----------

# MAGIC %md ## Data-quality results of the latest features run (ops.dq_results)

# COMMAND ----------

if lake.exists("ops.dq_results"):
    dq = lake.read("ops.dq_results")
    latest = dq.agg(F.max("as_of")).first()[0]
    dq = dq.where(F.col("as_of") == F.lit(latest))
    print(f"as of {latest}: {dq.where(~F.col('passed')).count()} of {dq.count()} checks failed")
    display(dq.orderBy("passed", "table_name", "check_name")  # noqa: F821
            .select("table_name", "check_name", "passed", "observed", "message"))
else:
    print("no data-quality results yet: they are written by `promolake features`")
