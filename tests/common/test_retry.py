"""Transient failures: retried with back-off, then one clear error; permanent ones fail (or are quarantined) at
once. The ingest cases use real Spark reads of a landing file that vanishes after it was listed; the
MLflow cases a tracking server that is not there."""
from __future__ import annotations

import contextlib
import io
import threading
import time
from pathlib import Path

import pytest

from promolake.common import retry
from promolake.common.config import RetryConf, load_config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from tests.conftest import REPO

FAST = RetryConf(attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)


def flaky(failures: list[BaseException], value="ok"):
    """A function failing with the given errors in turn, then returning value; .calls counts its calls."""
    def fn():
        fn.calls += 1
        if failures:
            raise failures.pop(0)
        return value
    fn.calls = 0
    return fn


def test_transient_errors_are_retried_until_the_call_succeeds():
    fn = flaky([ConnectionError("refused"), TimeoutError("slow")])
    logged = []
    assert retry.call(fn, "the thing", FAST, retry.transient_mlflow, log=logged.append) == "ok"
    assert fn.calls == 3
    assert [m.split(" failed")[0] for m in logged] == ["the thing: attempt 1/3", "the thing: attempt 2/3"]


def test_after_the_last_attempt_the_error_names_what_how_often_and_why():
    fn = flaky([ConnectionError("refused")] * 5)
    with pytest.raises(retry.TransientFailure) as err:
        retry.call(fn, "MLflow at http://x", FAST, retry.transient_mlflow, hint="check it", log=lambda m: None)
    assert fn.calls == 3
    text = str(err.value)
    assert text.startswith("MLflow at http://x failed after 3 attempts over ")
    assert "ConnectionError: refused" in text and text.endswith("check it")
    assert isinstance(err.value.__cause__, ConnectionError)


def test_back_off_doubles_up_to_the_cap():
    fn = flaky([ConnectionError("x")] * 4)
    conf = RetryConf(attempts=4, initial_backoff_s=0.2, max_backoff_s=0.3)
    waits = []
    with pytest.raises(retry.TransientFailure):
        retry.call(fn, "it", conf, retry.transient_mlflow, log=lambda m: waits.append(float(m.rsplit(" ", 1)[1][:-1])))
    assert waits == [0.2, 0.3, 0.3]     # 0.2, 0.4 -> capped, 0.8 -> capped


def test_a_permanent_error_is_raised_at_once_unchanged():
    fn = flaky([ValueError("no such model")])
    with pytest.raises(ValueError, match="no such model"):
        retry.call(fn, "it", FAST, retry.transient_mlflow)
    assert fn.calls == 1


@pytest.mark.parametrize("text, transient", [
    ("API request to endpoint /api/2.0/mlflow/experiments/get-by-name failed with error code 503 != 200", True),
    ("HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url", True),
    ("(sqlite3.OperationalError) database is locked", True),
    ("RESOURCE_DOES_NOT_EXIST: Registered Model with name=x not found", False),
    ("INVALID_PARAMETER_VALUE: version 1503 is not valid", False),    # a number is not a status code
])
def test_mlflow_errors_are_told_apart_by_their_text(text, transient):
    assert retry.transient_mlflow(RuntimeError(text)) is transient


# ----- landing files: a real Spark read ---------------------------------------------------------------

USERS = ("user_id,signup_ts,region,age_band,gender,email,loyalty_tier\n"
         "U1,2025-01-01,north,25-34,F,a@example.com,gold\nU2,2025-01-02,south,35-44,M,b@example.com,\n")


def ingest_config(home: Path, attempts: int, backoff: float):
    return load_config("local", conf_dir=REPO / "conf", environ={"PROMOLAKE_HOME": str(home)}, overrides=[
        "ingest.sources=[users]", "spark.show_progress=false", f"retries.attempts={attempts}",
        f"retries.initial_backoff_s={backoff}", f"retries.max_backoff_s={backoff * 4}"])


