"""Text training data: dynamic padding and length buckets (numpy), tokenisation on Spark against the
tokenizer itself, and Petastorm pairs: sharding, equal step counts, bucketing, determinism, pickling
into another process, and cleanup of the cached files."""
from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from promolake.text.batching import InMemoryPairs, length_buckets, make_batch, trim

TOKENIZER = "packaged:all-MiniLM-L6-v2"
MAX_USER, MAX_ITEM = 32, 16


def random_pairs(n: int, seed: int = 0, negatives: int = 0) -> dict[str, np.ndarray]:
    """n pairs (pair_id = row index) with uniform random lengths and ids equal to 1 + position, so a
    row's real length can be read back from its ids."""
    rng = np.random.default_rng(seed)

    def texts(count, max_len):
        lengths = rng.integers(2, max_len + 1, count).astype(np.int32)
        ids = np.where(np.arange(max_len)[None, :] < lengths[:, None], np.arange(1, max_len + 1), 0)
        return ids.astype(np.int32), lengths

    rows = {"pair_id": np.arange(n, dtype=np.int64), "item_key": (np.arange(n) % 17).astype(np.int64)}
    rows["user_ids"], rows["user_len"] = texts(n, MAX_USER)
    rows["item_ids"], rows["item_len"] = texts(n, MAX_ITEM)
    if negatives:
        ids, lengths = texts(n * negatives, MAX_ITEM)
        rows["neg_ids"], rows["neg_len"] = ids.reshape(n, -1), lengths.reshape(n, negatives)
    return rows


def padding(batches, fixed: bool = False) -> tuple[int, int]:
    """(padded slots, real tokens) over the user and item towers of make_batch dictionaries; fixed
    counts padding to the maximum lengths instead of each batch's longest text."""
    padded = real = 0
    for b in batches:
        for tower, max_len in (("user", MAX_USER), ("item", MAX_ITEM)):
            mask = b[f"{tower}_mask"]
            real += int(mask.sum())
            padded += mask.shape[0] * (max_len if fixed else mask.shape[1]) - int(mask.sum())
    return padded, real


# ----- batching (numpy / torch) --------------------------------------------------------------------
def test_trim_cuts_to_the_longest_text_and_masks_padding():
    ids = np.array([[101, 7, 102, 0, 0, 0], [101, 102, 0, 0, 0, 0], [101, 5, 6, 102, 0, 0]], dtype=np.int32)
    out, mask = trim(ids, np.array([3, 2, 4]))
    assert out.dtype == mask.dtype == torch.int64
    assert out.tolist() == [[101, 7, 102, 0], [101, 102, 0, 0], [101, 5, 6, 102]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="lengths"):
        trim(ids, np.array([3, 2, 7]))


def test_length_buckets_sort_within_the_chunk_and_keep_a_random_short_batch_last():
    rows = random_pairs(70)
    batches = length_buckets(rows, 8, np.random.default_rng(1), length_key="user_len")
    assert [len(b["pair_id"]) for b in batches] == [8] * 8 + [6]
    assert sorted(np.concatenate([b["pair_id"] for b in batches]).tolist()) == list(range(70))
    spans = sorted((int(b["user_len"].min()), int(b["user_len"].max())) for b in batches[:-1])
    # sorted buckets: the full batches cover disjoint, increasing ranges of length
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))
    order = [int(b["user_len"].min()) for b in batches[:-1]]
    assert order != sorted(order), "batch order is shuffled"
    for b in batches:  # each row keeps its own ids and lengths
        assert (b["user_ids"] == rows["user_ids"][b["pair_id"]]).all()
    other = length_buckets(rows, 8, np.random.default_rng(2), length_key="user_len")
    assert set(other[-1]["pair_id"]) != set(batches[-1]["pair_id"]), "short batch drawn at random"


def test_length_buckets_on_two_towers_pad_far_less_than_one_sort_or_none():
    rows = random_pairs(512, seed=4)

    def waste(batches):
        return padding(make_batch(b) for b in batches)[0]

    rng = np.random.default_rng(0)
    two = waste(length_buckets(rows, 32, rng))
    by_sum = waste(length_buckets({**rows, "total": rows["user_len"] + rows["item_len"]}, 32, rng, "total"))
    unsorted = waste(length_buckets({**rows, "none": np.zeros(512)}, 32, rng, "none"))
    assert two < 0.6 * by_sum and by_sum < 0.7 * unsorted, (two, by_sum, unsorted)


def test_make_batch_trims_both_towers_and_flattens_hard_negatives():
    rows = random_pairs(5, negatives=2)
    b = make_batch(rows)
    assert set(b) == {"user_ids", "user_mask", "item_ids", "item_mask", "item_key", "pair_id", "neg_ids", "neg_mask"}
    assert b["user_ids"].shape == (5, rows["user_len"].max())
    assert b["item_mask"].sum(1).tolist() == rows["item_len"].tolist()
    assert b["neg_ids"].shape == (10, rows["neg_len"].max())
    assert b["neg_mask"].sum(1).tolist() == rows["neg_len"].reshape(-1).tolist()
    # row b's negatives are rows 2b and 2b+1
    second = rows["neg_ids"][3, MAX_ITEM:][:rows["neg_len"][3, 1]]
    assert b["neg_ids"][7, :len(second)].tolist() == second.tolist()
    assert b["pair_id"].tolist() == [0, 1, 2, 3, 4]


