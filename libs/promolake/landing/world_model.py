"""The synthetic shop behind `promolake generate`, as pure numpy: catalogue, campaigns, users' latent
tastes and the behaviour they produce (sessions, events, reviews, campaign responses, dirty records).

Nothing here touches Spark or files; promolake.landing.synthetic_world runs `simulate_batch` inside
Spark tasks and writes the landing files. Every random draw comes from a Generator seeded with
(seed, stream, first user index of the batch), or from a hash of the record's identity, so a world
is the same for a seed whatever the number of cores.

Times are floats in days since the world's start date (negative before it); a user, item, campaign
or offer is an integer index (ids such as U0000001 are formatted with the *_ID patterns below).
"""
from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

import numpy as np

from promolake.common.arrays import rank_within

USER_ID, ITEM_ID, EVENT_ID, ORDER_ID = "U%07d", "I%06d", "E%07d-%05d", "O%07d-%05d"
REVIEW_ID, CAMPAIGN_ID, OFFER_ID, REDEMPTION_ID = "R%07d-%04d", "C%03d", "C%03d-O%d", "RD%03d-%07d"

STREAM_CATALOGUE, STREAM_TRENDS, STREAM_CAMPAIGNS = 1, 2, 3
STREAM_USERS, STREAM_SESSIONS, STREAM_EXPOSURES, STREAM_EVENTS, STREAM_REVIEWS = 11, 12, 13, 14, 15
STREAM_DISCOUNT, STREAM_DIRTY = 21, 22

VIEW, CART, PURCHASE, SEARCH = 0, 1, 2, 3
EVENT_TYPE_NAMES = ("view", "cart", "purchase", "search", "wishlist", "click", "hover", "refund")
BROWSE, STAPLE, CAMPAIGN = 0, 1, 2
DIRTY_KINDS = ("unknown_event_type", "negative_unit_price", "bad_timestamp", "missing_user_id",
               "zero_quantity_purchase", "unknown_item_id", "duplicate_event_id", "rating_out_of_range")
(UNKNOWN_EVENT_TYPE, NEGATIVE_UNIT_PRICE, BAD_TIMESTAMP, MISSING_USER_ID,
 ZERO_QUANTITY_PURCHASE, UNKNOWN_ITEM_ID, DUPLICATE_EVENT_ID, RATING_OUT_OF_RANGE) = range(8)
OFFER_TYPES = ("percent_off", "amount_off", "spend_threshold", "gift")
PERCENT_OFF, AMOUNT_OFF, SPEND_THRESHOLD, GIFT = range(4)


@dataclass(frozen=True)
class CategorySpec:
    """A top-level category: market share, median list price and the words its items are described with.

    Each noun is one sub-category; `aspect` is what reviews of the category talk about; consumable
    categories are the ones people re-buy (staples).
    """

    name: str
    share: float
    median_price: float
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    aspect: str
    consumable: bool = False


CATEGORIES = (
    CategorySpec("electronics", 0.11, 49.0, ("headphones", "speaker", "charger", "keyboard"),
                 ("wireless", "compact", "smart", "portable"), "sound"),
    CategorySpec("kitchen", 0.09, 27.0, ("frying pan", "chef knife", "kettle", "blender"),
                 ("non-stick", "stainless", "ceramic", "electric"), "build quality"),
    CategorySpec("home", 0.08, 34.0, ("table lamp", "cushion", "rug", "curtain"),
                 ("cosy", "modern", "woven", "minimal"), "colour"),
    CategorySpec("fashion", 0.12, 36.0, ("jacket", "sneakers", "t-shirt", "scarf"),
                 ("slim", "vintage", "waterproof", "classic"), "fit"),
    CategorySpec("beauty", 0.09, 14.0, ("shampoo", "face serum", "lipstick", "moisturiser"),
                 ("organic", "gentle", "hydrating", "matte"), "scent", True),
    CategorySpec("sports", 0.07, 31.0, ("yoga mat", "dumbbell", "water bottle", "running shorts"),
                 ("lightweight", "durable", "breathable", "adjustable"), "grip"),
    CategorySpec("toys", 0.07, 19.0, ("puzzle", "building set", "plush bear", "board game"),
                 ("colourful", "educational", "wooden", "giant"), "fun factor"),
    CategorySpec("books", 0.07, 13.0, ("novel", "cookbook", "travel guide", "comic"),
                 ("bestselling", "illustrated", "paperback", "hardcover"), "story"),
    CategorySpec("grocery", 0.12, 6.0, ("coffee beans", "pasta", "olive oil", "green tea"),
                 ("organic", "roasted", "extra virgin", "premium"), "taste", True),
    CategorySpec("garden", 0.05, 24.0, ("garden hose", "planter", "seed kit", "pruner"),
                 ("weatherproof", "terracotta", "heavy-duty", "self-watering"), "sturdiness"),
    CategorySpec("pets", 0.07, 15.0, ("dog food", "cat litter", "chew toy", "pet bed"),
                 ("grain-free", "clumping", "squeaky", "orthopedic"), "value", True),
    CategorySpec("office", 0.06, 9.0, ("notebook", "gel pens", "desk organizer", "stapler"),
                 ("recycled", "ergonomic", "refillable", "compact"), "quality", True),
)
N_CATEGORIES = len(CATEGORIES)
BRANDS_PER_CATEGORY = 6
BRAND_SHARE = np.array([0.3, 0.22, 0.17, 0.13, 0.1, 0.08])
BRAND_HEADS = ("Al", "Bri", "Cor", "Dal", "Eli", "Fen", "Gra", "Hal", "Iso", "Jun", "Kel", "Lum",
               "Mar", "Nov", "Oro", "Pel", "Qui", "Ros", "Sol", "Tav", "Ulm", "Ver", "Wyn", "Zel")
BRAND_TAILS = ("ano", "ara", "ex", "ia", "ico", "ion", "is", "ly", "ora", "ova", "rix", "sen",
               "tek", "ton", "vo", "wick")
MEDIAN_PRICE = np.array([c.median_price for c in CATEGORIES])
CONSUMABLE = np.array([c.consumable for c in CATEGORIES])

REGIONS = ("Germany", "France", "Netherlands", "Spain", "Italy", "Poland", "Sweden")
REGION_SHARE = np.array([0.27, 0.2, 0.1, 0.15, 0.14, 0.08, 0.06])
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_SHARE = np.array([0.14, 0.27, 0.23, 0.17, 0.12, 0.07])
GENDERS = ("female", "male", "non-binary")
GENDER_SHARE = np.array([0.5, 0.45, 0.01, 0.04])  # last: not given (null)
EMAIL_DOMAINS = ("mail.example", "inbox.example", "post.example")
WEEKDAY_WEIGHT = np.array([0.95, 0.9, 0.9, 0.95, 1.0, 1.3, 1.4])  # Monday .. Sunday
HOUR_SHARE = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.2, 2.8, 3.2, 3.6,
                       4.2, 4.0, 3.5, 3.4, 3.6, 4.2, 5.0, 6.0, 6.5, 5.8, 4.0, 2.2])
HOUR_SHARE = HOUR_SHARE / HOUR_SHARE.sum()

