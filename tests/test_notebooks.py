"""Notebooks are Databricks source files that compile as Python and call the library, never copy it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


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


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2
