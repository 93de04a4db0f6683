"""Runs on Databricks as deployed: the wheel's requirements leave every target runtime's libraries alone, every
task's imports are met by its runtime plus its declared libraries, and (the runtime check) the wheel installed as
the bundle says on a stand-in of the runtime runs every bundle task."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from promolake.common.bundle import load_bundle, resolve
from promolake.common.runtimes import (NEVER_IN_THE_WHEEL, BundleTask, canonical, freeze_problems, parse_freeze,
                                       parse_profile, profiles, stage_imports, task_requirements, unsatisfied)

REPO = Path(__file__).resolve().parents[1]
PROFILES = profiles(REPO / "runtimes")

def bundle_tasks_of(profile=None, target: str = "dev") -> list[BundleTask]:
    """The resolved bundle's tasks, deployed for a profile's runtime (its bundle variables) or as by default."""
    from promolake.common.runtimes import bundle_tasks

    return bundle_tasks(resolve(load_bundle(REPO), target, profile.bundle_variables if profile else None))


@pytest.fixture(scope="module")
def wheel_requirements(tmp_path_factory) -> list[str]:
    """Requires-Dist of the wheel scripts/build_wheel.py builds (what the bundle's artifact is)."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_wheel.py"), "--dist", str(dist)], check=True,
                   capture_output=True)
    (whl,) = dist.glob("promolake-*.whl")
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]


def base(requirements: list[str]) -> list[str]:
    return [r for r in requirements if "extra ==" not in r]


def test_profiles_cover_the_target_runtimes():
    names = {p.name for p in PROFILES}
    assert {"dbr-15.4-lts-ml", "dbr-18-lts-ml"} <= names
    by_name = {p.name: p for p in PROFILES}
    assert by_name["dbr-15.4-lts-ml"].tasks == "all" and "horovod" in by_name["dbr-15.4-lts-ml"].preinstall
    assert by_name["dbr-18-lts-ml"].python == "3.12" and by_name["dbr-18-lts-ml"].spark.startswith("4.1")


def test_the_wheel_never_requires_pyspark_or_delta_spark(wheel_requirements):
    names = {canonical(r.split(";")[0].split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip())
             for r in base(wheel_requirements)}
    assert names and not names & set(NEVER_IN_THE_WHEEL), sorted(names & set(NEVER_IN_THE_WHEEL))
    # the local mode gets them from the `local` extra
    local = [r for r in wheel_requirements if "extra == \"local\"" in r]
    assert any(r.startswith("pyspark==") for r in local) and any(r.startswith("delta-spark==") for r in local)


def test_a_wheel_requiring_pyspark_is_caught():
    """The check above works on what a requirement names, whatever the spelling."""
    for req in ("pyspark==3.5.9", "PySpark>=3.5", "delta_spark==3.3.3", "delta-spark<4; python_version>'3'"):
        name = canonical(req.split(";")[0].split("=")[0].split("<")[0].split(">")[0].strip())
        assert name in NEVER_IN_THE_WHEEL


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_the_wheel_and_task_libraries_leave_the_runtime_libraries_alone(profile, wheel_requirements):
    """Each requirement of the wheel and of the tasks' pypi libraries that names a library the runtime ships
    must accept the runtime's version (otherwise pip on the cluster replaces it)."""
    libraries = [r for t in bundle_tasks_of(profile) if profile.runs(t) for r in task_requirements(t, REPO)]
    assert "optuna>=3.5,<6" in libraries and any(r.startswith("causalml==") for r in libraries)
    assert not unsatisfied(base(wheel_requirements) + libraries, profile)


def test_an_unsatisfied_requirement_is_reported():
    profile = next(p for p in PROFILES if p.name == "dbr-15.4-lts-ml")
    numpy = profile.pins["numpy"]
    assert unsatisfied([f"numpy>{numpy}", f"numpy>={numpy}", "vaderSentiment>=3"], profile) == [
        f"numpy>{numpy} (the runtime ships numpy=={numpy})"]
    assert unsatisfied([f"pyspark>{profile.spark}"], profile)      # the stand-ins count too


@functools.lru_cache(maxsize=None)
def distributions_of(module: str) -> set[str]:
    from importlib.metadata import packages_distributions

    return {canonical(d) for d in packages_distributions().get(module, [module])}


def declared(requirements: list[str]) -> set[str]:
    from packaging.requirements import Requirement

    return {canonical(Requirement(r).name) for r in requirements}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_every_task_import_is_met_by_its_runtime_and_declared_libraries(profile, wheel_requirements):
    """What each task's stage can import (promolake.common.runtimes.stage_imports) is shipped by the runtime,
    required by the wheel, or one of the task's libraries."""
    missing = []
    for task in bundle_tasks_of(profile):
        if not profile.runs(task):
            continue
        available = set(profile.pins) | set(profile.stand_ins) | declared(base(wheel_requirements)) | declared(
            task_requirements(task, REPO))
        for module in sorted(stage_imports(REPO / "libs" / "promolake", task.argv[0])):
            if not distributions_of(module) & available:
                missing.append(f"{task.job}.{task.key} imports {module} ({', '.join(distributions_of(module))})")
    assert not missing, missing


