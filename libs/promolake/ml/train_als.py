"""The `als` stage: tune, evaluate, train and register implicit ALS, and write the candidate tables.

Three time cuts, all before as_of (h = als.horizon_days):
  validation  train on interactions before as_of - 2h, judge on purchases in [as_of - 2h, as_of - h):
              the hyper-parameter search (optuna, one MLflow child run per trial) and the blend weights;
  test        train before as_of - h with the chosen settings, judge on [as_of - h, as_of): the
              numbers reported (ALS, blend and the three baselines, both views), never used to choose;
  final       train before as_of: the factors and candidate tables written for as_of.
Users are judged if they had interactions before the cut (warm) and bought in the window; cold users
are counted separately (view `cold`), where only the baselines and the cold blend can answer.
"""
from __future__ import annotations

import datetime as dt
import itertools
import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from promolake.common import tracking
from promolake.common.config import AlsConf, Config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.gold.history import as_of_start
from promolake.ml import candidates as cand
from promolake.ml import interactions as ia
from promolake.ml.als import AlsParams, Factors, choose_engine, factors_to_numpy, fit, indexed
from promolake.ml.evaluation import grouped_ranking_metrics, ranking_metrics
from promolake.ml.topk import similar_items

if TYPE_CHECKING:      # annotations only
    import pandas as pd

VIEWS = ("all", "new", "cold")
RECOMMENDERS = ("als", "blend", "popularity", "segment_popularity", "repeat")


class NoInteractionsError(RuntimeError):
    """Raised when a cut has no interactions or no purchases to learn or judge from."""


@dataclass
class Split:
    """Everything one time cut needs: training interactions, the judged window and the baselines."""

    cutoff: dt.date
    train: DataFrame            # user, item, confidence (indexed)
    pairs: int
    warm_users: DataFrame       # user_id with interactions before the cut
    cold_users: DataFrame       # user_id without interactions who bought in the window
    relevant: dict[str, DataFrame]  # view -> (user_id, item_id)
    seen: DataFrame             # (user_id, item_id) bought before the cut
    segments: DataFrame         # user_id, segment
    popularity: DataFrame       # item_id, rank, score
    segment_popularity: DataFrame  # segment, item_id, rank, score
    repeat: DataFrame           # user_id, item_id, rank, score
    item_popularity: DataFrame  # item_id, p
    catalogue: int

    def unpersist(self) -> None:
        for df in (self.train, self.warm_users, self.seen, self.segments, self.repeat):
            df.unpersist()


def build_split(lake: Lake, cfg: Config, events: DataFrame, cutoff: dt.date, user_index: DataFrame,
                item_index: DataFrame, window_end: dt.date | None) -> Split:
    """The split at `cutoff`; window_end None = the final cut (nothing to judge)."""
    ac = cfg.als
    mem = StorageLevel.MEMORY_AND_DISK
    raw = ia.interactions(events, cutoff, ac.history_days, ac.weights, ac.half_life_days).persist(mem)
    train = indexed(raw, user_index, item_index).persist(mem)
    pairs = train.count()
    if pairs == 0:
        raise NoInteractionsError(f"no interactions in the {ac.history_days} days before {cutoff}")
    warm = raw.select("user_id").distinct().persist(mem)
    n_users = warm.count()
    item_users = raw.groupBy("item_id").agg((F.countDistinct("user_id") / F.lit(n_users)).alias("p"))
    seen = ia.bought_before(events, cutoff).persist(mem)
    relevant, cold = {}, warm.limit(0)
    if window_end is not None:
        bought = ia.purchases_in(events, cutoff, window_end).persist(mem)
        if bought.isEmpty():
            raise NoInteractionsError(f"no purchases in [{cutoff}, {window_end}) to evaluate on")
        relevant = {"all": bought, "new": bought.join(seen, ["user_id", "item_id"], "left_anti")}
        cold = bought.select("user_id").distinct().join(warm, "user_id", "left_anti")
        relevant["cold"] = bought.join(cold, "user_id")
    segments = user_segments(lake, cfg, cutoff).persist(mem)
    catalogue = lake.read("silver.items").where(
        F.col("created_ts").isNull() | (F.col("created_ts") < as_of_start(cutoff))).count()
    return Split(cutoff, train, pairs, warm, cold, relevant, seen, segments,
                 ia.popularity(events, cutoff, ac.popularity_days),
                 ia.popularity(events, cutoff, ac.popularity_days, group=segments),
                 ia.repeat_scores(events, cutoff, ac.history_days, ac.half_life_days, ac.candidates).persist(mem),
                 item_users, catalogue)


