"""Data-quality gates for gold tables: non-null and unique keys, value ranges, extra invariants and the
row-count change against the previous as_of. All checks of a table run in one aggregation pass."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from promolake.common.tables import TableSpec


class DataQualityError(RuntimeError):
    """A gold table failed its data-quality checks; the table was not written."""


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    passed: bool
    observed: float | None
    expectation: str
    message: str


@dataclass(frozen=True)
class Expectations:
    """What a table must satisfy besides non-null unique keys.

    ranges: column -> (low, high), either may be None; nulls are allowed (not_null lists columns that
    must not be null). invariants: check name -> (Column that is true on a VIOLATING row, description).
    """

    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    not_null: tuple[str, ...] = ()
    invariants: dict[str, tuple[object, str]] = field(default_factory=dict)
    min_rows: int = 1


def _range_violation(col: str, low: float | None, high: float | None) -> Column:
    c = F.col(col)
    cond = F.lit(False)
    if low is not None:
        cond = cond | (c < low)
    if high is not None:
        cond = cond | (c > high)
    return F.coalesce(cond, F.lit(False))


def run_checks(df: DataFrame, table: TableSpec, expect: Expectations, previous_rows: int | None,
               tolerance: float) -> list[CheckResult]:
    """Run every check on df (one Spark job) and return one CheckResult per check.

    previous_rows: rows of the comparable earlier as_of (None: nothing to compare with).
    """
    keys = list(table.keys)
    tests: dict[str, Column] = {f"not_null:{c}": F.col(c).isNull() for c in (*keys, *expect.not_null)}
    tests.update({f"range:{c}": _range_violation(c, lo, hi) for c, (lo, hi) in expect.ranges.items()})
    tests.update({name: F.coalesce(cond, F.lit(False)) for name, (cond, _) in expect.invariants.items()})
    aggs = [F.count(F.lit(1)).alias("_rows"), F.count_distinct(F.struct(*keys)).alias("_keys")]
    aggs += [F.sum(F.when(cond, 1).otherwise(0)).alias(f"_c{i}") for i, cond in enumerate(tests.values())]
    row = df.agg(*aggs).first()
    rows, distinct = row["_rows"], row["_keys"]
    results = [CheckResult("min_rows", rows >= expect.min_rows, float(rows), f">= {expect.min_rows} rows",
                           f"{rows:,} rows"),
               CheckResult("unique_key", rows == distinct, float(rows - distinct), f"({', '.join(keys)}) unique",
                           f"{rows - distinct:,} duplicate key rows")]
    for i, name in enumerate(tests):
        bad = row[f"_c{i}"] or 0
        results.append(CheckResult(name, bad == 0, float(bad), _describe(name, expect), f"{bad:,} violating rows"))
    results.append(row_count_change(rows, previous_rows, tolerance))
    return results


def _describe(name: str, expect: Expectations) -> str:
    kind, _, col = name.partition(":")
    if kind == "not_null":
        return f"{col} never null"
    if kind == "range":
        lo, hi = expect.ranges[col]
        return f"{col} in [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
    return expect.invariants[name][1]


def row_count_change(rows: int, previous_rows: int | None, tolerance: float) -> CheckResult:
    """Pass when there is nothing to compare with or |rows / previous - 1| <= tolerance."""
    expectation = f"|change vs previous as_of| <= {tolerance:.0%}"
    if previous_rows is None:
        return CheckResult("row_count_change", True, None, expectation, "no recent earlier as_of to compare with")
    change = (rows - previous_rows) / previous_rows if previous_rows else (0.0 if rows == 0 else float("inf"))
    ok = abs(change) <= tolerance
    return CheckResult("row_count_change", ok, change, expectation,
                       f"{rows:,} rows vs {previous_rows:,} at the previous as_of ({change:+.1%})")


def results_frame(spark, table_name: str, as_of: dt.date, results: list[CheckResult], run_id: str) -> DataFrame:
    """ops.dq_results rows for one table and as_of."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [(table_name, as_of, r.check_name, r.passed, r.observed, r.expectation, r.message, run_id, now)
            for r in results]
    return spark.createDataFrame(rows, "table_name string, as_of date, check_name string, passed boolean, "
                                       "observed double, expectation string, message string, run_id string, "
                                       "checked_at timestamp")


def failure_message(table_name: str, as_of: dt.date, results: list[CheckResult]) -> str:
    failed = [r for r in results if not r.passed]
    lines = [f"{table_name} as of {as_of} failed {len(failed)} data-quality check(s); the table was not written:"]
    lines += [f"  - {r.check_name}: {r.message} (expected {r.expectation})" for r in failed]
    lines.append("  Results are in ops.dq_results; set features.quality.fail_on_error=false to write anyway.")
    return "\n".join(lines)
