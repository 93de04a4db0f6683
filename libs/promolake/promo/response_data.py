"""Rows for the response and uplift models: one per (user, campaign, offer) with the user's features as
of the campaign's start, the offer's features and, for past campaigns, what happened in its window.

The same functions build the rows of past campaigns (training, from silver.exposures) and of the
campaign being scored (features as of the scoring date, no outcome), so the models see the same
columns at training and at scoring time. User features come from the gold user_profile feature
families (promolake.gold.user_profile) computed as of each campaign's start date, so nothing after
the start leaks in.

Outcome of an exposure: `bought` = a purchase in the offer's scope (its item list, its category, or
any item for basket offers) in [start_ts, end_ts); `scope_spend` = what was paid for those lines;
`redeemed` = a redemption of the campaign by the user. A control-arm row has no offer; it is given a
pseudo-offer, drawn by a hash of (campaign, user) among the campaign's offers, so its scope and offer
features are defined: under randomized assignment the control outcome does not depend on it.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from promolake.gold.history import prepare_events, safe_ratio
from promolake.gold.user_profile import activity_features, coupon_features, order_features, search_features

USER_FEATURES = ("tenure_days", "recency_days", "days_since_last_event", "orders_30d", "orders_90d", "orders_365d",
                 "spend_30d", "spend_90d", "spend_365d", "events_30d", "events_90d", "avg_order_value",
                 "activity_trend", "discount_unit_share", "avg_discount_depth", "paid_to_list_ratio", "price_index",
                 "search_share", "bargain_search_share", "offers_received", "redemption_rate",
                 "days_since_last_offer")
SCOPE_FEATURES = ("scope_spend_share", "scope_event_share", "scope_spend_365d", "theme_spend_share",
                  "theme_event_share")
OFFER_FEATURES = ("is_percent_off", "is_amount_off", "is_spend_threshold", "is_gift", "scope_is_item",
                  "scope_is_category", "offer_depth", "need_ratio")
FEATURES = USER_FEATURES + SCOPE_FEATURES + OFFER_FEATURES
NO_HISTORY_DAYS = 999.0   # recency and friends for users with no event / offer yet
# value of a feature for a user without the history it is computed from (other features: 0)
NEUTRAL = {"recency_days": NO_HISTORY_DAYS, "days_since_last_event": NO_HISTORY_DAYS,
           "days_since_last_offer": NO_HISTORY_DAYS, "price_index": 1.0}


def scope_members(offers: DataFrame, items: DataFrame, campaign_items: DataFrame) -> DataFrame:
    """(campaign_id, offer_id, item_id): the items an item- or category-scoped offer applies to.
    Item scope: scope_value when it names an item, else the campaign's campaign_items list; basket
    offers have no rows (they apply to every item)."""
    cat = (offers.where(F.col("scope") == "category")
           .join(items.select("item_id", F.col("category").alias("scope_value")), "scope_value")
           .select("campaign_id", "offer_id", "item_id"))
    single = (offers.where((F.col("scope") == "item") & F.col("scope_value").isNotNull())
              .select("campaign_id", "offer_id", F.col("scope_value").alias("item_id")))
    listed = (offers.where((F.col("scope") == "item") & F.col("scope_value").isNull())
              .join(campaign_items.select("campaign_id", "item_id"), "campaign_id")
              .select("campaign_id", "offer_id", "item_id"))
    return cat.unionByName(single).unionByName(listed).distinct()


def user_features(users: DataFrame, events: DataFrame, items: DataFrame, exposures: DataFrame,
                  redemptions: DataFrame, campaigns: DataFrame, as_of: dt.date) -> DataFrame:
    """USER_FEATURES per user as of as_of (users who signed up before it), nulls filled with neutral
    values (NEUTRAL: NO_HISTORY_DAYS for 'days since', price_index 1; 0 otherwise)."""
    ev = prepare_events(events, items, as_of)
    act, orders, searches = activity_features(ev), order_features(ev), search_features(ev)
    coupons = coupon_features(exposures, redemptions, campaigns, as_of)
    base = (users.where(F.col("signup_ts") < F.lit(as_of).cast("timestamp"))
            .select("user_id", F.datediff(F.lit(as_of), F.to_date("signup_ts")).cast("double").alias("tenure_days")))
    out = (base.join(act, "user_id", "left").join(orders, "user_id", "left").join(searches, "user_id", "left")
           .join(coupons, "user_id", "left"))
    cols = [F.coalesce(F.col(c).cast("double"), F.lit(NEUTRAL.get(c, 0.0))).alias(c) for c in USER_FEATURES]
    return out.select("user_id", *cols)


def scope_features(events: DataFrame, items: DataFrame, rows: DataFrame, members: DataFrame,
                   as_of: dt.date) -> DataFrame:
    """SCOPE_FEATURES per (user_id, campaign_id, offer_id) of rows: the user's share of 365-day spend
    and of 90-day item events that fell in the offer's scope, and the 365-day spend in it (basket
    offers: shares 1 and the whole spend); theme_spend_share / theme_event_share: the same shares for
    the campaign's theme, the items of all its item- and category-scoped offers together, so that a
    basket offer of a kitchen campaign knows how much the user cares for kitchen (campaigns with basket
    offers only: 1)."""
    ev = (prepare_events(events, items, as_of).where(F.col("item_id").isNotNull() & (F.col("age") <= 365))
          .join(rows.select("user_id").distinct(), "user_id")
          .select("user_id", "item_id", "age", F.coalesce("paid", F.lit(0.0)).alias("paid")))
    totals = ev.groupBy("user_id").agg(F.sum("paid").alias("_spend"),
                                       F.count(F.when(F.col("age") <= 90, 1)).alias("_events"))
    offers = rows.select("user_id", "campaign_id", "offer_id", "scope").distinct()

    def shares(keys: list[str], scoped: DataFrame, member_items: DataFrame, prefix: str) -> DataFrame:
        return (ev.join(F.broadcast(member_items), "item_id").join(scoped, ["user_id", *keys])
                .groupBy("user_id", *keys)
                .agg(F.sum("paid").alias(f"_{prefix}_spend"),
                     F.count(F.when(F.col("age") <= 90, 1)).alias(f"_{prefix}_events")))

    in_scope = shares(["campaign_id", "offer_id"], offers.where(F.col("scope") != "basket").drop("scope"), members,
                      "scope")
    themed = members.select("campaign_id", "item_id").distinct()
    in_theme = shares(["campaign_id"], offers.select("user_id", "campaign_id").distinct(), themed, "theme")
    has_theme = themed.select("campaign_id").distinct().withColumn("_has_theme", F.lit(True))
    basket = F.col("scope") == "basket"
    out = (offers.join(totals, "user_id", "left").join(in_scope, ["user_id", "campaign_id", "offer_id"], "left")
           .join(in_theme, ["user_id", "campaign_id"], "left").join(F.broadcast(has_theme), "campaign_id", "left"))
    spend = F.when(basket, F.col("_spend")).otherwise(F.col("_scope_spend"))
    events_in = F.when(basket, F.col("_events")).otherwise(F.col("_scope_events"))
    no_theme = F.col("_has_theme").isNull()
    theme_spend = F.when(no_theme, F.col("_spend")).otherwise(F.col("_theme_spend"))
    theme_events = F.when(no_theme, F.col("_events")).otherwise(F.col("_theme_events"))
    return out.select(
        "user_id", "campaign_id", "offer_id",
        F.coalesce(safe_ratio(spend, F.col("_spend")), F.lit(0.0)).alias("scope_spend_share"),
        F.coalesce(safe_ratio(events_in.cast("double"), F.col("_events")), F.lit(0.0)).alias("scope_event_share"),
        F.coalesce(spend, F.lit(0.0)).alias("scope_spend_365d"),
        F.coalesce(safe_ratio(theme_spend, F.col("_spend")), F.lit(0.0)).alias("theme_spend_share"),
        F.coalesce(safe_ratio(theme_events.cast("double"), F.col("_events")), F.lit(0.0)).alias("theme_event_share"))


def offer_features(offer_type: Column, value: Column, min_spend: Column, scope: Column,
                   reference_value: Column) -> list[Column]:
    """OFFER_FEATURES: type and scope indicators; offer_depth = the discount as a share of the
    reference order value (percent_off: value / 100); need_ratio = min_spend / reference value (0:
    none). reference_value is the user's average order value, floored at 1."""
    ref = F.greatest(F.coalesce(reference_value, F.lit(1.0)), F.lit(1.0))
    depth = F.when(offer_type == "percent_off", value / 100.0).otherwise(F.least(value / ref, F.lit(1.0)))
    return [(offer_type == t).cast("double").alias(f"is_{t}") for t in
            ("percent_off", "amount_off", "spend_threshold", "gift")] + [
        (scope == "item").cast("double").alias("scope_is_item"),
        (scope == "category").cast("double").alias("scope_is_category"),
        depth.cast("double").alias("offer_depth"),
        F.coalesce(min_spend / ref, F.lit(0.0)).cast("double").alias("need_ratio")]


