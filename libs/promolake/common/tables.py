"""Every table promolake writes: its logical name, layer, key, schema and documentation.

Logical names are "<layer>.<name>" (silver.events); promolake.common.lake maps them to storage.
Schemas here are checked before every write, and the descriptions become table and column comments.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from promolake.landing.contract import SOURCES, Field, Source

S, TS = T.StringType(), T.TimestampType()


@dataclass(frozen=True)
class TableSpec:
    """A table's identity and declared schema; `keys` identify a row (used by MERGE)."""

    layer: str
    name: str
    fields: tuple[Field, ...]
    keys: tuple[str, ...]
    doc: str

    @property
    def logical_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def schema(self) -> T.StructType:
        return T.StructType([T.StructField(f.name, f.dtype, True, {"comment": f.doc}) for f in self.fields])


BRONZE_META = (
    Field("_extra", S, doc="Columns the contract does not name, as a JSON object (schema drift)."),
    Field("_corrupt_record", S, doc="The raw line when the file record could not be parsed at all."),
    Field("_source_file", S, doc="File the record came from."),
    Field("_source_format", S, doc="parquet, csv or json."),
    Field("_file_mtime", TS, doc="Modification time of the source file."),
    Field("_ingest_run_id", S, doc="Ingestion run that read the file (sortable: UTC time + random suffix)."),
    Field("_ingested_at", TS, doc="When the record was read."),
    Field("_bronze_id", S, doc="Identifier of this raw record, unique in the table."),
)
SILVER_META = (
    Field("_source_file", S, doc="File the accepted record came from."),
    Field("_file_mtime", TS, doc="Modification time of that file; a newer file's record wins."),
    Field("_ingest_run_id", S, doc="Ingestion run that accepted the record."),
    Field("_ingested_at", TS, doc="When it was accepted."),
    Field("_record_hash", S, doc="SHA-256 of the typed values; unchanged records are not rewritten."),
)


def _bronze(source: Source) -> TableSpec:
    raw = tuple(Field(f.name, S, doc=f"As delivered (text). {f.doc}") for f in silver_fields(source))
    return TableSpec("bronze", source.name, raw + BRONZE_META, ("_bronze_id",),
                     f"Raw {source.name} records as delivered, append-only; personal-data columns hashed. {source.doc}")


def silver_fields(source: Source) -> tuple[Field, ...]:
    """Typed contract columns with personal data replaced by <name>_hash."""
    out = []
    for f in source.fields:
        if f.pii:
            out.append(Field(f"{f.name}_hash", S, doc=f"Salted SHA-256 of {f.name} (lower-cased, trimmed)."))
        else:
            out.append(f)
    return tuple(out)


def _silver(source: Source) -> TableSpec:
    return TableSpec("silver", source.name, silver_fields(source) + SILVER_META, source.keys,
                     f"{source.doc} Typed, validated against the landing contract, de-duplicated by "
                     f"({', '.join(source.keys)}); rejected records are in silver.quarantine.")


QUARANTINE = TableSpec("silver", "quarantine", (
    Field("source", S, doc="Landing source the record came from."),
    Field("rule", S, doc="First contract rule the record broke (see docs/data-contract.md)."),
    Field("rules", T.ArrayType(S), doc="Every rule the record broke."),
    Field("raw_record", S, doc="The record as delivered, as JSON (personal data hashed)."),
    Field("_source_file", S, doc="File the record came from."),
    Field("_bronze_id", S, doc="The raw record in bronze.<source> (unique per source)."),
    Field("_ingest_run_id", S, doc="Ingestion run that rejected it."),
    Field("quarantined_at", TS, doc="When it was rejected."),
), ("source", "_bronze_id"), "Records that broke the landing contract, one row per rejected record, with the rule broken.")

INGEST_RUNS = TableSpec("ops", "ingest_runs", (
    Field("run_id", S, doc="Ingestion run."),
    Field("source", S, doc="Landing source."),
    Field("files", T.LongType(), doc="New files read into bronze."),
    Field("rows_read", T.LongType(), doc="Bronze rows processed into silver by this run."),
    Field("rows_accepted", T.LongType(), doc="Rows accepted into silver (new, changed or unchanged)."),
    Field("rows_quarantined", T.LongType(), doc="Rows written to silver.quarantine."),
    Field("rules", T.MapType(S, T.LongType()), doc="Quarantined rows per rule."),
    Field("rows_retried", T.LongType(), doc="Earlier quarantined orphan records checked again (late-arriving "
          "references); not part of rows_read."),
    Field("rows_released", T.LongType(), doc="Retried records that now passed: moved from quarantine to silver."),
    Field("last_bronze_run_id", S, doc="Newest bronze run applied to silver by this run: the source's "
          "silver watermark is the largest value over all runs."),
    Field("finished_at", TS, doc="When the source finished."),
), ("run_id", "source"), "Ingestion audit log and silver watermark: one row per run and source; "
   "rows_read = rows_accepted + rows_quarantined.")

TABLES: dict[str, TableSpec] = {}
for _src in SOURCES.values():
    for _spec in (_bronze(_src), _silver(_src)):
        TABLES[_spec.logical_name] = _spec
for _spec in (QUARANTINE, INGEST_RUNS):
    TABLES[_spec.logical_name] = _spec


def spec(logical_name: str) -> TableSpec:
    try:
        return TABLES[logical_name]
    except KeyError:
        raise KeyError(f"unknown table {logical_name!r}; known: {', '.join(sorted(TABLES))}") from None
