"""Faults: a stage killed at a fault point (promolake.common.faults: before / after each Delta commit,
after a model version is registered, before an alias moves) and then re-run ends with exactly the tables
of an uninterrupted run: same rows, nothing duplicated, no partial date or campaign. While it is dead,
readers see the previous state of each table whole, never a mix. Two scoring runs of one campaign at
once leave one whole set of assignments; the loser is refused with a clear message.

CI runs a subset (ingest, scoring, concurrency); PROMOLAKE_LONG_TESTS=1 adds the features, ALS and
registry kill points (each is a stage run or two on a small world)."""
from __future__ import annotations

import io
import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from promolake.common import faults
from promolake.common.lake import ConcurrentWriteError, Lake
from promolake.common.reporting import StageReport
from tests.conftest import AS_OF, REPO, ensure_uplift_champion

pytestmark = [pytest.mark.spark, pytest.mark.slow]
LONG = os.environ.get("PROMOLAKE_LONG_TESTS") == "1"
long_only = pytest.mark.skipif(not LONG, reason="long fault suite: set PROMOLAKE_LONG_TESTS=1")

# columns that differ between two runs by design: run ids, wall-clock times
VOLATILE = {"_bronze_id", "_ingest_run_id", "_ingested_at", "last_bronze_run_id", "first_seen_ts", "quarantined_at",
            "finished_at", "checked_at", "computed_at", "created_at", "run_id", "run_ids", "score_run_id"}


HOME = re.compile(r"(file:)?/[^\s'\"]*?/lakehouse/")


def snapshot(lake: Lake, tables, where=None) -> dict[str, list[tuple]]:
    out = {}
    for name in tables:
        if not lake.exists(name):
            out[name] = None
            continue
        df = lake.read(name)
        if where is not None:
            df = df.where(where)
        df = df.drop(*[c for c in df.columns if c in VOLATILE])
        # the lake's own folder appears in file names (_source_file): compare lakes in different folders
        out[name] = sorted(tuple(HOME.sub("<home>/", str(v)) for v in r) for r in df.collect())
    return out


def kill(point: str, stage, *args, **kwargs) -> None:
    """Run stage(*args) with the process 'killed' at `point`; the test fails if the point is never passed."""
    faults.reset()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(faults.ENV, point)
        with pytest.raises(faults.SimulatedKill):
            stage(*args, **kwargs)
    faults.reset()


def quiet(name: str) -> StageReport:
    return StageReport(name, out=io.StringIO())


# ----- ingest: a fresh lake per case, the same landing files --------------------------------------

def config(home: Path):
    from tests.silver.test_ingest import landing_config

    return landing_config(home, "faults", "spark.show_progress=false")


