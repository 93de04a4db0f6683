"""The landing data contract: what users drop into the landing directory, one sub-folder per source.

This module is the single definition of sources, columns, types, keys and personal-data
columns; docs/data-contract.md describes the same contract in prose, and the silver rules
(promolake.silver.rules) enforce it.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

MONEY = T.DecimalType(12, 2)
EVENT_TYPES = ("view", "cart", "purchase", "search")
OFFER_TYPES = ("percent_off", "amount_off", "spend_threshold", "gift")
SCOPES = ("item", "category", "basket")
ARMS = ("treatment", "control")
FILE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}


@dataclass(frozen=True)
class Field:
    """One landing column: its silver type, whether a record without it is rejected, and what it means."""

    name: str
    dtype: T.DataType
    required: bool = False
    pii: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Source:
    """One landing source: its folder name, columns and the key that identifies a record."""

    name: str
    fields: tuple[Field, ...]
    keys: tuple[str, ...]
    doc: str

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


S, TS, INT = T.StringType(), T.TimestampType(), T.IntegerType()

USERS = Source("users", (
    Field("user_id", S, True, doc="Customer identifier (pseudonymous id from the shop system)."),
    Field("signup_ts", TS, doc="When the account was created (UTC)."),
    Field("region", S, doc="Region or country."),
    Field("age_band", S, doc="Age band such as 25-34."),
    Field("gender", S, doc="Self-declared gender, free text."),
    Field("email", S, pii=True, doc="E-mail address; personal data, stored only as a salted hash (email_hash)."),
), ("user_id",), "Customers. One row per user.")

ITEMS = Source("items", (
    Field("item_id", S, True, doc="Item (SKU) identifier."),
    Field("title", S, True, doc="Product title."),
    Field("description", S, doc="Product description."),
    Field("category", S, True, doc="Top-level category."),
    Field("subcategory", S, doc="Sub-category."),
    Field("brand", S, doc="Brand."),
    Field("list_price", MONEY, True, doc="Regular price, > 0."),
    Field("unit_cost", MONEY, doc="Cost of one unit, >= 0, when known (for margins)."),
    Field("created_ts", TS, doc="When the item was listed (UTC)."),
), ("item_id",), "Catalogue. One row per item.")

EVENTS = Source("events", (
    Field("event_id", S, True, doc="Unique event identifier."),
    Field("user_id", S, True, doc="Who acted."),
    Field("item_id", S, doc="Which item; null only for search events."),
    Field("event_type", S, True, doc="One of view, cart, purchase, search."),
    Field("event_ts", TS, True, doc="When it happened (UTC)."),
    Field("quantity", INT, doc="Units; > 0 for purchases."),
    Field("unit_price", MONEY, doc="Price paid per unit (after item-level discount), >= 0."),
    Field("discount_amount", MONEY, doc="Discount on this line, >= 0."),
    Field("order_id", S, doc="Order the purchase belongs to."),
    Field("query_text", S, doc="Search text; search events only."),
), ("event_id",), "Behaviour events. One row per event.")

REVIEWS = Source("reviews", (
    Field("review_id", S, True, doc="Review identifier."),
    Field("user_id", S, True, doc="Reviewer."),
    Field("item_id", S, True, doc="Reviewed item."),
    Field("rating", INT, True, doc="Stars, 1..5."),
    Field("review_text", S, doc="Free text."),
    Field("review_ts", TS, True, doc="When the review was written (UTC)."),
), ("review_id",), "Product reviews. One row per review.")

CAMPAIGNS = Source("campaigns", (
    Field("campaign_id", S, True, doc="Campaign identifier."),
    Field("offer_id", S, True, doc="Offer identifier within the campaign."),
    Field("offer_type", S, True, doc="percent_off, amount_off, spend_threshold or gift."),
    Field("value", MONEY, True, doc="Percent (0-100] for percent_off; currency amount for amount_off and "
          "spend_threshold; the gift's value for gift."),
    Field("min_spend", MONEY, doc="Order value the offer needs (spend_threshold, gift)."),
    Field("scope", S, True, doc="item, category or basket."),
    Field("scope_value", S, doc="Category name for category scope, item id for a single item; null with "
          "campaign_items listing the items."),
    Field("start_ts", TS, True, doc="Offer window start (UTC)."),
    Field("end_ts", TS, True, doc="Offer window end (UTC), after start_ts."),
), ("campaign_id", "offer_id"), "Past and planned campaigns. One row per offer of a campaign.")

CAMPAIGN_ITEMS = Source("campaign_items", (
    Field("campaign_id", S, True, doc="Campaign whose item-scoped offers apply to this item."),
    Field("item_id", S, True, doc="Item the offer applies to."),
), ("campaign_id", "item_id"), "Item lists for item-scoped campaigns (optional source).")

EXPOSURES = Source("exposures", (
    Field("campaign_id", S, True, doc="Campaign."),
    Field("offer_id", S, doc="Offer shown; null for the control arm."),
    Field("user_id", S, True, doc="Exposed user."),
    Field("arm", S, True, doc="treatment or control."),
    Field("exposed_ts", TS, True, doc="When the user was assigned/exposed (UTC)."),
    Field("propensity", T.DoubleType(), doc="Probability the arm was chosen, (0, 1]."),
), ("campaign_id", "user_id"), "Campaign exposures with randomized arms. One row per user per campaign.")

REDEMPTIONS = Source("redemptions", (
    Field("redemption_id", S, True, doc="Redemption identifier."),
    Field("campaign_id", S, True, doc="Campaign."),
    Field("offer_id", S, True, doc="Offer redeemed."),
    Field("user_id", S, True, doc="Who redeemed."),
    Field("order_id", S, doc="Order the offer was applied to."),
    Field("redeemed_ts", TS, True, doc="When (UTC)."),
    Field("discount_amount", MONEY, doc="Discount granted (or the gift's value), >= 0."),
), ("redemption_id",), "Offer redemptions. One row per redemption.")

SOURCES: dict[str, Source] = {s.name: s for s in (
    USERS, ITEMS, CAMPAIGNS, CAMPAIGN_ITEMS, EVENTS, REVIEWS, EXPOSURES, REDEMPTIONS)}

# Foreign keys checked at ingestion: (column, referenced source, referenced column).
REFERENCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "events": (("user_id", "users", "user_id"), ("item_id", "items", "item_id")),
    "reviews": (("user_id", "users", "user_id"), ("item_id", "items", "item_id")),
    "campaign_items": (("campaign_id", "campaigns", "campaign_id"), ("item_id", "items", "item_id")),
    "exposures": (("campaign_id", "campaigns", "campaign_id"), ("user_id", "users", "user_id")),
    "redemptions": (("campaign_id", "campaigns", "campaign_id"), ("user_id", "users", "user_id")),
}
