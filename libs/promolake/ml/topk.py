"""ml.topk: the k best items per user from factor matrices (one row per user, item, rank), computed
block by block with numpy instead of ALSModel.recommendForAllUsers' cross join.

The item matrix is collected to the driver and shipped to every task with the mapInPandas function
(PySpark broadcasts a pickled function that is larger than its broadcast threshold, and a closure
also works on Spark Connect and shared clusters, where sparkContext is unavailable). Each task stacks
`block_size` users into U and scores them with one float32 product U @ V.T, so nothing of size
users x items exists beyond one block.

Ranking: higher score first; equal scores go to the smaller item id, at the cut-off at k too.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

TOP_K_SCHEMA = "user int, item int, rank int, score float"


def top_k(user_factors: DataFrame, item_factors: DataFrame, k: int, seen: DataFrame | None = None,
          block_size: int = 4096, normalize: bool = False) -> DataFrame:
    """Top-k items per user by dot product (cosine when normalize=True) of their factor vectors.

    Returns one row per (user, item) recommended, with columns user, item, rank (1 = best) and score
    (float32), min(k, eligible items) rows per user; eligible items are those of item_factors that the
    user has not seen, so a user who has seen every item gets no rows. Equal scores rank the smaller
    item id first. Under normalize=True a zero vector scores 0 against everything.

    Args:
        user_factors: `id` int, `features` array<float>: one row per user, as ALSModel.userFactors.
        item_factors: `id` int, `features` array<float>: one row per item, as ALSModel.itemFactors;
            collected to the driver, so it must fit in memory there (items x rank floats).
        k: how many items per user, at least 1.
        seen: optional (`user`, `item`) int pairs never to recommend; pairs whose user or item has no
            factors are ignored.
        block_size: users scored together; a block's score matrix holds block_size x items floats.
        normalize: rank by cosine similarity instead of dot product.

    Collects the items when called (ValueError at once if their vectors differ in length). A user vector
    of another length than the items' fails the job that computes the result, with the same message (checked
    block by block while scoring: a separate check would be one more job recomputing user_factors' plan).
    """
    _check_arguments(user_factors, item_factors, k, seen, block_size)
    item_ids, V = _collect_items(item_factors)
    if len(item_ids) == 0:
        return user_factors.sparkSession.createDataFrame([], TOP_K_SCHEMA)
    if normalize:
        V = _unit_rows(V)
    users = user_factors.select(F.col("id").cast("int"), F.col("features").cast("array<float>"))
    if seen is None:
        users = users.withColumn("seen", F.lit(None).cast("array<int>"))
    else:
        seen_lists = (seen.select(F.col("user").cast("int").alias("id"), F.col("item").cast("int"))
                      .groupBy("id").agg(F.collect_set("item").alias("seen")))
        users = users.join(seen_lists, on="id", how="left")
    return users.mapInPandas(score_partition(item_ids, V, k, block_size, normalize), TOP_K_SCHEMA)


def similar_items(item_factors: DataFrame, k: int, block_size: int = 4096) -> DataFrame:
    """For every item, its k nearest other items by cosine similarity of factor vectors.

    Returns columns item, neighbour, rank (1 = most similar), similarity (float32); min(k, items - 1)
    rows per item, never the item itself, equal similarities to the smaller neighbour id first. An item
    whose vector is all zeros has no cosine similarity: it gets no rows and is nobody's neighbour.
    """
    if not isinstance(item_factors, DataFrame):
        raise TypeError(f"item_factors must be a DataFrame, got {type(item_factors).__name__}")
    items = item_factors.where(F.exists("features", lambda x: x != 0))
    itself = items.select(F.col("id").alias("user"), F.col("id").alias("item"))
    return (top_k(items, items, k, seen=itself, block_size=block_size, normalize=True)
            .select(F.col("user").alias("item"), F.col("item").alias("neighbour"), "rank",
                    F.col("score").alias("similarity")))


def score_partition(item_ids: np.ndarray, V: np.ndarray, k: int, block_size: int,
                    normalize: bool) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """Return the mapInPandas function that turns batches of (id, features, seen) users into their
    top-k rows (TOP_K_SCHEMA); item_ids must be sorted ascending and index the rows of V."""
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for block in _blocks(batches, block_size):
            _check_user_rank(block["features"].to_numpy(), V.shape[1])
            U = np.stack(block["features"].to_numpy()).astype(np.float32, copy=False)
            if normalize:
                U = _unit_rows(U)
            yield top_k_block(block["id"].to_numpy(np.int32), U, block["seen"].to_numpy(), item_ids, V, k)
    return score


def top_k_block(user_ids: np.ndarray, U: np.ndarray, seen_lists: np.ndarray, item_ids: np.ndarray,
                V: np.ndarray, k: int) -> pd.DataFrame:
    """Return the top-k rows (TOP_K_SCHEMA) of one block of users: U is users x rank, seen_lists holds
    each user's seen item ids (or None), item_ids (sorted) name the rows of V."""
    m = min(k, len(item_ids))
    # Scores are negated in place so that ascending order is best first and seen items (+inf) last.
    neg = U @ V.T
    np.negative(neg, out=neg)
    rows, cols = _seen_cells(seen_lists, item_ids)
    neg[rows, cols] = np.inf
    best = np.argpartition(neg, m - 1, axis=1)[:, :m]
    _prefer_small_ids_at_cut(neg, best)
    best_neg = np.take_along_axis(neg, best, axis=1)
    order = np.lexsort((best, best_neg), axis=1)
    best = np.take_along_axis(best, order, axis=1)
    best_neg = np.take_along_axis(best_neg, order, axis=1)
    eligible = np.isfinite(best_neg).ravel()
    return pd.DataFrame({
        "user": np.repeat(user_ids.astype(np.int32), m)[eligible],
        "item": item_ids[best].ravel()[eligible],
        "rank": np.tile(np.arange(1, m + 1, dtype=np.int32), len(user_ids))[eligible],
        "score": (-best_neg).ravel()[eligible].astype(np.float32),
    })


