"""Tiny silver tables for gold tests: rows given as dicts, unnamed columns null, declared schema."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from promolake.common.tables import spec


@pytest.fixture(scope="session")
def silver(spark):
    def build(name: str, rows: list[dict]):
        schema = spec(f"silver.{name}").schema
        cols = [f.name for f in schema.fields]
        for r in rows:
            unknown = set(r) - set(cols)
            assert not unknown, f"silver.{name} has no columns {unknown}"
        fixed = []
        for r in rows:
            fixed.append(tuple(Decimal(str(r[c])) if isinstance(r.get(c), (int, float)) and
                               schema[c].dataType.typeName() == "decimal" else r.get(c) for c in cols))
        return spark.createDataFrame(fixed, schema)

    return build


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