@contextlib.contextmanager
def vanishing_after_listing(path: Path, back_after_s: float | None):
    """The landing file at `path` disappears right after the ingest listed it and picked it as new (as
    while an upload replaces it) and comes back after back_after_s seconds (never when None)."""
    from promolake.silver import ingest

    real, hidden, timers = ingest.new_files, path.with_name("." + path.name + ".away"), []

    def picked(listed, seen):
        todo = real(listed, seen)
        if path.exists() and any(f.path.endswith(path.name) for f in todo):
            path.rename(hidden)
            if back_after_s is not None:
                timers.append(threading.Timer(back_after_s, lambda: hidden.rename(path)))
                timers[-1].start()
        return todo

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest, "new_files", picked)
        try:
            yield hidden
        finally:
            for t in timers:
                t.join()


@pytest.mark.spark
@pytest.mark.slow
def test_a_landing_file_unreadable_for_a_moment_is_read_after_a_retry_not_quarantined(spark, tmp_path, monkeypatch):
    from promolake.silver.ingest import run_ingest

    home = tmp_path / "lakehouse"
    landed = home / "landing" / "users" / "users-1.csv"
    landed.parent.mkdir(parents=True)
    landed.write_text(USERS)
    monkeypatch.setenv("PROMOLAKE_PII_SALT", "retry")
    cfg = ingest_config(home, attempts=5, backoff=0.5)
    printed = io.StringIO()
    with vanishing_after_listing(landed, back_after_s=1.2), contextlib.redirect_stderr(printed):
        run_ingest(spark, cfg, report=StageReport("ingest", out=printed))
    lake = Lake(spark, cfg.lake)
    assert sorted(r.user_id for r in lake.read("silver.users").collect()) == ["U1", "U2"]
    assert lake.read("silver.quarantine").count() == 0
    assert f"reading landing file file:{landed}: attempt 1/5 failed" in printed.getvalue()
    assert "retrying in" in printed.getvalue()


@pytest.mark.spark
@pytest.mark.slow
def test_a_landing_file_that_stays_unreadable_fails_the_ingest_clearly_and_is_read_by_the_next_run(
        spark, tmp_path, monkeypatch):
    from promolake.cli import main
    from promolake.silver.ingest import run_ingest

    home = tmp_path / "lakehouse"
    landed = home / "landing" / "users" / "users-1.csv"
    landed.parent.mkdir(parents=True)
    landed.write_text(USERS)
    monkeypatch.setenv("PROMOLAKE_PII_SALT", "retry")
    monkeypatch.setenv("PROMOLAKE_HOME", str(home))
    cfg = ingest_config(home, attempts=3, backoff=0.05)
    out, err = io.StringIO(), io.StringIO()
    with vanishing_after_listing(landed, back_after_s=None) as hidden:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["ingest", "--conf", "ingest.sources=[users]", "--conf", "retries.attempts=3",
                       "--conf", "retries.initial_backoff_s=0.05", "--conf", "spark.show_progress=false"])
    # one clear line, no traceback; the stage's own summary says it failed, never "done"
    assert rc == 1
    assert f"promolake ingest: reading landing file file:{landed} failed after 3 attempts" in err.getvalue()
    assert "next ingest run reads it" in err.getvalue() and "Traceback" not in err.getvalue()
    assert "== ingest: FAILED" in out.getvalue() and "== ingest: done" not in out.getvalue()
    # nothing half-written: the file is neither in bronze nor quarantined, no watermark moved
    lake = Lake(spark, cfg.lake)
    for name in ("bronze.users", "silver.quarantine", "silver.users"):
        assert not lake.exists(name) or lake.read(name).count() == 0, name
    assert not lake.exists("ops.ingest_runs") or lake.read("ops.ingest_runs").count() == 0

    hidden.rename(landed)     # readable again: the next run reads all of it, once
    run_ingest(spark, cfg, report=StageReport("ingest", out=io.StringIO()))
    run_ingest(spark, cfg, report=StageReport("ingest", out=io.StringIO()))
    assert sorted(r.user_id for r in lake.read("silver.users").collect()) == ["U1", "U2"]
    assert lake.read("bronze.users").count() == 2


