"""Bronze: landing files -> raw records as text, with where they came from.

A bronze row is one record of one landing file exactly as delivered (every contract column as
text), plus columns the contract does not know packed into `_extra` (schema drift) and a
`_corrupt_record` when the record or the whole file could not be parsed. Personal-data columns
are hashed here already, so clear-text identifiers never enter the lake.
"""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Iterable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from promolake.common import retry
from promolake.common.config import RetryConf
from promolake.common.files import FileInfo, read_text
from promolake.common.pii import hash_identifier
from promolake.landing.contract import FILE_FORMATS, Source

CORRUPT = "_corrupt_record"


def file_format(path: str) -> str | None:
    """parquet, csv or json from the file extension; None for files the contract does not cover."""
    return FILE_FORMATS.get(os.path.splitext(path.lower())[1])


def new_files(listed: Iterable[FileInfo], seen: set[tuple[str, object]]) -> list[FileInfo]:
    """Data files not yet in bronze: a (path, modification time) pair not in `seen`. Empty
    (zero-byte) files and files of other types (README.txt) hold no records and are never new."""
    return [f for f in listed if f.size > 0 and file_format(f.path) and (f.path, f.mtime) not in seen]


def _read_group(spark: SparkSession, fmt: str, paths: list[str]) -> DataFrame:
    if fmt == "csv":
        return (spark.read.option("header", True).option("multiLine", True).option("escape", '"')
                .option("mode", "PERMISSIVE").csv(paths))
    if fmt == "json":
        return (spark.read.option("primitivesAsString", True).option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT).json(paths))
    # mergeSchema only across several files: Spark's footer-merging path ignores nanosAsLong.
    return spark.read.option("mergeSchema", len(paths) > 1).parquet(*paths)


def _as_text(df: DataFrame, name: str) -> Column:
    dtype = df.schema[name].dataType
    col = F.col(f"`{name}`")
    if isinstance(dtype, (T.StructType, T.ArrayType, T.MapType)):
        return F.to_json(col)
    if isinstance(dtype, T.TimestampType):
        return F.date_format(col, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'")
    return col.cast("string")


def to_raw_records(df: DataFrame, source: Source, salt: str) -> DataFrame:
    """Map one read of landing files onto the bronze columns of `source` (text), hashing PII.

    Column names are matched case-insensitively after trimming; unknown columns go to `_extra`
    as JSON; a missing contract column is null (the silver rules decide whether that is allowed).
    """
    by_norm = {c.strip().lower(): c for c in df.columns if c not in (CORRUPT, "_file_path", "_file_mtime")}
    cols: list[Column] = []
    for f in source.fields:
        actual = by_norm.get(f.name)
        value = _as_text(df, actual) if actual else F.lit(None).cast("string")
        if f.pii:
            cols.append(hash_identifier(value, salt).alias(f"{f.name}_hash"))
        else:
            cols.append(value.alias(f.name))
    extras = [c for n, c in by_norm.items() if n not in source.columns]
    extra = F.to_json(F.struct(*[_as_text(df, c).alias(c) for c in extras])) if extras else F.lit(None)
    corrupt = F.col(CORRUPT) if CORRUPT in df.columns else F.lit(None)
    return df.select(*cols, extra.cast("string").alias("_extra"), corrupt.cast("string").alias(CORRUPT),
                     F.col("_file_path"), F.col("_file_mtime"))


def _unreadable(spark: SparkSession, f: FileInfo, error: str) -> DataFrame:
    """One bronze record standing for a file that could not be read at all (it will be quarantined)."""
    schema = T.StructType([T.StructField(CORRUPT, T.StringType()), T.StructField("_file_path", T.StringType()),
                           T.StructField("_file_mtime", T.TimestampType())])
    return spark.createDataFrame([(f"unreadable file: {error[:500]}", f.path, f.mtime)], schema)


def read_raw_records(spark: SparkSession, files: list[FileInfo], source: Source, salt: str,
                     retries: RetryConf | None = None) -> DataFrame:
    """Bronze rows (before run metadata) for the given landing files of one source.

    Files are read in groups of one format (CSV groups also share a header line); a group that
    fails to read is retried file by file, and a file that still fails becomes one corrupt record
    (quarantined: Spark cannot parse it). A file that cannot be read for a reason that may pass (it
    vanished after listing, permission or storage errors: promolake.common.retry.transient_io) is
    tried again with back-off and then stops the ingest with retry.TransientFailure naming the file:
    it is not quarantined, so a later run reads it once it is readable.
    """
    retries = retries or RetryConf()
    hint = "it stays unprocessed (not quarantined); the next ingest run reads it once it is readable"

    def patiently(fn, path: str):
        return retry.call(fn, f"reading landing file {path}", retries, retry.transient_io, hint=hint)

    groups: dict[tuple[str, str], list[FileInfo]] = defaultdict(list)
    for f in files:
        fmt = file_format(f.path)
        if fmt:
            header = patiently(lambda: _csv_header(spark, f.path), f.path) if fmt == "csv" else ""
            groups[(fmt, header)].append(f)
    parts: list[DataFrame] = []
    for (fmt, _), group in groups.items():
        try:
            parts.append(_with_file_info(_read_group(spark, fmt, [f.path for f in group]), group, source, salt))
        except Exception:  # noqa: BLE001 - isolate the bad file below
            for f in group:
                try:
                    parts.append(patiently(lambda: _with_file_info(_read_group(spark, fmt, [f.path]), [f], source, salt),
                                           f.path))
                except retry.TransientFailure:
                    raise
                except Exception as err:  # noqa: BLE001 - a file Spark cannot parse is quarantined, not fatal
                    parts.append(to_raw_records(_unreadable(spark, f, _error_text(err)), source, salt))
    if not parts:
        return spark.createDataFrame([], _raw_schema(source))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def _error_text(err: Exception) -> str:
    """The underlying reason of a read failure in one line (the JVM's message for Py4J errors)."""
    java = getattr(err, "java_exception", None)
    while java is not None and java.getCause() is not None and not java.getCause().equals(java):
        java = java.getCause()
    text = java.toString() if java is not None else str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("at ")]
    return (lines[0] if lines else type(err).__name__)[:300]


