"""Shared fixtures: one session-scoped local SparkSession with Delta, and a temporary lake per test."""
from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from promolake.common.config import load_config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport

REPO = Path(__file__).resolve().parents[1]


_SESSION: list = []     # the session-scoped SparkSession once a test has asked for it


def pytest_collection_modifyitems(session, config, items):
    """The runtime check (marker `runtime`) runs every bundle task in Spark processes of its own: it is started in
    the background once collection is final (pytest_collection_finish) and overlaps with the rest of the suite;
    its tests go last and collect the result."""
    items.sort(key=lambda item: 1 if item.get_closest_marker("runtime") else 0)


def pytest_collection_finish(session):
    from tests.test_runtimes import start_in_background

    if not session.config.option.collectonly:
        start_in_background(session.items)


def pytest_sessionfinish(session, exitstatus):
    from tests.test_runtimes import stop_background

    stop_background()


# Expressions evaluated by Spark's interpreted evaluators instead of generated Java classes (Spark's own test
# setting; results are the same). On the tests' small frames compiling and JIT-warming a new class per query
# costs more than running it: the JVM spent about half its CPU in its JIT compilers, and the features stage
# tests took 126 s instead of 252 s with it (2026-12-02, issue 21). Production sessions keep code generation.
SMALL_DATA_SPARK = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


@pytest.fixture(scope="session")
def spark():
    from promolake.common.config import SparkConf
    from promolake.common.spark import get_spark

    tmp = tempfile.mkdtemp(prefix="promolake-spark-")
    session = get_spark(SparkConf(
        master="local[2]", driver_memory="5g", shuffle_partitions=2, show_progress=False, log_level="ERROR",
        extra={"spark.local.dir": tmp, "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
               "spark.sql.adaptive.enabled": "false", "spark.rdd.compress": "false",
               # cached blocks may give way to execution almost entirely (the suite caches a lot)
               "spark.memory.storageFraction": "0.2",
               # release broadcasts and shuffles of DataFrames Python has dropped (default: every 30 min)
               "spark.cleaner.periodicGC.interval": "2min",
               **SMALL_DATA_SPARK}))
    _SESSION.append(session)
    yield session
    _SESSION.clear()
    session.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def release_spark_memory(session) -> int:
    """Unpersist everything cached in the session (DataFrames, RDDs, Delta's per-table snapshot state);
    returns how many RDDs were persisted before. Delta keeps the state of every table it has opened cached for
    an hour, and stages persist frames they unpersist only when they finish: over the whole suite (hundreds
    of temporary lakes, stages killed on purpose) that filled the test session's memory until Spark
    failed with UNABLE_TO_ACQUIRE_MEMORY (CI, 2026-11-30) and slowed every later test."""
    before = session.sparkContext._jsc.getPersistentRDDs().size()
    session.catalog.clearCache()
    session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    for rdd in list(session.sparkContext._jsc.getPersistentRDDs().values()):
        rdd.unpersist(False)
    session._jvm.System.gc()
    return before


@pytest.fixture(scope="module", autouse=True)
def _release_spark_memory_after_each_module(request):
    """No DataFrame outlives its module (session fixtures return configs and lakes, not frames), so what
    a module cached is released when it ends."""
    yield
    if _SESSION:
        released = release_spark_memory(_SESSION[0])
        log = os.environ.get("PROMOLAKE_TEST_MEMLOG")     # where to note what each module left cached
        if log:
            with open(log, "a") as out:
                out.write(f"{request.module.__name__}\t{released} persisted RDDs released\n")


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    """A fresh lake home (landing/, truth/, tables) for one test."""
    return tmp_path / "lakehouse"


@pytest.fixture
def make_config(lake_root: Path):
    """Build a local Config rooted in the test's lake, with dotted-key overrides."""
    from promolake.common.config import load_config

    def build(*overrides: str, env: str = "local"):
        return load_config(env, overrides=list(overrides), conf_dir=REPO / "conf",
                           environ={"PROMOLAKE_HOME": str(lake_root), "PROMOLAKE_PII_SALT": "test-salt"})

    return build


# A small synthetic world with ALS trained on it, shared by the ALS, text and promotion stage tests
# (session scope: generating, ingesting and training once saves minutes).
WORLD = ["world.users=1000", "world.items=120", "world.days=120", "world.campaigns=2", "world.seed=5",
         # more items launched during the period: cold-start items are bought in the test window
         "world.new_item_share=0.3", "spark.show_progress=false", "als.tuning.trials=2",
         # text model: the packaged MiniLM, kept small so a fine-tune takes seconds on 2 cores
         "text.max_pairs=256", "text.batch_size=16", "text.max_user_len=32", "text.max_item_len=24",
         "text.validation_users=60", "text.learning_rate=1e-4", "text.warmup_steps=2"]
AS_OF = dt.date(2025, 1, 1) + dt.timedelta(days=120)


def generated_world(spark, root: Path, overrides: list[str]):
    """A generated and ingested world in a lake at root (the config it was built with)."""
    from promolake.landing.synthetic_world import run_generate
    from promolake.silver.ingest import run_ingest

    environ = {"PROMOLAKE_HOME": str(root), "PROMOLAKE_PII_SALT": "test-salt"}
    cfg = load_config("local", overrides=overrides, conf_dir=REPO / "conf", environ=environ)
    mp = pytest.MonkeyPatch()
    mp.setenv("PROMOLAKE_PII_SALT", "test-salt")
    run_generate(spark, cfg, report=StageReport("generate", out=io.StringIO()))
    run_ingest(spark, cfg)
    mp.undo()
    return cfg


@pytest.fixture(scope="session")
def trained(spark, tmp_path_factory):
    """(cfg, lake, report of run_als) on a 1,000-user / 120-item / 120-day world."""
    from promolake.ml.train_als import run_als

    cfg = generated_world(spark, tmp_path_factory.mktemp("als") / "lakehouse", WORLD)
    report = run_als(spark, cfg, report=StageReport("als", out=io.StringIO()))
    return cfg, Lake(spark, cfg.lake), report


def promote_uplift_by_hand(cfg) -> None:
    """@champion to the uplift @challenger when there is no champion yet. The uplift model of the tiny test
    worlds is at chance and the gate rejects it (tests/promo/test_score_stage.py checks that); tests of the
    scoring mechanics promote it by hand, as a person would from notebook 05."""
    from mlflow import MlflowClient

    from promolake.common import tracking
    from promolake.ml import gate

    tracking.setup(cfg.mlflow)
    client = MlflowClient()
    challenger, champion = gate.versions(client, cfg.promotion.model_name)
    if champion is None:
        gate.promote(client, cfg.promotion.model_name, challenger, "tiny test world: scoring mechanics only")


def ensure_uplift_champion(trained) -> None:
    """An @champion uplift model on the trained world (for scoring): the score stage tests leave one;
    when they have not run, this trains one and promotes it by hand."""
    from mlflow import MlflowClient

    from promolake.common import tracking
    from promolake.ml import gate
    from promolake.promo.train_uplift import run_train_uplift

    cfg, lake, _ = trained
    tracking.setup(cfg.mlflow)
    if gate.versions(MlflowClient(), cfg.promotion.model_name)[1] is None:
        run_train_uplift(lake.spark, cfg, AS_OF, report=StageReport("train-uplift", out=io.StringIO()))
        promote_uplift_by_hand(cfg)
