"""Tests of the synthetic world: the pure numpy model (world_model) on hand-checkable inputs, and one
tiny generated landing (module-scoped, generated once and regenerated once with force) checked
against the landing contract, the hidden truth and the signals later stages rely on."""
from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from promolake.common.config import WorldConf, load_config
from promolake.common.reporting import StageReport
from promolake.landing import world_model as wm
from promolake.landing.contract import EVENT_TYPES, OFFER_TYPES, SOURCES
from promolake.landing.synthetic_world import TRUTH_TABLES, run_generate

REPO = Path(__file__).resolve().parents[2]
TINY = WorldConf(seed=3, users=300, items=100, days=90)
WORLD_OVERRIDES = ("world.seed=7", "world.users=500", "world.items=150", "world.days=120",
                   "world.dirty_fraction=0.01", "world.targeted_share=0.6", "world.treatment_share=0.5",
                   "world.users_per_task=200")
EXTENSIONS = {"users": {".csv"}, "items": {".jsonl"}, "campaigns": {".csv"}, "campaign_items": {".csv"},
              "events": {".parquet", ".jsonl"}, "reviews": {".jsonl"}, "exposures": {".parquet"},
              "redemptions": {".csv"}}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---------------------------------------------------------------------------------------------
# world_model: pure numpy


def test_sample_pools_draws_only_members_of_the_requested_pool():
    pools = wm.build_pools(np.array([0, 1, 0, 1, 2]), np.array([10, 20, 11, 21, 30]),
                           np.array([1.0, 1.0, 3.0, 1.0, 0.0]), 4)
    u = np.random.default_rng(0).random(4000)
    from_0 = wm.sample_pools(pools, np.zeros(4000, dtype=int), u)
    from_1 = wm.sample_pools(pools, np.ones(4000, dtype=int), u)
    assert set(from_0) == {10, 11} and set(from_1) == {20, 21}
    assert abs((from_0 == 11).mean() - 0.75) < 0.03  # weights 1:3
    assert set(wm.sample_pools(pools, np.array([2, 3]), np.array([0.5, 0.5]))) == {-1}  # zero weight, empty


def test_sample_rows_returns_the_weighted_column():
    weights = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    assert wm.sample_rows(weights, np.array([0.0, 0.99, 0.5])).tolist() == [1, 0, 2]


def test_rank_within_counts_up_within_runs():
    assert wm.rank_within(np.array([3, 3, 5, 5, 5, 7])).tolist() == [0, 1, 0, 1, 2, 0]


def test_hash_uniform_is_deterministic_and_spread():
    a, b = wm.hash_uniform(1, 2, np.arange(10_000)), wm.hash_uniform(1, 2, np.arange(10_000))
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() < 1
    assert abs(a.mean() - 0.5) < 0.01
    assert not np.array_equal(a, wm.hash_uniform(2, 2, np.arange(10_000)))


def test_trend_multipliers_rise_for_positive_slopes_and_fall_for_negative():
    m = wm.trend_multipliers(np.array([1.0, -1.0, 0.0]), 100)
    assert np.all(np.diff(m[0]) > 0) and np.all(np.diff(m[1]) < 0) and np.allclose(m[2], 1.0)
    assert m[0, 0] == pytest.approx(np.exp(-0.495)) and m[0, -1] == pytest.approx(np.exp(0.495))


def test_category_trends_label_a_third_rising_a_third_falling():
    slope, label = wm.build_category_trends(5)
    label = np.array(label)
    assert (label == "rising").sum() == 4 and (label == "falling").sum() == 4
    assert np.all(slope[label == "rising"] > 0.5) and np.all(slope[label == "falling"] < -0.5)
    assert np.all(np.abs(slope[label == "flat"]) <= 0.1)


def test_item_discount_is_constant_within_a_week_and_about_15_percent():
    items = np.arange(5000)
    monday, sunday = wm.item_discount(9, items, np.full(5000, 14)), wm.item_discount(9, items, np.full(5000, 20))
    assert np.array_equal(monday, sunday)
    assert set(np.unique(monday)) <= {0.0, 0.1, 0.2, 0.3}
    assert 0.12 < (monday > 0).mean() < 0.18
    assert not np.array_equal(monday, wm.item_discount(9, items, np.full(5000, 21)))


