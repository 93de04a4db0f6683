"""train-uplift and score end to end on the small trained world (tests/conftest.py): the registered
model, offer scores, the budget, arms and propensities, item-scoped offers on candidates, re-runs."""
from __future__ import annotations

import io

import pytest
from pyspark.sql import functions as F

from promolake.common.reporting import StageReport
from promolake.ml.validate import run_validate
from promolake.promo.scoring import run_score
from promolake.promo.train_uplift import run_train_uplift
from tests.conftest import AS_OF, promote_uplift_by_hand

pytestmark = [pytest.mark.spark, pytest.mark.slow]

BUDGET = 60.0


@pytest.fixture(scope="module")
def scored(spark, trained):
    cfg, lake, _ = trained
    cfg = cfg.model_copy(update={"promotion": cfg.promotion.model_copy(update={
        "budget": BUDGET, "control_share": 0.2, "explore_share": 0.1, "cooldown_days": 0})})
    uplift = run_train_uplift(spark, cfg, AS_OF, report=StageReport("train-uplift", out=io.StringIO()))
    # scoring uses the @champion models and the candidates they wrote. The gate promotes the first ALS
    # version (and the text model's, when the text stage tests trained one on this shared world: its
    # re-blended candidates are then the ones of the date); the uplift model of this tiny world is at
    # chance (holdout AUC 0.5) and the gate rejects it (checked below), so these tests of the scoring
    # mechanics promote it by hand, as a person would from notebook 05.
    run_validate(spark, cfg, report=StageReport("validate", out=io.StringIO()))
    promote_uplift_by_hand(cfg)
    report = run_score(spark, cfg, "DEMO01", AS_OF, report=StageReport("score", out=io.StringIO()))
    return cfg, lake, uplift, report


def test_the_gate_rejected_the_chance_level_uplift_model(scored):
    from mlflow import MlflowClient

    cfg = scored[0]
    mv = MlflowClient().get_model_version(cfg.promotion.model_name, "1")
    assert "FAILED the promotion gate" in mv.description and "auc_treated" in mv.description
    assert mv.tags["promotion_reason"].startswith("tiny test world")
    als = MlflowClient().get_model_version_by_alias(cfg.als.model_name, "champion")
    assert als.tags["validation_status"] == "passed"


def test_the_gate_rebuilds_the_holdout_the_uplift_stage_evaluated_on(spark, scored):
    """The champion uplift model is judged on exactly the challenger's held-out campaigns: rebuilt from
    the version's tags, they hold the rows (and treated rows) the training run evaluated on."""
    from mlflow import MlflowClient

    from promolake.ml import validate as val

    cfg, lake, _, _ = scored
    client = MlflowClient()
    mv = client.get_model_version(cfg.promotion.model_name, "1")
    holdout = val.holdout_of(mv)
    assert holdout.campaigns and holdout.end == AS_OF
    logged = val.run_metrics("uplift", client.get_run(mv.run_id).data.metrics, cfg)
    got = val.evaluate_uplift_version(spark, lake, cfg, f"models:/{mv.name}/1", holdout,
                                      StageReport("validate", out=io.StringIO()))
    assert (got["rows"], got["treated_rows"]) == (logged["rows"], logged["treated_rows"])
    assert 0 <= got["auc_treated"] <= 1


def test_uplift_model_is_registered_with_holdout_metrics(scored):
    from mlflow import MlflowClient

    cfg, _, uplift, _ = scored
    mv = MlflowClient().get_model_version_by_alias(cfg.promotion.model_name, "challenger")
    run = MlflowClient().get_run(mv.run_id)
    assert run.data.params["learner"] in ("x", "response")
    assert "holdout_rows" in run.data.metrics
    assert uplift.rows[0]["version"] == str(mv.version)


