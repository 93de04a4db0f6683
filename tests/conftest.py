"""Shared fixtures: one session-scoped local SparkSession with Delta, and a temporary lake per test."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark():
    from promolake.common.config import SparkConf
    from promolake.common.spark import get_spark

    tmp = tempfile.mkdtemp(prefix="promolake-spark-")
    session = get_spark(SparkConf(
        master="local[2]", driver_memory="3g", shuffle_partitions=2, show_progress=False, log_level="ERROR",
        extra={"spark.local.dir": tmp, "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
               "spark.sql.adaptive.enabled": "false", "spark.rdd.compress": "false"}))
    yield session
    session.stop()
    shutil.rmtree(tmp, ignore_errors=True)


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