def test_in_memory_pairs_shard_by_row_and_serve_equal_step_counts():
    rows = random_pairs(100)
    every = InMemoryPairs(rows, batch_size=8, length_bucket_batches=2, seed=3, drop_last=False)
    seen = [np.concatenate([b["pair_id"].numpy() for b in every.batches(r, 3, 0)]) for r in range(3)]
    assert sorted(np.concatenate(seen).tolist()) == list(range(100))
    assert [set(s % 3) for s in seen] == [{0}, {1}, {2}]
    full = InMemoryPairs(rows, batch_size=8, length_bucket_batches=2, seed=3)
    assert full.steps_per_epoch(3) == 33 // 8
    for r in range(3):
        sizes = [len(b["pair_id"]) for b in full.batches(r, 3, 0)]
        assert len(sizes) >= full.steps_per_epoch(3) and set(sizes) == {8}
    first = [b["pair_id"].tolist() for b in full.batches(0, 3, 0)]
    assert first == [b["pair_id"].tolist() for b in full.batches(0, 3, 0)]
    assert first != [b["pair_id"].tolist() for b in full.batches(0, 3, 1)]


def test_encode_ids_pads_truncates_and_needs_no_spark():
    """encode_ids lives in promolake.text.model so that the GPU benchmark (no Spark there) can use it."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['pyspark'] = None\n"           # any pyspark import now fails
            "from promolake.text.model import encode_ids, load_tokenizer\n"
            f"tok = load_tokenizer({TOKENIZER!r})\n"
            "ids, lens = encode_ids(tok, ['red scarf', None, float('nan'), 'candle ' * 40], 6)\n"
            "want = tok('red scarf')['input_ids']\n"
            "assert ids.shape == (4, 6) and ids.dtype.name == 'int32', ids\n"
            "assert ids[0].tolist() == want + [0] * (6 - len(want)) and lens[0] == len(want)\n"
            "assert ids[1].tolist() == ids[2].tolist() == [tok.cls_token_id, tok.sep_token_id, 0, 0, 0, 0]\n"
            "assert lens.tolist()[1:] == [2, 2, 6] and ids[3, -1] == tok.sep_token_id\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


# ----- Spark: tokenisation -------------------------------------------------------------------------
@pytest.mark.spark
def test_tokenize_equals_the_tokenizers_own_output(spark):
    from promolake.text.data import tokenize
    from promolake.text.model import load_tokenizer

    texts = ["Red wool scarf, hand-knitted", None, "", "Crème brûlée torch ÉTÉ", "candle " * 40, "SET/3 RETRO MUGS"]
    df = spark.createDataFrame(list(enumerate(texts)), "id int, title string")
    out = {r.id: r for r in tokenize(df, "title", TOKENIZER, 12, "item").collect()}
    tok = load_tokenizer(TOKENIZER)
    for i, text in enumerate(texts):
        want = tok(text or "", truncation=True, max_length=12)["input_ids"]
        assert out[i].item_ids == want + [0] * (12 - len(want)), text
        assert out[i].item_len == len(want)
        assert out[i].title == text
    assert out[1].item_ids[:2] == [tok.cls_token_id, tok.sep_token_id] and out[1].item_len == 2
    assert out[4].item_len == 12 and out[4].item_ids[-1] == tok.sep_token_id


@pytest.mark.spark
def test_cache_url_makes_a_relative_file_url_absolute_and_sets_the_conf(spark, tmp_path, monkeypatch):
    from promolake.text.data import PARENT_CACHE_DIR_CONF, cache_url

    before = spark.conf.get(PARENT_CACHE_DIR_CONF, None)
    monkeypatch.chdir(tmp_path)
    try:
        url = cache_url("file://lakehouse/_petastorm", spark)
        assert url == (tmp_path / "lakehouse" / "_petastorm").as_uri()
        assert url.startswith("file:///") and spark.conf.get(PARENT_CACHE_DIR_CONF) == url
        assert cache_url(str(tmp_path / "x"), spark) == (tmp_path / "x").as_uri()
    finally:
        if before is not None:
            spark.conf.set(PARENT_CACHE_DIR_CONF, before)


# ----- Spark + Petastorm ---------------------------------------------------------------------------
def pairs_frame(spark, rows: dict[str, np.ndarray]):
    columns = list(rows)
    records = [tuple(v[i].tolist() for v in rows.values()) for i in range(len(rows["pair_id"]))]
    types = {"pair_id": "long", "item_key": "long", "user_len": "int", "item_len": "int"}
    return spark.createDataFrame(records, ", ".join(f"{c} {types.get(c, 'array<int>')}" for c in columns))


@pytest.fixture(scope="module")
def cache_dir(spark, tmp_path_factory) -> Path:
    from promolake.text.data import cache_url

    path = tmp_path_factory.mktemp("petastorm")
    cache_url(path.as_uri(), spark)
    return path


@pytest.fixture(scope="module")
def petastorm_pairs(spark, cache_dir):
    """203 pairs in 6 row groups (a small target file size) for 2 shards; yields (pairs, rows)."""
    from promolake.text.data import PetastormPairs

    rows = random_pairs(203, seed=5)
    with PetastormPairs.from_dataframe(pairs_frame(spark, rows), batch_size=8, num_shards=2, length_bucket_batches=16,
                                       seed=11, drop_last=False, target_file_bytes=8000) as pairs:
        yield pairs, rows


def pair_ids(batches) -> list[list[int]]:
    return [b["pair_id"].tolist() for b in batches]


@pytest.mark.spark
@pytest.mark.slow
def test_petastorm_shards_give_every_pair_to_exactly_one_worker(petastorm_pairs):
    pairs, _ = petastorm_pairs
    assert len(pairs.row_group_rows) == 6 and sum(pairs.row_group_rows) == 203
    assert max(pairs.row_group_rows) - min(pairs.row_group_rows) <= 2, "balanced files"
    for world, epoch in ((2, 0), (2, 1), (3, 0)):
        shards = [[i for b in pair_ids(pairs.batches(r, world, epoch)) for i in b] for r in range(world)]
        assert sorted(i for s in shards for i in s) == list(range(203)), (world, epoch)
        assert [len(s) for s in shards] == pairs.shard_sizes(world), "metadata matches what Petastorm reads"


@pytest.mark.spark
@pytest.mark.slow
def test_petastorm_steps_per_epoch_is_served_by_every_rank(petastorm_pairs):
    from promolake.text.data import PetastormPairs

    pairs, _ = petastorm_pairs
    full = PetastormPairs(pairs.converter, pairs.row_group_rows, batch_size=8, length_bucket_batches=16, seed=11)
    steps = full.steps_per_epoch(2)
    assert steps == min(pairs.shard_sizes(2)) // 8 and steps >= 12
    for rank in range(2):
        sizes = [len(b) for b in pair_ids(full.batches(rank, 2, 0))]
        assert len(sizes) >= steps and set(sizes) == {8}
    with pytest.raises(ValueError, match="row groups"):
        full.steps_per_epoch(7)


@pytest.mark.spark
@pytest.mark.slow
def test_petastorm_batches_are_length_bucketed_and_deterministic(petastorm_pairs):
    pairs, rows = petastorm_pairs
    batches = list(pairs.batches(0, 2, 0))
    for b in batches:
        ids = b["pair_id"].numpy()
        assert b["user_mask"].sum(1).tolist() == rows["user_len"][ids].tolist()
        assert (b["user_ids"].numpy() == rows["user_ids"][ids][:, :b["user_ids"].shape[1]]).all()
    waste, real = padding(batches)
    fixed_waste, _ = padding(batches, fixed=True)
    # the same rows in batches of 8 without sorting
    shuffled = InMemoryPairs({k: v[[i for b in batches for i in b["pair_id"].tolist()]] for k, v in rows.items()},
                             batch_size=8, length_bucket_batches=1, drop_last=False)
    unsorted_waste, _ = padding(shuffled.batches(0, 1, 0))
    assert waste < 0.4 * fixed_waste and waste < 0.5 * unsorted_waste, (waste, unsorted_waste, fixed_waste, real)
    again = pair_ids(pairs.batches(0, 2, 0))
    assert again == pair_ids(batches), "same rank, world size, epoch and seed: same batches"
    assert pair_ids(pairs.batches(0, 2, 1)) != again, "a new epoch reshuffles"


def _read_in_child(blob: bytes, queue) -> None:
    pairs = pickle.loads(blob)
    queue.put([b["pair_id"].tolist() for b in pairs.batches(1, 2, 0)])


@pytest.mark.spark
@pytest.mark.slow
def test_petastorm_pairs_pickle_into_a_worker_process(petastorm_pairs):
    pairs, _ = petastorm_pairs
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(pickle.dumps(pairs), queue))
    child.start()
    got = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got == pair_ids(pairs.batches(1, 2, 0))


@pytest.mark.spark
@pytest.mark.slow
def test_petastorm_pairs_close_deletes_the_cached_files(spark, cache_dir):
    from promolake.text.data import PetastormPairs

    rows = random_pairs(40, seed=9, negatives=2)
    with PetastormPairs.from_dataframe(pairs_frame(spark, rows), batch_size=4, num_shards=2) as pairs:
        folder = Path(pairs.converter.cache_dir_url[len("file://"):])
        assert folder.parent == cache_dir and any(p.suffix == ".parquet" for p in folder.iterdir())
        batch = next(iter(pairs.batches(0, 2, 0)))
        assert batch["neg_ids"].shape[0] == 2 * batch["user_ids"].shape[0]
    assert not folder.exists()