def user_segments(lake: Lake, cfg: Config, as_of: dt.date) -> DataFrame:
    """(user_id, segment) as of a date: gold.user_profile's rows for that as_of when the features
    stage wrote them, else the same profile and clustering computed in memory (not written)."""
    if lake.exists("gold.user_profile"):
        stored = lake.read("gold.user_profile").where(F.col("as_of") == F.lit(as_of)).select("user_id", "segment")
        if not stored.isEmpty():
            return stored
    from promolake.gold import segments as seg
    from promolake.gold import user_profile as up
    from promolake.gold.history import prepare_events

    ev = prepare_events(lake.read("silver.events"), lake.read("silver.items"), as_of)
    # the profile is read by the scaler, k-means and the assignment: built once (as the features stage does)
    profile = up.build_user_profile(lake.read("silver.users"), ev, lake.read("silver.exposures"),
                                    lake.read("silver.redemptions"), lake.read("silver.campaigns"),
                                    lake.read("silver.reviews"), as_of, cfg.features).persist(StorageLevel.MEMORY_AND_DISK)
    assigned, _ = seg.assign_segments(profile, cfg.features.segments)
    out = assigned.select("user_id", "segment").persist(StorageLevel.MEMORY_AND_DISK)
    out.count()
    profile.unpersist()
    return out


# ----- recommender lists -----------------------------------------------------------------------

def baseline_lists(split: Split, users: DataFrame, depth: int, exclude_seen: bool) -> dict[str, DataFrame]:
    seen = split.seen if exclude_seen else None
    repeat = split.repeat.join(users.select("user_id"), "user_id")
    return {
        "popularity": cand.global_list(split.popularity, users, depth, seen),
        "segment_popularity": cand.segment_list(split.segment_popularity,
                                                split.segments.join(users.select("user_id"), "user_id"), depth, seen),
        # the user's own past purchases: by construction nothing in the new-to-user view
        "repeat": repeat.join(split.seen, ["user_id", "item_id"], "left_anti") if exclude_seen else repeat,
    }


def lists_for(split: Split, factors: Factors | None, user_index: DataFrame, item_index: DataFrame,
              users: DataFrame, depth: int, view: str, weights: dict[str, float] | None, ac: AlsConf
              ) -> dict[str, DataFrame]:
    """Every recommender's list for `users` in a view (new: previously bought items removed); weights None:
    the component lists only, without the blend."""
    exclude = view == "new"
    lists = baseline_lists(split, users, depth, exclude)
    if factors is not None:
        lists["als"] = cand.als_list(factors.users, factors.items, user_index, item_index, depth,
                                     seen=split.seen if exclude else None, users=users)
    if weights is not None:
        lists["blend"] = blend_of(lists, weights, ac, depth)
    return lists


# blend part -> the component list it fuses (the blend's weights are keyed by part)
BLEND_PARTS = {"als": "als", "repeat": "repeat", "segment": "segment_popularity", "popularity": "popularity"}


def blend_in_group(weights: dict[str, float], ac: AlsConf, parts: dict[str, str] = BLEND_PARTS):
    """The blend of one group's component lists (pandas, for evaluation.grouped_ranking_metrics): the same
    fusion, order and top k as blend_of in Spark. parts: blend part -> component list."""
    def blended(components: dict) -> "pd.DataFrame":
        return cand.blend_local({part: components[src] for part, src in parts.items() if src in components},
                                weights, ac.blend.rrf_constant, ac.k)
    return blended


def component(name: str):
    return lambda components: components[name]


def blend_of(lists: dict[str, DataFrame], weights: dict[str, float], ac: AlsConf, depth: int) -> DataFrame:
    parts = {"als": lists.get("als"), "repeat": lists.get("repeat"),
             "segment": lists.get("segment_popularity"), "popularity": lists.get("popularity")}
    parts = {k: v for k, v in parts.items() if v is not None}
    return cand.blend(parts, weights, ac.blend.rrf_constant, depth).select(*cand.LIST_COLUMNS)


