"""Databricks runtime profiles (runtimes/*.txt) and what the runtime check (scripts/runtime_check.py) decides.

A profile is a pip constraints file holding the Python libraries a Databricks runtime ships, copied from
its release notes, with a header naming the runtime's Python, Spark and Delta versions (the open-source
stand-ins are pyspark at the runtime's Spark version and the matching delta-spark release), the cluster
spark_version keys it stands for, which bundle tasks run on it (`all`, or `cpu`: every task whose job
cluster has no GPU) and which of its libraries the check preinstalls (those promolake's tasks use; pip
resolves their dependencies at the profile's versions).

The pure parts live here: parsing a profile, the bundle's tasks with their resolved parameters and
libraries, and the comparison of `pip freeze` before and after installing them, which fails when pip
changed or removed a library the runtime ships, or added one at a version other than the runtime's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from packaging.requirements import Requirement
from packaging.version import Version

JOB_PARAMETER = re.compile(r"\{\{\s*job\.parameters\.([A-Za-z0-9_]+)\s*\}\}")
NEVER_IN_THE_WHEEL = ("pyspark", "delta-spark")      # Databricks' own builds: a PyPI copy would replace them


def canonical(name: str) -> str:
    """PEP 503 normalized distribution name (PyYAML -> pyyaml, scikit_learn -> scikit-learn)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def public(version: str) -> str:
    """The public part of a version (2.3.1+cpu -> 2.3.1): what PyPI serves."""
    return version.split("+", 1)[0]


@dataclass(frozen=True)
class Profile:
    """One Databricks runtime as the check installs it."""
    name: str
    path: Path
    title: str
    python: str
    spark: str
    delta_spark: str
    delta_scala: str
    spark_versions: tuple[str, ...]
    tasks: str
    preinstall: tuple[str, ...]
    pins: Mapping[str, str] = field(default_factory=dict)     # canonical name -> version
    # bundle variables that deploy the jobs on this runtime (`databricks bundle deploy --var name=value`)
    bundle_variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def stand_ins(self) -> dict[str, str]:
        return {"pyspark": self.spark, "delta-spark": self.delta_spark}

    def runs(self, task: "BundleTask") -> bool:
        return self.tasks == "all" or (self.tasks == "cpu" and not task.gpu)

    def constraints(self) -> list[str]:
        """pip constraint lines: the runtime's libraries and the Spark/Delta stand-ins."""
        pins = {**self.pins, **self.stand_ins}
        return [f"{n}=={public(v)}" for n, v in sorted(pins.items())]


class ProfileError(ValueError):
    """A runtime profile file is missing a header or holds a line that is not name==version."""


def parse_profile(path: Path) -> Profile:
    """The profile in `path` (see the module docstring for the header keys)."""
    path = Path(path)
    header: dict[str, str] = {}
    pins: dict[str, str] = {}
    title = ""
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(r"#\s*([a-z_]+):\s*(.*?)\s*$", line)
            if m and m.group(1) not in header:
                # a value may be followed by a note: "  # ..." or "  (...)"
                header[m.group(1)] = re.sub(r"\s+(#|\().*$", "", m.group(2)).strip()
            elif not title:
                title = line.lstrip("# ").strip()
            continue
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if not m:
            raise ProfileError(f"{path.name}:{n}: expected name==version, got {raw!r}")
        pins[canonical(m.group(1))] = m.group(2)
    need = ("python", "spark", "delta_spark", "delta_scala", "spark_versions", "tasks", "preinstall")
    missing = [k for k in need if not header.get(k)]
    if missing:
        raise ProfileError(f"{path.name}: header lines missing: {', '.join('# ' + k + ':' for k in missing)}")
    if header["tasks"] not in ("all", "cpu"):
        raise ProfileError(f"{path.name}: tasks must be 'all' or 'cpu', got {header['tasks']!r}")
    bad = [p for p in NEVER_IN_THE_WHEEL if p in pins]
    if bad:
        raise ProfileError(f"{path.name}: {bad} are the runtime's own builds: give them as # spark: / # delta_spark:")
    preinstall = tuple(canonical(p) for p in header["preinstall"].split())
    unknown = [p for p in preinstall if p not in pins]
    if unknown:
        raise ProfileError(f"{path.name}: preinstall names libraries the runtime does not list: {unknown}")
    return Profile(name=path.stem, path=path, title=header.get("title", title), python=header["python"],
                   spark=header["spark"], delta_spark=header["delta_spark"], delta_scala=header["delta_scala"],
                   spark_versions=tuple(header["spark_versions"].split()), tasks=header["tasks"],
                   preinstall=preinstall, pins=pins,
                   bundle_variables=dict(kv.split("=", 1) for kv in header.get("bundle_variables", "").split()))


