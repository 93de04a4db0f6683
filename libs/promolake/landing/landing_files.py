"""Writing DataFrames into the landing folder as plain files named like ones a user drops in."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from promolake.common.files import delete, list_files, rename

EXTENSIONS = {"csv": "csv", "json": "jsonl", "parquet": "parquet"}
WRITE_OPTIONS = {"csv": {"header": "true", "escape": '"'}, "json": {"ignoreNullFields": "false"}, "parquet": {}}


def write_files(spark: SparkSession, frame: DataFrame, landing: str, source: str, fmt: str,
                first: int = 0, partition_by: str | None = None, prefix: str | None = None) -> list[str]:
    """Write frame as landing/<source>/<prefix>-<nnnnn>.<ext> files numbered from `first` and
    return their paths (prefix defaults to the source name).

    Spark writes into the hidden folder landing/_tmp_<source> first (ingestion ignores names starting
    with _), then the part files are moved into place in path order (so partitions by month come in
    month order); a half-written file is never visible to ingestion. Existing files of the same
    name are replaced.
    """
    tmp = f"{landing}/_tmp_{source}"
    writer = frame.write.mode("overwrite").format(fmt).options(**WRITE_OPTIONS[fmt])
    if partition_by:
        writer = writer.partitionBy(partition_by)
    writer.save(tmp)
    paths = []
    parts = (f.path for f in list_files(spark, tmp) if f.path.endswith(f".{fmt}"))
    for number, part in enumerate(parts, first):
        paths.append(f"{landing}/{source}/{prefix or source}-{number:05d}.{EXTENSIONS[fmt]}")
        delete(spark, paths[-1])
        rename(spark, part, paths[-1])
    delete(spark, tmp)
    return paths
