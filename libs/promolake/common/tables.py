"""Every table promolake writes: its logical name, layer, key, schema and documentation.

Logical names are "<layer>.<name>" (silver.events); promolake.common.lake maps them to storage.
Schemas here are checked before every write, and the descriptions become table and column comments.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from promolake.landing.contract import SOURCES, Field, Source

S, TS = T.StringType(), T.TimestampType()


@dataclass(frozen=True)
class TableSpec:
    """A table's identity and declared schema; `keys` identify a row (used by MERGE)."""

    layer: str
    name: str
    fields: tuple[Field, ...]
    keys: tuple[str, ...]
    doc: str
    partition_by: tuple[str, ...] = ()

    @property
    def logical_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def schema(self) -> T.StructType:
        return T.StructType([T.StructField(f.name, f.dtype, True, {"comment": f.doc}) for f in self.fields])


BRONZE_META = (
    Field("_extra", S, doc="Columns the contract does not name, as a JSON object (schema drift)."),
    Field("_corrupt_record", S, doc="The raw line when the file record could not be parsed at all."),
    Field("_source_file", S, doc="File the record came from."),
    Field("_source_format", S, doc="parquet, csv or json."),
    Field("_file_mtime", TS, doc="Modification time of the source file."),
    Field("_ingest_run_id", S, doc="Ingestion run that read the file (sortable: UTC time + random suffix)."),
    Field("_ingested_at", TS, doc="When the record was read."),
    Field("_bronze_id", S, doc="Identifier of this raw record, unique in the table."),
)
SILVER_META = (
    Field("_source_file", S, doc="File the accepted record came from."),
    Field("_file_mtime", TS, doc="Modification time of that file; a newer file's record wins."),
    Field("_ingest_run_id", S, doc="Ingestion run that accepted the record."),
    Field("_ingested_at", TS, doc="When it was accepted."),
    Field("_record_hash", S, doc="SHA-256 of the typed values; unchanged records are not rewritten."),
)


def _bronze(source: Source) -> TableSpec:
    raw = tuple(Field(f.name, S, doc=f"As delivered (text). {f.doc}") for f in silver_fields(source))
    return TableSpec("bronze", source.name, raw + BRONZE_META, ("_bronze_id",),
                     f"Raw {source.name} records as delivered, append-only; personal-data columns hashed. {source.doc}")


def silver_fields(source: Source) -> tuple[Field, ...]:
    """Typed contract columns with personal data replaced by <name>_hash."""
    out = []
    for f in source.fields:
        if f.pii:
            out.append(Field(f"{f.name}_hash", S, doc=f"Salted SHA-256 of {f.name} (lower-cased, trimmed)."))
        else:
            out.append(f)
    return tuple(out)


def _silver(source: Source) -> TableSpec:
    return TableSpec("silver", source.name, silver_fields(source) + SILVER_META, source.keys,
                     f"{source.doc} Typed, validated against the landing contract, de-duplicated by "
                     f"({', '.join(source.keys)}); rejected records are in silver.quarantine.")


QUARANTINE = TableSpec("silver", "quarantine", (
    Field("source", S, doc="Landing source the record came from."),
    Field("rule", S, doc="First contract rule the record broke (see docs/data-contract.md)."),
    Field("rules", T.ArrayType(S), doc="Every rule the record broke."),
    Field("raw_record", S, doc="The record as delivered, as JSON (personal data hashed)."),
    Field("_source_file", S, doc="File the record came from."),
    Field("_bronze_id", S, doc="The raw record in bronze.<source> (unique per source)."),
    Field("_ingest_run_id", S, doc="Ingestion run that rejected it."),
    Field("quarantined_at", TS, doc="When it was rejected."),
), ("source", "_bronze_id"), "Records that broke the landing contract, one row per rejected record, with the rule broken.")

INGEST_RUNS = TableSpec("ops", "ingest_runs", (
    Field("run_id", S, doc="Ingestion run."),
    Field("source", S, doc="Landing source."),
    Field("files", T.LongType(), doc="New files read into bronze."),
    Field("rows_read", T.LongType(), doc="Bronze rows processed into silver by this run."),
    Field("rows_accepted", T.LongType(), doc="Rows accepted into silver (new, changed or unchanged)."),
    Field("rows_quarantined", T.LongType(), doc="Rows written to silver.quarantine."),
    Field("rules", T.MapType(S, T.LongType()), doc="Quarantined rows per rule."),
    Field("rows_retried", T.LongType(), doc="Earlier quarantined orphan records checked again (late-arriving "
          "references); not part of rows_read."),
    Field("rows_released", T.LongType(), doc="Retried records that now passed: moved from quarantine to silver."),
    Field("last_bronze_run_id", S, doc="Newest bronze run applied to silver by this run: the source's "
          "silver watermark is the largest value over all runs."),
    Field("finished_at", TS, doc="When the source finished."),
), ("run_id", "source"), "Ingestion audit log and silver watermark: one row per run and source; "
   "rows_read = rows_accepted + rows_quarantined.")