def test_offer_plan_covers_every_type_and_item_scoped_campaigns_open_with_percent_off():
    plan = wm.offer_type_plan(np.array([1, 2, 1, 1, 1]), np.array([True, False, False, False, True]))
    assert plan[0] == [wm.PERCENT_OFF] and plan[4] == [wm.PERCENT_OFF]
    assert {t for types in plan for t in types} == set(range(len(wm.OFFER_TYPES)))


def test_apply_offers_matches_hand_computed_prices():
    world = wm.build_world(TINY)
    camp = world.campaigns
    pct = int(np.flatnonzero(camp.offer_type == wm.PERCENT_OFF)[0])
    threshold = int(np.flatnonzero(camp.offer_type == wm.SPEND_THRESHOLD)[0])
    paid, quantity, discount = wm.apply_offers(world, np.array([pct, threshold]), np.array([10.0, 7.0]),
                                               np.array([2, 1]))
    share = camp.value[pct] / 100
    need = int(np.ceil(camp.min_spend[threshold] / 7.0))
    assert paid.tolist() == [round(10 * (1 - share), 2), 7.0]
    assert quantity.tolist() == [2, min(20, need)]
    assert discount.tolist() == [round(2 * 10 * share, 2), camp.value[threshold]]


def test_uplift_grows_with_depth_deal_proneness_and_affinity():
    base = wm.true_uplift(np.array([0.1]), np.array([0.5]), np.array([0.3]), np.array([0.1]))
    assert wm.true_uplift(np.array([0.3]), np.array([0.5]), np.array([0.3]), np.array([0.1])) > base
    assert wm.true_uplift(np.array([0.1]), np.array([0.5]), np.array([0.9]), np.array([0.1])) > base
    assert wm.true_uplift(np.array([0.1]), np.array([0.5]), np.array([0.3]), np.array([0.3])) > base
    assert wm.baseline_probability(np.array([0.2]), np.array([0.5]), 14) > wm.baseline_probability(
        np.array([0.02]), np.array([0.5]), 14)


def test_campaigns_cover_all_offer_types_and_list_items_for_item_scope():
    world = wm.build_world(TINY)
    camp = world.campaigns
    assert set(camp.offer_type) == set(range(len(wm.OFFER_TYPES)))
    assert camp.item_scoped[0] and len(camp.listed_item[camp.listed_campaign == 0]) >= 1
    assert np.all(world.catalogue.category[camp.listed_item] == camp.theme[camp.listed_campaign])
    gifts = camp.gift_item[camp.offer_type == wm.GIFT]
    assert np.allclose(world.catalogue.price[gifts], camp.value[camp.offer_type == wm.GIFT])
    assert np.all(camp.start_day + TINY.campaign_days < TINY.days)


def test_simulate_batch_is_deterministic_per_seed():
    world = wm.build_world(TINY)
    first, again = wm.simulate_batch(world, np.arange(100, 200)), wm.simulate_batch(world, np.arange(100, 200))
    for record in first:
        for column, values in first[record].items():
            assert np.array_equal(values, again[record][column], equal_nan=values.dtype.kind == "f"), (record, column)
    other = wm.simulate_batch(wm.build_world(TINY.model_copy(update={"seed": 4})), np.arange(100, 200))
    assert not np.array_equal(first["users"]["taste"], other["users"]["taste"])
    assert len(first["events"]["t"]) != len(other["events"]["t"]) or not np.array_equal(
        first["events"]["item"], other["events"]["item"])


def test_items_are_not_seen_before_launch_and_users_act_after_signup():
    world = wm.build_world(TINY)
    out = wm.simulate_batch(world, np.arange(0, 300))
    events = out["events"]
    known = (events["item"] >= 0) & (events["item"] < len(world.catalogue))
    assert np.all(events["t"][known] >= world.catalogue.created_day[events["item"][known]])
    signup = out["users"]["t"][events["user"]]
    assert np.all(events["t"] >= signup) and np.all((events["t"] >= 0) & (events["t"] < TINY.days))


