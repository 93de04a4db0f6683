"""Notebooks are Databricks source files that call the library, never copy it, and each one runs top to
bottom on this machine (promolake.notebook stands in for dbutils.widgets and display) against the small
trained world of tests/conftest.py."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from promolake.notebook import LocalWidgets, conf_overrides, run_notebook
from tests.conftest import AS_OF, WORLD, ensure_uplift_champion

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))
FOR_DATA_ENGINEERS = ["01_explore_lake.py", "02_profiles_and_trends.py", "03_recommendations.py",
                      "04_promotion_campaign.py", "05_model_registry.py"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_databricks_source_that_compiles(path):
    text = path.read_text()
    assert text.startswith("# Databricks notebook source\n")
    assert "# COMMAND ----------" in text
    tree = ast.parse(text, filename=str(path))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert any(m.startswith("promolake") for m in imported), "notebooks call the library"
    defined = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert defined == [], "logic belongs in libs/promolake, not in notebooks"
    assert "dbutils.widgets.dropdown(\"env\"" in text, "parameters are widgets"


def test_the_data_engineers_notebooks_are_there():
    assert set(FOR_DATA_ENGINEERS) <= {p.name for p in NOTEBOOKS}


def test_widgets_stand_in_refuses_what_databricks_would():
    w = LocalWidgets({"env": "qa", "budget": "5"})
    w.text("budget", "100")
    assert w.get("budget") == "5"
    with pytest.raises(ValueError, match="'qa' is not one of"):
        w.dropdown("env", "dev", ["local", "dev"])
    with pytest.raises(ValueError, match="no widget named 'users'"):
        w.get("users")
    assert conf_overrides("a.b=1; c.d=x\n e=2;") == ["a.b=1", "c.d=x", "e=2"]
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        conf_overrides("a.b=1; oops")


def test_a_misspelt_widget_is_reported(tmp_path):
    nb = tmp_path / "nb.py"
    nb.write_text("# Databricks notebook source\ndbutils.widgets.text('budget', '1')\n")
    with pytest.raises(ValueError, match=r"no widgets named \['budjet'\]"):
        run_notebook(str(nb), {"budjet": "2"})


@pytest.fixture(scope="module")
def run(trained):
    """run(name, **widgets): the notebook run against the trained world (env local, the world's config)."""
    cfg, _, _ = trained
    mp = pytest.MonkeyPatch()
    mp.setenv("PROMOLAKE_HOME", cfg.lake.root)
    mp.setenv("PROMOLAKE_PII_SALT", "test-salt")
    folder = Path(__file__).resolve().parents[1] / "notebooks"

    def run_(name: str, **widgets: str) -> dict:
        return run_notebook(str(folder / name), {"env": "local", "conf": ";".join(WORLD), **widgets})

    yield run_
    mp.undo()


@pytest.mark.spark
@pytest.mark.slow
def test_notebooks_run_top_to_bottom_on_a_small_lake(run, trained):
    cfg, lake, _ = trained
    g = run("01_explore_lake.py")
    assert g["sizes"].where("table = 'silver.events'").first()["rows"] == lake.read("silver.events").count()
    assert g["_figures"] >= 1

    g = run("02_profiles_and_trends.py", run_features="yes", as_of=str(AS_OF))
    assert g["as_of"] == AS_OF and g["seg"]["users"].sum() > 0 and g["_figures"] >= 2

    g = run("03_recommendations.py")
    assert g["as_of"] == AS_OF and len(g["examples"]) >= 2 and not g["pdf"].empty and g["_figures"] >= 1

    ensure_uplift_champion(trained)
    g = run("04_promotion_campaign.py", budget="40")
    assert g["assignments"].count() > 0
    assert g["curve"]["budget"].max() == pytest.approx(80.0)     # 0 .. twice the budget
    given = g["assignments"].where("offer_id != 'none'").groupBy().sum("expected_cost").first()[0]
    assert given <= 40 + 1e-6

    g = run("05_model_registry.py", action="validate", model="als")
    assert set(g["versions"]["model"]) >= {cfg.als.model_name, cfg.promotion.model_name}
    assert "champion" in ", ".join(g["versions"]["aliases"])