# ----- tuning and blend weights ----------------------------------------------------------------

def tune(spark: SparkSession, split: Split, user_index: DataFrame, item_index: DataFrame, ac: AlsConf,
         engine: str, report: StageReport) -> tuple[AlsParams, list[dict]]:
    """optuna TPE search over rank, reg_param and alpha on the validation split; each trial is an
    MLflow child run with its parameters and metrics. Returns the best parameters and the trials."""
    import mlflow
    import optuna

    tc = ac.tuning
    view = tc.objective_view
    users = split.warm_users
    trials: list[dict] = []

    def objective(trial: "optuna.Trial") -> float:
        params = AlsParams(rank=trial.suggest_int("rank", tc.rank[0], tc.rank[1], log=True),
                           reg_param=trial.suggest_float("reg_param", tc.reg_param[0], tc.reg_param[1], log=True),
                           alpha=trial.suggest_float("alpha", tc.alpha[0], tc.alpha[1], log=True),
                           max_iter=ac.max_iter, seed=ac.seed)
        with mlflow.start_run(run_name=f"trial {trial.number}", nested=True):
            factors = fit(spark, split.train, params, ac, engine=engine, pairs=split.pairs)
            recs = cand.als_list(factors.users, factors.items, user_index, item_index, ac.k,
                                 seen=split.seen if view == "new" else None, users=users)
            m = ranking_metrics(recs, split.relevant[view], users, ac.k, split.catalogue, split.item_popularity)
            mlflow.log_params({**params.as_dict(), "engine": engine, "split": "validation"})
            mlflow.log_metrics({f"{view}_{name}_at_{ac.k}": v for name, v in m.items() if v == v})
            mlflow.log_metric("fit_seconds", factors.fit_seconds)
        value = m[tc.objective]
        trials.append({"trial": trial.number, **params.as_dict(), f"{tc.objective}@{ac.k}_{view}": round(value, 4),
                       "fit_s": round(factors.fit_seconds, 1)})
        report.log(f"trial {trial.number + 1}/{tc.trials}: rank {params.rank}, reg_param {params.reg_param:.4g}, "
                   f"alpha {params.alpha:.3g} -> {tc.objective}@{ac.k} ({view}) {value:.4f} "
                   f"(fit {factors.fit_seconds:.1f}s, {engine})")
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=tc.seed))
    study.enqueue_trial({"rank": ac.rank, "reg_param": ac.reg_param, "alpha": ac.alpha})  # the configured default
    study.optimize(objective, n_trials=tc.trials)
    b = study.best_params
    return AlsParams(b["rank"], b["reg_param"], b["alpha"], ac.max_iter, ac.seed), trials


def choose_weights(split: Split, factors: Factors, user_index: DataFrame, item_index: DataFrame, ac: AlsConf,
                   report: StageReport) -> tuple[dict[str, float], list[dict]]:
    """Grid over the blend weights (ALS's weight 1) on the validation split: the best NDCG@k on the
    all-purchases view among the weightings whose new-to-user NDCG@k is at least ALS's own.

    Each view's component lists are computed once and every weighting is fused and scored per group of
    users in pandas (evaluation.grouped_ranking_metrics): nothing proportional to users reaches the driver.
    """
    depth = ac.blend.pool
    grid = list(itertools.product(ac.blend.repeat_weights, ac.blend.segment_weights, ac.blend.popularity_weights))
    weightings = [{"als": 1.0, "repeat": wr, "segment": ws, "popularity": wp} for wr, ws, wp in grid]
    ndcg = {}
    for view in ("all", "new"):
        components = lists_for(split, factors, user_index, item_index, split.warm_users, depth, view, None, ac)
        lists = {"als": component("als"), **{f"w{n}": blend_in_group(w, ac) for n, w in enumerate(weightings)}}
        scored = grouped_ranking_metrics(components, split.relevant[view], split.warm_users, ac.k, split.catalogue,
                                         lists)
        ndcg[view] = {name: m["ndcg"] for name, m in scored.items()}
    als_new = ndcg["new"]["als"]
    rows, best, best_key = [], None, None
    for n, weights in enumerate(weightings):
        got = {view: ndcg[view][f"w{n}"] for view in ("all", "new")}
        ok = got["new"] >= als_new - 1e-12
        rows.append({**weights, "ndcg_all": round(got["all"], 4), "ndcg_new": round(got["new"], 4), "eligible": ok})
        key = (ok, got["all"])
        if best_key is None or key > best_key:
            best, best_key = weights, key
    report.log(f"blend weights: {len(grid)} weightings scored on the validation split; ALS alone ndcg@{ac.k} "
               f"(new) {als_new:.4f}; chosen {best} -> all {best_key[1]:.4f}")
    return best, rows


