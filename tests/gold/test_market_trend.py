"""Market trend on tiny hand-made series: dense daily/weekly sales, moving averages, growth, weekday
seasonality and the log-linear trend flag, each against numbers worked out by hand."""
from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest

from promolake.common.config import TrendConf
from promolake.common.tables import spec
from promolake.gold.market_trend import (build_market_trend_daily, build_market_trend_weekly,
                                         category_daily_sales, category_weekly_sales, latest_trends,
                                         warmup_days)

pytestmark = pytest.mark.spark

UTC = dt.timezone.utc
D0 = dt.date(2025, 1, 6)  # a Monday


def ts(day: dt.date, hh: int = 12, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC)


def silver(spark, table: str, rows: list[dict]):
    """Rows of silver.<table> with the given values, every other column null."""
    schema = spec(f"silver.{table}").schema
    return spark.createDataFrame([tuple(r.get(c) for c in schema.names) for r in rows], schema)


def purchase(eid, user, item, when, qty=1, price="1.00", discount=None, event_type="purchase"):
    return dict(event_id=eid, user_id=user, item_id=item, event_type=event_type, event_ts=when, quantity=qty,
                unit_price=Decimal(price), discount_amount=None if discount is None else Decimal(discount))


def items_df(spark, categories: dict[str, str]):
    return silver(spark, "items", [dict(item_id=i, title=i, category=c, list_price=Decimal("9.99"))
                                   for i, c in categories.items()])


def daily_df(spark, series: dict[str, list[int]], start: dt.date = D0):
    """Dense daily sales: one row per category and day from start (revenue = units, 1 buyer a unit)."""
    rows = [(cat, start + dt.timedelta(days=n), u, float(u), u, None) for cat, units in series.items()
            for n, u in enumerate(units)]
    return spark.createDataFrame(rows, "category string, day date, units long, revenue double, buyers long, "
                                       "promo_unit_share double")


def weekly_df(spark, series: dict[str, list[int]], start: dt.date = D0):
    rows = [(cat, start + dt.timedelta(days=7 * n), u, float(u), u, None) for cat, units in series.items()
            for n, u in enumerate(units)]
    return spark.createDataFrame(rows, "category string, week_start date, units long, revenue double, "
                                       "buyers long, promo_unit_share double")


def by_key(df, *key: str) -> dict:
    return {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r.asDict() for r in df.collect()}


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def schema_of(df):
    return [(f.name, f.dataType) for f in df.schema]


def declared(name: str):
    return [(f.name, f.dtype) for f in spec(name).fields]


# ----- sales ------------------------------------------------------------------------------------

def test_category_daily_sales_dense_calendar(spark):
    start, end = dt.date(2025, 3, 1), dt.date(2025, 3, 4)
    items = items_df(spark, {"I1": "A", "I2": "A", "I3": "B", "I4": "C"})
    events = silver(spark, "events", [
        purchase("e1", "U1", "I1", ts(start, 10), qty=2, price="5.00", discount="0.00"),
        purchase("e2", "U2", "I2", ts(start, 23, 59, 59), qty=1, price="3.50", discount="1.00"),
        purchase("e3", "U1", "I2", ts(start, 12), qty=1, price="3.50"),
        purchase("e4", "U3", "I3", ts(dt.date(2025, 3, 3), 8), qty=3, price="2.00", discount="0.50"),
        purchase("e5", "U1", "I1", ts(dt.date(2025, 3, 2)), event_type="view"),
        purchase("e6", "U1", "I3", ts(dt.date(2025, 3, 2)), event_type="cart"),
        purchase("e7", "U1", "I1", ts(end, 0), qty=9),  # at end: outside
        purchase("e8", "U1", "I1", ts(dt.date(2025, 2, 28), 23, 59, 59), qty=9),  # before start
        purchase("e9", "U1", "I9", ts(start), qty=9),  # item not in the catalogue
    ])
    got = by_key(category_daily_sales(events, items, start, end), "category", "day")
    zero = dict(units=0, revenue=0.0, buyers=0, promo_unit_share=None)
    d1, d2, d3 = start, dt.date(2025, 3, 2), dt.date(2025, 3, 3)
    expected = {(c, d): dict(category=c, day=d, **zero) for c in "ABC" for d in (d1, d2, d3)}
    expected[("A", d1)].update(units=4, revenue=17.0, buyers=2, promo_unit_share=0.25)
    expected[("B", d3)].update(units=3, revenue=6.0, buyers=1, promo_unit_share=1.0)
    assert got == expected


