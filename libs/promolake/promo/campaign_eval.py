"""The `evaluate-campaign` stage: what a campaign did, from the purchases and redemptions in its window.

Rows: the campaign's promo.promotion_assignments (arms policy / explore / control), or, for a campaign
run before promolake, its silver.exposures (arms treatment / control). Outcome of a user for an offer:
bought in the offer's scope during the window, what was paid there, whether they redeemed and the
discount they got (silver.redemptions). Profit of a user = margin_rate x spend in scope - discount.

Reported per offer against the control arm measured on the same offer's scope: conversion, redemption
rate, incremental conversion and incremental profit per user with 95% confidence intervals (normal
approximation: difference of two means with unequal variances). With propensities and the policy's
choice stored on every row (promolake assignments), inverse-propensity estimates of the profit per
eligible user of the optimiser's policy and of giving no offers at all:
V(pi) = (1/N) sum over users of 1[offer given == pi(user)] x profit / propensity.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from promolake.common.config import Config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.promo.offers import campaign_offers
from promolake.promo.response_data import scope_members
from promolake.promo.train_uplift import silver_frames

Z95 = 1.959964


def logged_rows(lake: Lake, s: dict[str, DataFrame], campaign_id: str) -> tuple[DataFrame, str]:
    """(user_id, offer_id ('none' without), arm, propensity, policy_offer_id, as_of) of the campaign, and
    the table they came from."""
    if lake.exists("promo.promotion_assignments"):
        a = lake.read("promo.promotion_assignments").where(F.col("campaign_id") == campaign_id)
        if a.limit(1).count():
            return a.select("user_id", "offer_id", "arm", "propensity", "policy_offer_id", "as_of"), \
                "promo.promotion_assignments"
    e = s["exposures"].where(F.col("campaign_id") == campaign_id)
    if not e.limit(1).count():
        raise ValueError(f"campaign {campaign_id!r} has neither promotion_assignments nor exposures to evaluate")
    return e.select("user_id", F.coalesce("offer_id", F.lit("none")).alias("offer_id"), "arm", "propensity",
                    F.lit(None).cast("string").alias("policy_offer_id"),
                    F.to_date("exposed_ts").alias("as_of")), "silver.exposures"


def offer_outcomes(rows: DataFrame, offers: DataFrame, events: DataFrame, members: DataFrame,
                   redemptions: DataFrame, campaign_id: str, margin_rate: float) -> DataFrame:
    """One row per (logged user, offer of the campaign): the user's outcome measured on that offer's
    scope in the window (bought, spend, profit), plus the redemption of the offer they were given."""
    users = rows.select("user_id", F.col("offer_id").alias("given"), "arm")
    pairs = users.crossJoin(F.broadcast(offers.select("offer_id", "scope", "start_ts", "end_ts")))
    buys = (events.where(F.col("event_type") == "purchase")
            .select("user_id", "item_id", "event_ts", (F.col("unit_price").cast("double") * F.col("quantity")).alias("paid"))
            .join(users.select("user_id"), "user_id"))
    spend = (pairs.join(buys, "user_id")
             .where((F.col("event_ts") >= F.col("start_ts")) & (F.col("event_ts") < F.col("end_ts")))
             .join(F.broadcast(members.where(F.col("campaign_id") == campaign_id).select("offer_id", "item_id")
                               .withColumn("_in", F.lit(True))), ["offer_id", "item_id"], "left")
             .where((F.col("scope") == "basket") | F.col("_in"))
             .groupBy("user_id", "offer_id").agg(F.sum("paid").alias("spend")))
    red = (redemptions.where(F.col("campaign_id") == campaign_id).groupBy("user_id", "offer_id")
           .agg(F.count(F.lit(1)).alias("_r"), F.sum(F.col("discount_amount").cast("double")).alias("discount")))
    out = (pairs.join(spend, ["user_id", "offer_id"], "left").join(red, ["user_id", "offer_id"], "left")
           .select("user_id", "given", "arm", "offer_id",
                   F.col("spend").isNotNull().cast("int").alias("bought"), F.coalesce("spend", F.lit(0.0)).alias("spend"),
                   (F.coalesce("_r", F.lit(0)) > 0).cast("int").alias("redeemed"),
                   F.coalesce("discount", F.lit(0.0)).alias("discount")))
    return out.withColumn("profit", F.lit(float(margin_rate)) * F.col("spend") - F.col("discount"))


def difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(mean(a) - mean(b), 95% CI low, high); NaN when a side has fewer than two values."""
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan"), float("nan")
    d = float(a.mean() - b.mean())
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return d, d - Z95 * se, d + Z95 * se