def brute_force_top_k(U: np.ndarray, V: np.ndarray, k: int, seen: dict[int, set[int]] | None = None,
                      user_ids=None, item_ids=None) -> list[tuple[int, int, int, float]]:
    """Reference top-k in float64, one user at a time: (user, item, rank, score) tuples, best first,
    equal scores to the smaller item id, items in seen[user] left out. Ids default to row positions;
    for cosine, pass U and V with unit rows."""
    U, V = np.asarray(U, dtype=np.float64), np.asarray(V, dtype=np.float64)
    if U.ndim != 2 or V.ndim != 2 or U.shape[1] != V.shape[1]:
        raise ValueError(f"U and V must be matrices of the same rank, got shapes {U.shape} and {V.shape}")
    user_ids = np.arange(len(U)) if user_ids is None else np.asarray(user_ids)
    item_ids = np.arange(len(V)) if item_ids is None else np.asarray(item_ids)
    scores = U @ V.T
    out = []
    for i, user in enumerate(user_ids):
        excluded = (seen or {}).get(int(user), set())
        allowed = np.array([int(item) not in excluded for item in item_ids], dtype=bool)
        ids, s = item_ids[allowed], scores[i, allowed]
        for rank, j in enumerate(np.lexsort((ids, -s))[:k], start=1):
            out.append((int(user), int(ids[j]), rank, float(s[j])))
    return out


