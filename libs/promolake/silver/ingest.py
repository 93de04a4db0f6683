"""Ingestion stage: landing files -> bronze.<source> (append-only) -> silver.<source> (MERGE) and
silver.quarantine, for every source in dependency order.

Safe to re-run and to kill at any point:
- a landing file is read into bronze once: bronze itself records which (file, mtime) it holds, and
  the append is one Delta commit;
- silver is brought up to date from every bronze run newer than the source's watermark (the
  newest last_bronze_run_id in ops.ingest_runs); silver and quarantine writes are MERGEs on keys,
  so replaying a batch after a kill changes nothing; the watermark moves only after both writes.
"""
from __future__ import annotations

import datetime as dt
import secrets

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from promolake.bronze.raw_records import add_run_metadata, new_files, read_raw_records
from promolake.common import files
from promolake.common.config import Config, RetryConf
from promolake.common.lake import Lake, WriteResult
from promolake.common.pii import resolve_salt
from promolake.common.reporting import StageReport
from promolake.landing.contract import REFERENCES, SOURCES, Source
from promolake.silver.rules import (RULES_COL, RuleSettings, accepted_rows, apply_rules, compact,
                                    mark_duplicates, mark_orphans, quarantine_rows)

# Referenced sources first, so foreign keys can be checked against what this run accepted.
ORDER = ("users", "items", "campaigns", "campaign_items", "events", "reviews", "exposures", "redemptions")
SILVER_UPDATE_WHEN = "s._record_hash <> t._record_hash AND s._file_mtime >= t._file_mtime"
RETRY = "__retry"


def new_run_id(now: dt.datetime | None = None) -> str:
    """Sortable run id: UTC time to the microsecond plus a random suffix."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def rule_settings(cfg: Config, now: dt.datetime) -> RuleSettings:
    return RuleSettings(cfg.ingest.max_text_length, cfg.ingest.min_timestamp,
                        now + dt.timedelta(hours=cfg.ingest.future_tolerance_hours))


def check_batch(batch: DataFrame, source: Source, settings: RuleSettings,
                known: dict[str, DataFrame]) -> DataFrame:
    """Bronze rows -> compact rows with typed columns and `_rules` (empty when accepted): contract
    rules, then duplicate keys among valid rows, then foreign keys against `known` keys."""
    checked = mark_orphans(mark_duplicates(apply_rules(batch, source, settings), source), source, known)
    return compact(checked, source, keep=tuple(c for c in (RETRY,) if c in batch.columns))


def land_to_bronze(spark: SparkSession, lake: Lake, landing_root: str, source: Source, salt: str,
                   run_id: str, retries: RetryConf | None = None) -> int:
    """Append the source's new landing files to bronze in one commit; returns the number of files."""
    table = f"bronze.{source.name}"
    listed = files.list_files(spark, f"{landing_root.rstrip('/')}/{source.name}")
    seen = {(r[0], r[1]) for r in lake.read(table).select("_source_file", "_file_mtime").distinct().collect()}
    todo = new_files(listed, seen)
    if not todo:
        return 0
    raw = read_raw_records(spark, todo, source, salt, retries)
    lake.append(add_run_metadata(raw, run_id), table)
    return len(todo)


def silver_watermark(lake: Lake, source: str) -> str:
    """Newest bronze run already applied to silver for a source ('' when none)."""
    row = (lake.read("ops.ingest_runs").where(F.col("source") == source)
           .agg(F.max("last_bronze_run_id")).first())
    return (row[0] if row else None) or ""


def orphan_retries(lake: Lake, source: Source, watermark: str) -> DataFrame:
    """Bronze rows of runs already applied whose record sits in quarantine for an unknown reference
    (orphan_*): checked again every run, so records whose user or item arrived later are released."""
    orphans = (lake.read("silver.quarantine")
               .where((F.col("source") == source.name) & F.col("rule").startswith("orphan_")).select("_bronze_id"))
    return (lake.read(f"bronze.{source.name}").where(F.col("_ingest_run_id") <= watermark)
            .join(orphans, "_bronze_id", "left_semi"))


