"""Implicit-feedback ALS with two engines behind one interface.

- `spark`: pyspark.ml ALS (implicitPrefs), tuned for the cluster: one block per core instead of the
  default 10 x 10, configurable storage levels, checkpointing to cut long lineages.
- `single_node`: the `implicit` library's conjugate-gradient ALS on a scipy CSR matrix collected to the
  driver; about an order of magnitude faster when the matrix fits one machine.
- `auto`: single_node up to `als.single_node_max_interactions` (user, item) pairs, spark above.

Both take interactions (user, item, confidence) with dense integer ids and return factor DataFrames in
Spark's shape (id int, features array<float>), so top-k, evaluation and the tables do not care which
engine ran. The two solvers differ in two documented ways: Spark uses confidence 1 + alpha x r and scales
the regularisation by each user's (item's) number of interactions (ALS-WR); `implicit` uses alpha x r and
a constant regularisation. `single_node` therefore passes reg_param x (mean interactions per user) so that
the same reg_param gives models of similar strength; the tuner searches each engine's own optimum anyway.
"""
from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from promolake.common.config import AlsConf

FACTOR_SCHEMA = T.StructType([T.StructField("id", T.IntegerType()),
                              T.StructField("features", T.ArrayType(T.FloatType()))])


@dataclass(frozen=True)
class AlsParams:
    rank: int
    reg_param: float
    alpha: float
    max_iter: int
    seed: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Factors:
    users: DataFrame          # id, features
    items: DataFrame          # id, features
    engine: str
    fit_seconds: float
    pairs: int

    def persist(self) -> "Factors":
        self.users = self.users.cache()
        self.items = self.items.cache()
        return self

    def unpersist(self) -> None:
        self.users.unpersist()
        self.items.unpersist()


def choose_engine(conf: AlsConf, pairs: int) -> str:
    """The engine to run: the configured one, or for `auto` single_node up to the size limit."""
    if conf.engine != "auto":
        return conf.engine
    return "single_node" if pairs <= conf.single_node_max_interactions else "spark"


def fit(spark: SparkSession, interactions: DataFrame, params: AlsParams, conf: AlsConf,
        engine: str | None = None, pairs: int | None = None) -> Factors:
    """Fit ALS on interactions (user int, item int, confidence double) with the chosen engine."""
    pairs = interactions.count() if pairs is None else pairs
    if pairs == 0:
        raise ValueError("no interactions to train ALS on (is the history window empty?)")
    engine = engine or choose_engine(conf, pairs)
    started = time.perf_counter()
    if engine == "spark":
        users, items = _fit_spark(spark, interactions, params, conf)
    elif engine == "single_node":
        users, items = _fit_single_node(spark, interactions, params)
    else:
        raise ValueError(f"unknown ALS engine {engine!r}; use spark, single_node or auto")
    return Factors(users, items, engine, time.perf_counter() - started, pairs)


def spark_als(params: AlsParams, conf: AlsConf, parallelism: int, tuned: bool = True):
    """The pyspark.ml ALS estimator; tuned=False gives Spark's defaults (10 x 10 blocks, no checkpoint
    dir change) for the benchmark's baseline."""
    from pyspark.ml.recommendation import ALS

    als = ALS(userCol="user", itemCol="item", ratingCol="confidence", implicitPrefs=True, rank=params.rank,
              regParam=params.reg_param, alpha=params.alpha, maxIter=params.max_iter, seed=params.seed,
              coldStartStrategy="drop")
    if tuned:
        sc = conf.spark
        als = als.setNumUserBlocks(sc.user_blocks or parallelism).setNumItemBlocks(sc.item_blocks or parallelism) \
            .setIntermediateStorageLevel(sc.intermediate_storage).setFinalStorageLevel(sc.final_storage) \
            .setCheckpointInterval(sc.checkpoint_interval)
    return als


def task_slots(master: str, default_parallelism: int) -> int:
    """Cores that run tasks at once: N of local[N] (local[*]: this machine's cores), else the
    cluster's default parallelism (Spark sets it to the executors' total cores). The local config
    raises spark.default.parallelism for shuffles, so it is not the core count there."""
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if m:
        n = m.group(1)
        return (os.cpu_count() or 1) if n == "*" else int(n or 1)
    return max(1, default_parallelism)


def _fit_spark(spark: SparkSession, interactions: DataFrame, params: AlsParams, conf: AlsConf):
    sc = spark.sparkContext
    if conf.spark.checkpoint_dir and conf.spark.checkpoint_interval > 0 and not sc.getCheckpointDir():
        sc.setCheckpointDir(conf.spark.checkpoint_dir)
    model = spark_als(params, conf, task_slots(sc.master, sc.defaultParallelism)).fit(interactions)
    return model.userFactors, model.itemFactors


def _fit_single_node(spark: SparkSession, interactions: DataFrame, params: AlsParams):
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    pdf = interactions.select("user", "item", "confidence").toPandas()
    n_users, n_items = int(pdf.user.max()) + 1, int(pdf.item.max()) + 1
    matrix = sp.csr_matrix((pdf.confidence.to_numpy(np.float32), (pdf.user.to_numpy(), pdf.item.to_numpy())),
                           shape=(n_users, n_items))
    mean_per_user = len(pdf) / max(pdf.user.nunique(), 1)
    # implicit parallelises itself; nested BLAS threads only slow it down (its constructor warns about
    # the process-wide OpenBLAS setting even inside the limit, hence the filter)
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="OpenBLAS is configured")
        model = AlternatingLeastSquares(factors=params.rank, regularization=params.reg_param * mean_per_user,
                                        alpha=params.alpha, iterations=params.max_iter, random_state=params.seed,
                                        calculate_training_loss=False, num_threads=os.cpu_count() or 0)
        model.fit(matrix, show_progress=False)
    return (_to_spark(spark, model.user_factors, np.unique(pdf.user.to_numpy())),
            _to_spark(spark, model.item_factors, np.unique(pdf.item.to_numpy())))


def _to_spark(spark: SparkSession, matrix: np.ndarray, ids: np.ndarray) -> DataFrame:
    """Rows `ids` of a factor matrix as a (id, features) DataFrame, like ALSModel.userFactors."""
    rows = np.asarray(matrix[ids], dtype=np.float32)
    pdf = pd.DataFrame({"id": ids.astype(np.int32), "features": list(rows)})
    return spark.createDataFrame(pdf, FACTOR_SCHEMA)


def factors_to_numpy(factors: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ids, matrix) of a factor DataFrame, collected to the driver (items; or users in tests)."""
    pdf = factors.select("id", "features").toPandas().sort_values("id")
    if pdf.empty:
        return np.zeros(0, np.int32), np.zeros((0, 0), np.float32)
    return pdf.id.to_numpy(np.int32), np.stack(pdf.features.map(lambda v: np.asarray(v, np.float32)).to_list())


def indexed(interactions: DataFrame, user_index: DataFrame, item_index: DataFrame) -> DataFrame:
    """interactions (user_id, item_id, confidence) -> (user, item, confidence) with the stored indices."""
    return (interactions.join(user_index.select("user_id", F.col("user_idx").alias("user")), "user_id")
            .join(item_index.select("item_id", F.col("item_idx").alias("item")), "item_id")
            .select("user", "item", F.col("confidence").cast("double")))
