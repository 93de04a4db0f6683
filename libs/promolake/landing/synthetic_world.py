"""Writes a seeded synthetic e-commerce world into the landing folder, in exactly the landing contract
(promolake.landing.contract), and the hidden truth behind it into cfg.world.truth_root.

The static world (catalogue, campaigns, trends) is built on the driver; users are simulated in Spark
tasks (spark.range + mapInPandas over promolake.landing.world_model.simulate_batch), persisted once
and split from there into one folder per source:

    users/users-00000.csv                  CSV with header
    items/items-00000.jsonl                JSON lines
    campaigns/campaigns-00000.csv, campaign_items/campaign_items-00000.csv
    events/events-00000.parquet ...        one Parquet file per month (typed), then
    events/events-000NN.jsonl              the events whose event_ts is unparsable text
    reviews/reviews-00000.jsonl, exposures/exposures-00000.parquet, redemptions/redemptions-00000.csv

Text timestamps are ISO 8601 UTC ("2025-03-01T10:00:00Z"). Folders starting with "_" (temporary
writes) and landing/_world.json (the parameters of the world written) are ignored by the
ingestion. The truth (users' latent traits, true campaign response, category trends, the injected
dirty records, item quality, offer depth) is Parquet under truth_root and is never read by the pipeline.
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from promolake.common.config import Config, WorldConf
from promolake.common.files import delete, read_text, write_text
from promolake.common.reporting import StageReport
from promolake.landing import world_model as wm
from promolake.landing.contract import MONEY, SOURCES
from promolake.landing.landing_files import write_files

GENERATOR_VERSION = 1
ISO_FORMAT = "yyyy-MM-dd'T'HH:mm:ss'Z'"
BAD_TIMESTAMP_TEXTS = ("not-a-date", "2025-02-30T25:61:00Z", "31/02/2025 10:00")
TRUTH_TABLES = ("users", "exposures", "category_trends", "dirty_records", "items", "offers")

_I, _L, _D, _S = T.IntegerType(), T.LongType(), T.DoubleType(), T.StringType()
STAGE_SCHEMA = T.StructType([T.StructField(name, dtype) for name, dtype in (
    ("record", _S), ("user", _L), ("seq", _I), ("ts", _L), ("month", _I), ("item", _I), ("type", _I),
    ("quantity", _I), ("unit_price", _D), ("discount", _D), ("order_no", _I), ("text", _S), ("rating", _I),
    ("dirty", _I), ("payload", _S))])
"""One simulated record: a users, events, reviews, exposures or redemptions row (`record`). The columns
are shaped for events (the bulk); the other fields of users, exposures and redemptions travel as a JSON
`payload` (PAYLOAD_SCHEMAS) to keep the cached rows narrow. Unused columns are -1, NaN or null; `user`
is the 0-based user index, `ts` UNIX seconds, `month` the yyyymm of ts."""
PAYLOAD_SCHEMAS = {
    "users": "region int, age_band int, gender int, loyalty double, price_sensitivity double, "
             "deal_proneness double, activity double, base_logit double, taste array<double>, "
             "fav_brand array<int>, staple_item array<int>, staple_period array<int>",
    "exposures": "campaign int, offer_number int, drawn_number int, treated boolean, propensity double, "
                 "p0 double, p1 double, uplift double, bought boolean, redeemed boolean",
    "redemptions": "campaign int, offer_number int",
}


def run_generate(spark: SparkSession, cfg: Config, force: bool = False,
                 report: StageReport | None = None) -> StageReport:
    """Generate the synthetic world for cfg.world into cfg.landing.root and cfg.world.truth_root.

    Skips the work when landing/_world.json records the same parameters (unless force); otherwise
    deletes the sources' landing folders and the truth folder first. Returns the report, with one row
    per source and truth table written (files, rows).
    """
    report = report or StageReport("generate")
    with report:
        _generate(spark, cfg, force, report)
    return report


def _generate(spark: SparkSession, cfg: Config, force: bool, report: StageReport) -> None:
    landing, truth = cfg.landing.root.rstrip("/"), cfg.world.truth_root.rstrip("/")
    params = world_parameters(cfg.world)
    marker = f"{landing}/_world.json"
    previous = read_text(spark, marker)
    if not force and previous is not None and json.loads(previous) == params:
        report.note("world already generated with these parameters; nothing to do (use force to redo)")
        return
    clear_world(spark, landing, truth)
    report.log(f"cleared {landing} sources and {truth}")
    with utc_session(spark):
        world = wm.build_world(cfg.world)
        report.log(f"static world: {len(world.catalogue)} items, {len(world.campaigns)} campaigns, "
                   f"{len(world.campaigns.offer_type)} offers")
        stage = simulate_world(spark, world, cfg.world)
        counts = stage_counts(stage)
        report.log(f"simulated {cfg.world.users} users: {_rows(counts, 'events')} events")
        try:
            write_landing(spark, world, stage, landing, counts, report)
            write_truth(spark, world, stage, truth, counts, report)
        finally:
            stage.unpersist()
    # Written last: a killed run leaves no marker, so the next run regenerates from scratch.
    write_text(spark, marker, json.dumps(params, indent=2, sort_keys=True))
    report.log(f"wrote {marker}")


def world_parameters(world: WorldConf) -> dict:
    """Return what identifies a generated world: the world settings plus the generator version."""
    return dict(world.model_dump(mode="json"), generator_version=GENERATOR_VERSION)


def clear_world(spark: SparkSession, landing: str, truth: str) -> None:
    """Delete every source's landing folder, the generator's temporary folders, the marker and the truth."""
    for name in list(SOURCES) + ["_world.json"] + [f"_tmp_{s}" for s in SOURCES]:
        delete(spark, f"{landing}/{name}")
    delete(spark, truth)


@contextmanager
def utc_session(spark: SparkSession):
    """Run with UTC session time (text timestamps end in Z) and Parquet micros timestamps, then restore."""
    wanted = {"spark.sql.session.timeZone": "UTC",
              "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}
    before = {key: spark.conf.get(key, None) for key in wanted}
    for key, value in wanted.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


# ---------------------------------------------------------------------------------------------
# Simulation in Spark tasks


def stage_frame(record: str, table: dict[str, np.ndarray], world: wm.World) -> pd.DataFrame:
    """Return one world_model table as STAGE_SCHEMA rows (unused columns -1, NaN or null)."""
    n = len(table["user"])
    ts = world.epoch_seconds(table["t"])
    months = ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    values = dict(table, ts=ts, month=(months // 12 + 1970) * 100 + months % 12 + 1,
                  record=np.full(n, record, dtype=object), payload=_payload(record, table))
    return pd.DataFrame({f.name: values[f.name] if f.name in values else _empty_column(f.dataType, n)
                         for f in STAGE_SCHEMA.fields})


def _payload(record: str, table: dict[str, np.ndarray]) -> np.ndarray:
    """Return one JSON object per row with the record's PAYLOAD_SCHEMAS fields (None without a payload)."""
    n = len(table["user"])
    if record not in PAYLOAD_SCHEMAS or n == 0:
        return np.full(n, None, dtype=object)
    names = [part.split()[0] for part in PAYLOAD_SCHEMAS[record].split(", ")]
    columns = {k: table[k].tolist() if table[k].ndim == 2 else table[k] for k in names}
    lines = pd.DataFrame(columns).to_json(orient="records", lines=True).splitlines()
    return np.array(lines[:n], dtype=object)


