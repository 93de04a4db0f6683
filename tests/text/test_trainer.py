"""The distributed training loop of the two-tower text model (promolake.text.trainer) and the numpy
twin of the ranking metrics (promolake.ml.evaluation.ranking_metrics_arrays).

The synthetic task: an item is "<material> <colour> <object>"; a user writes about the same item with
other words ("cherry" for red, "coffee" for mug), so matching users to items must be learnt, not read
off shared tokens. Random ranking gets recall@5 = 5/48.
"""
from __future__ import annotations

import functools
import itertools
import math
import sys
from dataclasses import dataclass

import cloudpickle
import numpy as np
import pytest
import torch
from pyspark import cloudpickle as spark_cloudpickle

from promolake.ml.evaluation import ranking_metric_sums, ranking_metrics, ranking_metrics_arrays
from promolake.text.model import TwoTower, build_model, contrastive_loss, load_tokenizer, tiny_model
from promolake.text.trainer import (TrainSpec, ValidationSet, build_optimizer, evaluate, latest_checkpoint,
                                    launch, launch_all, lr_factor, resolve_precision, weights_fingerprint)

# The pair source and model factories below travel to Horovod and torchrun workers, where this test
# module cannot be imported: pickle them by value.
for _pickler in (cloudpickle, spark_cloudpickle):
    _pickler.register_pickle_by_value(sys.modules[__name__])

MINILM = "packaged:all-MiniLM-L6-v2"
COLOURS = {"red": "cherry", "blue": "ocean", "green": "grass", "yellow": "lemon", "black": "coal",
           "white": "snow", "pink": "rose", "orange": "pumpkin"}
OBJECTS = {"mug": "coffee", "lamp": "light", "candle": "wax", "basket": "picnic", "clock": "time",
           "vase": "flower"}
MATERIALS = ("ceramic", "glass", "metal", "wooden")
USER_TEMPLATES = ("shopper who loves {c} {o} things", "searched for {c} and {o} gifts",
                  "looking at {o} stuff in {c} tones", "fan of {c} colours and {o}")
K = 5


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a small shared machine two spin-waiting threads run several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(MINILM)