def test_category_weekly_sales_complete_monday_weeks_and_distinct_buyers(spark):
    items = items_df(spark, {"I1": "A", "I2": "B"})
    events = silver(spark, "events", [
        purchase("e1", "U1", "I1", ts(dt.date(2025, 3, 3), 0), qty=1, price="10.00"),
        purchase("e2", "U1", "I1", ts(dt.date(2025, 3, 9), 23), qty=2, price="10.00", discount="1.00"),
        purchase("e3", "U2", "I1", ts(dt.date(2025, 3, 5)), qty=1, price="10.00"),
        purchase("e4", "U1", "I1", ts(dt.date(2025, 3, 10), 0), qty=2, price="10.00"),
        purchase("e5", "U1", "I1", ts(dt.date(2025, 3, 17)), qty=9, price="10.00"),  # incomplete week
        purchase("e6", "U1", "I1", ts(dt.date(2025, 2, 28)), qty=9, price="10.00"),  # week not covered
    ])
    sales = category_weekly_sales(events, items, dt.date(2025, 2, 26), dt.date(2025, 3, 19))
    w1, w2 = dt.date(2025, 3, 3), dt.date(2025, 3, 10)
    zero = dict(units=0, revenue=0.0, buyers=0, promo_unit_share=None)
    assert by_key(sales, "category", "week_start") == {
        ("A", w1): dict(category="A", week_start=w1, units=4, revenue=40.0, buyers=2, promo_unit_share=0.5),
        ("A", w2): dict(category="A", week_start=w2, units=2, revenue=20.0, buyers=1, promo_unit_share=0.0),
        ("B", w1): dict(category="B", week_start=w1, **zero),
        ("B", w2): dict(category="B", week_start=w2, **zero),
    }
    trend = by_key(build_market_trend_weekly(sales, dt.date(2025, 3, 19), TrendConf()), "category", "week_start")
    assert trend[("A", w1)]["wow_growth"] is None
    assert trend[("A", w2)]["wow_growth"] == pytest.approx(-0.5)
    assert trend[("B", w2)]["wow_growth"] is None  # nothing sold the week before


def test_sales_reject_empty_ranges(spark):
    items = items_df(spark, {"I1": "A"})
    events = silver(spark, "events", [])
    with pytest.raises(ValueError, match="end"):
        category_daily_sales(events, items, D0, D0)
    with pytest.raises(ValueError, match="no complete"):
        category_weekly_sales(events, items, day(1), day(10))  # Tuesday to the next Thursday


# ----- daily trend ------------------------------------------------------------------------------

STEPS = [1] * 28 + [2] * 28 + [3] * 14  # days 0-27: 1 unit, 28-55: 2, 56-69: 3


def test_daily_moving_averages_and_growth(spark):
    sales = daily_df(spark, {"S": STEPS + [1000], "Z": [0] * 7 + [1] * 63})  # day 70 is as_of: dropped
    out = build_market_trend_daily(sales, day(70), TrendConf(window_days=14), first_day=D0)
    assert schema_of(out) == declared("gold.market_trend_daily")
    got = by_key(out, "category", "day")
    assert len(got) == 140 and max(d for _, d in got) == day(69)
    s = {n: got[("S", day(n))] for n in (5, 6, 12, 13, 26, 27, 54, 55, 60, 69)}
    assert [s[n]["units_ma7"] for n in (5, 6)] == [None, 1.0]
    assert [s[n]["units_ma28"] for n in (26, 27)] == [None, 1.0]
    assert s[60]["units_ma7"] == pytest.approx(19 / 7)  # 2 + 2 + 3 x 5
    assert s[60]["units_ma28"] == pytest.approx((23 * 2 + 5 * 3) / 28)
    assert [s[12]["wow_growth"], s[13]["wow_growth"]] == [None, 0.0]
    assert s[60]["wow_growth"] == pytest.approx(19 / 14 - 1)
    assert [s[54]["growth_4w"], s[55]["growth_4w"]] == [None, pytest.approx(56 / 28 - 1)]
    assert s[69]["growth_4w"] == pytest.approx((14 * 2 + 14 * 3) / (14 * 1 + 14 * 2) - 1)
    assert got[("Z", day(13))]["wow_growth"] is None  # the 7 days before sold nothing
    assert got[("Z", day(14))]["wow_growth"] == pytest.approx(7 / 1 - 1)
    assert {r["computed_as_of"] for r in got.values()} == {day(70)}


