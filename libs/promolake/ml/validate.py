"""The `validate-and-promote` stage: for each registered model (ALS, text, uplift), does the @challenger
version replace the @champion? (the gate itself: promolake.ml.gate).

Both versions are compared on the challenger's own time-based holdout, recorded as tags on its version
by the training stage (holdout_start, holdout_end; holdout_campaigns for uplift):
- the challenger's numbers are the holdout metrics of its training run. They are out of sample: ALS and
  uplift are evaluated by a twin fitted on the data before the holdout (the version registered is then
  refitted on everything), the text model registered is the one trained before the holdout;
- the champion is loaded from the registry and evaluated now, with the same evaluation code, on exactly
  that holdout: ALS by its factors' top-k lists (promolake.ml.candidates.als_list) scored by
  promolake.ml.evaluation.ranking_metrics on the same users and purchase window; the text model by the
  text stage's test evaluation (promolake.ml.train_text.evaluate_test) with the champion's towers;
  uplift by promolake.promo.uplift.evaluate_uplift on the same held-out campaigns' rows.
When the champion was trained on data after the holdout started (it has seen it), its numbers are
in-sample and favour it: the gate is then conservative, and the verdict says so.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from promolake.common import tracking
from promolake.common.config import Config
from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.gold.history import as_of_start
from promolake.ml import gate

MEM = StorageLevel.MEMORY_AND_DISK
KINDS = ("als", "text", "uplift")


class GateError(RuntimeError):
    """A model version the gate cannot judge (no holdout tags, no training run metrics)."""


@dataclass(frozen=True)
class Holdout:
    start: dt.date                      # ALS/text: first day of the purchase window; uplift: first campaign start
    end: dt.date                        # the challenger's as_of (exclusive)
    campaigns: tuple[str, ...] = ()     # uplift only

    def describe(self) -> str:
        return (f"campaigns {', '.join(self.campaigns)} (from {self.start}, ended before {self.end})" if self.campaigns
                else f"purchases in [{self.start}, {self.end})")


def model_name(cfg: Config, kind: str) -> str:
    return {"als": cfg.als.model_name, "text": cfg.text.model_name, "uplift": cfg.promotion.model_name}[kind]


def holdout_of(mv) -> Holdout:
    """The holdout a version was evaluated on, from its tags (written by the training stages)."""
    tags = mv.tags or {}
    try:
        start, end = dt.date.fromisoformat(tags["holdout_start"]), dt.date.fromisoformat(tags["holdout_end"])
    except (KeyError, ValueError) as err:
        raise GateError(f"{mv.name} v{mv.version} has no holdout_start/holdout_end tags (registered before the "
                        f"gate existed, or by hand): re-train it to evaluate it ({err!r})") from None
    campaigns = tuple(c for c in tags.get("holdout_campaigns", "").split(",") if c)
    return Holdout(start, end, campaigns)


def trained_through(kind: str, mv) -> dt.date | None:
    """The day before which a version's training data ends (None when its tags do not say)."""
    tags = mv.tags or {}
    key = "holdout_start" if kind == "text" else "as_of"   # the registered text model is the pre-holdout one
    try:
        return dt.date.fromisoformat(tags[key])
    except (KeyError, ValueError):
        return None


def run_metrics(kind: str, run_metrics_: dict[str, float], cfg: Config) -> dict[str, float]:
    """A training run's holdout metrics under the gate's names (ndcg, qini, ...)."""
    if kind == "uplift":
        prefix, suffix = "holdout_", ""
    else:
        k = cfg.als.k if kind == "als" else cfg.text.k
        prefix, suffix = f"test_all_{kind}_", f"_at_{k}"
    return {key[len(prefix):len(key) - len(suffix)]: float(v) for key, v in run_metrics_.items()
            if key.startswith(prefix) and key.endswith(suffix)}


def challenger_metrics(client, kind: str, mv, cfg: Config) -> dict[str, float]:
    if not mv.run_id:
        raise GateError(f"{mv.name} v{mv.version} has no training run: nothing to judge it by")
    metrics = run_metrics(kind, client.get_run(mv.run_id).data.metrics, cfg)
    if not metrics:
        raise GateError(f"{mv.name} v{mv.version}: its training run {mv.run_id} logged no holdout metrics")
    return metrics


