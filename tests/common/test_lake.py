"""The lake catalog: name mapping, schema checks before writes, idempotent MERGE, documented tables."""
from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from promolake.common.config import LakeConf
from promolake.common.lake import Lake, SchemaMismatchError
from promolake.common.tables import spec

pytestmark = pytest.mark.spark


def test_path_and_unity_catalog_names(spark, tmp_path):
    assert Lake(spark, LakeConf(mode="path", root=str(tmp_path))).location("silver.events") == \
        str(tmp_path / "silver" / "events")
    uc = Lake(spark, LakeConf(mode="unity_catalog", catalog="main", schemas={"silver": "promo_silver"}))
    assert uc.location("silver.events") == "`main`.`promo_silver`.`events`"
    with pytest.raises(KeyError, match="unknown table 'silver.nope'"):
        uc.location("silver.nope")


def test_schema_is_checked_before_write(spark, tmp_path):
    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    df = spark.createDataFrame([("r", "users", 1)], "run_id string, source string, files int")
    with pytest.raises(SchemaMismatchError) as err:
        lake.append(df, "ops.ingest_runs")
    msg = str(err.value)
    assert "column files is int, declared bigint" in msg and "missing column rows_read" in msg
    assert not lake.exists("ops.ingest_runs")


def runs(spark, rows):
    return spark.createDataFrame(
        rows, "run_id string, source string, files long, rows_read long, rows_accepted long, "
              "rows_quarantined long, rules map<string,bigint>, rows_retried long, rows_released long, "
              "last_bronze_run_id string") \
        .withColumn("finished_at", F.current_timestamp())


def test_upsert_is_idempotent_and_updates_by_key(spark, tmp_path):
    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    first = runs(spark, [("r1", "users", 1, 5, 4, 1, {"x": 1}, 0, 0, "b1"), ("r1", "items", 1, 3, 3, 0, {}, 0, 0, "b1")])
    assert lake.upsert(first, "ops.ingest_runs").inserted == 2
    assert lake.upsert(first, "ops.ingest_runs", insert_only=True).inserted == 0
    again = runs(spark, [("r1", "users", 1, 6, 5, 1, {"x": 1}, 0, 0, "b1"), ("r2", "users", 0, 0, 0, 0, {}, 0, 0, "b2")])
    result = lake.upsert(again, "ops.ingest_runs")
    assert (result.inserted, result.updated) == (1, 1)
    got = {(r.run_id, r.source): r.rows_read for r in lake.read("ops.ingest_runs").collect()}
    assert got == {("r1", "users"): 6, ("r1", "items"): 3, ("r2", "users"): 0}


def test_table_from_an_older_version_gains_new_declared_columns(spark, tmp_path):
    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    old = runs(spark, [("r1", "users", 1, 5, 4, 1, {}, 0, 0, "b1")]).drop("rows_retried", "rows_released")
    old.write.format("delta").save(lake.location("ops.ingest_runs"))
    lake.upsert(runs(spark, [("r2", "users", 1, 2, 2, 0, {}, 3, 1, "b2")]), "ops.ingest_runs")
    got = {r.run_id: (r.rows_retried, r.rows_released) for r in lake.read("ops.ingest_runs").collect()}
    assert got == {"r1": (None, None), "r2": (3, 1)}


def test_delete_keys_needs_exactly_the_key_columns(spark, tmp_path):
    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    lake.upsert(runs(spark, [("r1", "users", 1, 5, 4, 1, {}, 0, 0, "b1"), ("r1", "items", 1, 3, 3, 0, {}, 0, 0, "b1")]),
                "ops.ingest_runs")
    with pytest.raises(SchemaMismatchError, match="exactly its key columns"):
        lake.delete_keys(spark.createDataFrame([("r1",)], "run_id string"), "ops.ingest_runs")
    assert lake.delete_keys(spark.createDataFrame([("r1", "users"), ("r9", "users")], "run_id string, source string"),
                            "ops.ingest_runs") == 1
    assert [r.source for r in lake.read("ops.ingest_runs").collect()] == ["items"]


