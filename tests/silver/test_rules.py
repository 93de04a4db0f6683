"""Each contract rule on tiny hand-made bronze rows: the rule a record breaks is exactly the one expected."""
from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from promolake.common.tables import spec
from promolake.landing.contract import SOURCES
from promolake.silver.rules import (RuleSettings, accepted_rows, apply_rules, compact, mark_duplicates,
                                    mark_orphans, quarantine_rows)

pytestmark = pytest.mark.spark

SETTINGS = RuleSettings(max_text_length=200, min_timestamp=dt.datetime(2000, 1, 1),
                        max_timestamp=dt.datetime(2026, 1, 1))


def bronze(spark, source: str, rows: list[dict]):
    """Bronze rows for `source`: given text values, everything else null, unique _bronze_id per row."""
    names = spec(f"bronze.{source}").schema.names
    data = []
    for n, r in enumerate(rows):
        row = {c: None for c in names}
        row.update({"_source_file": "f.csv", "_file_mtime": dt.datetime(2025, 1, 1), "_bronze_id": f"b{n:03d}",
                    "_ingest_run_id": "r1"})
        row.update(r)
        data.append(tuple(row[c] for c in names))
    return spark.createDataFrame(data, spec(f"bronze.{source}").schema)


def rules_by_case(df, case_col: str):
    return {r[case_col]: list(r["_rules"]) for r in df.select(case_col, "_rules").collect()}


EVENT = dict(event_id="E", user_id="U1", item_id="I1", event_type="view", event_ts="2025-02-01T10:00:00Z")
EVENT_CASES = [
    # (event_id, changes, expected rules)
    ("ok_view", {}, []),
    ("ok_search", dict(item_id=None, event_type="search", query_text="red mug"), []),
    ("ok_purchase", dict(event_type="purchase", quantity="2", unit_price="9.50", order_id="O1"), []),
    ("ok_upper_type", dict(event_type=" VIEW "), []),
    ("ok_epoch", dict(event_ts="1738404000"), []),
    ("ok_offset", dict(event_ts="2025-02-01T12:00:00+02:00"), []),
    ("ok_epoch_ms", dict(event_ts="1738404000123"), []),
    ("ok_epoch_ns", dict(event_ts="1738404000123456789"), []),
    ("ok_int_as_float", dict(event_type="purchase", quantity="2.0", unit_price="1"), []),
    ("no_user", dict(user_id="  "), ["missing_user_id"]),
    ("no_type", dict(event_type=None), ["missing_event_type"]),
    ("bad_type", dict(event_type="click"), ["unknown_event_type"]),
    ("bad_ts", dict(event_ts="yesterday"), ["unparsable_event_ts"]),
    ("future_ts", dict(event_ts="2030-01-01T00:00:00Z"), ["timestamp_in_future"]),
    ("old_ts", dict(event_ts="1999-12-31T23:59:59Z"), ["timestamp_too_old"]),
    ("no_item", dict(item_id=None), ["missing_item_id"]),
    ("zero_qty", dict(event_type="purchase", quantity="0", unit_price="1"), ["non_positive_quantity"]),
    ("frac_qty", dict(event_type="purchase", quantity="1.5", unit_price="1"), ["unparsable_quantity"]),
    ("no_price", dict(event_type="purchase", quantity="1"), ["missing_unit_price"]),
    ("no_qty", dict(event_type="purchase", unit_price="1"), ["missing_quantity"]),
    ("neg_view_qty", dict(quantity="-1"), ["non_positive_quantity"]),
    ("neg_price", dict(event_type="purchase", quantity="1", unit_price="-1"), ["negative_price"]),
    ("neg_discount", dict(discount_amount="-0.01"), ["negative_discount"]),
    ("bad_price", dict(unit_price="12,50"), ["unparsable_unit_price"]),
    ("too_long", dict(query_text="x" * 201), ["text_too_long"]),
    ("two_rules", dict(user_id=None, event_type="click"), ["missing_user_id", "unknown_event_type"]),
]


def test_event_rules(spark):
    rows = [{**EVENT, **changes, "event_id": case} for case, changes, _ in EVENT_CASES]
    got = rules_by_case(apply_rules(bronze(spark, "events", rows), SOURCES["events"], SETTINGS), "event_id")
    assert got == {case: expected for case, _, expected in EVENT_CASES}


def test_corrupt_record_is_quarantined_first(spark):
    df = bronze(spark, "events", [{"_corrupt_record": "{not json"}])
    got = apply_rules(df, SOURCES["events"], SETTINGS).first()["_rules"]
    assert got[0] == "unparsable_record"


