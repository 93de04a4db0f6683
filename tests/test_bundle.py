"""The Databricks Asset Bundle resolves for every target and every job passes the Databricks SDK's
job settings model and points at code that exists (promolake.common.bundle); broken bundles are caught."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from promolake.common.bundle import BundleError, check_bundle, load_bundle, resolve

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("dev", "staging", "prod")


@pytest.mark.parametrize("target", TARGETS)
def test_every_job_of_every_target_is_valid(target):
    assert check_bundle(REPO, target) == []


def test_targets_map_to_their_catalog_and_environment():
    bundle = load_bundle(REPO)
    assert set(TARGETS) <= set(bundle["targets"])
    for target in TARGETS:
        r = resolve(bundle, target)
        for job in r["resources"]["jobs"].values():
            env = {p["name"]: p["default"] for p in job.get("parameters", [])}.get("env")
            assert env == target and (REPO / "conf" / f"{target}.yml").exists()
    assert resolve(bundle, "dev")["mode"] == "development"
    prod = resolve(bundle, "prod")
    assert prod["mode"] == "production" and prod["run_as"]


@pytest.fixture
def copy_repo(tmp_path):
    """A copy of the bundle files to break."""
    for name in ("databricks.yml", "setup.py"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "resources", tmp_path / "resources")
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    return tmp_path


def _edit(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc))


def test_broken_jobs_are_reported(copy_repo):
    def break_score(doc):
        job = doc["resources"]["jobs"]["promo_score"]
        job["max_concurent_runs"] = 1                                     # misspelt key
        job["tasks"][0]["python_wheel_task"]["parameters"][0] = "train-upleft"
        job["tasks"][1]["depends_on"] = [{"task_key": "nowhere"}]
        job["tasks"][1]["job_cluster_key"] = "gpu"
        job["tasks"][1]["timeout_seconds"] = "${var.not_declared}"
        job["tasks"].append({"task_key": "nb", "job_cluster_key": "score",
                             "notebook_task": {"notebook_path": "./notebooks/99_missing"}})

    _edit(copy_repo / "resources" / "promo_score.yml", break_score)
    problems = "\n".join(check_bundle(copy_repo, "dev"))
    for expected in ("max_concurent_runs: dropped", "'train-upleft'] is not a promolake subcommand",
                     "depends on unknown task 'nowhere'", "unknown job cluster 'gpu'",
                     "unresolved references ['var.not_declared']", "notebook ./notebooks/99_missing is not"):
        assert expected in problems


def test_unknown_target_and_undeclared_variable_are_refused(copy_repo):
    with pytest.raises(BundleError, match="unknown target 'qa'"):
        resolve(load_bundle(copy_repo), "qa")
    _edit(copy_repo / "databricks.yml", lambda d: d["targets"]["staging"]["variables"].update(catalgo="x"))
    with pytest.raises(BundleError, match="catalgo"):
        resolve(load_bundle(copy_repo), "staging")
