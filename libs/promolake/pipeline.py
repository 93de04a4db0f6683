"""The stages of the pipeline, by name, and run-all. The CLI, jobs/ and notebooks all call these."""
from __future__ import annotations

import datetime as dt
import time
from typing import Callable, Sequence

from pyspark.sql import SparkSession

from promolake.common.config import Config
from promolake.common.reporting import StageReport


def run_generate(spark: SparkSession, cfg: Config, force: bool = False) -> StageReport:
    """Write the synthetic world (landing files + hidden truth)."""
    from promolake.landing.synthetic_world import run_generate as generate

    return generate(spark, cfg, force=force)


def run_ingest(spark: SparkSession, cfg: Config) -> StageReport:
    """Landing -> bronze -> silver + quarantine."""
    from promolake.silver.ingest import run_ingest as ingest

    return ingest(spark, cfg)


def run_import_online_retail(spark: SparkSession, cfg: Config, path: str | None = None) -> StageReport:
    """Map the UCI Online Retail file into the landing contract."""
    from promolake.landing.online_retail import run_import

    return run_import(spark, cfg, path)


def run_features(spark: SparkSession, cfg: Config, as_of: Sequence[dt.date] | dt.date | None = None
                 ) -> StageReport:
    """Silver -> gold feature tables for each as_of date given (default: the day after the last event)."""
    from promolake.gold.features import run_features as features

    dates = [as_of] if as_of is None or isinstance(as_of, dt.date) else list(as_of)
    report = None
    for day in dates:
        report = features(spark, cfg, day)
    return report


def run_train_als(spark: SparkSession, cfg: Config, as_of: dt.date | None = None) -> StageReport:
    """Tune, evaluate and register ALS; write factors and candidate tables as of `as_of`."""
    from promolake.ml.train_als import run_als

    return run_als(spark, cfg, as_of)


def run_train_text(spark: SparkSession, cfg: Config, as_of: dt.date | None = None) -> StageReport:
    """Fine-tune and register the BERT two-tower model; write text embeddings and text candidates,
    and re-blend ml.user_candidates with the text list, as of `as_of`."""
    from promolake.ml.train_text import run_text

    return run_text(spark, cfg, as_of)


def run_train_uplift(spark: SparkSession, cfg: Config, as_of: dt.date | None = None) -> StageReport:
    """Fit, evaluate (latest campaigns held out) and register the response/uplift model."""
    from promolake.promo.train_uplift import run_train_uplift as train

    return train(spark, cfg, as_of)


def run_validate_and_promote(spark: SparkSession, cfg: Config) -> StageReport:
    """Each model's @challenger against its @champion on the same holdout; moves @champion when it passes."""
    from promolake.ml.validate import run_validate

    return run_validate(spark, cfg)


def run_score(spark: SparkSession, cfg: Config, campaign_id: str | None = None,
              as_of: dt.date | None = None) -> StageReport:
    """Score a campaign's offers for eligible users, allocate under the budget, write offer_scores and
    promotion_assignments."""
    from promolake.promo.scoring import run_score as score

    return score(spark, cfg, campaign_id, as_of)


def run_evaluate_campaign(spark: SparkSession, cfg: Config, campaign_id: str | None = None) -> StageReport:
    """Evaluate a campaign after its window: offers against control, IPS value of the policy."""
    from promolake.promo.campaign_eval import run_evaluate_campaign as evaluate

    return evaluate(spark, cfg, campaign_id)


def run_report(spark: SparkSession, cfg: Config, campaign_id: str | None = None,
               as_of: dt.date | None = None) -> StageReport:
    """Write the HTML report of the lake, trends, recommendations, the campaign and the model registry."""
    from promolake.report.demo import run_report as write_report

    return write_report(spark, cfg, campaign_id, as_of)


STAGES: dict[str, Callable[..., StageReport]] = {
    "generate": run_generate,
    "ingest": run_ingest,
    "import-online-retail": run_import_online_retail,
    "features": run_features,
    "train-als": run_train_als,
    "train-text": run_train_text,
    "train-uplift": run_train_uplift,
    "validate-and-promote": run_validate_and_promote,
    "score": run_score,
    "evaluate-campaign": run_evaluate_campaign,
    "report": run_report,
}
# The main job, in order; later stages (features, models, scoring) join this list.
RUN_ALL = ("generate", "ingest", "features", "train-als", "train-text", "train-uplift", "validate-and-promote",
           "score", "report")


def run_all(spark: SparkSession, cfg: Config, force_generate: bool = False) -> list[StageReport]:
    """Run the main job end to end on the configured environment; returns each stage's report."""
    started = time.perf_counter()
    reports = []
    for name in RUN_ALL:
        kwargs = {"force": force_generate} if name == "generate" else {}
        reports.append(STAGES[name](spark, cfg, **kwargs))
    print(f"== run-all: {len(reports)} stages done in {time.perf_counter() - started:.1f}s ==", flush=True)
    return reports
