"""The Databricks Asset Bundle resolves for every target and every job passes the Databricks SDK's
job settings model and points at code that exists (promolake.common.bundle); broken bundles are caught."""
from __future__ import annotations

import re
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
    dev, prod = resolve(bundle, "dev"), resolve(bundle, "prod")
    assert dev["mode"] == "development" and prod["mode"] == "production" and prod["run_as"]
    assert {j["schedule"]["pause_status"] for j in dev["resources"]["jobs"].values()} == {"PAUSED"}
    assert {j["schedule"]["pause_status"] for j in prod["resources"]["jobs"].values()} == {"UNPAUSED"}
    assert prod["permissions"] and resolve(bundle, "staging")["permissions"]


def test_the_jobs_the_product_runs():
    jobs = resolve(load_bundle(REPO), "prod")["resources"]["jobs"]
    order = {name: [t["task_key"] for t in job["tasks"]] for name, job in jobs.items()}
    assert order["promo_daily"] == ["ingest", "features", "score_promotions"]
    assert order["promo_retrain"][:3] == ["features", "train_als", "train_text_model"]
    assert "evaluate_campaign" in order["promo_campaign_eval"]
    retrain = jobs["promo_retrain"]
    text = next(t for t in retrain["tasks"] if t["task_key"] == "train_text_model")
    gpu = next(c for c in retrain["job_clusters"] if c["job_cluster_key"] == text["job_cluster_key"])
    assert "gpu-ml" in gpu["new_cluster"]["spark_version"]
    for job in jobs.values():
        for task in job["tasks"]:
            assert task["max_retries"] >= 1 and task["timeout_seconds"] > 0


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
    def break_daily(doc):
        job = doc["resources"]["jobs"]["promo_daily"]
        job["max_concurent_runs"] = 1                                     # misspelt key
        job["tasks"][0]["python_wheel_task"]["parameters"][0] = "ingset"
        job["tasks"][1]["depends_on"] = [{"task_key": "nowhere"}]
        job["tasks"][1]["job_cluster_key"] = "gpu"
        job["tasks"][1]["timeout_seconds"] = "${var.not_declared}"
        job["tasks"].append({"task_key": "nb", "job_cluster_key": "etl",
                             "notebook_task": {"notebook_path": "./notebooks/99_missing"}})

    _edit(copy_repo / "resources" / "promo_daily.yml", break_daily)
    problems = "\n".join(check_bundle(copy_repo, "dev"))
    for expected in ("max_concurent_runs: dropped", "'ingset'] is not a promolake subcommand",
                     "depends on unknown task 'nowhere'", "unknown job cluster 'gpu'",
                     "unresolved references ['var.not_declared']", "notebook ./notebooks/99_missing is not"):
        assert expected in problems


def test_unknown_target_and_undeclared_variable_are_refused(copy_repo):
    with pytest.raises(BundleError, match="unknown target 'qa'"):
        resolve(load_bundle(copy_repo), "qa")
    _edit(copy_repo / "databricks.yml", lambda d: d["targets"]["staging"]["variables"].update(catalgo="x"))
    with pytest.raises(BundleError, match="catalgo"):
        resolve(load_bundle(copy_repo), "staging")


def test_each_build_gets_a_new_valid_version():
    import datetime as dt
    import importlib.util

    from packaging.version import Version

    spec = importlib.util.spec_from_file_location("build_wheel", REPO / "scripts" / "build_wheel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t = dt.datetime(2026, 11, 24, 1, 20, 5, tzinfo=dt.timezone.utc)
    first, second = mod.build_version(t, "ABC1234"), mod.build_version(t + dt.timedelta(seconds=1), None)
    assert first == "0.1.0+20261124t012005.abc1234"
    assert Version(first) != Version(second) and Version(first).public == "0.1.0"
    bundle = load_bundle(REPO)
    assert "scripts/build_wheel.py" in bundle["artifacts"]["promolake_wheel"]["build"]


def test_every_repository_file_the_configuration_and_bundle_name_exists():
    """conf/*.yml, databricks.yml and resources/*.yml name files of the repository (resources/*.yml,
    notebooks, scripts) in comments and values; each must exist (prod.yml named a missing
    resources/promo_train_text.yml)."""
    files = [REPO / "databricks.yml", *sorted((REPO / "conf").glob("*.yml")), *sorted((REPO / "resources").glob("*.yml"))]
    named = re.compile(r"(?<![\w/.])((?:resources|conf|scripts|notebooks|jobs|runtimes)/[\w./-]+\.(?:yml|py|sh|txt))")
    missing = [f"{f.relative_to(REPO)} names {m}" for f in files for m in named.findall(f.read_text())
               if not (REPO / m).exists()]
    assert not missing, missing
