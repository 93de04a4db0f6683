"""The `train-text` stage: fine-tune the BERT two-tower model, register it, write text embeddings and
text candidates, and re-blend the final candidates with the text list.

Time cuts (h = als.horizon_days, the same horizon as the ALS stage):
  training    pairs (user_text as of T, item bought in [T, T + h)) for the text.training_windows
              windows that end at the test cut (T = as_of - 2h, as_of - 3h, ...); users whose hash falls
              in text.validation_share are held out of training and give the per-epoch validation metrics;
  test        user_text as of as_of - h against purchases in [as_of - h, as_of): ALS alone, text alone,
              the ALS blend and the blend with text, on views all / new / cold_items (items with no
              interactions before the cut). Test-window users are split in two halves by a hash: the text
              weight of the blend is chosen on half A, every reported number comes from half B;
  final       texts as of as_of: embeddings, ml.text_candidates, and ml.user_candidates re-blended.
The model trained before the test cut is the one registered and used for as_of (it has not seen the
last horizon's purchases, which the ALS stage's final fit has): retraining after evaluation would ship
a model whose numbers were never measured.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from promolake.common import tracking
from promolake.common.config import Config, TextConf
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.common.spark import PersistScope
from promolake.gold.history import as_of_start
from promolake.ml import candidates as cand
from promolake.ml import interactions as ia

MEM = StorageLevel.MEMORY_AND_DISK
TEXT_VIEWS = ("all", "new", "cold_items")
TEXT_RECOMMENDERS = ("als", "text", "blend", "blend_text", "popularity", "repeat")
COMPONENTS = ("als", "repeat", "segment", "popularity")
# blend part -> component list, with the text list
TEXT_PARTS = {"als": "als", "repeat": "repeat", "segment": "segment_popularity", "popularity": "popularity",
              "text": "text"}


class MissingAlsModelError(RuntimeError):
    """Raised when train-text runs before train-als has registered a model and written candidates."""


# ----- texts at a cut ---------------------------------------------------------------------------

def user_texts(lake: Lake, cfg: Config, cutoff: dt.date) -> DataFrame:
    """(user_id, user_text) as of cutoff: gold.user_profile's column when the features stage wrote that
    date, else the same function over silver (only events before cutoff). Users without text dropped."""
    from promolake.gold import user_profile as up
    from promolake.gold.history import prepare_events

    texts = None
    if lake.exists("gold.user_profile"):
        stored = lake.read("gold.user_profile").where(F.col("as_of") == F.lit(cutoff)).select("user_id", "user_text")
        if not stored.isEmpty():
            texts = stored
    if texts is None:
        ev = prepare_events(lake.read("silver.events"), lake.read("silver.items"), cutoff)
        texts = up.user_text(ev, lake.read("silver.reviews"), cutoff, cfg.features.user_text)
    return texts.where(F.col("user_text").isNotNull() & (F.length("user_text") > 0))


def item_texts(lake: Lake, cfg: Config, cutoff: dt.date, events: DataFrame) -> DataFrame:
    """(item_id, item_text, cold_start) for the catalogue as of cutoff (items created before it);
    cold_start = no interaction (view, cart, purchase) before cutoff."""
    from promolake.gold.item_profile import item_text

    items = lake.read("silver.items").where(F.col("created_ts").isNull()
                                            | (F.col("created_ts") < as_of_start(cutoff)))
    touched = (events.where((F.col("event_ts") < as_of_start(cutoff)) & F.col("item_id").isNotNull())
               .select("item_id").distinct().withColumn("warm", F.lit(True)))
    return (items.select("item_id", item_text(cfg.features.item_text_max_chars).alias("item_text"))
            .join(touched, "item_id", "left")
            .select("item_id", "item_text", F.col("warm").isNull().alias("cold_start")))


def in_half(user_id: Column | str, seed: int, share: float) -> Column:
    """True for a stable, seeded share of users (by hash of the id): the held-out users."""
    return F.pmod(F.xxhash64(F.col(user_id) if isinstance(user_id, str) else user_id, F.lit(seed)),
                  F.lit(10_000)) < F.lit(int(round(share * 10_000)))


def training_pairs(events: DataFrame, users: DataFrame, items: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """(pair_id, item_key, user_id, item_id, user_text, item_text): each item bought in [start, end)
    by a user with a text as of start, the item's text as of start. pair_id/item_key are stable hashes."""
    bought = ia.purchases_in(events, start, end).select("user_id", "item_id").distinct()
    return (bought.join(users, "user_id").join(items.select("item_id", "item_text"), "item_id")
            .select(F.xxhash64("user_id", "item_id", F.lit(str(start))).alias("pair_id"),
                    F.xxhash64("item_id").alias("item_key"), "user_id", "item_id", "user_text", "item_text"))


