"""Generation speed: plmkit `generate` against Transformers' `generate`, same GPT-2 weights.

A random GPT-2 (sizes from `--size`) is built by Transformers, saved, and read into plmkit's
CausalLM, so both sides run the same weights. Both decode the same left-padded batch of
prompts greedily with a KV cache, for exactly `--new-tokens` tokens (no eos can stop a row);
the outputs are checked to be equal. Tokens/s counts new tokens over the whole batch, prompt
time included; the best of `--repeat` runs is kept.

    .venv/bin/python bench/generate.py --size small --batch 8 --new-tokens 64

Prints a table and exits; results go to BENCHMARKS.md. Runs offline, in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402

from plmkit.checkpoint import load_into, read_checkpoint  # noqa: E402
from plmkit.config import GenerationConfig  # noqa: E402
from plmkit.models.decoder import CausalLM  # noqa: E402
from plmkit.models.generate import CausalDecoding, generate  # noqa: E402

SIZES = {  # name → (n_embd, n_layer, n_head, vocab_size)
    "tiny": (128, 2, 2, 8000),
    "small": (384, 6, 6, 32000),
    "gpt2": (768, 12, 12, 50257),
}


def build(size: str, tmp: Path, device: str) -> tuple[torch.nn.Module, CausalLM]:
    """The same random GPT-2 in Transformers and in plmkit, eval mode, on `device`."""
    n_embd, n_layer, n_head, vocab = SIZES[size]
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=vocab,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_positions=1024,
        bos_token_id=0,
        eos_token_id=0,
    )
    hf = transformers.GPT2LMHeadModel(config).eval()
    hf.save_pretrained(tmp / "model")
    ckpt = read_checkpoint(tmp / "model")
    ours = CausalLM(ckpt.cfg).eval()
    load_into(ours, ckpt)
    return hf.to(device), ours.to(device)


def prompts(batch: int, length: int, vocab: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts of lengths between length/2 and length."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.zeros(batch, length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row in range(batch):
        n = length - (row * length // (2 * batch))
        ids[row, length - n :] = torch.randint(1, vocab, (n,), generator=gen)
        mask[row, length - n :] = 1
    return ids.to(device), mask.to(device)


def timed(fn: Callable[[], torch.Tensor], repeat: int, device: str) -> tuple[torch.Tensor, float]:
    """(output, best seconds) over `repeat` runs after one warm-up."""
    out, best = fn(), float("inf")
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=32, help="longest prompt, in tokens")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        hf, ours = build(args.size, Path(tmp), args.device)
    ids, mask = prompts(args.batch, args.prompt, SIZES[args.size][3], args.device)
    never = SIZES[args.size][3] + 1  # an eos id outside the vocabulary: every row runs to the end
    cfg = GenerationConfig(max_new_tokens=args.new_tokens, eos_token_id=never, pad_token_id=0)

    def run_ours() -> torch.Tensor:
        return generate(CausalDecoding(ours, ids, mask), cfg).tokens

    def run_hf() -> torch.Tensor:
        with torch.inference_mode():
            out = hf.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=never,
                pad_token_id=0,
            )
        return out[:, ids.shape[1] :]

    plm_out, plm_s = timed(run_ours, args.repeat, args.device)
    hf_out, hf_s = timed(run_hf, args.repeat, args.device)
    if not torch.equal(plm_out.cpu(), hf_out.cpu()):
        same = (plm_out.cpu() == hf_out.cpu()).float().mean().item()
        print(f"warning: outputs differ ({same:.1%} of tokens equal)", file=sys.stderr)
    tokens = args.batch * args.new_tokens
    n_embd, n_layer, _, vocab = SIZES[args.size]
    print(
        f"GPT-2 {args.size} ({n_layer} layers, {n_embd} wide, vocab {vocab:,}), batch {args.batch}, "
        f"prompts ≤ {args.prompt} tokens, {args.new_tokens} new tokens, greedy, {args.device}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("| method | seconds | new tokens/s | ratio |\n|---|---:|---:|---:|")
    for name, seconds in (("plmkit generate", plm_s), ("Transformers generate", hf_s)):
        print(f"| {name} | {seconds:.3f} | {tokens / seconds:,.0f} | {hf_s / seconds:.2f}x |")


if __name__ == "__main__":
    main()
