"""The lake catalog: the one module that maps logical table names to storage and reads/writes them.

Locally a logical name such as silver.events is a path-based Delta table <root>/silver/events;
on Databricks it is the Unity Catalog table <catalog>.<schema for silver>.events. Writes are
keyed on explicit columns (MERGE) or append-only, so re-running a stage is safe, and every
write checks the DataFrame against the table's declared schema first.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any, Iterable, Mapping

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from promolake.common import faults
from promolake.common.config import LakeConf, validate_identifier
from promolake.common.tables import TABLES, TableSpec, spec


class ConcurrentWriteError(RuntimeError):
    """Another writer committed a conflicting change to the same table (Delta optimistic concurrency):
    nothing of this write was committed."""


def _conflicts() -> tuple[type[BaseException], ...]:
    """Delta's optimistic-concurrency exceptions. In Python they share no base class of their own (each
    derives from pyspark's CapturedException), so they are listed by name."""
    import delta.exceptions as dx

    return tuple(getattr(dx, n) for n in dir(dx) if n.startswith(("Concurrent", "DeltaConcurrent"))
                 or n in ("MetadataChangedException", "ProtocolChangedException"))


def _committed(table: str, commit) -> None:
    """Run one Delta commit; a conflict with a concurrent writer becomes ConcurrentWriteError naming the
    table (the commit is all-or-nothing: nothing of ours is in the table)."""
    faults.point(f"before_commit:{table}")
    try:
        commit()
    except _conflicts() as err:
        raise ConcurrentWriteError(
            f"{table}: another run committed a conflicting change first ({type(err).__name__}); nothing of this "
            "run's write was committed. Re-run the stage once the other run has finished.") from err
    faults.point(f"after_commit:{table}")


class SchemaMismatchError(ValueError):
    """A DataFrame does not match the declared schema of the table it is written to."""


@dataclass(frozen=True)
class WriteResult:
    table: str
    inserted: int
    updated: int
    deleted: int = 0


_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
_RECENT_COMMITS = 20        # where a write's own commit is looked for first (then the whole history)


def _quote(*parts: str) -> str:
    return ".".join(f"`{validate_identifier(p)}`" for p in parts)


SESSION_CATALOG = "spark_catalog"


