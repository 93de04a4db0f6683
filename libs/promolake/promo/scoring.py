"""The `score` stage: score every eligible user for a campaign's offers as of a date, choose who gets
which offer under the budget, and write promo.offer_scores and promo.promotion_assignments.

Steps (only data strictly before as_of is used):
1. Offers of the campaign (silver.campaigns, else promotion.campaigns in config).
2. Eligible users: signed up, active in the last `active_days`, at least `min_orders` orders in a year,
   not excluded, and not given an offer in the last `cooldown_days` (silver.exposures treatment arm or
   an earlier promotion_assignments row of another campaign).
3. Targets: category and basket offers apply to their scope; item-scoped offers are considered on the
   user's best `item_candidates` items of ml.user_candidates inside the offer's item list.
4. Features as of as_of (promolake.promo.response_data), the registered uplift model -> p0, p1,
   uplift, p_redeem and reason codes; order value and margin per target; economics
   (promolake.promo.offers) -> promo.offer_scores.
5. Arms by a hash of (seed, campaign, user): control (no offer), explore (a uniformly drawn eligible
   offer) or policy; the policy's offers come from the budget-constrained allocation
   (promolake.promo.allocation) over the best target per (user, offer), with what exploration
   costs taken off the budget first. Propensities are stored on every row.
6. promo.promotion_assignments: the campaign's rows replaced in one MERGE commit, only while this run's
   scores are still the campaign's (both tables carry the run's score_run_id; see write_assignments).
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Iterator

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from promolake.common.config import Config, PromotionConf
from promolake.common.lake import ConcurrentWriteError, Lake
from promolake.common.reporting import StageReport
from promolake.common.spark import PersistScope
from promolake.gold.history import as_of_start
from promolake.promo.allocation import SparkCap, allocate_spark, policy_picks
from promolake.promo.offers import campaign_offers, with_economics
from promolake.promo.response_data import FEATURES, OFFER_ATTRIBUTES, scope_members, with_features
from promolake.promo.train_uplift import silver_frames

HASH_SPACE = 1_000_003


def uniform(seed: int, *cols) -> "F.Column":
    """A deterministic uniform number in [0, 1) per row from a hash of seed and the columns."""
    return F.pmod(F.xxhash64(F.lit(seed), *cols), F.lit(HASH_SPACE)) / F.lit(float(HASH_SPACE))


def eligible_users(s: dict[str, DataFrame], assignments: DataFrame | None, pc: PromotionConf, campaign_id: str,
                   as_of: dt.date) -> DataFrame:
    """(user_id) of the users who may get an offer of the campaign on as_of (see the module docstring)."""
    start = as_of_start(as_of)
    since = lambda days: F.lit(as_of - dt.timedelta(days=days)).cast("timestamp")  # noqa: E731
    ev = s["events"].where((F.col("event_ts") < start) & (F.col("event_ts") >= since(max(pc.active_days, 365))))
    active = ev.where(F.col("event_ts") >= since(pc.active_days)).select("user_id").distinct()
    users = s["users"].where(F.col("signup_ts") < start).select("user_id").join(active, "user_id")
    if pc.min_orders > 0:
        orders = (ev.where(F.col("event_type") == "purchase").groupBy("user_id")
                  .agg(F.countDistinct(F.coalesce("order_id", "event_id")).alias("n"))
                  .where(F.col("n") >= pc.min_orders).select("user_id"))
        users = users.join(orders, "user_id")
    if pc.exclude_users:
        users = users.where(~F.col("user_id").isin(*pc.exclude_users))
    if pc.cooldown_days > 0:
        recent = (s["exposures"].where((F.col("arm") == "treatment") & (F.col("exposed_ts") < start)
                                       & (F.col("exposed_ts") >= since(pc.cooldown_days))).select("user_id"))
        if assignments is not None:
            recent = recent.unionByName(assignments.where(
                (F.col("campaign_id") != campaign_id) & (F.col("offer_id") != "none")
                & (F.col("as_of") < F.lit(as_of)) & (F.col("as_of") >= F.lit(as_of - dt.timedelta(days=pc.cooldown_days))))
                .select("user_id"))
        users = users.join(recent.distinct(), "user_id", "left_anti")
    return users.distinct()


def latest_candidates(lake: Lake, as_of: dt.date, als_version: str | None,
                      text_version: str | None = None) -> DataFrame | None:
    """ml.user_candidates of the latest date on or before as_of written by the champion models: the ALS
    version `als_version` alone, or re-blended with the text version `text_version` (model_version
    "als:<a>+text:<t>"). None when there is none (or no ALS champion)."""
    if als_version is None or not lake.exists("ml.user_candidates"):
        return None
    written_by = F.col("model_version") == F.lit(str(als_version))
    if text_version is not None:
        written_by = written_by | (F.col("model_version") == F.lit(f"als:{als_version}+text:{text_version}"))
    cands = lake.read("ml.user_candidates").where(written_by)
    day = cands.where(F.col("as_of") <= F.lit(as_of)).agg(F.max("as_of")).first()[0]
    return None if day is None else cands.where(F.col("as_of") == F.lit(day))


class NoChampionError(RuntimeError):
    """Scoring found no @champion version of the uplift model."""


def targets(users: DataFrame, offers: DataFrame, members: DataFrame, candidates: DataFrame | None,
            n_items: int) -> DataFrame:
    """(user_id, offer_id, target_type, target, candidate_rank): category and basket offers for every
    user; item offers on the user's best n_items candidates in the offer's item list."""
    broad = (users.crossJoin(F.broadcast(offers.where(F.col("scope") != "item").select("offer_id", "scope", "scope_value")))
             .select("user_id", "offer_id", F.col("scope").alias("target_type"),
                     F.when(F.col("scope") == "basket", F.lit("basket")).otherwise(F.col("scope_value")).alias("target"),
                     F.lit(None).cast("int").alias("candidate_rank")))
    if candidates is None:
        return broad
    item_offers = offers.where(F.col("scope") == "item").select("offer_id")
    on_list = (candidates.join(users, "user_id").select("user_id", "item_id", "rank")
               .join(F.broadcast(members.join(item_offers, "offer_id").select("offer_id", "item_id")), "item_id"))
    w = Window.partitionBy("user_id", "offer_id").orderBy("rank", "item_id")
    items = (on_list.withColumn("_n", F.row_number().over(w)).where(F.col("_n") <= n_items)
             .select("user_id", "offer_id", F.lit("item").alias("target_type"), F.col("item_id").alias("target"),
                     F.col("rank").cast("int").alias("candidate_rank")))
    return broad.unionByName(items)


def target_values(items: DataFrame, margin_rate: float) -> tuple[DataFrame, DataFrame, dict]:
    """(per item: price and margin rate, per category: median price and mean margin rate, overall
    {median_price, margin_rate}) for order values and margins; margins from unit_cost where known."""
    margin = F.when(F.col("unit_cost").isNotNull() & (F.col("list_price") > 0),
                    1.0 - F.col("unit_cost").cast("double") / F.col("list_price").cast("double"))
    it = items.select("item_id", "category", F.col("list_price").cast("double").alias("price"),
                      margin.alias("margin"), F.col("unit_cost").cast("double").alias("unit_cost"))
    per_cat = it.groupBy("category").agg(F.percentile_approx("price", 0.5, 10000).alias("median_price"),
                                         F.avg("margin").alias("margin"))
    overall = it.agg(F.percentile_approx("price", 0.5, 10000).alias("p"), F.avg("margin").alias("m")).first()
    return it, per_cat, {"median_price": float(overall["p"] or 0.0), "margin_rate": float(overall["m"] or margin_rate)}


def predict_partitions(model, features: tuple[str, ...], scope_col: str):
    """mapInPandas function: the uplift model's probabilities and reason codes for each batch."""
    from promolake.promo.reasons import reason_codes

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            if pdf.empty:
                continue
            pred = model.predict(pdf)
            contrib = model.contributions(pdf)
            codes = reason_codes(contrib, pdf[list(features)].to_numpy(float), features, pdf[scope_col].tolist())
            yield pd.DataFrame({"user_id": pdf["user_id"], "offer_id": pdf["offer_id"],
                                "p_buy_without_offer": pred["p_buy_without_offer"].to_numpy(float),
                                "p_buy_with_offer": pred["p_buy_with_offer"].to_numpy(float),
                                "p_redeem": pred["p_redeem"].to_numpy(float), "reason_codes": codes})
    return run


