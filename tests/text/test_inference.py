"""The text model through MLflow and Spark: a tiny two-tower logged and registered in a temporary
sqlite registry loads by alias and reproduces TwoTower.encode; Spark embeddings equal the pyfunc's;
text candidates reach items nobody bought and leave out items the user has seen."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from promolake.text.model import load_tokenizer, tiny_model

TOKENIZER = "packaged:all-MiniLM-L6-v2"
MAX_USER, MAX_ITEM = 16, 8
NAME = "promolake_text_test"
TEXTS = ["red wool scarf", "", None, "set of three retro coffee mugs with a floral pattern and gold rim",
         "scented candle", "vintage doormat home sweet home", "Crème brûlée torch"]


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """(model, tokenizer, models:/ URI by alias) of a tiny model registered as NAME@challenger in a
    temporary sqlite registry; MLflow's stores are restored afterwards."""
    import mlflow
    import mlflow.tracking._model_registry.utils as registry_utils

    from promolake.common import tracking
    from promolake.text.text_model import log_text_model

    tmp = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        mp.delenv(var, raising=False)
    mp.setattr(registry_utils, "_registry_uri", None)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    try:
        experiment = mlflow.create_experiment("text", artifact_location=(tmp / "artifacts").as_uri())
        tokenizer = load_tokenizer(TOKENIZER)
        model = tiny_model(tokenizer.vocab_size, seed=3).eval()
        with mlflow.start_run(experiment_id=experiment):
            uri = log_text_model(model, tokenizer, MAX_USER, MAX_ITEM, name="text_model")
        version = tracking.register(uri, NAME)
        tracking.set_alias(NAME, tracking.CHALLENGER, version)
        yield model, tokenizer, f"models:/{NAME}@{tracking.CHALLENGER}"
    finally:
        mlflow.set_tracking_uri(previous)
        mp.undo()


def direct(model, tokenizer, text, tower) -> np.ndarray:
    """TwoTower.encode of one text, unpadded, truncated to the tower's length."""
    ids = tokenizer(text or "", truncation=True, max_length=MAX_USER if tower == "user" else MAX_ITEM)["input_ids"]
    with torch.no_grad():
        return model.encode(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), tower)[0].numpy()


@pytest.mark.slow
def test_registered_model_loads_by_alias_and_reproduces_two_tower_encode(registered):
    import mlflow

    model, tokenizer, uri = registered
    pyfunc = mlflow.pyfunc.load_model(uri)
    sig = pyfunc.metadata.signature
    assert sig.inputs.input_names() == ["text", "tower"] and sig.outputs.input_names() == ["embedding"]
    towers = ["user", "item", "user", "item", "item", "user", "item"]
    frame = pd.DataFrame({"text": TEXTS, "tower": towers})
    out = pyfunc.predict(frame, params={"batch_size": 3})
    assert list(out.columns) == ["embedding"] and len(out) == len(TEXTS)
    got = np.array(out["embedding"].tolist())
    want = np.stack([direct(model, tokenizer, t, w) for t, w in zip(TEXTS, towers)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # the towers truncate differently: a long text differs between them, a short one does not
    both = np.array(pyfunc.predict(pd.DataFrame({"text": [TEXTS[3], TEXTS[3], TEXTS[0], TEXTS[0]],
                                                 "tower": ["user", "item", "user", "item"]}))["embedding"].tolist())
    assert not np.allclose(both[0], both[1], atol=1e-3) and np.allclose(both[2], both[3], atol=1e-6)
    with pytest.raises(ValueError, match="tower"):
        pyfunc.predict(pd.DataFrame({"text": ["x"], "tower": ["shop"]}))


@pytest.mark.spark
@pytest.mark.slow
def test_embed_on_spark_equals_the_pyfunc(spark, registered):
    import mlflow

    from promolake.ml.als import task_slots
    from promolake.text.inference import embed

    _, _, uri = registered
    df = spark.createDataFrame(list(enumerate(TEXTS)), "id int, title string").coalesce(1)
    out = {r.id: r for r in embed(df, "title", uri, "item", batch_size=2).collect()}
    assert sorted(out) == list(range(len(TEXTS))) and all(out[i].title == t for i, t in enumerate(TEXTS))
    want = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"text": TEXTS, "tower": ["item"] * len(TEXTS)}))
    np.testing.assert_allclose(np.array([out[i].embedding for i in range(len(TEXTS))]),
                               np.array(want["embedding"].tolist()), atol=1e-5)
    with pytest.raises(ValueError, match="tower"):
        embed(df, "title", uri, "shop")
    # a one-partition input is encoded by as many tasks as asked (default: twice the task slots)
    assert embed(df, "title", uri, "item", partitions=3).rdd.getNumPartitions() == 3
    sc = spark.sparkContext
    assert embed(df, "title", uri, "item").rdd.getNumPartitions() == 2 * task_slots(sc.master, sc.defaultParallelism)
    with pytest.raises(ValueError, match="partitions"):
        embed(df, "title", uri, "item", partitions=-1)
    # bf16 on the executors is the pyfunc's bf16, and close to float32
    bf16 = {r.id: r.embedding for r in embed(df, "title", uri, "item", batch_size=2, precision="bf16").collect()}
    want16 = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"text": TEXTS, "tower": ["item"] * len(TEXTS)}),
                                                   params={"precision": "bf16"})
    got16 = np.array([bf16[i] for i in range(len(TEXTS))])
    np.testing.assert_allclose(got16, np.array(want16["embedding"].tolist()), atol=1e-5)
    assert np.abs(got16 - np.array(want["embedding"].tolist())).max() > 0   # bf16 really ran
    with pytest.raises(ValueError, match="precision"):
        embed(df, "title", uri, "item", precision="fp8")


