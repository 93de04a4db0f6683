"""gold.user_profile: one row per user per as_of date, built only from data strictly before as_of.

Each feature family is a pure function from silver DataFrames to one row per user; build_user_profile
joins them onto the users who had signed up by as_of. Every window is a condition inside one
aggregation over the events (no re-scan per window). Segments are added by promolake.gold.segments.
"""
from __future__ import annotations

import datetime as dt
import re

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from promolake.common.config import FeaturesConf, UserTextConf
from promolake.common.tables import WINDOWS
from promolake.gold.history import (ITEM_EVENTS, age_days, as_of_start, before, safe_ratio, symmetric_change,
                                    within)

LONGEST = max(WINDOWS)


def activity_features(ev: DataFrame) -> DataFrame:
    """Per user: recency, windowed orders/units/spend/events, basket size, price sensitivity and the
    30-day activity and spend trends. `ev` is promolake.gold.history.prepare_events output."""
    purchase = F.col("event_type") == "purchase"
    paid_line = purchase & (F.col("paid") > 0)  # free gift lines say nothing about price sensitivity
    long_paid = paid_line & (F.col("age") <= LONGEST)
    aggs = [
        F.min(F.when(purchase, F.col("age"))).alias("recency_days"),
        F.min("age").alias("days_since_last_event"),
    ]
    for w in WINDOWS:
        aggs += [F.sum(within(w, F.when(purchase, F.col("quantity")), 0)).cast("long").alias(f"units_{w}d"),
                 F.sum(within(w, "paid", 0.0)).alias(f"spend_{w}d"),
                 F.count(within(w)).alias(f"events_{w}d")]
    aggs += [
        F.count(F.when((F.col("age") > 30) & (F.col("age") <= 60), 1)).alias("events_prev_30d"),
        F.sum(F.when((F.col("age") > 30) & (F.col("age") <= 60), F.col("paid"))).alias("_spend_prev_30d"),
        F.sum(F.when(long_paid, F.col("quantity"))).alias("_paid_units"),
        F.sum(F.when(long_paid & F.col("discounted"), F.col("quantity"))).alias("_discounted_units"),
        F.sum(F.when(long_paid & F.col("discounted"), F.col("discount"))).alias("_discount"),
        F.sum(F.when(long_paid & F.col("discounted"), F.col("list_value"))).alias("_discounted_list_value"),
        F.sum(F.when(long_paid, F.col("paid"))).alias("_paid"),
        F.sum(F.when(long_paid, F.col("list_value"))).alias("_list_value"),
        F.avg(F.when(F.col("event_type").isin(*ITEM_EVENTS) & (F.col("age") <= LONGEST),
                     F.col("list_price") / F.col("category_median_price"))).alias("price_index"),
    ]
    return (ev.groupBy("user_id").agg(*aggs)
            .withColumn("discount_unit_share", safe_ratio(F.col("_discounted_units").cast("double"), F.col("_paid_units")))
            .withColumn("avg_discount_depth", safe_ratio(F.col("_discount"), F.col("_discounted_list_value")))
            .withColumn("paid_to_list_ratio", safe_ratio(F.col("_paid"), F.col("_list_value")))
            .withColumn("activity_trend", symmetric_change(F.col("events_30d"), F.col("events_prev_30d")))
            .withColumn("spend_trend", symmetric_change(F.col("spend_30d"),
                                                        F.coalesce(F.col("_spend_prev_30d"), F.lit(0.0))))
            .drop(*[c for c in ("_spend_prev_30d", "_paid_units", "_discounted_units", "_discount",
                                "_discounted_list_value", "_paid", "_list_value")]))


def order_features(ev: DataFrame) -> DataFrame:
    """Per user: distinct orders in each window and the 365-day average order value and basket units."""
    orders = (ev.where(F.col("event_type") == "purchase")
              .groupBy("user_id", "order_key")
              .agg(F.min("age").alias("age"), F.sum("paid").alias("value"), F.sum("quantity").alias("units")))
    return orders.groupBy("user_id").agg(
        *[F.count(within(w)).alias(f"orders_{w}d") for w in WINDOWS],
        F.avg(within(LONGEST, "value")).alias("avg_order_value"),
        F.avg(within(LONGEST, F.col("units").cast("double"))).alias("avg_basket_units"))


BARGAIN_WORDS = ("cheap", "cheapest", "budget", "bargain", "sale", "deal", "deals", "discount", "discounted",
                 "offer", "offers", "coupon", "clearance", "promo")


