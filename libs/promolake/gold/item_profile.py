"""gold.item_profile: one row per listed item per as_of date, built only from data strictly before as_of."""
from __future__ import annotations

import datetime as dt

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from promolake.common.config import FeaturesConf
from promolake.common.tables import WINDOWS
from promolake.gold.history import (ITEM_EVENTS, age_days, as_of_start, before, safe_ratio, symmetric_change,
                                    within)

LONGEST = max(WINDOWS)


def sales_features(ev: DataFrame) -> DataFrame:
    """Per item: windowed units and revenue, velocity and its trend, 30-day views and conversion,
    average paid price, discount share, first event time. `ev` is prepare_events output."""
    purchase = F.col("event_type") == "purchase"
    paid_line = purchase & (F.col("paid") > 0) & (F.col("age") <= LONGEST)
    aggs = []
    for w in WINDOWS:
        aggs += [F.sum(within(w, F.when(purchase, F.col("quantity")), 0)).cast("long").alias(f"units_{w}d"),
                 F.sum(within(w, "paid", 0.0)).alias(f"revenue_{w}d")]
    aggs += [
        F.sum(F.when(purchase & (F.col("age") > 30) & (F.col("age") <= 60), F.col("quantity"))).cast("long")
        .alias("units_prev_30d"),
        F.count(F.when((F.col("event_type") == "view") & (F.col("age") <= 30), 1)).alias("views_30d"),
        F.count(F.when(purchase & (F.col("age") <= 30), 1)).alias("_purchases_30d"),
        F.sum(F.when(paid_line, F.col("paid"))).alias("_paid"),
        F.sum(F.when(paid_line, F.col("quantity"))).alias("_paid_units"),
        F.sum(F.when(paid_line & F.col("discounted"), F.col("quantity"))).alias("_discounted_units"),
        F.min("event_ts").alias("_first_event_ts"),
    ]
    return (ev.where(F.col("event_type").isin(*ITEM_EVENTS)).groupBy("item_id").agg(*aggs)
            .fillna(0, ["units_prev_30d"])
            .withColumn("velocity_7d", F.col("units_7d") / 7.0)
            .withColumn("velocity_30d", F.col("units_30d") / 30.0)
            .withColumn("velocity_trend", symmetric_change(F.col("units_30d"), F.col("units_prev_30d")))
            .withColumn("conversion_30d", safe_ratio(F.col("_purchases_30d").cast("double"), F.col("views_30d")))
            .withColumn("avg_paid_price", safe_ratio(F.col("_paid"), F.col("_paid_units")))
            .withColumn("discount_unit_share", safe_ratio(F.col("_discounted_units").cast("double"), F.col("_paid_units")))
            .drop("_purchases_30d", "_paid", "_paid_units", "_discounted_units"))


def buyer_features(ev: DataFrame) -> DataFrame:
    """Per item: distinct buyers in 365 days and the share of them with two or more distinct orders."""
    per_buyer = (ev.where((F.col("event_type") == "purchase") & (F.col("age") <= LONGEST))
                 .groupBy("item_id", "user_id").agg(F.countDistinct("order_key").alias("orders")))
    return per_buyer.groupBy("item_id").agg(
        F.count(F.lit(1)).alias("buyers_365d"),
        F.avg(F.when(F.col("orders") >= 2, 1.0).otherwise(0.0)).alias("repeat_buyer_share"))


def vader_compound(texts: pd.Series) -> pd.Series:
    """VADER compound sentiment in [-1, 1] per text (None for empty text)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return texts.map(lambda t: analyzer.polarity_scores(t)["compound"] if isinstance(t, str) and t.strip() else None)


def review_features(reviews: DataFrame, as_of: dt.date) -> DataFrame:
    """Per item: reviews before as_of, mean stars and mean VADER sentiment of their text."""
    sentiment = F.pandas_udf(vader_compound, "double")
    return (before(reviews, "review_ts", as_of)
            .select("item_id", "rating", sentiment(F.substring("review_text", 1, 2000)).alias("sentiment"))
            .groupBy("item_id").agg(F.count(F.lit(1)).alias("rating_count"),
                                    F.avg(F.col("rating").cast("double")).alias("rating_mean"),
                                    F.avg("sentiment").alias("review_sentiment")))


def item_text(max_chars: int):
    """Column: 'title. category / subcategory. brand. description', parts that are missing left out."""
    category = F.concat_ws(" / ", "category", "subcategory")
    text = F.concat_ws(". ", F.trim("title"), F.when(F.length(category) > 0, category), F.trim("brand"),
                       F.trim(F.regexp_replace("description", r"\s+", " ")))
    return F.substring(text, 1, max_chars)


def build_item_profile(items: DataFrame, ev: DataFrame, reviews: DataFrame, as_of: dt.date,
                       conf: FeaturesConf) -> DataFrame:
    """gold.item_profile rows for as_of: items created before as_of (or with no creation time).

    Args:
        items: silver.items. ev: prepare_events(silver.events, silver.items, as_of). reviews: silver.reviews.
    Returns one row per item; counts are 0 and ratios null where the item has no such history.
    """
    listed = items.where(F.col("created_ts").isNull() | (F.col("created_ts") < as_of_start(as_of)))
    base = listed.select(
        "item_id", F.lit(as_of).alias("as_of"), "category", "subcategory", "brand",
        F.col("list_price").cast("double").alias("list_price"), F.col("unit_cost").cast("double").alias("unit_cost"),
        item_text(conf.item_text_max_chars).alias("item_text"), "created_ts")
    out = (base.join(sales_features(ev), "item_id", "left").join(buyer_features(ev), "item_id", "left")
           .join(review_features(reviews, as_of), "item_id", "left"))
    counts = [f"units_{w}d" for w in WINDOWS] + ["units_prev_30d", "views_30d", "buyers_365d", "rating_count"]
    return (out.fillna(0, counts).fillna(0.0, [f"revenue_{w}d" for w in WINDOWS] + ["velocity_7d", "velocity_30d"])
            .withColumn("margin_rate", safe_ratio(F.col("list_price") - F.col("unit_cost"), F.col("list_price"))
                        .cast("double"))
            .withColumn("margin_rate", F.when(F.col("unit_cost").isNotNull(), F.col("margin_rate")))
            .withColumn("has_interactions", F.col("_first_event_ts").isNotNull())
            .withColumn("first_seen_ts", F.coalesce("created_ts", "_first_event_ts"))
            .withColumn("days_since_first_seen", age_days("first_seen_ts", as_of).cast("int"))
            .withColumn("is_new", F.coalesce(F.col("days_since_first_seen") < conf.new_item_days, F.lit(True)))
            .drop("created_ts", "_first_event_ts"))