def sample(df: DataFrame, n: int, seed: int, key: str = "pair_id") -> DataFrame:
    """A deterministic sample of at most n rows (the n smallest seeded hashes of `key`); n = 0: all."""
    if n <= 0:
        return df
    return df.orderBy(F.xxhash64(key, F.lit(seed))).limit(n)


# ----- model inputs -----------------------------------------------------------------------------

def tokenized_pairs(pairs: DataFrame, tc: TextConf) -> DataFrame:
    from promolake.text.data import tokenize

    out = tokenize(pairs, "user_text", tc.checkpoint, tc.max_user_len, "user")
    out = tokenize(out, "item_text", tc.checkpoint, tc.max_item_len, "item")
    return out.select("pair_id", "item_key", "user_ids", "user_len", "item_ids", "item_len")


def validation_set(users: DataFrame, relevant: DataFrame, items: DataFrame, tc: TextConf):
    """The held-out users' texts and purchases, and every catalogue item, as numpy (ValidationSet)."""
    import numpy as np

    from promolake.text.data import tokenize
    from promolake.text.trainer import ValidationSet

    chosen = sample(users.join(relevant.select("user_id").distinct(), "user_id"), tc.validation_users, tc.seed,
                    key="user_id")
    u = tokenize(chosen, "user_text", tc.checkpoint, tc.max_user_len, "user").select("user_id", "user_ids",
                                                                                       "user_len").toPandas()
    i = tokenize(items, "item_text", tc.checkpoint, tc.max_item_len, "item").select("item_id", "item_ids",
                                                                                      "item_len").toPandas()
    row = {item: n for n, item in enumerate(i["item_id"])}
    rel = relevant.join(chosen.select("user_id"), "user_id").toPandas()
    by_user = rel.groupby("user_id")["item_id"].apply(lambda s: np.array(sorted(row[x] for x in s if x in row)))
    return ValidationSet(
        user_ids=np.stack(u["user_ids"].to_numpy()).astype(np.int64) if len(u) else np.zeros((0, tc.max_user_len), np.int64),
        user_lengths=u["user_len"].to_numpy(np.int64),
        item_ids=np.stack(i["item_ids"].to_numpy()).astype(np.int64),
        item_lengths=i["item_len"].to_numpy(np.int64),
        relevant=[by_user.get(x, np.array([], dtype=np.int64)) for x in u["user_id"]],
    )


def checkpoint_key(cfg: Config, as_of: dt.date) -> str:
    """Per-epoch checkpoints are resumed only by a run of the same date and training settings."""
    settings = json.dumps({"as_of": str(as_of), **cfg.text.model_dump(exclude={"model_name"})}, sort_keys=True,
                          default=str)
    return f"{as_of}-{hashlib.sha1(settings.encode()).hexdigest()[:10]}"


# ----- the stage --------------------------------------------------------------------------------

@dataclass
class AlsChampionInputs:
    """What the text stage reuses from the registered ALS challenger: its run's parameters."""

    version: str
    params: dict[str, str]

    def blend_weights(self) -> dict[str, float]:
        return {k[len("blend_"):]: float(v) for k, v in self.params.items() if k.startswith("blend_")}

    def als_params(self, ac):
        from promolake.ml.als import AlsParams

        p = self.params
        return AlsParams(int(p.get("als_rank", ac.rank)), float(p.get("als_reg_param", ac.reg_param)),
                         float(p.get("als_alpha", ac.alpha)), int(p.get("als_max_iter", ac.max_iter)),
                         int(p.get("als_seed", ac.seed)))


