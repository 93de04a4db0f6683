"""MLflow set-up in one place: tracking and registry URIs, the experiment, and registration by alias.

Locally the tracking store is a sqlite file (which gives a model registry with aliases) and artifacts
go to a folder under the lake home; on Databricks the URIs are "databricks" / "databricks-uc" and
model names are three-level Unity Catalog names. Stages never read MLflow settings themselves.
"""
from __future__ import annotations

import os
from pathlib import Path

from promolake.common import faults, retry
from promolake.common.config import MlflowConf, RetryConf

CHALLENGER, CHAMPION = "challenger", "champion"
# the retry settings of the last setup(): registration and alias moves use them
_retries = RetryConf()
_REST = ("http://", "https://", "databricks")
_env_set: dict[str, str] = {}     # MLflow environment settings made by _http_retries (not by a person)


def _absolute_sqlite(uri: str) -> str:
    """sqlite:///relative/path -> sqlite:////absolute/path, creating the folder (sqlite will not)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = Path(uri[len(prefix):]).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def _http_retries(retries: RetryConf) -> None:
    """MLflow's REST client settings from ours, leaving alone any a person set in the environment."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries.attempts - 1),
              # whole seconds only (MLflow reads an int); urllib3 waits 0, then factor * 2 ** (n - 1)
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(max(1, round(retries.initial_backoff_s))),
              "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5"}
    for var, value in wanted.items():
        if os.environ.get(var) in (None, _env_set.get(var)):
            os.environ[var] = _env_set[var] = value


def setup(conf: MlflowConf, retries: RetryConf | None = None) -> str:
    """Point MLflow at the configured stores and return the experiment id (created when missing).

    Called at the start of every stage that uses MLflow, before it writes anything: an unavailable
    server stops the stage here, after `retries` with back-off, with a message naming the URI. Against a
    REST server (http(s), Databricks) MLflow's own client retries each request with back-off; it is set
    from the same settings (unless MLFLOW_HTTP_REQUEST_* are set in the environment), so calls made later
    in a stage (metrics, artifacts) are retried too."""
    import mlflow

    global _retries
    _retries = retries or RetryConf()
    tracking_uri = _absolute_sqlite(conf.tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    # always set: a registry URI left over from an earlier setup in the process (another lake, a test)
    # would otherwise keep receiving this lake's models
    mlflow.set_registry_uri(_absolute_sqlite(conf.registry_uri or conf.tracking_uri))
    rest = tracking_uri.startswith(_REST)
    if rest:
        _http_retries(_retries)
    hint = (f"Check that the MLflow server at {tracking_uri} is up and reachable (mlflow.tracking_uri"
            + (", DATABRICKS_HOST / DATABRICKS_TOKEN" if "databricks" in tracking_uri else "") + "); "
            "nothing was written by this stage")
    # a REST client has already retried each request with back-off: one more round would multiply them
    once = _retries.model_copy(update={"attempts": 1}) if rest else _retries
    what = f"MLflow at {tracking_uri}" + (
        f" (its client tried each request {int(os.environ['MLFLOW_HTTP_REQUEST_MAX_RETRIES']) + 1} times with "
        "back-off)" if rest else "")
    exp = retry.call(lambda: mlflow.get_experiment_by_name(conf.experiment), what, once, retry.transient_mlflow,
                     hint=hint)
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


def _registry_retries() -> RetryConf:
    import mlflow

    rest = mlflow.get_registry_uri().startswith(_REST)
    return _retries.model_copy(update={"attempts": 1}) if rest else _retries


def register(model_uri: str, name: str, tags: dict[str, str] | None = None) -> str:
    """Register model_uri under `name`; returns the new version (as a string). Transient registry errors
    are retried with back-off (the settings given to setup()); then it fails naming the model."""
    import mlflow

    mv = retry.call(lambda: mlflow.register_model(model_uri, name, tags=tags), f"registering {model_uri} as {name}",
                    _registry_retries(), retry.transient_mlflow,
                    hint="the model's run and artifacts are logged; re-run the stage to register it")
    faults.point(f"after_register:{name}")
    return str(mv.version)


def log_pyfunc(name: str, **kwargs):
    """mlflow.pyfunc.log_model(...) of the active run under the artifact name `name`; returns its ModelInfo.

    The one place that bridges MLflow major versions: MLflow 3 names the model with `name`, MLflow 2 (what
    Databricks Runtime 15.4 LTS ML (2.13.1) and 16.4 LTS ML (2.21.3) ship) with `artifact_path`. The
    keyword is chosen from the installed function's signature, so a cluster keeps the MLflow it ships."""
    import inspect

    import mlflow.pyfunc

    params = inspect.signature(mlflow.pyfunc.log_model).parameters
    return mlflow.pyfunc.log_model(**{"name" if "name" in params else "artifact_path": name}, **kwargs)


# error codes of a registry lookup that found nothing (MLflow's sqlite/REST registry; Unity Catalog)
_MISSING = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


def run_id_of(name: str, version: str) -> str | None:
    """The run that logged version `version` of registered model `name`; None when the registry has no such
    version (e.g. the version was written by another registry: a lake copied between workspaces). Any other
    registry error (unreachable, permission denied) is raised, after the retries given to setup()."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    def lookup():
        try:
            return MlflowClient().get_model_version(name, version).run_id or None
        except MlflowException as err:
            if err.error_code in _MISSING:
                return None
            raise

    return retry.call(lookup, f"looking up version {version} of {name}", _registry_retries(),
                      retry.transient_mlflow)


def set_alias(name: str, alias: str, version: str) -> None:
    from mlflow import MlflowClient

    faults.point(f"before_alias:{name}:{alias}")
    retry.call(lambda: MlflowClient().set_registered_model_alias(name, alias, version),
               f"moving @{alias} of {name} to version {version}", _registry_retries(), retry.transient_mlflow,
               hint="the alias still names its previous version")
