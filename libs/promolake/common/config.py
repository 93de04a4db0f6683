"""Configuration: conf/base.yml + conf/<env>.yml + --conf overrides + PROMOLAKE__* environment
variables, merged in that order and validated into frozen, typed objects.

Nothing else in the package reads YAML or the environment: stages receive these objects.
A misspelt key or a wrong type raises ConfigError naming the key and the file it came from.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from promolake.common.pydantic_compat import (Field, StrictModel, ValidationError, field_validator, is_unknown_key,
                                              model_validator)

ENVIRONMENTS = ("local", "dev", "staging", "prod")
ENV_PREFIX = "PROMOLAKE__"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SOURCES = ("users", "items", "campaigns", "campaign_items", "events", "reviews", "exposures", "redemptions")


class ConfigError(ValueError):
    """Raised when configuration cannot be loaded; the message names each bad key and its origin."""


def validate_identifier(value: str, what: str = "identifier") -> str:
    """Return value if it is a plain SQL identifier (letters, digits, underscore), else raise ValueError."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r} is not a plain identifier (letters, digits, _; not starting with a digit)")
    return value


class _Strict(StrictModel):
    """Unknown keys are errors; values are frozen (pydantic 2 or 1.10: promolake.common.pydantic_compat)."""


class SparkConf(_Strict):
    """Local Spark settings; ignored on Databricks, where the cluster's session is used."""

    master: str = "local[2]"
    app_name: str = "promolake"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(4, ge=1)
    log_level: Literal["ERROR", "WARN", "INFO"] = "WARN"
    show_progress: bool = True
    extra: dict[str, str] = Field(default_factory=dict)


class LakeConf(_Strict):
    """Where logical tables live: path-based Delta under `root`, or Unity Catalog `catalog.<schema>.<table>`."""

    mode: Literal["path", "unity_catalog"] = "path"
    root: str = "lakehouse"
    catalog: str | None = None
    schemas: dict[Literal["bronze", "silver", "gold", "ml", "promo", "ops"], str] = Field(
        default_factory=lambda: {l: l for l in ("bronze", "silver", "gold", "ml", "promo", "ops")}
    )

    @field_validator("catalog")
    @classmethod
    def _catalog(cls, v: str | None) -> str | None:
        return None if v is None else validate_identifier(v, "catalog")

    @field_validator("schemas")
    @classmethod
    def _schemas(cls, v: dict[str, str]) -> dict[str, str]:
        for layer, name in v.items():
            validate_identifier(name, f"schema for layer {layer}")
        return v

    @model_validator(mode="after")
    def _uc_needs_catalog(self) -> "LakeConf":
        if self.mode == "unity_catalog" and not self.catalog:
            raise ValueError("lake.mode unity_catalog needs lake.catalog")
        return self


class LandingConf(_Strict):
    """The landing directory: one sub-folder per source (docs/data-contract.md)."""

    root: str = "lakehouse/landing"


class WorldConf(_Strict):
    """Size and seed of the generated synthetic world (promolake generate)."""

    seed: int = 42
    users: int = Field(20_000, ge=10)
    items: int = Field(2_000, ge=50)
    new_item_share: float = Field(0.15, ge=0, le=0.9)   # items launched during the period (up to its last day)
    days: int = Field(365, ge=30)
    start_date: dt.date = dt.date(2025, 1, 1)
    sessions_per_user_day: float = Field(0.06, gt=0, le=5)
    campaigns: int = Field(8, ge=0, le=50)
    campaign_days: int = Field(14, ge=3, le=60)
    targeted_share: float = Field(0.35, gt=0, le=1)
    treatment_share: float = Field(0.8, gt=0, lt=1)
    dirty_fraction: float = Field(0.001, ge=0, le=0.2)
    users_per_task: int = Field(2_500, ge=100)
    truth_root: str = "lakehouse/truth"