def test_bf16_encoding_is_unit_length_and_close_to_float32(registered, monkeypatch):
    from promolake.text import trainer
    from promolake.text.text_model import encode_texts, inference_precision

    model, tokenizer, _ = registered
    fp32 = encode_texts(model, tokenizer, TEXTS, "user", MAX_USER, batch_size=3)
    bf16 = encode_texts(model, tokenizer, TEXTS, "user", MAX_USER, batch_size=3, precision="bf16")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)   # re-normalised in float32
    cosines = (bf16 * fp32).sum(axis=1)
    assert cosines.min() > 0.99 and not np.allclose(bf16, fp32, atol=1e-6)
    # auto follows the CPU: bf16 only where it is native
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: True)
    assert inference_precision("auto") == "bf16"
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: False)
    assert inference_precision("auto") == "off" and inference_precision("bf16") == "bf16"
    np.testing.assert_array_equal(encode_texts(model, tokenizer, TEXTS, "user", MAX_USER, 3, "auto"), fp32)
    with pytest.raises(ValueError, match="precision"):
        inference_precision("fp16")


@pytest.mark.spark
def test_spread_repartitions_only_what_has_too_few_partitions(spark):
    from promolake.text.inference import spread

    one = spark.createDataFrame([(i, f"t{i % 7}") for i in range(40)], "id int, text string").coalesce(1)
    wide = spread(one, "text", 4)
    assert wide.rdd.getNumPartitions() == 4
    assert sorted(wide.collect()) == sorted(one.collect())
    # the same text lands in one partition (hashing, not round robin: a retried task sees the same rows)
    per_part = wide.rdd.mapPartitions(lambda rows: [sorted({r.text for r in rows})]).collect()
    texts = [t for part in per_part for t in part]
    assert len(texts) == len(set(texts)) == 7
    many = one.repartition(6)
    assert spread(many, "text", 4) is many


@pytest.mark.spark
@pytest.mark.slow
def test_text_candidates_reach_cold_start_items_and_skip_seen_ones(spark, registered):
    """Without a projection both towers are the same encoder, so a user whose text equals an item's
    title scores 1 with it, the highest cosine there is."""
    from promolake.text.inference import embed, text_candidates

    _, _, uri = registered
    items = spark.createDataFrame([("i1", "red wool scarf"), ("i2", "scented candle"), ("i3", "vintage doormat"),
                                   ("new", "enamel camping mug")], "item_id string, title string").coalesce(1)
    users = spark.createDataFrame([("u1", "enamel camping mug"), ("u2", "scented candle"), ("u3", "red wool scarf")],
                                  "user_id string, text string").coalesce(1)
    seen = spark.createDataFrame([("u2", "i2"), ("u1", "i1"), ("u3", "i2"), ("u3", "i3")], "user_id string, item_id string")
    item_emb = embed(items, "title", uri, "item").select("item_id", "embedding")
    user_emb = embed(users, "text", uri, "user").select("user_id", "embedding")
    got = text_candidates(user_emb, item_emb, 2, seen=seen)
    assert got.columns == ["user_id", "item_id", "rank", "score"]
    rows = {(r.user_id, r.rank): (r.item_id, r.score) for r in got.collect()}
    # "new" has no interactions at all (cold start), yet it is u1's best match
    assert rows[("u1", 1)][0] == "new" and rows[("u1", 1)][1] == pytest.approx(1.0, abs=1e-5)
    # u2's own text is item i2, which u2 has seen: it is left out
    assert "i2" not in {rows[("u2", r)][0] for r in (1, 2)} and rows[("u2", 1)][1] < 0.999
    # u3 has seen two of four items: only the other two remain, i1 (its own text) first
    assert [rows.get(("u3", r), (None,))[0] for r in (1, 2)] == ["i1", "new"]
    assert len(rows) == 6
    unseen = text_candidates(user_emb, item_emb, 1)
    assert {r.user_id: r.item_id for r in unseen.collect()} == {"u1": "new", "u2": "i2", "u3": "i1"}