def profiles(folder: Path) -> list[Profile]:
    return [parse_profile(p) for p in sorted(Path(folder).glob("*.txt"))]


# ----- the bundle's tasks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BundleTask:
    """One task of a resolved bundle: its job, key, job cluster, entry-point arguments (job parameters
    substituted) and libraries."""
    job: str
    key: str
    spark_version: str
    gpu: bool
    package: str
    entry_point: str
    argv: tuple[str, ...]
    libraries: tuple[tuple[str, str], ...]      # (kind, spec): ("whl", "./dist/*.whl"), ("pypi", "x==1")


def _order(tasks: Mapping[str, dict]) -> list[str]:
    """Task keys in an order that respects depends_on (stable otherwise)."""
    done: list[str] = []
    pending = list(tasks)
    while pending:
        for key in pending:
            deps = [d["task_key"] for d in tasks[key].get("depends_on", [])]
            if all(d in done for d in deps):
                done.append(key)
                pending.remove(key)
                break
        else:
            raise ValueError(f"depends_on cycle among tasks {pending}")
    return done


def substitute(value: str, parameters: Mapping[str, str]) -> str:
    """{{job.parameters.x}} -> the parameter's value (a Databricks run-time reference)."""
    def repl(m: re.Match) -> str:
        if m.group(1) not in parameters:
            raise KeyError(f"{value!r} names job parameter {m.group(1)!r}, which the job does not declare")
        return str(parameters[m.group(1)])
    return JOB_PARAMETER.sub(repl, value)


def _library(lib: Mapping[str, Any]) -> tuple[str, str]:
    if "whl" in lib:
        return "whl", str(lib["whl"])
    if "pypi" in lib:
        spec = lib["pypi"]
        if spec.get("repo"):
            raise ValueError(f"pypi library {spec} names a repository; the check installs from PyPI only")
        return "pypi", str(spec["package"])
    if "requirements" in lib:
        return "requirements", str(lib["requirements"])
    raise ValueError(f"library {dict(lib)} is of a kind the check does not install (whl, pypi, requirements)")