def test_daily_first_day_keeps_later_days_only(spark):
    out = build_market_trend_daily(daily_df(spark, {"S": STEPS}), day(70), TrendConf(window_days=14), day(60))
    rows = sorted(out.collect(), key=lambda r: r["day"])
    assert [r["day"] for r in rows] == [day(n) for n in range(60, 70)]
    assert rows[-1]["growth_4w"] == pytest.approx(70 / 42 - 1)  # earlier days still feed the windows


def test_weekday_index_doubles_saturdays(spark):
    units = [2 if day(n).weekday() == 5 else 1 for n in range(70)]
    out = build_market_trend_daily(daily_df(spark, {"S": units}), day(70), TrendConf(seasonality_weeks=8), D0)
    got = {r["day"]: r["weekday_index"] for r in out.collect()}
    # 8 weeks: 8 Saturdays of 2 = 16 of 64 units; mean Saturday 2 vs mean day 64/56 -> 1.75; others 0.875
    assert got[day(54)] is None  # 55 days of history: window not full
    saturdays = [got[day(n)] for n in range(55, 70) if day(n).weekday() == 5]
    others = [got[day(n)] for n in range(55, 70) if day(n).weekday() != 5]
    assert (len(saturdays), len(others)) == (2, 13)
    assert saturdays == pytest.approx([2 * 7 / 8] * 2)
    assert others == pytest.approx([7 / 8] * 13)


def _median_pairwise_growth(units: list[int], end: int, window: int) -> float:
    """Theil-Sen by hand: the median of all pairwise slopes of ln(units + 1) in the window."""
    t = np.arange(end - window + 1, end + 1)
    y = np.log1p(np.asarray(units, float)[t])
    i, j = np.triu_indices(window, k=1)
    return math.exp(28 * np.median((y[j] - y[i]) / (t[j] - t[i]))) - 1


def test_trend_growth_recovers_exponential_series_and_flags(spark):
    n = 100
    rising = [round(100 * math.exp(0.01 * t)) for t in range(n)]
    falling = [round(100 * math.exp(-0.01 * t)) for t in range(n)]
    sales = daily_df(spark, {"up": rising, "down": falling, "flat": [50] * n})
    got = by_key(build_market_trend_daily(sales, day(n), TrendConf(window_days=84, threshold=0.05), D0),
                 "category", "day")
    last = {c: got[(c, day(n - 1))] for c in ("up", "down", "flat")}
    assert last["up"]["trend_growth_28d"] == pytest.approx(math.exp(0.28) - 1, abs=0.01)
    assert last["up"]["trend_growth_28d"] == pytest.approx(_median_pairwise_growth(rising, n - 1, 84), rel=1e-9)
    assert last["down"]["trend_growth_28d"] == pytest.approx(math.exp(-0.28) - 1, abs=0.01)
    assert last["flat"]["trend_growth_28d"] == pytest.approx(0.0, abs=1e-12)
    assert {c: r["trend_flag"] for c, r in last.items()} == {"up": "rising", "down": "falling", "flat": "flat"}
    assert (got[("up", day(82))]["trend_growth_28d"], got[("up", day(82))]["trend_flag"]) == (None, None)
    assert got[("up", day(83))]["trend_growth_28d"] == pytest.approx(_median_pairwise_growth(rising, 83, 84), rel=1e-9)


def test_trend_ignores_a_campaign_spike_at_the_end_of_the_window(spark):
    # a category falling 1% a day whose last 14 days (a campaign) sell 4x: least squares on the
    # window called this "rising"; the robust fit still sees the fall
    n = 100
    units = [round(100 * math.exp(-0.01 * t)) * (4 if t >= n - 14 else 1) for t in range(n)]
    got = by_key(build_market_trend_daily(daily_df(spark, {"S": units}), day(n), TrendConf(window_days=84), D0),
                 "category", "day")
    last = got[("S", day(n - 1))]
    assert last["trend_flag"] == "falling" and last["trend_growth_28d"] < -0.05
    t = np.arange(n - 84, n)
    ols = math.exp(28 * np.polyfit(t, np.log1p(np.asarray(units, float)[t]), 1)[0]) - 1
    assert ols > 0.05  # what the old least-squares trend reported


