"""Check the Databricks Asset Bundle (databricks.yml and the resources it includes) without a workspace.

`check_bundle(repo, target)` loads databricks.yml, merges the included resource files, applies the
target's variable values and overrides, substitutes ${var.*} / ${bundle.*} / ${workspace.*}
references, and checks every job:

- the job settings survive a round trip through the Databricks SDK's model
  (databricks.sdk.service.jobs.JobSettings.from_dict(...).as_dict()): a misspelt or misplaced key is
  dropped by the model and reported;
- every task has a kind (python_wheel_task, spark_python_task, notebook_task, ...), its
  depends_on names tasks of the job, its job_cluster_key a cluster of the job;
- a python_wheel_task calls the package's console entry point (setup.py) with a `promolake`
  subcommand that exists (promolake.cli.build_parser), a spark_python_task a file of the repo, a
  notebook_task a notebook of the repo;
- no ${...} reference is left unresolved (Databricks' own {{job.parameters.x}} references are runtime
  values and are left alone).

`databricks bundle validate -t <target>` with a real CLI and workspace is the stronger check; this one
runs in the tests on every target.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

REFERENCE = re.compile(r"\$\{([a-zA-Z0-9_.-]+)\}")
TASK_KINDS = ("python_wheel_task", "spark_python_task", "notebook_task", "sql_task", "run_job_task",
              "condition_task", "for_each_task", "pipeline_task", "dbt_task", "spark_jar_task", "spark_submit_task")


class BundleError(ValueError):
    """The bundle cannot be loaded or resolved (missing file, unknown target or variable)."""


def _merge(base: Any, over: Any) -> Any:
    """Deep merge of YAML mappings (over wins); lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def load_bundle(repo: Path) -> dict:
    """databricks.yml with the resources of every `include` glob merged in."""
    root = Path(repo)
    path = root / "databricks.yml"
    if not path.exists():
        raise BundleError(f"no databricks.yml in {root}")
    bundle = yaml.safe_load(path.read_text()) or {}
    for pattern in bundle.get("include", []):
        files = sorted(root.glob(pattern))
        if not files:
            raise BundleError(f"include {pattern!r} of databricks.yml matches no file")
        for f in files:
            part = yaml.safe_load(f.read_text()) or {}
            unknown = set(part) - {"resources", "variables", "targets"}
            if unknown:
                raise BundleError(f"{f.relative_to(root)}: unexpected top-level keys {sorted(unknown)}")
            bundle = _merge(bundle, part)
    return bundle


def resolve(bundle: dict, target: str, variables: dict[str, Any] | None = None) -> dict:
    """The bundle as deployed to `target`: the target's variables and resource overrides applied and
    every ${...} reference substituted. `variables` are set last, as `databricks bundle deploy --var name=value`."""
    targets = bundle.get("targets", {})
    if target not in targets:
        raise BundleError(f"unknown target {target!r}; the bundle has {sorted(targets)}")
    t = targets[target] or {}
    values = {name: spec.get("default") for name, spec in bundle.get("variables", {}).items()}
    for name, value in (t.get("variables") or {}).items():
        if name not in values:
            raise BundleError(f"target {target!r} sets variable {name!r}, which databricks.yml does not declare")
        values[name] = value
    for name, value in (variables or {}).items():
        if name not in values:
            raise BundleError(f"--var {name}: databricks.yml declares no such variable")
        values[name] = value
    missing = sorted(n for n, v in values.items() if v is None)
    if missing:
        raise BundleError(f"target {target!r}: variables without a value: {missing}")
    resources = _merge(bundle.get("resources", {}), t.get("resources") or {})
    context = {"bundle.target": target, "bundle.name": bundle.get("bundle", {}).get("name", ""),
               "workspace.file_path": "/Workspace/bundle/files", "workspace.root_path": "/Workspace/bundle",
               "workspace.current_user.userName": "someone@example.com",
               **{f"var.{k}": v for k, v in values.items()}}

    def sub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, str):
            whole = REFERENCE.fullmatch(value)
            if whole and whole.group(1) in context:
                return context[whole.group(1)]          # keeps a variable's type (numbers, lists)
            return REFERENCE.sub(lambda m: str(context[m.group(1)]) if m.group(1) in context else m.group(0), value)
        return value

    out = {k: v for k, v in bundle.items() if k not in ("targets", "resources", "include")}
    out.update(resources=sub(resources), target=target, mode=t.get("mode"), run_as=t.get("run_as"),
               permissions=t.get("permissions", bundle.get("permissions")))
    return out