# ----- evaluating a registered version on a holdout --------------------------------------------

def evaluate_als_version(spark: SparkSession, lake: Lake, cfg: Config, uri: str, holdout: Holdout) -> dict[str, float]:
    """ranking_metrics of the registered ALS model's top-k lists (all-purchases view) on the holdout:
    the users with interactions before holdout.start, their purchases in [start, end)."""
    import mlflow

    from promolake.ml import candidates as cand
    from promolake.ml import train_als as ta
    from promolake.ml.evaluation import ranking_metrics

    ac = cfg.als
    model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    events = (lake.read("silver.events").where(F.col("event_ts") < as_of_start(holdout.end))
              .select("user_id", "item_id", "event_type", "event_ts").persist(MEM))
    user_index = lake.read("ml.als_user_index").select("user_id", "user_idx").persist(MEM)
    item_index = lake.read("ml.als_item_index").select("item_id", "item_idx").persist(MEM)
    split = ta.build_split(lake, cfg, events, holdout.start, user_index, item_index, holdout.end)

    def factors(ids, matrix, index, key):
        pdf = [(str(i), [float(x) for x in row]) for i, row in zip(ids.tolist(), matrix)]
        df = spark.createDataFrame(pdf, f"{key} string, features array<float>")
        return df.join(index, key).select(F.col(key.replace("_id", "_idx")).alias("id"), "features")

    recs = cand.als_list(factors(model.user_ids, model.U, user_index, "user_id"),
                         factors(model.item_ids, model.V, item_index, "item_id"),
                         user_index, item_index, ac.k, users=split.warm_users)
    out = ranking_metrics(recs, split.relevant["all"], split.warm_users, ac.k, split.catalogue, split.item_popularity)
    split.unpersist()
    for df in (events, user_index, item_index):
        df.unpersist()
    return out


def evaluate_text_version(spark: SparkSession, lake: Lake, cfg: Config, uri: str, holdout: Holdout, als_version: str,
                          report: StageReport) -> dict[str, float]:
    """The text stage's test evaluation (text list, all-purchases view) of a registered text model on the
    holdout window, blended with the same ALS inputs the challenger's run used."""
    from mlflow import MlflowClient

    from promolake.ml import train_text as tt

    client = MlflowClient()
    mv = client.get_model_version(cfg.als.model_name, als_version)
    als = tt.AlsChampionInputs(str(mv.version), dict(client.get_run(mv.run_id).data.params))
    events = (lake.read("silver.events").where(F.col("event_ts") < as_of_start(holdout.end))
              .select("user_id", "item_id", "event_type", "event_ts").persist(MEM))
    items = tt.item_texts(lake, cfg, holdout.end, events).persist(MEM)
    item_emb = tt.embed_texts(items, "item_text", uri, "item", cfg.text).persist(MEM)
    test = tt.evaluate_test(spark, lake, cfg, events, item_emb, uri, holdout.start, holdout.end, als, report)
    for df in (item_emb, items, events):
        df.unpersist()
    return dict(test["results"]["text"]["all"])


def evaluate_uplift_version(spark: SparkSession, lake: Lake, cfg: Config, uri: str, holdout: Holdout,
                            report: StageReport) -> dict[str, float]:
    """evaluate_uplift of a registered uplift model on the held-out campaigns' rows (features as of each
    campaign's start, as the training stage built them)."""
    from promolake.promo.train_uplift import silver_frames, training_rows, with_own_campaigns
    from promolake.promo.uplift import evaluate_uplift
    from promolake.promo.uplift_model import load_uplift_model

    if not holdout.campaigns:
        raise GateError(f"{uri}: the challenger's holdout names no campaigns")
    s = with_own_campaigns(spark, lake, silver_frames(lake), cfg)
    rows = training_rows(s, holdout.end, campaigns=list(holdout.campaigns))
    if rows.empty:
        raise GateError(f"no exposures of the holdout campaigns {list(holdout.campaigns)} before {holdout.end}")
    report.log(f"uplift holdout rebuilt: {len(rows):,} exposures of {rows.campaign_id.nunique()} campaigns")
    return evaluate_uplift(load_uplift_model(uri), rows)


