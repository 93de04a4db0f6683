"""Reason codes: the features that raised a user's predicted uplift the most, in words a marketing
operator can read ("high affinity to kitchen; buys mostly on discount").

`reason_codes` takes the model's per-feature contributions (promolake.promo.uplift.UpliftModel
.contributions) and the feature values, keeps the features with the largest positive contributions and
describes each one's value with a phrase (PHRASES); a feature without a phrase is shown as name=value.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

NONE_DAYS = 999.0


def _days(what: str, recent: int, never: str) -> Callable[[float, str], str]:
    def phrase(v: float, scope: str) -> str:
        if v >= NONE_DAYS:
            return never
        return f"{what} {v:.0f} days ago" + (" (recent)" if v <= recent else "")
    return phrase


def _level(high: float, high_text: str, low_text: str) -> Callable[[float, str], str]:
    return lambda v, scope: (high_text if v >= high else low_text).format(v=v, scope=scope)


PHRASES: dict[str, Callable[[float, str], str]] = {
    "scope_spend_share": _level(0.3, "high affinity to {scope} ({v:.0%} of spend)",
                                "little of their spend in {scope} so far ({v:.0%})"),
    "scope_event_share": _level(0.3, "browses {scope} a lot ({v:.0%} of item views)",
                                "rarely browses {scope} ({v:.0%} of item views)"),
    "scope_spend_365d": lambda v, s: f"spent {v:,.0f} on {s} in the last year",
    "theme_spend_share": _level(0.3, "high affinity to the campaign's featured items ({v:.0%} of spend)",
                                "little of their spend on the campaign's featured items ({v:.0%})"),
    "theme_event_share": _level(0.3, "browses the campaign's featured items a lot ({v:.0%} of item views)",
                                "rarely browses the campaign's featured items ({v:.0%} of item views)"),
    "bargain_search_share": _level(0.2, "searches for bargains ({v:.0%} of searches)",
                                   "seldom searches for bargains ({v:.0%} of searches)"),
    "search_share": _level(0.3, "searches a lot ({v:.1f} searches per item viewed)",
                           "mostly browses, few searches ({v:.1f} per item viewed)"),
    "price_index": lambda v, s: ("goes for cheaper items ({v:.2f}x the category median price)" if v < 0.95
                                 else "goes for premium items ({v:.2f}x the category median price)" if v > 1.05
                                 else "buys at typical price points").format(v=v),
    "discount_unit_share": _level(0.5, "buys mostly on discount ({v:.0%} of units)",
                                  "rarely buys on discount ({v:.0%} of units)"),
    "avg_discount_depth": lambda v, s: f"takes discounts of {v:.0%} on average",
    "paid_to_list_ratio": _level(0.97, "pays close to list price", "pays below list price ({v:.0%} of list)"),
    "recency_days": _days("last order", 30, "has never ordered"),
    "days_since_last_event": _days("last visit", 7, "no visit yet"),
    "orders_30d": lambda v, s: f"{v:.0f} orders in the last 30 days",
    "orders_90d": lambda v, s: f"{v:.0f} orders in the last 90 days",
    "orders_365d": _level(6, "frequent buyer ({v:.0f} orders in a year)", "occasional buyer ({v:.0f} orders in a year)"),
    "spend_30d": lambda v, s: f"spent {v:,.0f} in the last 30 days",
    "spend_90d": lambda v, s: f"spent {v:,.0f} in the last 90 days",
    "spend_365d": lambda v, s: f"spent {v:,.0f} in the last year",
    "events_30d": lambda v, s: f"{v:.0f} visits/actions in the last 30 days",
    "events_90d": lambda v, s: f"{v:.0f} visits/actions in the last 90 days",
    "avg_order_value": lambda v, s: f"average order {v:,.0f}",
    "activity_trend": lambda v, s: ("activity rising" if v > 0.1 else "activity falling" if v < -0.1
                                    else "steady activity"),
    "offers_received": lambda v, s: f"received {v:.0f} offers before" if v else "never received an offer",
    "redemption_rate": lambda v, s: f"redeemed {v:.0%} of past offers",
    "days_since_last_offer": _days("last offer", 30, "never received an offer"),
    "tenure_days": _level(180, "customer for {v:.0f} days", "new customer ({v:.0f} days)"),
    "offer_depth": lambda v, s: f"offer worth {v:.0%} of a usual order",
    "need_ratio": lambda v, s: (f"spend threshold {v:.1f}x a usual order" if v else "no minimum spend"),
    "is_percent_off": lambda v, s: "responds to percent-off offers",
    "is_amount_off": lambda v, s: "responds to amount-off offers",
    "is_spend_threshold": lambda v, s: "responds to spend-threshold offers",
    "is_gift": lambda v, s: "responds to gift offers",
    "scope_is_item": lambda v, s: "item-level offer on a candidate item",
    "scope_is_category": lambda v, s: f"offer on the whole {s} category",
}


def describe(feature: str, value: float, scope: str) -> str:
    phrase = PHRASES.get(feature)
    return phrase(float(value), scope) if phrase else f"{feature}={value:.3g}"


def reason_codes(contributions: np.ndarray, values: np.ndarray, features: Sequence[str], scopes: Sequence[str],
                 top: int = 3) -> list[list[str]]:
    """Per row: phrases for the (at most `top`) features with the largest positive contributions,
    strongest first; an empty list when nothing raised the prediction."""
    out = []
    for c, v, scope in zip(contributions, values, scopes):
        order = [j for j in np.argsort(-c, kind="stable")[:top] if c[j] > 0]
        out.append([describe(features[j], v[j], scope) for j in order])
    return out
