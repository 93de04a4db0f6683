"""Point-in-time views of silver behaviour: the events, reviews and campaign history strictly before
an as_of date, with each row's age in days so every window is a condition in one aggregation pass."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

ITEM_EVENTS = ("view", "cart", "purchase")


def as_of_start(as_of: dt.date) -> Column:
    """The as_of date's first instant (00:00 in the session time zone, UTC) as a timestamp literal.

    A date cast in Spark, not a Python datetime: PySpark reads a naive datetime in the driver's local
    time zone, which would move the cut-off on a machine not set to UTC.
    """
    return F.lit(as_of).cast("timestamp")


def before(df: DataFrame, ts_col: str, as_of: dt.date) -> DataFrame:
    """Rows whose ts_col is strictly before as_of (null timestamps are dropped)."""
    return df.where(F.col(ts_col) < as_of_start(as_of))


def age_days(ts_col: str, as_of: dt.date) -> Column:
    """Days from the row's day to as_of: 1 for the day before as_of. "In the last w days" is age <= w."""
    return F.datediff(F.lit(as_of), F.to_date(ts_col))


def category_median_price(items: DataFrame) -> DataFrame:
    """(category, category_median_price): median list price per category (approximate, 1e-4 accuracy)."""
    return items.groupBy("category").agg(
        F.percentile_approx(F.col("list_price").cast("double"), 0.5, 10000).alias("category_median_price"))


def prepare_events(events: DataFrame, items: DataFrame, as_of: dt.date) -> DataFrame:
    """Events before as_of with item attributes and money columns, one row per event.

    Adds: age (days before as_of), category, brand, title, list_price, category_median_price; for
    purchase lines paid = unit_price x quantity, discount = discount_amount (0 when missing),
    list_value = paid + discount, discounted (discount > 0), order_key (order_id, else the event).
    """
    item_cols = items.select("item_id", "category", "brand", "title",
                             F.col("list_price").cast("double").alias("list_price"))
    item_cols = item_cols.join(F.broadcast(category_median_price(items)), "category", "left")
    purchase = F.col("event_type") == "purchase"
    paid = F.when(purchase, F.col("unit_price").cast("double") * F.col("quantity"))
    discount = F.when(purchase, F.coalesce(F.col("discount_amount").cast("double"), F.lit(0.0)))
    return (before(events, "event_ts", as_of)
            .select("event_id", "user_id", "item_id", "event_type", "event_ts", "quantity", "order_id", "query_text",
                    age_days("event_ts", as_of).alias("age"), paid.alias("paid"), discount.alias("discount"))
            .join(F.broadcast(item_cols), "item_id", "left")
            .withColumn("list_value", F.col("paid") + F.col("discount"))
            .withColumn("discounted", F.col("discount") > 0)
            .withColumn("order_key", F.when(purchase, F.coalesce("order_id", "event_id"))))


def within(days: int, value: Column | str | None = None, otherwise=None) -> Column:
    """value (default 1) for rows in the last `days` days, else `otherwise`: for conditional aggregation."""
    v = F.lit(1) if value is None else (F.col(value) if isinstance(value, str) else value)
    cond = F.col("age") <= days
    return F.when(cond, v) if otherwise is None else F.when(cond, v).otherwise(otherwise)


def symmetric_change(recent: Column, previous: Column) -> Column:
    """(recent - previous) / (recent + previous), in [-1, 1]; null when both are 0."""
    total = recent + previous
    return F.when(total > 0, (recent - previous) / total)


def safe_ratio(num: Column, den: Column) -> Column:
    """num / den, null when den is 0 or null."""
    return F.when(den > 0, num / den)
