"""Market trend: per-category daily and weekly sales with moving averages, growth, weekday
seasonality and a log-linear trend flag (gold.market_trend_daily, gold.market_trend_weekly).

All functions are pure (DataFrames and typed parameters in, a DataFrame out). Time windows are
calendar windows: they are range frames over a day (or week) number, so "the 28 days ending on
day" means exactly that even where a row is missing, and a window counts as full only when the
category's series reaches back far enough.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import types as T
from pyspark.sql import functions as F

from promolake.common.config import TrendConf
from promolake.common.tables import MARKET_TREND_DAILY, MARKET_TREND_WEEKLY

_T, _Y = "_t", "_y"  # period number since the category's first period; ln(units + 1)


def warmup_days(conf: TrendConf) -> int:
    """Days of history before first_day that build_market_trend_daily needs for every window to be
    full on first_day (growth_4w: 56 days, weekday_index: 7 x seasonality_weeks, trend: window_days)."""
    return max(56, 7 * conf.seasonality_weeks, conf.window_days) - 1


def category_daily_sales(events: DataFrame, items: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Purchases per category and UTC day for the days in [start, end), on a dense calendar.

    A row is one category of `items` on one day: units, revenue (unit_price x quantity), distinct
    buyers and the share of units sold with a discount. Every category has every day; days without
    sales have 0 units, revenue and buyers and a null promo_unit_share. Purchases of items missing
    from `items` are not counted.
    """
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    lines = _purchase_lines(events, items, start, end).withColumn("day", F.to_date("event_ts"))
    calendar = _categories(items).withColumn(
        "day", F.explode(F.sequence(F.lit(start), F.lit(end - dt.timedelta(days=1)))))
    return _dense_sales(lines, calendar, "day")


