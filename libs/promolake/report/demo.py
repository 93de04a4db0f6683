"""The `report` stage: one HTML page with what a run produced, for people who would rather look than read.

Sections (each skipped with a note when its tables are not there yet):
- the lake: every table with its row count;
- market trends and the category forecast with its intervals (the features stage's plots);
- recommendations: the test-split ranking metrics of ALS, the text model, their blends and the baselines
  (ml.ranking_evaluation, latest as_of per model);
- the campaign: users, expected cost and expected incremental profit per arm and offer
  (promo.promotion_assignments), and the budget/profit curve: the expected incremental profit the
  allocation reaches at budgets from 0 to twice the configured one on the campaign's offer scores;
- on a generated world, the simulated truth (engine against oracle, blanket, random and propensity);
- the model registry: every version of the project's models with aliases, run ids and as_of.

Written to <features.reports_root>/demo/<as_of>/index.html (self-contained: images embedded).
"""
from __future__ import annotations

import datetime as dt
import io
import os

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from promolake.common.config import Config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.report.html import Image, Note, Section, Table, render

BUDGET_STEPS = 13          # points of the budget/profit curve, 0 .. 2 x budget


def figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def budget_curve(options: pd.DataFrame, budget: float, max_per_user: int, steps: int = BUDGET_STEPS) -> pd.DataFrame:
    """(budget, expected_cost, expected_profit, users) of the allocation at budgets 0 .. 2 x budget on
    options (user_id, expected_cost, expected_incremental_profit), one option per user and offer."""
    from promolake.promo.allocation import allocate

    uidx = pd.factorize(options.user_id)[0]
    profit = options.expected_incremental_profit.to_numpy(float)
    cost = options.expected_cost.to_numpy(float)
    rows = []
    for b in np.linspace(0.0, 2.0 * budget, steps):
        chosen = allocate(uidx, profit, cost, float(b), max_per_user).chosen
        rows.append({"budget": float(b), "expected_cost": float(cost[chosen].sum()),
                     "expected_profit": float(profit[chosen].sum()), "users": int(len(np.unique(uidx[chosen])))})
    return pd.DataFrame(rows)