@pytest.mark.parametrize("source,base,cases", [
    ("items", dict(item_id="I", title="Mug", category="kitchen", list_price="9.99"), [
        ("ok", {}, []), ("zero_price", dict(list_price="0"), ["non_positive_list_price"]),
        ("neg_cost", dict(unit_cost="-1"), ["negative_unit_cost"]), ("no_title", dict(title=""), ["missing_title"]),
        ("no_price", dict(list_price=None), ["missing_list_price"]),
    ]),
    ("reviews", dict(review_id="R", user_id="U", item_id="I", rating="5", review_ts="2025-01-01"), [
        ("ok", {}, []), ("zero", dict(rating="0"), ["rating_out_of_range"]),
        ("six", dict(rating="6"), ["rating_out_of_range"]), ("text", dict(rating="five"), ["unparsable_rating"]),
    ]),
    ("campaigns", dict(campaign_id="C", offer_id="O", offer_type="percent_off", value="20", scope="category",
                       scope_value="Snacks", start_ts="2025-01-01", end_ts="2025-01-15"), [
        ("ok", {}, []), ("bad_type", dict(offer_type="bogo"), ["unknown_offer_type"]),
        ("bad_scope", dict(scope="store"), ["unknown_scope"]),
        ("pct", dict(value="150"), ["percent_out_of_range"]), ("zero", dict(value="0"), ["non_positive_value"]),
        ("ends_first", dict(end_ts="2024-12-31"), ["end_before_start"]),
        ("no_cat", dict(scope_value=None), ["missing_scope_value"]),
        ("item_list", dict(scope="item", scope_value=None), []),
        ("neg_min", dict(offer_type="spend_threshold", value="5", min_spend="-1"), ["negative_min_spend"]),
    ]),
    ("exposures", dict(campaign_id="C", offer_id="O", user_id="U", arm="treatment",
                       exposed_ts="2025-01-01", propensity="0.8"), [
        ("ok", {}, []), ("ok_control", dict(arm="control", offer_id=None, propensity="0.2"), []),
        ("no_offer", dict(offer_id=None), ["treatment_without_offer"]),
        ("ctl_offer", dict(arm="control"), ["control_with_offer"]),
        ("bad_arm", dict(arm="holdout"), ["unknown_arm"]), ("p0", dict(propensity="0"), ["propensity_out_of_range"]),
    ]),
])
def test_source_rules(spark, source, base, cases):
    key = SOURCES[source].keys[-1]
    rows = [{**base, **changes, key: case} for case, changes, _ in cases]
    got = rules_by_case(apply_rules(bronze(spark, source, rows), SOURCES[source], SETTINGS), key)
    assert got == {case: expected for case, _, expected in cases}


def test_duplicates_keep_newest_file_and_only_among_valid(spark):
    rows = [
        {**EVENT, "event_id": "E1", "_file_mtime": dt.datetime(2025, 1, 1), "_bronze_id": "old"},
        {**EVENT, "event_id": "E1", "_file_mtime": dt.datetime(2025, 2, 1), "_bronze_id": "new"},
        {**EVENT, "event_id": "E1", "event_type": "click", "_file_mtime": dt.datetime(2025, 3, 1), "_bronze_id": "bad"},
    ]
    src = SOURCES["events"]
    checked = mark_duplicates(apply_rules(bronze(spark, "events", rows), src, SETTINGS), src)
    got = {r["_bronze_id"]: list(r["_rules"]) for r in checked.select("_bronze_id", "_rules").collect()}
    assert got == {"new": [], "old": ["duplicate_key"], "bad": ["unknown_event_type"]}


def test_orphans_and_accepted_quarantine_split(spark):
    src = SOURCES["events"]
    rows = [{**EVENT, "event_id": "E1"}, {**EVENT, "event_id": "E2", "item_id": "I404"},
            {**EVENT, "event_id": "E3", "user_id": "U404"},
            {**EVENT, "event_id": "E4", "item_id": None, "event_type": "search"}]
    known = {"items": spark.createDataFrame([("I1",)], "item_id string"),
             "users": spark.createDataFrame([("U1",)], "user_id string")}
    checked = mark_orphans(apply_rules(bronze(spark, "events", rows), src, SETTINGS), src, known)
    assert rules_by_case(checked, "event_id") == {"E1": [], "E2": ["orphan_item_id"], "E3": ["orphan_user_id"],
                                                  "E4": []}
    accepted = accepted_rows(checked, src)
    assert accepted.schema.names == spec("silver.events").schema.names
    expected = spark.createDataFrame([("E1", "I1", "view"), ("E4", None, "search")],
                                     "event_id string, item_id string, event_type string")
    assert_df_equality(accepted.select("event_id", "item_id", "event_type"), expected, ignore_row_order=True,
                       ignore_nullable=True)
    quarantined = quarantine_rows(compact(checked, src), src)
    assert quarantined.schema.names == spec("silver.quarantine").schema.names
    q = {r.rule: r.raw_record for r in quarantined.collect()}
    assert set(q) == {"orphan_item_id", "orphan_user_id"}
    assert '"item_id":"I404"' in q["orphan_item_id"]


def test_typed_values_conform(spark):
    src = SOURCES["events"]
    rows = [{**EVENT, "event_id": " E1\u0007 ", "event_type": "Purchase", "quantity": "3", "unit_price": "1.005",
             "event_ts": "2025-02-01T12:00:00+02:00", "order_id": "O1"}]
    row = accepted_rows(apply_rules(bronze(spark, "events", rows), src, SETTINGS), src).first()
    assert row.event_id == "E1"
    assert row.event_type == "purchase"
    assert row.quantity == 3
    assert str(row.unit_price) == "1.01"
    assert row.event_ts == dt.datetime(2025, 2, 1, 10, 0)  # UTC


def test_missing_required_column_quarantines_every_row(spark):
    src = SOURCES["reviews"]
    df = bronze(spark, "reviews", [dict(review_id="R1", user_id="U", item_id="I", review_ts="2025-01-01")])
    assert apply_rules(df, src, SETTINGS).first()["_rules"] == ["missing_rating"]


def test_hash_is_stable_and_changes_with_values(spark):
    src = SOURCES["items"]
    base = dict(item_id="I", title="Mug", category="kitchen", list_price="9.99")
    df = bronze(spark, "items", [base, {**base, "item_id": "J"}, {**base, "list_price": "9.990"}])
    hashes = [r._record_hash for r in accepted_rows(apply_rules(df, src, SETTINGS), src)
              .orderBy("item_id", F.col("_record_hash")).collect()]
    assert len(set(hashes)) == 2  # "9.99" and "9.990" are the same value