def category_weekly_sales(events: DataFrame, items: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Purchases per category and Monday-to-Sunday week, for the weeks lying wholly inside [start, end).

    A row is one category of `items` in one week (week_start = its Monday): units, revenue, distinct
    buyers in the week (a user buying on several days counts once) and promo unit share; weeks
    without sales have zeros and a null share, like category_daily_sales. Pass end = as_of to keep
    complete weeks only.
    """
    first = start + dt.timedelta(days=(7 - start.weekday()) % 7)
    last = end - dt.timedelta(days=7 + end.weekday())  # Monday of the last week ending on or before end
    if last < first:
        raise ValueError(f"[start, end) = [{start}, {end}) holds no complete Monday-Sunday week")
    lines = (_purchase_lines(events, items, first, last + dt.timedelta(days=7))
             .withColumn("week_start", F.to_date(F.date_trunc("week", "event_ts"))))
    calendar = _categories(items).withColumn(
        "week_start", F.explode(F.sequence(F.lit(first), F.lit(last), F.expr("INTERVAL 7 DAYS"))))
    return _dense_sales(lines, calendar, "week_start")


def purchases_between(events: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """The purchase events with event_ts in [start 00:00, end 00:00) UTC, only the columns the sales
    tables read. Cache it to build the daily and weekly tables from one scan of the events."""
    ts = F.col("event_ts")
    in_range = (ts >= F.lit(start).cast("timestamp")) & (ts < F.lit(end).cast("timestamp"))
    return events.where((F.col("event_type") == "purchase") & in_range).select(
        "event_type", "event_ts", "user_id", "item_id", "quantity", "unit_price", "discount_amount")


def _purchase_lines(events: DataFrame, items: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Purchase lines with event_ts in [start 00:00, end 00:00) UTC, with their item's category."""
    categories = F.broadcast(items.select("item_id", "category").where(F.col("category").isNotNull()))
    return (purchases_between(events, start, end)
            .join(categories, "item_id")
            .select("category", "event_ts", "user_id",
                    F.col("quantity").cast("long").alias("units"),
                    (F.col("unit_price") * F.col("quantity")).alias("revenue"),
                    F.when(F.col("discount_amount") > 0, F.col("quantity")).otherwise(0).cast("long")
                    .alias("promo_units")))


def _categories(items: DataFrame) -> DataFrame:
    return items.where(F.col("category").isNotNull()).select("category").distinct()


def _dense_sales(lines: DataFrame, calendar: DataFrame, period: str) -> DataFrame:
    """Sales of `lines` per (category, period), left-joined onto the (category, period) calendar."""
    sales = lines.groupBy("category", period).agg(
        F.sum("units").alias("units"), F.sum("revenue").alias("revenue"),
        F.countDistinct("user_id").alias("buyers"), F.sum("promo_units").alias("promo_units"))
    units = F.coalesce(F.col("units"), F.lit(0)).cast("long")
    return calendar.join(sales, ["category", period], "left").select(
        "category", period, units.alias("units"),
        F.coalesce(F.col("revenue").cast("double"), F.lit(0.0)).alias("revenue"),
        F.coalesce(F.col("buyers"), F.lit(0)).cast("long").alias("buyers"),
        F.when(units > 0, F.col("promo_units") / units).cast("double").alias("promo_unit_share"))


def _numbered(df: DataFrame, period: str, days_per_step: int) -> DataFrame:
    """df with _t = periods since the category's first period and _y = ln(units + 1)."""
    first = F.min(period).over(Window.partitionBy("category"))
    return (df.withColumn(_T, (F.datediff(period, first) / days_per_step).cast("int"))
            .withColumn(_Y, F.log1p(F.col("units").cast("double"))))


def _frame(lo: int, hi: int, *partition: str | Column):
    """Range frame [t+lo, t+hi] over the period number, per category (and extra partition keys)."""
    return Window.partitionBy("category", *partition).orderBy(_T).rangeBetween(lo, hi)


def _units(lo: int, hi: int) -> Column:
    return F.sum("units").over(_frame(lo, hi))


def _ratio_growth(recent: Column, earlier: Column, history_ok: Column) -> Column:
    """recent / earlier - 1; null without enough history or when earlier is 0."""
    return F.when(history_ok & (earlier > 0), recent / earlier - 1)


def theil_sen_growth(y: np.ndarray, periods: int, per: int) -> np.ndarray:
    """exp(per x slope) - 1 for each position of y whose trailing `periods` values exist, where slope
    is the Theil-Sen slope (median of pairwise slopes, scipy) of y on the period number: robust to a
    campaign spike covering up to ~29% of the window, where least squares would follow the spike.
    NaN where the window is not full."""
    from scipy.stats import theilslopes

    out = np.full(len(y), np.nan)
    x = np.arange(periods, dtype=float)
    for end in range(periods - 1, len(y)):
        out[end] = np.expm1(per * theilslopes(y[end - periods + 1:end + 1], x)[0])
    return out


def _with_robust_growth(df: DataFrame, periods: int, per: int, column: str) -> DataFrame:
    """df plus `column` = theil_sen_growth of ln(units + 1) per category, in parallel on Spark
    (grouped pandas UDF); null unless the trailing `periods` periods are all present."""
    schema = T.StructType(df.schema.fields + [T.StructField(column, T.DoubleType())])

    def per_category(pdf: pd.DataFrame) -> pd.DataFrame:
        pdf = pdf.sort_values(_T).reset_index(drop=True)
        growth = theil_sen_growth(pdf[_Y].to_numpy(dtype=float), periods, per)
        span = pdf[_T].to_numpy() - np.concatenate([np.full(periods - 1, -10**9), pdf[_T].to_numpy()])[:len(pdf)]
        pdf[column] = np.where(span == periods - 1, growth, np.nan)  # window of consecutive periods only
        return pdf

    return df.groupBy("category").applyInPandas(per_category, schema)


def _flag(growth: Column, threshold: float) -> Column:
    return (F.when(growth > threshold, "rising").when(growth < -threshold, "falling")
            .when(growth.isNotNull(), "flat"))


def build_market_trend_daily(daily_sales: DataFrame, as_of: dt.date, conf: TrendConf,
                             first_day: dt.date) -> DataFrame:
    """gold.market_trend_daily rows for the days in [first_day, as_of).

    Args:
        daily_sales: category_daily_sales output, starting warmup_days(conf) days before first_day
            for every window to be full there (earlier rows only feed the windows).
    Returns:
        One row per category per day: its sales, 7/28-day moving averages, week-over-week and 4-week
        growth, weekday index and the robust (Theil-Sen) log-linear trend over conf.window_days with its flag. A value
        whose window reaches before the category's first input day is null.
    """
    if first_day >= as_of:
        raise ValueError(f"first_day ({first_day}) must be before as_of ({as_of})")
    season = 7 * conf.seasonality_weeks
    t = F.col(_T)
    same_weekday = F.sum("units").over(_frame(-(season - 7), 0, t % 7))
    all_days = _units(-(season - 1), 0)
    numbered = _with_robust_growth(_numbered(daily_sales.where(F.col("day") < F.lit(as_of)), "day", 1),
                                   conf.window_days, 28, "trend_growth_28d")
    out = (numbered
           .withColumn("units_ma7", F.when(t >= 6, _units(-6, 0) / 7))
           .withColumn("units_ma28", F.when(t >= 27, _units(-27, 0) / 28))
           .withColumn("wow_growth", _ratio_growth(_units(-6, 0), _units(-13, -7), t >= 13))
           .withColumn("growth_4w", _ratio_growth(_units(-27, 0), _units(-55, -28), t >= 55))
           .withColumn("weekday_index",
                       F.when((t >= season - 1) & (all_days > 0), 7 * same_weekday / all_days))
           .withColumn("trend_flag", _flag(F.col("trend_growth_28d"), conf.threshold))
           .withColumn("computed_as_of", F.lit(as_of))
           .where(F.col("day") >= F.lit(first_day)))
    return _conform(out, MARKET_TREND_DAILY.schema)


def build_market_trend_weekly(weekly_sales: DataFrame, as_of: dt.date, conf: TrendConf,
                              first_week: dt.date | None = None) -> DataFrame:
    """gold.market_trend_weekly rows for the complete weeks (week_start + 7 days <= as_of).

    Args:
        weekly_sales: category_weekly_sales output (it computes distinct buyers per week, which
            daily rows cannot give).
        first_week: drop earlier weeks from the output (they still feed the windows); None keeps all.
    Returns:
        One row per category per week: sales, growth on the previous week and of 4 weeks on the 4
        before, and the robust (Theil-Sen) log-linear trend over the trailing conf.window_days // 7 weeks as growth
        per 4 weeks, flagged by conf.threshold; null where the window reaches before the first week.
    """
    weeks = conf.window_days // 7
    t = F.col(_T)
    numbered = _with_robust_growth(
        _numbered(weekly_sales.where(F.date_add("week_start", 7) <= F.lit(as_of)), "week_start", 7),
        weeks, 4, "trend_growth_4w")
    out = (numbered
           .withColumn("wow_growth", _ratio_growth(F.col("units"), _units(-1, -1), t >= 1))
           .withColumn("growth_4w", _ratio_growth(_units(-3, 0), _units(-7, -4), t >= 7))
           .withColumn("trend_flag", _flag(F.col("trend_growth_4w"), conf.threshold))
           .withColumn("computed_as_of", F.lit(as_of)))
    if first_week is not None:
        out = out.where(F.col("week_start") >= F.lit(first_week))
    return _conform(out, MARKET_TREND_WEEKLY.schema)


def _conform(df: DataFrame, schema) -> DataFrame:
    """The declared columns, in order, cast to the declared types."""
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema])


def latest_trends(daily_trend: DataFrame) -> DataFrame:
    """The last day of each category in market_trend_daily rows, for the run summary.

    One row per category: category, day, trend_growth_28d, trend_flag, units_ma28 of its latest day.
    """
    last = F.max(F.struct("day", "trend_growth_28d", "trend_flag", "units_ma28")).alias("last")
    return daily_trend.groupBy("category").agg(last).select("category", "last.*")