def _empty_column(dtype: T.DataType, n: int) -> np.ndarray:
    if isinstance(dtype, (T.IntegerType, T.LongType)):
        return np.full(n, -1, dtype=np.int64)
    if isinstance(dtype, T.DoubleType):
        return np.full(n, np.nan)
    return np.full(n, None, dtype=object)


def simulate_partition(world: wm.World) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """Return the mapInPandas function that simulates the users of one partition of spark.range
    (all of its batches at once, so output depends only on the partition's first user)."""
    def simulate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        ids = [batch["id"].to_numpy() for batch in batches]
        idx = np.sort(np.concatenate(ids)) if ids else np.zeros(0, dtype=np.int64)
        if len(idx) == 0:
            return
        for record, table in wm.simulate_batch(world, idx).items():
            yield stage_frame(record, table, world)
    return simulate


def simulate_world(spark: SparkSession, world: wm.World, conf: WorldConf) -> DataFrame:
    """Return every simulated record (STAGE_SCHEMA), computed in ceil(users / users_per_task) tasks and
    persisted (memory, spilling to disk) so that each source is split from one simulation run."""
    tasks = max(1, math.ceil(conf.users / conf.users_per_task))
    simulated = spark.range(0, conf.users, 1, tasks).mapInPandas(simulate_partition(world), STAGE_SCHEMA)
    return simulated.persist(StorageLevel.MEMORY_AND_DISK)