def test_tables_carry_documentation(spark, tmp_path):
    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    lake.ensure("silver.quarantine")
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{lake.location('silver.quarantine')}`").first()
    assert "broke the landing contract" in detail.description
    comments = {f.name: f.metadata.get("comment") for f in lake.read("silver.quarantine").schema.fields}
    assert "First contract rule" in comments["rule"]


def test_missing_table_reads_empty_with_declared_schema(spark, tmp_path):
    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    df = lake.read("silver.users")
    assert df.count() == 0 and "email_hash" in df.columns and "email" not in df.columns


def dq_rows(spark, as_of, checks):
    import datetime as dt

    return spark.createDataFrame(
        [("gold.t", as_of, c, ok, 0.0, "e", "m", "run", dt.datetime(2026, 1, 1)) for c, ok in checks],
        "table_name string, as_of date, check_name string, passed boolean, observed double, expectation string, "
        "message string, run_id string, checked_at timestamp")


def test_replace_slice_replaces_that_date_only(spark, tmp_path):
    import datetime as dt

    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    d1, d2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
    lake.upsert(dq_rows(spark, d1, [("a", True), ("b", True)]), "ops.dq_results", replace_slice={"as_of": d1})
    lake.upsert(dq_rows(spark, d2, [("a", True), ("b", True)]), "ops.dq_results", replace_slice={"as_of": d2})
    # re-running d1 with check b gone and a changed: b of d1 is deleted, d2 untouched
    result = lake.upsert(dq_rows(spark, d1, [("a", False)]), "ops.dq_results", replace_slice={"as_of": d1})
    assert (result.inserted, result.updated, result.deleted) == (0, 1, 1)
    got = sorted((str(r.as_of), r.check_name, r.passed) for r in lake.read("ops.dq_results").collect())
    assert got == [("2026-01-01", "a", False), ("2026-01-02", "a", True), ("2026-01-02", "b", True)]
    with pytest.raises(ValueError, match="not one of its keys"):
        lake.upsert(dq_rows(spark, d1, []), "ops.dq_results", replace_slice={"run_id": "x"})


def test_partitioned_gold_table_is_created_partitioned(spark, tmp_path):
    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    lake.ensure("gold.user_profile")
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{lake.location('gold.user_profile')}`").first()
    assert detail.partitionColumns == ["as_of"]


def test_arrays_without_null_elements_fit_a_declared_nullable_array(spark, tmp_path):
    """Regression: collect_list/array() give array<...> with containsNull=false; the declared columns
    allow nulls. The write used to fail with 'column sources is array<string>, declared array<string>'."""
    import datetime as dt

    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    df = spark.range(1).select(F.lit("u1").alias("user_id"), F.lit(dt.date(2025, 1, 1)).alias("as_of"),
                               F.lit(0).alias("user_idx"), F.array(F.lit(1.0).cast("float")).alias("features"),
                               F.lit(1).alias("interactions"), F.lit("1").alias("model_version"),
                               F.current_timestamp().alias("computed_at"))
    assert df.schema["features"].dataType.containsNull is False
    assert lake.upsert(df, "ml.als_user_factors").inserted == 1
    assert lake.read("ml.als_user_factors").first().features == [1.0]


@pytest.mark.parametrize("name", ["ConcurrentAppendException", "ConcurrentDeleteReadException",
                                  "MetadataChangedException"])
def test_a_concurrent_writer_conflict_is_refused_naming_the_table(spark, name):
    """Delta's conflict exceptions share no Python base class; every one becomes ConcurrentWriteError
    (found by tests/test_faults.py: a ConcurrentAppendException went through as an unhandled error)."""
    import delta.exceptions as dx

    from promolake.common.lake import ConcurrentWriteError, _committed

    def commit():
        raise getattr(dx, name)(desc="Files were added to partition [campaign_id=C1]", stackTrace="")

    with pytest.raises(ConcurrentWriteError, match=r"promo.promotion_assignments: another run committed"):
        _committed("promo.promotion_assignments", commit)


@pytest.mark.spark
def test_release_spark_memory_leaves_nothing_cached(spark, tmp_path):
    """The suite's per-module clean-up (tests/conftest.py) really empties the session's block manager:
    frames persisted by a stage, and the snapshot state Delta caches for every table it has read."""
    from tests.conftest import release_spark_memory

    release_spark_memory(spark)
    path = str(tmp_path / "t")
    spark.range(50).write.format("delta").save(path)
    df = spark.read.format("delta").load(path).persist()
    assert df.count() == 50
    assert spark.sparkContext._jsc.getPersistentRDDs().size() >= 1
    assert release_spark_memory(spark) >= 1
    assert spark.sparkContext._jsc.getPersistentRDDs().size() == 0
    assert spark.read.format("delta").load(path).count() == 50      # tables still read after it