class PiiConf(_Strict):
    """Where the salt for hashing direct identifiers comes from (never from a config file)."""

    salt_env_var: str = "PROMOLAKE_PII_SALT"
    secret_scope: str | None = None
    secret_key: str | None = None
    local_salt_file: str | None = None


class IngestConf(_Strict):
    """Landing -> bronze -> silver rules that are settings rather than contract."""

    sources: tuple[Literal[SOURCES], ...] = SOURCES  # type: ignore[valid-type]
    check_orphans: bool = True
    max_text_length: int = Field(20_000, ge=100)
    min_timestamp: dt.datetime = dt.datetime(2000, 1, 1)
    future_tolerance_hours: int = Field(24, ge=0)


class UserTextConf(_Strict):
    """How user_text (the language model's view of a user) is assembled: newest first, per kind."""

    lookback_days: int = Field(90, ge=1)
    max_queries: int = Field(5, ge=0)
    max_bought: int = Field(5, ge=0)
    max_viewed: int = Field(5, ge=0)
    max_reviews: int = Field(2, ge=0)
    review_snippet_chars: int = Field(120, ge=10)
    max_chars: int = Field(512, ge=32)


class SegmentConf(_Strict):
    """k-means segmentation of the numeric user profile (Spark ML)."""

    k: int = Field(6, ge=2, le=50)
    seed: int = 7
    max_iter: int = Field(40, ge=1)


class TrendConf(_Strict):
    """Market trend: the trend is the robust (Theil-Sen) log-linear growth over the trailing window, per 28 days."""

    window_days: int = Field(84, ge=14)
    threshold: float = Field(0.05, gt=0, le=1)
    seasonality_weeks: int = Field(8, ge=2)
    history_days: int = Field(365, ge=28)


class ForecastConf(_Strict):
    """Weekly category sales forecast (statsmodels ETS per category, run in parallel on Spark)."""

    horizon_weeks: int = Field(4, ge=1, le=26)
    backtest_weeks: int = Field(4, ge=1, le=26)
    min_history_weeks: int = Field(12, ge=6)


class QualityConf(_Strict):
    """Data-quality gates run on every gold table before it is written."""

    row_count_tolerance: float = Field(0.25, ge=0)
    fail_on_error: bool = True


class FeaturesConf(_Strict):
    """Gold feature tables (promolake features)."""

    top_n: int = Field(5, ge=1, le=50)
    negative_rating_max: int = Field(2, ge=1, le=4)
    new_item_days: int = Field(30, ge=1)
    item_text_max_chars: int = Field(512, ge=32)
    user_text: UserTextConf = UserTextConf()
    segments: SegmentConf = SegmentConf()
    trend: TrendConf = TrendConf()
    forecast: ForecastConf = ForecastConf()
    quality: QualityConf = QualityConf()
    reports_root: str = "lakehouse/reports"


class RetryConf(_Strict):
    """Transient failures (a landing file that cannot be read for a moment, an unavailable MLflow server
    or a locked registry store): tried up to `attempts` times, waiting initial_backoff_s, then twice as
    long each time up to max_backoff_s, before the stage fails with a message saying what and why."""

    attempts: int = Field(4, ge=1, le=20)
    initial_backoff_s: float = Field(1.0, gt=0, le=60)
    max_backoff_s: float = Field(30.0, gt=0, le=600)


class MlflowConf(_Strict):
    """Where runs and registered models go. Locally: a sqlite tracking store (which gives a model
    registry with aliases) and an artifact folder under the lake home; on Databricks: "databricks"
    and Unity Catalog's registry ("databricks-uc", model names catalog.schema.model)."""

    tracking_uri: str = "sqlite:///lakehouse/mlflow/mlflow.db"
    registry_uri: str | None = None
    artifact_location: str | None = None
    experiment: str = "/Shared/promolake"


class EventWeights(_Strict):
    """Confidence added by one event of each type (implicit feedback)."""

    view: float = Field(1.0, ge=0)
    cart: float = Field(3.0, ge=0)
    purchase: float = Field(8.0, ge=0)


