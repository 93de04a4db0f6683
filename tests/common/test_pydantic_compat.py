"""The configuration loads the same on pydantic 1.10 (what Databricks Runtime 15.4 LTS ML ships) as on pydantic 2:
each check runs in a fresh interpreter where `pydantic` is pydantic 2's bundled 1.10 API (pydantic.v1)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = r"""
import json, sys
if sys.argv[1] == "v1":
    import pydantic.v1
    sys.modules["pydantic"] = pydantic.v1
from promolake.common import pydantic_compat
from promolake.common.config import ConfigError, load_config

out = {"pydantic_2": pydantic_compat.PYDANTIC_2, "configs": {}, "errors": {}}
environ = {"PROMOLAKE_HOME": "/tmp/lake"}
for env in ("local", "dev", "staging", "prod"):
    out["configs"][env] = load_config(env, environ=environ).model_dump(mode="json")
cfg = load_config("local", environ=environ)
copy = cfg.model_copy(update={"als": cfg.als.model_copy(update={"tune": False})})
out["copy"] = [copy.als.tune, cfg.als.tune]
try:
    cfg.als.tune = False
    out["frozen"] = False
except Exception:
    out["frozen"] = True
bad = {
    "unknown": ["als.rnak=3"],
    "bound": ["world.users=3"],
    "uc_without_catalog": ["lake.mode=unity_catalog", "lake.catalog=null"],
    "offer": ["promotion.campaigns={C1: {offers: [{offer_id: O1, offer_type: gift, value: 5}]}}"],
    "pattern": ["promotion.campaigns={C1: {offers: [{offer_id: 'bad id', offer_type: percent_off, value: 5}]}}"],
    "identifier": ["lake.schemas={silver: 'a-b'}"],
    "gate": ["validation.uplift.minimums={nope: 1}"],
}
for name, overrides in bad.items():
    try:
        load_config("local", overrides=overrides, environ=environ)
        out["errors"][name] = None
    except ConfigError as err:
        out["errors"][name] = str(err)
print(json.dumps(out))
"""


def load_with(api: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROGRAM, api], capture_output=True, text=True, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "libs")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_environment_loads_the_same_on_pydantic_1_and_2():
    v2, v1 = load_with("v2"), load_with("v1")
    assert v2["pydantic_2"] and not v1["pydantic_2"]
    assert v1["configs"] == v2["configs"]
    assert v1["configs"]["prod"]["lake"] == {**v1["configs"]["prod"]["lake"], "mode": "unity_catalog",
                                            "catalog": "promolake_prod"}
    assert v1["copy"] == v2["copy"] == [False, True]
    assert v1["frozen"] and v2["frozen"]


def test_bad_settings_are_refused_with_their_key_on_pydantic_1_and_2():
    for result in (load_with("v2"), load_with("v1")):
        errors = result["errors"]
        assert all(errors.values()), errors
        assert "als.rnak: unknown key (misspelt?)" in errors["unknown"]
        assert "world.users" in errors["bound"]
        assert "lake.mode unity_catalog needs lake.catalog" in errors["uc_without_catalog"]
        assert "gift needs min_spend" in errors["offer"]
        assert "offer_id" in errors["pattern"]
        assert "not a plain identifier" in errors["identifier"]
        assert "unknown metrics ['nope']" in errors["gate"]
