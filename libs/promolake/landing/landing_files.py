"""Writing DataFrames into the landing folder as plain files named like ones a user drops in."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from promolake.common import files

EXTENSIONS = {"parquet": "parquet", "csv": "csv", "json": "jsonl"}


def write_landing(spark: SparkSession, df: DataFrame, landing_root: str, source: str, prefix: str,
                  fmt: str = "parquet", num_files: int = 1) -> list[str]:
    """Write df as `num_files` files landing/<source>/<prefix>-<nnnnn>.<ext>; returns their paths.

    Spark writes into a hidden temporary folder first (ignored by ingestion), then the part files
    are moved into place, so a half-written file is never visible to ingestion.
    """
    root = landing_root.rstrip("/")
    tmp = f"{root}/_tmp_{source}_{prefix}"
    files.delete(spark, tmp)
    writer = df.coalesce(num_files).write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", True).option("escape", '"').option("timestampFormat",
                                                                   "yyyy-MM-dd'T'HH:mm:ss'Z'").csv(tmp)
    elif fmt == "json":
        writer.option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss'Z'").json(tmp)
    else:
        writer.parquet(tmp)
    parts = [f for f in files.list_files(spark, tmp) if f.path.rsplit("/", 1)[-1].startswith("part-")]
    out = []
    for n, part in enumerate(parts):
        dest = f"{root}/{source}/{prefix}-{n:05d}.{EXTENSIONS[fmt]}"
        files.delete(spark, dest)
        files.rename(spark, part.path, dest)
        out.append(dest)
    files.delete(spark, tmp)
    return out
