"""MLflow set-up: each lake's models go to that lake's registry, whatever an earlier set-up left behind."""
from __future__ import annotations

import pandas as pd
import pytest
from mlflow.pyfunc import PythonModel

from promolake.common import tracking
from promolake.common.config import MlflowConf
from promolake.common.tracking import setup


def test_setup_always_points_the_registry_at_this_lake(tmp_path):
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}")   # left over from elsewhere
        (tmp_path / "other").mkdir()
        setup(MlflowConf(tracking_uri=f"sqlite:///{tmp_path / 'lake' / 'mlflow.db'}", experiment="t"))
        assert mlflow.get_registry_uri() == mlflow.get_tracking_uri()
        assert mlflow.get_registry_uri().endswith("/lake/mlflow.db")
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


@pytest.fixture
def registry(tmp_path):
    """A sqlite tracking store + registry for this test; the previous URIs are restored afterwards."""
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    setup(MlflowConf(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "art"),
                     experiment="t"))
    yield
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


class _Constant(PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input.assign(y=1.0)


def test_log_pyfunc_registers_and_loads_with_the_installed_mlflow(registry):
    import mlflow

    with mlflow.start_run() as run:
        info = tracking.log_pyfunc("m", python_model=_Constant())
    version = tracking.register(info.model_uri, "promolake_t")
    assert version == "1" and tracking.run_id_of("promolake_t", version) == run.info.run_id
    loaded = mlflow.pyfunc.load_model("models:/promolake_t/1")
    assert loaded.predict(pd.DataFrame({"x": [2.0]}))["y"].tolist() == [1.0]


def test_log_pyfunc_names_the_model_the_way_each_mlflow_major_version_takes_it(monkeypatch):
    """MLflow 3 takes `name`; MLflow 2 (2.13.1 on 15.4 LTS ML, 2.21.3 on 16.4 LTS ML) only `artifact_path`
    and fails on `name`. Stand-ins with each signature record what they were called with."""
    import mlflow.pyfunc

    calls = []

    def mlflow2_log_model(artifact_path, loader_module=None, python_model=None, artifacts=None, signature=None):
        calls.append(("artifact_path", artifact_path))

    def mlflow3_log_model(artifact_path=None, loader_module=None, python_model=None, name=None, signature=None):
        calls.append(("name", name))

    for fake in (mlflow2_log_model, mlflow3_log_model):
        monkeypatch.setattr(mlflow.pyfunc, "log_model", fake)
        tracking.log_pyfunc("als_model", python_model=None, signature=None)
    assert calls == [("artifact_path", "als_model"), ("name", "als_model")]


def test_a_missing_version_has_no_run_but_other_registry_errors_are_raised(registry, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from promolake.promo.scoring import model_lineage

    assert tracking.run_id_of("promolake_nope", "3") is None
    assert model_lineage({"promolake_nope": "3"}) == ({"promolake_nope": "3"}, {"promolake_nope": ""})

    def denied(self, name, version):
        raise MlflowException("User does not have READ permission on promolake_x", error_code="PERMISSION_DENIED")

    monkeypatch.setattr(MlflowClient, "get_model_version", denied)
    with pytest.raises(MlflowException, match="permission"):
        model_lineage({"promolake_x": "1"})     # was written as an empty run id into the assignments


def test_blended_candidates_name_both_models_for_the_lineage():
    """ml.user_candidates written by the text stage carry "als:<a>+text:<t>"; the lineage looked that up as an
    ALS version (the registry refuses it: "Parameter 'version' must be an integer"), which the old catch-all
    turned into an empty run id."""
    from promolake.promo.scoring import candidate_models

    assert candidate_models("als:2+text:3", "cat.ml.als", "cat.ml.text") == {"cat.ml.als": "2", "cat.ml.text": "3"}
    assert candidate_models("7", "cat.ml.als", "cat.ml.text") == {"cat.ml.als": "7"}