def stage_counts(stage: DataFrame) -> dict[tuple[str, int], int]:
    """Return rows per (record, dirty kind) of the simulated records (dirty -1: clean); this action
    runs the simulation and fills the cache."""
    rows = stage.groupBy("record", "dirty").count().collect()
    return {(r["record"], r["dirty"]): r["count"] for r in rows}


def _rows(counts: dict[tuple[str, int], int], record: str) -> int:
    return sum(n for (rec, _), n in counts.items() if rec == record)


# ---------------------------------------------------------------------------------------------
# Column helpers (pure)


def _lookup(names, code: str | Column) -> Column:
    """Return names[code] (0-based), null where the code is out of range."""
    return F.get(F.array(*[F.lit(n) for n in names]), F.col(code) if isinstance(code, str) else code)


def _iso(seconds: str) -> Column:
    return F.date_format(F.timestamp_seconds(F.col(seconds)), ISO_FORMAT)


def _money(column: str, decimal: bool = False) -> Column:
    value = F.when(~F.isnan(F.col(column)), F.round(F.col(column), 2))
    return value.cast(MONEY) if decimal else value


def _digits(value: Column, width: int) -> Column:
    """Return the number as text left-padded with zeros to `width` (never truncated, like %0<width>d)."""
    text = value.cast("string")
    return F.when(F.length(text) < width, F.lpad(text, width, "0")).otherwise(text)


def _user_id() -> Column:
    return F.concat(F.lit("U"), _digits(F.col("user") + 1, 7))  # world_model.USER_ID


def _item_id(column: str = "item") -> Column:
    return F.when(F.col(column) >= 0, F.concat(F.lit("I"), _digits(F.col(column) + 1, 6)))  # ITEM_ID


def _campaign_id() -> Column:
    return F.concat(F.lit("C"), _digits(F.col("campaign") + 1, 3))  # CAMPAIGN_ID


def _offer_id(number: str) -> Column:
    return F.when(F.col(number) >= 0, F.concat(_campaign_id(), F.lit("-O"), (F.col(number) + 1).cast("string")))


def _event_id() -> Column:
    return F.concat(F.lit("E"), _digits(F.col("user") + 1, 7), F.lit("-"), _digits(F.col("seq"), 5))


def _order_id() -> Column:
    return F.concat(F.lit("O"), _digits(F.col("user") + 1, 7), F.lit("-"), _digits(F.col("order_no"), 5))


def _review_id() -> Column:
    return F.concat(F.lit("R"), _digits(F.col("user") + 1, 7), F.lit("-"), _digits(F.col("seq"), 4))


def _redemption_id() -> Column:
    return F.concat(F.lit("RD"), _digits(F.col("campaign") + 1, 3), F.lit("-"), _digits(F.col("user") + 1, 7))


