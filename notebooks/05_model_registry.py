# Databricks notebook source
# MAGIC %md
# MAGIC # Model registry: versions, aliases, validation verdicts, manual promotion and rollback
# MAGIC Every version of the ALS, text and uplift models with its aliases (`@challenger`: the latest
# MAGIC trained; `@champion`: the one the scoring jobs load), its holdout, and the promotion gate's verdict
# MAGIC and numbers. Actions (widget `action`): `validate` runs the gate in dry-run mode (nothing moves),
# MAGIC `promote` points `@champion` at `version` by hand, `rollback` points it back at the version it
# MAGIC replaced; both need a `reason`, kept in the version's tags. The same code works on the local sqlite
# MAGIC registry and on Unity Catalog (`databricks-uc`).
# MAGIC Locally: `python -m promolake.notebook notebooks/05_model_registry.py env=local`.

# COMMAND ----------

# MAGIC %pip install --quiet .. -r ../runtimes/libraries/dbr-15.4-lts-ml.txt

# COMMAND ----------

# MAGIC %restart_python

# COMMAND ----------

from mlflow import MlflowClient

from promolake.common import tracking
from promolake.common.config import ENVIRONMENTS, load_config
from promolake.common.spark import get_spark
from promolake.ml import gate
from promolake.ml.validate import model_name, run_validate
from promolake.notebook import conf_overrides

dbutils.widgets.dropdown("env", "dev", list(ENVIRONMENTS))  # noqa: F821 - Databricks global
dbutils.widgets.text("conf", "", "overrides KEY=VALUE; ...")  # noqa: F821
dbutils.widgets.dropdown("action", "none", ["none", "validate", "promote", "rollback"])  # noqa: F821
dbutils.widgets.dropdown("model", "uplift", ["als", "text", "uplift"])  # noqa: F821
dbutils.widgets.text("version", "")  # noqa: F821 - for promote
dbutils.widgets.text("reason", "")  # noqa: F821 - for promote / rollback
env, conf, action, model, version, reason = (dbutils.widgets.get(k) for k in  # noqa: F821
                                             ("env", "conf", "action", "model", "version", "reason"))
cfg = load_config(env, overrides=conf_overrides(conf))
tracking.setup(cfg.mlflow)
client = MlflowClient()
names = [model_name(cfg, kind) for kind in ("als", "text", "uplift")]
print(f"registry: {cfg.mlflow.registry_uri or cfg.mlflow.tracking_uri}")

# COMMAND ----------

# MAGIC %md ## Versions, aliases and verdicts

# COMMAND ----------

import pandas as pd

versions = pd.DataFrame(gate.registry_rows(client, names))
display(versions)  # noqa: F821
for name in names:
    challenger, champion = gate.versions(client, name)
    print(f"{name}: @challenger v{challenger or '-'}, @champion v{champion or '-'}")

# COMMAND ----------

# MAGIC %md ## The gate's explanation for each judged version (version descriptions)

# COMMAND ----------

for name in names:
    for mv in sorted(client.search_model_versions(f"name='{name}'"), key=lambda m: int(m.version)):
        if mv.description:
            print(f"{name} v{mv.version}: {mv.description}")

# COMMAND ----------

# MAGIC %md ## Act: validate (dry run), promote or roll back

# COMMAND ----------

if action == "validate":
    spark = get_spark(cfg.spark)
    dry = load_config(env, overrides=conf_overrides(conf) + ["validation.mode=dry_run", f"validation.models=[{model}]"])
    run_validate(spark, dry)
elif action == "promote":
    print(gate.promote(client, model_name(cfg, model), version, reason))
elif action == "rollback":
    print(gate.rollback(client, model_name(cfg, model), reason))
if action != "none":
    display(pd.DataFrame(gate.registry_rows(client, [model_name(cfg, model)])))  # noqa: F821