def _token_ids(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [N, longest] zero-padded, and lengths."""
    rows = tokenizer(texts)["input_ids"]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    ids = np.zeros((len(rows), lengths.max()), dtype=np.int64)
    for n, r in enumerate(rows):
        ids[n, :len(r)] = r
    return ids, lengths


@dataclass
class ArrayPairs:
    """PairSource over numpy arrays: a seeded shuffle per epoch, rank r takes every world_size-th
    pair of it, batches trimmed to their longest text."""

    user_ids: np.ndarray
    user_len: np.ndarray
    item_ids: np.ndarray
    item_len: np.ndarray
    item_key: np.ndarray
    batch_size: int
    seed: int = 0

    def steps_per_epoch(self, world_size: int) -> int:
        return len(self.item_key) // world_size // self.batch_size

    def batches(self, rank: int, world_size: int, epoch: int):
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.item_key))[rank::world_size]
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield {"user_ids": _trimmed(self.user_ids[idx], self.user_len[idx]),
                   "user_mask": _mask(self.user_len[idx]),
                   "item_ids": _trimmed(self.item_ids[idx], self.item_len[idx]),
                   "item_mask": _mask(self.item_len[idx]),
                   "item_key": torch.from_numpy(self.item_key[idx]), "pair_id": torch.from_numpy(idx)}


def _trimmed(ids: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(ids[:, :int(lengths.max())]))


def _mask(lengths: np.ndarray) -> torch.Tensor:
    return (torch.arange(int(lengths.max()))[None, :] < torch.from_numpy(lengths)[:, None]).long()


def _catalogue() -> list[tuple[str, str]]:
    return list(itertools.product(COLOURS, OBJECTS))


def _item_texts(seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{MATERIALS[rng.integers(len(MATERIALS))]} {c} {o}" for c, o in _catalogue()]


def _user_text(item: int, template: int) -> str:
    c, o = _catalogue()[item]
    return USER_TEMPLATES[template].format(c=COLOURS[c], o=OBJECTS[o])


def make_pairs(tokenizer, n_pairs: int, batch_size: int, seed: int = 0) -> ArrayPairs:
    """n_pairs (user text, bought item) pairs of the synthetic task, written with the first three templates."""
    rng = np.random.default_rng(seed)
    items = rng.integers(len(_catalogue()), size=n_pairs)
    item_texts = _item_texts()
    user_ids, user_len = _token_ids(tokenizer, [_user_text(i, rng.integers(3)) for i in items])
    item_ids, item_len = _token_ids(tokenizer, [item_texts[i] for i in items])
    return ArrayPairs(user_ids, user_len, item_ids, item_len, items.astype(np.int64), batch_size, seed)


def make_validation(tokenizer) -> ValidationSet:
    """One held-out user per item, written with the fourth template; relevant = that item."""
    n = len(_catalogue())
    users = tokenizer([_user_text(i, 3) for i in range(n)])["input_ids"]
    items = tokenizer(_item_texts())["input_ids"]
    return ValidationSet.from_token_lists(users, items, [[i] for i in range(n)])


def tiny_factory(tokenizer, seed: int = 0):
    return functools.partial(tiny_model, tokenizer.vocab_size, 0, seed)


def _tiny_without_dropout(vocab_size: int, seed: int) -> TwoTower:
    model = tiny_model(vocab_size, 0, seed)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def spec_for(tok, **overrides) -> TrainSpec:
    settings = dict(model_factory=tiny_factory(tok), data=make_pairs(tok, 64, 8), epochs=1,
                    learning_rate=2e-3, warmup_steps=0, temperature=0.1, seed=3, k=K, log_every=0)
    return TrainSpec(**{**settings, **overrides})


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _pair_loss(model: TwoTower, pairs: ArrayPairs) -> float:
    """Eval-mode contrastive loss over all pairs in one batch (no dropout: a fixed yardstick)."""
    batch = next(ArrayPairs(pairs.user_ids, pairs.user_len, pairs.item_ids, pairs.item_len, pairs.item_key,
                            len(pairs.item_key)).batches(0, 1, 0))
    model.eval()
    with torch.no_grad():
        user, item = model(batch["user_ids"], batch["user_mask"], batch["item_ids"], batch["item_mask"])
        return float(contrastive_loss(user, item, 0.1, batch["item_key"]))


# ----- the numpy twin of the ranking metrics ------------------------------------------------------

@pytest.mark.spark
def test_ranking_metrics_arrays_equal_spark_ranking_metrics(spark):
    rng = np.random.default_rng(11)
    k, n_users, n_items = 5, 30, 25
    recommended = [rng.choice(n_items, size=rng.integers(0, 9), replace=False) for _ in range(n_users)]
    recommended[0] = np.array([3, 7, 3, 9, 1, 2])          # a repeat keeps its first (best) position
    relevant = [rng.choice(n_items, size=rng.integers(0, 5), replace=False) for _ in range(n_users)]
    relevant[1] = np.array([], dtype=np.int64)             # outside the population
    recs = spark.createDataFrame([(u, int(i), pos + 1) for u, items in enumerate(recommended)
                                  for pos, i in enumerate(items)], "user_id long, item_id long, rank int")
    truth = spark.createDataFrame([(u, int(i)) for u, items in enumerate(relevant) for i in items],
                                  "user_id long, item_id long")
    users = spark.createDataFrame([(u,) for u in range(n_users)], "user_id long")

    expected = ranking_metrics(recs, truth, users, k, catalogue_size=n_items)
    got = ranking_metrics_arrays(recommended, relevant, k)

    assert got["users"] == expected["users"] == n_users - sum(len(r) == 0 for r in relevant)
    assert 0 < expected["users_with_recs"] < expected["users"]
    for name in got:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name
    halves = [ranking_metric_sums(recommended[s], relevant[s], k) for s in (slice(0, 13), slice(13, None))]
    assert sum(h["ndcg"] for h in halves) / sum(h["users"] for h in halves) == pytest.approx(got["ndcg"], abs=1e-12)


def test_ranking_metrics_arrays_hand_computed_case():
    # user 0: hits at ranks 1 and 3 of k=3, |R|=2; user 1: no recs; user 2: no relevant item (left out)
    got = ranking_metrics_arrays([np.array([4, 5, 6, 7]), np.array([]), np.array([1])],
                                 [np.array([4, 6]), np.array([2]), np.array([])], k=3)
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert got == pytest.approx({"precision": (2 / 3) / 2, "recall": 1 / 2, "ndcg": ndcg0 / 2,
                                 "map": ((1 + 2 / 3) / 2) / 2, "hit_rate": 1 / 2, "users": 2,
                                 "users_with_recs": 1})
    with pytest.raises(ValueError, match="population is empty"):
        ranking_metrics_arrays([np.array([1])], [np.array([])], k=3)


# ----- pieces of the loop -----------------------------------------------------------------------------

def test_learning_rate_warms_up_then_decays_linearly():
    assert [lr_factor(s, 2, 6) for s in range(6)] == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])
    assert [lr_factor(s, 0, 2) for s in range(2)] == pytest.approx([1.0, 0.5])


def test_bad_settings_raise_errors_that_name_them(tokenizer):
    with pytest.raises(ValueError, match="grad_accumulation"):
        spec_for(tokenizer, grad_accumulation=0)
    with pytest.raises(ValueError, match="mixed_precision"):
        spec_for(tokenizer, mixed_precision="fp8")
    with pytest.raises(ValueError, match="fp16' needs a GPU"):
        resolve_precision("fp16", torch.device("cpu"))
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp16"
    with pytest.raises(ValueError, match="engine must be one of"):
        launch(spec_for(tokenizer), "ray", 2)
    with pytest.raises(ValueError, match="no optimizer step"):
        launch(spec_for(tokenizer, grad_accumulation=16), "local")


def test_auto_precision_on_cpu_is_bf16_only_where_the_cpu_has_it_natively(monkeypatch):
    from promolake.text import trainer

    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == "off"
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert resolve_precision("off", torch.device("cpu")) == "off"
    monkeypatch.undo()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert trainer.cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert trainer.cpu_has_native_bf16() is True


def test_evaluate_ranks_items_by_cosine_and_skips_seen_items(tokenizer):
    validation = make_validation(tokenizer)
    validation.seen = [np.array([(u + 1) % 48]) for u in range(48)]
    model = tiny_model(tokenizer.vocab_size, 0, 5).eval()
    with torch.no_grad():
        def embed(ids, lengths, tower):
            return model.encode(torch.from_numpy(ids), _mask(lengths), tower)
        scores = embed(validation.user_ids, validation.user_lengths, "user") @ \
            embed(validation.item_ids, validation.item_lengths, "item").T
    for u, seen in enumerate(validation.seen):
        scores[u, seen] = -math.inf
    expected = ranking_metrics_arrays([row.numpy() for row in scores.topk(K).indices], validation.relevant, K)
    got = evaluate(model, validation, K, batch_size=7)   # batches of mixed lengths, shortest first
    assert got == pytest.approx(expected, abs=1e-9)


# ----- training, one process ---------------------------------------------------------------------------

@pytest.mark.slow
def test_loss_falls_and_validation_recall_beats_random_on_a_learnable_task(tokenizer, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        # an explicit experiment: an earlier test may have left another store's experiment active
        experiment = mlflow.create_experiment("trainer", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            run_id = run.info.run_id
    finally:
        mlflow.set_tracking_uri(previous)
    spec = spec_for(tokenizer, data=make_pairs(tokenizer, 384, 32), epochs=4, learning_rate=3e-3,
                    warmup_steps=5, validation=make_validation(tokenizer), mlflow_tracking_uri=uri,
                    mlflow_run_id=run_id)

    untrained = evaluate(spec.model_factory(), spec.validation, K)
    result = launch(spec, "local")

    history = result["history"]
    losses = [e["loss"] for e in history]
    random_recall = K / 48
    assert untrained["recall"] < 2 * random_recall            # nothing to read off shared tokens
    assert result["finished"] and result["steps"] == 4 * 12 and len(history) == 4
    assert losses[-1] < 0.6 * losses[0], losses
    assert history[-1][f"val_recall_at_{K}"] > 3 * random_recall, history[-1]
    assert history[-1][f"val_ndcg_at_{K}"] > history[0][f"val_ndcg_at_{K}"]
    logged = MlflowClient(uri).get_metric_history(run_id, f"val_recall_at_{K}")
    assert [(m.step, m.value) for m in sorted(logged, key=lambda m: m.step)] == \
        [(n + 1, pytest.approx(e[f"val_recall_at_{K}"])) for n, e in enumerate(history)]
    assert {"loss", "samples_per_second", "samples_per_second_per_worker"} <= \
        set(MlflowClient(uri).get_run(run_id).data.metrics)


def test_gradient_accumulation_applies_the_mean_gradient_of_its_micro_batches(tokenizer, tmp_path):
    # In-batch negatives make the loss of a batch of 2B differ from the mean loss of its two halves,
    # so the yardstick is the exact update from the mean gradient of the two micro-batches.
    factory = functools.partial(_tiny_without_dropout, tokenizer.vocab_size, 1)
    data = make_pairs(tokenizer, 16, 8, seed=4)
    spec = spec_for(tokenizer, model_factory=factory, data=data, grad_accumulation=2, max_grad_norm=0.0,
                    learning_rate=1e-3, output_dir=str(tmp_path / "out"))
    result = launch(spec, "local")
    trained = TwoTower.load(tmp_path / "out")

    model = factory().train()
    before = _params(model)
    optimizer = build_optimizer(model, 1e-3, spec.weight_decay)
    for batch in itertools.islice(data.batches(0, 1, 0), 2):
        user, item = model(batch["user_ids"], batch["user_mask"], batch["item_ids"], batch["item_mask"])
        (contrastive_loss(user, item, spec.temperature, batch["item_key"]) / 2).backward()
    optimizer.step()

    assert result["steps"] == 1
    expected, got = _params(model), _params(trained)
    moved = sum(float((expected[n] - before[n]).abs().sum()) for n in expected)
    assert moved > 0
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)


def test_bf16_mixed_precision_trains_on_cpu(tokenizer):
    fp32 = launch(spec_for(tokenizer, epochs=2), "local")
    bf16 = launch(spec_for(tokenizer, epochs=2, mixed_precision="bf16"), "local")
    loss32, loss16 = [e["loss"] for e in fp32["history"]], [e["loss"] for e in bf16["history"]]
    assert all(math.isfinite(x) for x in loss16)
    assert loss16 != loss32                                   # autocast did run in bf16
    assert loss16 == pytest.approx(loss32, rel=0.05)          # and trained the same model
    assert bf16["fingerprint"]["sha256"] != fp32["fingerprint"]["sha256"]


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tokenizer, tmp_path):
    def spec(name, **overrides):
        return spec_for(tokenizer, epochs=2, warmup_steps=3, checkpoint_dir=str(tmp_path / name / "ckpt"),
                        output_dir=str(tmp_path / name / "out"), **overrides)

    whole = launch(spec("whole"), "local")
    stopped = launch(spec("resumed", stop_after_epochs=1), "local")
    assert not stopped["finished"] and stopped["output_dir"] is None and len(stopped["history"]) == 1
    assert latest_checkpoint(str(tmp_path / "resumed" / "ckpt"))[0] == 1
    assert not (tmp_path / "resumed" / "out").exists()
    resumed = launch(spec("resumed"), "local")

    assert whole["resumed_from_epoch"] == 0 and resumed["resumed_from_epoch"] == 1
    assert resumed["finished"] and resumed["steps"] == whole["steps"] == 2 * 8
    assert stopped["fingerprint"] != whole["fingerprint"]
    assert resumed["fingerprint"] == whole["fingerprint"]
    assert [e["loss"] for e in resumed["history"]] == [e["loss"] for e in whole["history"]]
    assert weights_fingerprint(TwoTower.load(tmp_path / "resumed" / "out")) == whole["fingerprint"]
    again = launch(spec("resumed"), "local")                  # nothing left to do: no more steps
    assert again["resumed_from_epoch"] == 2 and again["fingerprint"] == whole["fingerprint"]


_CHILD = """
import sys, torch
sys.path.insert(0, {repo!r})
torch.set_num_threads(1)
from tests.text.test_trainer import kill_spec, tokenizer_for_child
from promolake.text.trainer import launch
launch(kill_spec(tokenizer_for_child(), {home!r}), "local")
"""


def tokenizer_for_child():
    return load_tokenizer(MINILM)


def kill_spec(tok, home: str) -> TrainSpec:
    """Three epochs of 16 steps: long enough that a kill lands inside an epoch."""
    return spec_for(tok, data=make_pairs(tok, 128, 8), epochs=3, warmup_steps=3,
                    checkpoint_dir=f"{home}/ckpt", output_dir=f"{home}/out")


@pytest.mark.slow
def test_training_process_sigkilled_after_an_epoch_resumes_from_its_checkpoint(tokenizer, tmp_path):
    """A training process SIGKILLed while its second epoch runs (no finally block, no clean-up) leaves
    the first epoch's checkpoint and no output model; the re-run resumes from that checkpoint and ends
    with exactly the weights of a run that was never interrupted."""
    import signal
    import subprocess
    import time
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[2])
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD.format(repo=repo, home=str(killed))], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while latest_checkpoint(str(killed / "ckpt"))[0] < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)                                            # into the second epoch
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    done, _ = latest_checkpoint(str(killed / "ckpt"))
    assert done in (1, 2) and not (killed / "out").exists()

    resumed = launch(kill_spec(tokenizer, str(killed)), "local")
    whole = launch(kill_spec(tokenizer, str(tmp_path / "whole")), "local")
    assert resumed["resumed_from_epoch"] == done and resumed["finished"]
    assert resumed["fingerprint"] == whole["fingerprint"]
    assert weights_fingerprint(TwoTower.load(killed / "out")) == whole["fingerprint"]


@pytest.mark.slow
def test_fine_tunes_packaged_minilm_and_saves_a_model_that_loads(tokenizer, tmp_path):
    factory = functools.partial(build_model, MINILM, 0, 0)
    data = make_pairs(tokenizer, 32, 8, seed=2)
    spec = spec_for(tokenizer, model_factory=factory, data=data, epochs=2, learning_rate=1e-4, warmup_steps=2,
                    checkpoint_dir=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "out"), tokenizer=MINILM,
                    keep_checkpoints=1)

    result = launch(spec, "local")
    saved = TwoTower.load(tmp_path / "out")

    assert result["finished"] and result["steps"] == 8
    assert _pair_loss(saved, data) < 0.8 * _pair_loss(factory(), data)
    assert result["history"][-1]["loss"] < result["history"][0]["loss"]
    in_memory = factory()
    in_memory.load_state_dict(torch.load(tmp_path / "ckpt" / "epoch-0002.pt", weights_only=True)["model"])
    assert not (tmp_path / "ckpt" / "epoch-0001.pt").exists()   # keep_checkpoints=1
    assert weights_fingerprint(saved) == weights_fingerprint(in_memory) == result["fingerprint"]
    from transformers import AutoTokenizer

    texts = ["cherry coffee gifts", "glass red mug and other things"]
    batch = AutoTokenizer.from_pretrained(tmp_path / "out" / "tokenizer")(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        for tower in ("user", "item"):
            assert torch.equal(saved.encode(batch["input_ids"], batch["attention_mask"], tower),
                               in_memory.eval().encode(batch["input_ids"], batch["attention_mask"], tower))


# ----- two ranks through Spark --------------------------------------------------------------------------

def _check_two_identical_ranks(spec: TrainSpec, results: list[dict]) -> None:
    """Both ranks report the same weights and history, training moved the weights, and the distributed
    validation equals a one-process evaluation of the saved model."""
    assert [r["rank"] for r in results] == [0, 1] and {r["world_size"] for r in results} == {2}
    assert results[0]["fingerprint"] == results[1]["fingerprint"]
    assert results[0]["fingerprint"] != weights_fingerprint(spec.model_factory())
    assert results[0]["history"] == results[1]["history"]
    assert results[0]["steps"] == spec.data.steps_per_epoch(2) // spec.grad_accumulation * spec.epochs
    saved = TwoTower.load(spec.output_dir)
    assert weights_fingerprint(saved) == results[0]["fingerprint"]
    alone = evaluate(saved, spec.validation, K)
    last = results[0]["history"][-1]
    assert last[f"val_recall_at_{K}"] == pytest.approx(alone["recall"], abs=1e-9)
    assert last[f"val_ndcg_at_{K}"] == pytest.approx(alone["ndcg"], abs=1e-9)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.timeout(900)   # a collective that never matches must fail the test, not hang CI
def test_horovod_spark_run_two_gloo_workers_end_with_identical_weights(spark, tokenizer, tmp_path):
    spec = spec_for(tokenizer, data=make_pairs(tokenizer, 64, 8), grad_accumulation=2,
                    validation=make_validation(tokenizer), output_dir=str(tmp_path / "out"))
    results = launch_all(spec, "horovod", 2, spark, start_timeout=120)
    assert {r["engine"] for r in results} == {"horovod"}
    _check_two_identical_ranks(spec, results)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.timeout(900)   # a collective that never matches must fail the test, not hang CI
def test_torch_distributor_two_local_processes_end_with_identical_weights(spark, tokenizer, tmp_path):
    spec = spec_for(tokenizer, data=make_pairs(tokenizer, 64, 8), grad_accumulation=2,
                    validation=make_validation(tokenizer), output_dir=str(tmp_path / "out"))
    results = launch_all(spec, "torch_distributor", 2, spark)
    assert {r["engine"] for r in results} == {"torch_distributor"}
    _check_two_identical_ranks(spec, results)
