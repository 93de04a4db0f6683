"""Bad input, property-based: random landing folders (malformed values, wrong types, huge strings,
unicode and control characters, duplicate keys across files, out-of-order and future timestamps, extra
and missing columns, empty files and folders, three file formats) go through the real ingestion. For
every case: no crash, every record is either accepted into silver or quarantined with a known rule,
counts balance per source, and what silver accepted keeps the contract.

CI runs a few examples (each is a full ingestion); PROMOLAKE_FUZZ_EXAMPLES=200 runs the long version."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from promolake.common.config import load_config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.landing.contract import EVENT_TYPES, SOURCES
from promolake.silver import ingest
from promolake.silver.rules import RULE_DOCS

pytestmark = [pytest.mark.spark, pytest.mark.slow]

EXAMPLES = int(os.environ.get("PROMOLAKE_FUZZ_EXAMPLES", "3"))
CONF = Path(__file__).resolve().parents[2] / "conf"
FUZZED = ("users", "items", "events", "reviews")
MAX_TEXT = 500   # ingest.max_text_length in these tests, so that "huge" strings are cheap

KNOWN_RULE = re.compile("^(" + "|".join(
    re.escape(r).replace(re.escape("<column>"), "[a-z_]+") for r in RULE_DOCS) + ")$")

nasty_text = st.one_of(
    st.text(max_size=12),                                           # any unicode, control characters included
    st.sampled_from(["", " ", "\t", "NULL", "null", "None", "NaN", "\u0000", "\u202e", "💥", "é", "\r\n",
                     "O'Brien; DROP TABLE silver.users; --", "a,b", '"quoted"']),
    st.integers(-3, 3).map(lambda n: "x" * (MAX_TEXT + 10 + n)),   # longer than ingest.max_text_length
)
keys = st.sampled_from(["K1", "K2", "K3", "K4"])                   # few values: duplicate keys across files
timestamps = st.one_of(
    st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2025, 12, 31)).map(lambda t: t.isoformat() + "Z"),
    st.sampled_from(["2099-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1999-12-31", "2025-02-30T10:00:00",
                     "yesterday", "", "2025-01-01 10:00:00+05:00"]),
    st.integers(-10**6, 2 * 10**9),
    st.none())
numbers = st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True), nasty_text,
                    st.sampled_from(["12.50", "1e3", "-0", "0x1F", "1,5"]), st.none())


def record(source: str):
    """One landing record of a source: contract columns with hostile values, some dropped, extras added."""
    fields = {
        "users": {"user_id": st.one_of(keys, nasty_text), "signup_ts": timestamps, "region": nasty_text,
                  "age_band": nasty_text, "gender": nasty_text, "email": nasty_text},
        "items": {"item_id": st.one_of(keys, nasty_text), "title": nasty_text, "category": nasty_text,
                  "list_price": numbers, "unit_cost": numbers, "created_ts": timestamps, "description": nasty_text},
        "events": {"event_id": st.one_of(keys, nasty_text), "user_id": st.one_of(keys, nasty_text),
                   "item_id": st.one_of(keys, st.none()), "event_type": st.one_of(st.sampled_from(EVENT_TYPES),
                                                                                   nasty_text),
                   "event_ts": timestamps, "quantity": numbers, "unit_price": numbers, "discount_amount": numbers,
                   "order_id": nasty_text, "query_text": nasty_text},
        "reviews": {"review_id": st.one_of(keys, nasty_text), "user_id": keys, "item_id": keys,
                    "rating": numbers, "review_text": nasty_text, "review_ts": timestamps},
    }[source]
    present = st.fixed_dictionaries({}, optional=fields)           # any subset of the columns
    extra = st.dictionaries(st.sampled_from(["extra_col", "Über", "col with space", "_rules"]),
                            nasty_text, max_size=2)
    return st.tuples(present, extra).map(lambda pe: {**pe[1], **pe[0]})


def landing(source: str):
    """A source folder: 0..3 files of random formats (0 = an empty folder), each with 0..8 records."""
    return st.lists(st.tuples(st.sampled_from(["jsonl", "csv", "parquet"]), st.lists(record(source), max_size=8)),
                    max_size=3)


def write(folder: Path, files: list[tuple[str, list[dict]]]) -> int:
    """Write the files; returns how many records they hold."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for n, (fmt, rows) in enumerate(files):
        path = folder / f"part-{n}.{fmt}"
        total += len(rows)
        if fmt == "jsonl":
            path.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows),
                            encoding="utf-8")
            continue
        columns = sorted({c for r in rows for c in r})
        as_text = pd.DataFrame([{c: (None if r.get(c) is None else str(r.get(c))) for c in columns} for r in rows],
                               columns=columns, dtype=object)
        if fmt == "csv":
            if rows and not columns:
                total -= len(rows)          # a CSV cannot hold records without columns: nothing is written
                path.write_text("", encoding="utf-8")
            else:
                as_text.to_csv(path, index=False, encoding="utf-8")
        else:
            if not columns:
                total -= len(rows)
                as_text = pd.DataFrame({"_empty": pd.Series([], dtype=object)})
            as_text.to_parquet(path, index=False)
    return total


