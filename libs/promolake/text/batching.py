"""Training batches of (user text, item text) pairs: length bucketing, dynamic padding, sharding.

A pair row holds the user's and the item's WordPiece ids, zero-padded to the configured maximum
lengths, with their real lengths: `pair_id` long, `item_key` long (equal for pairs of the same item),
`user_ids` [max_user_len] / `user_len`, `item_ids` [max_item_len] / `item_len` and, with hard
negatives (h per pair), `neg_ids` [h * max_item_len] (the h items' ids one after the other) /
`neg_len` [h].

Rows are read in chunks of `length_bucket_batches` batches; each chunk is sorted by length and cut
into batches, and each batch is trimmed to its longest text, so short texts do not pay for long
padding (on CPU, padding costs more than anything else).

A pair source serves one worker's share of the pairs per epoch (`PairSource`); every worker must
run the same number of steps (`steps_per_epoch`), since each step ends in an allreduce.
"""
from __future__ import annotations

from typing import Iterator, Protocol, Sequence

import numpy as np
import torch

PAIR_COLUMNS = ("pair_id", "item_key", "user_ids", "user_len", "item_ids", "item_len")
NEGATIVE_COLUMNS = ("neg_ids", "neg_len")
SORT_KEYS = ("user_len", "item_len")


class PairSource(Protocol):
    def steps_per_epoch(self, world_size: int) -> int:
        """Full batches that every one of world_size workers can serve in an epoch (the same on all)."""

    def batches(self, rank: int, world_size: int, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        """The worker's batches (make_batch dictionaries) for one epoch."""


def trim(ids: np.ndarray, lengths: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (ids, mask), both long tensors [B, longest length in the batch]: the zero-padded ids cut
    to the batch's longest text, and 1 over real tokens, 0 over padding."""
    ids = np.asarray(ids)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if ids.ndim != 2 or ids.shape[0] != lengths.shape[0]:
        raise ValueError(f"ids must be [B, L] with one length per row, got shapes {ids.shape} and {lengths.shape}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > ids.shape[1]):
        raise ValueError(f"lengths must lie in [0, {ids.shape[1]}], got {lengths.min()}..{lengths.max()}")
    width = max(1, int(lengths.max(initial=0)))
    mask = np.arange(width)[None, :] < lengths[:, None]
    return torch.from_numpy(ids[:, :width].astype(np.int64)), torch.from_numpy(mask.astype(np.int64))


def length_buckets(rows: dict[str, np.ndarray], batch_size: int, rng: np.random.Generator,
                   length_key: str | Sequence[str] = SORT_KEYS) -> list[dict[str, np.ndarray]]:
    """Cut a chunk of rows (column name -> array, one entry per row) into batches of similar length.

    With one length key the rows are sorted by it. With two (default: user_len, item_len), which
    vary independently, one sort cannot make both towers tight: the rows are sorted by the first key,
    split into about sqrt(batches) groups of whole batches, and each group is sorted by the second.

    Returns full batches of batch_size rows in random order, then (when len(chunk) is not a multiple
    of batch_size) one short batch last, so a caller can drop it. The rows of the short batch are
    drawn at random before sorting, so dropping it does not always drop the longest texts. Ties in
    length are broken at random, so the batches change from epoch to epoch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    keys = [length_key] if isinstance(length_key, str) else list(length_key)
    if not 1 <= len(keys) <= 2:
        raise ValueError(f"length_key must name one or two length columns, got {keys}")
    n = _row_count(rows)
    order = rng.permutation(n)
    short = n % batch_size
    rest, remainder = order[short:], order[:short]
    rest = rest[np.argsort(rows[keys[0]][rest], kind="stable")]
    n_batches = len(rest) // batch_size
    if len(keys) == 2 and n_batches > 1:
        group = batch_size * -(-n_batches // max(1, round(n_batches ** 0.5)))
        rest = np.concatenate([g[np.argsort(rows[keys[1]][g], kind="stable")]
                               for g in np.split(rest, range(group, len(rest), group))])
    batches = [rest[i:i + batch_size] for i in range(0, len(rest), batch_size)]
    batches = [batches[i] for i in rng.permutation(len(batches))]
    if short:
        batches.append(np.sort(remainder))
    return [{k: v[idx] for k, v in rows.items()} for idx in batches]


def make_batch(rows: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The tensors of one training batch: user_ids/user_mask and item_ids/item_mask (trimmed), item_key
    and pair_id (long), and with hard negatives neg_ids/neg_mask [B * h, longest negative], row b's
    negatives at rows b*h .. b*h + h - 1."""
    missing = set(PAIR_COLUMNS) - set(rows)
    if missing:
        raise ValueError(f"pair rows lack column(s) {sorted(missing)}; they have {sorted(rows)}")
    batch = {}
    for tower in ("user", "item"):
        batch[f"{tower}_ids"], batch[f"{tower}_mask"] = trim(rows[f"{tower}_ids"], rows[f"{tower}_len"])
    batch["item_key"] = torch.as_tensor(np.asarray(rows["item_key"], dtype=np.int64))
    batch["pair_id"] = torch.as_tensor(np.asarray(rows["pair_id"], dtype=np.int64))
    if "neg_ids" in rows:
        neg_len = np.asarray(rows["neg_len"], dtype=np.int64)
        h = neg_len.shape[1] if neg_len.ndim == 2 else 1
        neg_ids = np.asarray(rows["neg_ids"]).reshape(neg_len.shape[0] * h, -1)
        batch["neg_ids"], batch["neg_mask"] = trim(neg_ids, neg_len.reshape(-1))
    return batch


def chunk_batches(chunks: Iterator[dict[str, np.ndarray]], batch_size: int, rng: np.random.Generator,
                  drop_last: bool) -> Iterator[dict[str, torch.Tensor]]:
    """make_batch dictionaries from chunks of rows, length-bucketed chunk by chunk. Every chunk but the
    last must hold a multiple of batch_size rows, so only the epoch's last batch can be short."""
    for rows in chunks:
        for part in length_buckets(rows, batch_size, rng):
            if drop_last and _row_count(part) < batch_size:
                continue
            yield make_batch(part)


class InMemoryPairs:
    """A PairSource over numpy arrays (tests, tiny runs): worker `rank` of `world_size` serves the
    rows i with i % world_size == rank, in a fresh seeded order each epoch."""

    def __init__(self, rows: dict[str, np.ndarray], batch_size: int, length_bucket_batches: int = 16,
                 seed: int = 0, drop_last: bool = True):
        missing = set(PAIR_COLUMNS) - set(rows)
        if missing:
            raise ValueError(f"rows lack column(s) {sorted(missing)}; they have {sorted(rows)}")
        if batch_size < 1 or length_bucket_batches < 1:
            raise ValueError(f"batch_size and length_bucket_batches must be >= 1, got {batch_size}, "
                             f"{length_bucket_batches}")
        self.rows = {k: np.asarray(v) for k, v in rows.items()}
        self.n = _row_count(self.rows)
        self.batch_size, self.length_bucket_batches = batch_size, length_bucket_batches
        self.seed, self.drop_last = seed, drop_last

    def steps_per_epoch(self, world_size: int) -> int:
        _check_world(0, world_size)
        return min(len(range(r, self.n, world_size)) for r in range(world_size)) // self.batch_size

    def batches(self, rank: int, world_size: int, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        _check_world(rank, world_size)
        rng = np.random.default_rng([self.seed, epoch, rank])
        shard = rng.permutation(np.arange(rank, self.n, world_size))
        chunk = self.batch_size * self.length_bucket_batches
        chunks = ({k: v[shard[i:i + chunk]] for k, v in self.rows.items()} for i in range(0, len(shard), chunk))
        return chunk_batches(chunks, self.batch_size, rng, self.drop_last)

    def close(self) -> None:
        """Nothing to release; here so that every PairSource can be closed alike."""

    def __enter__(self) -> "InMemoryPairs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _row_count(rows: dict[str, np.ndarray]) -> int:
    counts = {k: len(v) for k, v in rows.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"columns differ in length: {counts}")
    return next(iter(counts.values()), 0)


def _check_world(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
