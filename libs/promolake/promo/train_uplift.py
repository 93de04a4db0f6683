"""The `train-uplift` stage: response/uplift model from past campaigns' randomized exposures, evaluated
on the latest campaigns (time-based holdout), logged to MLflow and registered with alias @challenger.

Rows: one per exposure of a campaign that ended before as_of (promolake.promo.response_data), with the
user's features as of that campaign's start. Holdout: the campaigns that started last, holding about
`promotion.holdout_share` of the rows. The model registered is refit on all rows.
"""
from __future__ import annotations

import datetime as dt
import os
import pickle
import tempfile

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from promolake.common import tracking
from promolake.common.config import Config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.promo.response_data import FEATURES, exposure_rows, outcomes, scope_members, with_features
from promolake.promo.uplift import UpliftModel, evaluate_uplift, fit_uplift

TRAIN_COLUMNS = ("user_id", "campaign_id", "offer_id", "start_ts", "treated", "propensity", "bought", "scope_spend",
                 "redeemed", *FEATURES)


def silver_frames(lake: Lake) -> dict[str, DataFrame]:
    names = ("users", "items", "events", "campaigns", "campaign_items", "exposures", "redemptions")
    return {n: lake.read(f"silver.{n}") for n in names}


def with_own_campaigns(spark: SparkSession, lake: Lake, s: dict[str, DataFrame], cfg: Config,
                       report: StageReport | None = None) -> dict[str, DataFrame]:
    """s with promolake's own campaigns added as history: promo.promotion_assignments rows of the
    randomized arms (policy and explore offers as treatment, control as control; not the users the
    policy chose to give nothing) become exposures, and the offers of campaigns defined in config
    become campaign rows (window: the scoring date + days). The loop: every campaign scored and run
    teaches the next uplift model. Campaigns already in silver.exposures are left as they are there."""
    if not lake.exists("promo.promotion_assignments"):
        return s
    pc = cfg.promotion
    a = lake.read("promo.promotion_assignments").join(
        s["exposures"].select("campaign_id").distinct(), "campaign_id", "left_anti")
    a = a.where((F.col("arm") == "control") | ((F.col("offer_id") != "none") & F.col("arm").isin("policy", "explore")))
    known = {r.campaign_id: r.as_of for r in a.groupBy("campaign_id").agg(F.min("as_of").alias("as_of")).collect()}
    rows = []
    for cid, as_of in known.items():
        camp = pc.campaigns.get(cid)
        if camp is None:
            if report:
                report.note(f"assignments of campaign {cid} skipped for training: not defined in config any more")
            continue
        start = dt.datetime.combine(camp.start or as_of, dt.time())
        end = start + dt.timedelta(days=camp.days)
        rows += [(cid, o.offer_id, o.offer_type, float(o.value), o.min_spend, o.scope, o.scope_value, start, end)
                 for o in camp.offers]
    if not rows:
        return s
    campaigns = spark.createDataFrame(rows, "campaign_id string, offer_id string, offer_type string, value double, "
                                            "min_spend double, scope string, scope_value string, start_ts timestamp, "
                                            "end_ts timestamp")
    treated = F.col("arm") != "control"
    exposures = a.where(F.col("campaign_id").isin(*[r[0] for r in rows])).select(
        "campaign_id", F.when(treated, F.col("offer_id")).alias("offer_id"), "user_id",
        F.when(treated, "treatment").otherwise("control").alias("arm"),
        F.col("as_of").cast("timestamp").alias("exposed_ts"),
        # the arm's probability, which the X-learner weighs by (not the offer-level propensity)
        F.when(treated, F.lit(1.0 - pc.control_share)).otherwise(F.lit(pc.control_share)).alias("propensity"))
    common = [c for c in s["campaigns"].columns if c in campaigns.columns]
    out = dict(s)
    out["campaigns"] = s["campaigns"].select(*common).unionByName(campaigns.select(*common))
    out["exposures"] = s["exposures"].select(*exposures.columns).unionByName(exposures)
    return out


def training_rows(s: dict[str, DataFrame], as_of: dt.date, report: StageReport | None = None,
                  campaigns: list[str] | None = None) -> pd.DataFrame:
    """Model rows of every campaign that ended before as_of (only `campaigns` when given), features as
    of each campaign's start."""
    members = scope_members(s["campaigns"], s["items"], s["campaign_items"]).persist()
    rows = exposure_rows(s["exposures"], s["campaigns"], as_of)
    if campaigns is not None:
        rows = rows.where(F.col("campaign_id").isin(*campaigns))
    rows = rows.persist()
    starts = sorted({(r.campaign_id, r.start) for r in rows.select(
        "campaign_id", F.to_date("start_ts").alias("start")).distinct().collect()}, key=lambda x: (x[1], x[0]))
    parts = []
    for n, (campaign, start) in enumerate(starts, 1):
        these = rows.where(F.col("campaign_id") == campaign)
        users = these.select("user_id").distinct()
        events = s["events"].join(users, "user_id")
        feats = with_features(these, s["users"], events, s["items"], s["exposures"], s["redemptions"],
                              s["campaigns"], members, start)
        out = outcomes(these, events, members, s["redemptions"])
        parts.append(feats.join(out, ["user_id", "campaign_id", "offer_id"]).select(*TRAIN_COLUMNS).toPandas())
        if report:
            report.progress(n, len(starts), f"training rows ({campaign}, start {start}: {len(parts[-1]):,} exposures)")
    rows.unpersist()
    members.unpersist()
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(TRAIN_COLUMNS))