def bundle_tasks(resolved: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> list[BundleTask]:
    """Every task of every job of a resolved bundle (promolake.common.bundle.resolve), jobs in the bundle's
    order and tasks in dependency order. Job parameters take their defaults, except those in `parameters`
    (as `databricks bundle run --params k=v` would)."""
    out = []
    for job_name, job in resolved.get("resources", {}).get("jobs", {}).items():
        values = {p["name"]: str(p.get("default", "")) for p in job.get("parameters", [])}
        values.update({k: v for k, v in (parameters or {}).items() if k in values})
        clusters = {c["job_cluster_key"]: c.get("new_cluster", {}) for c in job.get("job_clusters", [])}
        tasks = {t["task_key"]: t for t in job.get("tasks", [])}
        for key in _order(tasks):
            t = tasks[key]
            wheel = t.get("python_wheel_task")
            if wheel is None:
                raise ValueError(f"{job_name}.{key}: only python_wheel_task tasks are checked")
            cluster = clusters.get(t.get("job_cluster_key"), {})
            sv = str(cluster.get("spark_version", ""))
            gpu = "gpu" in sv or "spark.task.resource.gpu.amount" in (cluster.get("spark_conf") or {})
            out.append(BundleTask(
                job=job_name, key=key, spark_version=sv, gpu=gpu, package=wheel["package_name"],
                entry_point=wheel["entry_point"],
                argv=tuple(substitute(str(a), values) for a in wheel.get("parameters", [])),
                libraries=tuple(_library(lib) for lib in t.get("libraries", []))))
    return out


WORKSPACE_FILES = "/Workspace/bundle/files"     # ${workspace.file_path} as promolake.common.bundle.resolve sets it


def local_path(spec: str, repo: Path) -> Path:
    """The repository file behind a library path of the resolved bundle (the bundle syncs the repository to
    ${workspace.file_path}); a relative path is relative to the repository."""
    if spec.startswith(WORKSPACE_FILES + "/"):
        return Path(repo) / spec[len(WORKSPACE_FILES) + 1:]
    return Path(spec) if Path(spec).is_absolute() else Path(repo) / spec


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a pip requirements file (comments and blank lines dropped)."""
    return [line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def task_requirements(task: "BundleTask", repo: Path) -> list[str]:
    """The PyPI requirements a task's libraries declare: pypi packages and the lines of requirements files."""
    out = []
    for kind, spec in task.libraries:
        if kind == "pypi":
            out.append(spec)
        elif kind == "requirements":
            out += requirement_lines(local_path(spec, repo))
    return out


# ----- what pip did --------------------------------------------------------------------------------------
def parse_freeze(text: str) -> dict[str, str]:
    """`pip freeze` output -> {canonical name: version}; editable and URL lines keep their text."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
            out[canonical(name)] = version.strip()
        elif " @ " in line:
            name, url = line.split(" @ ", 1)
            out[canonical(name)] = "@ " + url.strip()
    return out


def freeze_problems(before: Mapping[str, str], after: Mapping[str, str], profile: Profile,
                    ours: Iterable[str] = ("promolake",)) -> tuple[list[str], list[str]]:
    """(problems, added) after installing the task libraries into the runtime's environment:
    a preinstalled library changed or removed is a problem; so is a library added at a version other
    than the one the runtime ships (on a cluster pip would have replaced the runtime's). `added` lists the
    libraries pip brought that the runtime lacks (what the wheel really installs on a cluster)."""
    ours = {canonical(o) for o in ours}
    problems, added = [], []
    for name, version in sorted(before.items()):
        if name not in after:
            problems.append(f"removed {name}=={version} (shipped by the runtime)")
        elif after[name] != version:
            problems.append(f"changed {name} {version} -> {after[name]} (the runtime ships {version})")
    for name, version in sorted(after.items()):
        if name in before or name in ours:
            continue
        shipped = profile.pins.get(name) or profile.stand_ins.get(name)
        if shipped is not None and public(shipped) != public(version):
            problems.append(f"added {name}=={version}, but the runtime ships {name}=={shipped}")
        elif shipped is None:
            added.append(f"{name}=={version}")
    return problems, added


def unsatisfied(requirements: Iterable[str], profile: Profile) -> list[str]:
    """Requirements (PEP 508 strings) that a library the runtime ships does not satisfy: installing them
    would make pip replace the runtime's version. Requirements with an `extra ==` marker are skipped."""
    out = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and "extra" in str(req.marker):
            continue
        name = canonical(req.name)
        shipped = profile.pins.get(name) or profile.stand_ins.get(name)
        if shipped is not None and not req.specifier.contains(Version(public(shipped)), prereleases=True):
            out.append(f"{text} (the runtime ships {name}=={shipped})")
    return out


# ----- what a task imports -------------------------------------------------------------------------------
def _optional(node, parents: dict) -> bool:
    """Whether an import statement sits in a `try:` whose handlers catch ImportError (an optional import)."""
    import ast

    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            for h in parent.handlers:
                names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                    return True
        child, parent = parent, parents.get(parent)
    return False


@dataclass
class _Unit:
    """A piece of a module that runs as a whole: its top level, or one function, or one class (its methods)."""
    imports: list = field(default_factory=list)     # (module, name or None) of the non-optional imports
    names: set = field(default_factory=set)         # every name and attribute it mentions


def _units(source: str) -> dict[str, _Unit]:
    """The units of a module: "<module>" (statements outside functions and classes) and one per top-level
    function or class, each with its imports (at any depth inside it) and the names it mentions."""
    import ast

    tree = ast.parse(source)
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    units: dict[str, _Unit] = {"<module>": _Unit()}
    # names bound by imports (module aliases such as `ta` in `from promolake.ml import train_als as ta`): an
    # attribute counts as a mention only on one of these (ta.tune), not on a value (cfg.als.tune)
    aliases = {"self", "cls"} | {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                                 if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}

    def visit(node, unit: _Unit, names: bool = True) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import) and not _optional(sub, parents):
                unit.imports += [(a.name, None) for a in sub.names]
            elif isinstance(sub, ast.ImportFrom) and sub.level == 0 and sub.module and not _optional(sub, parents):
                unit.imports += [(sub.module, a.name) for a in sub.names]
            elif names and isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Store):   # x = ... defines x
                unit.names.add(sub.id)
            elif names and isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and \
                    sub.value.id in aliases:
                unit.names.add(sub.attr)

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            units[node.name] = _Unit()
            visit(node, units[node.name])
            # decorators and base classes run when the module is imported
            for expr in getattr(node, "decorator_list", []) + getattr(node, "bases", []):
                visit(expr, units["<module>"])
        else:
            # the top level's other statements run too, but a function they merely name (a table of stages,
            # a default argument) runs only when something calls it: their imports count, their names do not
            visit(node, units["<module>"], names=False)
    return units


