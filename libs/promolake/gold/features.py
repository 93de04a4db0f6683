"""The features stage: silver -> gold.user_profile, item_profile, market_trend_daily/weekly and
category_forecast for one as_of date, each gated by data-quality checks (ops.dq_results).

Everything is computed from data strictly before as_of, and each table's slice for as_of is replaced
in one commit, so re-running a date gives the same tables and a killed run leaves whole slices only.
"""
from __future__ import annotations

import datetime as dt
import uuid

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from promolake.common.config import Config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.common.tables import WINDOWS, spec
from promolake.gold import quality
from promolake.gold.history import prepare_events
from promolake.gold.plots import write_feature_plots

FEATURE_TABLES = ("gold.user_profile", "gold.item_profile", "gold.market_trend_daily", "gold.market_trend_weekly",
                  "gold.category_forecast")
ROW_COUNT_LOOKBACK_DAYS = 7  # row counts are compared with an earlier as_of at most this many days back


class NoEventsError(RuntimeError):
    """silver.events has nothing to build features from."""


def default_as_of(lake: Lake) -> dt.date:
    """The day after the last event in silver.events: features as of 'now' for the data there is."""
    last = lake.read("silver.events").agg(F.max("event_ts")).first()[0]
    if last is None:
        raise NoEventsError("silver.events is empty: run `promolake ingest` first (or pass --as-of)")
    return last.date() + dt.timedelta(days=1)


def expectations(table: str, cfg: Config) -> quality.Expectations:
    """The data-quality expectations of each gold table (built at call time: Columns need Spark)."""
    share, nonneg = (0.0, 1.0), (0.0, None)
    if table == "gold.user_profile":
        map_sum = lambda c: F.aggregate(F.map_values(c), F.lit(0.0), lambda a, x: a + x)  # noqa: E731
        ranges = {c: share for c in ("discount_unit_share", "avg_discount_depth", "redemption_rate",
                                     "negative_review_share")}
        ranges |= {c: (-1.0, 1.0) for c in ("activity_trend", "spend_trend")}
        ranges |= {f"{m}_{w}d": nonneg for m in ("orders", "units", "spend", "events") for w in WINDOWS}
        ranges |= {"recency_days": (1, None), "mean_rating": (1.0, 5.0), "paid_to_list_ratio": (0.0, 1.0),
                   "segment": (0, cfg.features.segments.k - 1)}
        invariants = {f"shares_sum_to_at_most_1:{c}": (map_sum(c) > 1.0 + 1e-9, f"values of {c} sum to <= 1")
                      for c in ("category_spend_share", "category_interaction_share", "brand_spend_share",
                                "brand_interaction_share")}
        invariants["user_text_bounded"] = (F.length("user_text") > cfg.features.user_text.max_chars,
                                           f"user_text at most {cfg.features.user_text.max_chars} characters")
        return quality.Expectations(ranges, not_null=("segment", "user_text"), invariants=invariants)
    if table == "gold.item_profile":
        ranges = {c: share for c in ("discount_unit_share", "repeat_buyer_share")}
        ranges |= {"conversion_30d": nonneg}  # purchases / views: above 1 when people buy without viewing
        ranges |= {f"{m}_{w}d": nonneg for m in ("units", "revenue") for w in WINDOWS}
        ranges |= {"list_price": (0.0, None), "rating_mean": (1.0, 5.0), "review_sentiment": (-1.0, 1.0),
                   "velocity_trend": (-1.0, 1.0), "margin_rate": (None, 1.0)}
        return quality.Expectations(ranges, not_null=("list_price", "item_text", "is_new", "has_interactions"))
    if table in ("gold.market_trend_daily", "gold.market_trend_weekly"):
        ranges = {"units": nonneg, "revenue": nonneg, "buyers": nonneg, "promo_unit_share": share}
        flags = (F.col("trend_flag").isNotNull() & ~F.col("trend_flag").isin("rising", "flat", "falling"))
        return quality.Expectations(ranges, not_null=("units",),
                                    invariants={"trend_flag_values": (flags, "trend_flag in rising/flat/falling")})
    if table == "gold.category_forecast":
        order = ~((F.col("lo_95") <= F.col("lo_80")) & (F.col("lo_80") <= F.col("forecast"))
                  & (F.col("forecast") <= F.col("hi_80")) & (F.col("hi_80") <= F.col("hi_95")))
        return quality.Expectations({"forecast": nonneg, "lo_95": nonneg, "backtest_smape": (0.0, 2.0)},
                                    invariants={"interval_order": (order, "lo_95 <= lo_80 <= forecast <= hi_80 <= hi_95")},
                                    min_rows=0)
    raise KeyError(f"no data-quality expectations for {table}")


