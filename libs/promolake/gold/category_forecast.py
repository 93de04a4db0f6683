"""Category forecast: weekly unit sales per category for the weeks after as_of, with prediction
intervals and backtest error (gold.category_forecast).

Each category's weekly series is fitted with statsmodels' ETS (additive errors; no trend, additive
trend or damped additive trend, chosen by out-of-sample error on rolling origins before the backtest
window) in a pandas function that Spark runs per category in
parallel (groupBy().applyInPandas). A category gets no rows when its history is shorter than
features.forecast.min_history_weeks or when no candidate model can be fitted: one bad series never
fails the job, and a consumer sees the gap as a missing category.
"""
from __future__ import annotations

import datetime as dt
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from promolake.common.config import ForecastConf
from promolake.common.tables import CATEGORY_FORECAST

# (model name, ETSModel keyword arguments, fewest weeks it is fitted on), simplest first.
CANDIDATES: tuple[tuple[str, dict, int], ...] = (
    ("ETS(A,N,N)", {}, 4),
    ("ETS(A,A,N)", {"trend": "add"}, 10),
    ("ETS(A,Ad,N)", {"trend": "add", "damped_trend": True}, 10),
)
FORECAST_COLUMNS = ("week_start", "horizon", "forecast", "lo_80", "hi_80", "lo_95", "hi_95", "model",
                    "backtest_smape", "backtest_mape", "naive_smape", "history_weeks")
_EMPTY_DTYPES = {"week_start": "object", "horizon": "int64", "model": "object", "history_weeks": "int64"}
_BOUNDS = {"lo_80": ("pi_lower", 0.2), "hi_80": ("pi_upper", 0.2),
           "lo_95": ("pi_lower", 0.05), "hi_95": ("pi_upper", 0.05)}


@dataclass(frozen=True)
class _Fit:
    """One candidate fitted on a series: its AIC, whether the optimiser converged, and the forecast
    (mean and interval bounds per horizon week, clipped at 0)."""

    name: str
    kwargs: dict
    aic: float
    converged: bool
    frame: pd.DataFrame


def last_complete_week(as_of: dt.date) -> dt.date:
    """Monday of the last Monday-Sunday week that ends before as_of."""
    monday = as_of - dt.timedelta(days=as_of.weekday())
    return monday - dt.timedelta(days=7)


HAMPEL_HALF_WINDOW, HAMPEL_MADS = 4, 3.0


def remove_spikes(y: pd.Series) -> pd.Series:
    """y with promotion spikes replaced by the local median (Hampel filter: a week more than 3 scaled
    MADs from the median of the 9 weeks around it, so a campaign of up to 4 weeks is caught). The model then learns baseline demand; a two-week
    campaign would otherwise be read as a new level or trend and extrapolated."""
    values = y.to_numpy(dtype=float)
    med = y.rolling(2 * HAMPEL_HALF_WINDOW + 1, center=True, min_periods=5).median().to_numpy()
    mad = (y - med).abs().rolling(2 * HAMPEL_HALF_WINDOW + 1, center=True, min_periods=5).median().to_numpy()
    spike = np.abs(values - med) > HAMPEL_MADS * 1.4826 * mad
    return pd.Series(np.where(spike & np.isfinite(med), med, values), index=y.index)


def _fit(y: pd.Series, name: str, kwargs: dict, steps: int) -> _Fit | None:
    """Fit one ETS candidate on y with spikes removed and forecast `steps` weeks; None when it raises
    or gives non-finite numbers. Warnings (convergence, frequency) are recorded, not printed."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = remove_spikes(y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = ETSModel(y, error="add", **kwargs).fit(disp=False)
            pred = res.get_prediction(start=len(y), end=len(y) + steps - 1)
            frames = {alpha: pred.summary_frame(alpha=alpha) for alpha in (0.2, 0.05)}
        except Exception:  # noqa: BLE001 - any numerical failure only disqualifies this candidate
            return None
    frame = pd.DataFrame({"forecast": frames[0.2]["mean"].to_numpy()})
    for col, (bound, alpha) in _BOUNDS.items():
        frame[col] = frames[alpha][bound].to_numpy()
    if not (math.isfinite(res.aic) and np.isfinite(frame.to_numpy()).all()):
        return None
    # Clipping every bound at 0 (units cannot be negative) is monotone, so the ordering holds.
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return _Fit(name, kwargs, float(res.aic), converged, frame.clip(lower=0.0))


SELECTION_FOLDS = 2  # rolling origins before the backtest window that choose the model


def _choose(y: pd.Series, steps: int, holdout: int) -> _Fit | None:
    """The candidate that forecast best out of sample, refitted on all of y.

    Each candidate is scored by its mean sMAPE over SELECTION_FOLDS rolling origins that end before
    the last `holdout` weeks (the backtest window, which selection never sees, so the reported
    backtest error is honest). Where no fold fits, the converged candidate with the lowest AIC wins;
    when none converged, the simplest one that fits. Candidates needing more weeks than y has are skipped.
    """
    usable = [(name, kwargs) for name, kwargs, min_weeks in CANDIDATES if len(y) >= min_weeks]
    scores: dict[str, list[float]] = {name: [] for name, _ in usable}
    for fold in range(1, SELECTION_FOLDS + 1):
        end = len(y) - holdout - (fold - 1) * holdout
        train, actual = y.iloc[:end - holdout], y.iloc[end - holdout:end].to_numpy()
        for name, kwargs in usable:
            min_weeks = next(m for n, _, m in CANDIDATES if n == name)
            fit = _fit(train, name, kwargs, holdout) if len(train) >= min_weeks else None
            if fit is not None:
                scores[name].append(smape(fit.frame["forecast"].to_numpy(), actual))
    fits = [f for name, kwargs in usable for f in [_fit(y, name, kwargs, steps)] if f is not None]
    scored = [f for f in fits if len(scores[f.name]) == SELECTION_FOLDS]
    if scored:
        return min(scored, key=lambda f: (float(np.mean(scores[f.name])), f.aic))
    converged = [f for f in fits if f.converged]
    if converged:
        return min(converged, key=lambda f: f.aic)
    return fits[0] if fits else None


def smape(forecast: np.ndarray, actual: np.ndarray) -> float:
    """mean(2|f - a| / (|f| + |a|)), a week where both are 0 counting 0; in [0, 2]."""
    denom = np.abs(forecast) + np.abs(actual)
    terms = np.divide(2 * np.abs(forecast - actual), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(terms.mean())


def mape(forecast: np.ndarray, actual: np.ndarray) -> float:
    """mean(|f - a| / a); NaN when any actual is 0."""
    if (actual == 0).any():
        return float("nan")
    return float((np.abs(forecast - actual) / np.abs(actual)).mean())


def _backtest(y: pd.Series, chosen: _Fit, weeks: int) -> tuple[float, float, float]:
    """(smape, mape, naive_smape) of the chosen spec refitted without the last `weeks` weeks and
    scored on them; the model's scores are NaN when the shorter series is too short or will not fit."""
    train, actual = y.iloc[:-weeks], y.iloc[-weeks:].to_numpy()
    if len(train) == 0:
        return math.nan, math.nan, math.nan
    naive = smape(np.full(weeks, train.iloc[-1]), actual)
    min_weeks = next(m for name, _, m in CANDIDATES if name == chosen.name)
    refit = _fit(train, chosen.name, chosen.kwargs, weeks) if len(train) >= min_weeks else None
    if refit is None:
        return math.nan, math.nan, naive
    predicted = refit.frame["forecast"].to_numpy()
    return smape(predicted, actual), mape(predicted, actual), naive


