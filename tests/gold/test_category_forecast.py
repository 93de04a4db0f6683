"""Category forecast: the per-series ETS forecast in plain pandas, its error measures by hand, and
the Spark applyInPandas path on a few tiny categories."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from promolake.common.config import ForecastConf
from promolake.common.tables import spec
from promolake.gold.category_forecast import (FORECAST_COLUMNS, build_category_forecast, forecast_one_series,
                                              last_complete_week, mape, smape)

CONF = ForecastConf(horizon_weeks=4, backtest_weeks=4, min_history_weeks=12)
W0 = dt.date(2025, 1, 6)  # a Monday


def series(values, start: dt.date = W0) -> pd.Series:
    weeks = [start + dt.timedelta(days=7 * n) for n in range(len(values))]
    return pd.Series([float(v) for v in values], index=weeks)


def trending(n: int = 30, seed: int = 0) -> list[float]:
    return list(100 + 5 * np.arange(n) + np.random.default_rng(seed).normal(0, 3, n))


def flat(n: int = 30, seed: int = 1) -> list[float]:
    return list(200 + np.random.default_rng(seed).normal(0, 5, n))


def assert_ordered(fc: pd.DataFrame) -> None:
    cols = ["lo_95", "lo_80", "forecast", "hi_80", "hi_95"]
    assert (np.diff(fc[cols].to_numpy(), axis=1) >= 0).all(), fc[cols]
    assert (fc[cols].to_numpy() >= 0).all()


def test_error_measures_by_hand():
    assert smape(np.array([1.0, 0.0, 3.0]), np.array([1.0, 0.0, 1.0])) == pytest.approx((0 + 0 + 2 * 2 / 4) / 3)
    assert smape(np.array([0.0]), np.array([5.0])) == 2.0
    assert mape(np.array([2.0, 3.0]), np.array([1.0, 4.0])) == pytest.approx((1 / 1 + 1 / 4) / 2)
    assert math.isnan(mape(np.array([2.0, 3.0]), np.array([1.0, 0.0])))


def test_last_complete_week():
    assert last_complete_week(dt.date(2025, 3, 10)) == dt.date(2025, 3, 3)  # Monday: last week just ended
    assert last_complete_week(dt.date(2025, 3, 16)) == dt.date(2025, 3, 3)  # Sunday: its week is not over
    assert last_complete_week(dt.date(2025, 3, 17)) == dt.date(2025, 3, 10)


def test_trending_series_forecasts_horizon_weeks_with_ordered_intervals():
    fc = forecast_one_series(series(trending()), CONF)
    last = W0 + dt.timedelta(days=7 * 29)
    assert list(fc.columns) == list(FORECAST_COLUMNS)
    assert list(fc["week_start"]) == [last + dt.timedelta(days=7 * h) for h in (1, 2, 3, 4)]
    assert list(fc["horizon"]) == [1, 2, 3, 4]
    assert_ordered(fc)
    assert fc["model"].iloc[0] in ("ETS(A,A,N)", "ETS(A,Ad,N)")
    assert fc["forecast"].is_monotonic_increasing and fc["forecast"].iloc[0] > 240  # level ~245, +5 a week
    assert (fc["history_weeks"] == 30).all()
    assert fc["backtest_smape"].iloc[0] < fc["naive_smape"].iloc[0]  # the trend beats repeating last week


def test_flat_noisy_series_has_small_backtest_error():
    fc = forecast_one_series(series(flat()), CONF)
    assert len(fc) == 4
    assert_ordered(fc)
    assert fc["forecast"].iloc[0] == pytest.approx(200, abs=10)
    assert 0 < fc["backtest_smape"].iloc[0] < 0.05
    assert 0 < fc["backtest_mape"].iloc[0] < 0.05
    assert (fc["hi_95"] - fc["lo_95"] > fc["hi_80"] - fc["lo_80"]).all()


def test_short_history_gives_no_rows():
    empty = forecast_one_series(series(flat(11)), CONF)
    assert empty.empty and list(empty.columns) == list(FORECAST_COLUMNS)
    assert len(forecast_one_series(series(flat(12)), CONF)) == 4
    # leading weeks without sales are not history: 10 zero weeks + 11 selling weeks is too short
    assert forecast_one_series(series([0] * 10 + flat(11)), CONF).empty
    fc = forecast_one_series(series([0] * 10 + flat(12)), CONF)
    assert list(fc["history_weeks"]) == [12] * 4


def test_missing_weeks_count_as_zero_and_last_week_extends_the_series():
    s = series(flat(20)).drop(index=[W0 + dt.timedelta(days=7 * 5)])  # week 5 absent
    last_week = W0 + dt.timedelta(days=7 * 21)  # two weeks without rows after the last given week
    fc = forecast_one_series(s, CONF, last_week=last_week)
    assert list(fc["history_weeks"]) == [22] * 4
    assert fc["week_start"].iloc[0] == last_week + dt.timedelta(days=7)
    assert math.isnan(fc["backtest_mape"].iloc[0])  # held-out weeks 20 and 21 sold 0
    assert 0 < fc["naive_smape"].iloc[0] <= 2


def test_series_no_model_can_fit_gives_no_rows():
    broken = flat(20)
    broken[10] = float("nan")
    assert forecast_one_series(series(broken), CONF).empty


def test_non_monday_week_start_is_rejected():
    with pytest.raises(ValueError, match="Monday"):
        forecast_one_series(series(flat(), start=W0 + dt.timedelta(days=1)), CONF)


@pytest.mark.spark
def test_spark_forecast_per_category(spark):
    as_of = W0 + dt.timedelta(days=7 * 30 + 2)  # Wednesday of week 30: weeks 0-29 are complete
    data = {"up": trending(31), "level": flat(31), "gappy": flat(26) + [0.0] * 5,
            "short": [0.0] * 25 + flat(6)}  # sells from week 25: 5 complete weeks
    rows = [(c, W0 + dt.timedelta(days=7 * n), int(round(u))) for c, us in data.items() for n, u in enumerate(us)]
    # "broken" has a null week: no model can be fitted, and the job goes on without it
    rows += [("broken", W0 + dt.timedelta(days=7 * n), None if n == 10 else 5) for n in range(30)]
    weekly = spark.createDataFrame(rows, "category string, week_start date, units long")
    out = build_category_forecast(weekly, as_of, CONF)
    declared = [(f.name, f.dtype) for f in spec("gold.category_forecast").fields]
    assert [(f.name, f.dataType) for f in out.schema] == declared
    got = out.collect()
    assert sorted({r["category"] for r in got}) == ["gappy", "level", "up"]
    last = W0 + dt.timedelta(days=7 * 29)
    for cat in ("up", "level", "gappy"):
        rows_c = sorted((r for r in got if r["category"] == cat), key=lambda r: r["horizon"])
        assert [(r["horizon"], r["week_start"]) for r in rows_c] == [(h, last + dt.timedelta(days=7 * h))
                                                                   for h in (1, 2, 3, 4)]
        assert all(r["lo_95"] <= r["lo_80"] <= r["forecast"] <= r["hi_80"] <= r["hi_95"] for r in rows_c)
        assert {(r["as_of"], r["history_weeks"]) for r in rows_c} == {(as_of, 30)}
        assert all(r["computed_at"] is not None for r in rows_c)
    assert {r["backtest_mape"] for r in got if r["category"] == "gappy"} == {None}  # NaN arrives as null
    level = next(r for r in got if r["category"] == "level")
    assert level["backtest_mape"] is not None and level["backtest_smape"] < 0.05


def test_campaign_spike_is_removed_before_fitting():
    from promolake.gold.category_forecast import remove_spikes

    weeks = pd.date_range("2025-01-06", periods=20, freq="W-MON")
    units = [100.0 + (i % 3) for i in range(20)]
    units[10:13] = [400.0, 700.0, 300.0]  # a three-week campaign
    cleaned = remove_spikes(pd.Series(units, index=weeks))
    # each spike week becomes the median of the 9 weeks around it: 100,100,101,101,[102],102,300,400,700
    assert cleaned.iloc[10:13].tolist() == [102.0, 102.0, 102.0]
    assert cleaned.drop(cleaned.index[10:13]).tolist() == [u for i, u in enumerate(units) if not 10 <= i < 13]