def _arm() -> Column:
    return F.when(F.col("treated"), F.lit("treatment")).otherwise(F.lit("control"))


def _record(stage: DataFrame, record: str) -> DataFrame:
    """Return the simulated rows of one record type, with its payload fields as columns."""
    rows = stage.filter(F.col("record") == record)
    if record not in PAYLOAD_SCHEMAS:
        return rows
    return rows.withColumn("fields", F.from_json("payload", PAYLOAD_SCHEMAS[record])).select("*", "fields.*")


# ---------------------------------------------------------------------------------------------
# Landing sources (pure transformations of the simulated records and the static world)


def users_frame(stage: DataFrame) -> DataFrame:
    """Return landing users: one row per customer (user_id, signup_ts as ISO text, demographics, email)."""
    domain = _lookup(wm.EMAIL_DOMAINS, (F.col("user") % len(wm.EMAIL_DOMAINS)).cast("int"))
    return _record(stage, "users").select(
        _user_id().alias("user_id"), _iso("ts").alias("signup_ts"), _lookup(wm.REGIONS, "region").alias("region"),
        _lookup(wm.AGE_BANDS, "age_band").alias("age_band"), _lookup(wm.GENDERS, "gender").alias("gender"),
        F.concat(F.lit("user"), (F.col("user") + 1).cast("string"), F.lit("@"), domain).alias("email"))


def events_frame(stage: DataFrame) -> DataFrame:
    """Return landing events (typed: event_ts timestamp, quantity int, prices double) plus `dirty` (the
    injected corruption, -1 if none) and `month` (yyyymm, for splitting into files). Rows with a
    missing user id are the injected missing_user_id records."""
    missing_user = F.col("dirty") == wm.MISSING_USER_ID
    return _record(stage, "events").select(
        _event_id().alias("event_id"),
        F.when(~missing_user, _user_id()).alias("user_id"), _item_id().alias("item_id"),
        _lookup(wm.EVENT_TYPE_NAMES, "type").alias("event_type"), F.timestamp_seconds("ts").alias("event_ts"),
        F.when(F.col("quantity") >= 0, F.col("quantity")).alias("quantity"),
        _money("unit_price").alias("unit_price"), _money("discount").alias("discount_amount"),
        F.when(F.col("order_no") >= 0, _order_id()).alias("order_id"),
        F.col("text").alias("query_text"), "dirty", "month")


def unparsable_time_events(events: DataFrame) -> DataFrame:
    """Return the bad_timestamp events with event_ts replaced by unparsable text (contract columns only)."""
    bad = F.get(F.array(*[F.lit(t) for t in BAD_TIMESTAMP_TEXTS]),
                F.pmod(F.xxhash64("event_id"), F.lit(len(BAD_TIMESTAMP_TEXTS))).cast("int"))
    return (events.filter(F.col("dirty") == wm.BAD_TIMESTAMP).withColumn("event_ts", bad)
            .select(*SOURCES["events"].columns))


def reviews_frame(stage: DataFrame) -> DataFrame:
    """Return landing reviews: one row per review (review_ts as ISO text); ratings 0 and 7 are injected."""
    return _record(stage, "reviews").select(
        _review_id().alias("review_id"), _user_id().alias("user_id"), _item_id().alias("item_id"),
        F.col("rating"), F.col("text").alias("review_text"), _iso("ts").alias("review_ts"))


def exposures_frame(stage: DataFrame) -> DataFrame:
    """Return landing exposures: one row per (campaign, user) with arm, offer shown and propensity."""
    return _record(stage, "exposures").select(
        _campaign_id().alias("campaign_id"), _offer_id("offer_number").alias("offer_id"),
        _user_id().alias("user_id"), _arm().alias("arm"), F.timestamp_seconds("ts").alias("exposed_ts"),
        F.col("propensity"))