def evaluate_version(spark: SparkSession, lake: Lake, cfg: Config, kind: str, mv, holdout: Holdout,
                     challenger_mv, report: StageReport) -> dict[str, float]:
    uri = f"models:/{mv.name}/{mv.version}"
    if kind == "als":
        return evaluate_als_version(spark, lake, cfg, uri, holdout)
    if kind == "text":
        als_version = (challenger_mv.tags or {}).get("als_version")
        if not als_version:
            raise GateError(f"{challenger_mv.name} v{challenger_mv.version} has no als_version tag")
        return evaluate_text_version(spark, lake, cfg, uri, holdout, als_version, report)
    return evaluate_uplift_version(spark, lake, cfg, uri, holdout, report)


# ----- the stage --------------------------------------------------------------------------------

def judge_model(spark: SparkSession, lake: Lake, cfg: Config, client, kind: str,
                report: StageReport) -> tuple[gate.Verdict | None, str]:
    """(verdict, what to say) for one model; verdict None when there is nothing to judge."""
    name = model_name(cfg, kind)
    try:
        challenger, champion = gate.versions(client, name)
    except Exception as err:  # noqa: BLE001 - the registry itself failed: say which model
        raise GateError(f"could not read the aliases of {name}: {err}") from err
    if challenger is None:
        return None, f"no @{tracking.CHALLENGER} version: run its training stage first"
    if challenger == champion:
        return None, f"v{challenger} is already @{tracking.CHAMPION}"
    mv = client.get_model_version(name, challenger)
    holdout = holdout_of(mv)
    new = challenger_metrics(client, kind, mv, cfg)
    old, extra = None, []
    if champion is not None:
        champ_mv = client.get_model_version(name, champion)
        report.log(f"{name}: evaluating champion v{champion} on the challenger v{challenger}'s holdout "
                   f"({holdout.describe()})")
        old = evaluate_version(spark, lake, cfg, kind, champ_mv, holdout, mv, report)
        through = trained_through(kind, champ_mv)
        if through is None or through > holdout.start:
            extra.append(f"champion v{champion} was trained on data up to {through or 'an unknown day'}, after the "
                         f"holdout started ({holdout.start}): its numbers are in-sample, the gate is conservative")
    thresholds = getattr(cfg.validation, kind)
    passed, reasons = gate.judge(new, old, thresholds.minimums, thresholds.tolerances)
    verdict = gate.Verdict(name, challenger, champion, new, old, passed, reasons + tuple(extra))
    return verdict, holdout.describe()


def run_validate(spark: SparkSession, cfg: Config, report: StageReport | None = None) -> StageReport:
    from mlflow import MlflowClient

    vc = cfg.validation
    report = report or StageReport("validate-and-promote")
    with report:
        if vc.mode == "disabled":
            report.note("validation.mode is disabled: no model evaluated, no alias moved")
            return report
        lake = Lake(spark, cfg.lake)
        tracking.setup(cfg.mlflow, cfg.retries)
        client = MlflowClient()
        rows = []
        for kind in vc.models:
            verdict, said = judge_model(spark, lake, cfg, client, kind, report)
            name = model_name(cfg, kind)
            if verdict is None:
                report.note(f"{name}: {said}")
                rows.append({"model": name, "challenger": None, "champion": None, "verdict": "-", "action": said})
                continue
            action = gate.apply_verdict(client, verdict, vc.mode)
            report.log(verdict.summary())
            report.note(f"{name}: {action}")
            gated = sorted(set(getattr(vc, kind).minimums) | set(getattr(vc, kind).tolerances))
            rows.append({"model": name, "challenger": f"v{verdict.challenger}",
                         "champion": f"v{verdict.champion}" if verdict.champion else None,
                         "holdout": said,
                         **{f"{m} (new / old)": _pair(verdict, m) for m in gated},
                         "verdict": "passed" if verdict.passed else "failed", "action": action})
        report.section(f"promotion gate (mode {vc.mode})", rows)
    return report


def _pair(verdict: gate.Verdict, metric: str) -> str:
    new = verdict.challenger_metrics.get(metric)
    old = (verdict.champion_metrics or {}).get(metric)
    fmt = lambda v: "-" if v is None or v != v else f"{v:.4f}"  # noqa: E731
    return f"{fmt(new)} / {fmt(old)}"