def test_assignments_respect_budget_arms_and_propensities(scored):
    cfg, lake, _, report = scored
    pc = cfg.promotion
    rows = lake.read("promo.promotion_assignments").where(F.col("campaign_id") == "DEMO01").toPandas()
    assert not rows.duplicated(["user_id", "offer_id"]).any()
    assert rows.groupby("user_id").size().max() <= pc.max_offers_per_user
    given = rows[rows.offer_id != "none"]
    assert given.expected_cost.sum() <= BUDGET + 1e-6
    # the explore share actually used (lowered when exploration would spend too much of the budget)
    e = dict(report.sections)["allocation"][0]["explore_share"]
    assert 0 < e <= pc.explore_share
    keep = 1 - pc.control_share - e
    control = rows[rows.arm == "control"]
    assert (control.offer_id == "none").all()
    # P(no offer) = control share, plus the policy's share when the policy would give this user nothing
    want = pc.control_share + keep * (control.policy_offer_id == "none")
    assert (control.propensity - want).abs().max() < 1e-9
    policy = rows[(rows.arm == "policy") & (rows.offer_id != "none")]
    assert len(policy) > 0 and (policy.expected_incremental_profit > 0).all()
    assert (policy.policy_offer_id == policy.offer_id).all()
    assert ((policy.propensity > keep) & (policy.propensity <= 1)).all()
    assert all(len(r) > 0 for r in policy.reason_codes)
    nothing = rows[(rows.arm == "policy") & (rows.offer_id == "none")]
    assert (nothing.propensity - (pc.control_share + keep)).abs().max() < 1e-9
    explore = rows[(rows.arm == "explore") & rows.propensity.notna()]   # null: drawn after exploration spent all
    assert len(explore) > 0 and ((explore.propensity > 0) & (explore.propensity <= 1)).all()
    # an explored offer is more likely when the policy would have given it too
    same = explore.offer_id == explore.policy_offer_id
    assert (explore[same].propensity > keep).all() and (explore[~same].propensity < e + 1e-9).all()
    assert explore.expected_cost.sum() <= pc.explore_budget_share * BUDGET * 1.5   # about the cap (random costs)
    assert all(pc.model_name in m for m in rows.model_versions)
    scores = lake.read("promo.offer_scores").where(F.col("campaign_id") == "DEMO01")
    # every eligible user is scored for every offer and has one decision row; arms split them
    eligible = scores.select("user_id").distinct().count()
    assert scores.count() == eligible * 4
    assert rows.user_id.nunique() == eligible
    n_control = (rows.arm == "control").sum()
    assert 0.1 * eligible < n_control < 0.3 * eligible
    assert any("expected cost" in n for n in report.notes)


def test_item_scoped_offers_target_the_users_candidates_on_the_campaign_list(spark, scored):
    cfg, lake, _, _ = scored
    item_campaign = (lake.read("silver.campaigns").where(F.col("scope") == "item")
                     .select("campaign_id").first()[0])
    run_score(spark, cfg, item_campaign, AS_OF, report=StageReport("score", out=io.StringIO()))
    scores = lake.read("promo.offer_scores").where(F.col("campaign_id") == item_campaign)
    item_offers = lake.read("silver.campaigns").where((F.col("campaign_id") == item_campaign)
                                                     & (F.col("scope") == "item")).select("offer_id")
    item_rows = scores.join(item_offers, "offer_id")
    assert item_rows.count() > 0
    listed = {r.item_id for r in lake.read("silver.campaign_items").where(F.col("campaign_id") == item_campaign)
              .collect()}
    assert {r.target for r in item_rows.select("target").distinct().collect()} <= listed
    cands = lake.read("ml.user_candidates").where(F.col("as_of") == F.lit(AS_OF)).select(
        "user_id", F.col("item_id").alias("target"))
    assert item_rows.join(cands, ["user_id", "target"], "left_anti").count() == 0
    per = item_rows.groupBy("user_id", "offer_id").count().agg(F.max("count")).first()[0]
    assert per <= cfg.promotion.item_candidates


def test_rescoring_the_campaign_replaces_it(spark, scored):
    cfg, lake, _, _ = scored
    before = lake.read("promo.promotion_assignments").where(F.col("campaign_id") == "DEMO01").select(
        "user_id", "offer_id", "arm").collect()
    spark.catalog.clearCache()
    run_score(spark, cfg, "DEMO01", AS_OF, report=StageReport("score", out=io.StringIO()))
    # the run released every frame it cached (a notebook re-running it on a cluster must not pile them up)
    assert spark._jsparkSession.sharedState().cacheManager().isEmpty()
    after = lake.read("promo.promotion_assignments").where(F.col("campaign_id") == "DEMO01").select(
        "user_id", "offer_id", "arm").collect()
    assert sorted(after) == sorted(before)
    assert lake.read("promo.offer_scores").groupBy("campaign_id", "user_id", "offer_id", "target").count() \
        .where("count > 1").count() == 0