def redemptions_frame(stage: DataFrame) -> DataFrame:
    """Return landing redemptions: one row per redeemed offer, on the order it was applied to."""
    return _record(stage, "redemptions").select(
        _redemption_id().alias("redemption_id"), _campaign_id().alias("campaign_id"),
        _offer_id("offer_number").alias("offer_id"), _user_id().alias("user_id"), _order_id().alias("order_id"),
        _iso("ts").alias("redeemed_ts"), _money("discount", decimal=True).alias("discount_amount"))


# ---------------------------------------------------------------------------------------------
# Static sources and truth, built on the driver from the World (pandas)


def iso_text(world: wm.World, days: np.ndarray) -> np.ndarray:
    """Return ISO 8601 UTC text ("2025-03-01T10:00:00Z") of times in days since the start."""
    seconds = world.epoch_seconds(np.asarray(days, dtype=np.float64)).astype("datetime64[s]")
    return np.char.add(np.datetime_as_string(seconds, unit="s"), "Z")


def _nullable(values: np.ndarray) -> list:
    """Return the values as a list with NaN as None (so Spark reads them as null)."""
    return [None if isinstance(v, float) and np.isnan(v) else v for v in values.tolist()]


def items_table(world: wm.World) -> pd.DataFrame:
    """Return landing items: one row per catalogue item (prices as numbers, created_ts as ISO text)."""
    c = world.catalogue
    names = np.array([s.name for s in wm.CATEGORIES])
    return pd.DataFrame({
        "item_id": [wm.ITEM_ID % (i + 1) for i in range(len(c))], "title": c.title, "description": c.description,
        "category": names[c.category], "subcategory": c.noun_word, "brand": c.brand_word,
        "list_price": c.price, "unit_cost": _nullable(c.cost), "created_ts": iso_text(world, c.created_day)})


def campaigns_table(world: wm.World) -> pd.DataFrame:
    """Return landing campaigns: one row per offer of a campaign, with its window as ISO text."""
    camp = world.campaigns
    c, number = camp.offer_campaign, camp.offer_number
    start = camp.start_day[c].astype(np.float64)
    return pd.DataFrame({
        "campaign_id": [wm.CAMPAIGN_ID % (k + 1) for k in c],
        "offer_id": [wm.OFFER_ID % (k + 1, o + 1) for k, o in zip(c, number)],
        "offer_type": [wm.OFFER_TYPES[t] for t in camp.offer_type], "value": camp.value,
        "min_spend": _nullable(camp.min_spend), "scope": list(camp.scope), "scope_value": list(camp.scope_value),
        "start_ts": iso_text(world, start), "end_ts": iso_text(world, start + world.campaign_days)})


def campaign_items_table(world: wm.World) -> pd.DataFrame:
    """Return landing campaign_items: one row per item listed by an item-scoped campaign."""
    camp = world.campaigns
    return pd.DataFrame({"campaign_id": [wm.CAMPAIGN_ID % (k + 1) for k in camp.listed_campaign],
                         "item_id": [wm.ITEM_ID % (i + 1) for i in camp.listed_item]}, dtype=object)


STATIC_TRUTH_SCHEMAS = {
    "category_trends": "category string, slope double, label string",
    "items": "item_id string, quality double, popularity double, launched_in_period boolean",
    "offers": "campaign_id string, offer_id string, theme_category string, depth double",
}


def static_truth_tables(world: wm.World) -> dict[str, pd.DataFrame]:
    """Return the driver-built truth: category trends (slope, label), item quality and popularity,
    and each offer's theme category and depth."""
    c, camp = world.catalogue, world.campaigns
    names = np.array([s.name for s in wm.CATEGORIES])
    return {
        "category_trends": pd.DataFrame({"category": names, "slope": world.trend_slope,
                                         "label": list(world.trend_label)}),
        "items": pd.DataFrame({"item_id": [wm.ITEM_ID % (i + 1) for i in range(len(c))], "quality": c.quality,
                               "popularity": c.popularity, "launched_in_period": c.created_day >= 0}),
        "offers": pd.DataFrame({
            "campaign_id": [wm.CAMPAIGN_ID % (k + 1) for k in camp.offer_campaign],
            "offer_id": [wm.OFFER_ID % (k + 1, o + 1) for k, o in zip(camp.offer_campaign, camp.offer_number)],
            "theme_category": names[camp.theme[camp.offer_campaign]] if len(camp) else [],
            "depth": camp.depth}),
    }