def _cached_plans(spark) -> bool:
    return not spark._jsparkSession.sharedState().cacheManager().isEmpty()


@pytest.mark.spark
def test_persist_scope_releases_only_its_own_frames(spark):
    """PersistScope: frames persisted through it are released together (also when the work fails),
    `but` keeps a frame held, `adopt` moves frames between scopes, and another scope's frames and
    the data of a cached frame built on a released one stay."""
    from promolake.common.spark import PersistScope

    spark.catalog.clearCache()
    other = PersistScope()
    theirs = other(spark.range(10).withColumn("who", F.lit("other")))
    with pytest.raises(RuntimeError):
        with PersistScope() as keep:
            a = keep(spark.range(100))
            b = keep(a.where("id % 2 = 0"))
            assert b.count() == 50 and len(keep) == 2
            raise RuntimeError("the stage failed")
    assert not a.is_cached and not b.is_cached and theirs.is_cached
    keep = PersistScope()
    a = keep(spark.range(100))
    b = keep(a.where("id % 2 = 0").withColumn("half", F.col("id") / 2))
    assert b.count() == 50
    keep.release(but=b)
    assert len(keep) == 1 and not a.is_cached and b.is_cached
    assert b.agg(F.sum("half")).first()[0] == sum(range(0, 100, 2)) / 2
    outer = PersistScope()
    outer.adopt(keep)
    assert len(keep) == 0 and len(outer) == 1
    outer.release()
    assert not b.is_cached and theirs.is_cached and _cached_plans(spark)
    other.release()
    assert not _cached_plans(spark)


def test_version_and_time_travel(spark, tmp_path):
    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    assert lake.version("ops.ingest_runs") == -1
    lake.upsert(runs(spark, [("r1", "users", 1, 5, 4, 1, {}, 0, 0, "b1")]), "ops.ingest_runs")
    first = lake.version("ops.ingest_runs")          # created (empty, with its comments), then written
    lake.upsert(runs(spark, [("r1", "users", 1, 7, 7, 0, {}, 0, 0, "b1")]), "ops.ingest_runs")
    assert lake.version("ops.ingest_runs") == first + 1
    assert [r.rows_read for r in lake.read_version("ops.ingest_runs", first).collect()] == [5]
    assert [r.rows_read for r in lake.read_version("ops.ingest_runs", first + 1).collect()] == [7]
    assert lake.read_version("ops.ingest_runs", 0).count() == 0


def test_time_travel_by_table_name(spark):
    """Catalog mode reads a past version by name (the session catalog stands in for Unity Catalog; the
    table is written with saveAsTable: OSS Delta's table builder and DeltaTable.forName take no three-part
    names, Databricks' do)."""
    lake = Lake(spark, LakeConf(mode="unity_catalog", catalog="spark_catalog",
                                schemas={"ops": "promolake_tt_ops"}))
    name = lake.location("ops.ingest_runs")
    spark.sql("CREATE SCHEMA IF NOT EXISTS spark_catalog.promolake_tt_ops")
    try:
        runs(spark, [("r1", "users", 1, 5, 4, 1, {}, 0, 0, "b1")]).write.format("delta").saveAsTable(name)
        runs(spark, [("r1", "users", 1, 7, 7, 0, {}, 0, 0, "b1")]).write.format("delta") \
            .mode("overwrite").saveAsTable(name)
        assert [r.rows_read for r in lake.read_version("ops.ingest_runs", 0).collect()] == [5]
        assert [r.rows_read for r in lake.read_version("ops.ingest_runs", 1).collect()] == [7]
        assert [r.rows_read for r in lake.read("ops.ingest_runs").collect()] == [7]
    finally:
        spark.sql("DROP SCHEMA IF EXISTS spark_catalog.promolake_tt_ops CASCADE")


