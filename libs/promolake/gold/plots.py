"""Pictures of a features run, for people who would rather look than read: category trends and the
forecast fan chart, written as PNG under <features.reports_root>/features/<as_of>/."""
from __future__ import annotations

import datetime as dt
import math
import os

from pyspark.sql import functions as F

from promolake.common.config import FeaturesConf
from promolake.common.lake import Lake

FLAG_COLOURS = {"rising": "tab:green", "flat": "tab:grey", "falling": "tab:red", None: "tab:blue"}


def write_feature_plots(lake: Lake, as_of: dt.date, conf: FeaturesConf) -> list[str]:
    """Write market_trend.png and category_forecast.png for as_of; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    folder = os.path.join(conf.reports_root, "features", as_of.isoformat())
    os.makedirs(folder, exist_ok=True)
    daily = (lake.read("gold.market_trend_daily")
             .where((F.col("day") < F.lit(as_of)) & (F.col("day") >= F.lit(as_of - dt.timedelta(days=182))))
             .select("category", "day", "units_ma7", "trend_flag").toPandas())
    weekly = (lake.read("gold.market_trend_weekly").where(F.col("week_start") < F.lit(as_of))
              .select("category", "week_start", "units").toPandas())
    forecast = lake.read("gold.category_forecast").where(F.col("as_of") == F.lit(as_of)).toPandas()
    paths = []
    if not daily.empty:
        paths.append(_trend_plot(daily, as_of, os.path.join(folder, "market_trend.png")))
    if not forecast.empty:
        paths.append(_forecast_plot(weekly, forecast, as_of, os.path.join(folder, "category_forecast.png")))
    return paths


def _grid(n: int):
    import matplotlib.pyplot as plt

    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False, sharex=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _trend_plot(daily, as_of: dt.date, path: str) -> str:
    import matplotlib.pyplot as plt

    categories = sorted(daily["category"].unique())
    fig, axes = _grid(len(categories))
    for ax, cat in zip(axes, categories):
        d = daily[daily["category"] == cat].sort_values("day")
        flag = d["trend_flag"].iloc[-1] if len(d) else None
        ax.plot(d["day"], d["units_ma7"], color=FLAG_COLOURS.get(flag, "tab:blue"), lw=1.4)
        ax.set_title(f"{cat}: {flag or 'n/a'}", fontsize=9)
        ax.tick_params(labelsize=7, axis="x", rotation=45)
    fig.suptitle(f"Units per day (7-day mean) by category, colour = trend flag, as of {as_of}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _forecast_plot(weekly, forecast, as_of: dt.date, path: str) -> str:
    import matplotlib.pyplot as plt

    fig = forecast_figure(weekly, forecast, as_of)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def forecast_figure(weekly, forecast, as_of: dt.date):
    """Per category (pandas frames of gold.market_trend_weekly and gold.category_forecast): the last 26
    weeks of units and the forecast with its 80% / 95% intervals, as a matplotlib figure (the features
    stage saves it, notebook 02 shows it)."""
    categories = sorted(forecast["category"].unique())
    fig, axes = _grid(len(categories))
    for ax, cat in zip(axes, categories):
        h = weekly[weekly["category"] == cat].sort_values("week_start").tail(26)
        f = forecast[forecast["category"] == cat].sort_values("week_start")
        ax.plot(h["week_start"], h["units"], color="black", lw=1.2, label="actual")
        ax.fill_between(f["week_start"], f["lo_95"], f["hi_95"], color="tab:blue", alpha=0.15, label="95%")
        ax.fill_between(f["week_start"], f["lo_80"], f["hi_80"], color="tab:blue", alpha=0.3, label="80%")
        ax.plot(f["week_start"], f["forecast"], color="tab:blue", lw=1.4, label="forecast")
        ax.set_title(f"{cat} (sMAPE {f['backtest_smape'].iloc[0]:.0%})", fontsize=9)
        ax.tick_params(labelsize=7, axis="x", rotation=45)
    axes[0].legend(fontsize=6, loc="upper left")
    fig.suptitle(f"Weekly units: last 26 weeks and the forecast with intervals, as of {as_of}", fontsize=10)
    fig.tight_layout()
    return fig