def _with_file_info(df: DataFrame, group: list[FileInfo], source: Source, salt: str) -> DataFrame:
    """Attach each record's landing file path and modification time as listed at discovery.

    Spark reports a record's file as a URL-encoded URI (a space is %20), the listing as a plain
    path: both are compared in URI form. The join is a left join, so a record is never dropped even
    if a file system reported paths differently (it would keep Spark's path).
    """
    df.schema  # noqa: B018 - forces schema inference now, so a bad file fails inside the caller's try
    to_uri = df.sparkSession.sparkContext._jvm.org.apache.hadoop.fs.Path
    info = df.sparkSession.createDataFrame(
        [(_norm(to_uri(f.path).toUri().toString()), f.path, f.mtime) for f in group],
        "norm_path string, _listed_path string, _file_mtime timestamp")
    spark_path = F.col("_metadata.file_path")
    joined = (df.select("*", spark_path.alias("_spark_path"),
                        F.regexp_replace(spark_path, r"^file:/+", "/").alias("norm_path"))
              .join(F.broadcast(info), "norm_path", "left")
              .withColumn("_file_path", F.coalesce("_listed_path", "_spark_path"))
              .drop("norm_path", "_listed_path", "_spark_path"))
    return to_raw_records(joined, source, salt)


def _norm(uri: str) -> str:
    return "/" + uri.split(":", 1)[1].lstrip("/") if uri.startswith("file:") else uri


def _csv_header(spark: SparkSession, path: str) -> str:
    """The header line of a CSV file, read directly (no Spark job per file). A listed file that is gone
    raises FileNotFoundError (transient: it may be back, e.g. while an upload replaces it)."""
    text = read_text(spark, path, max_lines=1)
    if text is None:
        raise FileNotFoundError(f"listed landing file is gone: {path}")
    return text


def _raw_schema(source: Source) -> T.StructType:
    names = [f"{f.name}_hash" if f.pii else f.name for f in source.fields] + ["_extra", CORRUPT, "_file_path"]
    return T.StructType([T.StructField(n, T.StringType()) for n in names]
                        + [T.StructField("_file_mtime", T.TimestampType())])


def add_run_metadata(raw: DataFrame, run_id: str) -> DataFrame:
    """Final bronze rows: raw records plus run id, ingest time, format and a unique _bronze_id."""
    fmt = F.regexp_extract(F.lower(F.col("_source_file")), r"\.(parquet|csv|jsonl|ndjson|json)$", 1)
    fmt = F.when(fmt.isin("jsonl", "ndjson"), F.lit("json")).otherwise(fmt)
    return (raw.withColumnRenamed("_file_path", "_source_file")
            .withColumn("_source_format", fmt)
            .withColumn("_ingest_run_id", F.lit(run_id))
            .withColumn("_ingested_at", F.current_timestamp())
            .withColumn("_bronze_id", F.format_string("%s-%012d", F.lit(run_id), F.monotonically_increasing_id())))