class TuningConf(_Strict):
    """Hyper-parameter search (optuna TPE, seeded); each trial is an MLflow child run."""

    trials: int = Field(8, ge=1, le=500)
    seed: int = 13
    rank: tuple[int, int] = (8, 64)
    reg_param: tuple[float, float] = (0.001, 1.0)
    alpha: tuple[float, float] = (1.0, 80.0)
    objective: Literal["ndcg", "map", "recall", "precision"] = "ndcg"
    objective_view: Literal["all", "new"] = "new"


class SparkAlsConf(_Strict):
    """Spark MLlib ALS settings. 0 blocks = the cluster's default parallelism (one block per core)."""

    user_blocks: int = Field(0, ge=0)
    item_blocks: int = Field(0, ge=0)
    intermediate_storage: str = "MEMORY_AND_DISK"
    final_storage: str = "MEMORY_AND_DISK"
    checkpoint_interval: int = Field(10, ge=-1)
    checkpoint_dir: str | None = None


class BlendConf(_Strict):
    """Final candidates: reciprocal-rank fusion of the sources, score = sum_s w_s / (c + rank_s).
    The weights are chosen on the validation split from the grids below (ALS's weight is 1)."""

    rrf_constant: float = Field(10.0, gt=0)
    repeat_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    segment_weights: tuple[float, ...] = (0.0, 0.25, 0.5)
    popularity_weights: tuple[float, ...] = (0.0, 0.25)
    pool: int = Field(50, ge=1, le=1000)


class AlsConf(_Strict):
    """Implicit-feedback collaborative filtering (issue: ALS candidates)."""

    engine: Literal["spark", "single_node", "auto"] = "auto"
    single_node_max_interactions: int = Field(20_000_000, ge=0)
    weights: EventWeights = EventWeights()
    half_life_days: float = Field(90.0, gt=0)
    history_days: int = Field(365, ge=7)
    horizon_days: int = Field(28, ge=1)
    active_days: int = Field(90, ge=1)
    popularity_days: int = Field(28, ge=1)
    k: int = Field(10, ge=1, le=1000)
    candidates: int = Field(50, ge=1, le=1000)
    similar_items: int = Field(20, ge=1, le=500)
    rank: int = Field(32, ge=2, le=1024)
    reg_param: float = Field(0.05, gt=0)
    alpha: float = Field(20.0, gt=0)
    max_iter: int = Field(10, ge=1, le=100)
    seed: int = 42
    tune: bool = True
    tuning: TuningConf = TuningConf()
    spark: SparkAlsConf = SparkAlsConf()
    blend: BlendConf = BlendConf()
    model_name: str = "promolake_als"


class TextConf(_Strict):
    """BERT two-tower text model (issue: text model). Lengths are in WordPiece tokens."""

    checkpoint: str = "packaged:all-MiniLM-L6-v2"   # packaged:<name>, a local path or a hub id
    max_user_len: int = Field(64, ge=8, le=512)
    max_item_len: int = Field(48, ge=8, le=512)
    projection_dim: int = Field(0, ge=0, le=4096)    # 0: no projection head, the pooled BERT vector
    temperature: float = Field(0.05, gt=0, le=10)
    batch_size: int = Field(32, ge=2, le=4096)       # per worker
    epochs: int = Field(1, ge=1, le=100)
    learning_rate: float = Field(5e-5, gt=0, lt=1)   # for one worker; scaled by the world size
    warmup_steps: int = Field(10, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_accumulation: int = Field(1, ge=1, le=256)
    mixed_precision: Literal["off", "auto", "bf16", "fp16"] = "off"   # auto: fp16 on GPU, bf16 on a CPU with native bf16, else off
    length_bucket_batches: int = Field(16, ge=1, le=1024)   # batches sorted together by length
    engine: Literal["horovod", "torch_distributor", "local"] = "horovod"
    num_proc: int = Field(2, ge=1, le=1024)          # workers: GPUs on Databricks, processes locally
    use_gpu: bool = False
    max_pairs: int = Field(0, ge=0)                  # 0: all training pairs, else a seeded sample
    training_windows: int = Field(1, ge=1, le=52)    # consecutive horizon windows before the test cut
    validation_share: float = Field(0.1, ge=0, lt=1)   # users held out of training for per-epoch metrics
    validation_users: int = Field(500, ge=0)
    petastorm_cache: str = "file:///tmp/promolake-petastorm"
    checkpoint_dir: str = "/tmp/promolake-text-checkpoints"
    embed_batch_size: int = Field(64, ge=1, le=8192)
    embed_partitions: int = Field(0, ge=0)           # least tasks that encode; 0: twice the task slots
    embed_precision: Literal["off", "auto", "bf16"] = "off"   # auto: bf16 where the CPU has it natively
    k: int = Field(10, ge=1, le=1000)
    candidates: int = Field(50, ge=1, le=1000)
    text_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)   # grid for the text list in the blend
    seed: int = 7
    model_name: str = "promolake_text"