def als_inputs(cfg: Config) -> AlsChampionInputs:
    from mlflow import MlflowClient

    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(cfg.als.model_name, tracking.CHALLENGER)
    except Exception as e:  # noqa: BLE001 - MLflow raises RestException/MlflowException variants
        raise MissingAlsModelError(f"no {cfg.als.model_name}@{tracking.CHALLENGER} in the registry: run "
                                   f"`promolake train-als` before `train-text` ({e})") from e
    return AlsChampionInputs(str(mv.version), dict(client.get_run(mv.run_id).data.params))


def run_text(spark: SparkSession, cfg: Config, as_of: dt.date | None = None,
             report: StageReport | None = None) -> StageReport:
    import mlflow

    from promolake.gold.features import default_as_of
    from promolake.text import data as tdata
    from promolake.text.model import TwoTower, build_model, load_tokenizer
    from promolake.text.text_model import log_text_model
    from promolake.text.trainer import TrainSpec, launch

    lake = Lake(spark, cfg.lake)
    report = report or StageReport("text")
    tc, ac = cfg.text, cfg.als
    with report:
        as_of = as_of or default_as_of(lake)
        h = dt.timedelta(days=ac.horizon_days)
        test_cut = as_of - h
        windows = [(test_cut - (j + 1) * h, test_cut - j * h) for j in range(tc.training_windows)]
        report.log(f"as_of {as_of}: training windows {[(str(a), str(b)) for a, b in windows]}, "
                   f"test [{test_cut}, {as_of}), checkpoint {tc.checkpoint}, engine {tc.engine} x {tc.num_proc}")
        if not lake.exists("ml.user_candidates") or lake.read("ml.user_candidates").where(
                F.col("as_of") == F.lit(as_of)).isEmpty():
            raise MissingAlsModelError(f"ml.user_candidates has no rows for {as_of}: run `promolake train-als "
                                       f"--as-of {as_of}` first")
        tracking.setup(cfg.mlflow, cfg.retries)
        als = als_inputs(cfg)
        events = (lake.read("silver.events").where(F.col("event_ts") < as_of_start(as_of))
                  .select("user_id", "item_id", "event_type", "event_ts").persist(MEM))

        # training pairs, held-out users for per-epoch validation
        pairs, val_users, val_relevant, val_items = None, None, None, None
        for n, (start, end) in enumerate(windows):
            ut = user_texts(lake, cfg, start)
            # items listed before the window ends: an item's text comes from the catalogue feed, known
            # at launch, so items launched inside the window are trained on too
            it = item_texts(lake, cfg, end, events)
            p = training_pairs(events, ut, it, start, end)
            pairs = p if pairs is None else pairs.unionByName(p)
            if n == 0:
                val_users = ut.where(in_half("user_id", tc.seed, tc.validation_share))
                val_relevant = ia.purchases_in(events, start, end).join(val_users.select("user_id"), "user_id")
                val_items = it
        train = sample(pairs.where(~in_half("user_id", tc.seed, tc.validation_share)), tc.max_pairs, tc.seed)
        train = tokenized_pairs(train, tc).persist(MEM)
        n_pairs = train.count()
        if n_pairs < tc.batch_size * tc.num_proc:
            raise ValueError(f"only {n_pairs} training pairs before {test_cut}: fewer than one batch per worker "
                             f"(text.batch_size {tc.batch_size} x text.num_proc {tc.num_proc})")
        validation = validation_set(val_users, val_relevant, val_items, tc) if tc.validation_share > 0 else None
        report.log(f"{n_pairs:,} training pairs; {0 if validation is None else len(validation.relevant):,} "
                   f"validation users x {0 if validation is None else len(validation.item_lengths):,} items")

        tdata.cache_url(tc.petastorm_cache, spark)
        with mlflow.start_run(run_name=f"text {as_of}") as run, tempfile.TemporaryDirectory() as out_dir:
            mlflow.set_tags({"promolake.stage": "text", "promolake.as_of": str(as_of)})
            mlflow.log_params({"checkpoint": tc.checkpoint, "max_user_len": tc.max_user_len,
                               "max_item_len": tc.max_item_len, "batch_size": tc.batch_size,
                               "world_size": tc.num_proc, "engine": tc.engine, "epochs": tc.epochs,
                               "learning_rate": tc.learning_rate, "temperature": tc.temperature,
                               "projection_dim": tc.projection_dim, "grad_accumulation": tc.grad_accumulation,
                               "mixed_precision": tc.mixed_precision, "training_pairs": n_pairs,
                               "test_cut": str(test_cut), "as_of": str(as_of), "als_version": als.version})
            with tdata.PetastormPairs.from_dataframe(train, tc.batch_size, tc.num_proc, tc.length_bucket_batches,
                                                     tc.seed) as source:
                spec = TrainSpec(
                    model_factory=functools.partial(build_model, tc.checkpoint, tc.projection_dim, tc.seed),
                    data=source, epochs=tc.epochs, learning_rate=tc.learning_rate, warmup_steps=tc.warmup_steps,
                    weight_decay=tc.weight_decay, temperature=tc.temperature, grad_accumulation=tc.grad_accumulation,
                    mixed_precision=tc.mixed_precision, use_gpu=tc.use_gpu, seed=tc.seed,
                    checkpoint_dir=os.path.join(os.path.abspath(tc.checkpoint_dir), checkpoint_key(cfg, as_of)),
                    output_dir=out_dir, validation=validation, k=tc.k,
                    mlflow_tracking_uri=mlflow.get_tracking_uri(), mlflow_run_id=run.info.run_id)
                result = launch(spec, tc.engine, tc.num_proc, spark)
            train.unpersist()
            history = result["history"]
            report.section("training (per epoch, rank 0; validation on held-out users)",
                           [{"epoch": n + 1, **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.items()}}
                            for n, e in enumerate(history)])
            model = TwoTower.load(out_dir)
            tokenizer = load_tokenizer(tc.checkpoint)
            model_uri = log_text_model(model, tokenizer, tc.max_user_len, tc.max_item_len, "text_model",
                                       ["searched: cheap kettle. bought: Acme Tea Cups", "Acme Kettle. Kitchen / Tea"])
            version = tracking.register(model_uri, tc.model_name, tags={
                "as_of": str(as_of), "engine": tc.engine, "holdout_start": str(test_cut), "holdout_end": str(as_of),
                "als_version": als.version})
            registered = f"models:/{tc.model_name}/{version}"
            report.log(f"registered {tc.model_name} version {version}")

            # embeddings of the catalogue (as of as_of; the test cut uses the items created before it)
            items = item_texts(lake, cfg, as_of, events).persist(MEM)
            item_emb = embed_texts(items, "item_text", registered, "item", tc).persist(MEM)
            test = evaluate_test(spark, lake, cfg, events, item_emb, registered, test_cut, as_of, als, report)
            weight = test["text_weight"]
            for rec, views in test["results"].items():
                for view, m in views.items():
                    mlflow.log_metrics({f"test_{view}_{rec}_{name}_at_{tc.k}": v for name, v in m.items() if v == v})
            mlflow.log_param("blend_text", weight)
            write_outputs(spark, lake, cfg, events, items, item_emb, registered, version, als, weight, as_of,
                          test, run.info.run_id, report)
            tracking.set_alias(tc.model_name, tracking.CHALLENGER, version)
            report.note(f"registered {tc.model_name} version {version} with alias @{tracking.CHALLENGER} "
                        f"(MLflow run {run.info.run_id})")
            item_emb.unpersist()
            items.unpersist()
        events.unpersist()
    return report


