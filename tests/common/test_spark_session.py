"""Session settings the pipeline relies on, whatever the Spark version's defaults."""
from __future__ import annotations

import pytest

from promolake.common.spark import _session_settings

pytestmark = pytest.mark.spark


def test_malformed_values_cast_to_null_even_where_ansi_mode_is_the_default(spark):
    """Spark 4 (Databricks Runtime 17.3 LTS and later) starts sessions in ANSI mode, where a malformed cast
    raises instead of giving null (the silver rules quarantine those nulls) and x / 0 raises."""
    before = spark.conf.get("spark.sql.ansi.enabled")
    try:
        spark.conf.set("spark.sql.ansi.enabled", "true")          # as a Spark 4 cluster starts
        _session_settings(spark)
        row = spark.sql("SELECT CAST('not a number' AS INT) AS n, CAST('2025-13-45' AS TIMESTAMP) AS ts, "
                        "1 / 0 AS q").first()
        assert (row.n, row.ts, row.q) == (None, None, None)
    finally:
        spark.conf.set("spark.sql.ansi.enabled", before)