# ----- gold ------------------------------------------------------------------------------------
D, I, L, DBL, B = T.DateType(), T.IntegerType(), T.LongType(), T.DoubleType(), T.BooleanType()
SHARES = T.MapType(S, DBL)
WINDOWS = (7, 30, 90, 365)  # days; the windowed columns below are named <metric>_<w>d
AS_OF = Field("as_of", D, doc="Features are as of the start of this day (00:00 UTC): only data strictly "
              "before it was used.")
COMPUTED_AT = Field("computed_at", TS, doc="When the row was computed.")


def _windowed(metric: str, dtype: T.DataType, doc: str) -> tuple[Field, ...]:
    return tuple(Field(f"{metric}_{w}d", dtype, doc=f"{doc} in the {w} days before as_of.") for w in WINDOWS)


USER_PROFILE = TableSpec("gold", "user_profile", (
    Field("user_id", S, doc="User."),
    AS_OF,
    Field("region", S, doc="From silver.users."),
    Field("age_band", S, doc="From silver.users."),
    Field("gender", S, doc="From silver.users."),
    Field("tenure_days", I, doc="Days from signup to as_of (null when the signup time is unknown)."),
    Field("recency_days", I, doc="Days from the last purchase to as_of (null: never bought)."),
    Field("days_since_last_event", I, doc="Days from the last event of any type to as_of (null: none)."),
    *_windowed("orders", L, "Distinct orders"),
    *_windowed("units", L, "Units bought"),
    *_windowed("spend", DBL, "Money spent (unit_price x quantity)"),
    *_windowed("events", L, "Events of any type (view, cart, purchase, search)"),
    Field("avg_order_value", DBL, doc="spend_365d / orders_365d (null: no order)."),
    Field("avg_basket_units", DBL, doc="units_365d / orders_365d (null: no order)."),
    Field("category_spend_share", SHARES, doc="Top-N categories by share of the user's 365-day spend "
          "(shares of the total over all categories, so the full map sums to 1)."),
    Field("category_interaction_share", SHARES, doc="Top-N categories by share of the user's 365-day "
          "item events (view, cart, purchase)."),
    Field("brand_spend_share", SHARES, doc="Top-N brands by share of 365-day spend."),
    Field("brand_interaction_share", SHARES, doc="Top-N brands by share of 365-day item events."),
    Field("top_category", S, doc="Category with the largest interaction share (ties: larger spend, then name)."),
    Field("discount_unit_share", DBL, doc="Share of units bought (365 days, paid lines) that carried a discount."),
    Field("avg_discount_depth", DBL, doc="On discounted paid lines: discount / list value (unit_price x "
          "quantity + discount_amount), value-weighted."),
    Field("paid_to_list_ratio", DBL, doc="Money paid / list value over all paid lines of 365 days (1: never "
          "paid less than list)."),
    Field("price_index", DBL, doc="Mean of (item list price / median list price of its category) over the "
          "user's 365-day views, carts and purchases: below 1 means the user goes for the cheaper items "
          "(views count too: they are 5x more numerous than purchases and show the same choice)."),
    Field("offers_received", L, doc="Treatment exposures to campaign offers before as_of."),
    Field("offers_redeemed", L, doc="Redemptions before as_of."),
    Field("redemption_rate", DBL, doc="offers_redeemed / offers_received (null: no offer received)."),
    Field("offers_received_by_type", T.MapType(S, L), doc="offers_received per offer_type."),
    Field("redemption_rate_by_type", SHARES, doc="Redemptions / exposures per offer_type received."),
    Field("control_exposures", L, doc="Times the user was held out in a campaign's control arm."),
    Field("days_since_last_offer", I, doc="Days from the last treatment exposure to as_of (null: never)."),
    Field("events_prev_30d", L, doc="Events in the 30 days before the last 30 (days 31-60 before as_of)."),
    Field("activity_trend", DBL, doc="(events_30d - events_prev_30d) / (events_30d + events_prev_30d), in "
          "[-1, 1]; null when both are 0."),
    Field("spend_trend", DBL, doc="The same ratio for spend (last 30 days vs the 30 before)."),
    Field("review_count", L, doc="Reviews written before as_of."),
    Field("mean_rating", DBL, doc="Mean stars of those reviews."),
    Field("negative_review_share", DBL, doc="Share of those reviews with at most features.negative_rating_max stars."),
    Field("user_text", S, doc="What the language model reads about the user: recent searches, titles bought, "
          "titles viewed and review snippets, each newest first, bounded by features.user_text."),
    Field("segment", I, doc="k-means segment of the numeric profile, numbered by ascending mean 365-day "
          "spend (0: lowest). Numbers are per as_of, not stable across dates."),
    Field("segment_name", S, doc="The segment's most distinctive traits in words (largest centroid z-scores)."),
    COMPUTED_AT,
), ("user_id", "as_of"), "One row per user (signed up before as_of) per as_of date: recency/frequency/"
   "monetary windows, affinities, price sensitivity, coupon history, trends, reviews, text and segment.",
    partition_by=("as_of",))