def contract_holds(lake: Lake, source: str) -> None:
    spec = SOURCES[source]
    df = lake.read(f"silver.{source}")
    for f in spec.fields:
        if f.required and f.name in df.columns:
            assert df.where(F.col(f.name).isNull()).count() == 0, f"{source}.{f.name} null in silver"
    assert df.count() == df.select(*spec.keys).distinct().count(), f"duplicate keys in silver.{source}"
    if source == "events":
        assert df.where(~F.col("event_type").isin(*EVENT_TYPES)).count() == 0
        assert df.where((F.col("event_type") == "purchase") & ~(F.col("quantity") > 0)).count() == 0
        assert df.where(F.col("event_ts") > F.current_timestamp() + F.expr("INTERVAL 25 HOURS")).count() == 0
    if source == "reviews":
        assert df.where(~F.col("rating").between(1, 5)).count() == 0


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
@given(st.fixed_dictionaries({s: landing(s) for s in FUZZED}))
def test_every_record_is_accepted_or_quarantined_and_counts_balance(spark, folders):
    home = Path(tempfile.mkdtemp(prefix="fuzz-")) / "lakehouse"
    try:
        expected = {s: write(home / "landing" / s, files) for s, files in folders.items()}
        cfg = load_config("local", overrides=[f"ingest.sources=[{', '.join(FUZZED)}]",
                                              f"ingest.max_text_length={MAX_TEXT}"], conf_dir=CONF,
                          environ={"PROMOLAKE_HOME": str(home), "PROMOLAKE_PII_SALT": "fuzz"})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PROMOLAKE_PII_SALT", "fuzz")
            report = ingest.run_ingest(spark, cfg, report=StageReport("ingest", out=io.StringIO()))
        lake = Lake(spark, cfg.lake)
        got = {r["source"]: r for r in report.rows}
        for source in FUZZED:
            r = got.get(source, {"read": 0, "accepted": 0, "quarantined": 0})
            assert r["read"] == expected[source], (source, r, expected[source])
            assert r["read"] == r["accepted"] + r["quarantined"], (source, r)
            if lake.exists(f"silver.{source}"):
                assert lake.read(f"silver.{source}").count() == r["accepted"], source
                contract_holds(lake, source)
        if lake.exists("silver.quarantine"):
            rules = {row.rule for row in lake.read("silver.quarantine").select("rule").distinct().collect()}
            assert all(rule and KNOWN_RULE.match(rule) for rule in rules), rules
            counted = {row.source: row["count"] for row in lake.read("silver.quarantine").groupBy("source").count()
                       .collect()}
            assert counted == {s: got[s]["quarantined"] for s in FUZZED if got.get(s, {}).get("quarantined")}
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)
