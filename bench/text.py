"""Benchmark: the text model's trainer, its Spark inference job, and scaling from 1 to 2 workers.

Measures, in one run, on the same pairs and cores:
  1. training samples/second of promolake's trainer (length-bucketed batches trimmed to their longest
     text, one process) against a plain Hugging Face fine-tuning loop that pads every text to 128
     tokens (AutoModel + mean pooling + the same in-batch contrastive loss and AdamW), same model,
     batch size and number of steps;
  2. the trainer through Horovod (horovod.spark.run, Gloo) with 1 and then 2 workers, fed by Petastorm
     from the same pairs (total samples/second; the cores are shared between the workers);
  3. embedding throughput of the Spark inference job (promolake.text.inference.embed, a model logged
     to a temporary MLflow store) in sentences/second and per core;
  4. where torch sees a CUDA device: the trainer on the GPU with fp16 mixed precision.

Pairs: (user_text as of T, text of an item bought in [T, T + 28 days)) from the lake (default: the
demo lake, `lakehouse`), T = 28 days before the last event; or `--synthetic` short texts when no lake
is at hand. Settings are printed with the results.

    .venv/bin/python bench/text.py --lake lakehouse
    .venv/bin/python bench/text.py --lake lakehouse --pairs 512 --steps 12 --embed 4000
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from foundation import PeakMemory  # noqa: E402

CHECKPOINT = "packaged:all-MiniLM-L6-v2"


def lake_pairs(spark, cfg, n_pairs: int, seed: int):
    """(user_text, item_text, item_id) pandas rows: purchases in the last 28 days against texts as of
    the day the window starts."""
    from pyspark.sql import functions as F

    from promolake.common.lake import Lake
    from promolake.ml.train_text import item_texts, sample, training_pairs, user_texts

    lake = Lake(spark, cfg.lake)
    events = lake.read("silver.events").select("user_id", "item_id", "event_type", "event_ts")
    last = events.agg(F.max("event_ts")).first()[0].date()
    end = last + dt.timedelta(days=1)
    start = end - dt.timedelta(days=28)
    pairs = training_pairs(events, user_texts(lake, cfg, start), item_texts(lake, cfg, start, events), start, end)
    return sample(pairs, n_pairs, seed).select("pair_id", "item_key", "user_text", "item_text").toPandas(), \
        (start, end)


def synthetic_pairs(n_pairs: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    words = "red blue green mug lamp candle basket clock vase glass wooden metal ceramic gift cheap".split()
    users = [" ".join(rng.choice(words, rng.integers(4, 40))) for _ in range(n_pairs)]
    items = rng.integers(200, size=n_pairs)
    return pd.DataFrame({"pair_id": np.arange(n_pairs), "item_key": items,
                         "user_text": users, "item_text": [f"item {i} " + " ".join(words[i % 7:i % 7 + 4])
                                                           for i in items]}), None


def token_rows(tokenizer, frame, max_user: int, max_item: int):
    """The pair rows promolake's batching expects (ids zero-padded to the maximum lengths + lengths)."""
    import numpy as np

    from promolake.text.model import encode_ids

    u_ids, u_len = encode_ids(tokenizer, frame["user_text"].tolist(), max_user)
    i_ids, i_len = encode_ids(tokenizer, frame["item_text"].tolist(), max_item)
    return {"pair_id": frame["pair_id"].to_numpy(np.int64), "item_key": frame["item_key"].to_numpy(np.int64),
            "user_ids": u_ids, "user_len": u_len, "item_ids": i_ids, "item_len": i_len}


def plain_hf_loop(frame, batch_size: int, steps: int, lr: float, temperature: float) -> dict:
    """The baseline: every text padded to 128 tokens, AutoModel, mean pooling, same loss and optimizer."""
    import torch
    from transformers import AutoModel

    from promolake.text.model import contrastive_loss, load_tokenizer, resolve_checkpoint

    tok = load_tokenizer(CHECKPOINT)
    torch.manual_seed(0)
    model = AutoModel.from_pretrained(resolve_checkpoint(CHECKPOINT), add_pooling_layer=False).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def pooled(texts):
        enc = tok(texts, padding="max_length", truncation=True, max_length=128, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1)

    samples, started = 0, None
    for step in range(steps + 1):                     # step 0 warms up (allocations), not timed
        if step == 1:
            started = time.perf_counter()
        lo = (step * batch_size) % max(1, len(frame) - batch_size)
        part = frame.iloc[lo:lo + batch_size]
        loss = contrastive_loss(pooled(part["user_text"].tolist()), pooled(part["item_text"].tolist()), temperature,
                                torch.as_tensor(part["item_key"].to_numpy()))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        samples += len(part) if step else 0
    secs = time.perf_counter() - started
    return {"samples_per_second": samples / secs, "seconds": secs, "steps": steps, "loss": float(loss)}