def test_stage_imports_follow_what_the_stage_runs(tmp_path):
    """stage_imports follows the stage's function to the promolake functions it names and their third-party
    imports; a function nobody calls, a stage table at the top level and optional imports do not count."""
    pkg = tmp_path / "promolake"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("import argparse\nfrom promolake.common import x\n\ndef main():\n    run_stage()\n\n"
                                "def run_stage():\n    import torch\n")
    (pkg / "pipeline.py").write_text("import pandas\n\ndef run_score(s, c):\n    from promolake.sub import m\n"
                                     "    m.fit()\n\ndef run_other(s, c):\n    import torch\n\n"
                                     "STAGES = {'score': run_score, 'other': run_other}\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "m.py").write_text("import numpy\n\ndef fit():\n    import causalml.metrics\n\n"
                                      "def train():\n    import horovod.torch\n\n"
                                      "try:\n    from sparkdl import HorovodRunner\nexcept ImportError:\n    pass\n")
    assert stage_imports(pkg, "score") == {"pandas", "numpy", "causalml"}
    assert stage_imports(pkg, "other") == {"pandas", "torch"}
    with pytest.raises(ValueError, match="no run_nope"):
        stage_imports(pkg, "nope")


def test_freeze_comparison_finds_changed_removed_and_mismatched_additions(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# x\n# python: 3.11\n# spark: 3.5.0\n# delta_spark: 3.2.0\n# delta_scala: 2.12\n"
                    "# spark_versions: 15.4.x-cpu-ml-scala2.12\n# tasks: all\n# preinstall: numpy\n"
                    "numpy==1.23.5\npandas==1.5.3\nscipy==1.11.1\n")
    profile = parse_profile(path)
    before = parse_freeze("numpy==1.23.5\npandas==1.5.3\npyspark==3.5.0\n")
    after = parse_freeze("numpy==1.26.4\npyspark==3.5.0\nscipy==1.12.0\nvaderSentiment==3.3.2\n"
                         "promolake @ file:///tmp/promolake.whl\n")
    problems, added = freeze_problems(before, after, profile)
    assert problems == ["changed numpy 1.23.5 -> 1.26.4 (the runtime ships 1.23.5)",
                        "removed pandas==1.5.3 (shipped by the runtime)",
                        "added scipy==1.12.0, but the runtime ships scipy==1.11.1"]
    assert added == ["vadersentiment==3.3.2"]
    assert freeze_problems(before, {**before, "vadersentiment": "3.3.2"}, profile) == ([], ["vadersentiment==3.3.2"])


def test_bundle_tasks_take_their_parameters_from_the_bundle():
    tasks = {(t.job, t.key): t for t in bundle_tasks_of(target="prod")}
    score = tasks[("promo_daily", "score_promotions")]
    assert score.argv[:3] == ("score", "--env", "prod") and "promotion.budget=2000" in score.argv
    assert tasks[("promo_retrain", "train_text_model")].gpu and not score.gpu
    assert ("whl", "./dist/*.whl") in score.libraries
    keys = [t.key for t in bundle_tasks_of() if t.job == "promo_retrain"]
    assert keys.index("validate_and_promote") > max(keys.index("train_text_model"), keys.index("train_uplift"))


# Checks started in the background when the session's tests were collected (tests/conftest.py): profile ->
# (process, work folder). The check runs its own Spark processes, so it overlaps with the rest of the suite and
# its test, ordered last, only collects the result.
BACKGROUND: dict[str, tuple[subprocess.Popen, Path]] = {}