class FeatureWriter:
    """Checks a gold table's slice, records the results in ops.dq_results and writes it when it passes."""

    def __init__(self, lake: Lake, cfg: Config, as_of: dt.date, report: StageReport):
        self.lake, self.cfg, self.as_of, self.report = lake, cfg, as_of, report
        self.run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]

    def previous_rows(self, table: str) -> int | None:
        """Rows of the latest earlier as_of within ROW_COUNT_LOOKBACK_DAYS (None if there is none)."""
        if "as_of" not in spec(table).keys or not self.lake.exists(table):
            return None
        earliest = self.as_of - dt.timedelta(days=ROW_COUNT_LOOKBACK_DAYS)
        row = (self.lake.read(table).where((F.col("as_of") < F.lit(self.as_of)) & (F.col("as_of") >= F.lit(earliest)))
               .groupBy("as_of").count().orderBy(F.desc("as_of")).first())
        return row["count"] if row else None

    def write(self, df: DataFrame, table: str, rows_in: int | None = None) -> int:
        """Check df (the table's rows for this run), log the checks, then replace the table's slice."""
        t = spec(table)
        df = self.lake.check_schema(df, table).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            results = quality.run_checks(df, t, expectations(table, self.cfg), self.previous_rows(table),
                                         self.cfg.features.quality.row_count_tolerance)
            frame = quality.results_frame(self.lake.spark, table, self.as_of, results, self.run_id)
            self.lake.upsert(frame, "ops.dq_results", replace_slice={"table_name": table, "as_of": self.as_of})
            failed = [r for r in results if not r.passed]
            rows = int(next(r.observed for r in results if r.check_name == "min_rows"))
            self.report.log(f"{table}: {rows:,} rows, {len(results) - len(failed)}/{len(results)} checks passed")
            if failed and self.cfg.features.quality.fail_on_error:
                raise quality.DataQualityError(quality.failure_message(table, self.as_of, results))
            for r in failed:
                self.report.note(f"{table} check {r.check_name} FAILED ({r.message}); written anyway")
            slice_ = {"as_of": self.as_of} if "as_of" in t.keys else None
            result = self.lake.upsert(df, table, replace_slice=slice_)
            self.report.record(table=table, rows_in=rows_in if rows_in is not None else "", rows=rows,
                               inserted=result.inserted, updated=result.updated, deleted=result.deleted,
                               checks=f"{len(results) - len(failed)}/{len(results)}", elapsed_s=round(self.report.elapsed, 1))
            return rows
        finally:
            df.unpersist()