def search_features(ev: DataFrame, bargain_words: tuple[str, ...] = BARGAIN_WORDS) -> DataFrame:
    """Per user, over the last 365 days: searches, searches per item event (search_share) and the share of
    searches that ask for a bargain (bargain_search_share: a whole word of bargain_words in the query,
    case-insensitive), the clearest trace of price sensitivity in behaviour. Null ratios without history."""
    pattern = r"(?i)\b(" + "|".join(re.escape(w) for w in bargain_words) + r")\b"
    recent = F.col("age") <= LONGEST
    search = recent & (F.col("event_type") == "search")
    return (ev.groupBy("user_id").agg(
        F.count(F.when(search, 1)).alias("searches_365d"),
        F.count(F.when(recent & F.col("event_type").isin(*ITEM_EVENTS), 1)).alias("_item_events"),
        F.count(F.when(search & F.col("query_text").rlike(pattern), 1)).alias("_bargain"))
        .withColumn("search_share", safe_ratio(F.col("searches_365d").cast("double"), F.col("_item_events")))
        .withColumn("bargain_search_share", safe_ratio(F.col("_bargain").cast("double"), F.col("searches_365d")))
        .drop("_item_events", "_bargain"))


def top_shares(ev: DataFrame, by: str, top_n: int) -> DataFrame:
    """Per user: maps <by value -> share> of 365-day spend and of item events, top_n largest kept.

    Shares are of the user's total over every value, so a user with at most top_n values has maps
    summing to 1. Returns user_id, <by>_spend_share, <by>_interaction_share, top_<by>.
    """
    per = (ev.where(F.col("event_type").isin(*ITEM_EVENTS) & (F.col("age") <= LONGEST) & F.col(by).isNotNull())
           .groupBy("user_id", by)
           .agg(F.sum(F.coalesce("paid", F.lit(0.0))).alias("spend"), F.count(F.lit(1)).alias("n")))
    user = Window.partitionBy("user_id")
    per = (per.withColumn("spend_share", safe_ratio(F.col("spend"), F.sum("spend").over(user)))
              .withColumn("n_share", F.col("n") / F.sum("n").over(user))
              .withColumn("spend_rank", F.row_number().over(user.orderBy(F.desc("spend"), by)))
              .withColumn("n_rank", F.row_number().over(user.orderBy(F.desc("n"), F.desc("spend"), by))))

    def top_map(share: str, rank: str) -> Column:
        keep = (F.col(rank) <= top_n) & (F.col(share) > 0)
        entries = F.collect_list(F.when(keep, F.struct(F.col(by), F.col(share))))
        return F.when(F.size(entries) > 0, F.map_from_entries(entries))

    return per.groupBy("user_id").agg(
        top_map("spend_share", "spend_rank").alias(f"{by}_spend_share"),
        top_map("n_share", "n_rank").alias(f"{by}_interaction_share"),
        F.max(F.when(F.col("n_rank") == 1, F.col(by))).alias(f"top_{by}"))


def coupon_features(exposures: DataFrame, redemptions: DataFrame, campaigns: DataFrame,
                    as_of: dt.date) -> DataFrame:
    """Per user: treatment exposures and redemptions before as_of, in total and per offer_type,
    control-arm exposures and days since the last offer."""
    offer_type = campaigns.select("campaign_id", "offer_id", "offer_type")
    exp = before(exposures, "exposed_ts", as_of).join(F.broadcast(offer_type), ["campaign_id", "offer_id"], "left")
    red = before(redemptions, "redeemed_ts", as_of).join(F.broadcast(offer_type), ["campaign_id", "offer_id"], "left")
    treated = exp.where(F.col("arm") == "treatment")
    got = treated.groupBy("user_id", "offer_type").agg(F.count(F.lit(1)).alias("received"))
    used = red.groupBy("user_id", "offer_type").agg(F.count(F.lit(1)).alias("redeemed"))
    per_type = got.join(used, ["user_id", "offer_type"], "full").fillna(0, ["received", "redeemed"])
    by_type = per_type.groupBy("user_id").agg(
        F.sum("received").alias("offers_received"), F.sum("redeemed").alias("offers_redeemed"),
        F.map_from_entries(F.collect_list(F.when(F.col("received") > 0, F.struct("offer_type", "received"))))
        .alias("offers_received_by_type"),
        F.map_from_entries(F.collect_list(F.when(F.col("received") > 0, F.struct(
            "offer_type", (F.col("redeemed") / F.col("received")).alias("rate"))))).alias("redemption_rate_by_type"))
    timing = exp.groupBy("user_id").agg(
        F.count(F.when(F.col("arm") == "control", 1)).alias("control_exposures"),
        F.min(F.when(F.col("arm") == "treatment", age_days("exposed_ts", as_of))).alias("days_since_last_offer"))
    return (by_type.join(timing, "user_id", "full")
            .withColumn("redemption_rate", safe_ratio(F.col("offers_redeemed").cast("double"), F.col("offers_received"))))


def review_features(reviews: DataFrame, as_of: dt.date, negative_max: int) -> DataFrame:
    """Per user: reviews written before as_of, their mean rating and the share with <= negative_max stars."""
    return (before(reviews, "review_ts", as_of).groupBy("user_id").agg(
        F.count(F.lit(1)).alias("review_count"),
        F.avg(F.col("rating").cast("double")).alias("mean_rating"),
        F.avg(F.when(F.col("rating") <= negative_max, 1.0).otherwise(0.0)).alias("negative_review_share")))