def stage_imports(package_root: Path, stage: str) -> set[str]:
    """Top-level names of the third-party modules a `promolake <stage>` run can import.

    Follows what runs: promolake.cli's main and promolake.pipeline's run_<stage>; a promolake
    module reached is imported (its top level runs); a function or class of a reached module runs when
    reached code names it (imports it, or mentions it as a name or attribute). Imports guarded by
    `except ImportError` are optional and not counted. An over-approximation by names, not types."""
    import sys

    root = Path(package_root)
    stdlib = set(sys.stdlib_module_names)
    parsed: dict[str, dict[str, _Unit] | None] = {}

    def units_of(module: str) -> dict[str, _Unit] | None:
        if module not in parsed:
            rel = Path(*module.split(".")[1:])
            path = next((c for c in (root / rel.with_suffix(".py"), root / rel / "__init__.py") if c.is_file()), None)
            parsed[module] = _units(path.read_text()) if path is not None else None
        return parsed[module]

    function = f"run_{stage.replace('-', '_')}"
    if function not in (units_of("promolake.pipeline") or {}):
        raise ValueError(f"promolake.pipeline has no {function} for stage {stage!r}")
    third: set[str] = set()
    # cli.run_stage dispatches on the stage name to pipeline.run_<stage>: that one call is followed, not all
    reached: set[tuple[str, str]] = {("promolake.cli", "run_stage")}
    todo = [("promolake.cli", "<module>"), ("promolake.cli", "main"), ("promolake.pipeline", "<module>"),
            ("promolake.pipeline", function)]
    mentioned: set[str] = set()
    while todo:
        module, name = todo.pop()
        units = units_of(module)
        if (module, name) in reached or units is None or name not in units:
            continue
        reached.add((module, name))
        if name != "<module>":
            todo.append((module, "<module>"))
        unit = units[name]
        for target, imported in unit.imports:
            head = target.split(".")[0]
            if head in stdlib or head == "__future__":
                continue
            if head != "promolake":
                third.add(head)
                continue
            parts = target.split(".")
            todo += [(".".join(parts[:n]), "<module>") for n in range(2, len(parts) + 1)]
            if imported is not None:
                todo += [(target, imported), (f"{target}.{imported}", "<module>")]
        new = unit.names - mentioned
        mentioned |= new
        for m in {m for m, _ in reached}:
            todo += [(m, n) for n in units_of(m) or {} if n in mentioned]
        if new:       # a name mentioned now may be a unit of a module reached before
            todo += [(m, n) for m in list(parsed) for n in (parsed[m] or {}) if n in new]
    return third