def bronze_to_silver(lake: Lake, source: Source, settings: RuleSettings, run_id: str,
                     check_orphans: bool) -> dict:
    """Apply every bronze run newer than the watermark to silver and quarantine, and retry earlier
    orphans; returns counts (rows_read, rows_accepted, rows_quarantined, rules, rows_retried,
    rows_released, inserted, updated, last_bronze_run_id). New rows balance:
    rows_read = rows_accepted + rows_quarantined."""
    watermark = silver_watermark(lake, source.name)
    batch = lake.read(f"bronze.{source.name}").where(F.col("_ingest_run_id") > watermark)
    batch = batch.withColumn(RETRY, F.lit(False))
    known = {}
    if check_orphans and REFERENCES.get(source.name):
        known = {ref: lake.read(f"silver.{ref}") for _, ref, _ in REFERENCES[source.name]}
        batch = batch.unionByName(orphan_retries(lake, source, watermark).withColumn(RETRY, F.lit(True)))
    checked = check_batch(batch, source, settings, known).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        summary = checked.groupBy(F.col(RULES_COL)[0].alias("rule"), RETRY).agg(
            F.count("*").alias("n"), F.max("_ingest_run_id").alias("last_run")).collect()
        new = [r for r in summary if not r[RETRY]]
        by_rule = {r["rule"]: r["n"] for r in new if r["rule"] is not None}
        rows_read = sum(r["n"] for r in new)
        retried = sum(r["n"] for r in summary if r[RETRY])
        released = sum(r["n"] for r in summary if r[RETRY] and r["rule"] is None)
        written = WriteResult(f"silver.{source.name}", 0, 0)
        if rows_read - sum(by_rule.values()) + released:
            written = lake.upsert(accepted_rows(checked, source), f"silver.{source.name}",
                                  update_when=SILVER_UPDATE_WHEN)
        if by_rule:
            lake.upsert(quarantine_rows(checked.where(~F.col(RETRY)), source)
                        .withColumn("_ingest_run_id", F.lit(run_id)), "silver.quarantine", insert_only=True)
        if released:  # after the silver write: a kill in between leaves them to be released again
            lake.delete_keys(checked.where(F.col(RETRY) & (F.size(RULES_COL) == 0))
                             .select(F.lit(source.name).alias("source"), "_bronze_id"), "silver.quarantine")
    finally:
        checked.unpersist()
    accepted = rows_read - sum(by_rule.values())
    return {"rows_read": rows_read, "rows_accepted": accepted, "rows_quarantined": rows_read - accepted,
            "rules": by_rule, "rows_retried": retried, "rows_released": released,
            "inserted": written.inserted, "updated": written.updated,
            "last_bronze_run_id": max((r["last_run"] for r in new), default=None)}


def run_ingest(spark: SparkSession, cfg: Config, report: StageReport | None = None,
               now: dt.datetime | None = None) -> StageReport:
    """Ingest every configured source; the report has one row per source with
    files, rows read/accepted/quarantined, silver rows inserted/updated."""
    report = report or StageReport("ingest")
    lake = Lake(spark, cfg.lake)
    salt = resolve_salt(spark, cfg.pii)
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    settings = rule_settings(cfg, now)
    run_id = new_run_id()
    with report:
        _ingest_sources(spark, cfg, lake, salt, settings, run_id, report)
    return report


def _ingest_sources(spark: SparkSession, cfg: Config, lake: Lake, salt: str, settings: RuleSettings,
                    run_id: str, report: StageReport) -> None:
    for n, name in enumerate([s for s in ORDER if s in cfg.ingest.sources], start=1):
        source = SOURCES[name]
        report.log(f"{name}: reading new landing files ({n}/{len(cfg.ingest.sources)})")
        n_files = land_to_bronze(spark, lake, cfg.landing.root, source, salt, run_id, cfg.retries)
        report.log(f"{name}: {n_files} new file(s) in bronze; validating into silver")
        counts = bronze_to_silver(lake, source, settings, run_id, cfg.ingest.check_orphans)
        log_run(lake, run_id, name, n_files, counts)
        report.record(source=name, files=n_files, read=counts["rows_read"], accepted=counts["rows_accepted"],
                      quarantined=counts["rows_quarantined"], inserted=counts["inserted"],
                      updated=counts["updated"], released=f"{counts['rows_released']}/{counts['rows_retried']}",
                      table=lake.location(f"silver.{name}"))
        if counts["rules"]:
            top = ", ".join(f"{r}={c}" for r, c in sorted(counts["rules"].items(), key=lambda x: -x[1])[:5])
            report.log(f"{name}: quarantined by rule: {top}")
    report.note(f"rejected records: {lake.location('silver.quarantine')}; "
                f"audit log: {lake.location('ops.ingest_runs')}")


def log_run(lake: Lake, run_id: str, source: str, n_files: int, counts: dict) -> None:
    """Record one source's counts and its new watermark in ops.ingest_runs (MERGE on run and
    source, so a replay does not duplicate). Runs that found nothing new are not logged."""
    if not n_files and not counts["rows_read"] and not counts["rows_released"]:
        return
    row = [(run_id, source, n_files, counts["rows_read"], counts["rows_accepted"], counts["rows_quarantined"],
            {k: int(v) for k, v in counts["rules"].items()}, counts["rows_retried"], counts["rows_released"],
            counts["last_bronze_run_id"])]
    df = lake.spark.createDataFrame(row, "run_id string, source string, files long, rows_read long, "
                                         "rows_accepted long, rows_quarantined long, rules map<string,bigint>, "
                                         "rows_retried long, rows_released long, last_bronze_run_id string")
    lake.upsert(df.withColumn("finished_at", F.current_timestamp()), "ops.ingest_runs")