def embed_texts(df: DataFrame, text_col: str, model_uri: str, tower: str, tc: TextConf) -> DataFrame:
    from promolake.text.data import tokenize
    from promolake.text.inference import embed

    key = "user_id" if tower == "user" else "item_id"
    max_len = tc.max_user_len if tower == "user" else tc.max_item_len
    tokens = tokenize(df.select(key, text_col), text_col, tc.checkpoint, max_len, "t").select(key, "t_len")
    return embed(df, text_col, model_uri, tower, tc.embed_batch_size, partitions=tc.embed_partitions,
                 precision=tc.embed_precision).join(tokens, key) \
        .withColumnRenamed("t_len", "tokens")


def text_list(user_emb: DataFrame, item_emb: DataFrame, depth: int, seen: DataFrame | None = None) -> DataFrame:
    from promolake.text.inference import text_candidates

    # scores as double, like every other list of the blend and the declared tables
    return (text_candidates(user_emb.select("user_id", "embedding"), item_emb.select("item_id", "embedding"), depth,
                            seen).withColumn("score", F.col("score").cast("double")).select(*cand.LIST_COLUMNS))


# ----- test-cut evaluation ----------------------------------------------------------------------

def evaluate_test(spark: SparkSession, lake: Lake, cfg: Config, events: DataFrame, item_emb: DataFrame,
                  model_uri: str, test_cut: dt.date, as_of: dt.date, als: AlsChampionInputs,
                  report: StageReport) -> dict:
    """ALS, text, the ALS blend and the blend with text on the test window; the text weight is chosen
    on half A of the judged users (ndcg, all view), the numbers come from half B."""
    from promolake.ml import train_als as ta
    from promolake.ml.als import fit
    from promolake.ml.evaluation import grouped_ranking_metrics

    tc, ac = cfg.text, cfg.als
    user_index = lake.read("ml.als_user_index").select("user_id", "user_idx").persist(MEM)
    item_index = lake.read("ml.als_item_index").select("item_id", "item_idx").persist(MEM)
    split = ta.build_split(lake, cfg, events, test_cut, user_index, item_index, as_of)
    factors = fit(spark, split.train, als.als_params(ac), ac, engine=ta.choose_engine(ac, split.pairs),
                  pairs=split.pairs).persist()
    weights = als.blend_weights() or {"als": 1.0}
    # The text list ranks every item listed before the window ends (item_emb: items created before
    # as_of): item texts come from the catalogue feed and new items are embedded without retraining,
    # whereas ALS, fitted at the cut, cannot score items without interactions before it.
    cut_items = item_emb
    # coverage's denominator: the catalogue every list here draws from (ALS's, items of the cut, is a part)
    catalogue = max(split.catalogue, cut_items.count())
    texts = user_texts(lake, cfg, test_cut)
    judged = split.warm_users.join(split.relevant["all"].select("user_id").distinct(), "user_id").persist(MEM)
    half_a = judged.where(in_half("user_id", tc.seed + 1, 0.5)).persist(MEM)
    half_b = judged.where(~in_half("user_id", tc.seed + 1, 0.5)).persist(MEM)
    user_emb = embed_texts(texts.join(judged, "user_id"), "user_text", model_uri, "user", tc).persist(MEM)
    # cold-start items: listed before as_of, no interaction (view, cart, purchase) before the test cut
    touched = events.where(F.col("event_ts") < as_of_start(test_cut)).select("item_id").distinct()
    cold_items = item_emb.select("item_id").join(touched, "item_id", "left_anti")
    relevant = dict(split.relevant)
    relevant["cold_items"] = split.relevant["all"].join(cold_items, "item_id")
    depth = ac.blend.pool

    keep = PersistScope()       # the component lists, computed once and read by every evaluation below

    def components(users: DataFrame, view: str) -> dict[str, DataFrame]:
        """The component lists of a view for `users`, persisted; the lists scored are built from them per
        group of users (evaluation.grouped_ranking_metrics). A user's lists do not depend on the other users,
        so lists computed for all judged users serve any half of them (grouped_ranking_metrics keeps only
        its population's rows)."""
        exclude = view == "new"
        out = ta.lists_for(split, factors, user_index, item_index, users, depth, "new" if exclude else "all",
                           None, ac)
        out["text"] = text_list(user_emb.join(users, "user_id"), cut_items, depth, split.seen if exclude else None)
        return {name: keep(df) for name, df in out.items()}

    # the lists without previously bought items removed, for every judged user: the text-weight search on
    # half A and the views "all" and "cold_items" on half B read them (computed once instead of three times)
    judged_lists = components(judged, "all")

    # choose the text weight on half A
    searched = grouped_ranking_metrics(
        judged_lists, split.relevant["all"], half_a, ac.k, catalogue,
        {f"w{n}": ta.blend_in_group({**weights, "text": w}, ac, TEXT_PARTS) for n, w in enumerate(tc.text_weights)})
    search = [{"text_weight": w, f"ndcg@{ac.k}": round(searched[f"w{n}"]["ndcg"], 4)}
              for n, w in enumerate(tc.text_weights)]
    best = max(search, key=lambda r: (r[f"ndcg@{ac.k}"], -r["text_weight"]))["text_weight"]
    users_a = int(searched["w0"]["users"]) if search else 0
    report.section(f"text weight in the blend (half A of the test users, {users_a:,} users, all view)", search)

    # report on half B
    results: dict[str, dict[str, dict]] = {}
    for view in TEXT_VIEWS:
        rel = relevant["new" if view == "new" else view]
        if rel.join(half_b, "user_id").isEmpty():
            report.note(f"view {view}: no purchase in the test window by the reported users; not evaluated")
            continue
        # the ALS blend as train-als fuses it; the blend with text without segment popularity on cold items
        text_parts = {p: c for p, c in TEXT_PARTS.items() if not (view == "cold_items" and p == "segment")}
        lists = {"als": ta.component("als"), "text": ta.component("text"), "blend": ta.blend_in_group(weights, ac),
                 "blend_text": ta.blend_in_group({**weights, "text": best}, ac, text_parts),
                 "popularity": ta.component("popularity"), "repeat": ta.component("repeat")}
        scored = grouped_ranking_metrics(components(half_b, view) if view == "new" else judged_lists, rel, half_b,
                                         ac.k, catalogue,
                                         {name: lists[name] for name in TEXT_RECOMMENDERS}, split.item_popularity)
        for name in TEXT_RECOMMENDERS:
            results.setdefault(name, {})[view] = scored[name]
        report.log(f"evaluated view {view}: " + ", ".join(f"{n} ndcg {results[n][view]['ndcg']:.4f}"
                                                           for n in TEXT_RECOMMENDERS))
    rows = []
    for view in TEXT_VIEWS:
        for rec in TEXT_RECOMMENDERS:
            if view not in results.get(rec, {}):
                continue
            m = results[rec][view]
            rows.append({"view": view, "recommender": rec, **{f"{n}@{ac.k}": round(m[n], 4) for n in
                         ("precision", "recall", "ndcg", "map", "hit_rate")}, "users": int(m["users"])})
    report.section(f"ranking evaluation, test split (half B): texts as of {test_cut}, purchases in "
                   f"[{test_cut}, {as_of}), k={ac.k}; cold_items = purchases of items without interactions "
                   f"before {test_cut}",
                   rows)
    keep.release()
    for df in (half_a, half_b, judged, user_emb, user_index, item_index):
        df.unpersist()
    factors.unpersist()
    split.unpersist()
    return {"results": results, "text_weight": best, "search": search}