OFFER_TYPES = ("percent_off", "amount_off", "spend_threshold", "gift")
OFFER_SCOPES = ("item", "category", "basket")


class OfferConf(_Strict):
    """One offer of a campaign defined in config (same fields as the campaigns landing source)."""

    offer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    offer_type: Literal[OFFER_TYPES]  # type: ignore[valid-type]
    value: float = Field(gt=0)                      # percent for percent_off, else currency
    min_spend: float | None = Field(None, gt=0)     # spend_threshold and gift need it
    scope: Literal[OFFER_SCOPES] = "basket"  # type: ignore[valid-type]
    scope_value: str | None = None                  # category name, item id, or the gift's item id

    @model_validator(mode="after")
    def _consistent(self) -> "OfferConf":
        if self.offer_type == "percent_off" and self.value > 100:
            raise ValueError(f"offer {self.offer_id}: percent_off value must be in (0, 100], got {self.value}")
        if self.offer_type in ("spend_threshold", "gift") and self.min_spend is None:
            raise ValueError(f"offer {self.offer_id}: {self.offer_type} needs min_spend")
        if self.offer_type == "gift" and not self.scope_value:
            raise ValueError(f"offer {self.offer_id}: a gift names its item in scope_value")
        if self.scope == "category" and not self.scope_value:
            raise ValueError(f"offer {self.offer_id}: category scope needs the category in scope_value")
        return self


class CampaignConf(_Strict):
    """A campaign defined in config: its window starts on the scoring date (as_of) unless `start` is set."""

    start: dt.date | None = None
    days: int = Field(14, ge=1, le=365)
    offers: tuple[OfferConf, ...]

    @field_validator("offers")
    @classmethod
    def _some_offers(cls, v: tuple[OfferConf, ...]) -> tuple[OfferConf, ...]:
        if not v:
            raise ValueError("a campaign needs at least one offer")
        return v