def _check_arguments(user_factors: DataFrame, item_factors: DataFrame, k: int, seen: DataFrame | None,
                     block_size: int) -> None:
    for name, df in (("user_factors", user_factors), ("item_factors", item_factors)):
        if not isinstance(df, DataFrame):
            raise TypeError(f"{name} must be a DataFrame, got {type(df).__name__}")
        missing = {"id", "features"} - set(df.columns)
        if missing:
            raise ValueError(f"{name} lacks column(s) {sorted(missing)}; it has {df.columns}")
    if seen is not None:
        if not isinstance(seen, DataFrame):
            raise TypeError(f"seen must be a DataFrame or None, got {type(seen).__name__}")
        missing = {"user", "item"} - set(seen.columns)
        if missing:
            raise ValueError(f"seen lacks column(s) {sorted(missing)}; it has {seen.columns}")
    for name, value in (("k", k), ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _collect_items(item_factors: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return the item ids (sorted ascending, int32) and their factor matrix (float32, items x rank)."""
    items = (item_factors.select(F.col("id").cast("int"), F.col("features").cast("array<float>")).toPandas()
             .sort_values("id", kind="stable"))
    if items["id"].isna().any() or items["features"].isna().any():
        raise ValueError("item_factors has null ids or features")
    if items["id"].duplicated().any():
        raise ValueError("item_factors has duplicate ids")
    lengths = set(items["features"].map(len))
    if len(lengths) > 1:
        raise ValueError(f"item_factors features must all have the same length, found lengths {sorted(lengths)}")
    if items.empty:
        return np.zeros(0, dtype=np.int32), np.zeros((0, 0), dtype=np.float32)
    return items["id"].to_numpy(np.int32), np.stack(items["features"].to_numpy()).astype(np.float32, copy=False)


def _check_user_rank(vectors: np.ndarray, rank: int) -> None:
    """ValueError unless every user vector of a block (a missing one included) has `rank` entries."""
    lengths = [-1 if v is None else len(v) for v in vectors]
    if lengths and (min(lengths) != rank or max(lengths) != rank):
        raise ValueError(f"user_factors features must all have length {rank} (the rank of item_factors), "
                         f"found lengths from {min(lengths)} to {max(lengths)}")


def _unit_rows(M: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(M, axis=1, keepdims=True)
    return (M / np.where(norms > 0, norms, 1)).astype(np.float32, copy=False)


def _blocks(batches: Iterator[pd.DataFrame], size: int) -> Iterator[pd.DataFrame]:
    """Re-cut Arrow batches into frames of exactly `size` rows (the last one shorter)."""
    pending, held = [], 0
    for batch in batches:
        start = 0
        while start < len(batch):
            take = min(size - held, len(batch) - start)
            pending.append(batch.iloc[start:start + take])
            held, start = held + take, start + take
            if held == size:
                yield pd.concat(pending, ignore_index=True)
                pending, held = [], 0
    if held:
        yield pd.concat(pending, ignore_index=True)


def _seen_cells(seen_lists: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (row, column) positions of the seen items that are in item_ids."""
    lists = [np.asarray(s if s is not None else [], dtype=np.int64) for s in seen_lists]
    if not lists:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(lists)), [len(s) for s in lists])
    items = np.concatenate(lists)
    cols = np.minimum(np.searchsorted(item_ids, items), len(item_ids) - 1)
    known = item_ids[cols] == items
    return rows[known], cols[known]


def _prefer_small_ids_at_cut(neg: np.ndarray, best: np.ndarray) -> None:
    """Fix `best` (argpartition's pick, per row) in place where items tied with the last one kept were
    left out arbitrarily: keep the smallest ids (columns) among the tied. Rare with real factors."""
    m = best.shape[1]
    kept = np.take_along_axis(neg, best, axis=1)
    cut = kept.max(axis=1)
    tied_kept = (kept == cut[:, None]).sum(axis=1)
    tied_all = (neg == cut[:, None]).sum(axis=1)
    # A cut at +inf means fewer eligible items than m: the seen items picked are dropped anyway.
    for i in np.flatnonzero((tied_all > tied_kept) & np.isfinite(cut)):
        better = np.flatnonzero(neg[i] < cut[i])
        tied = np.flatnonzero(neg[i] == cut[i])[:m - len(better)]
        best[i] = np.concatenate([better, tied])