# ----- the stage -------------------------------------------------------------------------------

def update_index(lake: Lake, raw_ids: DataFrame, id_col: str, table: str, as_of: dt.date) -> DataFrame:
    """Extend the stored index with the ids it lacks and return the whole index (cached)."""
    idx_col = id_col.replace("_id", "_idx")
    existing = lake.read(table) if lake.exists(table) else None
    new = ia.extend_index(existing, raw_ids, id_col, idx_col, as_of)
    if existing is None or not new.isEmpty():
        lake.upsert(new, table, insert_only=True)
    return lake.read(table).select(id_col, idx_col).persist(StorageLevel.MEMORY_AND_DISK)


def run_als(spark: SparkSession, cfg: Config, as_of: dt.date | None = None,
            report: StageReport | None = None) -> StageReport:
    import mlflow

    from promolake.gold.features import default_as_of

    lake = Lake(spark, cfg.lake)
    report = report or StageReport("als")
    ac = cfg.als
    with report:
        as_of = as_of or default_as_of(lake)
        h = dt.timedelta(days=ac.horizon_days)
        val_cut, test_cut = as_of - 2 * h, as_of - h
        report.log(f"as_of {as_of}: validation cut {val_cut}, test cut {test_cut}, horizon {ac.horizon_days} days")
        events = (lake.read("silver.events").where(F.col("event_ts") < as_of_start(as_of))
                  .select("user_id", "item_id", "event_type", "event_ts").persist(StorageLevel.MEMORY_AND_DISK))
        history = events.where(F.col("event_ts") >= as_of_start(as_of - dt.timedelta(days=ac.history_days + 2 * h.days)))
        user_index = update_index(lake, history.select("user_id"), "user_id", "ml.als_user_index", as_of)
        item_index = update_index(lake, lake.read("silver.items").select("item_id")
                                  .unionByName(history.where(F.col("item_id").isNotNull()).select("item_id")),
                                  "item_id", "ml.als_item_index", as_of)
        report.log(f"index: {user_index.count():,} users, {item_index.count():,} items")
        tracking.setup(cfg.mlflow, cfg.retries)
        with mlflow.start_run(run_name=f"als {as_of}") as run:
            mlflow.set_tags({"promolake.stage": "als", "promolake.as_of": str(as_of)})
            # validation: choose parameters and blend weights
            val = build_split(lake, cfg, events, val_cut, user_index, item_index, test_cut)
            engine = choose_engine(ac, val.pairs)
            report.log(f"validation: {val.pairs:,} (user, item) pairs before {val_cut}; engine {engine}")
            if ac.tune:
                params, trials = tune(spark, val, user_index, item_index, ac, engine, report)
                report.section(f"hyper-parameter search (validation, {len(trials)} trials)", trials)
            else:
                params = AlsParams(ac.rank, ac.reg_param, ac.alpha, ac.max_iter, ac.seed)
            factors = fit(spark, val.train, params, ac, engine=engine, pairs=val.pairs).persist()
            weights, _ = choose_weights(val, factors, user_index, item_index, ac, report)
            factors.unpersist()
            val.unpersist()
            report.log(f"chosen: {params.as_dict()}, blend weights {weights}")
            mlflow.log_params({**{f"als_{k}": v for k, v in params.as_dict().items()},
                               **{f"blend_{k}": v for k, v in weights.items()}, "engine": engine,
                               "horizon_days": ac.horizon_days, "history_days": ac.history_days, "k": ac.k,
                               "as_of": str(as_of), "event_weights": ac.weights.model_dump()})

            # test: the honest numbers
            test = build_split(lake, cfg, events, test_cut, user_index, item_index, as_of)
            factors = fit(spark, test.train, params, ac, engine=engine, pairs=test.pairs).persist()
            results = evaluate_split(test, factors, user_index, item_index, weights, ac, report)
            factors.unpersist()
            test.unpersist()
            for rec, views in results.items():
                for view, m in views.items():
                    mlflow.log_metrics({f"test_{view}_{rec}_{name}_at_{ac.k}": v for name, v in m.items() if v == v})
            report.section(f"ranking evaluation, test split: trained before {test_cut}, purchases in "
                           f"[{test_cut}, {as_of}), k={ac.k}", evaluation_rows(results, ac.k))

            # final model and tables
            final = build_split(lake, cfg, events, as_of, user_index, item_index, None)
            factors = fit(spark, final.train, params, ac, engine=engine, pairs=final.pairs).persist()
            report.log(f"final model: {final.pairs:,} pairs before {as_of}, fit {factors.fit_seconds:.1f}s ({engine})")
            version = log_and_register(lake, factors, user_index, item_index, params, ac, as_of, test_cut)
            write_outputs(spark, lake, cfg, events, final, factors, user_index, item_index, weights, as_of, version,
                          run.info.run_id, results, report)
            tracking.set_alias(ac.model_name, tracking.CHALLENGER, version)
            report.note(f"registered {ac.model_name} version {version} with alias @{tracking.CHALLENGER} "
                        f"(MLflow run {run.info.run_id})")
            factors.unpersist()
            final.unpersist()
        events.unpersist()
    return report