PREDICTION_SCHEMA = ("user_id string, offer_id string, p_buy_without_offer double, p_buy_with_offer double, "
                     "p_redeem double, reason_codes array<string>")


def score_rows(spark: SparkSession, s: dict[str, DataFrame], offers: DataFrame, users: DataFrame,
               candidates: DataFrame | None, model, pc: PromotionConf, campaign_id: str, as_of: dt.date) -> DataFrame:
    """Every (user, offer, target) with predictions and economics (offer_scores columns without stamps)."""
    members = scope_members(offers, s["items"], s["campaign_items"])
    rows = (users.crossJoin(F.broadcast(offers.select("offer_id", *OFFER_ATTRIBUTES)))
            .withColumn("campaign_id", F.lit(campaign_id)))
    events = s["events"].join(users, "user_id")
    feats = with_features(rows, s["users"], events, s["items"], s["exposures"], s["redemptions"], s["campaigns"],
                          members, as_of)
    feats = feats.withColumn("_scope_name", F.coalesce("scope_value", F.when(F.col("scope") == "item",
                                                                             F.lit("the promoted items"))
                                                       .otherwise(F.lit("any category"))))
    preds = feats.select("user_id", "offer_id", "_scope_name", *FEATURES).mapInPandas(
        predict_partitions(model, tuple(FEATURES), "_scope_name"), PREDICTION_SCHEMA)
    per_offer = feats.select("user_id", "offer_id", "offer_type", "value", "min_spend", "scope", "scope_value",
                             "avg_order_value", "scope_spend_share").join(preds, ["user_id", "offer_id"])
    it, per_cat, overall = target_values(s["items"], pc.margin_rate)
    tg = targets(users, offers, members, candidates, pc.item_candidates)
    gift = it.select(F.col("item_id").alias("_gift_item"), F.col("unit_cost").alias("gift_cost"))
    aov = F.coalesce(F.col("avg_order_value"), F.lit(0.0))
    df = (per_offer.join(tg, ["user_id", "offer_id"])
          .join(F.broadcast(it.select(F.col("item_id").alias("target"), F.col("price").alias("_item_price"),
                                      F.col("margin").alias("_item_margin"))), "target", "left")
          .join(F.broadcast(per_cat.select(F.col("category").alias("target"), F.col("median_price").alias("_cat_price"),
                                           F.col("margin").alias("_cat_margin"))), "target", "left")
          .withColumn("_gift_item", F.when(F.col("offer_type") == "gift", F.col("scope_value")))
          .join(F.broadcast(gift), "_gift_item", "left"))
    order_value = (F.when(F.col("target_type") == "item", F.col("_item_price"))
                   .when(F.col("target_type") == "category",
                         F.greatest(F.coalesce("_cat_price", F.lit(overall["median_price"])), aov * F.col("scope_spend_share")))
                   .otherwise(F.greatest(aov, F.lit(overall["median_price"]))))
    margin = (F.when(F.col("target_type") == "item", F.col("_item_margin"))
              .when(F.col("target_type") == "category", F.col("_cat_margin"))
              .otherwise(F.lit(overall["margin_rate"])))
    df = (df.withColumn("order_value", order_value.cast("double"))
          .withColumn("margin_rate", F.coalesce(margin, F.lit(pc.margin_rate)).cast("double"))
          .withColumn("redeem_share", F.lit(float(model.redeem_share)))
          # without a control arm p0 is unknown: every purchase with the offer counts as incremental
          .withColumn("_p0", F.col("p_buy_without_offer"))
          .withColumn("p_buy_without_offer", F.coalesce("_p0", F.lit(0.0))))
    df = with_economics(df, pc.margin_rate).withColumn("p_buy_without_offer", F.col("_p0"))
    return df.select(
        F.lit(campaign_id).alias("campaign_id"), "user_id", "offer_id", "target", "target_type", "offer_type", "value",
        "scope", "p_buy_without_offer", "p_buy_with_offer",
        (F.col("p_buy_with_offer") - F.col("p_buy_without_offer")).alias("uplift"), "p_redeem", "order_value",
        "margin_rate", "expected_cost", "expected_incremental_profit", "candidate_rank", "reason_codes")