class PromotionConf(_Strict):
    """Promotion engine (issue: promotion engine): scoring, allocation and measurement."""

    campaign_id: str = "DEMO01"                  # campaign scored when none is given on the command line
    campaigns: dict[str, CampaignConf] = {}     # campaigns defined here, besides silver.campaigns
    budget: float = Field(2000.0, ge=0)         # total expected cost allowed per campaign
    max_offers_per_user: int = Field(1, ge=1, le=20)
    cooldown_days: int = Field(14, ge=0)        # no offer to users exposed to a campaign this recently
    active_days: int = Field(90, ge=1)          # eligible: an event in the last this many days
    min_orders: int = Field(0, ge=0)            # eligible: at least this many orders in the last 365 days
    exclude_users: tuple[str, ...] = ()         # never targeted (e.g. staff accounts)
    caps_per_offer: dict[str, float] = {}       # offer_id -> max expected cost
    caps_per_category: dict[str, float] = {}    # category -> max expected cost (category-scoped offers)
    control_share: float = Field(0.1, ge=0, lt=1)    # random users held out with no offer
    explore_share: float = Field(0.05, ge=0, lt=1)   # random users given a random eligible offer
    explore_budget_share: float = Field(0.2, ge=0, le=1)   # exploration may spend at most this share of the budget
    margin_rate: float = Field(0.3, gt=0, lt=1)      # gross margin when an item has no unit_cost
    redeem_share: float | None = Field(None, gt=0, le=1)   # share of treated buyers who redeem; None: learned
    item_candidates: int = Field(5, ge=1, le=100)    # item-scoped offers: this many of the user's candidates
    holdout_share: float = Field(0.3, gt=0, lt=1)    # latest campaigns' share of exposures held out
    learner: Literal["x", "t"] = "x"
    seed: int = 17
    model_name: str = "promolake_uplift"

    @model_validator(mode="after")
    def _shares(self) -> "PromotionConf":
        if self.control_share + self.explore_share >= 1:
            raise ValueError("control_share + explore_share must be below 1")
        for cid, camp in self.campaigns.items():
            ids = [o.offer_id for o in camp.offers]
            if len(set(ids)) != len(ids):
                raise ValueError(f"campaign {cid}: offer ids repeat: {ids}")
        return self


class GateConf(_Strict):
    """Thresholds of one registered model's promotion gate; every metric is "higher is better".
    minimums: the challenger's holdout value must reach these; tolerances: it may fall at most this
    far below the champion's value on the same holdout."""

    minimums: dict[str, float] = Field(default_factory=dict)
    tolerances: dict[str, float] = Field(default_factory=dict)

    @field_validator("tolerances")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: t for k, t in v.items() if t < 0}
        if bad:
            raise ValueError(f"tolerances must be >= 0, got {bad}")
        return v


GATE_METRICS = {
    "als": ("ndcg", "recall", "precision", "map", "hit_rate", "coverage", "novelty"),
    "text": ("ndcg", "recall", "precision", "map", "hit_rate", "coverage", "novelty"),
    "uplift": ("qini", "auuc", "auc_treated", "auc_control", "uplift_at_10pct", "uplift_at_30pct", "auc_redeem"),
}


class ValidationConf(_Strict):
    """validate-and-promote (issue: registry): does each model's @challenger replace its @champion?
    mode: disabled (nothing evaluated), dry_run (verdicts reported, registry untouched), enabled."""

    mode: Literal["disabled", "dry_run", "enabled"] = "enabled"
    models: list[Literal["als", "text", "uplift"]] = ["als", "text", "uplift"]
    als: GateConf = GateConf(minimums={"ndcg": 0.01}, tolerances={"ndcg": 0.005, "recall": 0.01})
    text: GateConf = GateConf(minimums={"ndcg": 0.005}, tolerances={"ndcg": 0.005})
    uplift: GateConf = GateConf(minimums={"auc_treated": 0.55}, tolerances={"qini": 0.02, "auc_treated": 0.01})

    @model_validator(mode="after")
    def _known_metrics(self) -> "ValidationConf":
        for kind, known in GATE_METRICS.items():
            gate = getattr(self, kind)
            unknown = sorted((set(gate.minimums) | set(gate.tolerances)) - set(known))
            if unknown:
                raise ValueError(f"validation.{kind}: unknown metrics {unknown}; known: {list(known)}")
        return self


class Config(_Strict):
    env: Literal[ENVIRONMENTS]  # type: ignore[valid-type]
    spark: SparkConf = SparkConf()
    lake: LakeConf = LakeConf()
    landing: LandingConf = LandingConf()
    world: WorldConf = WorldConf()
    pii: PiiConf = PiiConf()
    ingest: IngestConf = IngestConf()
    features: FeaturesConf = FeaturesConf()
    mlflow: MlflowConf = MlflowConf()
    retries: RetryConf = RetryConf()
    als: AlsConf = AlsConf()
    text: TextConf = TextConf()
    promotion: PromotionConf = PromotionConf()
    validation: ValidationConf = ValidationConf()