ITEM_PROFILE = TableSpec("gold", "item_profile", (
    Field("item_id", S, doc="Item."),
    AS_OF,
    Field("category", S, doc="From silver.items."),
    Field("subcategory", S, doc="From silver.items."),
    Field("brand", S, doc="From silver.items."),
    Field("list_price", DBL, doc="Current list price."),
    Field("unit_cost", DBL, doc="Unit cost when known."),
    Field("margin_rate", DBL, doc="(list_price - unit_cost) / list_price; null when the cost is unknown."),
    Field("avg_paid_price", DBL, doc="Revenue / units over paid lines of 365 days (null: not sold)."),
    Field("discount_unit_share", DBL, doc="Share of units sold on discount (365 days, paid lines)."),
    *_windowed("units", L, "Units sold"),
    *_windowed("revenue", DBL, "Revenue (unit_price x quantity)"),
    Field("velocity_7d", DBL, doc="units_7d / 7: units per day."),
    Field("velocity_30d", DBL, doc="units_30d / 30: units per day."),
    Field("units_prev_30d", L, doc="Units sold 31-60 days before as_of."),
    Field("velocity_trend", DBL, doc="(units_30d - units_prev_30d) / (units_30d + units_prev_30d), in "
          "[-1, 1]; null when both are 0."),
    Field("views_30d", L, doc="Views in the 30 days before as_of."),
    Field("conversion_30d", DBL, doc="Purchase events / views over 30 days (null: no views; can exceed 1 when "
          "items are bought without a recorded view)."),
    Field("buyers_365d", L, doc="Distinct buyers in 365 days."),
    Field("repeat_buyer_share", DBL, doc="Share of those buyers with two or more distinct orders of the item."),
    Field("rating_count", L, doc="Reviews of the item before as_of."),
    Field("rating_mean", DBL, doc="Mean stars."),
    Field("review_sentiment", DBL, doc="Mean VADER compound score of the review texts, in [-1, 1] (null: no "
          "review text): a sentiment proxy independent of the stars."),
    Field("item_text", S, doc="What the language model reads about the item: title, category / "
          "subcategory, brand, description; bounded by features.item_text_max_chars."),
    Field("first_seen_ts", TS, doc="When the item appeared: created_ts, else its first event."),
    Field("days_since_first_seen", I, doc="Days from first_seen_ts to as_of."),
    Field("is_new", B, doc="days_since_first_seen below features.new_item_days (cold start)."),
    Field("has_interactions", B, doc="Any view, cart or purchase before as_of (false: collaborative "
          "filtering cannot score it; the text model can)."),
    COMPUTED_AT,
), ("item_id", "as_of"), "One row per listed item per as_of date: price, margin, sales windows, "
   "velocity, buyers, ratings, text and age.", partition_by=("as_of",))

