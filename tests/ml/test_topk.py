"""Blocked top-k against the float64 brute force (several blocks and partitions, cosine, seen items,
sparse ids, k above the catalogue, ties at the cut), against ALSModel.recommendForAllUsers, and
similar_items on hand-made factors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promolake.ml.topk import brute_force_top_k, similar_items, top_k, top_k_block

pytestmark = pytest.mark.spark

FACTORS = "id int, features array<float>"
PAIRS = "user int, item int"


def factors(spark, ids, matrix, partitions: int | None = None):
    rows = [(int(i), [float(x) for x in v]) for i, v in zip(ids, matrix)]
    df = spark.createDataFrame(rows, FACTORS)
    return df.repartition(partitions) if partitions else df


def collected(df) -> list[tuple[int, int, int, float]]:
    return sorted(tuple(r) for r in df.collect())


def assert_same_ranking(actual, expected, tol: float = 1e-4):
    """Same (user, item, rank) rows; scores (float32 vs float64) within tol."""
    actual, expected = sorted(actual), sorted(expected)
    assert [r[:3] for r in actual] == [r[:3] for r in expected], (actual, expected)
    assert [r[3] for r in actual] == pytest.approx([r[3] for r in expected], abs=tol)


def unit_rows(M):
    return M / np.linalg.norm(M, axis=1, keepdims=True)


def assert_no_near_ties(U, V, k, gap=1e-4):
    """Test data guard: within each user's k + 1 best, scores differ by more than float32 noise."""
    S = np.sort(U.astype(np.float64) @ V.T.astype(np.float64), axis=1)[:, ::-1][:, :k + 1]
    assert np.diff(-S, axis=1).min() > gap


@pytest.fixture(scope="module")
def random_factors():
    rng = np.random.default_rng(1)
    return rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)


@pytest.mark.parametrize("normalize", [False, True])
def test_blocked_equals_brute_force_over_blocks_and_partitions(spark, random_factors, normalize):
    U, V = random_factors
    users = factors(spark, range(50), U, partitions=3)
    assert users.rdd.getNumPartitions() == 3  # ~17 users each, so blocks of 7 split every partition
    expected_U, expected_V = (unit_rows(U), unit_rows(V)) if normalize else (U, V)
    assert_no_near_ties(expected_U, expected_V, 5)
    result = top_k(users, factors(spark, range(40), V), 5, block_size=7, normalize=normalize)
    assert result.columns == ["user", "item", "rank", "score"]
    assert_same_ranking(collected(result), brute_force_top_k(expected_U, expected_V, 5))


def test_seen_items_are_never_recommended(spark, random_factors):
    U, V = random_factors[0][:5], random_factors[1][:10]
    seen = {0: {1, 3, 5}, 1: set(range(10)) - {2, 7}, 2: set(), 3: set(range(10))}
    # user 2 has no seen rows; item 999 and user 50 have no factors and are ignored
    pairs = [(u, i) for u, items in seen.items() for i in items] + [(0, 999), (50, 4)]
    result = collected(top_k(factors(spark, range(5), U, partitions=2), factors(spark, range(10), V), 4,
                             seen=spark.createDataFrame(pairs, PAIRS), block_size=2))
    assert_same_ranking(result, brute_force_top_k(U, V, 4, seen=seen))
    assert not [r for r in result if r[1] in seen.get(r[0], set())]
    per_user = {u: sorted(r[1] for r in result if r[0] == u) for u in range(5)}
    assert per_user[1] == [2, 7]
    assert len(per_user[2]) == 4 and len(per_user[4]) == 4
    assert per_user[3] == []


def test_sparse_ids_and_k_above_the_catalogue(spark, random_factors):
    U, V = random_factors[0][:3], random_factors[1][:5]
    user_ids, item_ids = [7, 1000, 3], [100, 205, 317, 4000, 52]
    result = collected(top_k(factors(spark, user_ids, U), factors(spark, item_ids, V), 10))
    assert_same_ranking(result, brute_force_top_k(U, V, 10, user_ids=user_ids, item_ids=item_ids))
    assert sorted((r[0], r[2]) for r in result) == [(u, rank) for u in sorted(user_ids) for rank in range(1, 6)]