def evaluate_split(split: Split, factors: Factors, user_index: DataFrame, item_index: DataFrame,
                   weights: dict[str, float], ac: AlsConf, report: StageReport) -> dict[str, dict[str, dict]]:
    """{recommender: {view: metrics}} on the split; the cold view has only the non-ALS recommenders."""
    results: dict[str, dict[str, dict]] = {}
    for view in VIEWS:
        cold = view == "cold"
        users = split.cold_users if cold else split.warm_users
        components = lists_for(split, None if cold else factors, user_index, item_index, users, ac.blend.pool,
                               view, None, ac)
        lists = {name: component(name) for name in components if not (cold and name == "repeat")}
        lists["blend"] = blend_in_group(cold_weights(weights) if cold else weights, ac)
        scored = grouped_ranking_metrics(components, split.relevant[view], users, ac.k, split.catalogue, lists,
                                         split.item_popularity)
        for name, m in scored.items():
            results.setdefault(name, {})[view] = m
        summary = ", ".join(f"{n} ndcg {results[n][view]['ndcg']:.4f}" for n in lists)
        report.log(f"evaluated view {view}: {summary}")
    return results


def cold_weights(weights: dict[str, float]) -> dict[str, float]:
    """Users without history: segment popularity first, global (trend-adjusted) popularity next."""
    return {"segment": 1.0, "popularity": max(weights.get("popularity", 0.0), 0.5)}


def evaluation_rows(results: dict[str, dict[str, dict]], k: int) -> list[dict]:
    rows = []
    for view in VIEWS:
        for rec in RECOMMENDERS:
            m = results.get(rec, {}).get(view)
            if m is None:
                continue
            rows.append({"view": view, "recommender": rec, **{f"{n}@{k}": round(m[n], 4) for n in
                         ("precision", "recall", "ndcg", "map", "hit_rate")},
                         "coverage": round(m["coverage"], 4), "novelty": round(m["novelty"], 2),
                         "users": int(m["users"])})
    return rows