_TREND = (
    Field("units", L, doc="Units sold (purchase lines)."),
    Field("revenue", DBL, doc="Revenue (unit_price x quantity)."),
    Field("buyers", L, doc="Distinct buyers."),
    Field("promo_unit_share", DBL, doc="Share of units sold with a discount (null: no units)."),
)
MARKET_TREND_DAILY = TableSpec("gold", "market_trend_daily", (
    Field("category", S, doc="Category."),
    Field("day", D, doc="Calendar day (UTC); every category has a row for every day, 0 when nothing sold."),
    *_TREND,
    Field("units_ma7", DBL, doc="Mean daily units over the 7 days ending on day."),
    Field("units_ma28", DBL, doc="Mean daily units over the 28 days ending on day."),
    Field("wow_growth", DBL, doc="units_ma7 / units_ma7 seven days earlier - 1 (null: no earlier sales)."),
    Field("growth_4w", DBL, doc="Units of the 28 days ending on day / units of the 28 days before - 1."),
    Field("weekday_index", DBL, doc="Seasonality: mean units on this weekday / mean daily units, over the "
          "trailing features.trend.seasonality_weeks weeks (1: an average day)."),
    Field("trend_growth_28d", DBL, doc="Growth per 28 days of a robust (Theil-Sen) log-linear fit to daily units over the "
          "trailing features.trend.window_days: exp(28 x slope) - 1."),
    Field("trend_flag", S, doc="rising / falling when trend_growth_28d is above / below +-features.trend."
          "threshold, else flat; null until a full window exists."),
    Field("computed_as_of", D, doc="as_of of the run that wrote the row. A row uses only events up to the end "
          "of its day, so any later run writes the same values unless late data arrived."),
), ("category", "day"), "One row per category per day: sales, promotion share, moving averages, growth, "
   "weekday seasonality and the trend flag.")

MARKET_TREND_WEEKLY = TableSpec("gold", "market_trend_weekly", (
    Field("category", S, doc="Category."),
    Field("week_start", D, doc="Monday of the week (complete weeks only: the week ends before as_of)."),
    *_TREND,
    Field("wow_growth", DBL, doc="units / units of the previous week - 1."),
    Field("growth_4w", DBL, doc="Units of the 4 weeks ending with this one / the 4 weeks before - 1."),
    Field("trend_growth_4w", DBL, doc="Growth per 4 weeks of a robust (Theil-Sen) log-linear fit to weekly units over the "
          "trailing features.trend.window_days / 7 weeks."),
    Field("trend_flag", S, doc="rising / flat / falling by features.trend.threshold."),
    Field("computed_as_of", D, doc="as_of of the run that wrote the row."),
), ("category", "week_start"), "One row per category per complete week: sales, promotion share, growth "
   "and trend flag.")

CATEGORY_FORECAST = TableSpec("gold", "category_forecast", (
    Field("category", S, doc="Category."),
    AS_OF,
    Field("week_start", D, doc="Monday of the forecast week."),
    Field("horizon", I, doc="1 for the first week after the last complete week, up to horizon_weeks."),
    Field("forecast", DBL, doc="Forecast units (mean)."),
    Field("lo_80", DBL, doc="Lower bound of the 80% prediction interval."),
    Field("hi_80", DBL, doc="Upper bound of the 80% prediction interval."),
    Field("lo_95", DBL, doc="Lower bound of the 95% prediction interval."),
    Field("hi_95", DBL, doc="Upper bound of the 95% prediction interval."),
    Field("model", S, doc="Chosen exponential-smoothing model (statsmodels ETS), e.g. ETS(A,Ad,N)."),
    Field("backtest_smape", DBL, doc="sMAPE of the same model refit without the last backtest_weeks "
          "weeks and scored on them, in [0, 2]."),
    Field("backtest_mape", DBL, doc="MAPE of that backtest (null when a held-out week sold 0)."),
    Field("naive_smape", DBL, doc="sMAPE of the last-week-repeated forecast on the same backtest weeks."),
    Field("history_weeks", I, doc="Complete weeks the model was fitted on."),
    COMPUTED_AT,
), ("category", "as_of", "week_start"), "Weekly unit-sales forecast per category for the weeks after "
   "as_of, with 80% and 95% prediction intervals and backtest error.", partition_by=("as_of",))

DQ_RESULTS = TableSpec("ops", "dq_results", (
    Field("table_name", S, doc="Logical table checked."),
    AS_OF,
    Field("check_name", S, doc="Check, e.g. not_null:user_id, range:redemption_rate, row_count_change."),
    Field("passed", B, doc="Whether the check passed."),
    Field("observed", DBL, doc="Observed value (violating rows, or the relative row-count change)."),
    Field("expectation", S, doc="What the check expects."),
    Field("message", S, doc="Human-readable result."),
    Field("run_id", S, doc="Features run that checked."),
    Field("checked_at", TS, doc="When."),
), ("table_name", "as_of", "check_name"), "Data-quality results of every gold write: one row per table, "
   "as_of and check; a failed check stops the job before the table is written.")

