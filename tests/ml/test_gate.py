"""The registry's promotion gate: the verdict on hand cases, and the champion alias in a real (sqlite)
MLflow registry: a better challenger is promoted, a worse one rejected, dry_run changes nothing."""
from __future__ import annotations

import pytest

from promolake.ml.gate import Verdict, alias_version, apply_verdict, judge, versions

MINIMUMS = {"qini": 0.0, "auc": 0.6}
TOLERANCES = {"qini": 0.02, "auc": 0.01}


def test_first_model_needs_only_the_minimums():
    assert judge({"qini": 0.05, "auc": 0.7}, None, MINIMUMS, TOLERANCES)[0]
    passed, reasons = judge({"qini": 0.05, "auc": 0.55}, None, MINIMUMS, TOLERANCES)
    assert not passed and reasons[0] == "auc 0.55 below the minimum 0.6"


def test_no_regression_beyond_the_tolerance():
    champion = {"qini": 0.10, "auc": 0.75}
    assert judge({"qini": 0.085, "auc": 0.745}, champion, MINIMUMS, TOLERANCES)[0]   # within tolerance
    passed, reasons = judge({"qini": 0.07, "auc": 0.76}, champion, MINIMUMS, TOLERANCES)
    assert not passed and reasons[0] == "qini 0.07 regresses more than 0.02 from the champion's 0.1"


class _Registry:
    """A client whose alias look-up fails with the given error."""

    def __init__(self, error):
        self.error = error

    def get_model_version_by_alias(self, name, alias):
        raise self.error


def test_an_unavailable_registry_is_never_read_as_no_champion():
    from mlflow.exceptions import MlflowException

    missing = MlflowException("Registered model alias champion not found.", error_code="INVALID_PARAMETER_VALUE")
    assert alias_version(_Registry(missing), "m", "champion") is None
    down = MlflowException("API request to endpoint /api/2.0/mlflow/registered-models/alias failed with exception "
                           "HTTPSConnectionPool(host='x', port=443): Max retries exceeded with url")
    with pytest.raises(MlflowException, match="Max retries exceeded"):
        alias_version(_Registry(down), "m", "champion")


def test_a_metric_the_evaluation_could_not_compute_fails():
    passed, reasons = judge({"qini": float("nan"), "auc": 0.8}, {"qini": 0.1, "auc": 0.7}, MINIMUMS, TOLERANCES)
    assert not passed and "qini missing" in reasons[0]


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A sqlite registry with model 'm': v1 @champion, v2 @challenger."""
    import mlflow
    from mlflow import MlflowClient

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source=(tmp_path / "model").as_uri())
    client.set_registered_model_alias("m", "champion", "1")
    client.set_registered_model_alias("m", "challenger", "2")
    yield client
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def verdict(challenger_metrics, champion_metrics):
    passed, reasons = judge(challenger_metrics, champion_metrics, MINIMUMS, TOLERANCES)
    return Verdict("m", "2", "1", challenger_metrics, champion_metrics, passed, reasons)


def test_a_better_challenger_is_promoted(registry):
    v = verdict({"qini": 0.12, "auc": 0.8}, {"qini": 0.1, "auc": 0.75})
    assert apply_verdict(registry, v, "enabled") == "@champion moved to v2 (was v1)"
    assert versions(registry, "m") == ("2", "2")
    mv = registry.get_model_version("m", "2")
    assert mv.tags["validation_status"] == "passed" and mv.tags["validation_qini"] == "0.12"
    assert mv.tags["validation_champion_qini"] == "0.1" and "PASSED" in mv.description


def test_a_worse_challenger_is_rejected(registry):
    v = verdict({"qini": 0.05, "auc": 0.8}, {"qini": 0.1, "auc": 0.75})
    assert apply_verdict(registry, v, "enabled") == "@champion kept at v1"
    assert versions(registry, "m") == ("2", "1")
    mv = registry.get_model_version("m", "2")
    assert mv.tags["validation_status"] == "failed" and "regresses" in mv.description


@pytest.mark.parametrize("mode", ["dry_run", "disabled"])
def test_dry_run_and_disabled_change_nothing(registry, mode):
    v = verdict({"qini": 0.12, "auc": 0.8}, {"qini": 0.1, "auc": 0.75})
    said = apply_verdict(registry, v, mode)
    assert ("would move @champion to v2" in said) if mode == "dry_run" else ("disabled" in said)
    assert versions(registry, "m") == ("2", "1")
    assert "validation_status" not in registry.get_model_version("m", "2").tags


def test_unknown_mode_is_refused(registry):
    with pytest.raises(ValueError, match="validation.mode"):
        apply_verdict(registry, verdict({"qini": 0.1, "auc": 0.8}, None), "yolo")


def test_promotion_remembers_the_replaced_champion_and_rollback_returns_to_it(registry):
    from promolake.ml.gate import rollback

    v = verdict({"qini": 0.12, "auc": 0.8}, {"qini": 0.1, "auc": 0.75})
    apply_verdict(registry, v, "enabled")
    assert registry.get_model_version("m", "2").tags["previous_champion"] == "1"
    assert rollback(registry, "m", "bad week") == "@champion rolled back from v2 to v1"
    assert versions(registry, "m") == ("2", "1")
    assert registry.get_model_version("m", "2").tags["rolled_back"] == "bad week"
    with pytest.raises(ValueError, match="replaced no earlier champion"):
        rollback(registry, "m", "again")     # v1 was the first champion


def test_manual_promotion_needs_a_reason_and_an_existing_version(registry):
    from promolake.ml.gate import promote

    with pytest.raises(ValueError, match="needs a reason"):
        promote(registry, "m", "2", "  ")
    with pytest.raises(Exception):
        promote(registry, "m", "7", "no such version")
    assert versions(registry, "m") == ("2", "1")
    assert promote(registry, "m", "2", "reviewed by hand") == "@champion moved to v2 by hand (was v1)"
    tags = registry.get_model_version("m", "2").tags
    assert tags["validation_status"] == "promoted_manually" and tags["promotion_reason"] == "reviewed by hand"
    assert promote(registry, "m", "2", "twice") == "v2 is already @champion"