def pseudo_offer(exposures: DataFrame, offers: DataFrame) -> DataFrame:
    """exposures with `offer_id` filled for control rows: the campaign's offer number
    hash(campaign, user) mod (number of offers), in offer_id order; `treated` = arm is treatment."""
    numbered = offers.select("campaign_id", "offer_id").distinct().withColumn(
        "_n", F.row_number().over(Window.partitionBy("campaign_id").orderBy("offer_id")) - 1)
    counts = numbered.groupBy("campaign_id").agg(F.count("*").alias("_offers"))
    pick = F.pmod(F.xxhash64("campaign_id", "user_id"), F.col("_offers"))
    control = (exposures.where(F.col("offer_id").isNull()).drop("offer_id").join(counts, "campaign_id")
               .withColumn("_n", pick).join(numbered, ["campaign_id", "_n"]).drop("_n", "_offers"))
    shown = exposures.where(F.col("offer_id").isNotNull())
    return shown.unionByName(control).withColumn("treated", (F.col("arm") == "treatment").cast("int"))


def outcomes(rows: DataFrame, events: DataFrame, members: DataFrame, redemptions: DataFrame) -> DataFrame:
    """(user_id, campaign_id, offer_id, bought, scope_spend, redeemed) for rows with the offer's
    scope, start_ts and end_ts: purchases in scope inside the window, and redemptions of the campaign."""
    purchases = (events.where(F.col("event_type") == "purchase")
                 .select("user_id", "item_id", "event_ts",
                         (F.col("unit_price").cast("double") * F.col("quantity")).alias("paid")))
    keyed = rows.select("user_id", "campaign_id", "offer_id", "scope", "start_ts", "end_ts")
    window = (purchases.join(keyed, "user_id")
              .where((F.col("event_ts") >= F.col("start_ts")) & (F.col("event_ts") < F.col("end_ts")))
              .join(F.broadcast(members.withColumn("_member", F.lit(True))), ["campaign_id", "offer_id", "item_id"],
                    "left")
              .where((F.col("scope") == "basket") | F.col("_member"))
              .groupBy("user_id", "campaign_id", "offer_id").agg(F.sum("paid").alias("scope_spend")))
    used = redemptions.select("user_id", "campaign_id").distinct().withColumn("redeemed", F.lit(1))
    return (keyed.join(window, ["user_id", "campaign_id", "offer_id"], "left").join(used, ["user_id", "campaign_id"], "left")
            .select("user_id", "campaign_id", "offer_id",
                    F.col("scope_spend").isNotNull().cast("int").alias("bought"),
                    F.coalesce("scope_spend", F.lit(0.0)).alias("scope_spend"),
                    F.coalesce("redeemed", F.lit(0)).alias("redeemed")))