def start_runtime_check(profile: str, work: Path) -> subprocess.Popen:
    """scripts/runtime_check.py for one profile, started in an environment without this session's PROMOLAKE_
    settings (the check sets its own); output to work/stdout.txt and work/stderr.txt. The profile environments
    stay cached in PROMOLAKE_CACHE. The tasks run in one process (one Spark driver, warmed once: the check's
    fast form), in the long suite (PROMOLAKE_LONG_TESTS) each in its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMOLAKE_") or k == "PROMOLAKE_CACHE"}
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "stdout.txt", "w") as out, open(work / "stderr.txt", "w") as err:
        fast = [] if os.environ.get("PROMOLAKE_LONG_TESTS") else ["--one-process"]
        return subprocess.Popen([sys.executable, str(REPO / "scripts" / "runtime_check.py"), "--profile", profile,
                                 "--work", str(work / "check"), *fast], stdout=out, stderr=err, env=env)


def runtime_check(profile: str, work: Path) -> subprocess.CompletedProcess:
    """The finished check of a profile: the one started in the background for this session, else one run now."""
    started = BACKGROUND.pop(profile, None)
    proc, work = started or (start_runtime_check(profile, work), work)
    proc.wait()
    stdout, stderr = (work / "stdout.txt").read_text(), (work / "stderr.txt").read_text()
    print(stdout[-8000:], stderr[-8000:])
    if started and proc.returncode == 0:
        shutil.rmtree(work, ignore_errors=True)     # a failed check keeps its lake and logs for a look
    elif started:
        print(f"runtime check logs and lake: {work}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def start_in_background(items) -> None:
    """Start the runtime checks of the collected tests that run one (called when collection is final)."""
    for item in items:
        profile = _checked_profile(item)
        if profile and profile not in BACKGROUND and not any(m.name == "skipif" and m.args and m.args[0]
                                                             for m in item.iter_markers()):
            work = Path(tempfile.mkdtemp(prefix=f"promolake-runtime-{profile}-"))
            BACKGROUND[profile] = (start_runtime_check(profile, work), work)


def _checked_profile(item) -> str | None:
    """The profile whose runtime check a collected test runs (None: it runs none)."""
    if item.originalname == "test_the_wheel_installs_and_every_task_runs_on_the_15_4_lts_ml_runtime":
        return "dbr-15.4-lts-ml"
    if item.originalname == "test_every_other_runtime_profile_passes_the_runtime_check":
        return item.callspec.params["profile"]
    return None


def stop_background() -> None:
    """Stop checks whose test did not run (a session stopped early) and remove their work folders."""
    while BACKGROUND:
        _, (proc, work) = BACKGROUND.popitem()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def test_one_process_runner_runs_console_scripts_in_order_and_stops_at_the_first_failure(tmp_path):
    """scripts/run_tasks_in_one_process.py (the fast runtime check): each command called as its console script
    (its exit status from SystemExit or the return value), a marker around each, nothing after a failure."""
    import json

    tasks = [{"name": "a.help", "entry_point": "promolake", "argv": ["--help"]},
             {"name": "b.bad", "entry_point": "promolake", "argv": ["no-such-stage"]},
             {"name": "c.never", "entry_point": "promolake", "argv": ["--help"]}]
    spec = tmp_path / "tasks.json"
    spec.write_text(json.dumps(tasks))
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "run_tasks_in_one_process.py"), str(spec)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    marks = [line.split()[1:4] for line in proc.stdout.splitlines() if line.startswith("@@promolake-task")]
    assert [m[:2] for m in marks] == [["start", "a.help"], ["end", "a.help"], ["start", "b.bad"], ["end", "b.bad"]]
    assert marks[1][2] == "exit=0" and marks[3][2] == "exit=2"      # argparse's usage error
    assert "usage: promolake" in proc.stdout and "invalid choice: 'no-such-stage'" in proc.stderr


@pytest.mark.runtime
@pytest.mark.slow
def test_the_wheel_installs_and_every_task_runs_on_the_15_4_lts_ml_runtime(tmp_path):
    """scripts/runtime_check.py on the 15.4 LTS ML profile (the runtime of every task, text training included):
    the runtime's libraries unchanged by the install, and every bundle task's entry point run with the
    bundle's parameters on a tiny lake. The first run builds the runtime's stand-in (cached)."""
    proc = runtime_check("dbr-15.4-lts-ml", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout
    for task in ("ingest", "features", "train_als", "train_text_model", "train_uplift", "validate_and_promote",
                 "score", "evaluate_campaign"):
        assert f".{task}: promolake " in log and f".{task} FAILED" not in log, task
    assert "1/1 profiles passed" in log


@pytest.mark.runtime
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PROMOLAKE_LONG_TESTS"), reason="long suite only (make test-long)")
@pytest.mark.parametrize("profile", [p.name for p in PROFILES if p.name != "dbr-15.4-lts-ml"])
def test_every_other_runtime_profile_passes_the_runtime_check(profile, tmp_path):
    proc = runtime_check(profile, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1/1 profiles passed" in proc.stdout


def test_each_profile_deploys_the_bundle_on_its_own_runtime():
    """A profile's bundle variables put the CPU jobs on its runtime and select its requirements library; the
    bundle's defaults are one profile's."""
    defaults = {t.key: t for t in bundle_tasks_of()}
    assert any(all(defaults["train_uplift"].spark_version == p.bundle_variables["spark_version"]
                   for _ in [0]) and p.bundle_variables["runtime"] in str(defaults["train_uplift"].libraries)
               for p in PROFILES)
    for profile in PROFILES:
        tasks = bundle_tasks_of(profile)
        cpu = [t for t in tasks if not t.gpu]
        assert {t.spark_version for t in cpu} == {profile.bundle_variables["spark_version"]}
        assert profile.bundle_variables["spark_version"] in profile.spark_versions
        reqs = [spec for t in cpu for kind, spec in t.libraries if kind == "requirements"]
        assert reqs and all(s.endswith(f"/runtimes/libraries/{profile.name}.txt") for s in reqs)
        assert (REPO / "runtimes" / "libraries" / f"{profile.name}.txt").is_file()