def test_equal_scores_go_to_the_smaller_item_id_also_at_the_cut(spark):
    # user 1: item 5 scores 2; items 9, 4, 6 score 1 (two of them fit in k = 3); item 2 scores 0
    # user 2: item 2 scores 1; items 4, 5, 6, 9 all score 0
    users = factors(spark, [1, 2], [[1, 0], [0, 1]])
    items = factors(spark, [5, 9, 4, 6, 2], [[2, 0], [1, 0], [1, 0], [1, 0], [0, 1]])
    assert collected(top_k(users, items, 3)) == sorted([(1, 5, 1, 2.0), (1, 4, 2, 1.0), (1, 6, 3, 1.0),
                                                        (2, 2, 1, 1.0), (2, 4, 2, 0.0), (2, 5, 3, 0.0)])


def test_one_block_with_many_ties_equals_brute_force():
    # factors in {-1, 0, 1}: scores are small integers, exact in float32, and tie all the time
    rng = np.random.default_rng(0)
    for _ in range(100):
        U, V = rng.integers(-1, 2, size=(6, 3)).astype(np.float32), rng.integers(-1, 2, size=(12, 3)).astype(np.float32)
        item_ids = np.sort(rng.choice(1000, 12, replace=False)).astype(np.int32)
        seen = [list(rng.choice(item_ids, rng.integers(0, 12))) if rng.random() < 0.7 else None for _ in range(6)]
        k = int(rng.integers(1, 14))
        block = top_k_block(np.arange(6, dtype=np.int32), U, pd.Series(seen, dtype=object).to_numpy(), item_ids, V, k)
        expected = brute_force_top_k(U, V, k, seen={u: set(map(int, s)) for u, s in enumerate(seen) if s is not None},
                                     item_ids=item_ids)
        assert_same_ranking(list(block.itertuples(index=False, name=None)), expected, tol=0)


def test_vectors_of_another_length_are_refused(spark):
    good = factors(spark, [1, 2], [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="item_factors"):
        top_k(good, spark.createDataFrame([(1, [1.0, 0.0]), (2, [1.0])], FACTORS), 1)
    # a user vector of another length fails the job that computes the result (checked while scoring)
    from pyspark.errors import PythonException

    with pytest.raises(PythonException, match="user_factors features must all have length 2"):
        top_k(factors(spark, [1, 2], [[1, 0, 0], [0, 1]]), good, 1).collect()
    with pytest.raises(PythonException, match="user_factors features must all have length 2"):
        top_k(spark.createDataFrame([(1, None)], FACTORS), good, 1).collect()


def test_equals_als_recommend_for_all_users(spark):
    from pyspark.ml.recommendation import ALS

    rng = np.random.default_rng(3)
    clicks = [(u, i, 1.0) for u in range(20) for i in range(15) if rng.random() < (0.6 if (u + i) % 3 == 0 else 0.15)]
    ratings = spark.createDataFrame(clicks, "user int, item int, rating float")
    model = ALS(rank=4, maxIter=5, seed=1, implicitPrefs=True, numUserBlocks=1, numItemBlocks=1,
                coldStartStrategy="drop").fit(ratings)
    als = sorted((r["user"], rec["item"], rank, rec["rating"])
                 for r in model.recommendForAllUsers(5).collect()
                 for rank, rec in enumerate(r["recommendations"], start=1))
    U = np.array([r["features"] for r in model.userFactors.orderBy("id").collect()], dtype=np.float32)
    V = np.array([r["features"] for r in model.itemFactors.orderBy("id").collect()], dtype=np.float32)
    assert_no_near_ties(U, V, 5, gap=1e-5)
    assert_same_ranking(collected(top_k(model.userFactors, model.itemFactors, 5, block_size=8)), als)


def test_similar_items_by_cosine_without_the_item_itself_or_zero_vectors(spark):
    cos_12, cos_23 = 0.9 / np.hypot(0.9, 0.1), 0.1 / np.hypot(0.9, 0.1)
    items = factors(spark, [1, 2, 3, 4], [[1, 0], [0.9, 0.1], [0, 1], [0, 0]])
    result = similar_items(items, 5, block_size=2)
    assert result.columns == ["item", "neighbour", "rank", "similarity"]
    assert_same_ranking(collected(result), [(1, 2, 1, cos_12), (1, 3, 2, 0.0), (2, 1, 1, cos_12),
                                            (2, 3, 2, cos_23), (3, 2, 1, cos_23), (3, 1, 2, 0.0)], tol=1e-6)