def per_offer_results(o: pd.DataFrame) -> list[dict]:
    """Metric rows per offer: each offer's users (given it) against control users on its scope."""
    out = []
    control_arms = ("control",)
    for offer, g in o.groupby("offer_id"):
        treated = g[g.given == offer]
        control = g[g.arm.isin(control_arms)]
        if treated.empty:
            continue
        conv = difference(treated.bought.to_numpy(float), control.bought.to_numpy(float))
        prof = difference(treated.profit.to_numpy(float), control.profit.to_numpy(float))
        base = {"offer_id": offer, "arm": "offer vs control", "users": int(len(treated)),
                "control_users": int(len(control))}
        out += [
            {**base, "metric": "conversion", "value": float(treated.bought.mean()), "ci_low": None, "ci_high": None},
            {**base, "metric": "control_conversion", "value": float(control.bought.mean()) if len(control) else None,
             "ci_low": None, "ci_high": None},
            {**base, "metric": "redemption_rate", "value": float(treated.redeemed.mean()), "ci_low": None,
             "ci_high": None},
            {**base, "metric": "incremental_conversion", "value": conv[0], "ci_low": conv[1], "ci_high": conv[2]},
            {**base, "metric": "incremental_profit_per_user", "value": prof[0], "ci_low": prof[1], "ci_high": prof[2]},
        ]
    return out


def ips_values(rows: pd.DataFrame, user_profit: pd.Series) -> dict[str, float]:
    """Inverse-propensity estimates of the profit per logged user of the policy (offer == policy_offer_id)
    and of giving no offer (offer == 'none'); rows without a propensity or policy choice are skipped."""
    r = rows.dropna(subset=["propensity"])
    r = r.assign(profit=r.user_id.map(user_profit).fillna(0.0).to_numpy())
    n = rows.user_id.nunique()
    out = {}
    if r.policy_offer_id.notna().any():
        hit = r.offer_id == r.policy_offer_id
        out["ips_policy_profit_per_user"] = float((r.profit[hit] / r.propensity[hit]).sum() / n)
    none = r.offer_id == "none"
    if none.any():
        out["ips_no_offer_profit_per_user"] = float((r.profit[none] / r.propensity[none]).sum() / n)
    return out


def run_evaluate_campaign(spark: SparkSession, cfg: Config, campaign_id: str | None = None,
                          report: StageReport | None = None) -> StageReport:
    import mlflow

    from promolake.common import tracking

    pc = cfg.promotion
    campaign_id = campaign_id or pc.campaign_id
    report = report or StageReport("evaluate-campaign")
    with report:
        lake = Lake(spark, cfg.lake)
        s = silver_frames(lake)
        rows, source = logged_rows(lake, s, campaign_id)
        as_of = rows.agg(F.min("as_of")).first()[0]
        offers, _ = campaign_offers(spark, s["campaigns"], pc, campaign_id, as_of)
        window = offers.agg(F.min("start_ts"), F.max("end_ts")).first()
        last_event = s["events"].agg(F.max("event_ts")).first()[0]
        if last_event is None or last_event < window[1]:
            report.note(f"the window ends {window[1]} but events reach only {last_event}: results are partial")
        members = scope_members(offers, s["items"], s["campaign_items"])
        o = offer_outcomes(rows, offers, s["events"], members, s["redemptions"], campaign_id, pc.margin_rate).toPandas()
        logged = rows.toPandas()
        report.log(f"campaign {campaign_id}: {len(logged):,} logged rows from {source}, window {window[0]} .. {window[1]}")
        results = per_offer_results(o)
        # a user's campaign profit: on the scope of the offer they were given (control: the widest scope)
        given = o[o.offer_id == o.given]
        widest = o[o.given == "none"].groupby("user_id").profit.max()
        user_profit = pd.concat([given.groupby("user_id").profit.sum(), widest])
        for arm, g in logged.groupby("arm"):
            p = g.user_id.map(user_profit).fillna(0.0)
            results.append({"offer_id": "all", "arm": arm, "users": int(len(g)), "control_users": None,
                            "metric": "profit_per_user", "value": float(p.mean()), "ci_low": None, "ci_high": None})
        for name, value in ips_values(logged, user_profit).items():
            results.append({"offer_id": "all", "arm": "all", "users": int(logged.user_id.nunique()),
                            "control_users": None, "metric": name, "value": value, "ci_low": None, "ci_high": None})
        frame = pd.DataFrame(results)
        frame["campaign_id"], frame["evaluated_on"] = campaign_id, dt.date.today()
        frame["source"] = source
        df = spark.createDataFrame(frame[["campaign_id", "offer_id", "arm", "metric", "value", "ci_low", "ci_high",
                                          "users", "control_users", "source", "evaluated_on"]],
                                   schema="campaign_id string, offer_id string, arm string, metric string, value double, "
                                          "ci_low double, ci_high double, users int, control_users int, source string, "
                                          "evaluated_on date").withColumn("computed_at", F.current_timestamp())
        res = lake.upsert(df, "promo.campaign_results", replace_slice={"campaign_id": campaign_id})
        report.record_write("promo.campaign_results", res)
        report.section(f"campaign {campaign_id}: offers against control (95% CI)", [
            {k: (round(v, 4) if isinstance(v, float) and v == v else v) for k, v in r.items()
             if k not in ("control_users",)} for r in results])
        tracking.setup(cfg.mlflow, cfg.retries)
        with mlflow.start_run(run_name=f"evaluate {campaign_id}"):
            mlflow.set_tags({"promolake.stage": "evaluate-campaign", "promolake.campaign_id": campaign_id})
            mlflow.log_metrics({f"{r['arm'].replace(' ', '_')}.{r['offer_id']}.{r['metric']}": r["value"]
                                for r in results if r["value"] is not None and r["value"] == r["value"]})
    return report