@pytest.mark.spark
@pytest.mark.slow
def test_a_file_spark_cannot_parse_is_still_quarantined_at_once_not_retried(spark, tmp_path, monkeypatch):
    from promolake.silver.ingest import run_ingest

    home = tmp_path / "lakehouse"
    (home / "landing" / "users").mkdir(parents=True)
    (home / "landing" / "users" / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    monkeypatch.setenv("PROMOLAKE_PII_SALT", "retry")
    cfg = ingest_config(home, attempts=3, backoff=5.0)
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        run_ingest(spark, cfg, report=StageReport("ingest", out=io.StringIO()))
    # not retried: every retry announces itself ("retrying in ...") before its back-off. (This test also
    # asserted the ingest took under 15 s; on a loaded machine it did not, without any retry: no timing here.)
    assert "retrying" not in printed.getvalue()
    rows = Lake(spark, cfg.lake).read("silver.quarantine").collect()
    assert [(r.rule, r.raw_record[:15]) for r in rows] == [("unparsable_record", "unreadable file")]


# ----- MLflow: a server that is down, or down for a moment -------------------------------------------

class FlakyMlflow:
    """An HTTP server on loopback answering 503 to its first `down_for` requests, then as an MLflow
    tracking server would for the experiment look-ups of tracking.setup (experiment "/x", id 7)."""

    def __init__(self, down_for: int):
        import http.server
        import json

        state = self
        self.requests, self.down_for = [], down_for

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                state.requests.append(self.path)
                if len(state.requests) <= state.down_for:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"experiment": {"experiment_id": "7", "name": "/x", "lifecycle_stage": "active",
                                                  "artifact_location": "file:///tmp/x"}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mlflow_env(monkeypatch):
    """MLflow's HTTP retry settings as a fresh process has them (absent), restored afterwards; the
    tracking URI restored too."""
    import mlflow

    for var in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"):
        monkeypatch.setenv(var, "0")    # recorded, so that the delete below is undone afterwards
        monkeypatch.delenv(var)
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_mlflow_down_for_a_moment_is_retried_with_back_off(mlflow_env):
    from promolake.common import tracking
    from promolake.common.config import MlflowConf

    server = FlakyMlflow(down_for=2)
    try:
        started = time.monotonic()
        exp_id = tracking.setup(MlflowConf(tracking_uri=server.uri, experiment="/x"),
                                RetryConf(attempts=4, initial_backoff_s=0.2, max_backoff_s=1.0))
    finally:
        server.close()
    assert exp_id == "7"
    assert [p.split("?")[0] for p in server.requests[:3]] == ["/api/2.0/mlflow/experiments/get-by-name"] * 3
    assert time.monotonic() - started > 1.0      # it waited between tries (MLflow's client: 0 s, then 2 s)


def test_an_unavailable_mlflow_server_fails_after_its_retries_with_a_clear_message(mlflow_env):
    from promolake.common import tracking
    from promolake.common.config import MlflowConf

    server = FlakyMlflow(down_for=1000)
    try:
        with pytest.raises(retry.TransientFailure) as err:
            tracking.setup(MlflowConf(tracking_uri=server.uri, experiment="/x"),
                           RetryConf(attempts=3, initial_backoff_s=0.05, max_backoff_s=0.2))
    finally:
        server.close()
    assert len(server.requests) == 3     # three tries of the first request, then it gave up
    text = str(err.value)
    assert text.startswith(f"MLflow at {server.uri} (its client tried each request 3 times with back-off) failed: ")
    assert "503" in text and f"Check that the MLflow server at {server.uri} is up" in text
    assert "nothing was written by this stage" in text


@pytest.mark.spark
@pytest.mark.slow
def test_a_stage_that_cannot_reach_mlflow_fails_before_writing_and_never_says_done(spark, trained, mlflow_env):
    from promolake.promo.scoring import run_score
    from tests.conftest import AS_OF

    cfg, lake, _ = trained
    server = FlakyMlflow(down_for=1000)
    down = cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(update={"tracking_uri": server.uri}),
                                  "retries": RetryConf(attempts=2, initial_backoff_s=0.05, max_backoff_s=0.1)})
    before = {t: lake.read(t).count() if lake.exists(t) else None
              for t in ("promo.offer_scores", "promo.promotion_assignments")}
    printed = io.StringIO()
    try:
        with pytest.raises(retry.TransientFailure):
            run_score(spark, down, "DEMO01", AS_OF, report=StageReport("score", out=printed))
    finally:
        server.close()
    assert "== score: FAILED" in printed.getvalue() and "== score: done" not in printed.getvalue()
    assert {t: lake.read(t).count() if lake.exists(t) else None for t in before} == before