def test_trend_flag_uses_threshold(spark):
    rising = [round(100 * math.exp(0.01 * t)) for t in range(30)]
    out = build_market_trend_daily(daily_df(spark, {"up": rising}), day(30),
                                   TrendConf(window_days=28, threshold=0.5), day(29))
    row = out.first()
    assert row["trend_growth_28d"] == pytest.approx(math.exp(0.28) - 1, abs=0.02)
    assert row["trend_flag"] == "flat"  # 0.32 is inside +-0.5


def test_daily_rejects_first_day_not_before_as_of(spark):
    with pytest.raises(ValueError, match="first_day"):
        build_market_trend_daily(daily_df(spark, {"S": [1]}), D0, TrendConf(), D0)


def test_warmup_days_covers_every_window():
    assert warmup_days(TrendConf(window_days=84, seasonality_weeks=8)) == 83
    assert warmup_days(TrendConf(window_days=28, seasonality_weeks=4)) == 55
    assert warmup_days(TrendConf(window_days=28, seasonality_weeks=10)) == 69


# ----- weekly trend -----------------------------------------------------------------------------

def test_weekly_growth_and_complete_weeks_only(spark):
    sales = weekly_df(spark, {"A": [1, 1, 1, 1, 2, 2, 2, 2, 4, 99]})  # week 9 ends after as_of
    as_of = D0 + dt.timedelta(days=7 * 9 + 3)  # the Thursday of week 9
    out = build_market_trend_weekly(sales, as_of, TrendConf(window_days=28))
    assert schema_of(out) == declared("gold.market_trend_weekly")
    got = {(r["week_start"] - D0).days // 7: r for r in out.collect()}
    assert sorted(got) == list(range(9))
    assert [got[w]["wow_growth"] for w in (0, 4, 5, 8)] == [None, 1.0, 0.0, 1.0]
    assert [got[w]["growth_4w"] for w in (6, 7, 8)] == [None, 1.0, pytest.approx(10 / 5 - 1)]
    assert {r["computed_as_of"] for r in got.values()} == {as_of}


def test_weekly_trend_is_exact_on_doubling_series(spark):
    # ln(units + 1) = w ln 2 exactly, so the slope is ln 2 and growth per 4 weeks is 2^4 - 1 = 15
    sales = weekly_df(spark, {"up": [0, 1, 3, 7, 15, 31], "down": [31, 15, 7, 3, 1, 0], "flat": [5] * 6})
    out = build_market_trend_weekly(sales, D0 + dt.timedelta(days=42), TrendConf(window_days=28),
                                    first_week=D0 + dt.timedelta(days=14))
    got = {(r["category"], (r["week_start"] - D0).days // 7): r for r in out.collect()}
    assert sorted(w for c, w in got if c == "up") == [2, 3, 4, 5]
    assert (got[("up", 2)]["trend_growth_4w"], got[("up", 2)]["trend_flag"]) == (None, None)
    assert [got[("up", w)]["trend_growth_4w"] for w in (3, 4, 5)] == [pytest.approx(15.0)] * 3
    assert got[("down", 5)]["trend_growth_4w"] == pytest.approx(2 ** -4 - 1)
    assert got[("flat", 5)]["trend_growth_4w"] == pytest.approx(0.0, abs=1e-12)
    assert {c: got[(c, 5)]["trend_flag"] for c in ("up", "down", "flat")} == {
        "up": "rising", "down": "falling", "flat": "flat"}


def test_latest_trends_takes_each_categorys_last_day(spark):
    rows = [("A", day(0), 0.1, "rising", 5.0), ("A", day(2), -0.2, "falling", 4.0),
            ("A", day(1), 0.0, "flat", 3.0), ("B", day(1), None, None, 1.0)]
    daily = spark.createDataFrame(rows, "category string, day date, trend_growth_28d double, trend_flag string, "
                                        "units_ma28 double")
    assert sorted(tuple(r) for r in latest_trends(daily).collect()) == [
        ("A", day(2), -0.2, "falling", 4.0), ("B", day(1), None, None, 1.0)]
