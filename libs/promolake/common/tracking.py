"""MLflow set-up in one place: tracking and registry URIs, the experiment, and registration by alias.

Locally the tracking store is a sqlite file (which gives a model registry with aliases) and artifacts
go to a folder under the lake home; on Databricks the URIs are "databricks" / "databricks-uc" and
model names are three-level Unity Catalog names. Stages never read MLflow settings themselves.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from promolake.common import faults
from promolake.common.config import MlflowConf

CHALLENGER, CHAMPION = "challenger", "champion"


def _absolute_sqlite(uri: str) -> str:
    """sqlite:///relative/path -> sqlite:////absolute/path, creating the folder (sqlite will not)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = Path(uri[len(prefix):]).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def setup(conf: MlflowConf) -> str:
    """Point MLflow at the configured stores and return the experiment id (created when missing)."""
    import mlflow

    mlflow.set_tracking_uri(_absolute_sqlite(conf.tracking_uri))
    # always set: a registry URI left over from an earlier setup in the process (another lake, a test)
    # would otherwise keep receiving this lake's models
    mlflow.set_registry_uri(_absolute_sqlite(conf.registry_uri or conf.tracking_uri))
    exp = mlflow.get_experiment_by_name(conf.experiment)
    if exp is None:
        location = None
        if conf.artifact_location:
            location = conf.artifact_location
            if "://" not in location:
                os.makedirs(location, exist_ok=True)
                location = Path(location).resolve().as_uri()
        exp_id = mlflow.create_experiment(conf.experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def register(model_uri: str, name: str, tags: dict[str, str] | None = None, retries: int = 3) -> str:
    """Register model_uri under `name`; returns the new version (as a string). Retries transient
    registry errors with back-off before failing with the name in the message."""
    import mlflow

    for attempt in range(retries):
        try:
            mv = mlflow.register_model(model_uri, name, tags=tags)
            faults.point(f"after_register:{name}")
            return str(mv.version)
        except Exception as exc:  # noqa: BLE001 - re-raised with context after the last attempt
            if attempt == retries - 1:
                raise RuntimeError(f"could not register {model_uri} as {name}: {exc}") from exc
            time.sleep(2 ** attempt)
    raise AssertionError("unreachable")


def set_alias(name: str, alias: str, version: str) -> None:
    from mlflow import MlflowClient

    faults.point(f"before_alias:{name}:{alias}")
    MlflowClient().set_registered_model_alias(name, alias, version)