def time_split(rows: pd.DataFrame, holdout_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): whole campaigns, the latest-starting ones in the holdout until it holds at least
    holdout_share of the rows (at least one campaign, never all of them when there are two or more)."""
    order = rows.groupby("campaign_id")["start_ts"].min().sort_values(ascending=False, kind="stable")
    held, total = [], 0
    for campaign in order.index:
        if len(order) > 1 and len(held) == len(order) - 1:
            break
        held.append(campaign)
        total += int((rows["campaign_id"] == campaign).sum())
        if total >= holdout_share * len(rows):
            break
    mask = rows["campaign_id"].isin(held)
    return rows[~mask], rows[mask]


def run_train_uplift(spark: SparkSession, cfg: Config, as_of: dt.date | None = None,
                     report: StageReport | None = None) -> StageReport:
    import mlflow

    from promolake.gold.features import default_as_of

    pc = cfg.promotion
    report = report or StageReport("train-uplift")
    with report:
        lake = Lake(spark, cfg.lake)
        as_of = as_of or default_as_of(lake)
        s = with_own_campaigns(spark, lake, silver_frames(lake), cfg, report)
        rows = training_rows(s, as_of, report)
        if rows.empty:
            raise ValueError(f"no campaign with exposures ended before {as_of}: nothing to learn offers' "
                             "effects from (silver.exposures / silver.campaigns)")
        report.log(f"{len(rows):,} exposures of {rows.campaign_id.nunique()} campaigns ended before {as_of}; "
                   f"treated {int(rows.treated.sum()):,}, bought {int(rows.bought.sum()):,}")
        train, holdout = time_split(rows, pc.holdout_share)
        cores = int(spark.sparkContext.defaultParallelism) if spark else 1
        n_jobs = max(1, min(os.cpu_count() or 1, cores))
        model = fit_uplift(train, FEATURES, pc.learner, pc.seed, n_jobs, pc.redeem_share)
        metrics = evaluate_uplift(model, holdout) if len(holdout) else {}
        for note in model.notes:
            report.note(note)
        report.section(f"holdout: {holdout.campaign_id.nunique()} latest campaigns, {len(holdout):,} exposures "
                       f"(trained on {train.campaign_id.nunique()} campaigns, {len(train):,} exposures)",
                       [{"metric": k, "value": round(v, 4)} for k, v in metrics.items()])
        final = fit_uplift(rows, FEATURES, pc.learner, pc.seed, n_jobs, pc.redeem_share)
        tracking.setup(cfg.mlflow, cfg.retries)
        with mlflow.start_run(run_name=f"uplift {as_of}") as run:
            mlflow.set_tags({"promolake.stage": "train-uplift", "promolake.as_of": str(as_of)})
            mlflow.log_params({"learner": final.learner, "as_of": str(as_of), "features": ",".join(FEATURES),
                               "train_exposures": len(train), "holdout_exposures": len(holdout),
                               "campaigns": rows.campaign_id.nunique(), "redeem_share": round(final.redeem_share, 4),
                               "holdout_share": pc.holdout_share})
            mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items() if v == v})
            version = log_uplift_model(final, rows[list(FEATURES)].head(5), pc.model_name, as_of,
                                       holdout_tags(holdout, as_of))
            tracking.set_alias(pc.model_name, tracking.CHALLENGER, version)
            report.note(f"registered {pc.model_name} version {version} ({final.learner} learner) with alias "
                        f"@{tracking.CHALLENGER} (MLflow run {run.info.run_id})")
        report.record(model=pc.model_name, version=version, learner=final.learner, exposures=len(rows),
                      **{k: round(v, 4) for k, v in metrics.items() if k in ("qini", "auc_treated", "uplift_at_30pct")})
    return report


def holdout_tags(holdout: pd.DataFrame, as_of: dt.date) -> dict[str, str]:
    """The holdout of the run's metrics, as model version tags: its campaigns and the day the first
    of them started (the promotion gate evaluates the champion on the same campaigns)."""
    if holdout.empty:
        return {}
    start = pd.Timestamp(holdout["start_ts"].min()).date()
    return {"holdout_campaigns": ",".join(sorted(holdout["campaign_id"].unique())), "holdout_start": str(start),
            "holdout_end": str(as_of)}


def log_uplift_model(model: UpliftModel, example: pd.DataFrame, name: str, as_of: dt.date,
                     extra_tags: dict[str, str] | None = None) -> str:
    """Log the model as an MLflow pyfunc (input: FEATURES, output: probabilities) and register it."""
    import mlflow
    from mlflow.models import infer_signature

    from promolake.promo.uplift_model import UpliftPyfunc

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "uplift.pkl")
        with open(path, "wb") as f:
            pickle.dump(model, f)
        signature = infer_signature(example, model.predict(example))
        info = tracking.log_pyfunc("uplift_model", python_model=UpliftPyfunc(), artifacts={"model": path},
                                       signature=signature, input_example=example)
    return tracking.register(info.model_uri, name, tags={"as_of": str(as_of), "learner": model.learner,
                                                         **(extra_tags or {})})