def test_dirty_kinds_fit_the_event_type():
    kinds_of = {}
    for event_type in (wm.VIEW, wm.CART, wm.PURCHASE, wm.SEARCH):
        kinds = wm.dirty_event_kinds(1, 0.5, np.arange(4000), np.zeros(4000, dtype=int),
                                     np.full(4000, event_type))
        assert 0.45 < (kinds >= 0).mean() < 0.55
        kinds_of[event_type] = set(kinds[kinds >= 0])
    assert wm.ZERO_QUANTITY_PURCHASE in kinds_of[wm.PURCHASE]
    assert wm.ZERO_QUANTITY_PURCHASE not in kinds_of[wm.VIEW] | kinds_of[wm.SEARCH]
    assert kinds_of[wm.SEARCH] == set(wm.DIRTY_KINDS_BY_TYPE[wm.SEARCH])


# ---------------------------------------------------------------------------------------------
# One generated landing (Spark)


def read_file(path: Path) -> pd.DataFrame:
    """Return one landing file as pandas: CSV as text, JSON lines as parsed, Parquet typed (UTC, tz-naive)."""
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    frame = pd.read_parquet(path)
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


def landing_files(landing: Path, source: str) -> list[Path]:
    return sorted(p for p in (landing / source).iterdir() if not p.name.startswith((".", "_")))


def snapshot(landing: Path) -> dict[str, list[tuple[str, ...]]]:
    """Return every source's rows as sorted tuples of text (the content, whatever the file order)."""
    out = {}
    for source in SOURCES:
        frames = [read_file(p).astype(object) for p in landing_files(landing, source)]
        rows = pd.concat(frames, ignore_index=True)
        out[source] = sorted(tuple("" if pd.isna(v) else str(v) for v in row) for row in rows.itertuples(index=False))
    return out


