"""docs/tables.md documents exactly the declared tables and columns."""
from __future__ import annotations

from pathlib import Path

from promolake.common.tables import TABLES
from promolake.common.tables_doc import tables_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "tables.md"


def test_doc_matches_declared_tables():
    assert DOC.read_text() == tables_markdown(), "regenerate: python -m promolake.common.tables_doc > docs/tables.md"


def test_every_column_has_a_meaning():
    undocumented = [f"{t.logical_name}.{f.name}" for t in TABLES.values() for f in t.fields if len(f.doc) < 5]
    assert undocumented == []


def test_every_layer_has_a_section():
    # a table whose layer has no section would be missing from the docs without any other test failing
    from promolake.common.tables_doc import LAYERS

    assert {t.layer for t in TABLES.values()} <= set(LAYERS)