def test_scores_and_assignments_of_a_campaign_carry_one_scoring_run(scored):
    _, lake, _, _ = scored
    runs = [{r[0] for r in lake.read(t).where(F.col("campaign_id") == "DEMO01").select("score_run_id").distinct()
             .collect()} for t in ("promo.offer_scores", "promo.promotion_assignments")]
    assert len(runs[0]) == 1 and runs[0] == runs[1]


def test_a_run_whose_scores_were_replaced_leaves_the_assignments_alone(scored):
    """The fence of write_assignments: an older run (its scores replaced by a newer run's) stops without
    touching the assignments; a write conflict with another run's assignments is retried after the check."""
    from promolake.common.lake import ConcurrentWriteError
    from promolake.promo.scoring import scores_run, write_assignments

    _, lake, _, _ = scored
    where = F.col("campaign_id") == "DEMO01"
    table = "promo.promotion_assignments"
    before = sorted(lake.read(table).where(where).drop("created_at").collect())
    holder = scores_run(lake, "DEMO01")
    older = lake.read(table).where(where).withColumn("offer_id", F.lit("none")).withColumn("score_run_id", F.lit("old"))
    with pytest.raises(ConcurrentWriteError, match=f"replaced by scoring run {holder} while this run \\(old\\)"):
        write_assignments(lake, older, "DEMO01", "old", StageReport("score", out=io.StringIO()))
    assert sorted(lake.read(table).where(where).drop("created_at").collect()) == before

    # the run that holds the scores: a conflict is retried (here: the first commit attempt loses)
    real, calls = lake.upsert, []

    def conflicting_once(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 1:
            raise ConcurrentWriteError(f"{table}: another run committed a conflicting change first")
        return real(*args, **kwargs)

    lake.upsert = conflicting_once
    printed = io.StringIO()
    try:
        mine = lake.read(table).where(where)
        write_assignments(lake, mine, "DEMO01", holder, StageReport("score", out=printed))
    finally:
        del lake.upsert
    assert calls == [table, table] and "checking the scores again and retrying" in printed.getvalue()
    assert sorted(lake.read(table).where(where).drop("created_at").collect()) == before


def test_a_late_write_of_a_replaced_run_is_undone(scored, monkeypatch):
    """The window between write_assignments' check and its MERGE: run A passes the check, then run B
    replaces the scores and commits its assignments before A's MERGE lands. A's check after its commit
    finds B and puts B's assignments back. When B has not written yet, A says B will."""
    from promolake.common.lake import ConcurrentWriteError
    from promolake.promo import scoring as sc

    _, lake, _, _ = scored
    where = F.col("campaign_id") == "DEMO01"
    table = "promo.promotion_assignments"
    run_a = sc.scores_run(lake, "DEMO01")
    a_scores = lake.read("promo.offer_scores").where(where).localCheckpoint()
    a_rows = lake.read(table).where(where).localCheckpoint()
    b_rows = a_rows.withColumn("score_run_id", F.lit("B")).localCheckpoint()
    real = sc.scores_run

    def run_b_between_check_and_merge(write_assignments_too: bool):
        calls = []

        def scores_run(lake_, campaign_id):
            calls.append(campaign_id)
            if len(calls) == 1:         # A's check passes; B then writes before A's MERGE
                lake.upsert(a_scores.withColumn("score_run_id", F.lit("B")), "promo.offer_scores",
                            replace_slice={"campaign_id": "DEMO01"})
                if write_assignments_too:
                    lake.upsert(b_rows, table, replace_slice={"campaign_id": "DEMO01"})
                return run_a
            return real(lake_, campaign_id)
        return scores_run

    def runs_in_table():
        return {r[0] for r in lake.read(table).where(where).select("score_run_id").distinct().collect()}

    try:
        monkeypatch.setattr(sc, "scores_run", run_b_between_check_and_merge(True))
        with pytest.raises(ConcurrentWriteError, match=r"B's assignments \(\d+ rows\), which this run's write had "
                                                       r"replaced, were put back"):
            sc.write_assignments(lake, a_rows, "DEMO01", run_a, StageReport("score", out=io.StringIO()))
        assert runs_in_table() == {"B"}
        assert sorted(lake.read(table).where(where).collect()) == sorted(b_rows.collect())

        lake.upsert(a_rows, table, replace_slice={"campaign_id": "DEMO01"})
        monkeypatch.setattr(sc, "scores_run", run_b_between_check_and_merge(False))
        with pytest.raises(ConcurrentWriteError, match="B writes its own assignments after this run's"):
            sc.write_assignments(lake, a_rows, "DEMO01", run_a, StageReport("score", out=io.StringIO()))
    finally:                            # the module's later tests read run A's scores and assignments
        lake.upsert(a_scores, "promo.offer_scores", replace_slice={"campaign_id": "DEMO01"})
        lake.upsert(a_rows, table, replace_slice={"campaign_id": "DEMO01"})
    assert runs_in_table() == {run_a} and real(lake, "DEMO01") == run_a


def test_a_past_campaign_is_evaluated_against_its_control_arm(spark, scored):
    from promolake.promo.campaign_eval import run_evaluate_campaign

    cfg, lake, _, _ = scored
    scored_ids = {r[0] for r in lake.read("promo.promotion_assignments").select("campaign_id").distinct().collect()}
    past = next(r[0] for r in lake.read("silver.exposures").select("campaign_id").distinct().collect()
                if r[0] not in scored_ids)
    run_evaluate_campaign(spark, cfg, past, report=StageReport("evaluate", out=io.StringIO()))
    res = lake.read("promo.campaign_results").where(F.col("campaign_id") == past).toPandas()
    assert set(res.source) == {"silver.exposures"}
    inc = res[res.metric == "incremental_conversion"]
    assert len(inc) > 0 and (inc.ci_low <= inc.value).all() and (inc.value <= inc.ci_high).all()
    arms = set(res[res.metric == "profit_per_user"].arm)
    assert arms == {"treatment", "control"}
    # the demo campaign's own assignments carry the policy's choice: an IPS estimate of its value
    run_evaluate_campaign(spark, cfg, "DEMO01", report=StageReport("evaluate", out=io.StringIO()))
    demo = lake.read("promo.campaign_results").where(F.col("campaign_id") == "DEMO01").toPandas()
    assert set(demo.metric) >= {"ips_policy_profit_per_user", "ips_no_offer_profit_per_user"}


def test_the_campaigns_assignments_become_history_for_the_next_model(spark, scored):
    from promolake.promo.train_uplift import silver_frames, with_own_campaigns

    cfg, lake, _, _ = scored
    s = with_own_campaigns(spark, lake, silver_frames(lake), cfg)
    exp = s["exposures"].where(F.col("campaign_id") == "DEMO01").toPandas()
    rows = lake.read("promo.promotion_assignments").where(F.col("campaign_id") == "DEMO01").toPandas()
    randomized = rows[(rows.arm == "control") | (rows.offer_id != "none")]
    assert len(exp) == len(randomized) and not exp.duplicated("user_id").any()
    assert set(exp.arm) == {"treatment", "control"}
    assert exp[exp.arm == "control"].offer_id.isna().all()
    offers = s["campaigns"].where(F.col("campaign_id") == "DEMO01").select("offer_id").toPandas()
    assert set(offers.offer_id) == {o.offer_id for o in cfg.promotion.campaigns["DEMO01"].offers}


def test_the_report_shows_the_run(spark, scored):
    """The HTML report of the trained and scored world: every section, the campaign's arms, the budget
    curve and the registered models, in one self-contained file."""
    from promolake.report.demo import run_report

    cfg, _, _, _ = scored
    report = run_report(spark, cfg, "DEMO01", AS_OF, report=StageReport("report", out=io.StringIO()))
    path = report.rows[0]["report"]
    page = open(path, encoding="utf-8").read()
    for heading in ("The lake", "Market trends and forecast", "Recommendations", "Campaign DEMO01",
                    "Simulated truth", "Model registry"):
        assert f">{heading}" in page
    assert "silver.events" in page and "promo.promotion_assignments" in page
    assert ">control<" in page and ">policy<" in page
    # the budget curve is always there; the trend plots only where gold trend rows exist before as_of (this
    # shared world may or may not have them, depending on which stage tests ran first)
    assert "alt='budget/profit curve'" in page and page.count("data:image/png;base64,") >= 1
    assert cfg.als.model_name in page and cfg.promotion.model_name in page and "challenger" in page
    # the gate's verdicts (the scored fixture promoted the first ALS and uplift versions)
    assert "champion" in page and ">passed<" in page
