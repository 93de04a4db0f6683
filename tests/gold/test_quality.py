"""Data-quality gates: each check counts exactly the violating rows, and the row-count check compares
with the previous as_of within the tolerance."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from promolake.common.tables import spec
from promolake.gold.quality import Expectations, failure_message, row_count_change, run_checks

pytestmark = pytest.mark.spark


def test_checks_count_violations(spark):
    df = spark.createDataFrame(
        [("u1", "2026-01-01", 0.5, "a"), ("u1", "2026-01-01", 1.5, "b"), (None, "2026-01-01", -0.1, None),
         ("u2", "2026-01-01", None, "c")],
        "user_id string, as_of string, share double, text string").withColumn("as_of", F.to_date("as_of"))
    expect = Expectations(ranges={"share": (0.0, 1.0)}, not_null=("text",),
                          invariants={"short_text": (F.length("text") > 1, "text of one character")})
    got = {r.check_name: (r.passed, r.observed) for r in run_checks(df, spec("gold.user_profile"), expect, 4, 0.25)}
    assert got == {"min_rows": (True, 4.0), "unique_key": (False, 1.0), "not_null:user_id": (False, 1.0),
                   "not_null:as_of": (True, 0.0), "not_null:text": (False, 1.0), "range:share": (False, 2.0),
                   "short_text": (True, 0.0), "row_count_change": (True, 0.0)}


def test_row_count_change_against_previous_as_of():
    assert row_count_change(100, None, 0.25).passed
    assert row_count_change(125, 100, 0.25).passed
    bad = row_count_change(70, 100, 0.25)
    assert not bad.passed and bad.observed == pytest.approx(-0.3) and "-30.0%" in bad.message
    assert not row_count_change(5, 0, 0.25).passed


def test_failure_message_names_each_failed_check():
    msg = failure_message("gold.t", dt.date(2026, 1, 1),
                          [row_count_change(70, 100, 0.25), row_count_change(100, 100, 0.25)])
    assert "gold.t as of 2026-01-01 failed 1 data-quality check" in msg and "row_count_change" in msg
    assert "ops.dq_results" in msg
