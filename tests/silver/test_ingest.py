"""Ingestion end to end on tiny landing folders: counts balance, re-runs change nothing, new files
are picked up, personal data never reaches silver, and a run killed half-way is repaired by the next."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.landing.contract import SOURCES
from promolake.silver import ingest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

EMAILS = ["Ann.Secret@Example.com", "bob.private@example.org"]


def write_landing(root: Path) -> None:
    """A landing folder in three formats with one record for most contract rules."""
    (root / "users").mkdir(parents=True)
    # A name with a space, "+" and "%": Spark reports it URL-encoded, the listing does not.
    (root / "users" / "users 2025+v1%.csv").write_text(
        "user_id,signup_ts,region,age_band,gender,email,loyalty_tier\n"
        f"U1,2025-01-01T00:00:00Z,north,25-34,F,{EMAILS[0]},gold\n"
        f"U2,2025-01-02,south,35-44,M,{EMAILS[1]},\n"
        ",2025-01-02,south,35-44,M,nokey@example.com,\n"
        "U3,not-a-date,east,,,,\n")
    (root / "items").mkdir()
    (root / "items" / "items-1.jsonl").write_text("\n".join([
        json.dumps(dict(item_id="I1", title="Red mug", category="kitchen", list_price=9.5)),
        json.dumps(dict(item_id="I2", title="Blue bag", category="bags", list_price=-3)),
        json.dumps(dict(item_id="I3", title="Lamp", category="home", list_price="12.00", brand="Lumo")),
        "not json at all"]) + "\n")
    (root / "events").mkdir()
    pd.DataFrame([
        dict(event_id="E1", user_id="U1", item_id="I1", event_type="view", event_ts=pd.Timestamp("2025-02-01 10:00")),
        dict(event_id="E2", user_id="U1", item_id="I1", event_type="purchase",
             event_ts=pd.Timestamp("2025-02-01 10:05"), quantity=2, unit_price=9.5, order_id="O1"),
        dict(event_id="E3", user_id="U2", item_id=None, event_type="search",
             event_ts=pd.Timestamp("2025-02-01 11:00"), query_text="red mug"),
        dict(event_id="E4", user_id="U2", item_id="I9", event_type="view", event_ts=pd.Timestamp("2025-02-01 11:01")),
        dict(event_id="E5", user_id="U2", item_id="I1", event_type="click", event_ts=pd.Timestamp("2025-02-01 11:02")),
        dict(event_id="E6", user_id="U1", item_id="I1", event_type="purchase",
             event_ts=pd.Timestamp("2025-02-01 10:05"), quantity=0, unit_price=9.5, order_id="O2"),
        dict(event_id="E2", user_id="U1", item_id="I1", event_type="purchase",
             event_ts=pd.Timestamp("2025-02-01 10:05"), quantity=2, unit_price=9.5, order_id="O1"),
        dict(event_id="E7", user_id="U1", item_id="I1", event_type="view", event_ts=pd.Timestamp("2099-01-01")),
    ]).astype({"quantity": "Int64"}).to_parquet(root / "events" / "events-1.parquet", index=False)
    (root / "events" / "empty.csv").write_text("")
    (root / "events" / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (root / "events" / "_SUCCESS").write_text("")
    (root / "events" / "README.txt").write_text("not data")


EXPECTED_RULES = {
    "users": {"missing_user_id": 1, "unparsable_signup_ts": 1},
    "items": {"non_positive_list_price": 1, "unparsable_record": 1},
    "events": {"orphan_item_id": 1, "unknown_event_type": 1, "non_positive_quantity": 1, "duplicate_key": 1,
               "timestamp_in_future": 1, "unparsable_record": 1},
}


def landing_config(home: Path, salt: str, *overrides: str):
    """The local config of a lake at home that ingests the three sources write_landing writes."""
    from promolake.common.config import load_config

    return load_config("local", overrides=["ingest.sources=[users, items, events]", *overrides],
                       conf_dir=Path(__file__).resolve().parents[2] / "conf",
                       environ={"PROMOLAKE_HOME": str(home), "PROMOLAKE_PII_SALT": salt})


@pytest.fixture(scope="module")
def lake_env(spark, tmp_path_factory):
    home = tmp_path_factory.mktemp("ingest") / "lakehouse"
    write_landing(home / "landing")
    cfg = landing_config(home, "pepper")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROMOLAKE_PII_SALT", "pepper")
        report = ingest.run_ingest(spark, cfg)
        yield cfg, Lake(spark, cfg.lake), report


def test_counts_balance_and_rules(lake_env):
    cfg, lake, report = lake_env
    by_source = {r["source"]: r for r in report.rows}
    assert {s: (r["read"], r["accepted"], r["quarantined"]) for s, r in by_source.items()} == {
        "users": (4, 2, 2), "items": (4, 2, 2), "events": (9, 3, 6)}
    q = lake.read("silver.quarantine").groupBy("source", "rule").count().collect()
    got = {}
    for r in q:
        got.setdefault(r.source, {})[r.rule] = r["count"]
    assert got == EXPECTED_RULES
    runs = {r.source: r for r in lake.read("ops.ingest_runs").collect()}
    for source, r in runs.items():
        assert r.rows_read == r.rows_accepted + r.rows_quarantined
        assert lake.read(f"bronze.{source}").count() == r.rows_read
    assert sorted(r.event_id for r in lake.read("silver.events").collect()) == ["E1", "E2", "E3"]


def test_unreadable_file_is_one_quarantined_record(lake_env):
    _, lake, _ = lake_env
    rows = lake.read("silver.quarantine").where(F.col("_source_file").endswith("broken.parquet")).collect()
    assert len(rows) == 1 and rows[0].raw_record.startswith("unreadable file")
    assert "parquet" in rows[0].raw_record.lower() and "o1" not in rows[0].raw_record.split(":")[1][:4]


def test_schema_drift_kept_in_extra(lake_env):
    _, lake, _ = lake_env
    extra = {r.user_id: r._extra for r in lake.read("bronze.users").collect()}
    assert json.loads(extra["U1"]) == {"loyalty_tier": "gold"}
    items = {r.item_id: r.brand for r in lake.read("silver.items").collect()}
    assert items == {"I1": None, "I3": "Lumo"}  # brand missing from I1's record: null, not rejected


def test_personal_data_never_reaches_the_lake_in_clear(lake_env, spark):
    cfg, lake, _ = lake_env
    users = {r.user_id: r.email_hash for r in lake.read("silver.users").collect()}
    assert len(users["U1"]) == 64 and users["U1"] != users["U2"]
    for name in lake.tables():
        text = "\n".join(json.dumps(r.asDict(recursive=True), default=str) for r in lake.read(name).collect())
        for email in EMAILS:
            assert email.lower() not in text.lower(), f"{email} found in {name}"
    # and the salted hash is the documented one: sha256(salt|lower(trim(email)))
    import hashlib
    assert users["U1"] == hashlib.sha256(f"pepper|{EMAILS[0].lower()}".encode()).hexdigest()


def silver_snapshot(lake: Lake) -> dict:
    out = {}
    for source in ("users", "items", "events"):
        df = lake.read(f"silver.{source}").drop("_ingested_at")
        out[source] = sorted(tuple(r) for r in df.collect())
    out["quarantine"] = lake.read("silver.quarantine").count()
    return out


def test_rerun_changes_nothing(lake_env, spark):
    cfg, lake, _ = lake_env
    before = silver_snapshot(lake)
    versions = {s: lake.delta_table(f"silver.{s}").history(1).first().version for s in ("users", "events")}
    report = ingest.run_ingest(spark, cfg, StageReport("ingest-again"))
    assert all((r["files"], r["read"]) == (0, 0) for r in report.rows)
    assert silver_snapshot(lake) == before
    assert {s: lake.delta_table(f"silver.{s}").history(1).first().version for s in ("users", "events")} == versions


def test_new_files_are_picked_up_incrementally(lake_env, spark):
    cfg, lake, _ = lake_env
    landing = Path(cfg.landing.root)
    (landing / "events" / "events-2.csv").write_text(
        "event_id,user_id,item_id,event_type,event_ts,quantity,unit_price,discount_amount,order_id,query_text\n"
        "E8,U2,I3,purchase,2025-03-01T09:00:00Z,1,12.00,0,O9,\n"
        "E1,U1,I1,view,2025-02-01T10:00:00Z,,,,,\n")
    (landing / "items" / "items-2.jsonl").write_text(
        json.dumps(dict(item_id="I1", title="Red mug XL", category="kitchen", list_price=11.0)) + "\n")
    report = ingest.run_ingest(spark, cfg, StageReport("ingest-new"))
    by_source = {r["source"]: r for r in report.rows}
    assert (by_source["items"]["files"], by_source["items"]["read"], by_source["items"]["updated"]) == (1, 1, 1)
    assert (by_source["events"]["files"], by_source["events"]["read"], by_source["events"]["inserted"]) == (1, 2, 1)
    assert by_source["users"]["read"] == 0
    assert {r.item_id: r.title for r in lake.read("silver.items").collect()}["I1"] == "Red mug XL"
    assert lake.read("silver.events").where("event_id = 'E1'").count() == 1


def test_kill_between_bronze_and_silver_is_repaired(spark, tmp_path):
    """A run killed after its bronze commit (before silver) loses nothing: the next run applies it."""
    from promolake.common.config import load_config

    home = tmp_path / "lakehouse"
    write_landing(home / "landing")
    cfg = load_config("local", overrides=["ingest.sources=[users]"], conf_dir=Path(__file__).resolve().parents[2] / "conf",
                      environ={"PROMOLAKE_HOME": str(home), "PROMOLAKE_PII_SALT": "pepper"})
    lake = Lake(spark, cfg.lake)
    assert ingest.land_to_bronze(spark, lake, cfg.landing.root, SOURCES["users"], "pepper", ingest.new_run_id()) == 1
    # ... process killed here; next run:
    report = ingest.run_ingest(spark, cfg, StageReport("after-kill"))
    assert (report.rows[0]["files"], report.rows[0]["read"], report.rows[0]["accepted"]) == (0, 4, 2)
    # killed again after silver and quarantine were written but before the audit row (watermark):
    ingest.land_to_bronze(spark, lake, cfg.landing.root, SOURCES["users"], "pepper", ingest.new_run_id())
    (Path(cfg.landing.root) / "users" / "users-2.csv").write_text("user_id,region\nU9,west\n,west\n")
    run_id = ingest.new_run_id()
    ingest.land_to_bronze(spark, lake, cfg.landing.root, SOURCES["users"], "pepper", run_id)
    ingest.bronze_to_silver(lake, SOURCES["users"], ingest.rule_settings(cfg, pd.Timestamp.now().to_pydatetime()),
                            run_id, True)
    ingest.run_ingest(spark, cfg, StageReport("replay"))
    assert lake.read("silver.users").count() == 3
    assert lake.read("silver.users").select("user_id").distinct().count() == 3
    assert lake.read("silver.quarantine").count() == 3  # 2 from users-1, 1 from users-2: none twice


def test_late_arriving_reference_releases_the_orphan(spark, tmp_path, monkeypatch):
    """E4 references item I9, unknown at first: quarantined as orphan_item_id. When I9 arrives in a
    later delivery, the next run moves E4 into silver and out of quarantine, exactly once."""
    from promolake.common.config import load_config

    monkeypatch.setenv("PROMOLAKE_PII_SALT", "pepper")
    home = tmp_path / "lakehouse"
    write_landing(home / "landing")
    cfg = load_config("local", overrides=["ingest.sources=[users, items, events]"],
                      conf_dir=Path(__file__).resolve().parents[2] / "conf", environ={"PROMOLAKE_HOME": str(home)})
    lake = Lake(spark, cfg.lake)
    ingest.run_ingest(spark, cfg, StageReport("first"))
    orphan = "source = 'events' AND rule = 'orphan_item_id'"
    assert lake.read("silver.quarantine").where(orphan).count() == 1
    (home / "landing" / "items" / "items-late.jsonl").write_text(
        json.dumps(dict(item_id="I9", title="Late lamp", category="home", list_price=20)) + "\n")
    report = ingest.run_ingest(spark, cfg, StageReport("late"))
    events = next(r for r in report.rows if r["source"] == "events")
    assert (events["read"], events["released"]) == (0, "1/1")
    assert lake.read("silver.quarantine").where(orphan).count() == 0
    assert lake.read("silver.events").where("event_id = 'E4'").count() == 1
    run = lake.read("ops.ingest_runs").where("source = 'events'").orderBy(F.desc("run_id")).first()
    assert (run.rows_read, run.rows_retried, run.rows_released) == (0, 1, 1)
    # a further run has nothing left to retry and changes nothing
    again = next(r for r in ingest.run_ingest(spark, cfg, StageReport("again")).rows if r["source"] == "events")
    assert (again["read"], again["released"]) == (0, "0/0")
    assert lake.read("silver.events").count() == 4


def test_csv_files_with_different_headers_are_read_by_their_own_header(spark, tmp_path):
    from promolake.bronze.raw_records import read_raw_records
    from promolake.common.files import list_files

    (tmp_path / "a.csv").write_text("user_id,region\nU1,north\n")
    (tmp_path / "b.csv").write_text("region,USER_ID,age_band\nsouth,U2,25-34\n")
    rows = read_raw_records(spark, list_files(spark, str(tmp_path)), SOURCES["users"], "salt").collect()
    assert sorted((r.user_id, r.region, r.age_band) for r in rows) == [("U1", "north", None), ("U2", "south", "25-34")]