def default_conf_dir() -> Path:
    """conf/ of the source checkout, else the copy packaged into the wheel."""
    env_dir = os.environ.get("PROMOLAKE_CONF_DIR")
    if env_dir:
        return Path(env_dir)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "conf" / "base.yml").is_file() and (parent / "setup.py").is_file():
            return parent / "conf"
    return here.parent.parent / "conf"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _merge(base: dict, overlay: Mapping, origin: str, origins: dict[str, str], prefix: str = "") -> dict:
    """Deep-merge overlay into base, recording for each dotted key the file that set it last."""
    out = dict(base)
    for key, value in overlay.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value, origin, origins, dotted + ".")
        else:
            out[key] = value
            origins[dotted] = origin
    return out


def _nest(dotted: str, value: Any) -> dict:
    node: Any = value
    for part in reversed(dotted.split(".")):
        node = {part: node}
    return node


_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Expand ${VAR} and ${VAR:-default} in strings (paths such as ${HOME}); nothing else."""
    if isinstance(value, dict):
        return {k: _interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, environ) for v in value]
    if isinstance(value, str):
        def repl(m: re.Match) -> str:
            if m.group(1) in environ:
                return environ[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            raise ConfigError(f"environment variable {m.group(1)} is not set (used in {value!r})")
        return _INTERPOLATION.sub(repl, value)
    return value


def _origin_of(loc: Sequence[Any], origins: Mapping[str, str]) -> str:
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        hit = origins.get(".".join(parts[:n]))
        if hit:
            return hit
    return "defaults"


def load_config(
    env: str = "local",
    overrides: Sequence[str] = (),
    conf_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate the configuration for one environment.

    Args:
        env: one of local, dev, staging, prod (selects conf/<env>.yml).
        overrides: "dotted.key=value" strings (value parsed as YAML), applied after the files.
        conf_dir: folder holding base.yml and the overlays; defaults to the project's conf/.
        environ: environment used for PROMOLAKE__SECTION__KEY overrides and ${VAR} expansion.
    Returns:
        A frozen Config.
    Raises:
        ConfigError: naming every bad key, its value's origin and what was expected.
    """
    environ = os.environ if environ is None else environ
    conf_dir = Path(conf_dir) if conf_dir else default_conf_dir()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {env!r}; expected one of {', '.join(ENVIRONMENTS)}")
    base_file, env_file = conf_dir / "base.yml", conf_dir / f"{env}.yml"
    for f in (base_file, env_file):
        if not f.is_file():
            raise ConfigError(f"configuration file {f} not found")
    origins: dict[str, str] = {}
    merged = _merge({}, _read_yaml(base_file), str(base_file), origins)
    merged = _merge(merged, _read_yaml(env_file), str(env_file), origins)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf {item!r}: expected dotted.key=value")
        merged = _merge(merged, _nest(key.strip(), yaml.safe_load(raw)), f"--conf {key.strip()}", origins)
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX):
            dotted = ".".join(p.lower() for p in name[len(ENV_PREFIX):].split("__"))
            merged = _merge(merged, _nest(dotted, yaml.safe_load(environ[name])), f"environment {name}", origins)
    merged["env"] = env
    origins["env"] = "--env"
    merged = _interpolate(merged, environ)
    try:
        return Config.model_validate(merged)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            reason = "unknown key (misspelt?)" if is_unknown_key(e) else e["msg"]
            got = "" if is_unknown_key(e) or "input" not in e else f" (got {e['input']!r})"
            lines.append(f"  {key}: {reason}{got} [from {_origin_of(e['loc'], origins)}]")
        raise ConfigError(f"invalid configuration for env {env!r}:\n" + "\n".join(lines)) from None