def _spark_frame(spark: SparkSession, table: pd.DataFrame, schema: str) -> DataFrame:
    return spark.createDataFrame(table, schema=schema)


def static_frames(spark: SparkSession, world: wm.World) -> dict[str, DataFrame]:
    """Return the items, campaigns and campaign_items landing DataFrames (money as decimal(12,2))."""
    items = _spark_frame(spark, items_table(world), "item_id string, title string, description string, "
                         "category string, subcategory string, brand string, list_price double, "
                         "unit_cost double, created_ts string")
    campaigns = _spark_frame(spark, campaigns_table(world), "campaign_id string, offer_id string, "
                             "offer_type string, value double, min_spend double, scope string, "
                             "scope_value string, start_ts string, end_ts string")
    return {
        "items": items.withColumns({c: _money(c, decimal=True) for c in ("list_price", "unit_cost")}),
        "campaigns": campaigns.withColumns({c: _money(c, decimal=True) for c in ("value", "min_spend")}),
        "campaign_items": _spark_frame(spark, campaign_items_table(world), "campaign_id string, item_id string"),
    }


# ---------------------------------------------------------------------------------------------
# Truth from the simulated records (pure)


def truth_users_frame(stage: DataFrame, world: wm.World) -> DataFrame:
    """Return the users' latent traits: one row per user with taste and favourite brand per category,
    brand loyalty, price sensitivity, deal proneness, activity (sessions/day), base purchase logit and
    the staple items re-bought every staple_periods days."""
    categories = F.array(*[F.lit(c.name) for c in wm.CATEGORIES])
    brands = F.array(*[F.lit(b) for b in world.catalogue.brand_names])
    staples = F.filter("staple_item", lambda x: x >= 0)
    return _record(stage, "users").select(
        _user_id().alias("user_id"), F.timestamp_seconds("ts").alias("signup_ts"),
        F.map_from_arrays(categories, F.col("taste")).alias("taste"),
        F.map_from_arrays(categories, F.transform("fav_brand", lambda b: F.element_at(brands, b + 1)))
        .alias("favourite_brand"),
        F.col("loyalty").alias("brand_loyalty"), "price_sensitivity", "deal_proneness", "activity", "base_logit",
        F.transform(staples, lambda x: F.concat(F.lit("I"), _digits(x + 1, 6))).alias("staple_items"),
        F.slice("staple_period", F.lit(1), F.size(staples)).alias("staple_periods"))


def truth_exposures_frame(stage: DataFrame) -> DataFrame:
    """Return the true response per exposure: p0 (buy in scope without offer), p1 (with the drawn offer),
    uplift = p1 - p0, and what happened (bought, redeemed)."""
    return _record(stage, "exposures").select(
        _campaign_id().alias("campaign_id"), _user_id().alias("user_id"),
        _arm().alias("arm"), _offer_id("offer_number").alias("offer_id"),
        _offer_id("drawn_number").alias("drawn_offer_id"),
        F.timestamp_seconds("ts").alias("exposed_ts"), "p0", "p1", "uplift", "bought", "redeemed")


def dirty_records_frame(stage: DataFrame) -> DataFrame:
    """Return one row per injected bad record: source, record_key (event_id or review_id) and kind
    (world_model.DIRTY_KINDS). A duplicate_event_id row names the event that appears twice."""
    kind = _lookup(wm.DIRTY_KINDS, "dirty").alias("kind")
    events = events_frame(stage).filter(F.col("dirty") >= 0).select(
        F.lit("events").alias("source"), F.col("event_id").alias("record_key"), kind)
    reviews = _record(stage, "reviews").filter(F.col("dirty") >= 0).select(
        F.lit("reviews").alias("source"), _review_id().alias("record_key"), kind)
    return events.unionByName(reviews)