# ----- outputs ----------------------------------------------------------------------------------

def final_components(lake: Lake, cfg: Config, events: DataFrame, as_of: dt.date,
                     users: DataFrame) -> tuple[dict[str, DataFrame], dict[str, DataFrame]]:
    """The lists train-als blended for as_of, rebuilt from the same inputs (ml.als_candidates, repeat
    purchases, segment and global popularity, trend-adjusted for cold users), so re-blending with the
    text list is idempotent. users: (user_id, cold_start_user). Returns (warm lists, cold lists)."""
    from promolake.ml.train_als import trend_adjusted, user_segments

    ac = cfg.als
    depth = max(ac.candidates, ac.blend.pool)
    warm = users.where(~F.col("cold_start_user")).select("user_id")
    cold = users.where(F.col("cold_start_user")).select("user_id")
    segments = user_segments(lake, cfg, as_of).persist(MEM)
    popularity = ia.popularity(events, as_of, ac.popularity_days)
    seg_pop = ia.popularity(events, as_of, ac.popularity_days, group=segments)
    als = (lake.read("ml.als_candidates").where(F.col("as_of") == F.lit(as_of))
           .select("user_id", "item_id", "rank", "score"))
    repeat = ia.repeat_scores(events, as_of, ac.history_days, ac.half_life_days, ac.candidates)
    warm_lists = {"als": als.join(warm, "user_id"), "repeat": repeat.join(warm, "user_id"),
                  "segment": cand.segment_list(seg_pop, segments.join(warm, "user_id"), depth),
                  "popularity": cand.global_list(popularity, warm, depth)}
    cold_lists = {"segment": cand.segment_list(seg_pop, segments.join(cold, "user_id"), depth),
                  "popularity": cand.global_list(trend_adjusted(lake, popularity, as_of), cold, depth)}
    return warm_lists, cold_lists