@pytest.fixture(scope="module")
def landing(spark, tmp_path_factory):
    """(landing folder, its tables after one uninterrupted ingest): the hand-made landing folder of
    tests/silver/test_ingest.py (three sources in three formats, a record for most contract rules)."""
    from promolake.silver.ingest import run_ingest
    from tests.silver.test_ingest import write_landing

    home = tmp_path_factory.mktemp("faults-ref") / "lakehouse"
    write_landing(home / "landing")
    cfg = config(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROMOLAKE_PII_SALT", "faults")
        run_ingest(spark, cfg, report=quiet("ingest"))
    lake = Lake(spark, cfg.lake)
    tables = lake.tables(["bronze", "silver"])
    assert "silver.quarantine" in tables
    return Path(cfg.landing.root), tables, snapshot(lake, tables)


INGEST_POINTS = ["after_commit:bronze.events",          # bronze written, silver not
                 "after_commit:silver.events",          # silver written, quarantine and audit row not
                 "before_commit:ops.ingest_runs@2",     # the second source's audit row (its watermark)
                 "before_commit:silver.quarantine@2"]


@pytest.mark.parametrize("point", INGEST_POINTS if LONG else INGEST_POINTS[:2])
def test_ingest_killed_then_rerun_equals_an_uninterrupted_run(spark, landing, tmp_path, point, monkeypatch):
    from promolake.silver.ingest import run_ingest

    source, tables, expected = landing
    home = tmp_path / "lakehouse"
    shutil.copytree(source, home / "landing")
    monkeypatch.setenv("PROMOLAKE_PII_SALT", "faults")
    cfg = config(home)
    kill(point, run_ingest, spark, cfg, report=quiet("ingest"))
    run_ingest(spark, cfg, report=quiet("ingest again"))
    got = snapshot(Lake(spark, cfg.lake), tables)
    for name in tables:
        assert got[name] == expected[name], f"{name} differs after a kill at {point}"


# ----- a real process killed: os._exit at a commit, SIGKILL at a random moment --------------------------

def ingest_process(home: Path, fault: str | None = None):
    """`promolake ingest` on the lake at home, as a separate process (its own JVM)."""
    import subprocess
    import sys

    env = {**os.environ, "PROMOLAKE_HOME": str(home), "PROMOLAKE_PII_SALT": "faults"}
    env.pop(faults.ENV, None)
    if fault:
        env.update({faults.ENV: fault, faults.MODE_ENV: "exit"})
    args = [sys.executable, "-m", "promolake.cli", "ingest", "--conf", "ingest.sources=[users, items, events]",
            "--conf", "spark.show_progress=false"]
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def fresh_home(landing_dir: Path, tmp_path: Path) -> Path:
    home = tmp_path / "lakehouse"
    shutil.copytree(landing_dir, home / "landing")
    return home


def rerun_equals_uninterrupted(spark, home: Path, tables, expected, monkeypatch, why: str) -> None:
    from promolake.silver.ingest import run_ingest

    monkeypatch.setenv("PROMOLAKE_PII_SALT", "faults")
    cfg = config(home)
    run_ingest(spark, cfg, report=quiet("ingest again"))
    got = snapshot(Lake(spark, cfg.lake), tables)
    for name in tables:
        assert got[name] == expected[name], f"{name} differs after {why}"


def orphans(table_dir: Path) -> list[str]:
    """Data files of a Delta table that no commit in its log adds (written by a writer that died)."""
    import json

    added = set()
    for log in (table_dir / "_delta_log").glob("*.json"):
        for line in log.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                added.add(action["add"]["path"])
    return [p.name for p in table_dir.glob("*.parquet") if p.name not in added]


def test_ingest_process_sigkilled_inside_a_delta_commit_is_repaired_by_a_rerun(spark, landing, tmp_path, monkeypatch):
    """SIGKILL the moment silver.events has data files of this run but its log does not list them yet (the
    files are written, the commit is not): orphan files on disk, no finally block, no cleanup. The re-run
    (another process) ends with the uninterrupted tables."""
    import signal
    import time

    source, tables, expected = landing
    home = fresh_home(source, tmp_path)
    table = home / "silver" / "events"
    proc = ingest_process(home)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if table.is_dir() and any(n.endswith(".parquet") for n in os.listdir(table)) and orphans(table):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the process ended before the commit could be caught:\n{out[-3000:]}"
    assert orphans(table), "killed inside the commit: its data files are on disk, not in the log"
    rerun_equals_uninterrupted(spark, home, tables, expected, monkeypatch, "a SIGKILL inside a Delta commit")


@pytest.mark.parametrize("seed", range(6) if LONG else [0])
def test_ingest_process_sigkilled_at_a_random_moment_is_repaired_by_a_rerun(spark, landing, tmp_path, monkeypatch,
                                                                             seed):
    """SIGKILL at a random moment after the first Delta commit of the run (seeded: the failure names the
    seed and the moment); whatever the moment, the re-run ends with the uninterrupted tables."""
    import random
    import signal
    import time

    source, tables, expected = landing
    home = fresh_home(source, tmp_path)
    delay = random.Random(seed).uniform(0.0, 8.0)
    proc = ingest_process(home)
    first_commit = home / "bronze" / "users" / "_delta_log" / "00000000000000000000.json"
    deadline = time.monotonic() + 300
    while not first_commit.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    rerun_equals_uninterrupted(spark, home, tables, expected, monkeypatch,
                               f"SIGKILL {delay:.2f}s after the first commit (seed {seed}, process had "
                               f"{'already finished' if finished else 'not finished'})")


def test_a_fault_point_that_is_never_passed_fails_the_test(spark, tmp_path):
    """The harness itself: kill() at a point the stage never reaches must not pass silently."""
    with pytest.raises(pytest.fail.Exception):
        kill("after_commit:no.such_table", lambda: None)


# ----- scoring: the shared trained world ----------------------------------------------------------

@pytest.fixture(scope="module")
def scoring(spark, trained):
    """(cfg for budget A, cfg for budget B, the campaign's tables after an uninterrupted run of each)."""
    from promolake.promo.scoring import run_score

    cfg, lake, _ = trained
    ensure_uplift_champion(trained)

    def with_budget(budget):
        return cfg.model_copy(update={"promotion": cfg.promotion.model_copy(update={
            "budget": budget, "cooldown_days": 0, "control_share": 0.2, "explore_share": 0.1})})

    a, b = with_budget(25.0), with_budget(70.0)
    tables = ["promo.offer_scores", "promo.promotion_assignments"]
    where = F.col("campaign_id") == "DEMO01"
    run_score(spark, b, "DEMO01", AS_OF, report=quiet("score B"))
    snap_b = snapshot(lake, tables, where)
    run_score(spark, a, "DEMO01", AS_OF, report=quiet("score A"))
    snap_a = snapshot(lake, tables, where)
    assert snap_a != snap_b
    return a, b, lake, tables, where, snap_a, snap_b


SCORE_POINTS = ["after_commit:promo.offer_scores", "before_commit:promo.promotion_assignments",
                "before_commit:promo.offer_scores"]


@pytest.mark.parametrize("point", SCORE_POINTS if LONG else SCORE_POINTS[:1])
def test_scoring_killed_leaves_whole_assignments_and_a_rerun_completes_it(spark, scoring, point):
    from promolake.promo.scoring import run_score

    a, b, lake, tables, where, snap_a, snap_b = scoring
    assert snapshot(lake, tables, where) == snap_a
    kill(point, run_score, spark, b, "DEMO01", AS_OF, report=quiet("score B, killed"))
    # marketing operations read the assignments of the last complete run, never half of the new one
    assert snapshot(lake, ["promo.promotion_assignments"], where) == {
        "promo.promotion_assignments": snap_a["promo.promotion_assignments"]}
    run_score(spark, b, "DEMO01", AS_OF, report=quiet("score B again"))
    assert snapshot(lake, tables, where) == snap_b
    if LONG:    # the next kill point starts from A again
        run_score(spark, a, "DEMO01", AS_OF, report=quiet("back to A"))


def test_two_scoring_runs_at_once_leave_one_whole_set_of_assignments(spark, scoring):
    from promolake.promo.scoring import run_score

    a, b, lake, tables, where, snap_a, snap_b = scoring
    outcome = {}

    def score(name, cfg):
        try:
            run_score(spark, cfg, "DEMO01", AS_OF, report=quiet(f"score {name}"))
            outcome[name] = "committed"
        except ConcurrentWriteError as err:
            outcome[name] = str(err)

    threads = [threading.Thread(target=score, args=(n, c)) for n, c in (("A", a), ("B", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = snapshot(lake, tables, where)
    # one run's whole set of assignments, and the scores of that same run beside them
    assert final in (snap_a, snap_b)
    runs = {t: {r[0] for r in lake.read(t).where(where).select("score_run_id").distinct().collect()} for t in tables}
    assert len(runs["promo.offer_scores"]) == 1 and runs["promo.offer_scores"] == runs["promo.promotion_assignments"]
    refused = [m for m in outcome.values() if m != "committed"]
    assert len(outcome) == 2 and all("another run committed a conflicting change" in m
                                     or "stopped without touching promo.promotion_assignments" in m
                                     or "this run's are not kept" in m for m in refused)


# ----- long suite: features, ALS, registry --------------------------------------------------------

@long_only
@pytest.mark.parametrize("point", ["after_commit:gold.user_profile", "before_commit:gold.market_trend_daily",
                                   "after_commit:gold.category_forecast"])
def test_features_killed_then_rerun_equals_an_uninterrupted_run(spark, trained, point):
    from promolake.gold.features import run_features

    cfg, lake, _ = trained
    run_features(spark, cfg, AS_OF, report=quiet("features"))
    gold = [n for n in lake.tables(["gold", "ops"]) if n != "ops.ingest_runs"]
    expected = snapshot(lake, gold)
    kill(point, run_features, spark, cfg, AS_OF, report=quiet("features, killed"))
    run_features(spark, cfg, AS_OF, report=quiet("features again"))
    assert snapshot(lake, gold) == expected


@long_only
@pytest.mark.parametrize("point", ["after_commit:ml.als_user_factors", "after_commit:ml.user_candidates",
                                   "after_register:promolake_als"])
def test_als_killed_then_rerun_leaves_one_complete_date_and_a_loadable_alias(spark, trained, point):
    import mlflow
    from mlflow import MlflowClient

    from promolake.ml import gate
    from promolake.ml.train_als import run_als

    cfg, lake, _ = trained
    cfg = cfg.model_copy(update={"als": cfg.als.model_copy(update={"tune": False})})
    tables = ["ml.als_user_factors", "ml.als_item_factors", "ml.als_candidates", "ml.user_candidates",
              "ml.similar_items"]
    client = MlflowClient()
    before = gate.versions(client, cfg.als.model_name)[0]
    kill(point, run_als, spark, cfg, AS_OF, report=quiet("als, killed"))
    # while dead: the alias still names a complete, loadable version
    assert gate.versions(client, cfg.als.model_name)[0] == before
    mlflow.pyfunc.load_model(f"models:/{cfg.als.model_name}@challenger")
    run_als(spark, cfg, AS_OF, report=quiet("als again"))
    after = gate.versions(client, cfg.als.model_name)[0]
    assert int(after) > int(before)
    for name in tables:
        day = lake.read(name).where(F.col("as_of") == F.lit(AS_OF))
        key = [c for c in ("user_id", "item_id", "neighbour_item_id") if c in day.columns]
        assert day.count() > 0 and day.count() == day.select(*key).distinct().count(), name
        assert {r.model_version for r in day.select("model_version").distinct().collect()} == {after}, name