def _weekly_series(weeks: pd.Series, last_week: dt.date | None) -> pd.Series:
    """Float units on a regular Monday ('W-MON') index through last_week (default: the last given
    week); missing weeks are 0 and leading weeks without sales are dropped."""
    index = pd.DatetimeIndex(pd.to_datetime(weeks.index))
    if (index.dayofweek != 0).any():
        raise ValueError("weeks: every index value (week_start) must be a Monday")
    y = pd.Series(weeks.to_numpy(dtype=float), index=index).sort_index()
    end = pd.Timestamp(last_week) if last_week is not None else (y.index[-1] if len(y) else None)
    y = y.loc[:end] if end is not None else y
    if not (y != 0).any():
        return y.iloc[:0]
    y = y.loc[(y != 0).idxmax():]
    return y.reindex(pd.date_range(y.index[0], end, freq="W-MON"), fill_value=0.0)


def forecast_one_series(weeks: pd.Series, conf: ForecastConf, last_week: dt.date | None = None) -> pd.DataFrame:
    """Forecast one category's weekly units for conf.horizon_weeks weeks after its last week.

    Args:
        weeks: units indexed by week_start (Mondays); a week not given counts as 0 units.
        last_week: the last complete week (default: the last week given); forecasts start after it.
    Returns:
        One row per horizon week with FORECAST_COLUMNS: week_start (a date) = last_week + 7 x horizon,
        forecast and 80%/95% bounds clipped at 0 (lo_95 <= lo_80 <= forecast <= hi_80 <= hi_95), the
        chosen model, backtest errors (NaN where not computable) and history_weeks. No rows when the
        history (from the first week with sales) is shorter than conf.min_history_weeks or no model fits.
    """
    y = _weekly_series(weeks, last_week)
    chosen = _choose(y, conf.horizon_weeks, conf.backtest_weeks) if len(y) >= conf.min_history_weeks else None
    if chosen is None:
        return pd.DataFrame({c: pd.Series(dtype=_EMPTY_DTYPES.get(c, "float64")) for c in FORECAST_COLUMNS})
    bt_smape, bt_mape, naive = _backtest(y, chosen, conf.backtest_weeks)
    horizon = np.arange(1, conf.horizon_weeks + 1)
    last = y.index[-1].date()
    out = chosen.frame.assign(
        week_start=[last + dt.timedelta(days=7 * int(h)) for h in horizon], horizon=horizon,
        model=chosen.name, backtest_smape=bt_smape, backtest_mape=bt_mape, naive_smape=naive,
        history_weeks=len(y))
    return out[list(FORECAST_COLUMNS)]


def build_category_forecast(weekly: DataFrame, as_of: dt.date, conf: ForecastConf) -> DataFrame:
    """gold.category_forecast rows: per category, the weekly units forecast after as_of.

    Args:
        weekly: market_trend_weekly-shaped rows (category, week_start, units, ...); only complete
            weeks (week_start + 7 days <= as_of) are used.
    Returns:
        One row per category and forecast week (see forecast_one_series), computed in parallel per
        category; categories without enough history or without a fitting model have no rows.
    """
    last_week = last_complete_week(as_of)
    schema = T.StructType([f for f in CATEGORY_FORECAST.schema if f.name != "computed_at"])

    def forecast_category(pdf: pd.DataFrame) -> pd.DataFrame:
        out = forecast_one_series(pdf.set_index("week_start")["units"], conf, last_week)
        return out.assign(category=pdf["category"].iloc[0], as_of=as_of)[schema.names]

    complete = (weekly.where(F.date_add("week_start", 7) <= F.lit(as_of))
                .select("category", "week_start", F.col("units").cast("double")))
    return (complete.groupBy("category").applyInPandas(forecast_category, schema)
            .withColumn("computed_at", F.current_timestamp())
            .select(*CATEGORY_FORECAST.schema.names))