def run_features(spark: SparkSession, cfg: Config, as_of: dt.date | None = None,
                 report: StageReport | None = None) -> StageReport:
    """Build every gold feature table as of `as_of` (default: the day after the last event)."""
    from promolake.gold import category_forecast, item_profile, market_trend, segments, user_profile

    lake = Lake(spark, cfg.lake)
    report = report or StageReport("features")
    with report:
        as_of = as_of or default_as_of(lake)
        fc = cfg.features
        report.log(f"as_of {as_of} (only data before {as_of} 00:00 UTC is used)")
        users, items, events = lake.read("silver.users"), lake.read("silver.items"), lake.read("silver.events")
        ev = prepare_events(events, items, as_of).persist(StorageLevel.MEMORY_AND_DISK)
        n_events = ev.count()
        report.log(f"{n_events:,} events before as_of")
        writer = FeatureWriter(lake, cfg, as_of, report)

        profile = user_profile.build_user_profile(
            users, ev, lake.read("silver.exposures"), lake.read("silver.redemptions"), lake.read("silver.campaigns"),
            lake.read("silver.reviews"), as_of, fc).persist(StorageLevel.MEMORY_AND_DISK)
        profile, segs = segments.assign_segments(profile, fc.segments)
        profile = profile.withColumn("computed_at", F.current_timestamp())
        writer.write(profile, "gold.user_profile", rows_in=n_events)
        report.section("segments (k-means on the numeric profile)", [
            {"segment": s.segment, "users": s.users, "mean_spend_365d": round(s.mean_spend_365d, 2), "traits": s.name}
            for s in sorted(segs, key=lambda s: s.segment)])

        items_out = item_profile.build_item_profile(items, ev, lake.read("silver.reviews"), as_of, fc) \
            .withColumn("computed_at", F.current_timestamp())
        writer.write(items_out, "gold.item_profile", rows_in=n_events)
        trend = fc.trend
        first_day = as_of - dt.timedelta(days=trend.history_days)
        # no calendar before the first event: days before the data starts are unknown, not zero sales
        first_event = ev.agg(F.min("event_ts")).first()[0]
        history_start = max(first_day - dt.timedelta(days=market_trend.warmup_days(trend)),
                            first_event.date() if first_event else first_day)
        ev.unpersist()
        profile.unpersist()
        # one scan of silver.events for both trend tables: the purchase lines they read, cached
        purchases = market_trend.purchases_between(events, history_start, as_of) \
            .persist(StorageLevel.MEMORY_AND_DISK)
        daily_sales = market_trend.category_daily_sales(purchases, items, history_start, as_of)
        writer.write(market_trend.build_market_trend_daily(daily_sales, as_of, trend, first_day),
                     "gold.market_trend_daily")
        weekly_sales = market_trend.category_weekly_sales(purchases, items, history_start, as_of)
        weekly = market_trend.build_market_trend_weekly(weekly_sales, as_of, trend, first_week=first_day) \
            .persist(StorageLevel.MEMORY_AND_DISK)
        writer.write(weekly, "gold.market_trend_weekly")
        purchases.unpersist()

        forecast = category_forecast.build_category_forecast(weekly, as_of, fc.forecast)
        writer.write(forecast, "gold.category_forecast")
        weekly.unpersist()

        summarise_trends(lake, as_of, report)
        summarise_forecast(lake, as_of, report)
        for path in write_feature_plots(lake, as_of, fc):
            report.note(f"plot: {path}")
    return report


def summarise_trends(lake: Lake, as_of: dt.date, report: StageReport) -> None:
    from promolake.gold.market_trend import latest_trends

    daily = lake.read("gold.market_trend_daily").where(F.col("day") < F.lit(as_of))
    latest = [r.asDict() for r in latest_trends(daily).collect() if r.trend_flag]
    rows = sorted(latest, key=lambda r: -r["trend_growth_28d"])
    pick = [r for r in rows if r["trend_flag"] == "rising"][:3] + [r for r in rows if r["trend_flag"] == "falling"][-3:]
    report.section(f"top rising and falling categories (trend of the last days before {as_of})", [
        {"category": r["category"], "trend": r["trend_flag"], "growth_per_28d": f"{r['trend_growth_28d']:+.1%}",
         "units_per_day": round(r["units_ma28"], 1)} for r in pick])


def summarise_forecast(lake: Lake, as_of: dt.date, report: StageReport) -> None:
    fc = lake.read("gold.category_forecast").where(F.col("as_of") == F.lit(as_of))
    per_cat = (fc.groupBy("category", "model", "backtest_smape", "naive_smape")
               .agg(F.sum("forecast").alias("next_weeks_units")).orderBy("category").collect())
    report.section("4-week forecast per category (backtest on the last weeks)", [
        {"category": r.category, "model": r.model, "forecast_units": round(r.next_weeks_units),
         "smape": _pct(r.backtest_smape), "naive_smape": _pct(r.naive_smape)} for r in per_cat])
    scored = [r for r in per_cat if r.backtest_smape is not None and r.naive_smape is not None]
    if scored:
        mean = sum(r.backtest_smape for r in scored) / len(scored)
        naive = sum(r.naive_smape for r in scored) / len(scored)
        report.note(f"forecast backtest sMAPE {mean:.1%} mean over {len(scored)} categories (naive {naive:.1%})")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