TASTE_CONCENTRATION = 0.25
NEW_USER_SHARE = 0.2
NEW_ITEM_SHARE = 0.15
STAPLE_USER_SHARE, MAX_STAPLES, STAPLE_SKIP = 0.35, 3, 0.2
VIEW_GAP_DAYS, CART_GAP_DAYS, PAY_GAP_DAYS = 50 / 86400, 25 / 86400, 60 / 86400
REVIEW_SHARE, REDEEM_SHARE, UPLIFT_SCALE = 0.08, 0.9, 2.0
SALE_SHARE, SALE_STEPS = 0.15, np.array([0.1, 0.2, 0.3])


# ---------------------------------------------------------------------------------------------
# Randomness and small array helpers


def generator(seed: int, stream: int, first: int) -> np.random.Generator:
    """Return the Generator for one stream of draws of the batch starting at user `first`."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(stream), int(first)])))


_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix64(*parts) -> np.ndarray:
    """Return a splitmix64-style uint64 hash of integer arrays (broadcast together), element-wise."""
    with np.errstate(over="ignore"):
        h = np.zeros(np.broadcast(*[np.asarray(p) for p in parts]).shape, dtype=np.uint64)
        for part in parts:
            h = h ^ (np.asarray(part).astype(np.uint64) + _GOLDEN + (h << np.uint64(6)) + (h >> np.uint64(2)))
            h = (h ^ (h >> np.uint64(30))) * _M1
            h = (h ^ (h >> np.uint64(27))) * _M2
            h = h ^ (h >> np.uint64(31))
    return h


def hash_uniform(*parts) -> np.ndarray:
    """Return a deterministic pseudo-uniform number in [0, 1) per element of the broadcast integer arrays."""
    return (mix64(*parts) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def round2(x: np.ndarray) -> np.ndarray:
    """Round money to cents."""
    return np.round(np.asarray(x, dtype=np.float64) + 1e-9, 2)


def sample_rows(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Return, per row of non-negative weights (n x k), the column drawn with probability
    proportional to its weight, using the uniform u[row]."""
    cum = np.cumsum(weights, axis=1)
    picked = (cum <= (u * cum[:, -1])[:, None]).sum(axis=1)  # first column whose cumulative weight exceeds u
    return np.minimum(picked, weights.shape[1] - 1)


def take(table: dict[str, np.ndarray], index) -> dict[str, np.ndarray]:
    """Return the rows `index` (indices or boolean mask) of a table of parallel arrays."""
    return {k: v[index] for k, v in table.items()}