def write_outputs(spark: SparkSession, lake: Lake, cfg: Config, events: DataFrame, items: DataFrame,
                  item_emb: DataFrame, model_uri: str, version: str, als: AlsChampionInputs, weight: float,
                  as_of: dt.date, test: dict, run_id: str, report: StageReport) -> None:
    from promolake.ml.train_als import cold_weights

    tc, ac = cfg.text, cfg.als
    stamp = [F.lit(version).alias("model_version"), F.current_timestamp().alias("computed_at")]
    day = F.lit(as_of).alias("as_of")

    def write(df: DataFrame, table: str, slice_: dict | None = None) -> None:
        report.record_write(table, lake.upsert(df, table, replace_slice=slice_ or {"as_of": as_of}))

    write(item_emb.select("item_id", day, "embedding", "tokens", "cold_start", *stamp), "ml.item_text_embeddings")
    # the active users and their cold flag as train-als wrote them; materialised (local checkpoint)
    # because ml.user_candidates is rewritten below
    active = (lake.read("ml.user_candidates").where(F.col("as_of") == F.lit(as_of))
              .select("user_id", "cold_start_user").distinct().localCheckpoint(eager=True))
    texts = user_texts(lake, cfg, as_of).join(active.select("user_id"), "user_id")
    user_emb = embed_texts(texts, "user_text", model_uri, "user", tc).persist(MEM)
    write(user_emb.select("user_id", day, "embedding", "tokens", *stamp), "ml.user_text_embeddings")
    text = text_list(user_emb, item_emb, tc.candidates).persist(MEM)
    flagged = text.join(items.select("item_id", F.col("cold_start").alias("cold_start_item")), "item_id")
    write(flagged.select("user_id", day, "item_id", "rank", "score", "cold_start_item", *stamp), "ml.text_candidates")

    users = active.select("user_id", "cold_start_user")
    warm_lists, cold_lists = final_components(lake, cfg, events, as_of, users)
    warm_w = {**als.blend_weights(), "text": weight}
    cold_w = {**cold_weights(als.blend_weights()), "text": weight}
    blended = None
    for is_cold, parts, w in ((False, warm_lists, warm_w), (True, cold_lists, cold_w)):
        part_users = users.where(F.col("cold_start_user") == F.lit(is_cold)).select("user_id")
        part = cand.blend({**parts, "text": text.join(part_users, "user_id")}, w, ac.blend.rrf_constant,
                          ac.candidates).withColumn("cold_start_user", F.lit(is_cold))
        for s in COMPONENTS:
            if s not in parts:
                part = part.withColumn(f"{s}_rank", F.lit(None).cast("int")) \
                    .withColumn(f"{s}_score", F.lit(None).cast("double"))
        blended = part if blended is None else blended.unionByName(part)
    seen = ia.bought_before(events, as_of).withColumn("previously_bought", F.lit(True))
    blended = blended.join(seen, ["user_id", "item_id"], "left")
    model_version = F.concat(F.lit(f"als:{als.version}+text:"), F.lit(version)).alias("model_version")
    write(blended.select("user_id", day, "item_id", "rank", "score", "als_rank", "als_score", "repeat_rank",
                         "repeat_score", "segment_rank", "segment_score", "popularity_rank", "popularity_score",
                         "text_rank", "text_score", "sources", "cold_start_user",
                         F.coalesce("previously_bought", F.lit(False)).alias("previously_bought"),
                         model_version, F.current_timestamp().alias("computed_at")), "ml.user_candidates")
    n_users = user_emb.count()
    cold_items_recommended = flagged.where("cold_start_item").select("item_id").distinct().count()
    report.log(f"text candidates for {n_users:,} active users with a text; {cold_items_recommended:,} cold-start "
               "items among them")

    rows = [(rec, view, name, float(v)) for rec, views in test["results"].items() for view, m in views.items()
            for name, v in m.items()]
    ev = spark.createDataFrame(rows, "recommender string, view string, metric string, value double")
    write(ev.select(F.lit(tc.model_name).alias("model_name"), day, F.lit("test").alias("split"), "recommender",
                    "view", "metric", F.lit(ac.k).alias("k"), "value",
                    F.lit(as_of - dt.timedelta(days=ac.horizon_days)).alias("cutoff"),
                    F.lit(run_id).alias("run_id"), F.current_timestamp().alias("computed_at")),
          "ml.ranking_evaluation", {"model_name": tc.model_name, "as_of": as_of})
    for df in (user_emb, text):
        df.unpersist()
