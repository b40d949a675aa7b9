"""Does the compiled, unpadded encoder keep one graph as batch lengths change?

The unpadded path's token count N differs in every batch (models/unpad.py). If `torch.compile`
specialised on it, each new length would recompile (tens of seconds on a GPU) and training would
crawl. This trains a small BERT through `runtime.compiling.compile_step` (model and loss together, as the
trainer does) on batches of random lengths, and prints per step: N, seconds, the graphs Dynamo
has built so far, and the loss against the same model run eagerly. Passing means the graph
count stops growing after the second batch (the first is traced with static sizes, the second
with symbolic ones), or, with `--dynamic` (train.compile_dynamic), after the first.

    python bench/compile_check.py --device cuda   # bf16 autocast: the flash varlen kernel
    python bench/compile_check.py --device cpu    # inductor's CPU code, the padded attention
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch._dynamo.utils import counters

from plmkit.config import ModelConfig
from plmkit.models.encoder import PretrainingModel
from plmkit.runtime.compiling import compile_step

CFG = ModelConfig(
    vocab_size=8000,
    hidden_size=256,
    num_layers=4,
    num_heads=4,
    intermediate_size=1024,
    max_position=128,
    dropout=0.0,
    attention_dropout=0.0,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument(
        "--dynamic",
        action="store_true",
        help="sizes symbolic from the start (train.compile_dynamic)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    torch.manual_seed(0)
    model = PretrainingModel(CFG).to(device).train()

    def forward_loss(ids, mask, positions, labels):  # model and loss, as the trainer compiles them
        logits = model(ids, mask, None, positions).mlm_logits  # (M, V)
        return torch.nn.functional.cross_entropy(logits.float(), labels)

    step = compile_step(forward_loss, dynamic=args.dynamic or None)
    rng = torch.Generator().manual_seed(0)
    tolerance = 1e-2 if device.type == "cuda" else 1e-4  # relative: bf16 there, fp32 here
    graphs, worst = [], 0.0
    print("| batch | real tokens N | masked M | seconds | graphs so far | loss compiled | eager |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for i in range(args.batches):
        B, T = 32, 128
        lengths = torch.randint(T // 4, T + 1, (B,), generator=rng)
        mask = torch.arange(T)[None] < lengths[:, None]  # (B, T) right-padded
        ids = torch.randint(5, CFG.vocab_size, (B, T), generator=rng).masked_fill(~mask, 0)
        chosen = (torch.rand(B, T, generator=rng) < 0.15) & mask
        positions = chosen.reshape(-1).nonzero().squeeze(1)
        labels = ids.reshape(-1)[positions]
        inputs = [t.to(device) for t in (ids, mask.long(), positions, labels)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with amp:
            loss = step(*inputs)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        model.zero_grad(set_to_none=True)
        with torch.no_grad(), amp:
            eager = forward_loss(*inputs)
        graphs.append(counters["stats"]["unique_graphs"])
        worst = max(worst, abs(float(loss.detach()) - float(eager)) / abs(float(eager)))
        print(
            f"| {i} | {int(mask.sum())} | {len(positions)} | {seconds:.2f} | "
            f"{graphs[-1]} | {float(loss.detach()):.5f} | {float(eager):.5f} |",
            flush=True,
        )
    recompiled = len(graphs) > 2 and graphs[-1] > graphs[1]
    print(
        f"\ngraphs after batch 2: {graphs[1]}, at the end: {graphs[-1]}; worst relative loss "
        f"difference {worst:.1e} (tolerance {tolerance:.0e})"
    )
    if recompiled or worst > tolerance:
        raise SystemExit(
            "FAIL: " + ("recompiled as lengths changed" if recompiled else "losses differ")
        )


if __name__ == "__main__":
    main()