OFFER_ATTRIBUTES = ("offer_type", "value", "min_spend", "scope", "scope_value", "start_ts", "end_ts")


def exposure_rows(exposures: DataFrame, campaigns: DataFrame, ended_by: dt.date) -> DataFrame:
    """Past exposures as model rows: (user_id, campaign_id, offer_id, treated, propensity) plus the
    offer's attributes, for campaigns whose window ended by `ended_by` (their outcome is known)."""
    offers = campaigns.select("campaign_id", "offer_id", *OFFER_ATTRIBUTES)
    done = offers.groupBy("campaign_id").agg(F.max("end_ts").alias("_end")).where(
        F.col("_end") <= F.lit(ended_by).cast("timestamp")).select("campaign_id")
    exp = exposures.join(done, "campaign_id").select("user_id", "campaign_id", "offer_id", "arm", "propensity")
    return (pseudo_offer(exp, offers.join(done, "campaign_id")).join(offers, ["campaign_id", "offer_id"])
            .drop("arm"))


def with_features(rows: DataFrame, users: DataFrame, events: DataFrame, items: DataFrame, exposures: DataFrame,
                  redemptions: DataFrame, campaigns: DataFrame, members: DataFrame, as_of: dt.date) -> DataFrame:
    """rows (user_id, campaign_id, offer_id and the offer attributes) with FEATURES as of as_of; rows of
    users who had not signed up by as_of are dropped."""
    uf = user_features(users, events, items, exposures, redemptions, campaigns, as_of)
    sf = scope_features(events, items, rows, members, as_of)
    out = rows.join(uf, "user_id").join(sf, ["user_id", "campaign_id", "offer_id"], "left")
    return out.select("*", *offer_features(F.col("offer_type"), F.col("value"), F.col("min_spend"), F.col("scope"),
                                           F.col("avg_order_value")))
