"""MLflow set-up: each lake's models go to that lake's registry, whatever an earlier set-up left behind."""
from __future__ import annotations

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
