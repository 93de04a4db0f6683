"""The one place a SparkSession is made: the cluster's on Databricks, a Delta-enabled local one elsewhere."""
from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from promolake.common.config import SparkConf


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def get_spark(conf: SparkConf | None = None) -> SparkSession:
    """Return the active session on Databricks; locally build (or reuse) one with Delta Lake configured.

    The Delta jars are resolved by delta-spark's configure_spark_with_delta_pip from Maven Central on
    first use and cached in ~/.ivy2. Session time zone is UTC so that timestamps conform to UTC.
    """
    if on_databricks():
        spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        _session_settings(spark)
        return spark
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    from delta import configure_spark_with_delta_pip

    # Python workers of a local session run the driver's interpreter (the virtual environment),
    # not whatever python3 is first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = conf or SparkConf()
    builder = (
        SparkSession.builder.master(conf.master)
        .appName(conf.app_name)
        .config("spark.driver.memory", conf.driver_memory)
        .config("spark.sql.shuffle.partitions", str(conf.shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, conf.shuffle_partitions)))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", str(conf.show_progress).lower())
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Dderby.system.home=/tmp/promolake-derby")
    )
    for key, value in conf.extra.items():
        builder = builder.config(key, value)
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel(conf.log_level)
    _session_settings(spark)
    return spark


def _session_settings(spark: SparkSession) -> None:
    """Runtime settings the pipeline relies on, on any cluster and Spark version: UTC timestamps, Parquet files
    written by pandas (nanosecond timestamps) readable, as epoch nanoseconds, and non-ANSI SQL semantics."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    # Spark 4 (Databricks Runtime 17.3 LTS and later) turns ANSI mode on by default. The silver rules rely on
    # a malformed value cast to a type giving null (then quarantined under its rule, e.g. unparsable_event_ts)
    # and the features on division by zero giving null, as on Spark 3.5: the same semantics on every version.
    spark.conf.set("spark.sql.ansi.enabled", "false")


class PersistScope:
    """The DataFrames one piece of work persisted, released together.

    ``df = keep(df)`` persists df and remembers it; ``keep.release()`` (or leaving ``with keep:``, on
    success or failure) unpersists every frame it holds. It touches only its own frames, so two runs
    sharing a session (a notebook, threads of a concurrency test) never release each other's data, and
    a frame still needed can be handed on with ``keep.release(but=df)``. Releasing a frame whose data
    another, already computed cached frame was built from does not recompute the latter (Spark keeps
    loaded caches of dependent plans).
    """

    def __init__(self):
        self._frames: list = []

    def __call__(self, df):
        df = df.persist()
        self._frames.append(df)
        return df

    def __len__(self) -> int:
        return len(self._frames)

    def release(self, but=None) -> None:
        """Unpersist every frame held except `but` (one frame), which stays held."""
        for df in self._frames:
            if df is not but:
                df.unpersist()
        self._frames = [df for df in self._frames if df is but]

    def adopt(self, other: "PersistScope") -> None:
        """Take over other's frames (other is left empty): they are released with this scope."""
        self._frames.extend(other._frames)
        other._frames = []

    def __enter__(self) -> "PersistScope":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