def trainer_run(rows, batch_size: int, steps: int, lr: float, temperature: float, use_gpu: bool = False,
                precision: str = "off") -> dict:
    """promolake's trainer in this process on exactly `steps` optimizer steps (+1 untimed warm-up step)."""
    import functools

    import numpy as np

    from promolake.text.batching import InMemoryPairs
    from promolake.text.model import build_model
    from promolake.text.trainer import TrainSpec, launch

    n = (steps + 1) * batch_size
    take = {k: np.resize(v, (n, *v.shape[1:])) for k, v in rows.items()}   # repeats pairs if too few
    take["pair_id"] = np.arange(n)
    warm = {k: v[:batch_size] for k, v in take.items()}
    factory = functools.partial(build_model, CHECKPOINT, 0, 0)
    common = dict(model_factory=factory, learning_rate=lr, temperature=temperature, log_every=0,
                  use_gpu=use_gpu, mixed_precision=precision)
    launch(TrainSpec(data=InMemoryPairs(warm, batch_size), **common), "local")
    timed = {k: v[batch_size:] for k, v in take.items()}
    out = launch(TrainSpec(data=InMemoryPairs(timed, batch_size, length_bucket_batches=16), **common), "local")
    entry = out["history"][-1]
    return {"samples_per_second": entry["samples_per_second"], "seconds": entry["seconds"], "steps": out["steps"],
            "loss": entry["loss"]}


def horovod_run(spark, rows, batch_size: int, epochs: int, lr: float, temperature: float, num_proc: int,
                cache: str) -> dict:
    """The trainer under horovod.spark.run with num_proc Gloo workers, fed by Petastorm."""
    import functools

    import pandas as pd

    from promolake.text import data as tdata
    from promolake.text.model import build_model
    from promolake.text.trainer import TrainSpec, launch

    frame = pd.DataFrame({k: (list(v) if v.ndim > 1 else v) for k, v in rows.items()})
    df = spark.createDataFrame(frame)
    tdata.cache_url(cache, spark)
    with tdata.PetastormPairs.from_dataframe(df, batch_size, num_proc, 16, seed=0) as source:
        spec = TrainSpec(model_factory=functools.partial(build_model, CHECKPOINT, 0, 0), data=source, epochs=epochs,
                         learning_rate=lr, temperature=temperature, log_every=0)
        t = time.perf_counter()
        out = launch(spec, "horovod", num_proc, spark)
        wall = time.perf_counter() - t
    last = out["history"][-1]
    return {"workers": num_proc, "steps_per_epoch": out["steps_per_epoch"],
            "samples_per_second": last["samples_per_second"],
            "samples_per_second_per_worker": last["samples_per_second_per_worker"],
            "epoch_seconds": last["seconds"], "wall_seconds_with_startup": wall, "loss": last["loss"]}