def best_targets(scores: DataFrame) -> DataFrame:
    """One option per (user, offer): its target with the highest expected incremental profit."""
    w = Window.partitionBy("user_id", "offer_id").orderBy(F.col("expected_incremental_profit").desc(), "target")
    return scores.withColumn("_n", F.row_number().over(w)).where(F.col("_n") == 1).drop("_n")


def assign_arms(users: DataFrame, pc: PromotionConf, campaign_id: str, explore_share: float | None = None
                ) -> DataFrame:
    """(user_id, arm): control with probability control_share, explore with explore_share (default:
    the configured one), else policy, by a hash of (seed, campaign, user): the same user gets the same
    arm when the campaign is re-run, and a smaller explore share only moves explore users to policy."""
    e = pc.explore_share if explore_share is None else explore_share
    u = uniform(pc.seed, F.lit(campaign_id), F.col("user_id"))
    arm = (F.when(u < pc.control_share, "control").when(u < pc.control_share + e, "explore")
           .otherwise("policy"))
    return users.select("user_id", arm.alias("arm"))


def explore_choice(options: DataFrame, pc: PromotionConf, campaign_id: str) -> DataFrame:
    """For each user of options: one option drawn uniformly (hash of seed, campaign, user, offer), and
    n_options, the number it was drawn from."""
    draw = uniform(pc.seed + 1, F.lit(campaign_id), F.col("user_id"), F.col("offer_id"))
    w = Window.partitionBy("user_id").orderBy(draw, "offer_id")
    n = F.count(F.lit(1)).over(Window.partitionBy("user_id"))
    return (options.withColumn("n_options", n).withColumn("_k", F.row_number().over(w))
            .where(F.col("_k") == 1).drop("_k"))


