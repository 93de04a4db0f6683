"""Benchmark: the two-tower text model (promolake.text) on one CUDA GPU, training and embedding.

Measures, on synthetic (user_text, item_text) pairs of realistic lengths (user texts 20-120 words in
the 'searched: ...; bought: ...; viewed: ...' form of gold.user_profile, item texts 8-30 words; seeded):

  1. training samples/second of promolake's trainer (promolake.text.trainer.train, engine "local",
     one GPU): TwoTower + contrastive_loss + AdamW + gradient clipping, fed by the length-bucketed,
     trimmed batches of promolake.text.batching.InMemoryPairs, for each precision (fp32; tf32 =
     fp32 with TF32 matrix products; bf16 autocast; fp16 autocast + GradScaler) and batch size, at the
     text.max_user_len / text.max_item_len of conf/base.yml (64 / 48). Each run trains two epochs of
     --steps optimizer steps on the same model: the first warms up (allocator, kernels, optimizer
     state), the second is the one reported, as the trainer itself times it (samples / epoch seconds,
     host-side batching and copies included). Plus one bf16 run at max lengths 128 / 128, the
     baseline's truncation;
  2. the baseline: a plain Hugging Face loop (AutoModel, mean pooling, the same loss, AdamW, bf16
     autocast) on texts pre-tokenised and padded to 128 tokens, batch 128;
  3. embedding sentences/second through TwoTower.encode (mean pooling) at batch 512, as
     promolake.text.text_model.encode_texts does it (texts sorted by length, each batch trimmed to its
     longest text, inference_mode, embeddings copied back to the host), per tower at its max length,
     on pre-tokenised texts and (user tower) with tokenisation included, after one untimed pass over
     the same texts (every batch width is a new shape: first calls of a shape are slow);
  4. peak GPU memory (torch.cuda.max_memory_allocated) of each configuration.

'real tok/s' counts the non-padding tokens the model read per second (user + item texts for
training): it compares runs that truncate differently. Results are printed as a Markdown table with
the settings; with $OUT set (the device tool) they are also written to $OUT/text_gpu.md and
$OUT/text_gpu.json.

No Spark, MLflow or Horovod needed: only torch, transformers (tokenizers) and numpy. The model is a
Hugging Face BERT directory (config.json, weights, tokenizer); fp16 weights are fine, they are loaded
as fp32 (the trainer keeps fp32 master weights under autocast).

    PYTHONPATH=libs python bench/text_gpu.py --model-dir .gpu/minilm
    PYTHONPATH=libs .venv/bin/python bench/text_gpu.py --device cpu --steps 2 --warmup 1 --batch-sizes 4 \\
        --precisions fp32,bf16 --pairs 64 --embed-batch 16 --plain-batch 4       # smoke test on CPU
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "libs"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")            # a local directory: never wait on the hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
LR, TEMPERATURE, WEIGHT_DECAY = 5e-5, 0.05, 0.01   # conf/base.yml text.learning_rate / temperature

# ----- synthetic pairs -------------------------------------------------------------------------------

_ADJ = ("cheap red blue green black white wooden metal ceramic glass cotton wool linen leather bamboo "
        "stainless vintage modern rustic compact large small portable rechargeable waterproof organic "
        "handmade scented cordless ergonomic foldable insulated nonstick").split()
_NOUN = ("kettle mug teapot candle lamp basket clock vase blanket cushion scarf jumper towel frame "
         "planter skillet saucepan grinder toaster blender backpack wallet notebook headphones charger "
         "speaker keyboard monitor bottle lunchbox umbrella slippers apron tray coaster rug curtain "
         "diffuser thermos spatula whisk colander").split()
_BRAND = "Acme Nordlys Kitchenly HomeCo Brightwood Oakhaven Lumina Tessaro Vantage Polaris".split()
_EXTRA = ("for gift set of 2 pack 4 with lid 1.7L 500ml 30cm XL dishwasher safe eco friendly birthday "
          "christmas summer winter kids adults home office garden travel review great quality fast "
          "delivery would buy again").split()


def _words(rng: np.random.Generator, n: int) -> list[str]:
    pools = (_ADJ, _NOUN, _EXTRA, _BRAND)
    kinds = rng.choice(len(pools), size=n, p=(0.3, 0.35, 0.3, 0.05))
    return [pools[k][rng.integers(len(pools[k]))] for k in kinds]


def synthetic_pairs(n_pairs: int, seed: int, n_items: int = 2000) -> dict[str, list | np.ndarray]:
    """n_pairs (user_text, item_text) with item_key: user texts of 20-120 words in user_profile's form
    ('searched: ...; bought: ...; viewed: ...'), item titles + descriptions of 8-30 words."""
    rng = np.random.default_rng(seed)
    item_rng = np.random.default_rng(seed + 1)
    catalogue = [" ".join([_BRAND[item_rng.integers(len(_BRAND))]] + _words(item_rng, int(item_rng.integers(7, 30))))
                 for _ in range(n_items)]
    keys = rng.integers(n_items, size=n_pairs)
    users = []
    for _ in range(n_pairs):
        words = _words(rng, int(rng.integers(20, 121)))
        cut = np.sort(rng.choice(np.arange(1, len(words)), size=2, replace=False))
        parts = [words[:cut[0]], words[cut[0]:cut[1]], words[cut[1]:]]
        users.append(". ".join(f"{label}: " + "; ".join(" ".join(p[i:i + 3]) for i in range(0, len(p), 3))
                               for label, p in zip(("searched", "bought", "viewed"), parts)))
    return {"pair_id": np.arange(n_pairs, dtype=np.int64), "item_key": keys.astype(np.int64),
            "user_text": users, "item_text": [catalogue[k] for k in keys]}


def pair_rows(tokenizer, pairs: dict, max_user: int, max_item: int) -> dict[str, np.ndarray]:
    """The rows promolake.text.batching expects (ids zero-padded to the maximum lengths + lengths)."""
    from promolake.text.model import encode_ids

    u_ids, u_len = encode_ids(tokenizer, pairs["user_text"], max_user)
    i_ids, i_len = encode_ids(tokenizer, pairs["item_text"], max_item)
    return {"pair_id": pairs["pair_id"], "item_key": pairs["item_key"],
            "user_ids": u_ids, "user_len": u_len, "item_ids": i_ids, "item_len": i_len}


def take_rows(rows: dict[str, np.ndarray], n: int, seed: int) -> dict[str, np.ndarray]:
    """n rows drawn from rows (repeating when there are fewer), with fresh pair ids."""
    idx = np.random.default_rng(seed).permutation(np.resize(np.arange(len(rows["pair_id"])), n))
    out = {k: v[idx] for k, v in rows.items()}
    out["pair_id"] = np.arange(n, dtype=np.int64)
    return out


# ----- model ---------------------------------------------------------------------------------------

def load_encoder(model_dir: str):
    """The BERT encoder of model_dir in fp32, without the pooling layer."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(model_dir, add_pooling_layer=False, dtype=torch.float32).float()