def mtimes(landing: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in landing.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """The generated landing of a 500-user world, read back with pandas, plus its truth."""
    root = tmp_path_factory.mktemp("world") / "lakehouse"
    cfg = load_config("local", overrides=list(WORLD_OVERRIDES), conf_dir=REPO / "conf",
                      environ={"PROMOLAKE_HOME": str(root), "PROMOLAKE_PII_SALT": "test-salt"})
    report = run_generate(spark, cfg, report=StageReport("generate", out=io.StringIO()))
    landing, truth = Path(cfg.landing.root), Path(cfg.world.truth_root)
    parquet_events = [read_file(p) for p in landing_files(landing, "events") if p.suffix == ".parquet"]
    return SimpleNamespace(
        spark=spark, cfg=cfg, report=report, landing=landing, snapshot=snapshot(landing), mtimes=mtimes(landing),
        src={s: pd.concat([read_file(p) for p in landing_files(landing, s)], ignore_index=True) for s in SOURCES},
        events=pd.concat(parquet_events, ignore_index=True),
        truth={t: pd.read_parquet(truth / t) for t in ("users", "exposures", "category_trends", "dirty_records")},
        start=pd.Timestamp(cfg.world.start_date),
        end=pd.Timestamp(cfg.world.start_date) + pd.Timedelta(days=cfg.world.days))


def clean_events(world) -> pd.DataFrame:
    """Parquet events without the injected bad records."""
    bad = set(world.truth["dirty_records"]["record_key"])
    return world.events[~world.events["event_id"].isin(bad)].drop_duplicates()


def test_every_source_has_exactly_the_contract_columns_in_its_format(world):
    for source, spec in SOURCES.items():
        files = landing_files(world.landing, source)
        assert files, source
        for path in files:
            assert re.fullmatch(rf"{source}-\d{{5}}\.\w+", path.name) and path.suffix in EXTENSIONS[source], path
            assert list(read_file(path).columns) == spec.columns, path
    months = world.events["event_ts"].dt.strftime("%Y-%m").nunique()
    assert len([p for p in landing_files(world.landing, "events") if p.suffix == ".parquet"]) == months == 4
    schema = pq.read_schema(next(p for p in landing_files(world.landing, "events") if p.suffix == ".parquet"))
    assert str(schema.field("event_ts").type) == "timestamp[us, tz=UTC]"
    types = [str(schema.field(c).type) for c in ("quantity", "unit_price", "discount_amount")]
    assert types == ["int32", "double", "double"]
    exposures = pq.read_schema(landing_files(world.landing, "exposures")[0])
    assert str(exposures.field("exposed_ts").type) == "timestamp[us, tz=UTC]"
    written = [r["source"] for r in world.report.rows]
    assert sorted(written[:8]) == sorted(SOURCES) and written[8:] == [f"truth/{t}" for t in TRUTH_TABLES]


def test_keys_are_unique_except_the_injected_duplicate_events(world):
    for source, spec in SOURCES.items():
        rows = world.src[source]
        duplicated = rows.duplicated(list(spec.keys), keep="first").sum()
        expected = (world.truth["dirty_records"]["kind"] == "duplicate_event_id").sum() if source == "events" else 0
        assert duplicated == expected, source
    copies = world.events[world.events.duplicated("event_id", keep=False)]
    assert len(copies) == 2 * len(copies.drop_duplicates()) > 0  # exact copies, not conflicting rows


def test_references_resolve_for_clean_records(world):
    users, items = set(world.src["users"]["user_id"]), set(world.src["items"]["item_id"])
    events = clean_events(world)
    assert set(events["user_id"]) <= users
    assert set(events["item_id"].dropna()) <= items
    assert events["item_id"].isna().equals(events["event_type"] == "search")
    assert set(world.src["reviews"]["user_id"]) <= users and set(world.src["reviews"]["item_id"]) <= items
    campaigns = set(world.src["campaigns"]["campaign_id"])
    for source in ("exposures", "redemptions", "campaign_items"):
        assert set(world.src[source]["campaign_id"]) <= campaigns, source
    assert set(world.src["campaign_items"]["item_id"]) <= items
    assert set(world.src["exposures"]["user_id"]) | set(world.src["redemptions"]["user_id"]) <= users


def test_timestamps_are_utc_inside_the_period(world):
    ts = world.events["event_ts"]
    assert ts.min() >= world.start and ts.max() < world.end
    for source, column in (("reviews", "review_ts"), ("redemptions", "redeemed_ts"), ("campaigns", "start_ts"),
                           ("campaigns", "end_ts"), ("users", "signup_ts"), ("items", "created_ts")):
        text = world.src[source][column]
        assert text.str.fullmatch(ISO.pattern).all(), (source, column)
        if source not in ("users", "items"):
            parsed = pd.to_datetime(text).dt.tz_localize(None)
            assert parsed.min() >= world.start and parsed.max() < world.end, (source, column)
    exposed = world.src["exposures"]["exposed_ts"]
    assert exposed.min() >= world.start and exposed.max() < world.end
    created = pd.to_datetime(world.src["items"]["created_ts"]).dt.tz_localize(None)
    assert 0.05 < (created >= world.start).mean() < 0.3  # some items launch during the period


def test_new_items_are_not_seen_before_they_exist(world):
    created = pd.to_datetime(world.src["items"].set_index("item_id")["created_ts"]).dt.tz_localize(None)
    events = clean_events(world).dropna(subset=["item_id"])
    assert (events["event_ts"].to_numpy() >= created.loc[events["item_id"]].to_numpy()).all()


def test_campaigns_cover_every_offer_type_and_scope(world):
    campaigns, items = world.src["campaigns"], world.src["items"].set_index("item_id")
    assert set(campaigns["offer_type"]) == set(OFFER_TYPES)
    pct = campaigns[campaigns["offer_type"] == "percent_off"]
    assert set(pct["value"].astype(float)) <= {10.0, 20.0, 30.0}
    by_category = pct[pct["scope"] == "category"]
    assert set(by_category["scope_value"]) <= set(items["category"])
    by_item = campaigns[campaigns["scope"] == "item"]
    assert len(by_item) and by_item["scope_value"].isna().all()
    assert set(by_item["campaign_id"]) <= set(world.src["campaign_items"]["campaign_id"])
    gifts = campaigns[campaigns["offer_type"] == "gift"]
    assert gifts["min_spend"].notna().all()
    assert np.allclose(gifts["value"].astype(float), items.loc[gifts["scope_value"], "list_price"].astype(float))
    assert campaigns.loc[campaigns["offer_type"].isin(["amount_off", "spend_threshold"]), "scope"].eq("basket").all()
    window = pd.to_datetime(campaigns["end_ts"]) - pd.to_datetime(campaigns["start_ts"])
    assert (window == pd.Timedelta(days=world.cfg.world.campaign_days)).all()


def test_exposures_have_randomized_arms_and_redemptions_belong_to_treated_users(world):
    x = world.src["exposures"]
    treated = x["arm"] == "treatment"
    assert x.loc[~treated, "offer_id"].isna().all() and x.loc[treated, "offer_id"].notna().all()
    assert np.allclose(x.loc[treated, "propensity"], 0.5) and np.allclose(x.loc[~treated, "propensity"], 0.5)
    assert (x.loc[treated, "offer_id"].str[:4] == x.loc[treated, "campaign_id"]).all()
    signup = pd.to_datetime(world.src["users"].set_index("user_id")["signup_ts"]).dt.tz_localize(None)
    assert (signup.loc[x["user_id"]] < world.start).all()
    r = world.src["redemptions"].merge(x, on=["campaign_id", "user_id"], suffixes=("", "_exposure"))
    assert len(r) == len(world.src["redemptions"]) > 0
    assert (r["arm"] == "treatment").all() and (r["offer_id"] == r["offer_id_exposure"]).all()
    purchases = world.src["events"].query("event_type == 'purchase'")
    orders = purchases.groupby("order_id")["user_id"].first()
    redeemed = world.src["redemptions"]
    assert set(redeemed["order_id"]) <= set(world.src["events"]["order_id"].dropna())
    known = redeemed[redeemed["order_id"].isin(orders.index)]
    assert len(known) > 0.9 * len(redeemed)
    assert (orders.loc[known["order_id"]].fillna("").to_numpy() != known["user_id"].to_numpy()).sum() <= 2


def test_treated_users_buy_and_redeem_more_than_controls(world):
    truth = world.truth["exposures"]
    rate = truth.groupby("arm")["bought"].mean()
    assert rate["treatment"] > rate["control"] + 0.05
    assert (truth["p1"] >= truth["p0"]).all() and np.allclose(truth["uplift"], truth["p1"] - truth["p0"])
    assert not truth.loc[truth["arm"] == "control", "redeemed"].any()
    assert truth.loc[truth["arm"] == "treatment", "redeemed"].mean() > 0.05
    x = world.src["exposures"].merge(world.src["campaigns"].drop_duplicates("campaign_id"), on="campaign_id")
    buys = clean_events(world).query("event_type == 'purchase'")[["user_id", "event_ts"]]
    joined = x.merge(buys, on="user_id", how="left")
    end = pd.to_datetime(joined["end_ts"]).dt.tz_localize(None)
    joined["in_window"] = (joined["event_ts"] >= joined["exposed_ts"]) & (joined["event_ts"] < end)
    bought = joined.groupby(["campaign_id", "user_id", "arm"])["in_window"].any().groupby("arm").mean()
    assert bought["treatment"] > bought["control"] + 0.05


def test_rising_categories_gain_purchases_relative_to_falling_ones(world):
    items = world.src["items"].set_index("item_id")
    buys = clean_events(world).query("event_type == 'purchase'")
    category = items.loc[buys["item_id"], "category"].to_numpy()
    day = (buys["event_ts"] - world.start).dt.days.to_numpy()
    label = world.truth["category_trends"].set_index("category")["label"].loc[category].to_numpy()
    third = world.cfg.world.days / 3

    def growth(name):
        return ((label == name) & (day >= 2 * third)).sum() / ((label == name) & (day < third)).sum()

    assert growth("rising") > 1.4 * growth("falling")


def test_many_users_buy_the_same_items_again(world):
    buys = clean_events(world).query("event_type == 'purchase' and unit_price > 0")
    pairs = buys.groupby(["user_id", "item_id"]).size()
    assert (pairs >= 2).mean() > 0.1
    quantity = buys["quantity"]
    assert (quantity >= 1).all() and (quantity > 1).any()
    list_price = world.src["items"].set_index("item_id")["list_price"].astype(float).loc[buys["item_id"]].to_numpy()
    assert np.allclose(buys["discount_amount"], (list_price - buys["unit_price"]) * quantity, atol=0.011)
    assert (buys["unit_price"] < list_price).any()  # weekly sales and percent-off offers


def test_review_text_sentiment_follows_the_rating(world):
    positive = {"excellent", "perfect", "love", "good", "nice", "solid", "happy", "recommend", "fantastic", "worth"}
    negative = {"terrible", "awful", "useless", "disappointing", "poor", "mediocre", "waste", "broke", "cheap", "stay"}
    reviews = world.src["reviews"][world.src["reviews"]["rating"].between(1, 5)]
    words = reviews["review_text"].str.lower().str.findall(r"[a-z]+")
    score = words.map(lambda w: len(positive.intersection(w)) - len(negative.intersection(w)))
    assert np.corrcoef(score, reviews["rating"])[0, 1] > 0.7
    assert reviews["rating"].nunique() >= 4


def test_weekends_are_busier_and_views_have_a_long_tail(world):
    events = clean_events(world)
    per_day = events.groupby(events["event_ts"].dt.normalize()).size()
    weekend = per_day.index.dayofweek >= 5
    assert per_day[weekend].mean() > 1.15 * per_day[~weekend].mean()
    views = events.query("event_type == 'view'")["item_id"].value_counts()
    top = views.iloc[: len(world.src["items"]) // 10].sum()
    assert top / views.sum() > 0.3


def test_search_queries_use_catalogue_words(world):
    searches = clean_events(world).query("event_type == 'search'")
    assert searches["query_text"].notna().all() and searches["item_id"].isna().all()
    vocabulary = {w for t in world.src["items"]["title"].str.lower() for w in t.split()} | {"cheap"}
    assert all(set(q.split()) <= vocabulary for q in searches["query_text"])
    assert searches["query_text"].str.startswith("cheap ").any()


def test_injected_dirty_records_are_in_the_landing_as_recorded(world):
    truth = world.truth["dirty_records"]
    counts = truth.groupby("kind").size()
    assert set(counts.index) == set(wm.DIRTY_KINDS) and (counts > 0).all()
    events = world.src["events"]
    items = set(world.src["items"]["item_id"])
    found = {
        "unknown_event_type": ~events["event_type"].isin(EVENT_TYPES),
        "negative_unit_price": pd.to_numeric(events["unit_price"]) < 0,
        "bad_timestamp": pd.to_datetime(events["event_ts"].astype(str), errors="coerce", format="ISO8601").isna(),
        "missing_user_id": events["user_id"].isna(),
        "zero_quantity_purchase": (events["event_type"] == "purchase") & (pd.to_numeric(events["quantity"]) == 0),
        "unknown_item_id": events["item_id"].notna() & ~events["item_id"].isin(items),
    }
    for kind, mask in found.items():
        keys = set(truth.loc[truth["kind"] == kind, "record_key"])
        assert set(events.loc[mask, "event_id"]) == keys and len(keys) == mask.sum(), kind
    assert len(events) - events["event_id"].nunique() == counts["duplicate_event_id"]
    ratings = world.src["reviews"]["rating"]
    bad = set(world.src["reviews"].loc[~ratings.between(1, 5), "review_id"])
    assert bad == set(truth.loc[truth["kind"] == "rating_out_of_range", "record_key"])
    assert set(ratings[~ratings.between(1, 5)]) <= {0, 7}


def test_truth_describes_users_and_exposures(world):
    users = world.truth["users"]
    assert len(users) == len(world.src["users"]) and set(users["user_id"]) == set(world.src["users"]["user_id"])
    taste_sums = users["taste"].map(lambda m: sum(v for _, v in m))
    assert np.allclose(taste_sums, 1.0)
    assert users["staple_items"].map(len).gt(0).mean() > 0.2
    assert (users["staple_items"].map(len) == users["staple_periods"].map(len)).all()
    keys = ["campaign_id", "user_id", "arm", "offer_id"]
    landing = world.src["exposures"][keys].fillna("").sort_values(keys).reset_index(drop=True)
    truth = world.truth["exposures"][keys].fillna("").sort_values(keys).reset_index(drop=True)
    assert landing.equals(truth)
    assert set(world.truth["category_trends"]["label"]) == {"rising", "flat", "falling"}


def test_second_run_skips_and_force_regenerates_the_same_world(world):
    again = run_generate(world.spark, world.cfg, report=StageReport("generate", out=io.StringIO()))
    assert any("already generated" in n for n in again.notes) and not again.rows
    assert mtimes(world.landing) == world.mtimes
    forced = run_generate(world.spark, world.cfg, force=True, report=StageReport("generate", out=io.StringIO()))
    assert [r["source"] for r in forced.rows] == [r["source"] for r in world.report.rows]
    after = mtimes(world.landing)
    assert after.keys() == world.mtimes.keys()
    assert all(after[p] > world.mtimes[p] for p in after)
    assert snapshot(world.landing) == world.snapshot