class Lake:
    """Reads and writes promolake's tables by logical name (see promolake.common.tables)."""

    def __init__(self, spark: SparkSession, conf: LakeConf):
        self.spark = spark
        self.conf = conf

    # ----- naming -------------------------------------------------------------------------
    def location(self, table: str | TableSpec) -> str:
        """Path (path mode) or quoted catalog.schema.table (Unity Catalog) of a logical table."""
        t = spec(table) if isinstance(table, str) else table
        validate_identifier(t.name, "table name")
        if self.conf.mode == "path":
            return os.path.join(self._root(), t.layer, t.name)
        return _quote(self.conf.catalog, self.conf.schemas[t.layer], t.name)

    def _root(self) -> str:
        return os.path.abspath(self.conf.root) if "://" not in self.conf.root else self.conf.root

    # ----- reading ------------------------------------------------------------------------
    def exists(self, table: str) -> bool:
        loc = self.location(table)
        if self.conf.mode == "path":
            return DeltaTable.isDeltaTable(self.spark, loc)
        return self.spark.catalog.tableExists(loc.replace("`", ""))

    def read(self, table: str) -> DataFrame:
        """The current version of a table; a missing table reads as empty with its declared schema."""
        if not self.exists(table):
            return self.spark.createDataFrame([], spec(table).schema)
        loc = self.location(table)
        if self.conf.mode == "path":
            return self.spark.read.format("delta").load(loc)
        return self.spark.read.table(loc)

    def version(self, table: str) -> int:
        """The table's current Delta version (-1: no table)."""
        if not self.exists(table):
            return -1
        return int(self.delta_table(table).history(1).select("version").first()[0])

    def read_version(self, table: str, version: int) -> DataFrame:
        """The table as it was at a Delta version (time travel)."""
        loc = self.location(table)
        if self.conf.mode == "path":
            return self.spark.read.format("delta").option("versionAsOf", int(version)).load(loc)
        return self.spark.read.option("versionAsOf", int(version)).table(loc)

    def delta_table(self, table: str) -> DeltaTable:
        if self.conf.mode == "path":
            return DeltaTable.forPath(self.spark, self.location(table))
        return DeltaTable.forName(self.spark, self._delta_name(table))

    def _delta_name(self, table: str | TableSpec) -> str:
        """The table's name as Delta's Python API takes it. Databricks' Delta takes catalog.schema.table; the
        open-source one (the local stand-in for Unity Catalog, the session catalog) takes at most
        schema.table, which in the session catalog names the same table."""
        t = spec(table) if isinstance(table, str) else table
        if self.conf.catalog == SESSION_CATALOG:
            return _quote(self.conf.schemas[t.layer], t.name)
        return self.location(t)

    # ----- writing ------------------------------------------------------------------------
    def ensure(self, table: str) -> None:
        """Create the table with its declared schema and comments if it does not exist."""
        t = spec(table)
        if self.exists(table):
            return
        builder = DeltaTable.createIfNotExists(self.spark)
        if self.conf.mode == "path":
            builder = builder.location(self.location(t))
        else:
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {_quote(self.conf.catalog, self.conf.schemas[t.layer])}")
            builder = builder.tableName(self._delta_name(t).replace("`", ""))
        for f in t.fields:
            builder = builder.addColumn(f.name, f.dtype, comment=f.doc)
        if t.partition_by:
            builder = builder.partitionedBy(*t.partition_by)
        builder.comment(t.doc).execute()

    def check_schema(self, df: DataFrame, table: str) -> DataFrame:
        """Return df with columns in declared order; raise SchemaMismatchError naming what differs."""
        t = spec(table)
        declared = {f.name: f.dtype for f in t.fields}
        actual = {f.name: f.dataType for f in df.schema.fields}
        problems = [f"missing column {c}" for c in declared if c not in actual]
        problems += [f"unexpected column {c}" for c in actual if c not in declared]
        problems += [
            f"column {c} is {actual[c].simpleString()}, declared {declared[c].simpleString()}"
            for c in declared if c in actual and actual[c].simpleString() != declared[c].simpleString()
        ]
        if problems:
            raise SchemaMismatchError(f"cannot write {table}: " + "; ".join(problems))
        # nested nullability (array elements, map values) may differ, e.g. collect_list gives array<string>
        # without nulls where array<string> with nulls is declared: cast to the declaration
        return df.select(*[F.col(c) if actual[c] == declared[c] else F.col(c).cast(declared[c]) for c in declared])

    def append(self, df: DataFrame, table: str) -> WriteResult:
        """Append rows in one Delta commit (bronze, logs); creates the table with its comments first."""
        df = self.check_schema(df, table)
        self.ensure(table)
        return WriteResult(table, self._write(df, table).get("numOutputRows", 0), 0)

    def _write(self, df: DataFrame, table: str) -> dict[str, int]:
        # mergeSchema: a table created by an older version gains columns added to its declared schema.
        writer = df.write.format("delta").mode("append").option("mergeSchema", "true")
        if self.conf.mode == "path":
            return self._commit(table, lambda: writer.save(self.location(table)))
        return self._commit(table, lambda: writer.saveAsTable(self.location(table).replace("`", "")))

    def _commit(self, table: str, commit) -> dict[str, int]:
        """Run one Delta commit (see _committed) tagged with a token of its own in the commit's userMetadata,
        and return that commit's operation metrics: found by the token, not as "the latest commit", so a
        concurrent writer committing right after ours cannot lend us its counts. The tag is set in the
        session conf Delta reads for it (the only way to tag a MERGE), restored afterwards; one writer
        thread per SparkSession is assumed, as everywhere in promolake."""
        token = f"promolake:{table}:{uuid.uuid4().hex}"
        before = self.spark.conf.get(_USER_METADATA, None)
        self.spark.conf.set(_USER_METADATA, token)
        try:
            _committed(table, commit)
        finally:
            if before is None:
                self.spark.conf.unset(_USER_METADATA)
            else:
                self.spark.conf.set(_USER_METADATA, before)
        metrics = self._local_commit_metrics(table, token)
        if metrics is None:
            history = self.delta_table(table).history
            row = (history(_RECENT_COMMITS).where(F.col("userMetadata") == token).select("operationMetrics").first()
                   or history().where(F.col("userMetadata") == token).select("operationMetrics").first())
            metrics = (row.operationMetrics if row else None) or {}
        return {k: int(v) for k, v in metrics.items() if str(v).isdigit()}

    def _local_commit_metrics(self, table: str, token: str) -> dict | None:
        """The operation metrics of the commit tagged `token`, read from the newest commit files of a table on the
        local file system (what history() reads, without a Spark job per write); None where the table is not a
        local folder (Unity Catalog, object stores) or the commit is not among the newest files."""
        if self.conf.mode != "path" or ("://" in self.conf.root and not self.conf.root.startswith("file:")):
            return None
        log = Path(self.location(table).removeprefix("file:")) / "_delta_log"
        versions = sorted((int(p.stem) for p in log.glob("*.json") if p.stem.isdigit()), reverse=True)
        for version in versions[:_RECENT_COMMITS]:
            try:
                lines = (log / f"{version:020d}.json").read_text().splitlines()
            except FileNotFoundError:      # cleaned up by log retention meanwhile
                continue
            for line in lines:
                info = json.loads(line).get("commitInfo") if line.strip() else None
                if info is not None and info.get("userMetadata") == token:
                    return info.get("operationMetrics") or {}
        return None

    def upsert(self, df: DataFrame, table: str, update_when: str | None = None,
               insert_only: bool = False, replace_slice: Mapping[str, Any] | None = None) -> WriteResult:
        """MERGE df into table on the table's keys, in one commit; df must not repeat a key.

        Args:
            update_when: SQL condition over aliases t (target) and s (source) that must hold for a
                matched row to be replaced; None replaces every match.
            insert_only: leave matched rows alone (idempotent logs such as quarantine).
            replace_slice: column -> value (e.g. {"as_of": date}) naming the slice df replaces: target
                rows of that slice whose key is not in df are deleted in the same commit, so re-running
                a date replaces that date only and leaves no stale rows. df must lie inside the slice.
        A table that does not exist yet is created by a plain append (one commit, so a kill leaves
        either no table or the whole write).
        """
        t = spec(table)
        df = self.check_schema(df, table)
        if not self.exists(table):
            self.ensure(table)
            return WriteResult(table, self._write(df, table).get("numOutputRows", 0), 0)
        on: Column = reduce(lambda a, b: a & b, [F.col(f"t.`{k}`").eqNullSafe(F.col(f"s.`{k}`")) for k in t.keys])
        in_slice = None
        if replace_slice:
            for col in replace_slice:
                if col not in t.keys:
                    raise ValueError(f"replace_slice column {col!r} of {table} is not one of its keys {list(t.keys)}")
            in_slice = reduce(lambda a, b: a & b, [F.col(f"t.`{c}`") == F.lit(v) for c, v in replace_slice.items()])
            on = on & in_slice  # lets Delta prune files outside the slice
        # Schema evolution adds declared columns an older table lacks (df was checked against the declaration).
        merge = self.delta_table(table).alias("t").merge(df.alias("s"), on).withSchemaEvolution()
        if not insert_only:
            merge = merge.whenMatchedUpdateAll(condition=update_when)
        merge = merge.whenNotMatchedInsertAll()
        if in_slice is not None:
            merge = merge.whenNotMatchedBySourceDelete(condition=in_slice)
        metrics = self._commit(table, merge.execute)
        return WriteResult(table, metrics.get("numTargetRowsInserted", 0), metrics.get("numTargetRowsUpdated", 0),
                           metrics.get("numTargetRowsDeleted", 0))

    def delete_keys(self, keys: DataFrame, table: str) -> int:
        """Delete the rows whose key (the table's key columns, exactly) is in `keys`, in one commit;
        returns the number of rows deleted."""
        t = spec(table)
        if sorted(keys.columns) != sorted(t.keys):
            raise SchemaMismatchError(f"delete from {table} needs exactly its key columns {list(t.keys)}, "
                                      f"got {keys.columns}")
        if not self.exists(table):
            return 0
        on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in t.keys)
        return self._commit(table, self.delta_table(table).alias("t").merge(keys.distinct().alias("s"), on)
                            .whenMatchedDelete().execute).get("numTargetRowsDeleted", 0)

    def tables(self, layers: Iterable[str] | None = None) -> list[str]:
        """Logical names of existing tables, optionally limited to some layers."""
        return [n for n, t in TABLES.items() if (layers is None or t.layer in layers) and self.exists(n)]