def test_write_counts_are_of_this_write_even_when_another_commit_follows_at_once(spark, tmp_path, monkeypatch):
    """A writer that commits to the same table between our commit and the read of its counts must not
    lend us its counts (they were read from the latest commit: a concurrent scoring run's counts could be
    reported as ours). The session's own commit tag is restored afterwards."""
    from promolake.common import lake as lake_module

    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    table = "ops.ingest_runs"
    lake.upsert(runs(spark, [("r1", "users", 1, 5, 4, 1, {}, 0, 0, "b1")]), table)
    other = runs(spark, [("r8", "users", 1, 1, 1, 0, {}, 0, 0, "b8"), ("r9", "users", 1, 1, 1, 0, {}, 0, 0, "b9")])
    real_point = lake_module.faults.point

    def another_writer_right_after_ours(name):
        real_point(name)
        if name == f"after_commit:{table}":     # another process: a session with its own commit tag
            spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", "another run")
            other.write.format("delta").mode("append").save(lake.location(table))

    monkeypatch.setattr(lake_module.faults, "point", another_writer_right_after_ours)
    spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", "set by the user")
    try:
        result = lake.upsert(runs(spark, [("r1", "users", 1, 7, 7, 0, {}, 0, 0, "b1"),
                                          ("r2", "users", 1, 3, 3, 0, {}, 0, 0, "b2")]), table)
        assert (result.inserted, result.updated, result.deleted) == (1, 1, 0)
        assert lake.read(table).count() == 4         # r1, r2 and the other writer's r8, r9
        assert spark.conf.get("spark.databricks.delta.commitInfo.userMetadata") == "set by the user"
        monkeypatch.setattr(lake_module.faults, "point", real_point)
        assert lake.append(other, "ops.ingest_runs").inserted == 2
    finally:
        spark.conf.unset("spark.databricks.delta.commitInfo.userMetadata")


def test_commit_counts_read_from_the_log_files_equal_the_tables_history(spark, tmp_path):
    """Path mode reads a write's counts from its commit file (no Spark job per write): the same operation
    metrics as Delta's history() for every commit, a commit missing from the files gives None (history used)."""
    lake = Lake(spark, LakeConf(root=str(tmp_path)))
    table = "ops.ingest_runs"
    lake.upsert(runs(spark, [("r1", "users", 1, 5, 4, 1, {}, 0, 0, "b1")]), table)
    lake.upsert(runs(spark, [("r1", "users", 1, 7, 7, 0, {}, 0, 0, "b1"), ("r2", "users", 1, 3, 3, 0, {}, 0, 0, "b2")]),
                table)
    history = [r for r in lake.delta_table(table).history().select("userMetadata", "operationMetrics").collect()
               if r.userMetadata]           # the table's creation is untagged
    assert len(history) == 2
    for row in history:
        assert lake._local_commit_metrics(table, row.userMetadata) == row.operationMetrics
    assert lake._local_commit_metrics(table, "no such commit") is None
    assert Lake(spark, LakeConf(mode="unity_catalog", catalog="c"))._local_commit_metrics(table, "x") is None


def test_unity_catalog_mode_creates_merges_and_deletes_by_name_on_the_session_catalog(spark):
    """Catalog mode end to end on the session catalog (the stand-in for Unity Catalog in the runtime check):
    open-source Delta's table builder and DeltaTable.forName refused `spark_catalog.<schema>.<table>`
    (ParseException), so every first write of a job failed there."""
    lake = Lake(spark, LakeConf(mode="unity_catalog", catalog="spark_catalog", schemas={"ops": "promolake_uc_ops"}))
    table = "ops.ingest_runs"
    try:
        assert lake.upsert(runs(spark, [("r1", "users", 1, 5, 4, 1, {}, 0, 0, "b1")]), table).inserted == 1
        again = lake.upsert(runs(spark, [("r1", "users", 1, 6, 6, 0, {}, 0, 0, "b1"),
                                         ("r2", "users", 1, 2, 2, 0, {}, 0, 0, "b2")]), table)
        assert (again.inserted, again.updated) == (1, 1)
        assert sorted((r.run_id, r.rows_read) for r in lake.read(table).collect()) == [("r1", 6), ("r2", 2)]
        keys = spark.createDataFrame([("r2", "users")], "run_id string, source string")
        assert lake.delete_keys(keys.select(*spec(table).keys), table) == 1
        assert lake.version(table) == 3 and spark.catalog.tableExists("spark_catalog.promolake_uc_ops.ingest_runs")
    finally:
        spark.sql("DROP SCHEMA IF EXISTS spark_catalog.promolake_uc_ops CASCADE")