TEXT_KINDS = ("searched", "bought", "viewed", "reviewed")


def user_text(ev: DataFrame, reviews: DataFrame, as_of: dt.date, conf: UserTextConf) -> DataFrame:
    """Per user: user_text, e.g. 'searched: cheap kettle; tea. bought: Acme Kettle. viewed: ...
    reviewed: "Works well..."'. Each kind newest first, distinct texts, at most conf.max_<kind>
    of them, searches/purchases/views from the last conf.lookback_days, reviews from all history;
    cut to conf.max_chars."""
    recent = ev.where(F.col("age") <= conf.lookback_days)
    parts = [
        recent.where(F.col("event_type") == "search")
        .select("user_id", F.lit("searched").alias("kind"), "event_ts", F.lower(F.trim("query_text")).alias("text")),
        recent.where(F.col("event_type") == "purchase").select("user_id", F.lit("bought").alias("kind"), "event_ts",
                                                               F.col("title").alias("text")),
        recent.where(F.col("event_type") == "view").select("user_id", F.lit("viewed").alias("kind"), "event_ts",
                                                           F.col("title").alias("text")),
        before(reviews, "review_ts", as_of).select(
            "user_id", F.lit("reviewed").alias("kind"), F.col("review_ts").alias("event_ts"),
            F.concat(F.lit('"'), F.trim(F.substring(F.regexp_replace("review_text", r"\s+", " "), 1,
                                                     conf.review_snippet_chars)), F.lit('"')).alias("text")),
    ]
    texts = parts[0].unionByName(parts[1]).unionByName(parts[2]).unionByName(parts[3])
    texts = (texts.where(F.col("text").isNotNull() & (F.length("text") > 0))
             .groupBy("user_id", "kind", "text").agg(F.max("event_ts").alias("ts")))
    limit = F.when(F.col("kind") == "searched", conf.max_queries).when(F.col("kind") == "bought", conf.max_bought) \
        .when(F.col("kind") == "viewed", conf.max_viewed).otherwise(conf.max_reviews)
    newest = Window.partitionBy("user_id", "kind").orderBy(F.desc("ts"), "text")
    texts = texts.withColumn("rank", F.row_number().over(newest)).where(F.col("rank") <= limit)
    order = F.when(F.col("kind") == "searched", 0).when(F.col("kind") == "bought", 1) \
        .when(F.col("kind") == "viewed", 2).otherwise(3)
    collected = texts.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct(order.alias("k"), F.col("rank").alias("r"), "kind", "text"))).alias("all"))

    def segment(kind: str) -> Column:
        chosen = F.filter("all", lambda x: x["kind"] == kind)
        return F.when(F.size(chosen) > 0, F.concat(F.lit(f"{kind}: "), F.array_join(F.transform(chosen, lambda x: x["text"]), "; ")))

    joined = F.concat_ws(". ", *[segment(k) for k in TEXT_KINDS])
    return collected.select("user_id", F.substring(joined, 1, conf.max_chars).alias("user_text"))


def build_user_profile(users: DataFrame, ev: DataFrame, exposures: DataFrame, redemptions: DataFrame,
                       campaigns: DataFrame, reviews: DataFrame, as_of: dt.date, conf: FeaturesConf) -> DataFrame:
    """gold.user_profile rows for as_of, without segment columns (see promolake.gold.segments).

    Args:
        users: silver.users; a user is profiled once signed up before as_of (or with no signup time).
        ev: prepare_events(silver.events, silver.items, as_of).
        exposures, redemptions, campaigns, reviews: silver tables (filtered to before as_of here).
    Returns one row per user; counts are 0 and ratios null where the user has no such history.
    """
    base = (users.where(F.col("signup_ts").isNull() | (F.col("signup_ts") < as_of_start(as_of)))
            .select("user_id", F.lit(as_of).alias("as_of"), "region", "age_band", "gender",
                    age_days("signup_ts", as_of).alias("tenure_days")))
    parts = [activity_features(ev), order_features(ev), top_shares(ev, "category", conf.top_n),
             top_shares(ev, "brand", conf.top_n).drop("top_brand"),
             coupon_features(exposures, redemptions, campaigns, as_of),
             review_features(reviews, as_of, conf.negative_rating_max),
             user_text(ev, reviews, as_of, conf.user_text)]
    out = base
    for part in parts:
        out = out.join(part, "user_id", "left")
    counts = ([f"{m}_{w}d" for m in ("orders", "units", "events") for w in WINDOWS]
              + ["events_prev_30d", "offers_received", "offers_redeemed", "control_exposures", "review_count"])
    return (out.fillna(0, counts).fillna(0.0, [f"spend_{w}d" for w in WINDOWS]).fillna("", ["user_text"])
            .withColumn("recency_days", F.col("recency_days").cast("int"))
            .withColumn("days_since_last_event", F.col("days_since_last_event").cast("int"))
            .withColumn("days_since_last_offer", F.col("days_since_last_offer").cast("int"))
            .withColumn("tenure_days", F.col("tenure_days").cast("int")))