# ----- ml: collaborative filtering -------------------------------------------------------------
VEC = T.ArrayType(T.FloatType())
ML_AS_OF = Field("as_of", D, doc="Trained on interactions strictly before this day (00:00 UTC).")
MODEL_VERSION = Field("model_version", S, doc="Registered model version that produced the row "
                      "(MLflow registry), e.g. '3'.")

ALS_USER_INDEX = TableSpec("ml", "als_user_index", (
    Field("user_id", S, doc="User."),
    Field("user_idx", I, doc="Dense integer id used by ALS; never changes once assigned."),
    Field("first_as_of", D, doc="Training date at which the index was assigned."),
), ("user_id",), "Integer index of users for ALS. Built once and extended: new users get the next free "
   "numbers, existing users keep theirs.")

ALS_ITEM_INDEX = TableSpec("ml", "als_item_index", (
    Field("item_id", S, doc="Item."),
    Field("item_idx", I, doc="Dense integer id used by ALS; never changes once assigned."),
    Field("first_as_of", D, doc="Training date at which the index was assigned."),
), ("item_id",), "Integer index of items for ALS, extended like als_user_index.")

ALS_USER_FACTORS = TableSpec("ml", "als_user_factors", (
    Field("user_id", S, doc="User."),
    ML_AS_OF,
    Field("user_idx", I, doc="Index from ml.als_user_index."),
    Field("features", VEC, doc="Latent factor vector (length = rank)."),
    Field("interactions", I, doc="Distinct items the user interacted with in the training history."),
    MODEL_VERSION,
    COMPUTED_AT,
), ("user_id", "as_of"), "ALS user factors of the final model of each training date.", partition_by=("as_of",))

ALS_ITEM_FACTORS = TableSpec("ml", "als_item_factors", (
    Field("item_id", S, doc="Item (every catalogue item, trained or not)."),
    ML_AS_OF,
    Field("item_idx", I, doc="Index from ml.als_item_index (null for an item never indexed)."),
    Field("features", VEC, doc="Latent factor vector; null for cold-start items."),
    Field("interactions", I, doc="Distinct users who interacted with the item in the training history."),
    Field("cold_start", B, doc="True when the item had no interactions: ALS cannot score it; the text "
          "model (two-tower) is responsible for it."),
    MODEL_VERSION,
    COMPUTED_AT,
), ("item_id", "as_of"), "ALS item factors, one row per catalogue item; cold-start items are flagged.",
   partition_by=("as_of",))

ALS_CANDIDATES = TableSpec("ml", "als_candidates", (
    Field("user_id", S, doc="User."),
    ML_AS_OF,
    Field("item_id", S, doc="Recommended item."),
    Field("rank", I, doc="1 = best."),
    Field("score", DBL, doc="Dot product of user and item factors (predicted preference)."),
    MODEL_VERSION,
    COMPUTED_AT,
), ("user_id", "as_of", "item_id"), "Top ALS items per user (previously bought items included).",
   partition_by=("as_of",))

USER_CANDIDATES = TableSpec("ml", "user_candidates", (
    Field("user_id", S, doc="User (every active user, including users without history)."),
    ML_AS_OF,
    Field("item_id", S, doc="Candidate item."),
    Field("rank", I, doc="1 = best, by score."),
    Field("score", DBL, doc="Blended score: sum over sources of weight / (rrf_constant + rank in source)."),
    Field("als_rank", I, doc="Rank in the ALS list (null: not in it)."),
    Field("als_score", DBL, doc="ALS score (null: not in the ALS list)."),
    Field("repeat_rank", I, doc="Rank among the user's own past purchases by decayed frequency."),
    Field("repeat_score", DBL, doc="Decayed purchase count of the item by the user."),
    Field("segment_rank", I, doc="Rank in the popularity list of the user's segment."),
    Field("segment_score", DBL, doc="Buyers of the item in the user's segment over popularity_days."),
    Field("popularity_rank", I, doc="Rank in the global popularity list (trend-adjusted for cold users)."),
    Field("popularity_score", DBL, doc="Buyers of the item over popularity_days."),
    Field("text_rank", I, doc="Rank in the text model's list (ml.text_candidates); null: not in it, or the "
                              "row was written by train-als before the text model ran for this date."),
    Field("text_score", DBL, doc="Cosine similarity of the user's and the item's text embeddings."),
    Field("sources", T.ArrayType(S), doc="Sources that proposed the item: als, repeat, segment, popularity, text."),
    Field("cold_start_user", B, doc="True when the user had no interactions: segment, trend and text only."),
    Field("previously_bought", B, doc="True when the user bought the item before as_of."),
    MODEL_VERSION,
    COMPUTED_AT,
), ("user_id", "as_of", "item_id"), "Final candidate items per user, read by the promotion engine: "
   "reciprocal-rank blend of ALS, repeat purchases, segment popularity and global popularity, with the "
   "weights chosen on a time-based validation split; train-text re-blends the date with the text "
   "model's list added (its weight chosen on held-out users).", partition_by=("as_of",))

