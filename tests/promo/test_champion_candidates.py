"""Scoring takes item candidates written by the @champion models only: the latest date on or before
as_of whose rows came from the champion ALS version alone or re-blended with the champion text version."""
from __future__ import annotations

import datetime as dt

import pytest

from promolake.common.config import LakeConf
from promolake.common.lake import Lake
from promolake.common.tables import spec
from promolake.promo.scoring import latest_candidates

pytestmark = pytest.mark.spark
D1, D2, D3 = dt.date(2025, 3, 1), dt.date(2025, 3, 8), dt.date(2025, 3, 15)


@pytest.fixture
def lake(spark, tmp_path):
    lake = Lake(spark, LakeConf(root=str(tmp_path / "lake")))
    schema = spec("ml.user_candidates").schema
    rows = []
    for day, version in ((D1, "1"), (D2, "als:2+text:1"), (D3, "als:3+text:2")):
        row = {f.name: None for f in schema.fields}
        row.update(user_id="U1", as_of=day, item_id="I1", rank=1, score=1.0, model_version=version,
                   cold_start_user=False, previously_bought=False, sources=["als"])
        rows.append(tuple(row[f.name] for f in schema.fields))
    lake.upsert(spark.createDataFrame(rows, schema), "ml.user_candidates")
    return lake


def day_of(df):
    return None if df is None else df.first().as_of


@pytest.mark.parametrize("als,text,as_of,expected", [
    ("1", None, D3, D1),           # ALS alone: its own rows, even though later dates exist
    ("2", "1", D3, D2),            # ALS re-blended with the champion text version
    ("2", None, D3, None),         # the date's rows carry a text model that is not champion
    ("3", "2", D2, None),          # the champions' rows are after as_of
    ("3", "2", D3, D3),
    (None, "2", D3, None),         # no ALS champion: no item candidates
])
def test_only_the_champions_candidates_are_used(lake, als, text, as_of, expected):
    assert day_of(latest_candidates(lake, as_of, als, text)) == expected