def _diff(expected: Any, got: Any, path: str) -> list[str]:
    """Keys of `expected` the SDK model dropped or changed."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{path}: not understood by JobSettings"]
        out = []
        for k, v in expected.items():
            if k not in got:
                out.append(f"{path}.{k}: dropped by the Databricks SDK's JobSettings "
                           "(misspelt, misplaced or an invalid value)")
            else:
                out += _diff(v, got[k], f"{path}.{k}")
        return out
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return [f"{path}: list not understood by JobSettings"]
        return [p for i, (e, g) in enumerate(zip(expected, got)) for p in _diff(e, g, f"{path}[{i}]")]
    return []


def cli_stages() -> set[str]:
    from promolake.cli import build_parser

    parser = build_parser()
    for action in parser._actions:  # argparse keeps subcommands in its _SubParsersAction
        if getattr(action, "choices", None) and isinstance(action.choices, dict):
            return set(action.choices)
    return set()


def check_job(name: str, job: dict, repo: Path, stages: set[str], entry_points: set[str]) -> list[str]:
    """Problems of one resolved job (empty when it is fine); see the module docstring."""
    from databricks.sdk.service.jobs import JobSettings

    problems = [f"job {name}: {p}" for p in _diff(job, JobSettings.from_dict(job).as_dict(), "settings")]
    left = sorted(set(REFERENCE.findall(yaml.safe_dump(job))))
    if left:
        problems.append(f"job {name}: unresolved references {left}")
    clusters = {c.get("job_cluster_key") for c in job.get("job_clusters", [])}
    tasks = job.get("tasks", [])
    keys = [t.get("task_key") for t in tasks]
    if not tasks:
        problems.append(f"job {name}: no tasks")
    if len(set(keys)) != len(keys):
        problems.append(f"job {name}: repeated task keys {keys}")
    for t in tasks:
        where = f"job {name}, task {t.get('task_key')}"
        kinds = [k for k in TASK_KINDS if k in t]
        if len(kinds) != 1:
            problems.append(f"{where}: needs exactly one task kind, has {kinds}")
        for dep in t.get("depends_on", []):
            if dep.get("task_key") not in keys:
                problems.append(f"{where}: depends on unknown task {dep.get('task_key')!r}")
        if "job_cluster_key" in t and t["job_cluster_key"] not in clusters:
            problems.append(f"{where}: unknown job cluster {t['job_cluster_key']!r}")
        wheel = t.get("python_wheel_task")
        if wheel:
            if wheel.get("entry_point") not in entry_points:
                problems.append(f"{where}: entry point {wheel.get('entry_point')!r} is not a console script of "
                                f"setup.py ({sorted(entry_points)})")
            params = wheel.get("parameters") or []
            if not params or params[0] not in stages:
                problems.append(f"{where}: {params[:1]} is not a promolake subcommand ({sorted(stages)})")
            if not any(lib.get("whl") for lib in t.get("libraries", [])):
                problems.append(f"{where}: python_wheel_task without the wheel in its libraries")
        script = (t.get("spark_python_task") or {}).get("python_file")
        if script and not (repo / script.lstrip("./")).exists():
            problems.append(f"{where}: {script} is not a file of the repository")
        notebook = (t.get("notebook_task") or {}).get("notebook_path")
        if notebook:
            rel = notebook.lstrip("./")
            if not any((repo / f"{rel}{ext}").exists() for ext in ("", ".py", ".sql", ".ipynb")):
                problems.append(f"{where}: notebook {notebook} is not in the repository")
    return problems


def console_scripts(repo: Path) -> set[str]:
    """Names of the console_scripts entry points declared in setup.py."""
    text = (Path(repo) / "setup.py").read_text()
    block = re.search(r"console_scripts\"\s*:\s*\[([^\]]*)\]", text)
    return set(re.findall(r"\"\s*([A-Za-z0-9_.-]+)\s*=", block.group(1))) if block else set()


def check_bundle(repo: Path, target: str) -> list[str]:
    """Every problem of the bundle as deployed to `target` (empty: it passes)."""
    repo = Path(repo)
    resolved = resolve(load_bundle(repo), target)
    stages, entry_points = cli_stages(), console_scripts(repo)
    problems = []
    jobs = resolved["resources"].get("jobs", {})
    if not jobs:
        problems.append("the bundle defines no jobs")
    for name, job in jobs.items():
        problems += check_job(name, job, repo, stages, entry_points)
    return problems