SIMILAR_ITEMS = TableSpec("ml", "similar_items", (
    Field("item_id", S, doc="Item."),
    ML_AS_OF,
    Field("neighbour_item_id", S, doc="A similar item."),
    Field("rank", I, doc="1 = most similar."),
    Field("similarity", DBL, doc="Cosine similarity of the ALS item factors, in [-1, 1]."),
    MODEL_VERSION,
    COMPUTED_AT,
), ("item_id", "as_of", "neighbour_item_id"), "Item-item neighbours from ALS item factors.",
   partition_by=("as_of",))

RANKING_EVALUATION = TableSpec("ml", "ranking_evaluation", (
    Field("model_name", S, doc="Registered model the evaluation belongs to (e.g. promolake_als)."),
    ML_AS_OF,
    Field("split", S, doc="validation (used for tuning and blend weights) or test (reported)."),
    Field("recommender", S, doc="als, blend, popularity, segment_popularity, repeat; for the text model "
                                "also text and blend_text (the blend with the text list)."),
    Field("view", S, doc="all (every next-period purchase), new (items the user never bought before), "
                         "cold (users without history) or cold_items (items without interactions before T)."),
    Field("metric", S, doc="precision, recall, ndcg, map, hit_rate, coverage, novelty, users, users_with_recs."),
    Field("k", I, doc="Cut-off."),
    Field("value", DBL, doc="Metric value (definitions: promolake.ml.evaluation)."),
    Field("cutoff", D, doc="T: trained on interactions before T, evaluated on purchases in [T, T + horizon)."),
    Field("run_id", S, doc="MLflow run."),
    COMPUTED_AT,
), ("model_name", "as_of", "split", "recommender", "view", "metric"), "Ranking evaluation of each "
   "training run: ALS, the blend and the baselines on both views, out of time.")

TEXT_AS_OF = Field("as_of", D, doc="Texts as of this day: built from events strictly before it.")
USER_TEXT_EMBEDDINGS = TableSpec("ml", "user_text_embeddings", (
    Field("user_id", S, doc="Active user with a user_text."),
    TEXT_AS_OF,
    Field("embedding", VEC, doc="Unit-length user-tower embedding of user_text (cosine = dot product). Encoded at text.embed_precision (auto: bfloat16 where the CPU computes it natively), within about 1e-3 of float32 per coordinate; the text model's pyfunc reproduces it with params={'precision': 'bf16'}."),
    Field("tokens", I, doc="WordPiece tokens of user_text that the model read (after truncation)."),
    MODEL_VERSION,
    COMPUTED_AT,
), ("user_id", "as_of"), "Text embeddings of users (two-tower BERT, user tower).", partition_by=("as_of",))

ITEM_TEXT_EMBEDDINGS = TableSpec("ml", "item_text_embeddings", (
    Field("item_id", S, doc="Catalogue item (created before as_of)."),
    TEXT_AS_OF,
    Field("embedding", VEC, doc="Unit-length item-tower embedding of item_text. Encoded at text.embed_precision (auto: bfloat16 where the CPU computes it natively), within about 1e-3 of float32 per coordinate; the text model's pyfunc reproduces it with params={'precision': 'bf16'}."),
    Field("tokens", I, doc="WordPiece tokens of item_text that the model read."),
    Field("cold_start", B, doc="True when the item had no interactions before as_of (ALS cannot score it)."),
    MODEL_VERSION,
    COMPUTED_AT,
), ("item_id", "as_of"), "Text embeddings of catalogue items (two-tower BERT, item tower).", partition_by=("as_of",))