def embed_run(spark, frame, n_texts: int, batch_size: int, max_len: int, cores: int) -> dict:
    """Spark inference job: embed n_texts user texts with a model logged to a temporary MLflow store."""
    import mlflow
    import pandas as pd
    from pyspark.sql import functions as F

    from promolake.text.inference import embed
    from promolake.text.model import build_model, load_tokenizer
    from promolake.text.text_model import log_text_model

    tmp = tempfile.mkdtemp(prefix="promolake-bench-text-mlflow-")
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    exp = mlflow.create_experiment("bench-text", artifact_location=f"file://{tmp}/artifacts")
    with mlflow.start_run(experiment_id=exp):
        uri = log_text_model(build_model(CHECKPOINT), load_tokenizer(CHECKPOINT), max_len, max_len)
    texts = pd.Series(frame["user_text"].tolist() * (n_texts // len(frame) + 1))[:n_texts]
    df = spark.createDataFrame(pd.DataFrame({"id": range(n_texts), "text": texts})).repartition(cores).cache()
    df.count()
    embed(df.limit(cores * 8), "text", uri, "user", batch_size).agg(F.count("embedding")).first()   # load per worker
    t = time.perf_counter()
    n = embed(df, "text", uri, "user", batch_size).agg(F.count("embedding")).first()[0]
    secs = time.perf_counter() - t
    df.unpersist()
    return {"texts": n, "seconds": secs, "sentences_per_second": n / secs, "per_core": n / secs / cores,
            "max_len": max_len, "batch_size": batch_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", default="lakehouse", help="lake with silver.events/items and gold.user_profile")
    ap.add_argument("--synthetic", action="store_true", help="synthetic short texts instead of a lake")
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps timed for trainer vs plain loop")
    ap.add_argument("--max-user-len", type=int, default=64)
    ap.add_argument("--max-item-len", type=int, default=48)
    ap.add_argument("--embed", type=int, default=4000, help="texts embedded by the Spark inference job")
    ap.add_argument("--skip-horovod", action="store_true")
    args = ap.parse_args()

    import torch

    from promolake.common.config import load_config
    from promolake.common.spark import get_spark
    from promolake.text.model import load_tokenizer

    home = os.path.abspath(args.lake)
    os.environ.setdefault("PROMOLAKE_PII_SALT", "bench")
    cfg = load_config("local", overrides=["spark.show_progress=false"], environ={**os.environ, "PROMOLAKE_HOME": home})
    spark = get_spark(cfg.spark)
    from promolake.ml.als import task_slots

    cores = task_slots(spark.sparkContext.master, spark.sparkContext.defaultParallelism)
    torch.set_num_threads(cores)
    lr, temperature = 5e-5, 0.05
    frame, window = synthetic_pairs(args.pairs, 0) if args.synthetic else lake_pairs(spark, cfg, args.pairs, 7)
    rows = token_rows(load_tokenizer(CHECKPOINT), frame, args.max_user_len, args.max_item_len)
    mean_tokens = (rows["user_len"].mean() + rows["item_len"].mean()) / 2
    print(f"pairs={len(frame):,} ({'synthetic' if window is None else f'lake {home}, window {window[0]}..{window[1]}'})"
          f", mean tokens user {rows['user_len'].mean():.1f} / item {rows['item_len'].mean():.1f} "
          f"(max {args.max_user_len}/{args.max_item_len}); batch {args.batch_size}; master {spark.sparkContext.master};"
          f" torch threads {torch.get_num_threads()}; checkpoint {CHECKPOINT}", flush=True)
    results = []
    with PeakMemory() as mem:
        plain = plain_hf_loop(frame, args.batch_size, args.steps, lr, temperature)
        print(f"plain HF loop (pad 128): {plain}", flush=True)
        ours = trainer_run(rows, args.batch_size, args.steps, lr, temperature)
        print(f"promolake trainer (bucketed, trimmed): {ours}", flush=True)
        results.append(("plain HF loop, pad to 128, 1 process", plain["samples_per_second"], plain["steps"]))
        results.append(("promolake trainer, length buckets, 1 process", ours["samples_per_second"], ours["steps"]))
        if not args.skip_horovod:
            cache = f"file://{tempfile.mkdtemp(prefix='promolake-bench-petastorm-')}"
            for n in (1, 2):
                hv = horovod_run(spark, rows, args.batch_size, 1, lr, temperature, n, cache)
                print(f"horovod x {n}: {hv}", flush=True)
                results.append((f"promolake trainer, horovod.spark.run Gloo x {n} (Petastorm)",
                                hv["samples_per_second"], hv["steps_per_epoch"]))
        emb = embed_run(spark, frame, args.embed, cfg.text.embed_batch_size, args.max_user_len, cores)
        print(f"spark embed: {emb}", flush=True)
        if torch.cuda.is_available():
            gpu = trainer_run(rows, args.batch_size, args.steps, lr, temperature, use_gpu=True, precision="fp16")
            print(f"GPU fp16 trainer ({torch.cuda.get_device_name(0)}): {gpu}", flush=True)
            results.append((f"promolake trainer, {torch.cuda.get_device_name(0)}, fp16", gpu["samples_per_second"],
                            gpu["steps"]))
    print("\n| run | samples/s | steps |\n|---|---:|---:|")
    for name, sps, steps in results:
        print(f"| {name} | {sps:.1f} | {steps} |")
    print(f"| Spark embed job (user tower, max {args.max_user_len} tokens) | {emb['sentences_per_second']:.0f} "
          f"sentences/s = {emb['per_core']:.0f} /s/core over {emb['texts']:,} texts | |")
    print(f"mean tokens per text {mean_tokens:.1f}; peak RSS (driver+JVM+workers) {mem.peak / 2**30:.1f} GiB")
    spark.stop()


if __name__ == "__main__":
    main()
