"""Security hygiene checked on the repository itself: pinned dependencies and a lock file, no secrets in
config or code, secrets from the environment or a secret scope, run_as and permissions in the bundle,
and SQL built only from validated identifiers."""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from promolake.common.config import ENVIRONMENTS, ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def requirements(lists: tuple[str, ...] = ("LOCAL", "TRAIN", "DEV")) -> list[str]:
    """The requirement strings of setup.py's lists: LOCAL, TRAIN, DEV (the local environment, pinned) or BASE
    (what the wheel installs on a cluster: ranges the target runtimes satisfy)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List) and any(
                isinstance(t, ast.Name) and t.id in lists for t in node.targets):
            out += [ast.literal_eval(e) for e in node.value.elts]
    return out


def test_every_dependency_is_pinned_and_locked():
    reqs = requirements()
    assert len(reqs) > 20
    locked = dict(line.split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    locked = {k.lower().replace("_", "-"): v.strip() for k, v in locked.items()}
    for req in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", req), f"{req} is not pinned with =="
        name, version = req.split("==")
        name = name.split("[")[0].lower().replace("_", "-")
        assert locked.get(name) == version, f"{req}: constraints.txt has {locked.get(name)}"


def test_the_locked_environment_satisfies_the_wheels_own_requirements():
    """The ranges the wheel declares for clusters (BASE) hold for the pinned local environment too, so the
    lock file stays the one reproducible set."""
    from packaging.requirements import Requirement

    locked = {k.lower().replace("_", "-"): v.strip() for k, v in (
        line.split("==", 1) for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#"))}
    base = requirements(("BASE",))
    assert len(base) > 5
    for text in base:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in locked, f"{text}: not in constraints.txt"
        assert req.specifier.contains(locked[name]), f"{text}: constraints.txt has {locked[name]}"


SECRET_PATTERNS = {
    "Databricks token": re.compile(r"dapi[0-9a-f]{32}"),
    "AWS access key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "password or token literal": re.compile(
        r"""(?i)\b(password|passwd|api_key|secret|token|salt)\b\s*[:=]\s*["'][^"'\s$]{6,}["']"""),
}


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / p for p in out.splitlines() if not p.startswith(("tests/", "docs/")) and (REPO / p).is_file()]


def test_no_secrets_in_config_or_code():
    files = tracked_files()
    assert any(p.name == "base.yml" for p in files)
    for path in files:
        if path.suffix not in (".py", ".yml", ".yaml", ".md", ".cfg", ".ini", ".toml", ".txt", ".sh", "") :
            continue
        text = path.read_text(errors="ignore")
        for what, pattern in SECRET_PATTERNS.items():
            hit = pattern.search(text)
            assert hit is None, f"{path.relative_to(REPO)}: looks like a {what}: {hit.group(0)[:40]}"


def test_a_secret_in_a_config_file_is_refused(tmp_path):
    for name in ("base.yml", "local.yml"):
        (tmp_path / name).write_text((REPO / "conf" / name).read_text())
    (tmp_path / "local.yml").write_text((tmp_path / "local.yml").read_text() + "\npii:\n  salt: pepper\n")
    with pytest.raises(ConfigError, match="pii.salt: unknown key"):
        load_config("local", conf_dir=tmp_path, environ={"PROMOLAKE_HOME": str(tmp_path)})


@pytest.mark.parametrize("env", [e for e in ENVIRONMENTS if e != "local"])
def test_workspace_environments_take_the_salt_from_a_secret_scope(env):
    pii = load_config(env, environ={}).pii
    assert pii.secret_scope and pii.secret_key and pii.local_salt_file is None


@pytest.mark.parametrize("target", ["staging", "prod"])
def test_shared_targets_run_as_a_service_principal_with_permissions(target):
    from promolake.common.bundle import load_bundle, resolve

    bundle = resolve(load_bundle(REPO), target)
    assert bundle.get("run_as", {}).get("service_principal_name")
    levels = {p["level"] for p in bundle.get("permissions", [])}
    assert {"CAN_MANAGE", "CAN_VIEW"} <= levels


def test_sql_is_built_only_from_validated_identifiers():
    """Every f-string handed to spark.sql / F.expr interpolates only _quote(...) (validated, back-quoted
    identifiers), contract column names quoted in code, or type names: never a value from outside."""
    allowed_names = {"c", "dtype"}          # promolake.silver.rules: contract columns (back-quoted), types
    checked = 0
    for path in (REPO / "libs" / "promolake").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("sql", "expr", "selectExpr") and node.args):
                continue
            arg = node.args[0]
            if not isinstance(arg, ast.JoinedStr):
                continue
            checked += 1
            for part in arg.values:
                if not isinstance(part, ast.FormattedValue):
                    continue
                v = part.value
                ok = (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "_quote") or (
                    isinstance(v, ast.Name) and v.id in allowed_names) or (
                    isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute)
                    and isinstance(v.func.value, ast.Name) and v.func.value.id in allowed_names)
                assert ok, f"{path.relative_to(REPO)}:{node.lineno}: SQL text built from {ast.unparse(v)}"
    assert checked >= 3