# ---------------------------------------------------------------------------------------------
# Writing files

def write_landing(spark: SparkSession, world: wm.World, stage: DataFrame, landing: str,
                  counts: dict[tuple[str, int], int], report: StageReport) -> None:
    """Write every landing source (see the module docstring for names and formats)."""
    statics = static_frames(spark, world)
    plan = [
        ("users", users_frame(stage), "csv", _rows(counts, "users")),
        ("items", statics["items"], "json", len(world.catalogue)),
        ("campaigns", statics["campaigns"], "csv", len(world.campaigns.offer_type)),
        ("campaign_items", statics["campaign_items"], "csv", len(world.campaigns.listed_item)),
        ("reviews", reviews_frame(stage), "json", _rows(counts, "reviews")),
        ("exposures", exposures_frame(stage), "parquet", _rows(counts, "exposures")),
        ("redemptions", redemptions_frame(stage), "csv", _rows(counts, "redemptions")),
    ]
    for source, frame, fmt, rows in plan:
        files = write_files(spark, frame.coalesce(1), landing, source, fmt)
        report.record(source=source, format=fmt, files=len(files), rows=rows)
        report.log(f"wrote {source}: {rows} rows")
    write_events(spark, stage, landing, counts, report)


def write_events(spark: SparkSession, stage: DataFrame, landing: str, counts: dict[tuple[str, int], int],
                 report: StageReport) -> None:
    """Write events as one Parquet file per month plus one JSON-lines file with the unparsable-time events.

    Rows inside a month's file are in shuffle order (sorting them by time costs more than it is worth).
    """
    raw = _record(stage, "events")
    by_month = raw.filter(F.col("dirty") != wm.BAD_TIMESTAMP).repartition("month").sortWithinPartitions("month")
    typed = events_frame(by_month).select(*SOURCES["events"].columns, "month")
    files = write_files(spark, typed, landing, "events", "parquet", partition_by="month")
    if counts.get(("events", wm.BAD_TIMESTAMP), 0):
        bad = events_frame(raw.filter(F.col("dirty") == wm.BAD_TIMESTAMP))
        files += write_files(spark, unparsable_time_events(bad).coalesce(1), landing, "events", "json", len(files))
    rows = _rows(counts, "events")
    dirty = rows - counts.get(("events", -1), 0)
    report.record(source="events", format="parquet+json", files=len(files), rows=rows, dirty=dirty)
    report.log(f"wrote events: {rows} rows in {len(files)} files ({dirty} dirty)")


def write_truth(spark: SparkSession, world: wm.World, stage: DataFrame, truth: str,
                counts: dict[tuple[str, int], int], report: StageReport) -> None:
    """Write the truth tables as Parquet folders truth/<table>."""
    statics = static_truth_tables(world)
    dirty = sum(n for (record, kind), n in counts.items() if kind >= 0 and record in ("events", "reviews"))
    tables = {
        "users": (truth_users_frame(stage, world), _rows(counts, "users")),
        "exposures": (truth_exposures_frame(stage), _rows(counts, "exposures")),
        "dirty_records": (dirty_records_frame(stage), dirty),
        **{name: (spark.createDataFrame(table, STATIC_TRUTH_SCHEMAS[name]), len(table))
           for name, table in statics.items()},
    }
    for name in TRUTH_TABLES:
        frame, rows = tables[name]
        frame.coalesce(1).write.mode("overwrite").parquet(f"{truth}/{name}")
        report.record(source=f"truth/{name}", format="parquet", files=1, rows=rows)
    report.log(f"wrote truth tables {', '.join(TRUTH_TABLES)} to {truth}")
