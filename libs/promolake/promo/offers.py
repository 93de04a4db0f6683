"""Offers of a campaign and their economics: what an offer costs and earns for one user.

An offer row has offer_id, offer_type (percent_off, amount_off, spend_threshold, gift), value (percent
for percent_off, currency otherwise; the gift's value for gift), min_spend, scope (item, category,
basket), scope_value and the campaign window [start_ts, end_ts).

Economics of giving offer o to user u, for an order in the offer's scope during the window:
- order_value: what u would spend on such an order without the offer (item price x usual quantity
  for an item offer, u's usual spend in the category or basket otherwise);
- basket_with_offer: order_value, raised to min_spend for offers that need it (to redeem, the order
  must reach it);
- discount: percent_off: value% of basket_with_offer; amount_off: min(value, basket_with_offer);
  spend_threshold: value; gift: the gift item's unit cost (its value x (1 - margin rate) when unknown);
- p_redeem: from the redemption model when the scores carry it, else p_buy_with_offer x redeem_share
  (treated buyers who use the offer);
- expected_cost = p_redeem x discount: paid to everyone who redeems, including users who would have
  bought anyway;
- expected_incremental_profit = margin((p_buy_with_offer - p_redeem) x order_value + p_redeem x
  basket_with_offer) - margin(p_buy_without_offer x order_value) - expected_cost, with margin(x) = x x
  margin_rate: only the users who redeem raise their order to the offer's minimum spend; for offers
  that do not change the basket this is uplift x margin(order_value) - expected_cost.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from promolake.common.config import PromotionConf

OFFER_COLUMNS = ("campaign_id", "offer_id", "offer_type", "value", "min_spend", "scope", "scope_value",
                 "start_ts", "end_ts")


class UnknownCampaignError(ValueError):
    """The campaign to score is neither in silver.campaigns nor defined in config."""


def campaign_offers(spark: SparkSession, campaigns: DataFrame, conf: PromotionConf, campaign_id: str,
                    as_of: dt.date) -> tuple[DataFrame, str]:
    """Return (offers of the campaign, where they came from: "silver.campaigns" or "config").

    silver.campaigns wins when it has the campaign; a campaign defined in config starts at its `start`
    or, when that is null, at as_of, and lasts `days`.
    """
    money = {"value", "min_spend"}   # decimals in silver; the economics work in doubles
    stored = campaigns.where(F.col("campaign_id") == F.lit(campaign_id)).select(
        *[F.col(c).cast("double").alias(c) if c in money else F.col(c) for c in OFFER_COLUMNS])
    if stored.limit(1).count():
        return stored, "silver.campaigns"
    camp = conf.campaigns.get(campaign_id)
    if camp is None:
        known = sorted({r[0] for r in campaigns.select("campaign_id").distinct().collect()} | set(conf.campaigns))
        raise UnknownCampaignError(f"campaign {campaign_id!r} is neither in silver.campaigns nor in "
                                   f"promotion.campaigns; known: {known[:20]}{' ...' if len(known) > 20 else ''}")
    start = dt.datetime.combine(camp.start or as_of, dt.time())
    end = start + dt.timedelta(days=camp.days)
    rows = [(campaign_id, o.offer_id, o.offer_type, float(o.value), o.min_spend, o.scope, o.scope_value, start, end)
            for o in camp.offers]
    schema = ("campaign_id string, offer_id string, offer_type string, value double, min_spend double, "
              "scope string, scope_value string, start_ts timestamp, end_ts timestamp")
    return spark.createDataFrame(rows, schema), "config"


def basket_with_offer(order_value: Column, min_spend: Column) -> Column:
    """The order value when the offer is used: raised to min_spend where the offer needs one."""
    return F.when(min_spend.isNotNull(), F.greatest(order_value, min_spend)).otherwise(order_value)


def discount_amount(offer_type: Column, value: Column, basket: Column, gift_cost: Column) -> Column:
    """What one redemption costs the shop (see the module docstring)."""
    return (F.when(offer_type == "percent_off", value / 100.0 * basket)
            .when(offer_type == "amount_off", F.least(value, basket))
            .when(offer_type == "spend_threshold", value)
            .when(offer_type == "gift", gift_cost))


def with_economics(df: DataFrame, margin_rate: float) -> DataFrame:
    """df with p_redeem, expected_cost and expected_incremental_profit added.

    df needs offer_type, value, min_spend, order_value, gift_cost (null unless a gift; when null, the
    gift's value x (1 - margin_rate)), margin_rate (null: the default margin_rate argument),
    p_buy_without_offer, p_buy_with_offer and either p_redeem (kept where not null) or redeem_share.
    """
    margin = F.coalesce(F.col("margin_rate"), F.lit(float(margin_rate)))
    gift_cost = F.coalesce(F.col("gift_cost"), F.col("value") * (1.0 - margin))
    basket = basket_with_offer(F.col("order_value"), F.col("min_spend"))
    from_share = F.col("p_buy_with_offer") * F.col("redeem_share") if "redeem_share" in df.columns else None
    if "p_redeem" in df.columns:
        p_redeem = F.col("p_redeem") if from_share is None else F.coalesce(F.col("p_redeem"), from_share)
    elif from_share is not None:
        p_redeem = from_share
    else:
        raise ValueError("with_economics needs p_redeem or redeem_share")
    cost = p_redeem * discount_amount(F.col("offer_type"), F.col("value"), basket, gift_cost)
    # buyers who redeem spend basket_with_offer, buyers who do not their usual order_value
    spend_with = (F.col("p_buy_with_offer") - p_redeem) * F.col("order_value") + p_redeem * basket
    profit = (spend_with - F.col("p_buy_without_offer") * F.col("order_value")) * margin - cost
    return (df.withColumn("p_redeem", p_redeem).withColumn("expected_cost", cost)
            .withColumn("expected_incremental_profit", profit))
