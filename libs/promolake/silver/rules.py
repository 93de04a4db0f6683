"""Silver rules: type the raw bronze text against the landing contract and name every rule a
record breaks.

All functions here are pure (DataFrame in, DataFrame out). Rule names are stable strings used in
silver.quarantine.rule and documented in docs/data-contract.md.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from promolake.common.tables import silver_fields
from promolake.landing.contract import ARMS, EVENT_TYPES, OFFER_TYPES, REFERENCES, SCOPES, Source

RULES_COL = "_rules"

# Every rule a record can break; `<column>` stands for a contract column. Documented in
# docs/data-contract.md (generated from this table by promolake.landing.contract_doc).
RULE_DOCS: dict[str, str] = {
    "unparsable_record": "The line or the whole file could not be parsed (bad JSON, not a Parquet file).",
    "missing_<column>": "A required column is absent or blank.",
    "unparsable_<column>": "A typed column holds text that is not a valid number / integer / timestamp.",
    "text_too_long": "A text value is longer than ingest.max_text_length characters.",
    "timestamp_in_future": "A timestamp is later than now + ingest.future_tolerance_hours.",
    "timestamp_too_old": "A timestamp is earlier than ingest.min_timestamp.",
    "non_positive_list_price": "items: list_price <= 0 (after rounding to cents).",
    "negative_unit_cost": "items: unit_cost < 0.",
    "unknown_event_type": "events: event_type not one of view, cart, purchase, search.",
    "missing_item_id": "events: item_id is null on an event other than search.",
    "missing_quantity": "events: a purchase without quantity.",
    "non_positive_quantity": "events: quantity <= 0 (cancellations, returns).",
    "missing_unit_price": "events: a purchase without unit_price.",
    "negative_price": "events: unit_price < 0.",
    "negative_discount": "events, redemptions: discount_amount < 0.",
    "rating_out_of_range": "reviews: rating not in 1..5.",
    "unknown_offer_type": "campaigns: offer_type not one of percent_off, amount_off, spend_threshold, gift.",
    "unknown_scope": "campaigns: scope not one of item, category, basket.",
    "non_positive_value": "campaigns: value <= 0.",
    "percent_out_of_range": "campaigns: percent_off with value > 100.",
    "negative_min_spend": "campaigns: min_spend < 0.",
    "missing_scope_value": "campaigns: category scope without scope_value.",
    "end_before_start": "campaigns: end_ts is not after start_ts.",
    "unknown_arm": "exposures: arm not one of treatment, control.",
    "treatment_without_offer": "exposures: treatment arm without offer_id.",
    "control_with_offer": "exposures: control arm with an offer_id.",
    "propensity_out_of_range": "exposures: propensity not in (0, 1].",
    "duplicate_key": "Another valid record with the same key arrived in the same batch from a newer file "
                     "(or later in the same file); the newest is kept.",
    "orphan_<column>": "A reference (user_id, item_id, campaign_id) to a record that is not in silver.",
}
CONTROL_CHARS = r"[\p{Cntrl}&&[^\n\t]]"


@dataclass(frozen=True)
class RuleSettings:
    """Thresholds that are configuration, not contract (IngestConf)."""

    max_text_length: int
    min_timestamp: dt.datetime
    max_timestamp: dt.datetime


def _text(raw: Column) -> Column:
    """Trimmed text without control characters (newline and tab kept); blank becomes null."""
    cleaned = F.trim(F.regexp_replace(raw, CONTROL_CHARS, ""))
    return F.when(cleaned == "", F.lit(None)).otherwise(cleaned)


def _typed(name: str, dtype: T.DataType) -> Column:
    """Typed value of the cleaned text column `name`; null where the text does not parse.

    Timestamps: ISO-8601 with or without offset (none means UTC) or epoch seconds, milli-, micro-
    or nanoseconds (Parquet from pandas).
    Integers: any integral number ("2", "2.0"); "2.5" does not parse.
    """
    c = f"`{name}`"
    text = F.col(name)
    if isinstance(dtype, T.TimestampType):
        digits = F.length(text)
        epoch = F.when(text.rlike(r"^\d{9,19}$"), F.when(digits <= 10, text.cast("long"))
                       .when(digits <= 13, (text.cast("long") / 1_000).cast("long"))
                       .when(digits <= 16, (text.cast("long") / 1_000_000).cast("long"))
                       .otherwise((text.cast("decimal(20,0)") / 1_000_000_000).cast("long")))
        return F.coalesce(F.expr(f"try_cast({c} as timestamp)"), F.timestamp_seconds(epoch))
    if isinstance(dtype, T.IntegerType):
        dec = F.expr(f"try_cast({c} as decimal(20,4))")
        return F.when(dec == F.floor(dec), F.expr(f"try_cast(try_cast({c} as decimal(20,4)) as int)"))
    if isinstance(dtype, T.StringType):
        return text
    return F.expr(f"try_cast({c} as {dtype.simpleString()})")


def type_columns(raw: DataFrame, source: Source) -> DataFrame:
    """Add cleaned text (`__c_<name>`) and typed (`__t_<name>`) columns next to the raw ones."""
    out = raw
    for f in silver_fields(source):
        text = _text(F.col(f.name))
        if f.name in ("event_type", "offer_type", "scope", "arm"):
            text = F.lower(text)
        out = out.withColumn(f"__c_{f.name}", text)
    for f in silver_fields(source):
        out = out.withColumn(f"__t_{f.name}", _typed(f"__c_{f.name}", f.dtype))
    return out


def _broken(source: Source, s: RuleSettings) -> list[tuple[str, Column]]:
    """(rule, condition true when broken) in priority order for one source."""
    t = lambda name: F.col(f"__t_{name}")  # noqa: E731
    raw_present = lambda name: F.col(f"__c_{name}").isNotNull()  # noqa: E731
    rules: list[tuple[str, Column]] = [("unparsable_record", F.col("_corrupt_record").isNotNull())]
    for f in silver_fields(source):
        if f.required:
            rules.append((f"missing_{f.name}", ~raw_present(f.name)))
    for f in silver_fields(source):
        if not isinstance(f.dtype, T.StringType):
            rules.append((f"unparsable_{f.name}", raw_present(f.name) & t(f.name).isNull()))
    texts = [f.name for f in silver_fields(source) if isinstance(f.dtype, T.StringType)]
    rules.append(("text_too_long", F.greatest(*[F.coalesce(F.length(F.col(c)), F.lit(0)) for c in texts],
                                               F.lit(0)) > s.max_text_length))
    for f in silver_fields(source):
        if isinstance(f.dtype, T.TimestampType):
            rules.append(("timestamp_in_future", t(f.name) > F.lit(s.max_timestamp)))
            rules.append(("timestamp_too_old", t(f.name) < F.lit(s.min_timestamp)))
    rules += _source_rules(source.name, t)
    return rules


def _source_rules(name: str, t) -> list[tuple[str, Column]]:
    if name == "items":
        return [("non_positive_list_price", t("list_price") <= 0), ("negative_unit_cost", t("unit_cost") < 0)]
    if name == "events":
        purchase = t("event_type") == "purchase"
        return [
            ("unknown_event_type", t("event_type").isNotNull() & ~t("event_type").isin(*EVENT_TYPES)),
            ("missing_item_id", t("item_id").isNull() & (t("event_type") != "search")),
            ("missing_quantity", purchase & F.col("__c_quantity").isNull()),
            ("non_positive_quantity", t("quantity") <= 0),
            ("missing_unit_price", purchase & t("unit_price").isNull()),
            ("negative_price", t("unit_price") < 0),
            ("negative_discount", t("discount_amount") < 0),
        ]
    if name == "reviews":
        return [("rating_out_of_range", (t("rating") < 1) | (t("rating") > 5))]
    if name == "campaigns":
        return [
            ("unknown_offer_type", t("offer_type").isNotNull() & ~t("offer_type").isin(*OFFER_TYPES)),
            ("unknown_scope", t("scope").isNotNull() & ~t("scope").isin(*SCOPES)),
            ("non_positive_value", t("value") <= 0),
            ("percent_out_of_range", (t("offer_type") == "percent_off") & (t("value") > 100)),
            ("negative_min_spend", t("min_spend") < 0),
            ("missing_scope_value", (t("scope") == "category") & t("scope_value").isNull()),
            ("end_before_start", t("end_ts") <= t("start_ts")),
        ]
    if name == "exposures":
        return [
            ("unknown_arm", t("arm").isNotNull() & ~t("arm").isin(*ARMS)),
            ("treatment_without_offer", (t("arm") == "treatment") & t("offer_id").isNull()),
            ("control_with_offer", (t("arm") == "control") & t("offer_id").isNotNull()),
            ("propensity_out_of_range", (t("propensity") <= 0) | (t("propensity") > 1)),
        ]
    if name == "redemptions":
        return [("negative_discount", t("discount_amount") < 0)]
    return []


def apply_rules(raw: DataFrame, source: Source, settings: RuleSettings) -> DataFrame:
    """Bronze rows -> the same rows with typed `__t_*` columns and `_rules`, the rules broken
    (empty array when the record is valid), without duplicates, in priority order."""
    typed = type_columns(raw, source)
    flags = [F.when(F.coalesce(cond, F.lit(False)), F.lit(rule)) for rule, cond in _broken(source, settings)]
    broken = F.array_distinct(F.filter(F.array(*flags), lambda x: x.isNotNull()))
    cleaned = [f"__c_{f.name}" for f in silver_fields(source)]
    return typed.withColumn(RULES_COL, broken).drop(*cleaned)


def mark_duplicates(validated: DataFrame, source: Source) -> DataFrame:
    """Among valid rows with the same key, keep the newest (file time, file, bronze id); the others
    get rule duplicate_key."""
    valid = F.size(RULES_COL) == 0
    keys = [F.col(f"__t_{k}") for k in source.keys]
    order = Window.partitionBy(*keys, valid).orderBy(F.col("_file_mtime").desc_nulls_last(),
                                              F.col("_source_file").desc(), F.col("_bronze_id").desc())
    rank = F.when(valid, F.row_number().over(order))
    return validated.withColumn(RULES_COL, F.when(valid & (rank > 1), F.array(F.lit("duplicate_key")))
                                .otherwise(F.col(RULES_COL)))


def mark_orphans(validated: DataFrame, source: Source, known: dict[str, DataFrame]) -> DataFrame:
    """Valid rows whose foreign keys are not in `known[<referenced source>]` (a one-column DataFrame
    of existing keys) get rule orphan_<column>. Null references are left to the other rules."""
    out = validated
    for column, ref_source, ref_column in REFERENCES.get(source.name, ()):
        if ref_source not in known:
            continue
        flag = f"__known_{column}"
        keys = known[ref_source].select(F.col(ref_column).alias(f"__ref_{column}")).distinct() \
            .withColumn(flag, F.lit(True))
        out = out.join(keys, F.col(f"__t_{column}") == F.col(f"__ref_{column}"), "left").drop(f"__ref_{column}")
        orphan = (F.size(RULES_COL) == 0) & F.col(f"__t_{column}").isNotNull() & F.col(flag).isNull()
        out = out.withColumn(RULES_COL, F.when(orphan, F.array(F.lit(f"orphan_{column}")))
                             .otherwise(F.col(RULES_COL))).drop(flag)
    return out


def compact(checked: DataFrame, source: Source, keep: tuple[str, ...] = ()) -> DataFrame:
    """Only what accepted_rows and quarantine_rows need (plus the `keep` columns): typed columns,
    rules, lineage, and the raw record as JSON for rejected rows (null for accepted ones), so a
    persisted batch stays narrow."""
    raw_cols = [f.name for f in silver_fields(source)] + ["_extra"]
    raw = F.when(F.size(RULES_COL) > 0,
                 F.coalesce(F.col("_corrupt_record"), F.to_json(F.struct(*[F.col(c) for c in raw_cols]))))
    return checked.select(*[f"__t_{f.name}" for f in silver_fields(source)], RULES_COL, "_source_file",
                          "_file_mtime", "_ingest_run_id", "_bronze_id", raw.alias("__raw_record"), *keep)


def accepted_rows(checked: DataFrame, source: Source) -> DataFrame:
    """Silver rows (declared silver columns + lineage) of the records that broke no rule."""
    fields = silver_fields(source)
    typed = [F.col(f"__t_{f.name}").alias(f.name) for f in fields]
    record_hash = F.sha2(F.to_json(F.struct(*[F.col(f"__t_{f.name}") for f in fields])), 256)
    return (checked.where(F.size(RULES_COL) == 0)
            .select(*typed, "_source_file", "_file_mtime", "_ingest_run_id",
                    F.current_timestamp().alias("_ingested_at"), record_hash.alias("_record_hash")))


def quarantine_rows(checked: DataFrame, source: Source) -> DataFrame:
    """silver.quarantine rows for the records that broke at least one rule (input: compact())."""
    return (checked.where(F.size(RULES_COL) > 0)
            .select(F.lit(source.name).alias("source"), F.col(RULES_COL)[0].alias("rule"),
                    F.col(RULES_COL).alias("rules"), F.col("__raw_record").alias("raw_record"), "_source_file",
                    "_bronze_id",
                    "_ingest_run_id", F.current_timestamp().alias("quarantined_at")))