def caps_for(pc: PromotionConf) -> list[SparkCap]:
    caps = []
    if pc.caps_per_offer:
        caps.append(SparkCap("per_offer", "offer_id", dict(pc.caps_per_offer), "cost"))
    if pc.caps_per_category:
        caps.append(SparkCap("per_category", "cap_category", dict(pc.caps_per_category), "cost"))
    return caps


def allocate_campaign(scores: DataFrame, users: DataFrame, pc: PromotionConf, campaign_id: str,
                      report: StageReport | None = None, keep: PersistScope | None = None) -> tuple[DataFrame, dict]:
    """Assignment rows (promotion_assignments columns except stamps) and a summary dict.

    The rows read from frames cached here, held by `keep`: release it once the rows are written or
    checkpointed (without `keep` they stay cached until the session ends)."""
    keep = keep if keep is not None else PersistScope()
    best = keep(best_targets(scores).withColumn("cap_category", F.when(F.col("target_type") == "category", F.col("target")))
            .withColumnRenamed("expected_incremental_profit", "profit").withColumnRenamed("expected_cost", "cost"))
    caps = caps_for(pc)
    c, e = pc.control_share, pc.explore_share
    # exploration first: its cost comes off the budget, and it may spend at most explore_budget_share of
    # it; when the drawn offers would cost more, the explore share shrinks (users move to policy)
    cap = pc.explore_budget_share * pc.budget
    full = explore_choice(best.join(assign_arms(users, pc, campaign_id), "user_id").where(F.col("arm") == "explore"),
                          pc, campaign_id).agg(F.sum("cost")).first()[0] or 0.0
    if full > cap and e > 0:
        e = e * cap / full
        if report:
            report.note(f"exploration at explore_share {pc.explore_share} would cost {full:,.2f}, more than "
                        f"{pc.explore_budget_share:.0%} of the budget: explore share lowered to {e:.4f}")
    arms = keep(assign_arms(users, pc, campaign_id, e))
    options = keep(best.join(arms, "user_id"))
    explore = explore_choice(options.where(F.col("arm") == "explore"), pc, campaign_id)
    order = Window.orderBy(uniform(pc.seed + 2, F.lit(campaign_id), F.col("user_id")), "user_id")
    explore = explore.withColumn("_spent", F.sum("cost").over(order.rowsBetween(Window.unboundedPreceding, 0)))
    over_budget = keep(explore.where(F.col("_spent") > F.lit(pc.budget)).select("user_id"))
    explore = keep(explore.where(F.col("_spent") <= F.lit(pc.budget)).drop("_spent"))
    n_over = over_budget.count()
    if n_over and report:
        report.note(f"exploration alone exceeds the budget: {n_over:,} users drawn for exploration get no offer "
                    "(their rows have no propensity); lower promotion.explore_share or raise the budget")
    explore_cost = float(explore.agg(F.sum("cost")).first()[0] or 0.0)
    policy_budget = max(0.0, pc.budget - explore_cost)
    policy_options = options.where(F.col("arm") == "policy")
    chosen, summary = allocate_spark(policy_options, policy_budget, pc.max_offers_per_user, caps,
                                     tiebreak=("offer_id",), keep=keep)
    if report:
        report.log(f"allocation: lambda {summary.lam:.4g}, {summary.rounds} round(s), {summary.filled} added by the "
                   f"fill, {summary.repaired} dropped by caps; policy budget {policy_budget:,.2f} after exploration "
                   f"{explore_cost:,.2f}")
    n_opts = options.groupBy("user_id").agg(F.count(F.lit(1)).alias("n_options"))
    # what the policy gives every user: the allocation for the policy arm, its rule for the other arms
    first = Window.partitionBy("user_id").orderBy(F.col("score").desc(), "offer_id")
    given = chosen.where("chosen").withColumn("_k", F.row_number().over(first))
    would = (policy_picks(options.where(F.col("arm") != "policy"), summary, pc.max_offers_per_user, caps)
             .where("policy_pick").withColumn("score", F.col("profit"))
             .withColumn("_k", F.row_number().over(Window.partitionBy("user_id").orderBy(F.col("profit").desc(),
                                                                                          "offer_id"))))
    policy_offer = (given.where(F.col("_k") == 1).select("user_id", F.col("offer_id").alias("policy_offer_id"))
                    .unionByName(would.where(F.col("_k") == 1).select("user_id",
                                                                      F.col("offer_id").alias("policy_offer_id"))))
    keep = 1.0 - c - e
    policy_rows = (chosen.where("chosen").join(n_opts, "user_id")
                   .withColumn("propensity", F.lit(keep) + F.lit(e) / F.col("n_options"))
                   .withColumn("arm", F.lit("policy")))
    explore_rows = explore.join(policy_offer, "user_id", "left").withColumn(
        "propensity", F.lit(e) / F.col("n_options")
        + F.when(F.col("offer_id") == F.col("policy_offer_id"), F.lit(keep)).otherwise(0.0))
    cols = ["user_id", "offer_id", "offer_type", "target_type", "target", "value",
            F.col("uplift").alias("expected_uplift"), F.col("cost").alias("expected_cost"),
            F.col("profit").alias("expected_incremental_profit"), "p_redeem", "arm", "propensity", "reason_codes",
            F.coalesce("policy_offer_id", F.lit("none")).alias("policy_offer_id")]
    nothing = [F.lit("none").alias("offer_id"), F.lit("none").alias("offer_type"),
               F.lit(None).cast("string").alias("target_type"), F.lit(None).cast("string").alias("target"),
               F.lit(None).cast("double").alias("value"), F.lit(None).cast("double").alias("expected_uplift"),
               F.lit(0.0).alias("expected_cost"), F.lit(0.0).alias("expected_incremental_profit"),
               F.lit(0.0).alias("p_redeem"), "arm"]
    no_offer = F.lit(c) + F.when(F.col("policy_offer_id").isNull(), F.lit(keep)).otherwise(0.0)
    control = (arms.where(F.col("arm") == "control").join(policy_offer, "user_id", "left").select(
        "user_id", *nothing, no_offer.alias("propensity"), F.array().cast("array<string>").alias("reason_codes"),
        F.coalesce("policy_offer_id", F.lit("none")).alias("policy_offer_id")))
    # eligible policy-arm users the allocation gave nothing: recorded, so every decision is in the table
    nobody = (arms.where(F.col("arm") == "policy").join(policy_rows.select("user_id"), "user_id", "left_anti").select(
        "user_id", *nothing, F.lit(c + keep).alias("propensity"), F.array().cast("array<string>").alias("reason_codes"),
        F.lit("none").alias("policy_offer_id")))
    unexplored = over_budget.join(policy_offer, "user_id", "left").select(
        "user_id", *nothing[:-1], F.lit("explore").alias("arm"),   # nothing ends with "arm"
        F.lit(None).cast("double").alias("propensity"), F.array().cast("array<string>").alias("reason_codes"),
        F.coalesce("policy_offer_id", F.lit("none")).alias("policy_offer_id"))
    rows = (policy_rows.withColumn("policy_offer_id", F.col("offer_id")).select(*cols)
            .unionByName(explore_rows.select(*cols)).unionByName(control).unionByName(nobody)
            .unionByName(unexplored))
    info = {"lambda": summary.lam, "policy_budget": policy_budget, "explore_cost": explore_cost, "explore_share": e,
            "policy_cost": summary.cost, "policy_profit": summary.profit}
    return rows, info


