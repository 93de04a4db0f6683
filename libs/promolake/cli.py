"""`promolake <stage>`: one sub-command per pipeline stage plus run-all.

    promolake generate [--force]          write the synthetic world into the landing folder
    promolake ingest                      landing -> bronze -> silver (+ quarantine)
    promolake import-online-retail PATH   map the UCI Online Retail file into the landing contract
    promolake features [--as-of DATE]...  silver -> gold feature tables as of DATE (default: after the last event)
    promolake train-als [--as-of DATE]     tune, evaluate and register ALS; write candidate tables
    promolake train-text [--as-of DATE]    fine-tune and register the BERT two-tower model; text candidates
    promolake validate-and-promote        each model's @challenger vs its @champion; moves @champion when it passes
    promolake promote MODEL VERSION --reason TEXT   manual promotion (MODEL: als, text or uplift)
    promolake rollback MODEL --reason TEXT          @champion back to the version it replaced
    promolake run-all                     the main job end to end
    promolake tables                      where every table lives and its row count

Common options: --env local|dev|staging|prod, --conf dotted.key=value (repeatable).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Sequence

from promolake.common.config import ENVIRONMENTS, Config, ConfigError, load_config
from promolake.common.retry import TransientFailure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promolake", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", default="local", choices=ENVIRONMENTS, help="conf/<env>.yml overlay")
    common.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. world.users=5000 (repeatable)")
    common.add_argument("--conf-dir", default=None, help="folder with base.yml and overlays")
    sub = parser.add_subparsers(dest="stage", required=True)
    gen = sub.add_parser("generate", parents=[common], help="write the synthetic world")
    gen.add_argument("--force", action="store_true", help="regenerate even if the same world exists")
    sub.add_parser("ingest", parents=[common], help="landing -> bronze -> silver")
    imp = sub.add_parser("import-online-retail", parents=[common], help="UCI Online Retail -> landing")
    imp.add_argument("path", nargs="?", default="../shared/data/online_retail/online_retail.parquet")
    feat = sub.add_parser("features", parents=[common], help="silver -> gold feature tables")
    feat.add_argument("--as-of", action="append", type=_date, default=None, metavar="YYYY-MM-DD",
                      help="build the tables as of this day (repeatable); default: the day after the last event")
    als = sub.add_parser("train-als", parents=[common], help="ALS candidates (tuned, evaluated, registered)")
    als.add_argument("--as-of", type=_date, default=None, metavar="YYYY-MM-DD",
                     help="train on interactions before this day; default: the day after the last event")
    text = sub.add_parser("train-text", parents=[common],
                          help="BERT two-tower text model (Horovod/TorchDistributor), embeddings, text candidates")
    text.add_argument("--as-of", type=_date, default=None, metavar="YYYY-MM-DD",
                      help="texts and purchases before this day; default: the day after the last event")
    upl = sub.add_parser("train-uplift", parents=[common],
                         help="response/uplift model from past campaigns (evaluated, registered)")
    upl.add_argument("--as-of", type=_date, default=None, metavar="YYYY-MM-DD",
                     help="learn from campaigns ended before this day; default: the day after the last event")
    sub.add_parser("validate-and-promote", parents=[common],
                   help="each model's @challenger against its @champion on the same holdout (validation.mode)")
    pro = sub.add_parser("promote", parents=[common], help="move a model's @champion alias to a version by hand")
    pro.add_argument("model", choices=("als", "text", "uplift"))
    pro.add_argument("version")
    pro.add_argument("--reason", required=True, help="why (kept in the version's tags)")
    rb = sub.add_parser("rollback", parents=[common], help="move @champion back to the version it replaced")
    rb.add_argument("model", choices=("als", "text", "uplift"))
    rb.add_argument("--reason", required=True, help="why (kept in the version's tags)")
    score = sub.add_parser("score", parents=[common],
                           help="score a campaign's offers for every eligible user and write the assignments")
    score.add_argument("--campaign-id", default=None, help="campaign to score; default: promotion.campaign_id")
    score.add_argument("--as-of", type=_date, default=None, metavar="YYYY-MM-DD",
                       help="use data before this day; default: the day after the last event")
    ev = sub.add_parser("evaluate-campaign", parents=[common],
                        help="after a campaign's window: per offer vs control with CIs, IPS value of the policy")
    ev.add_argument("--campaign-id", default=None, help="campaign to evaluate; default: promotion.campaign_id")
    rep = sub.add_parser("report", parents=[common],
                         help="HTML report: lake, trends, recommendations, campaign, budget curve, registry")
    rep.add_argument("--campaign-id", default=None, help="campaign to report on; default: promotion.campaign_id")
    rep.add_argument("--as-of", type=_date, default=None, metavar="YYYY-MM-DD",
                     help="trend plots as of this day; default: the day after the last event")
    allp = sub.add_parser("run-all", parents=[common], help="the main job end to end")
    allp.add_argument("--force-generate", action="store_true")
    sub.add_parser("tables", parents=[common], help="list tables, locations and row counts")
    return parser


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def load(args: argparse.Namespace) -> Config:
    return load_config(args.env, overrides=args.conf, conf_dir=args.conf_dir)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load(args)
    except ConfigError as err:
        print(f"promolake: {err}", file=sys.stderr)
        return 2
    if args.stage in ("promote", "rollback"):
        return registry_command(cfg, args)
    from promolake.common.spark import get_spark

    spark = get_spark(cfg.spark)
    try:
        run_stage(spark, cfg, args)
    except TransientFailure as err:
        # retried with back-off already (promolake.common.retry); the stage summary above says FAILED
        print(f"promolake {args.stage}: {err}", file=sys.stderr)
        return 1
    return 0


def run_stage(spark, cfg: Config, args: argparse.Namespace) -> None:
    from promolake import pipeline

    if args.stage == "generate":
        pipeline.run_generate(spark, cfg, force=args.force)
    elif args.stage == "ingest":
        pipeline.run_ingest(spark, cfg)
    elif args.stage == "import-online-retail":
        pipeline.run_import_online_retail(spark, cfg, args.path)
    elif args.stage == "features":
        pipeline.run_features(spark, cfg, args.as_of)
    elif args.stage == "train-als":
        pipeline.run_train_als(spark, cfg, args.as_of)
    elif args.stage == "train-text":
        pipeline.run_train_text(spark, cfg, args.as_of)
    elif args.stage == "train-uplift":
        pipeline.run_train_uplift(spark, cfg, args.as_of)
    elif args.stage == "validate-and-promote":
        pipeline.run_validate_and_promote(spark, cfg)
    elif args.stage == "score":
        pipeline.run_score(spark, cfg, args.campaign_id, args.as_of)
    elif args.stage == "evaluate-campaign":
        pipeline.run_evaluate_campaign(spark, cfg, args.campaign_id)
    elif args.stage == "report":
        pipeline.run_report(spark, cfg, args.campaign_id, args.as_of)
    elif args.stage == "run-all":
        pipeline.run_all(spark, cfg, force_generate=args.force_generate)
    elif args.stage == "tables":
        print_tables(spark, cfg)


def registry_command(cfg: Config, args: argparse.Namespace) -> int:
    """promote / rollback: the registry only, no Spark."""
    from mlflow import MlflowClient

    from promolake.common import tracking
    from promolake.ml import gate
    from promolake.ml.validate import model_name

    name = model_name(cfg, args.model)
    try:
        tracking.setup(cfg.mlflow, cfg.retries)
        if args.stage == "promote":
            said = gate.promote(MlflowClient(), name, args.version, args.reason)
        else:
            said = gate.rollback(MlflowClient(), name, args.reason)
    except Exception as err:  # noqa: BLE001 - unknown version, nothing to roll back, no server: one clear line
        print(f"promolake {args.stage}: {name}: {err}", file=sys.stderr)
        return 1
    print(f"{name}: {said}")
    return 0


def print_tables(spark, cfg: Config) -> None:
    from promolake.common.lake import Lake
    from promolake.common.reporting import StageReport

    lake = Lake(spark, cfg.lake)
    report = StageReport("tables")
    for name in lake.tables():
        report.record(table=name, rows=lake.read(name).count(), location=lake.location(name))
    report.print_summary()


if __name__ == "__main__":
    sys.exit(main())