def load_two_tower(model_dir: str, seed: int = 0):
    """promolake's TwoTower on model_dir's encoder (fp32, no projection)."""
    from promolake.text.model import TwoTower

    torch.manual_seed(seed)
    return TwoTower(load_encoder(model_dir), 0)


# ----- measurements ----------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _matmul_precision(precision: str) -> str:
    return "high" if precision == "tf32" else "highest"


def _autocast(device: torch.device, precision: str):
    """Autocast to bf16 / fp16, or nothing for fp32 / tf32 (the plain loop and embedding)."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def batching_profile(rows: dict[str, np.ndarray], batch_size: int) -> dict[str, float]:
    """One epoch of InMemoryPairs on the host alone: ms per batch, and real / padded tokens (the share
    of the trimmed batches' tokens that are not padding)."""
    from promolake.text.batching import InMemoryPairs

    source = InMemoryPairs(rows, batch_size, length_bucket_batches=16, seed=0)
    real = padded = n = 0
    t = time.perf_counter()
    for batch in source.batches(0, 1, 0):
        for tower in ("user", "item"):
            mask = batch[f"{tower}_mask"]
            real += int(mask.sum())
            padded += mask.numel()
        n += 1
    secs = time.perf_counter() - t
    return {"batching_ms_per_batch": 1000 * secs / max(1, n), "padding_efficiency": real / max(1, padded)}


def trainer_run(model_dir: str, rows: dict[str, np.ndarray], batch_size: int, steps: int, precision: str,
                device: torch.device) -> dict:
    """promolake.text.trainer.train, engine local: two epochs of `steps` optimizer steps, the first a
    warm-up; returns the second epoch's samples/s as the trainer times it."""
    from promolake.text.batching import InMemoryPairs
    from promolake.text.trainer import TrainSpec, launch

    data = take_rows(rows, steps * batch_size, seed=batch_size)
    real_tokens = int(data["user_len"].sum() + data["item_len"].sum())
    spec = TrainSpec(model_factory=functools.partial(load_two_tower, model_dir, 0),
                     data=InMemoryPairs(data, batch_size, length_bucket_batches=16, seed=0), epochs=2,
                     learning_rate=LR, temperature=TEMPERATURE, weight_decay=WEIGHT_DECAY, log_every=0,
                     use_gpu=device.type == "cuda",
                     mixed_precision="off" if precision in ("fp32", "tf32") else precision)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(_matmul_precision(precision))
    _reset_peak(device)
    try:
        out = launch(spec, "local")
    finally:
        torch.set_float32_matmul_precision(previous)
    timed = out["history"][-1]
    if out["steps_per_epoch"] != steps or len(out["history"]) != 2:
        raise RuntimeError(f"trainer ran {out['steps_per_epoch']} steps x {len(out['history'])} epochs, "
                           f"expected {steps} x 2")
    return {"throughput": timed["samples_per_second"], "ms_per_step": 1000 * timed["seconds"] / steps,
            "real_tokens_per_second": real_tokens / timed["seconds"], "steps": steps,
            "peak_mib": _peak_mib(device), "loss": timed["loss"], "warmup_epoch_samples_per_second":
            out["history"][0]["samples_per_second"]}


def plain_hf_run(model_dir: str, tokenizer, pairs: dict, batch_size: int, steps: int, warmup: int,
                 precision: str, device: torch.device, max_len: int = 128) -> dict:
    """The baseline: texts pre-tokenised and padded to max_len, AutoModel + mean pooling, the same
    in-batch loss (item keys masked), AdamW, autocast; no bucketing, no trimming."""
    from promolake.text.model import contrastive_loss

    n_texts = len(pairs["user_text"])
    enc = {t: tokenizer(pairs[f"{t}_text"], padding="max_length", truncation=True, max_length=max_len,
                        return_tensors="pt") for t in ("user", "item")}
    keys = torch.as_tensor(pairs["item_key"])
    torch.manual_seed(0)
    model = load_encoder(model_dir).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    autocast = _autocast(device, precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(_matmul_precision(precision))

    def pooled(tower: str, lo: int):
        ids = enc[tower]["input_ids"][lo:lo + batch_size].to(device, non_blocking=True)
        mask = enc[tower]["attention_mask"][lo:lo + batch_size].to(device, non_blocking=True)
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize(((hidden * m).sum(1) / m.sum(1).clamp(min=1.0)).float(), dim=-1)

    _reset_peak(device)
    real_tokens, started = 0, None
    for step in range(warmup + steps):
        if step == warmup:
            _sync(device)
            started = time.perf_counter()
        lo = (step * batch_size) % max(1, n_texts - batch_size)
        with autocast:
            loss = contrastive_loss(pooled("user", lo), pooled("item", lo), TEMPERATURE,
                                    keys[lo:lo + batch_size].to(device))
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        opt.zero_grad(set_to_none=True)
        if step >= warmup:
            real_tokens += int(enc["user"]["attention_mask"][lo:lo + batch_size].sum()
                               + enc["item"]["attention_mask"][lo:lo + batch_size].sum())
    _sync(device)
    secs = time.perf_counter() - started
    torch.set_float32_matmul_precision(previous)
    return {"throughput": steps * batch_size / secs, "ms_per_step": 1000 * secs / steps,
            "real_tokens_per_second": real_tokens / secs, "steps": steps, "peak_mib": _peak_mib(device),
            "loss": float(loss.detach())}


def embed_run(net, tokenizer, texts: list[str], tower: str, max_len: int, batch_size: int, warmup: int,
              precision: str, device: torch.device, include_tokenize: bool) -> dict:
    """Sentences/s of TwoTower.encode over texts, as text_model.encode_texts does it (sorted by length,
    batches trimmed to their longest text, inference_mode, embeddings back on the host), on device;
    tokenisation inside the timed region when include_tokenize."""
    autocast = _autocast(device, precision)
    net.eval()

    def tokenize():
        encoded = tokenizer(texts, truncation=True, max_length=max_len, add_special_tokens=True)["input_ids"]
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(texts))
        ids = np.zeros((len(texts), max_len), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, :len(e)] = e
        return ids, lengths

    def encode(ids, lengths, batches):
        out = np.zeros((len(texts), net.dim), dtype=np.float32)
        with torch.inference_mode(), autocast:
            for rows in batches:
                width = int(lengths[rows].max())
                x = torch.from_numpy(ids[rows, :width]).to(device, non_blocking=True)
                mask = torch.from_numpy((np.arange(width)[None, :] < lengths[rows, None]).astype(np.int64))
                out[rows] = net.encode(x, mask.to(device, non_blocking=True), tower).float().cpu().numpy()
        return out

    ids, lengths = tokenize()
    order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for _ in range(warmup):                            # untimed passes over every batch: each batch width
        encode(ids, lengths, batches)                  # (a new shape) pays its first-call costs here
    _reset_peak(device)
    started = time.perf_counter()
    if include_tokenize:
        ids, lengths = tokenize()
        order = np.argsort(lengths, kind="stable")
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    out = encode(ids, lengths, batches)
    _sync(device)
    secs = time.perf_counter() - started
    if not np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-2):
        raise RuntimeError("embeddings are not unit length")
    return {"throughput": len(texts) / secs, "ms_per_step": 1000 * secs / len(batches),
            "real_tokens_per_second": float(lengths.sum()) / secs, "steps": len(batches),
            "peak_mib": _peak_mib(device), "loss": None}