def log_and_register(lake: Lake, factors: Factors, user_index: DataFrame, item_index: DataFrame,
                     params: AlsParams, ac: AlsConf, as_of: dt.date, test_cut: dt.date) -> str:
    """Log factors + index as a pyfunc model (signature, input example) and register it; returns the version.
    Tags: as_of, engine, and the holdout window [test_cut, as_of) of the run's test metrics (the
    promotion gate evaluates the champion on the same window)."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from promolake.ml.als_model import AlsRecommender, save_factors

    uid, U = factors_to_numpy(factors.users)
    iid, V = factors_to_numpy(factors.items)
    umap = dict(user_index.toPandas().pipe(lambda p: zip(p.user_idx, p.user_id)))
    imap = dict(item_index.toPandas().pipe(lambda p: zip(p.item_idx, p.item_id)))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "als_factors.npz")
        save_factors(path, [umap[i] for i in uid], U, [imap[i] for i in iid], V, ac.k)
        example = pd.DataFrame({"user_id": [umap[int(i)] for i in uid[:3]], "k": [5] * min(3, len(uid))})
        model = AlsRecommender()
        model.load_context(type("Ctx", (), {"artifacts": {"factors": path}})())
        signature = infer_signature(example, model.predict(None, example))
        info = tracking.log_pyfunc("als_model", python_model=AlsRecommender(),
                                       artifacts={"factors": path}, signature=signature, input_example=example,
                                       code_paths=None)
        mlflow.log_dict({"rank": params.rank, "users": len(uid), "items": len(iid), "as_of": str(as_of)},
                        "als_summary.json")
    return tracking.register(info.model_uri, ac.model_name, tags={
        "as_of": str(as_of), "engine": factors.engine, "holdout_start": str(test_cut), "holdout_end": str(as_of)})


def write_outputs(spark: SparkSession, lake: Lake, cfg: Config, events: DataFrame, final: Split, factors: Factors,
                  user_index: DataFrame, item_index: DataFrame, weights: dict[str, float], as_of: dt.date,
                  version: str, run_id: str, results: dict, report: StageReport) -> None:
    ac = cfg.als
    stamp = [F.lit(version).alias("model_version"), F.current_timestamp().alias("computed_at")]
    day = F.lit(as_of).alias("as_of")

    def write(df: DataFrame, table: str, slice_: dict | None = None) -> None:
        report.record_write(table, lake.upsert(df, table, replace_slice=slice_ or {"as_of": as_of}))

    raw = ia.interactions(events, as_of, ac.history_days, ac.weights, ac.half_life_days)
    user_n = raw.groupBy("user_id").agg(F.count(F.lit(1)).cast("int").alias("interactions"))
    item_n = raw.groupBy("item_id").agg(F.count(F.lit(1)).cast("int").alias("interactions"))
    uf = factors.users.join(user_index, factors.users.id == user_index.user_idx).join(user_n, "user_id")
    write(uf.select("user_id", day, "user_idx", "features", "interactions", *stamp), "ml.als_user_factors")
    items = lake.read("silver.items").select("item_id")
    itf = (items.join(item_index, "item_id", "left")
           .join(factors.items, F.col("item_idx") == F.col("id"), "left").join(item_n, "item_id", "left"))
    write(itf.select("item_id", day, "item_idx", "features",
                     F.coalesce("interactions", F.lit(0)).cast("int").alias("interactions"),
                     F.col("features").isNull().alias("cold_start"), *stamp), "ml.als_item_factors")

    # active users: an event or a signup in the last active_days
    since = as_of_start(as_of - dt.timedelta(days=ac.active_days))
    active = (events.where(F.col("event_ts") >= since).select("user_id")
              .unionByName(lake.read("silver.users").where((F.col("signup_ts") >= since)
                                                           & (F.col("signup_ts") < as_of_start(as_of))).select("user_id"))
              .distinct().persist(StorageLevel.MEMORY_AND_DISK))
    warm_active = active.join(final.warm_users, "user_id")
    cold_active = active.join(final.warm_users, "user_id", "left_anti")
    als = cand.als_list(factors.users, factors.items, user_index, item_index, ac.candidates, users=warm_active) \
        .persist(StorageLevel.MEMORY_AND_DISK)
    write(als.select("user_id", day, "item_id", "rank", "score", *stamp), "ml.als_candidates")

    depth = max(ac.candidates, ac.blend.pool)
    warm_lists = baseline_lists(final, warm_active, depth, exclude_seen=False)
    warm = cand.blend({"als": als, "repeat": warm_lists["repeat"], "segment": warm_lists["segment_popularity"],
                       "popularity": warm_lists["popularity"]}, weights, ac.blend.rrf_constant, ac.candidates)
    trending = trend_adjusted(lake, final.popularity, as_of)
    cold_segments = final.segments.join(cold_active, "user_id")
    cold = cand.blend({"segment": cand.segment_list(final.segment_popularity, cold_segments, depth),
                       "popularity": cand.global_list(trending, cold_active, depth)},
                      cold_weights(weights), ac.blend.rrf_constant, ac.candidates)
    for c in ("als_rank", "repeat_rank"):
        cold = cold.withColumn(c, F.lit(None).cast("int"))
    for c in ("als_score", "repeat_score"):
        cold = cold.withColumn(c, F.lit(None).cast("double"))
    both = warm.withColumn("cold_start_user", F.lit(False)).unionByName(
        cold.withColumn("cold_start_user", F.lit(True)))
    both = both.join(final.seen.withColumn("previously_bought", F.lit(True)), ["user_id", "item_id"], "left")
    # the text columns are filled when train-text re-blends this date
    both = both.withColumn("text_rank", F.lit(None).cast("int")).withColumn("text_score", F.lit(None).cast("double"))
    write(both.select("user_id", day, "item_id", "rank", "score", "als_rank", "als_score", "repeat_rank",
                      "repeat_score", "segment_rank", "segment_score", "popularity_rank", "popularity_score",
                      "text_rank", "text_score", "sources", "cold_start_user", F.coalesce("previously_bought", F.lit(False)).alias("previously_bought"),
                      *stamp), "ml.user_candidates")
    report.log(f"candidates for {warm_active.count():,} warm and {cold_active.count():,} cold active users")

    iidx = item_index.select("item_id", "item_idx")
    sims = similar_items(factors.items, ac.similar_items)
    sims = (sims.join(iidx.withColumnRenamed("item_idx", "item"), "item")
            .join(iidx.select(F.col("item_id").alias("neighbour_item_id"), F.col("item_idx").alias("neighbour")),
                  "neighbour"))
    write(sims.select("item_id", day, "neighbour_item_id", F.col("rank").cast("int"),
                      F.col("similarity").cast("double"), *stamp), "ml.similar_items")

    rows = [(rec, view, name, float(v)) for rec, views in results.items() for view, m in views.items()
            for name, v in m.items()]
    ev = spark.createDataFrame(rows, "recommender string, view string, metric string, value double")
    write(ev.select(F.lit(ac.model_name).alias("model_name"), day, F.lit("test").alias("split"), "recommender", "view",
                    "metric", F.lit(ac.k).alias("k"), "value",
                    F.lit(as_of - dt.timedelta(days=ac.horizon_days)).alias("cutoff"),
                    F.lit(run_id).alias("run_id"), F.current_timestamp().alias("computed_at")),
          "ml.ranking_evaluation", {"model_name": ac.model_name, "as_of": as_of})
    cold_items = lake.read("ml.als_item_factors").where((F.col("as_of") == F.lit(as_of)) & F.col("cold_start")).count()
    report.note(f"{cold_items:,} catalogue items have no interactions (cold_start in ml.als_item_factors): "
                "left to the text model")
    als.unpersist()
    active.unpersist()


def trend_adjusted(lake: Lake, ranked: DataFrame, as_of: dt.date) -> DataFrame:
    """Global popularity re-ranked by the category trend as of as_of (gold.market_trend_daily):
    score x (1 + trend_growth_28d clipped to [-0.5, 1]); unchanged when no trend rows exist."""
    if not lake.exists("gold.market_trend_daily"):
        return ranked
    from promolake.gold.market_trend import latest_trends

    daily = lake.read("gold.market_trend_daily").where(F.col("day") < F.lit(as_of))
    trends = latest_trends(daily).select("category", "trend_growth_28d")
    growth = F.least(F.greatest(F.coalesce("trend_growth_28d", F.lit(0.0)), F.lit(-0.5)), F.lit(1.0))
    scored = (ranked.join(lake.read("silver.items").select("item_id", "category"), "item_id", "left")
              .join(F.broadcast(trends), "category", "left")
              .select("item_id", (F.col("score") * (1 + growth)).alias("score")))
    from pyspark.sql import Window
    return scored.withColumn("rank", F.row_number().over(Window.orderBy(F.desc("score"), "item_id")).cast("int"))