TEXT_CANDIDATES = TableSpec("ml", "text_candidates", (
    Field("user_id", S, doc="Active user with a user_text."),
    TEXT_AS_OF,
    Field("item_id", S, doc="Candidate item, cold-start items included."),
    Field("rank", I, doc="1 = most similar."),
    Field("score", DBL, doc="Cosine similarity of the user and item embeddings, in [-1, 1]."),
    Field("cold_start_item", B, doc="True when the item had no interactions before as_of."),
    MODEL_VERSION,
    COMPUTED_AT,
), ("user_id", "as_of", "item_id"), "Top items per user by text similarity (two-tower model), including "
   "items without interactions.", partition_by=("as_of",))

PROMO_AS_OF = Field("as_of", D, doc="Scoring date: only data strictly before it was used.")
MODEL_VERSIONS = Field("model_versions", T.MapType(S, S), doc="Registered model name -> version of every "
                       "model that contributed (uplift, ALS and text candidates).")
RUN_IDS = Field("run_ids", T.MapType(S, S), doc="Registered model name -> MLflow run id of that version.")
REASON_CODES = Field("reason_codes", T.ArrayType(S), doc="The features that raised this user's predicted uplift "
                     "the most, in words (e.g. \"high affinity to kitchen\"), strongest first.")

SCORE_RUN_ID = Field("score_run_id", S, doc="The scoring run that wrote the row. A campaign's promo.offer_scores and "
                   "promo.promotion_assignments rows carry the same id when they belong together: the run whose "
                   "scores are in place writes (or re-writes, through a write conflict) the assignments, and a run "
                   "whose scores were replaced by a newer run stops without touching them.")

OFFER_SCORES = TableSpec("promo", "offer_scores", (
    Field("campaign_id", S, doc="Campaign scored."),
    Field("user_id", S, doc="Eligible user."),
    Field("offer_id", S, doc="Offer of the campaign."),
    Field("target", S, doc="What the offer applies to: item id (item-scoped offers, on the user's candidates), "
                           "category name, or 'basket'."),
    PROMO_AS_OF,
    Field("offer_type", S, doc="percent_off, amount_off, spend_threshold or gift."),
    Field("value", DBL, doc="Offer value (percent or currency, as in silver.campaigns)."),
    Field("p_buy_without_offer", DBL, doc="Predicted chance to buy in the target during the window without an "
                                          "offer; null when history had no control arm."),
    Field("p_buy_with_offer", DBL, doc="Predicted chance to buy in the target during the window with the offer."),
    Field("uplift", DBL, doc="p_buy_with_offer - p_buy_without_offer (null without a control arm)."),
    Field("p_redeem", DBL, doc="Predicted chance to redeem: p_buy_with_offer x the learned redeem share."),
    Field("order_value", DBL, doc="Expected spend of an order in the target without the offer."),
    Field("margin_rate", DBL, doc="Gross margin rate used (from unit_cost where known, else config)."),
    Field("expected_cost", DBL, doc="p_redeem x discount of one redemption (promolake.promo.offers)."),
    Field("expected_incremental_profit", DBL, doc="Expected margin with the offer minus without it, minus "
                                                  "expected_cost (promolake.promo.offers)."),
    Field("uplift_source", S, doc="x or t (meta-learner on randomized history) or response (no control arm: "
                                  "every purchase with the offer counted as incremental)."),
    REASON_CODES,
    MODEL_VERSIONS,
    RUN_IDS,
    SCORE_RUN_ID,
    COMPUTED_AT,
), ("campaign_id", "user_id", "offer_id", "target"), "Every eligible (user, offer, target) of a campaign with "
   "its predicted response, uplift, cost and incremental profit; input of the allocation.",
   partition_by=("campaign_id",))