def candidate_models(model_version: str, als_name: str, text_name: str) -> dict[str, str]:
    """{registered model: version} behind an ml.user_candidates model_version: "<a>" (ALS version a alone) or
    "als:<a>+text:<t>" (ALS a re-blended with text model t, written by the text stage)."""
    m = re.fullmatch(r"als:([^+]+)\+text:(.+)", model_version)
    return {als_name: m.group(1), text_name: m.group(2)} if m else {als_name: model_version}


def model_lineage(names_versions: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """({model: version}, {model: run id}) from the registry, for the rows' model_versions / run_ids. A version
    the registry does not have (written by another registry, e.g. a copied lake) keeps its version with an
    empty run id; any other registry error stops the run (it would otherwise write empty lineage)."""
    from promolake.common import tracking

    runs = {name: tracking.run_id_of(name, version) or "" for name, version in names_versions.items()}
    return dict(names_versions), runs


def run_score(spark: SparkSession, cfg: Config, campaign_id: str | None = None, as_of: dt.date | None = None,
              report: StageReport | None = None) -> StageReport:
    from mlflow import MlflowClient

    from promolake.common import tracking
    from promolake.gold.features import default_as_of
    from promolake.ml.gate import alias_version
    from promolake.promo.uplift_model import load_uplift_model

    pc = cfg.promotion
    campaign_id = campaign_id or pc.campaign_id
    report = report or StageReport("score")
    run_id = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
    # every frame this run caches is released when it ends, failed or not, and only this run's frames
    with report, PersistScope() as keep:
        lake = Lake(spark, cfg.lake)
        as_of = as_of or default_as_of(lake)
        s = silver_frames(lake)
        offers, source = campaign_offers(spark, s["campaigns"], pc, campaign_id, as_of)
        offers = keep(offers)
        window = offers.agg(F.min("start_ts"), F.max("end_ts")).first()
        report.log(f"campaign {campaign_id} ({source}): {offers.count()} offers, window {window[0]} .. {window[1]}, "
                   f"scored as of {as_of}, budget {pc.budget:,.2f}")
        check_offers(offers, s["items"])
        tracking.setup(cfg.mlflow, cfg.retries)
        # scoring always uses the champions (promoted by validate-and-promote or by hand), never "latest"
        client = MlflowClient()
        version = alias_version(client, pc.model_name, tracking.CHAMPION)
        if version is None:
            raise NoChampionError(f"{pc.model_name} has no @{tracking.CHAMPION} version: run `promolake "
                                  "validate-and-promote` after train-uplift (validation.mode enabled), or promote a "
                                  "version by hand (notebooks/05_model_registry)")
        model = load_uplift_model(f"models:/{pc.model_name}/{version}")
        report.log(f"uplift model {pc.model_name} version {version} (@{tracking.CHAMPION}, {model.learner} learner)")
        assignments = lake.read("promo.promotion_assignments") if lake.exists("promo.promotion_assignments") else None
        users = keep(eligible_users(s, assignments, pc, campaign_id, as_of))
        n_users = users.count()
        report.log(f"{n_users:,} eligible users (active in the last {pc.active_days} days, cool-down "
                   f"{pc.cooldown_days} days, at least {pc.min_orders} orders)")
        if n_users == 0:
            raise ValueError(f"no eligible users for campaign {campaign_id} as of {as_of}: check promotion.active_days, "
                             "cooldown_days and min_orders")
        als_v, text_v = (alias_version(client, m, tracking.CHAMPION) for m in (cfg.als.model_name, cfg.text.model_name))
        candidates = latest_candidates(lake, as_of, als_v, text_v)
        if candidates is not None:
            got = candidates.select("as_of", "model_version").first()
            report.log(f"item candidates: ml.user_candidates of {got.as_of} (written by {got.model_version}; "
                       f"champions: {cfg.als.model_name} v{als_v}, {cfg.text.model_name} v{text_v or '-'})")
        versions = {pc.model_name: version}
        if candidates is not None and offers.where(F.col("scope") == "item").limit(1).count():
            # at most two rows: latest_candidates keeps the ALS champion's version and its text re-blend only
            for r in candidates.select("model_version").distinct().limit(2).collect():
                versions.update(candidate_models(r.model_version, cfg.als.model_name, cfg.text.model_name))
        elif offers.where(F.col("scope") == "item").limit(1).count():
            report.note(f"no ml.user_candidates on or before {as_of} written by the @{tracking.CHAMPION} ALS model "
                        f"({als_v or 'none'}): item-scoped offers get no targets (run train-als and "
                        "validate-and-promote first)")
        model_versions, run_ids = model_lineage(versions)
        stamp = [F.lit(as_of).alias("as_of"),
                 F.create_map(*[x for k, v in model_versions.items() for x in (F.lit(k), F.lit(v))]).alias("model_versions"),
                 F.create_map(*[x for k, v in run_ids.items() for x in (F.lit(k), F.lit(v))]).alias("run_ids")]
        # checkpointed: the feature plan is long, and every later step would carry (and re-plan) it
        scores = score_rows(spark, s, offers, users, candidates, model, pc, campaign_id, as_of).localCheckpoint()
        res = lake.upsert(scores.select(
            "campaign_id", "user_id", "offer_id", "target", *stamp[:1], "offer_type", "value", "p_buy_without_offer",
            "p_buy_with_offer", "uplift", "p_redeem", "order_value", "margin_rate", "expected_cost",
            "expected_incremental_profit", F.lit(model.learner).alias("uplift_source"), "reason_codes", *stamp[1:],
            F.lit(run_id).alias("score_run_id"), F.current_timestamp().alias("computed_at")), "promo.offer_scores",
            replace_slice={"campaign_id": campaign_id})
        report.record_write("promo.offer_scores", res)
        rows, info = allocate_campaign(scores, users, pc, campaign_id, report, keep)
        rows = rows.select("user_id", "offer_id", "offer_type", "target_type", "target", "value", "expected_uplift",
                           "expected_cost", "expected_incremental_profit", "p_redeem", "arm", "propensity",
                           "policy_offer_id", "reason_codes", *stamp[1:], stamp[0],
                           F.lit(run_id).alias("score_run_id"), F.current_timestamp().alias("created_at"),
                           F.lit(campaign_id).alias("campaign_id")).localCheckpoint()
        report.record_write("promo.promotion_assignments", write_assignments(lake, rows, campaign_id, run_id, report))
        summarize(rows, info, pc, model, report)
        simulate(spark, cfg, scores, rows, offers, s["items"], window, report)
    return report


def scores_run(lake: Lake, campaign_id: str) -> str | None:
    """The scoring run whose promo.offer_scores rows of the campaign are in place (None: none)."""
    row = (lake.read("promo.offer_scores").where(F.col("campaign_id") == campaign_id)
           .select("score_run_id").limit(1).first())
    return row[0] if row else None


def write_assignments(lake: Lake, rows: DataFrame, campaign_id: str, run_id: str, report: StageReport,
                      attempts: int = 3):
    """Replace the campaign's assignments with rows, only while this run's scores are the campaign's
    scores: a newer run that replaced them writes its own assignments, so this one stops without touching
    them (ConcurrentWriteError). A write conflict with another run's assignments is retried after the same
    check. Two overlapping runs therefore end with the scores and assignments of one run, never a mix.

    The check and the MERGE are two steps on two tables, so a newer run B could replace the scores and
    commit its assignments between them; the check after the commit finds that B holds the scores and
    puts B's assignments back (restore_assignments), then stops with ConcurrentWriteError."""
    table = "promo.promotion_assignments"
    for attempt in range(1, attempts + 1):
        checked_at = lake.version(table)       # before the check: a newer run's assignments come after it
        holder = scores_run(lake, campaign_id)
        if holder != run_id:
            raise ConcurrentWriteError(
                f"promo.offer_scores of campaign {campaign_id} were replaced by scoring run {holder} while this run "
                f"({run_id}) worked: that run writes the assignments; this run stopped without touching "
                "promo.promotion_assignments")
        try:
            result = lake.upsert(rows, table, replace_slice={"campaign_id": campaign_id})
        except ConcurrentWriteError as err:
            if attempt == attempts:
                raise
            report.log(f"{table}: {err} - checking the scores again and retrying")
            continue
        holder = scores_run(lake, campaign_id)
        if holder == run_id:
            return result
        restored = restore_assignments(lake, campaign_id, holder, checked_at)
        if restored is None:
            outcome = f"{holder} writes its own assignments after this run's"
        elif restored == 0:
            outcome = f"{holder}'s assignments, committed after this run's, are in place"
        else:
            outcome = f"{holder}'s assignments ({restored:,} rows), which this run's write had replaced, were put back"
        raise ConcurrentWriteError(
            f"promo.offer_scores of campaign {campaign_id} were replaced by scoring run {holder} while this run "
            f"({run_id}) wrote its assignments: {outcome}; this run's are not kept")
    raise AssertionError("unreachable")


def restore_assignments(lake: Lake, campaign_id: str, holder: str, since_version: int) -> int | None:
    """Put back the campaign's assignments of scoring run `holder` as the newest table version after
    since_version that held them had them (they were replaced by an older run's late write). Returns the
    rows restored: 0 when the current version already has holder's, None when no version after
    since_version has them (holder has not written yet: it will, since it holds the scores)."""
    table = "promo.promotion_assignments"
    current = lake.version(table)
    for version in range(current, max(since_version, 0), -1):
        rows = lake.read_version(table, version).where(F.col("campaign_id") == campaign_id)
        runs = {r[0] for r in rows.select("score_run_id").distinct().collect()}
        if runs == {holder}:
            if version == current:
                return 0
            lake.upsert(rows, table, replace_slice={"campaign_id": campaign_id})
            return rows.count()
    return None


def check_offers(offers: DataFrame, items: DataFrame) -> None:
    """Refuse offers that cannot be scored, naming them: a gift item or a category the catalogue lacks."""
    gifts = offers.where(F.col("offer_type") == "gift").select("offer_id", F.col("scope_value").alias("item_id"))
    missing = [r.offer_id for r in gifts.join(items.select("item_id"), "item_id", "left_anti").collect()]
    cats = offers.where(F.col("scope") == "category").select("offer_id", F.col("scope_value").alias("category"))
    missing += [r.offer_id for r in cats.join(items.select("category").distinct(), "category", "left_anti").collect()]
    if missing:
        raise ValueError(f"offers {missing}: their gift item or category is not in silver.items")


def summarize(rows: DataFrame, info: dict, pc: PromotionConf, model, report: StageReport) -> None:
    report.section("allocation", [{"budget": pc.budget, "exploration_cost": round(info["explore_cost"], 2),
                                   "policy_budget": round(info["policy_budget"], 2),
                                   "policy_cost": round(info["policy_cost"], 2), "lambda": round(info["lambda"], 6),
                                   "control_share": pc.control_share, "explore_share": info["explore_share"]}])
    per_offer = (rows.groupBy("arm", "offer_id", "offer_type")
                 .agg(F.count(F.lit(1)).alias("users"), F.sum("expected_cost").alias("expected_cost"),
                      F.sum("expected_incremental_profit").alias("expected_profit"),
                      F.avg("expected_uplift").alias("mean_uplift"))
                 .orderBy("arm", "offer_id").collect())
    report.section("users targeted per arm and offer", [
        {"arm": r.arm, "offer": r.offer_id, "type": r.offer_type, "users": r.users,
         "expected_cost": round(r.expected_cost or 0.0, 2), "expected_profit": round(r.expected_profit or 0.0, 2),
         "mean_uplift": None if r.mean_uplift is None else round(r.mean_uplift, 4)} for r in per_offer])
    total_cost = sum(r.expected_cost or 0.0 for r in per_offer)
    total_profit = sum(r.expected_profit or 0.0 for r in per_offer)
    report.note(f"expected cost {total_cost:,.2f} of budget {pc.budget:,.2f} ({100 * total_cost / pc.budget:.1f}%)"
                if pc.budget else f"expected cost {total_cost:,.2f} (budget 0)")
    report.note(f"expected incremental profit {total_profit:,.2f} (policy {info['policy_profit']:,.2f}, "
                f"exploration {total_profit - info['policy_profit']:,.2f})")
    if model.learner == "response":
        report.note("uplift unknown (no control arm in the history): incremental profit assumes every purchase "
                    "with an offer is incremental")


def simulate(spark: SparkSession, cfg: Config, scores: DataFrame, rows: DataFrame, offers: DataFrame,
             items: DataFrame, window, report: StageReport) -> None:
    """On a generated world: the engine against the oracle and the baselines under the world's true
    response model (promolake.promo.simulation); skipped with a note elsewhere."""
    from promolake.promo.simulation import NoTruthError, compare_policies

    pc = cfg.promotion
    days = max(1, (window[1] - window[0]).days)
    try:
        table, agreement = compare_policies(spark, scores, rows, offers, items, cfg.world.truth_root, pc.budget,
                                            pc.max_offers_per_user, days, pc.margin_rate, pc.seed)
    except (NoTruthError, ValueError) as err:
        report.note(f"no simulated truth comparison: {err}")
        return
    report.section("simulated truth: true expected incremental profit of each policy (synthetic world's "
                   "hidden response model, same budget)", table)
    report.section("simulated truth: predicted vs true uplift of the scored offers (Spearman rank correlation)",
                   agreement)