def concat(tables: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the tables of parallel arrays stacked (all have the keys of the first)."""
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


@dataclass(frozen=True)
class Pools:
    """Items grouped into pools (e.g. one per category) for fast weighted sampling.

    `order` lists pool members sorted by pool; `cum` is the within-pool cumulative weight scaled to
    (0, 1] plus the pool number, so a draw u in pool p is the first entry with cum > p + u.
    """

    order: np.ndarray
    cum: np.ndarray
    start: np.ndarray
    size: np.ndarray
    total: np.ndarray


def build_pools(pool: np.ndarray, member: np.ndarray, weight: np.ndarray, n_pools: int) -> Pools:
    """Return Pools where entry i puts item member[i] into pool[i] with weight[i] (an item may sit in several)."""
    order = np.argsort(pool, kind="stable")
    p, w = pool[order].astype(np.int64), weight[order].astype(np.float64)
    total = np.bincount(p, weights=w, minlength=n_pools)
    size = np.bincount(p, minlength=n_pools)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    before = np.concatenate([[0.0], np.cumsum(total)[:-1]])
    within = (np.cumsum(w) - before[p]) / np.where(total[p] > 0, total[p], 1.0)
    return Pools(member[order].astype(np.int64), p + np.minimum(within, 1.0), start, size, total)


def sample_pools(pools: Pools, pool: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Return one member of pool[i] per draw, weighted, using the uniforms u; -1 where that pool is empty."""
    pool = np.asarray(pool, dtype=np.int64)
    if len(pools.order) == 0:
        return np.full(len(pool), -1, dtype=np.int64)
    pos = np.searchsorted(pools.cum, pool + u, side="right")
    last = pools.start[pool] + pools.size[pool] - 1
    pos = np.clip(np.minimum(pos, last), 0, len(pools.order) - 1)
    return np.where(pools.total[pool] > 0, pools.order[pos], -1)


# ---------------------------------------------------------------------------------------------
# The static world: catalogue, category trends, campaigns (built once, on the driver)


@dataclass(frozen=True)
class Catalogue:
    """The shop's items as parallel arrays (index = item number) and the words describing them.

    brand is a global brand number; brand b belongs to category b // BRANDS_PER_CATEGORY.
    cost is NaN where unknown; created_day < 0 for items listed before the world starts.
    """

    category: np.ndarray
    subcategory: np.ndarray
    brand: np.ndarray
    adjective: np.ndarray
    price: np.ndarray
    cost: np.ndarray
    created_day: np.ndarray
    quality: np.ndarray
    popularity: np.ndarray
    brand_names: tuple[str, ...]
    noun_word: np.ndarray
    adjective_word: np.ndarray
    brand_word: np.ndarray
    title: np.ndarray
    description: np.ndarray

    def __len__(self) -> int:
        return len(self.category)


def invent_brand_names(rng: np.random.Generator, n: int) -> tuple[str, ...]:
    """Return n distinct invented two-syllable brand names such as "Lumora"."""
    combos = rng.permutation(len(BRAND_HEADS) * len(BRAND_TAILS))[:n]
    return tuple(BRAND_HEADS[c // len(BRAND_TAILS)] + BRAND_TAILS[c % len(BRAND_TAILS)] for c in combos)


def zipf_within(rng: np.random.Generator, group: np.ndarray, exponent: float) -> np.ndarray:
    """Return a popularity weight per element: (rank + 1) ** -exponent, ranks shuffled within each group."""
    order = np.lexsort((rng.random(len(group)), group))
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = rank_within(group[order])
    return (rank + 1.0) ** -exponent


def build_catalogue(seed: int, n_items: int, days: int, new_item_share: float = NEW_ITEM_SHARE) -> Catalogue:
    """Return the catalogue: every category holds items of 4 sub-categories and 6 brands, log-normal
    prices around the category median, Zipf popularity within the category and a share of items
    (default 15%) launched during the period, up to its last day, as in a live catalogue: the latest
    weeks always hold items nobody has interacted with yet (the text model's cold start). The first 2
    items of each category always exist before the period."""
    rng = generator(seed, STREAM_CATALOGUE, 0)
    share = np.array([c.share for c in CATEGORIES])
    category = rng.choice(N_CATEGORIES, n_items, p=share / share.sum())
    category[: 2 * N_CATEGORIES] = np.tile(np.arange(N_CATEGORIES), 2)
    subcategory = rng.integers(0, 4, n_items)
    adjective = rng.integers(0, 4, n_items)
    brand = category * BRANDS_PER_CATEGORY + rng.choice(BRANDS_PER_CATEGORY, n_items, p=BRAND_SHARE)
    price = np.floor(MEDIAN_PRICE[category] * np.exp(rng.normal(0.0, 0.5, n_items))) + 0.99
    cost = round2(price * rng.uniform(0.40, 0.75, n_items))
    cost[rng.random(n_items) < 0.1] = np.nan
    launched = rng.random(n_items) < new_item_share
    launched[: 2 * N_CATEGORIES] = False
    created_day = np.where(launched, rng.uniform(0, days, n_items), -rng.uniform(30, 1000, n_items))
    brand_names = invent_brand_names(rng, N_CATEGORIES * BRANDS_PER_CATEGORY)
    words = _item_words(category, subcategory, adjective, brand, brand_names)
    model = rng.integers(10, 100, n_items).astype(str)
    return Catalogue(category, subcategory, brand, adjective, price, cost, created_day,
                     rng.normal(0.0, 1.0, n_items), zipf_within(rng, category, 1.1), brand_names,
                     *words, *_item_texts(category, words, model))


def _item_words(category, subcategory, adjective, brand, brand_names) -> tuple[np.ndarray, ...]:
    """Return (noun, adjective, brand name) per item."""
    nouns = np.array([[c.nouns[s] for s in range(4)] for c in CATEGORIES])
    adjectives = np.array([[c.adjectives[a] for a in range(4)] for c in CATEGORIES])
    return nouns[category, subcategory], adjectives[category, adjective], np.array(brand_names)[brand]


def _item_texts(category, words, model) -> tuple[np.ndarray, np.ndarray]:
    """Return (title, description) per item, e.g. "Lumora wireless headphones 42"."""
    noun, adjective, brand = words
    title = _join(brand, " ", adjective, " ", noun, " ", model)
    aspect = np.array([c.aspect for c in CATEGORIES])[category]
    article = np.where(np.isin(adjective.astype("U1"), list("aeiou")), "An ", "A ")
    description = _join(article, adjective, " ", noun, " by ", brand, ", known for its ", aspect,
                        ". Part of our ", np.array([c.name for c in CATEGORIES])[category], " range.")
    return title, description


def _join(*parts) -> np.ndarray:
    """Return the element-wise concatenation of string arrays and plain strings."""
    out = np.asarray(parts[0], dtype=str)
    for part in parts[1:]:
        out = np.char.add(out, np.asarray(part, dtype=str))
    return out


def build_category_trends(seed: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Return (slope, label) per category: a third rising (slope > 0), a third falling, the rest flat.

    A category's demand is multiplied by exp(slope * (day / days - 0.5)) (see trend_multipliers).
    """
    rng = generator(seed, STREAM_TRENDS, 0)
    k = N_CATEGORIES // 3
    labels = np.array(["rising"] * k + ["falling"] * k + ["flat"] * (N_CATEGORIES - 2 * k))
    labels = labels[rng.permutation(N_CATEGORIES)]
    magnitude = rng.uniform(0.8, 1.4, N_CATEGORIES)
    slope = np.select([labels == "rising", labels == "falling"], [magnitude, -magnitude],
                      rng.uniform(-0.1, 0.1, N_CATEGORIES))
    return slope, tuple(labels)


def trend_multipliers(slope: np.ndarray, days: int) -> np.ndarray:
    """Return the demand multiplier of each category on each day (categories x days)."""
    position = (np.arange(days) + 0.5) / days - 0.5
    return np.exp(np.outer(slope, position))


def day_weights(start_date: dt.date, days: int) -> np.ndarray:
    """Return the relative shopping activity of each day (weekends are busier)."""
    return WEEKDAY_WEIGHT[(start_date.weekday() + np.arange(days)) % 7]


def item_discount(seed: int, item: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Return the fraction taken off each item's list price on that day: ~15% of item-weeks are on
    sale at 10, 20 or 30%, decided by a hash of (seed, item, week)."""
    h = hash_uniform(seed, STREAM_DISCOUNT, item, np.floor_divide(day, 7))
    step = np.minimum((h / SALE_SHARE * len(SALE_STEPS)).astype(np.int64), len(SALE_STEPS) - 1)
    return np.where(h < SALE_SHARE, SALE_STEPS[step], 0.0)


@dataclass(frozen=True)
class Campaigns:
    """Campaigns and their offers as parallel arrays.

    Campaign c runs [start_day[c], start_day[c] + campaign_days) and promotes category theme[c]
    (its items, or only the items listed in item_campaign/item for item-scoped campaigns); its
    offers are first_offer[c] .. first_offer[c] + n_offers[c] - 1. Offer o has a type (OFFER_TYPES
    index), value, min_spend (NaN when none), scope, scope_value (None when none), depth (the
    discount it is worth, as a fraction of a typical basket) and gift_item (-1 unless a gift).
    """

    start_day: np.ndarray
    theme: np.ndarray
    item_scoped: np.ndarray
    first_offer: np.ndarray
    n_offers: np.ndarray
    listed_campaign: np.ndarray
    listed_item: np.ndarray
    offer_campaign: np.ndarray
    offer_number: np.ndarray
    offer_type: np.ndarray
    value: np.ndarray
    min_spend: np.ndarray
    scope: tuple[str, ...]
    scope_value: tuple[str | None, ...]
    depth: np.ndarray
    gift_item: np.ndarray

    def __len__(self) -> int:
        return len(self.start_day)


def campaign_start_days(n: int, days: int, campaign_days: int) -> np.ndarray:
    """Return start days of n campaigns spread evenly from day ~60 to the last day one can still end in."""
    latest = max(0, days - campaign_days - 1)
    earliest = min(60, days // 3, latest)
    return np.round(np.linspace(earliest, latest, n)).astype(np.int64)


def offer_type_plan(n_offers: np.ndarray, item_scoped: np.ndarray) -> list[list[int]]:
    """Return each campaign's offer types: round-robin over OFFER_TYPES so that the set covers every
    type as soon as it has four offers; an item-scoped campaign opens with an extra percent_off."""
    plan, turn = [], 0
    for c, n in enumerate(n_offers):
        types = [PERCENT_OFF] if item_scoped[c] else []
        while len(types) < n:
            types.append(turn % len(OFFER_TYPES))
            turn += 1
        plan.append(types)
    return plan


def build_campaigns(seed: int, n: int, campaign_days: int, days: int, catalogue: Catalogue) -> Campaigns:
    """Return n campaigns with 1-3 offers each; every fourth campaign (the first included) is
    item-scoped with 8-25 listed items of its theme category."""
    rng = generator(seed, STREAM_CAMPAIGNS, 0)
    start = campaign_start_days(n, days, campaign_days)
    theme = rng.permutation(N_CATEGORIES)[:n] if n <= N_CATEGORIES else rng.integers(0, N_CATEGORIES, n)
    item_scoped = np.arange(n) % 4 == 0
    n_offers = rng.integers(1, 4, n)
    offers, listed = [], []
    for c, types in enumerate(offer_type_plan(n_offers, item_scoped)):
        available = np.flatnonzero((catalogue.category == theme[c]) & (catalogue.created_day < start[c]))
        if item_scoped[c]:
            k = min(len(available), int(rng.integers(8, 26)))
            weight = catalogue.popularity[available] / catalogue.popularity[available].sum()
            listed += [(c, i) for i in sorted(rng.choice(available, k, replace=False, p=weight))]
        for number, kind in enumerate(types):
            offers.append((c, number, kind) + _offer_terms(rng, kind, theme[c], item_scoped[c], available, catalogue))
    return _campaigns_from(start, theme, item_scoped, n_offers, offers, listed)


def offer_depth(kind: int, value: float, min_spend: float, median: float) -> float:
    """The discount an offer is worth as a fraction of a typical basket of its theme category (median
    list price `median`): what the hidden response model (true_uplift) reacts to."""
    if kind == PERCENT_OFF:
        return value / 100
    if kind == AMOUNT_OFF:
        return min(0.45, value / max(20.0, 2 * median))
    if kind == SPEND_THRESHOLD:
        return 0.8 * value / min_spend
    return 0.7 * value / min_spend


def _offer_terms(rng, kind: int, theme: int, item_scoped: bool, available: np.ndarray, catalogue: Catalogue):
    """Return (value, min_spend, scope, scope_value, depth, gift_item) of one offer of a campaign on theme."""
    median = MEDIAN_PRICE[theme]
    if kind == PERCENT_OFF:
        value = float(rng.choice([10, 20, 30]))
        scope_value = None if item_scoped else CATEGORIES[theme].name
        return (value, np.nan, "item" if item_scoped else "category", scope_value,
                offer_depth(kind, value, np.nan, median), -1)
    if kind == AMOUNT_OFF:
        value = float(rng.choice([5, 10, 15]))
        return value, np.nan, "basket", None, offer_depth(kind, value, np.nan, median), -1
    if kind == SPEND_THRESHOLD:
        min_spend = max(20.0, 5 * round(2.5 * median / 5))
        value = max(5.0, 5 * round(min_spend * float(rng.choice([0.15, 0.2, 0.25])) / 5))
        return value, min_spend, "basket", None, offer_depth(kind, value, min_spend, median), -1
    cheap = available[catalogue.price[available] <= np.quantile(catalogue.price[available], 0.35)]
    gift = int(rng.choice(cheap))
    value = float(catalogue.price[gift])
    min_spend = max(20.0, 5 * round(max(2 * median, 4 * value) / 5))
    return value, min_spend, "basket", ITEM_ID % (gift + 1), offer_depth(GIFT, value, min_spend, median), gift


def _campaigns_from(start, theme, item_scoped, n_offers, offers, listed) -> Campaigns:
    columns = list(zip(*offers)) if offers else [()] * 9
    listed_c, listed_i = (np.array(x, dtype=np.int64) for x in (zip(*listed) if listed else ([], [])))
    return Campaigns(
        start, theme, item_scoped, (np.cumsum(n_offers) - n_offers).astype(np.int64),
        n_offers, listed_c, listed_i, np.array(columns[0], dtype=np.int64), np.array(columns[1], dtype=np.int64),
        np.array(columns[2], dtype=np.int64), np.array(columns[3], dtype=float), np.array(columns[4], dtype=float),
        tuple(columns[5]), tuple(columns[6]), np.array(columns[7], dtype=float), np.array(columns[8], dtype=np.int64))


@dataclass(frozen=True)
class World:
    """Everything static about the simulated shop plus its parameters; built once on the driver
    (build_world) and shipped to every Spark task."""

    seed: int
    users: int
    days: int
    start_epoch: int
    sessions_per_user_day: float
    campaign_days: int
    targeted_share: float
    treatment_share: float
    dirty_fraction: float
    catalogue: Catalogue
    campaigns: Campaigns
    trend_slope: np.ndarray
    trend_label: tuple[str, ...]
    trend: np.ndarray
    day_weight: np.ndarray
    pools: dict[str, Pools]

    def epoch_seconds(self, t: np.ndarray) -> np.ndarray:
        """Return UNIX seconds of times t (days since the start)."""
        return self.start_epoch + np.floor(np.asarray(t, dtype=np.float64) * 86400).astype(np.int64)


def build_world(conf) -> World:
    """Return the static world for a WorldConf (or any object with the same attributes)."""
    catalogue = build_catalogue(conf.seed, conf.items, conf.days, getattr(conf, "new_item_share", NEW_ITEM_SHARE))
    campaigns = build_campaigns(conf.seed, conf.campaigns, conf.campaign_days, conf.days, catalogue)
    slope, label = build_category_trends(conf.seed)
    return World(
        conf.seed, conf.users, conf.days, calendar.timegm(conf.start_date.timetuple()),
        conf.sessions_per_user_day, conf.campaign_days, conf.targeted_share, conf.treatment_share,
        conf.dirty_fraction, catalogue, campaigns, slope, label, trend_multipliers(slope, conf.days),
        day_weights(conf.start_date, conf.days), build_item_pools(catalogue, campaigns))


def build_item_pools(catalogue: Catalogue, campaigns: Campaigns) -> dict[str, Pools]:
    """Return the popularity-weighted item pools the simulation samples from: per category, per
    brand, per category among items listed before the start ("established"), and per campaign
    (its listed items, or its theme category's items listed before it starts)."""
    items = np.arange(len(catalogue))
    pop = catalogue.popularity
    old = catalogue.created_day < 0
    n_brands = N_CATEGORIES * BRANDS_PER_CATEGORY
    pools = {
        "category": build_pools(catalogue.category, items, pop, N_CATEGORIES),
        "brand": build_pools(catalogue.brand, items, pop, n_brands),
        "established": build_pools(catalogue.category[old], items[old], pop[old], N_CATEGORIES),
    }
    members = []
    for c in range(len(campaigns)):
        if campaigns.item_scoped[c]:
            listed = campaigns.listed_item[campaigns.listed_campaign == c]
        else:
            listed = np.flatnonzero((catalogue.category == campaigns.theme[c])
                                    & (catalogue.created_day < campaigns.start_day[c]))
        members.append(np.stack([np.full(len(listed), c), listed]))
    pairs = np.concatenate(members, axis=1) if members else np.zeros((2, 0), dtype=np.int64)
    pools["campaign"] = build_pools(pairs[0], pairs[1], pop[pairs[1]], max(1, len(campaigns)))
    return pools


# ---------------------------------------------------------------------------------------------
# Users and their sessions


@dataclass(frozen=True)
class Users:
    """Latent traits of a batch of users; row i is the user with global index idx[i].

    taste[i] is a probability vector over categories; fav_brand[i, c] the brand the user returns to in
    category c with probability loyalty[i]; activity is sessions per day; staple_item[i, k] (-1 for
    none) is re-bought about every staple_period[i, k] days.
    """

    idx: np.ndarray
    signup_day: np.ndarray
    taste: np.ndarray
    fav_brand: np.ndarray
    loyalty: np.ndarray
    price_sensitivity: np.ndarray
    deal_proneness: np.ndarray
    activity: np.ndarray
    base_logit: np.ndarray
    region: np.ndarray
    age_band: np.ndarray
    gender: np.ndarray
    staple_item: np.ndarray
    staple_period: np.ndarray

    def __len__(self) -> int:
        return len(self.idx)


def simulate_users(world: World, idx: np.ndarray) -> Users:
    """Return the latent traits of users idx (a batch of consecutive global indices)."""
    rng = generator(world.seed, STREAM_USERS, int(idx[0]))
    n = len(idx)
    share = np.array([c.share for c in CATEGORIES])
    taste = rng.gamma(TASTE_CONCENTRATION * N_CATEGORIES * share / share.sum(), size=(n, N_CATEGORIES)) + 1e-9
    taste /= taste.sum(axis=1, keepdims=True)
    fav_brand = (np.arange(N_CATEGORIES) * BRANDS_PER_CATEGORY
                 + rng.choice(BRANDS_PER_CATEGORY, size=(n, N_CATEGORIES), p=BRAND_SHARE))
    price_sensitivity = rng.beta(2.0, 2.0, n)
    deal = np.clip(0.6 * price_sensitivity + 0.4 * rng.beta(1.5, 2.5, n), 0.0, 1.0)
    activity = world.sessions_per_user_day * np.exp(rng.normal(-0.9 ** 2 / 2, 0.9, n))
    joined = rng.random(n) < NEW_USER_SHARE
    signup = np.where(joined, rng.uniform(0, 0.95 * world.days, n), -rng.uniform(1, 900, n))
    demographics = [rng.choice(len(p), n, p=p) for p in (REGION_SHARE, AGE_SHARE, GENDER_SHARE)]
    loyalty, base_logit = rng.beta(2.0, 3.0, n), rng.normal(-0.4, 0.6, n)
    staple_item, staple_period = draw_staples(rng, world, taste)
    return Users(idx, signup, taste, fav_brand, loyalty, price_sensitivity, deal, activity, base_logit,
                 *demographics, staple_item, staple_period)


def draw_staples(rng: np.random.Generator, world: World, taste: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (staple_item, staple_period), each users x MAX_STAPLES: ~35% of users re-buy 1-3
    established items, mostly from consumable categories they like, every 14-60 days."""
    n = len(taste)
    count = np.where(rng.random(n) < STAPLE_USER_SHARE, rng.integers(1, MAX_STAPLES + 1, n), 0)
    weight = np.repeat(taste * np.where(CONSUMABLE, 4.0, 0.3), MAX_STAPLES, axis=0)
    category = sample_rows(weight, rng.random(n * MAX_STAPLES))
    item = sample_pools(world.pools["established"], category, rng.random(n * MAX_STAPLES))
    item = item.reshape(n, MAX_STAPLES)
    item[np.arange(MAX_STAPLES)[None, :] >= count[:, None]] = -1
    return item, rng.integers(14, 61, (n, MAX_STAPLES))


def session_table(user, t, category, kind, item=-1, exposure=-1) -> dict[str, np.ndarray]:
    """Return sessions as parallel arrays: who (batch-local user), when, in which category, what
    kind (BROWSE, STAPLE, CAMPAIGN), the item it is about (-1: browsing) and the exposure behind it."""
    n = len(user)
    return {"user": np.asarray(user, dtype=np.int64), "t": np.asarray(t, dtype=np.float64),
            "category": np.asarray(category, dtype=np.int64), "kind": np.full(n, kind, dtype=np.int64),
            "item": np.broadcast_to(np.asarray(item, dtype=np.int64), (n,)).copy(),
            "exposure": np.broadcast_to(np.asarray(exposure, dtype=np.int64), (n,)).copy()}


def browse_sessions(rng: np.random.Generator, world: World, users: Users) -> dict[str, np.ndarray]:
    """Return browsing sessions. A user's session rate on a day is activity x day weight (weekends
    busier) x their taste-weighted category trends, zero before signup; each session's category is
    drawn from taste x that day's trend, its hour from an evening-heavy profile."""
    n, days = len(users), world.days
    start = np.clip(users.signup_day, 0.0, days)
    rate = users.activity[:, None] * world.day_weight[None, :] * (users.taste @ world.trend)
    rate[np.arange(days)[None, :] < np.floor(start)[:, None]] = 0.0
    cum = np.cumsum(rate.ravel())
    row_end = cum[np.arange(1, n + 1) * days - 1] if n else np.zeros(0)
    row_total = rate.sum(axis=1)
    user = np.repeat(np.arange(n), rng.poisson(row_total))
    cell = np.searchsorted(cum, rng.uniform(row_end[user] - row_total[user], row_end[user]), side="right")
    day = np.clip(cell - user * days, 0, days - 1)
    hour = rng.choice(24, len(user), p=HOUR_SHARE)
    t = np.maximum(day + (hour + rng.random(len(user))) / 24.0, start[user])
    category = sample_rows(users.taste[user] * world.trend[:, day].T, rng.random(len(user)))
    return session_table(user, t, category, BROWSE)


def staple_sessions(rng: np.random.Generator, world: World, users: Users) -> dict[str, np.ndarray]:
    """Return re-buy sessions: each staple comes back every period (+- a day or two, ~20% skipped)."""
    user, slot = np.nonzero(users.staple_item >= 0)
    item, period = users.staple_item[user, slot], users.staple_period[user, slot]
    cycles = np.arange(world.days // 14 + 2)
    t = (rng.uniform(0, period)[:, None] + cycles[None, :] * period[:, None]
         + rng.normal(0, 1.5, (len(user), len(cycles))))
    start = np.maximum(users.signup_day[user], 0.0)
    keep = (t >= start[:, None]) & (t < world.days) & (rng.random(t.shape) > STAPLE_SKIP)
    row, col = np.nonzero(keep)
    return session_table(user[row], t[row, col], world.catalogue.category[item[row]], STAPLE, item[row])


# ---------------------------------------------------------------------------------------------
# Campaign exposures and the hidden response model


def baseline_probability(activity: np.ndarray, affinity: np.ndarray, window_days: float) -> np.ndarray:
    """Return p0: the chance a user buys in a campaign's scope during its window without any offer,
    from their activity (sessions/day) and affinity (taste share of the scope category)."""
    return 1.0 - np.exp(-activity * window_days * (0.1 + affinity) * 0.8)


def true_uplift(depth: np.ndarray, price_sensitivity: np.ndarray, deal_proneness: np.ndarray,
                affinity: np.ndarray) -> np.ndarray:
    """Return the extra purchase probability an offer of that depth gives: deeper offers, deal-prone
    and price-sensitive users and users who like the scope respond more."""
    return (UPLIFT_SCALE * depth * (0.2 + 0.8 * deal_proneness) * (0.6 + 0.4 * price_sensitivity)
            * (0.3 + np.minimum(1.0, 3.0 * affinity)))


def simulate_exposures(rng: np.random.Generator, world: World, users: Users) -> dict[str, np.ndarray]:
    """Return one row per (campaign, targeted user): users who signed up before the start are targeted
    with prob targeted_share, treated with prob treatment_share and shown a uniformly drawn offer
    (offer -1 for control; `drawn` keeps the drawn offer). p1 = min(0.95, p0 + uplift), but never
    below p0. One uniform decides `bought` against p1 (treatment) or p0 (control); ~90% of treated
    buyers redeem."""
    camp = world.campaigns
    targeted = rng.random((len(users), len(camp))) < world.targeted_share
    user, c = np.nonzero(targeted & (users.signup_day < 0)[:, None])
    m = len(user)
    treated = rng.random(m) < world.treatment_share
    drawn = camp.first_offer[c] + (rng.random(m) * camp.n_offers[c]).astype(np.int64)
    affinity = users.taste[user, camp.theme[c]]
    p0 = baseline_probability(users.activity[user], affinity, world.campaign_days)
    uplift = true_uplift(camp.depth[drawn], users.price_sensitivity[user], users.deal_proneness[user], affinity)
    p1 = np.maximum(p0, np.minimum(0.95, p0 + uplift))  # an offer never lowers the chance to buy
    bought = rng.random(m) < np.where(treated, p1, p0)
    exposed_t = camp.start_day[c] + rng.uniform(0.0, 0.5, m)
    return {"user": user, "campaign": c, "offer": np.where(treated, drawn, -1), "drawn": drawn,
            "treated": treated,
            "propensity": np.where(treated, world.treatment_share, 1.0 - world.treatment_share),
            "t": exposed_t, "p0": p0, "p1": p1, "uplift": p1 - p0, "bought": bought,
            "redeemed": bought & treated & (rng.random(m) < REDEEM_SHARE),
            "buy_t": exposed_t + rng.uniform(0.05, world.campaign_days - 0.6, m)}


def campaign_sessions(rng: np.random.Generator, world: World,
                      exposures: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the sessions in which exposed buyers buy an item of the campaign's scope."""
    which = np.flatnonzero(exposures["bought"])
    c = exposures["campaign"][which]
    item = sample_pools(world.pools["campaign"], c, rng.random(len(which)))
    fallback = sample_pools(world.pools["established"], world.campaigns.theme[c], rng.random(len(which)))
    item = np.where(item >= 0, item, fallback)
    return session_table(exposures["user"][which], exposures["buy_t"][which], world.catalogue.category[item],
                         CAMPAIGN, item, which)


# ---------------------------------------------------------------------------------------------
# From sessions to events


def event_table(user, t, kind, item=-1, quantity=-1, unit_price=np.nan, discount=np.nan, order_no=-1,
                text=None) -> dict[str, np.ndarray]:
    """Return events as parallel arrays (scalars are broadcast): who, when, type, item (-1: none),
    quantity (-1: none), unit price and line discount (NaN: none), order number (-1: none) and the
    search text of search events."""
    n = len(user)

    def full(value, dtype):
        return np.broadcast_to(np.asarray(value, dtype=dtype), (n,)).copy()

    return {"user": full(user, np.int64), "t": full(t, np.float64), "type": full(kind, np.int64),
            "item": full(item, np.int64), "quantity": full(quantity, np.int64),
            "unit_price": full(unit_price, np.float64), "discount": full(discount, np.float64),
            "order_no": full(order_no, np.int64), "text": full(text, object)}


def choose_view_items(rng: np.random.Generator, world: World, users: Users, user: np.ndarray,
                      category: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Return the item of each view: loyal users go to their favourite brand of the category, others
    draw by popularity, and price-sensitive ones keep the cheaper of two candidates; an item not yet
    launched at time t is replaced by an established one."""
    price, n = world.catalogue.price, len(user)
    from_brand = sample_pools(world.pools["brand"], users.fav_brand[user, category], rng.random(n))
    first = sample_pools(world.pools["category"], category, rng.random(n))
    second = sample_pools(world.pools["category"], category, rng.random(n))
    compare = rng.random(n) < users.price_sensitivity[user]
    item = np.where(compare & (price[second] < price[first]), second, first)
    item = np.where((rng.random(n) < users.loyalty[user]) & (from_brand >= 0), from_brand, item)
    established = sample_pools(world.pools["established"], category, rng.random(n))
    return np.where(world.catalogue.created_day[item] > t, established, item)


def cart_probability(users: Users, catalogue: Catalogue, user: np.ndarray, item: np.ndarray,
                     sale: np.ndarray) -> np.ndarray:
    """Return the chance a view ends in the cart: higher for better, favourite-brand, on-sale (much
    more so for deal-prone users) and, for price-sensitive users, cheaper-than-usual items."""
    category = catalogue.category[item]
    relative_price = np.log(catalogue.price[item] / MEDIAN_PRICE[category])
    favourite = users.fav_brand[user, category] == catalogue.brand[item]
    affinity = np.log(np.clip(users.taste[user, category] * N_CATEGORIES, 0.2, 5.0))
    return sigmoid(users.base_logit[user] - 2.0 + 0.35 * catalogue.quality[item] + 0.5 * favourite
                   + 0.25 * affinity - 1.5 * users.price_sensitivity[user] * relative_price
                   + sale * (2.0 + 8.0 * users.deal_proneness[user]))


def expand_views(rng: np.random.Generator, world: World, users: Users, s: dict[str, np.ndarray]):
    """Return (views, first): one row per view of the sessions s (sorted by user and time) and the
    index of each session's first view. A browsing session has Geometric(0.45) views; a staple or
    campaign session first views its item (`lead`)."""
    forced = s["item"] >= 0
    m = len(forced)
    n_views = np.where(forced, 1 + rng.poisson(0.4, m), rng.geometric(0.45, m))
    first = np.cumsum(n_views) - n_views
    session = np.repeat(np.arange(m), n_views)
    gap = rng.exponential(VIEW_GAP_DAYS, len(session))
    elapsed = np.cumsum(gap)
    t = s["t"][session] + elapsed - elapsed[first[session]] + gap[first[session]]
    user, category = s["user"][session], s["category"][session]
    lead = forced[session] & (np.arange(len(session)) == first[session])
    item = np.where(lead, s["item"][session], choose_view_items(rng, world, users, user, category, t))
    return {"session": session, "user": user, "item": item, "lead": lead, "forced": forced[session],
            "t": np.minimum(t, world.days - 1 / 86400)}, first


def redeeming(exposures: dict[str, np.ndarray], exposure: np.ndarray) -> np.ndarray:
    """Return which of the given exposure indices (-1: none) redeem their offer."""
    if len(exposures["redeemed"]) == 0:
        return np.zeros(len(exposure), dtype=bool)
    return (exposure >= 0) & exposures["redeemed"][np.maximum(exposure, 0)]


def apply_offers(world: World, offer: np.ndarray, unit: np.ndarray, quantity: np.ndarray):
    """Return (unit, quantity, offer_discount) of lines bought with these offers: percent_off lowers the
    unit price; threshold and gift offers need min_spend, so the quantity is raised to reach it;
    amount_off and threshold take `value` off the order, a gift is worth its value."""
    camp = world.campaigns
    kind, value, need = camp.offer_type[offer], camp.value[offer], np.nan_to_num(camp.min_spend[offer])
    quantity = np.where(need > 0, np.minimum(20, np.maximum(quantity, np.ceil(need / unit))), quantity)
    paid = np.where(kind == PERCENT_OFF, round2(unit * (1 - value / 100)), unit)
    discount = np.select([kind == PERCENT_OFF, kind == AMOUNT_OFF],
                         [round2((unit - paid) * quantity), np.minimum(value, round2(paid * quantity))], value)
    return paid, quantity.astype(np.int64), discount


def decide_lines(rng: np.random.Generator, world: World, users: Users, s, views, first, exposures):
    """Return (views, redemptions): the views with cart/purchase decisions, prices, quantities and
    timestamps added, and one row per redeemed offer (on the campaign session's order)."""
    c, last = world.catalogue, world.days - 1 / 86400
    user, item, t, n = views["user"], views["item"], views["t"], len(views["user"])
    sale = item_discount(world.seed, item, np.minimum(np.floor(t), world.days - 1).astype(np.int64))
    unit = round2(c.price[item] * (1 - sale))
    carted = np.where(views["forced"], views["lead"], rng.random(n) < cart_probability(users, c, user, item, sale))
    p_buy = sigmoid(0.1 + 0.3 * c.quality[item] + 4.0 * sale * users.deal_proneness[user])
    bought = carted & (views["lead"] | (rng.random(n) < p_buy))
    quantity = 1 + rng.poisson(np.where(CONSUMABLE[c.category[item]], 0.7, 0.2))
    cart_t = np.minimum(t + rng.exponential(CART_GAP_DAYS, n), last)
    end = np.maximum.reduceat(np.where(carted, cart_t, t), first) if n else np.zeros(0)
    pay_t = np.minimum(end + rng.exponential(PAY_GAP_DAYS, len(first)), last)[views["session"]]
    exposure = np.where(views["lead"], s["exposure"][views["session"]], -1)
    redeem = np.flatnonzero(redeeming(exposures, exposure))
    offer = exposures["offer"][exposure[redeem]] if len(redeem) else np.zeros(0, dtype=np.int64)
    offer_discount = np.zeros(0)
    if len(redeem):
        unit[redeem], quantity[redeem], offer_discount = apply_offers(world, offer, unit[redeem], quantity[redeem])
    order_no = s["number"][views["session"]]
    redemptions = {"user": user[redeem], "campaign": world.campaigns.offer_campaign[offer],
                   "offer_number": world.campaigns.offer_number[offer], "order_no": order_no[redeem],
                   "t": pay_t[redeem], "discount": offer_discount, "gift_item": world.campaigns.gift_item[offer]}
    lines = dict(views, unit=unit, carted=carted, bought=bought, quantity=quantity, cart_t=cart_t,
                 pay_t=pay_t, order_no=order_no)
    return lines, redemptions


def build_queries(rng: np.random.Generator, catalogue: Catalogue, item: np.ndarray,
                  price_sensitivity: np.ndarray) -> np.ndarray:
    """Return a search text per session leading to `item`: "<brand> <noun>", "<adjective> <noun>",
    "<noun>" or "<brand>", and "cheap <noun>" for most price-sensitive users."""
    noun, adjective = catalogue.noun_word[item], catalogue.adjective_word[item]
    brand = np.char.lower(catalogue.brand_word[item])
    r = rng.random(len(item))
    query = np.where(r < 0.35, _join(brand, " ", noun),
                     np.where(r < 0.65, _join(adjective, " ", noun), np.where(r < 0.9, noun, brand)))
    cheap = (price_sensitivity > 0.65) & (rng.random(len(item)) < 0.6)
    return np.where(cheap, _join("cheap ", noun), query).astype(object)


def build_events(rng: np.random.Generator, world: World, users: Users, sessions, exposures):
    """Return (events, redemptions) of the sessions: an optional search, the views, carts and one order
    per buying session (plus the free gift line of a redeemed gift offer); events are sorted by user
    and time and numbered per user (seq); order_no is the session's number within the user."""
    s = take(sessions, np.lexsort((sessions["t"], sessions["user"])))
    s["number"] = rank_within(s["user"])
    views, first = expand_views(rng, world, users, s)
    lines, redemptions = decide_lines(rng, world, users, s, views, first, exposures)
    p_search = 0.2 + 0.25 * users.price_sensitivity[s["user"]]
    searching = np.flatnonzero((s["item"] < 0) & (rng.random(len(s["t"])) < p_search))
    query = build_queries(rng, world.catalogue, lines["item"][first[searching]],
                          users.price_sensitivity[s["user"][searching]])
    cart, buy = take(lines, lines["carted"]), take(lines, lines["bought"])
    gift = redemptions["gift_item"] >= 0
    parts = [
        event_table(s["user"][searching], s["t"][searching], SEARCH, text=query),
        event_table(lines["user"], lines["t"], VIEW, lines["item"], unit_price=lines["unit"]),
        event_table(cart["user"], cart["cart_t"], CART, cart["item"], cart["quantity"], cart["unit"]),
        event_table(buy["user"], buy["pay_t"], PURCHASE, buy["item"], buy["quantity"], buy["unit"],
                    round2((world.catalogue.price[buy["item"]] - buy["unit"]) * buy["quantity"]), buy["order_no"]),
        event_table(redemptions["user"][gift], redemptions["t"][gift], PURCHASE, redemptions["gift_item"][gift], 1,
                    0.0, world.catalogue.price[redemptions["gift_item"][gift]], redemptions["order_no"][gift]),
    ]
    events = concat(parts)
    events = take(events, np.lexsort((np.arange(len(events["t"])), events["t"], events["user"])))
    events["seq"] = rank_within(events["user"])
    return events, redemptions


# ---------------------------------------------------------------------------------------------
# Reviews

REVIEW_OPENERS = np.array([["Terrible", "Awful", "Useless"], ["Disappointing", "Poor", "Mediocre"],
                           ["Okay", "Average", "Decent"], ["Good", "Nice", "Solid"],
                           ["Excellent", "Perfect", "Love this"]])
REVIEW_CLOSERS = np.array([
    ["complete waste of money.", "broke after a week.", "returning it."],
    ["expected more.", "feels cheap.", "would not buy again."],
    ["nothing special.", "does what it says.", "fine for the price."],
    ["happy with it.", "does the job well.", "would buy again."],
    ["highly recommend!", "exceeded my expectations.", "worth every penny."]])
BRAND_VERDICTS = np.array([["Stay away from ", "."], ["Expected better from ", "."], ["", " is alright."],
                           ["Good stuff from ", "."], ["", " nailed it."]])
ASPECT_VERDICTS = np.array(["awful", "poor", "average", "good", "fantastic"])


def review_ratings(rng: np.random.Generator, users: Users, catalogue: Catalogue, user: np.ndarray,
                   item: np.ndarray) -> np.ndarray:
    """Return 1..5 stars: item quality, the user's affinity to the category and brand, plus noise."""
    category = catalogue.category[item]
    affinity = np.log(np.clip(users.taste[user, category] * N_CATEGORIES, 0.2, 5.0))
    favourite = users.fav_brand[user, category] == catalogue.brand[item]
    score = 3.6 + 0.9 * catalogue.quality[item] + 0.3 * affinity + 0.3 * favourite + rng.normal(0, 0.9, len(item))
    return np.clip(np.rint(score), 1, 5).astype(np.int64)


def review_texts(rng: np.random.Generator, catalogue: Catalogue, item: np.ndarray, rating: np.ndarray) -> np.ndarray:
    """Return review texts whose sentiment words follow the rating and which name the item's
    adjective, noun, brand and its category's aspect, e.g. "Love this wireless headphones, highly
    recommend! Lumora nailed it. The sound is fantastic."."""
    r, n = rating - 1, len(item)
    aspect = np.array([c.aspect for c in CATEGORIES])[catalogue.category[item]]
    return _join(REVIEW_OPENERS[r, rng.integers(0, 3, n)], " ", catalogue.adjective_word[item], " ",
                 catalogue.noun_word[item], ", ", REVIEW_CLOSERS[r, rng.integers(0, 3, n)], " ",
                 BRAND_VERDICTS[r, 0], catalogue.brand_word[item], BRAND_VERDICTS[r, 1], " The ", aspect,
                 " is ", ASPECT_VERDICTS[r], ".").astype(object)


def build_reviews(rng: np.random.Generator, world: World, users: Users, events) -> dict[str, np.ndarray]:
    """Return reviews of ~8% of paid purchase lines, written 1-12 days later (within the period),
    sorted by user and time and numbered per user (seq)."""
    paid = np.flatnonzero((events["type"] == PURCHASE) & (events["unit_price"] > 0))
    paid = paid[rng.random(len(paid)) < REVIEW_SHARE]
    t = events["t"][paid] + rng.uniform(1.0, 12.0, len(paid))
    paid, t = paid[t < world.days - 1 / 86400], t[t < world.days - 1 / 86400]
    user, item = events["user"][paid], events["item"][paid]
    rating = review_ratings(rng, users, world.catalogue, user, item)
    reviews = {"user": user, "t": t, "item": item, "rating": rating,
               "text": review_texts(rng, world.catalogue, item, rating)}
    reviews = take(reviews, np.lexsort((reviews["t"], reviews["user"])))
    reviews["seq"] = rank_within(reviews["user"])
    return reviews


# ---------------------------------------------------------------------------------------------
# Dirty records and the whole batch

_ALL_EVENT_KINDS = tuple(range(DUPLICATE_EVENT_ID + 1))
DIRTY_KINDS_BY_TYPE = {
    VIEW: tuple(k for k in _ALL_EVENT_KINDS if k != ZERO_QUANTITY_PURCHASE),
    CART: tuple(k for k in _ALL_EVENT_KINDS if k != ZERO_QUANTITY_PURCHASE),
    PURCHASE: _ALL_EVENT_KINDS,
    SEARCH: (UNKNOWN_EVENT_TYPE, BAD_TIMESTAMP, MISSING_USER_ID, DUPLICATE_EVENT_ID),
}


def dirty_event_kinds(seed: int, fraction: float, user: np.ndarray, seq: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Return the DIRTY_KINDS index each event is corrupted with (-1: clean): a hash of (seed, user,
    seq) picks about `fraction` of events and a kind that fits the event type (only purchases get a
    zero quantity, searches have no item or price to spoil)."""
    table = np.full((len(DIRTY_KINDS_BY_TYPE), len(_ALL_EVENT_KINDS)), -1)
    allowed = np.zeros(len(DIRTY_KINDS_BY_TYPE), dtype=np.int64)
    for event_type, kinds in DIRTY_KINDS_BY_TYPE.items():
        table[event_type, : len(kinds)], allowed[event_type] = kinds, len(kinds)
    chosen = hash_uniform(seed, STREAM_DIRTY, 0, user, seq) < fraction
    pick = (hash_uniform(seed, STREAM_DIRTY, 1, user, seq) * allowed[kind]).astype(np.int64)
    return np.where(chosen, table[kind, pick], -1)


def inject_dirty_events(world: World, events: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the events with a `dirty` column and the corruptions applied: unknown type, negative
    price, zero purchase quantity, an item outside the catalogue, and an exact copy appended for
    duplicates. Missing user ids and unparsable timestamps are applied when the files are written."""
    dirty = dirty_event_kinds(world.seed, world.dirty_fraction, events["user"], events["seq"], events["type"])
    noise = mix64(world.seed, STREAM_DIRTY, 2, events["user"], events["seq"]).astype(np.int64) & 0xFFFF
    out = dict(events, dirty=dirty)
    out["type"] = np.where(dirty == UNKNOWN_EVENT_TYPE, 4 + noise % 4, events["type"])
    out["unit_price"] = np.where(dirty == NEGATIVE_UNIT_PRICE, -np.maximum(events["unit_price"], 0.99),
                                 events["unit_price"])
    out["quantity"] = np.where(dirty == ZERO_QUANTITY_PURCHASE, 0, events["quantity"])
    out["item"] = np.where(dirty == UNKNOWN_ITEM_ID, len(world.catalogue) + 1000 + noise % 9000, events["item"])
    copies = take(dict(out, dirty=np.full(len(dirty), -1)), dirty == DUPLICATE_EVENT_ID)
    out["dirty"] = np.where(dirty == DUPLICATE_EVENT_ID, -1, dirty)
    copies["dirty"][:] = DUPLICATE_EVENT_ID
    return concat([out, copies])


def inject_dirty_reviews(world: World, reviews: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the reviews with a `dirty` column; a hash picks ~5 x dirty_fraction of them and sets
    their rating to 0 or 7 (outside 1..5)."""
    h = hash_uniform(world.seed, STREAM_DIRTY, 3, reviews["user"], reviews["seq"])
    bad = h < min(1.0, 5 * world.dirty_fraction)
    rating = np.where(bad, np.where(h < 2.5 * world.dirty_fraction, 0, 7), reviews["rating"])
    return dict(reviews, rating=rating, dirty=np.where(bad, RATING_OUT_OF_RANGE, -1))


def simulate_batch(world: World, idx: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Return every record of the users idx (consecutive global indices), as tables of parallel
    arrays keyed users, events, reviews, exposures, redemptions; `user` is the global user index and
    `t` days since the start. Deterministic for (world, idx)."""
    first = int(idx[0])
    users = simulate_users(world, idx)
    exposures = simulate_exposures(generator(world.seed, STREAM_EXPOSURES, first), world, users)
    rng = generator(world.seed, STREAM_SESSIONS, first)
    sessions = concat([browse_sessions(rng, world, users), staple_sessions(rng, world, users),
                       campaign_sessions(rng, world, exposures)])
    events, redemptions = build_events(generator(world.seed, STREAM_EVENTS, first), world, users, sessions, exposures)
    reviews = build_reviews(generator(world.seed, STREAM_REVIEWS, first), world, users, events)
    for table in (events, reviews, exposures, redemptions):
        table["user"] = idx[table["user"]]
    return {"users": user_records(users), "events": inject_dirty_events(world, events),
            "reviews": inject_dirty_reviews(world, reviews), "exposures": exposure_records(world, exposures),
            "redemptions": redemptions}


def exposure_records(world: World, exposures: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the exposures with offers numbered within their campaign: offer_number is the offer shown
    (-1 for control), drawn_number the offer drawn for every exposure (the one p1 refers to)."""
    keep = ("user", "campaign", "treated", "propensity", "t", "p0", "p1", "uplift", "bought", "redeemed")
    out = {k: exposures[k] for k in keep}
    out["drawn_number"] = world.campaigns.offer_number[exposures["drawn"]]
    out["offer_number"] = np.where(exposures["treated"], out["drawn_number"], -1)
    return out


def user_records(users: Users) -> dict[str, np.ndarray]:
    """Return the users as a table of parallel arrays (taste, fav_brand and staples are 2-d)."""
    return {"user": users.idx, "t": users.signup_day, "region": users.region, "age_band": users.age_band,
            "gender": users.gender, "taste": users.taste, "fav_brand": users.fav_brand, "loyalty": users.loyalty,
            "price_sensitivity": users.price_sensitivity, "deal_proneness": users.deal_proneness,
            "activity": users.activity, "base_logit": users.base_logit, "staple_item": users.staple_item,
            "staple_period": users.staple_period}
