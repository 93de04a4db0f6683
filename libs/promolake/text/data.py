"""Text model data on Spark: WordPiece tokenisation as a column, and training pairs served to the
workers through Petastorm.

`tokenize` adds fixed-length id arrays to a DataFrame (one row per text). `PetastormPairs`
materialises a DataFrame of pairs (batching.PAIR_COLUMNS, optionally batching.NEGATIVE_COLUMNS) as
Parquet with Petastorm's Spark converter and serves each worker its shard, length-bucketed; it is
picklable, so it travels to Horovod or TorchDistributor worker processes.

How Petastorm 0.12.1 shards (petastorm/reader.py, Reader._partition_row_groups): it lists the row
groups of the files in a fixed order and gives row group i to shard i % shard_count; the seed only
shuffles the order in which a shard reads its row groups. So the shards are balanced when every row
group holds the same number of rows and their count is a multiple of the shard count: the pairs are
repartitioned round-robin into such a number of files, each written as one row group.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from promolake.text.batching import NEGATIVE_COLUMNS, PAIR_COLUMNS, chunk_batches
from promolake.text.model import encode_ids  # noqa: F401  (re-exported: tokenisation lives with the tokenizer)

PARENT_CACHE_DIR_CONF = "petastorm.spark.converter.parentCacheDirUrl"
PAIR_TYPES = {"pair_id": "long", "item_key": "long", "user_ids": "array<int>", "user_len": "int",
              "item_ids": "array<int>", "item_len": "int", "neg_ids": "array<int>", "neg_len": "array<int>"}
# Each file is meant to be one row group; the row-group limit is set far above the file size.
TARGET_FILE_BYTES = 32 * 1024 * 1024
ROW_GROUP_BYTES = 1024 * 1024 * 1024

_TOKENIZERS: dict[str, object] = {}


# ----- tokenisation ------------------------------------------------------------------------------
def tokenize(df: DataFrame, text_col: str, tokenizer: str, max_len: int, prefix: str) -> DataFrame:
    """df with two more columns: `{prefix}_ids` array<int>, the text's WordPiece ids with [CLS] and
    [SEP], truncated and zero-padded to exactly max_len, and `{prefix}_len` int, the number of real
    ids. A null or empty text becomes [CLS][SEP].

    Args:
        tokenizer: a checkpoint name as model.load_tokenizer takes it (``packaged:<name>``, a local
            directory such as a saved model's tokenizer/, or a hub id); it must be loadable on the
            executors. Each Python worker loads it once.
    """
    if text_col not in df.columns:
        raise ValueError(f"text_col {text_col!r} is not a column of df; it has {df.columns}")
    if max_len < 2:
        raise ValueError(f"max_len must leave room for [CLS] and [SEP], got {max_len}")

    @F.pandas_udf("ids array<int>, len int")
    def encode(texts: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        tok = cached_tokenizer(tokenizer)
        for batch in texts:
            ids, lengths = encode_ids(tok, batch.tolist(), max_len)
            yield pd.DataFrame({"ids": list(ids), "len": lengths})

    tmp = f"_{prefix}_tokens"
    return (df.withColumn(tmp, encode(F.col(text_col)))
            .withColumn(f"{prefix}_ids", F.col(f"{tmp}.ids")).withColumn(f"{prefix}_len", F.col(f"{tmp}.len"))
            .drop(tmp))


def cached_tokenizer(name: str):
    """The fast tokenizer of a checkpoint, loaded once per process."""
    if name not in _TOKENIZERS:
        from promolake.text.model import load_tokenizer

        _TOKENIZERS[name] = load_tokenizer(name)
    return _TOKENIZERS[name]


# ----- Petastorm ---------------------------------------------------------------------------------
def cache_url(url: str, spark: SparkSession | None = None) -> str:
    """Make url the parent directory of Petastorm's converter caches and return it as Petastorm
    expects it: an absolute URL. A local path or a relative file:// URL (file://lakehouse/_petastorm)
    becomes file:///<absolute path>. Sets the spark conf on spark, else on the active session."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        local = url[len("file://"):] if url.startswith("file://") else url
        url = Path(local).expanduser().resolve().as_uri()
    session = spark or SparkSession.getActiveSession()
    if session is None:
        raise RuntimeError("cache_url needs a SparkSession to set " + PARENT_CACHE_DIR_CONF)
    session.conf.set(PARENT_CACHE_DIR_CONF, url)
    return url


class PetastormPairs:
    """Training pairs materialised by Petastorm's Spark converter; a batching.PairSource.

    Build it on the driver with `from_dataframe`; close it (or use it as a context manager) there to
    delete the cached files. Worker processes only call `batches`.

    Each worker reads its shard (Petastorm cur_shard=rank, shard_count=world_size) in chunks of
    length_bucket_batches batches with one reader thread, the row groups and the rows inside them
    shuffled with a seed made of (seed, epoch): the batches depend only on rank, world size, epoch and
    seed. With drop_last=False the epoch's last batch may be short; otherwise every batch is full.
    """

    def __init__(self, converter, row_group_rows: list[int], batch_size: int, length_bucket_batches: int = 16,
                 seed: int = 0, drop_last: bool = True):
        self.converter = converter
        self.row_group_rows = list(row_group_rows)
        self.batch_size, self.length_bucket_batches = batch_size, length_bucket_batches
        self.seed, self.drop_last = seed, drop_last

    @classmethod
    def from_dataframe(cls, pairs: DataFrame, batch_size: int, num_shards: int, length_bucket_batches: int = 16,
                       seed: int = 0, drop_last: bool = True,
                       target_file_bytes: int = TARGET_FILE_BYTES) -> "PetastormPairs":
        """Materialise pairs (see module batching for the columns) for num_shards workers.

        The spark conf petastorm.spark.converter.parentCacheDirUrl must be set (cache_url). Runs Spark
        jobs: a count, the Parquet write and Petastorm's own count. Raises ValueError when there are
        fewer pairs than shards.
        """
        from petastorm.spark import make_spark_converter

        _check_pairs(pairs)
        if batch_size < 1 or length_bucket_batches < 1 or num_shards < 1:
            raise ValueError(f"batch_size, length_bucket_batches and num_shards must be >= 1, got "
                             f"{batch_size}, {length_bucket_batches}, {num_shards}")
        if pairs.sparkSession.conf.get(PARENT_CACHE_DIR_CONF, None) is None:
            raise ValueError(f"spark conf {PARENT_CACHE_DIR_CONF} is not set; call data.cache_url first")
        columns = [c for c in (*PAIR_COLUMNS, *NEGATIVE_COLUMNS) if c in pairs.columns]
        pairs = pairs.select([F.col(c).cast(PAIR_TYPES[c]) for c in columns])
        rows, row_bytes = _size(pairs)
        if rows < num_shards:
            raise ValueError(f"{rows} pairs cannot feed {num_shards} shards")
        files = num_shards * max(1, math.ceil(rows * row_bytes / (target_file_bytes * num_shards)))
        files = min(files, num_shards * (rows // num_shards))  # no empty files
        converter = make_spark_converter(pairs.repartition(files), parquet_row_group_size_bytes=ROW_GROUP_BYTES,
                                         compression_codec="snappy", dtype=None)
        return cls(converter, petastorm_row_groups(converter.file_urls), batch_size, length_bucket_batches,
                   seed, drop_last)

    @property
    def size(self) -> int:
        return sum(self.row_group_rows)

    def shard_sizes(self, world_size: int) -> list[int]:
        """Rows that each rank reads per epoch under Petastorm's sharding (row group i -> i % world_size)."""
        if len(self.row_group_rows) < world_size:
            raise ValueError(f"{len(self.row_group_rows)} row groups cannot be split into {world_size} shards; "
                             f"build the pairs with num_shards={world_size}")
        return [sum(self.row_group_rows[rank::world_size]) for rank in range(world_size)]

    def steps_per_epoch(self, world_size: int) -> int:
        return min(self.shard_sizes(world_size)) // self.batch_size

    def batches(self, rank: int, world_size: int, epoch: int) -> Iterator[dict]:
        from petastorm.pytorch import BatchedDataLoader

        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.shard_sizes(world_size)
        petastorm_seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        rng = np.random.default_rng([self.seed, epoch, rank])
        chunk = self.batch_size * self.length_bucket_batches
        with self.converter.make_torch_dataloader(
                batch_size=chunk, num_epochs=1, workers_count=1, data_loader_fn=BatchedDataLoader,
                cur_shard=rank, shard_count=world_size, seed=petastorm_seed,
                shuffle_row_groups=True, shuffle_rows=True) as loader:
            chunks = ({k: v.numpy() for k, v in c.items()} for c in loader)
            yield from chunk_batches(chunks, self.batch_size, rng, self.drop_last)

    def close(self) -> None:
        """Delete the converter's cached Parquet files (on the driver)."""
        self.converter.delete()

    def __enter__(self) -> "PetastormPairs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def petastorm_row_groups(file_urls: list[str]) -> list[int]:
    """Rows per row group, in the order Petastorm's reader numbers the row groups of these files
    (the same code path: ParquetDataset over the url list, then load_row_groups)."""
    import pyarrow.parquet as pq
    from petastorm.etl.dataset_metadata import load_row_groups
    from petastorm.fs_utils import get_filesystem_and_path_or_paths
    from petastorm.reader import normalize_dataset_url_or_urls

    fs, paths = get_filesystem_and_path_or_paths(normalize_dataset_url_or_urls(file_urls))
    dataset = pq.ParquetDataset(paths, filesystem=fs, validate_schema=False, metadata_nthreads=10)
    footers: dict[str, object] = {}
    rows = []
    for piece in load_row_groups(dataset):
        if piece.path not in footers:
            with fs.open(piece.path, "rb") as f:
                footers[piece.path] = pq.ParquetFile(f).metadata
        rows.append(footers[piece.path].row_group(piece.row_group).num_rows)
    return rows


def _check_pairs(pairs: DataFrame) -> None:
    if not isinstance(pairs, DataFrame):
        raise TypeError(f"pairs must be a DataFrame, got {type(pairs).__name__}")
    missing = set(PAIR_COLUMNS) - set(pairs.columns)
    if missing:
        raise ValueError(f"pairs lack column(s) {sorted(missing)}; they have {pairs.columns}")
    negatives = [c for c in NEGATIVE_COLUMNS if c in pairs.columns]
    if negatives and len(negatives) != len(NEGATIVE_COLUMNS):
        raise ValueError(f"hard negatives need both {NEGATIVE_COLUMNS}, pairs have only {negatives}")


def _size(pairs: DataFrame) -> tuple[int, int]:
    """(rows, approximate bytes per row) in one job: 4 bytes per id, 8 per key."""
    arrays = [c for c in ("user_ids", "item_ids", "neg_ids", "neg_len") if c in pairs.columns]
    width = sum((F.size(c) for c in arrays), F.lit(0))
    rows, ids = pairs.agg(F.count(F.lit(1)), F.max(width)).first()
    return int(rows), 4 * int(ids or 0) + 32