def curve_figure(curve: pd.DataFrame, budget: float, campaign_id: str):
    """The budget/profit curve as a matplotlib figure (the report embeds it, notebook 04 shows it)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(curve.budget, curve.expected_profit, marker="o", color="tab:blue", label="expected incremental profit")
    ax.axvline(budget, color="tab:red", linestyle="--", label=f"configured budget {budget:,.0f}")
    ax.set_xlabel("budget (expected cost)")
    ax.set_ylabel("expected incremental profit")
    ax.set_title(f"{campaign_id}: what more budget would buy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def curve_png(curve: pd.DataFrame, budget: float, campaign_id: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    return figure_png(curve_figure(curve, budget, campaign_id))


def best_options(lake: Lake, campaign_id: str, as_of: dt.date) -> pd.DataFrame:
    """Per user and offer of a scored campaign, the most profitable target's expected cost and profit
    (the options budget_curve allocates among)."""
    scores = lake.read("promo.offer_scores").where((F.col("campaign_id") == campaign_id) & (F.col("as_of") == as_of))
    return (scores.select("user_id", "offer_id", "target", "expected_cost", "expected_incremental_profit")
            .toPandas().sort_values(["user_id", "offer_id", "expected_incremental_profit", "target"],
                                    ascending=[True, True, False, True])
            .drop_duplicates(["user_id", "offer_id"]))


def lake_section(lake: Lake) -> Section:
    rows = [{"table": name, "rows": lake.read(name).count(), "location": lake.location(name)} for name in lake.tables()]
    return Section("The lake", [Table(rows)])


def features_section(lake: Lake, cfg: Config, as_of: dt.date) -> Section:
    from promolake.gold.plots import write_feature_plots

    if not lake.exists("gold.market_trend_daily"):
        return Section("Market trends and forecast", [Note("no gold tables yet: run `promolake features`")])
    blocks = []
    for path in write_feature_plots(lake, as_of, cfg.features):
        with open(path, "rb") as f:
            blocks.append(Image(f.read(), os.path.basename(path)))
    return Section("Market trends and forecast", blocks or [Note(f"no trend or forecast rows before {as_of}")])


def recommendations_section(lake: Lake) -> Section:
    if not lake.exists("ml.ranking_evaluation"):
        return Section("Recommendations", [Note("no ranking evaluation yet: run `promolake train-als`")])
    ev = lake.read("ml.ranking_evaluation").where(
        (F.col("split") == "test") & F.col("metric").isin("ndcg", "recall", "precision", "hit_rate", "coverage"))
    latest = ev.groupBy("model_name").agg(F.max("as_of").alias("as_of"))
    pdf = ev.join(latest, ["model_name", "as_of"]).toPandas()
    if pdf.empty:
        return Section("Recommendations", [Note("no test-split evaluation rows")])
    blocks = []
    for model, g in pdf.groupby("model_name"):
        wide = g.pivot_table(index=["view", "recommender"], columns="metric", values="value").reset_index()
        k = int(g.k.iloc[0])
        blocks.append(Table([{**r, "k": k} for r in wide.round(4).to_dict("records")],
                            f"{model}, as of {g.as_of.iloc[0]}: test split, metrics at k = {k}"))
    return Section("Recommendations", blocks)


def campaign_section(spark: SparkSession, lake: Lake, cfg: Config, campaign_id: str) -> Section:
    pc = cfg.promotion
    title = f"Campaign {campaign_id}"
    if not lake.exists("promo.promotion_assignments"):
        return Section(title, [Note("no assignments yet: run `promolake score`")])
    a = lake.read("promo.promotion_assignments").where(F.col("campaign_id") == campaign_id)
    latest = a.agg(F.max("as_of")).first()[0]
    if latest is None:
        return Section(title, [Note(f"campaign {campaign_id} has not been scored")])
    a = a.where(F.col("as_of") == latest)
    summary = (a.groupBy("arm", "offer_id", "offer_type")
               .agg(F.count(F.lit(1)).alias("users"), F.sum("expected_cost").alias("expected_cost"),
                    F.sum("expected_incremental_profit").alias("expected_profit"))
               .orderBy("arm", "offer_id").toPandas())
    total_cost = float(summary.expected_cost.sum())
    blocks = [Note(f"scored as of {latest}; expected cost {total_cost:,.2f} of budget {pc.budget:,.2f}; expected "
                   f"incremental profit {float(summary.expected_profit.sum()):,.2f}"),
              Table(summary.round(2).to_dict("records"), "users, expected cost and profit per arm and offer")]
    options = best_options(lake, campaign_id, latest)
    if not options.empty and pc.budget > 0:
        curve = budget_curve(options, pc.budget, pc.max_offers_per_user)
        blocks += [Image(curve_png(curve, pc.budget, campaign_id), "budget/profit curve"),
                   Table(curve.round(2).to_dict("records"), "the allocation at other budgets (policy only, "
                         "without control and exploration)")]
    return Section(title, blocks)


def truth_section(spark: SparkSession, lake: Lake, cfg: Config, campaign_id: str) -> Section | None:
    """The simulated truth on a generated world; None elsewhere."""
    from promolake.promo.offers import campaign_offers
    from promolake.promo.simulation import NoTruthError, compare_policies

    if not lake.exists("promo.promotion_assignments"):
        return None
    pc = cfg.promotion
    a = lake.read("promo.promotion_assignments").where(F.col("campaign_id") == campaign_id)
    latest = a.agg(F.max("as_of")).first()[0]
    if latest is None:
        return None
    scores = lake.read("promo.offer_scores").where((F.col("campaign_id") == campaign_id) & (F.col("as_of") == latest))
    offers, _ = campaign_offers(spark, lake.read("silver.campaigns"), pc, campaign_id, latest)
    window = offers.agg(F.min("start_ts"), F.max("end_ts")).first()
    days = max(1, (window[1] - window[0]).days)
    try:
        table, agreement = compare_policies(spark, scores, a.where(F.col("as_of") == latest), offers,
                                            lake.read("silver.items"), cfg.world.truth_root, pc.budget,
                                            pc.max_offers_per_user, days, pc.margin_rate, pc.seed)
    except (NoTruthError, ValueError):
        return None
    return Section("Simulated truth (generated world only)", [
        Note("True expected incremental profit under the world's hidden response model, same budget."),
        Table(table), Table(agreement, "predicted vs true uplift of the scored offers (Spearman)")])


def registry_section(cfg: Config) -> Section:
    from mlflow import MlflowClient

    from promolake.common import tracking
    from promolake.ml.gate import registry_rows

    tracking.setup(cfg.mlflow, cfg.retries)
    rows = registry_rows(MlflowClient(), (cfg.als.model_name, cfg.text.model_name, cfg.promotion.model_name))
    return Section("Model registry", [Table(rows, f"MLflow registry at {cfg.mlflow.registry_uri or cfg.mlflow.tracking_uri}")
                                      if rows else Note("no registered models yet")])


def run_report(spark: SparkSession, cfg: Config, campaign_id: str | None = None, as_of: dt.date | None = None,
               report: StageReport | None = None) -> StageReport:
    from promolake.gold.features import default_as_of

    report = report or StageReport("report")
    with report:
        lake = Lake(spark, cfg.lake)
        as_of = as_of or default_as_of(lake)
        campaign_id = campaign_id or cfg.promotion.campaign_id
        sections = [lake_section(lake)]
        report.log("lake tables counted")
        sections.append(features_section(lake, cfg, as_of))
        sections.append(recommendations_section(lake))
        sections.append(campaign_section(spark, lake, cfg, campaign_id))
        report.log("campaign summary and budget/profit curve done")
        truth = truth_section(spark, lake, cfg, campaign_id)
        if truth is not None:
            sections.append(truth)
        sections.append(registry_section(cfg))
        folder = os.path.join(cfg.features.reports_root, "demo", as_of.isoformat())
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "index.html")
        page = render(f"promolake report, as of {as_of}",
                      f"environment {cfg.env}, campaign {campaign_id}, written "
                      f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", sections)
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
        report.note(f"report written to {os.path.abspath(path)} (open it in a browser)")
        report.record(report=os.path.abspath(path), sections=len(sections), bytes=len(page.encode("utf-8")))
    return report