PROMOTION_ASSIGNMENTS = TableSpec("promo", "promotion_assignments", (
    Field("campaign_id", S, doc="Campaign."),
    Field("user_id", S, doc="User."),
    Field("offer_id", S, doc="Offer given; 'none': no offer (control arm, or the policy gave this eligible "
                             "user nothing)."),
    Field("offer_type", S, doc="percent_off, amount_off, spend_threshold, gift; 'none' without an offer."),
    Field("target_type", S, doc="item, category, basket; null for control."),
    Field("target", S, doc="Item id, category name or 'basket'; null for control."),
    Field("value", DBL, doc="Offer value (percent or currency); null for control."),
    Field("expected_uplift", DBL, doc="Predicted uplift of the offer for the user (null for control)."),
    Field("expected_cost", DBL, doc="Expected cost (0 for control)."),
    Field("expected_incremental_profit", DBL, doc="Expected incremental profit (0 for control)."),
    Field("p_redeem", DBL, doc="Predicted chance to redeem (0 for control)."),
    Field("arm", S, doc="policy (chosen by the optimiser), explore (random eligible offer) or control (no offer)."),
    Field("propensity", DBL, doc="Probability that this user got exactly this row's offer (or no offer, for "
                                 "'none' rows) under the randomized policy: for off-policy evaluation. Null only for users drawn "
                                 "for exploration after exploration had spent the whole budget."),
    Field("policy_offer_id", S, doc="The offer the optimiser's policy gives this user ('none': no offer), also "
                                    "for users in the control and exploration arms: with propensity, what "
                                    "inverse-propensity estimates of the policy's value need."),
    REASON_CODES,
    MODEL_VERSIONS,
    RUN_IDS,
    PROMO_AS_OF,
    SCORE_RUN_ID,
    Field("created_at", TS, doc="When the assignment was written."),
), ("campaign_id", "user_id", "offer_id"), "Promotion decisions of a campaign, one row per eligible user (and "
   "offer): who gets which offer, who gets none, the random control and exploration arms, with propensities. "
   "Downstream systems send the rows whose offer_id is not 'none'. A re-run of the campaign replaces its rows "
   "in one commit.", partition_by=("campaign_id",))

CAMPAIGN_RESULTS = TableSpec("promo", "campaign_results", (
    Field("campaign_id", S, doc="Campaign evaluated."),
    Field("offer_id", S, doc="Offer, or 'all' for per-arm and policy-level metrics."),
    Field("arm", S, doc="'offer vs control' (the offer's users against the control arm on the offer's scope), "
                        "an arm (policy, explore, control; treatment for campaigns from silver.exposures), or 'all'."),
    Field("metric", S, doc="conversion, control_conversion, redemption_rate, incremental_conversion, "
                           "incremental_profit_per_user, profit_per_user, ips_policy_profit_per_user, "
                           "ips_no_offer_profit_per_user (definitions: promolake.promo.campaign_eval)."),
    Field("value", DBL, doc="Metric value (probabilities as shares, money in the shop's currency per user)."),
    Field("ci_low", DBL, doc="Lower end of the 95% confidence interval (differences only)."),
    Field("ci_high", DBL, doc="Upper end of the 95% confidence interval (differences only)."),
    Field("users", I, doc="Users behind the value (given the offer, in the arm, or logged)."),
    Field("control_users", I, doc="Control users compared against (offer vs control rows)."),
    Field("source", S, doc="promo.promotion_assignments or silver.exposures: where the logged decisions came from."),
    Field("evaluated_on", D, doc="Day the evaluation ran."),
    COMPUTED_AT,
), ("campaign_id", "offer_id", "arm", "metric"), "Results of a campaign after its window: conversion, "
   "redemption and incremental profit per offer against control with confidence intervals, and "
   "inverse-propensity estimates of the policy's value. Re-evaluating replaces the campaign's rows.")

TABLES: dict[str, TableSpec] = {}
for _src in SOURCES.values():
    for _spec in (_bronze(_src), _silver(_src)):
        TABLES[_spec.logical_name] = _spec
for _spec in (QUARANTINE, INGEST_RUNS, USER_PROFILE, ITEM_PROFILE, MARKET_TREND_DAILY, MARKET_TREND_WEEKLY,
              CATEGORY_FORECAST, DQ_RESULTS, ALS_USER_INDEX, ALS_ITEM_INDEX, ALS_USER_FACTORS, ALS_ITEM_FACTORS,
              ALS_CANDIDATES, USER_CANDIDATES, SIMILAR_ITEMS, RANKING_EVALUATION, USER_TEXT_EMBEDDINGS,
              ITEM_TEXT_EMBEDDINGS, TEXT_CANDIDATES, OFFER_SCORES, PROMOTION_ASSIGNMENTS, CAMPAIGN_RESULTS):
    TABLES[_spec.logical_name] = _spec


def spec(logical_name: str) -> TableSpec:
    try:
        return TABLES[logical_name]
    except KeyError:
        raise KeyError(f"unknown table {logical_name!r}; known: {', '.join(sorted(TABLES))}") from None
