"""Batch text embeddings on Spark, and text candidates from them.

`embed` adds a unit-length `embedding` to every row of a DataFrame of texts, with a registered
text model (text_model.TextEncoder). Each Python worker loads the model once and keeps it for the
tasks it runs after (a module-level cache keyed by the model URI); a model alias is resolved to its
version on the driver, so every task of one job uses the same version even if the alias moves.
The executors load the model from the MLflow registry: they must reach it (on Databricks they do;
locally they share the driver's file system).

`text_candidates` turns user and item embeddings into each user's k best items by cosine similarity,
through promolake.ml.topk, so items nobody has bought yet (cold start) are ranked like any other.
"""
from __future__ import annotations

import re
from typing import Iterator

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from promolake.ml.als import task_slots
from promolake.ml.topk import top_k

TOWERS = ("user", "item")
CANDIDATE_COLUMNS = ("user_id", "item_id", "rank", "score")

_ENCODERS: dict[str, object] = {}


def embed(df: DataFrame, text_col: str, model_uri: str, tower: str, batch_size: int = 64,
          threads: int = 1, partitions: int = 0, precision: str = "off") -> DataFrame:
    """df with an `embedding` array<float> column: the unit embedding of text_col through `tower`.

    Args:
        model_uri: a text model as mlflow.pyfunc.load_model takes it (models:/<name>@<alias>,
            models:/<name>/<version>, runs:/..., a path).
        tower: "user" or "item".
        batch_size: texts encoded together (sorted by length inside each Arrow batch).
        threads: torch threads per Python worker; Spark already runs one worker per task slot.
        partitions: the least number of tasks the encoding runs in (0: twice the cluster's task
            slots, promolake.ml.als.task_slots). Encoding costs per row, not per byte, so
            a DataFrame read from one small file (every user text of a tenant can fit in one) would
            otherwise be encoded by one core while the others wait; fewer partitions than this are
            hash-repartitioned on the text, more are left as they are.
        precision: "off" (float32), "bf16" or "auto" (bf16 where the executor's CPU computes bfloat16
            natively; resolved on each executor), as text_model.encode_texts takes it.
    """
    from promolake.text.text_model import PRECISIONS

    import mlflow

    if tower not in TOWERS:
        raise ValueError(f"tower must be one of {TOWERS}, got {tower!r}")
    if text_col not in df.columns:
        raise ValueError(f"text_col {text_col!r} is not a column of df; it has {df.columns}")
    if batch_size < 1 or threads < 1:
        raise ValueError(f"batch_size and threads must be >= 1, got {batch_size}, {threads}")
    if partitions < 0:
        raise ValueError(f"partitions must be >= 0 (0: twice the task slots), got {partitions}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not partitions:
        sc = df.sparkSession.sparkContext
        partitions = 2 * task_slots(sc.master, sc.defaultParallelism)
    df = spread(df, text_col, partitions)
    uri = pinned_uri(model_uri)
    stores = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())

    @F.pandas_udf("array<float>")
    def encode(texts: Iterator[pd.Series]) -> Iterator[pd.Series]:
        encoder = cached_encoder(uri, *stores, threads=threads)
        for batch in texts:
            yield pd.Series(list(encoder.encode(batch.tolist(), tower, batch_size, precision)))

    return df.withColumn("embedding", encode(F.col(text_col)))


def spread(df: DataFrame, col: str, partitions: int) -> DataFrame:
    """df in at least `partitions` partitions: hash-repartitioned on col when it has fewer, else
    unchanged (no shuffle)."""
    if df.rdd.getNumPartitions() >= partitions:
        return df
    return df.repartition(partitions, col)


def pinned_uri(model_uri: str) -> str:
    """models:/<name>@<alias> -> models:/<name>/<version> (the version the alias names now); other
    URIs unchanged."""
    match = re.fullmatch(r"models:/(.+)@([^/@]+)", model_uri)
    if not match:
        return model_uri
    from mlflow import MlflowClient

    name, alias = match.groups()
    return f"models:/{name}/{MlflowClient().get_model_version_by_alias(name, alias).version}"


def cached_encoder(model_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None,
                   threads: int = 1):
    """The TextEncoder of model_uri, loaded once per process (pointing MLflow at the given stores
    first)."""
    if model_uri not in _ENCODERS:
        import mlflow
        import torch

        torch.set_num_threads(threads)
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        if registry_uri:
            mlflow.set_registry_uri(registry_uri)
        _ENCODERS[model_uri] = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    return _ENCODERS[model_uri]


def text_candidates(user_emb: DataFrame, item_emb: DataFrame, k: int, seen: DataFrame | None = None,
                    block_size: int = 4096) -> DataFrame:
    """Each user's k best items by cosine similarity of text embeddings.

    Returns user_id, item_id, rank (1 = best), score (float): min(k, items not seen) rows per user,
    equal scores to the item whose id sorts first.

    Args:
        user_emb: `user_id`, `embedding` array<float>, one row per user.
        item_emb: `item_id`, `embedding` array<float>, one row per item; collected to the driver.
        seen: optional `user_id`, `item_id` pairs never to recommend.
    """
    for name, df, key in (("user_emb", user_emb, "user_id"), ("item_emb", item_emb, "item_id")):
        missing = {key, "embedding"} - set(df.columns)
        if missing:
            raise ValueError(f"{name} lacks column(s) {sorted(missing)}; it has {df.columns}")
    users, items = _index(user_emb, "user_id"), _index(item_emb, "item_id")
    user_factors = user_emb.join(users, "user_id").select(F.col("idx").alias("id"), F.col("embedding").alias("features"))
    item_factors = item_emb.join(items, "item_id").select(F.col("idx").alias("id"), F.col("embedding").alias("features"))
    seen_idx = None
    if seen is not None:
        missing = {"user_id", "item_id"} - set(seen.columns)
        if missing:
            raise ValueError(f"seen lacks column(s) {sorted(missing)}; it has {seen.columns}")
        seen_idx = (seen.join(users, "user_id").select(F.col("idx").alias("user"), "item_id")
                    .join(items, "item_id").select("user", F.col("idx").alias("item")))
    ranked = top_k(user_factors, item_factors, k, seen=seen_idx, block_size=block_size, normalize=True)
    return (ranked.join(users.withColumnRenamed("idx", "user"), "user")
            .join(items.withColumnRenamed("idx", "item"), "item")
            .select("user_id", "item_id", "rank", F.col("score").cast("float")))


def _index(df: DataFrame, key: str) -> DataFrame:
    """key -> idx (int, 0-based, in key order) over the distinct keys; only the keys move to one
    partition."""
    keys = df.select(key).distinct()
    return keys.select(key, (F.row_number().over(Window.orderBy(key)) - 1).cast("int").alias("idx"))