# ----- report ----------------------------------------------------------------------------------------

def environment(device: torch.device, model_dir: str) -> dict:
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "numpy": np.__version__, "device": str(device), "model_dir": model_dir}
    try:
        import tokenizers

        env["tokenizers"] = tokenizers.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        try:
            env["nvidia_smi_L"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                                 timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            env["nvidia_smi_L"] = f"(nvidia-smi failed: {e})"
    else:
        env["cpu_threads"] = torch.get_num_threads()
    return env


def markdown(results: list[dict]) -> str:
    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    def rate(v):
        return format(v, ",.0f") if v >= 100 else format(v, ".3g")

    lines = ["| run | precision | batch | max len user/item | throughput | ms/step | real tok/s | "
             "pad eff. | peak GPU MiB | timed steps | loss |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['run']} | {r['precision']} | {r['batch_size']} | {r['max_len']} | "
                     f"{rate(r['throughput'])} {r['unit']} | {r['ms_per_step']:.1f} | "
                     f"{r['real_tokens_per_second']:,.0f} | {num(r.get('padding_efficiency'), '.2f')} | "
                     f"{num(r['peak_mib'], ',.0f')} | {r['steps']} | {num(r['loss'], '.3f')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=None,
                    help="Hugging Face BERT directory (config, weights, tokenizer); default: the packaged "
                         "all-MiniLM-L6-v2 (text.checkpoint of conf/base.yml)")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: a smoke test)")
    ap.add_argument("--pairs", type=int, default=8192, help="distinct synthetic pairs (repeated when a run needs more)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-sizes", default="32,128,256", help="trainer batch sizes, comma-separated")
    ap.add_argument("--precisions", default="fp32,tf32,bf16,fp16",
                    help=f"trainer precisions, comma-separated, of {','.join(PRECISIONS)}")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (trainer: also the warm-up epoch's)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps of the baseline")
    ap.add_argument("--embed-warmup", type=int, default=1, help="untimed passes over all texts before an "
                                                                "embedding run is timed")
    ap.add_argument("--max-user-len", type=int, default=64, help="conf/base.yml text.max_user_len")
    ap.add_argument("--max-item-len", type=int, default=48, help="conf/base.yml text.max_item_len")
    ap.add_argument("--plain-batch", type=int, default=128, help="batch of the plain HF baseline and of the "
                                                                 "trainer run at lengths 128/128; 0: skip both")
    ap.add_argument("--plain-precision", default="bf16", choices=PRECISIONS)
    ap.add_argument("--embed-batch", type=int, default=512)
    ap.add_argument("--embed-precisions", default="bf16,fp32", help="comma-separated; empty: no embedding runs")
    args = ap.parse_args()

    from promolake.text.model import load_tokenizer, resolve_checkpoint
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    model_dir = args.model_dir or resolve_checkpoint("packaged:all-MiniLM-L6-v2")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device (use --device cpu for a smoke test)")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    precisions = [p for p in args.precisions.split(",") if p]
    embed_precisions = [p for p in args.embed_precisions.split(",") if p]
    unknown = set(precisions + embed_precisions + [args.plain_precision]) - set(PRECISIONS)
    if unknown:
        ap.error(f"unknown precision(s) {sorted(unknown)}; known: {PRECISIONS}")
    if device.type != "cuda":   # fp16 needs CUDA in the trainer; TF32 is a GPU matmul mode
        dropped = [p for p in precisions if p in ("tf32", "fp16")]
        precisions = [p for p in precisions if p not in ("tf32", "fp16")]
        if dropped:
            print(f"note: {dropped} skipped on {device}", flush=True)

    env = environment(device, model_dir)
    for name, value in env.items():
        print(f"{name}: {value}", flush=True)

    t0 = time.perf_counter()
    tokenizer = load_tokenizer(model_dir)
    pairs = synthetic_pairs(args.pairs, args.seed)
    rows = pair_rows(tokenizer, pairs, args.max_user_len, args.max_item_len)
    rows128 = pair_rows(tokenizer, pairs, 128, 128)
    words_u = np.array([len(t.split()) for t in pairs["user_text"]])
    words_i = np.array([len(t.split()) for t in pairs["item_text"]])
    settings = {
        "pairs": args.pairs, "seed": args.seed, "steps": args.steps, "warmup": args.warmup,
        "user_words_mean": float(words_u.mean()), "item_words_mean": float(words_i.mean()),
        "user_tokens_mean_untruncated": float(rows128["user_len"].mean()),
        "item_tokens_mean_untruncated": float(rows128["item_len"].mean()),
        "user_tokens_mean": float(rows["user_len"].mean()), "item_tokens_mean": float(rows["item_len"].mean()),
        "user_truncated_share": float((rows["user_len"] >= args.max_user_len).mean()),
        "max_user_len": args.max_user_len, "max_item_len": args.max_item_len,
        "learning_rate": LR, "temperature": TEMPERATURE, "grad_clip": 1.0, "optimizer": "AdamW",
        "attention": getattr(load_encoder(model_dir).config, "_attn_implementation", None),
        "setup_seconds": None,
    }
    settings["setup_seconds"] = round(time.perf_counter() - t0, 1)
    print("settings: " + json.dumps(settings), flush=True)

    results: list[dict] = []

    def record(run: str, precision: str, batch: int, max_len: str, unit: str, r: dict, **extra) -> None:
        row = {"run": run, "precision": precision, "batch_size": batch, "max_len": max_len, "unit": unit, **r, **extra}
        results.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    lens = f"{args.max_user_len}/{args.max_item_len}"
    for batch in batch_sizes:
        profile = batching_profile(take_rows(rows, args.steps * batch, seed=batch), batch)
        for precision in precisions:
            r = trainer_run(model_dir, rows, batch, args.steps, precision, device)
            record("promolake trainer (length buckets, trimmed)", precision, batch, lens, "samples/s", r, **profile)
    if args.plain_batch:
        r = trainer_run(model_dir, rows128, args.plain_batch, args.steps, args.plain_precision, device)
        record("promolake trainer (length buckets, trimmed)", args.plain_precision, args.plain_batch, "128/128",
               "samples/s", r, **batching_profile(take_rows(rows128, args.steps * args.plain_batch,
                                                             seed=args.plain_batch), args.plain_batch))
        n = max(args.pairs, (args.warmup + args.steps + 1) * args.plain_batch)
        plain_pairs = {k: (list(np.resize(np.array(v, dtype=object), n)) if isinstance(v, list) else np.resize(v, n))
                       for k, v in pairs.items()}
        r = plain_hf_run(model_dir, tokenizer, plain_pairs, args.plain_batch, args.steps, args.warmup,
                         args.plain_precision, device)
        record("plain HF loop (pad all to 128)", args.plain_precision, args.plain_batch, "128/128", "samples/s", r,
               padding_efficiency=r["real_tokens_per_second"] * r["ms_per_step"] / 1000 / (2 * 128 * args.plain_batch))
    if embed_precisions:
        net = load_two_tower(model_dir).to(device)
        n = args.steps * args.embed_batch
        for precision in embed_precisions:
            torch.set_float32_matmul_precision(_matmul_precision(precision))
            for tower, max_len in (("user", args.max_user_len), ("item", args.max_item_len)):
                texts = list(np.resize(np.array(pairs[f"{tower}_text"], dtype=object), n))
                r = embed_run(net, tokenizer, texts, tower, max_len, args.embed_batch, args.embed_warmup, precision,
                              device, include_tokenize=False)
                record(f"embed {tower} tower (TwoTower.encode, pre-tokenised)", precision, args.embed_batch,
                       str(max_len), "sentences/s", r)
            texts = list(np.resize(np.array(pairs["user_text"], dtype=object), n))
            r = embed_run(net, tokenizer, texts, "user", args.max_user_len, args.embed_batch, args.embed_warmup,
                          precision, device, include_tokenize=True)
            record("embed user tower (tokenise + encode)", precision, args.embed_batch, str(args.max_user_len),
                   "sentences/s", r)
        del net

    total = time.perf_counter() - t0
    table = markdown(results)
    header = (f"{env.get('gpu', env['device'])}; torch {env['torch']}, transformers {env['transformers']}; "
              f"model {model_dir} (attention {settings['attention']}); {args.pairs:,} synthetic pairs, "
              f"user {settings['user_words_mean']:.0f} words = {settings['user_tokens_mean_untruncated']:.0f} tokens "
              f"({settings['user_tokens_mean']:.1f} kept at max {args.max_user_len}, "
              f"{100 * settings['user_truncated_share']:.0f}% truncated), item {settings['item_words_mean']:.0f} "
              f"words = {settings['item_tokens_mean']:.1f} tokens; trainer: {args.steps} timed steps after a "
              f"warm-up epoch of {args.steps}; baseline: {args.warmup} warm-up steps; embedding: "
              f"{args.embed_warmup} untimed pass(es) first; "
              f"total {total:.0f} s")
    print("\n" + header + "\n\n" + table, flush=True)
    out_dir = os.environ.get("OUT")
    if out_dir:
        with open(os.path.join(out_dir, "text_gpu.md"), "w") as f:
            f.write(header + "\n\n" + table + "\n")
        with open(os.path.join(out_dir, "text_gpu.json"), "w") as f:
            json.dump({"environment": env, "settings": settings, "args": vars(args), "results": results,
                       "total_seconds": total}, f, indent=2)
        print(f"wrote {out_dir}/text_gpu.md and text_gpu.json", flush=True)


if __name__ == "__main__":
    main()
