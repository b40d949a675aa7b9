"""Pretraining throughput: plmkit vs Transformers, same model shape, same random data, one run.

For each workload the script times full training steps (forward, backward, AdamW step) of
plmkit's model and of the Transformers equivalent built from the same config (eager, and with
`--compile` also `torch.compile`d), and prints tokens/s, model-FLOPs utilisation and peak memory,
with ratios against Transformers eager.

- BERT MLM: plmkit `PretrainingModel` with masked positions gathered before the vocabulary
  projection (15% of tokens); Transformers `BertForMaskedLM` with labels -100 elsewhere.
  `--min-fill F` draws each row's length uniformly from [F·S, S] and right-pads it, as real
  sentence-pair batches are (1.0, the default, = every row full); tokens/s counts real tokens.
- GPT CLM: plmkit `CausalLM` + `causal_lm_loss`; Transformers `GPT2LMHeadModel(labels=...)`.

`--ablate` adds one plmkit row per technique with that technique switched off (unpadding, the
MLM head on masked positions only, the GPT vocabulary padded to a multiple of 64, fused AdamW,
bf16 on CUDA; torch.compile is the compiled rows against the eager ones): what each one buys,
measured in the same run. The ablation rows run eagerly.

MFU = tokens/s × (6·N + 12·L·H·S) / peak, N the non-embedding parameters, L layers, H width,
S sequence length; `--peak-tflops` sets the peak (989 for an H100's dense bf16).

    python bench/throughput.py --device cpu --ablate            # tiny shapes, minutes on 2 cores
    python bench/throughput.py --device cuda --compile --ablate # BERT-base 256×128, 64×512; GPT-2 32×1024
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from plmkit.config import ModelConfig
from plmkit.models.decoder import CausalLM
from plmkit.models.encoder import PretrainingModel
from plmkit.runtime.compiling import compile_step

# name: (family, hidden, layers, heads, vocab, batch, seq); --workloads picks by name
WORKLOADS = {
    "cpu": {
        "bert": ("bert", 128, 2, 2, 8000, 32, 128),
        "gpt": ("gpt", 128, 2, 2, 8000, 16, 128),
    },
    "cuda": {
        "bert128": ("bert", 768, 12, 12, 30522, 256, 128),
        "bert512": ("bert", 768, 12, 12, 30522, 64, 512),
        "gpt": ("gpt", 768, 12, 12, 50257, 32, 1024),
    },
}


def model_config(
    family: str, hidden: int, layers: int, heads: int, vocab: int, seq: int
) -> ModelConfig:
    gpt = family == "gpt"
    return ModelConfig(
        family=family,
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=4 * hidden,
        max_position=max(seq, 512),
        dropout=0.0,
        attention_dropout=0.0,
        layer_norm_eps=1e-5 if gpt else 1e-12,
        activation="gelu_tanh" if gpt else "gelu",
        eos_token_id=0 if gpt else None,
        vocab_multiple=64 if gpt else 1,  # 50257 → 50304 token rows: aligned matmul shapes
    )


def hf_model(family: str, cfg: ModelConfig) -> torch.nn.Module:
    import transformers

    if family == "gpt":
        return transformers.GPT2LMHeadModel(
            transformers.GPT2Config(
                vocab_size=cfg.vocab_size,
                n_embd=cfg.hidden_size,
                n_layer=cfg.num_layers,
                n_head=cfg.num_heads,
                n_positions=cfg.max_position,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                activation_function="gelu_pytorch_tanh",
                bos_token_id=0,
                eos_token_id=0,
            )
        )
    return transformers.BertForMaskedLM(
        transformers.BertConfig(
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_position,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    )


def batch(
    family: str, vocab: int, size: int, seq: int, device: torch.device, min_fill: float = 1.0
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (size, seq), generator=gen)
    lengths = torch.randint(max(1, round(min_fill * seq)), seq + 1, (size,), generator=gen)
    mask = torch.arange(seq)[None] < lengths[:, None]  # (B, T) right-padded rows
    out = {"input_ids": ids.masked_fill(~mask, 0), "attention_mask": mask.long()}
    if family == "bert":
        chosen = (torch.rand(size, seq, generator=gen) < 0.15) & mask
        out["labels"] = torch.where(chosen, ids, torch.full_like(ids, -100))
        out["positions"] = chosen.reshape(-1).nonzero().squeeze(1)
        out["masked"] = out["input_ids"].masked_fill(chosen, 4)
    return {k: v.to(device) for k, v in out.items()}


def ours_step(
    family: str, model: torch.nn.Module, data: dict[str, torch.Tensor], gather: bool = True
) -> torch.Tensor:
    if (
        family == "gpt"
    ):  # labels shifted, not logits (no copy of the (B, T, V) logits), as plmkit trains
        logits = model(data["input_ids"])  # (B, T, V)
        labels = F.pad(data["input_ids"][:, 1:], (0, 1), value=-100)  # (B, T)
        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
    if not gather:  # the vocabulary projection on every token, loss on the masked ones
        out = model(data["masked"], data["attention_mask"])
        return F.cross_entropy(out.mlm_logits.flatten(0, 1).float(), data["labels"].flatten())
    out = model(data["masked"], data["attention_mask"], None, data["positions"])  # gathered (N, V)
    return F.cross_entropy(out.mlm_logits.float(), data["input_ids"].reshape(-1)[data["positions"]])


def hf_step(family: str, model: torch.nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
    if family == "gpt":
        return model(input_ids=data["input_ids"], labels=data["input_ids"]).loss
    return model(
        input_ids=data["masked"], attention_mask=data["attention_mask"], labels=data["labels"]
    ).loss


def time_training(
    step: Callable[[], torch.Tensor],
    model: torch.nn.Module,
    device: torch.device,
    steps: int,
    warmup: int,
    amp: bool,
    fused: bool = True,
) -> tuple[float, float]:
    """(seconds per step, peak memory in GiB) of forward + backward + AdamW."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
        with autocast:
            loss = step()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    )
    return seconds, peak


def flops_per_token(model: torch.nn.Module, cfg: ModelConfig, seq: int) -> float:
    embedding = sum(
        p.numel()
        for n, p in model.named_parameters()
        if "word" in n or "position" in n or "token_type" in n
    )
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    return 6 * non_embedding + 12 * cfg.num_layers * cfg.hidden_size * seq


def runs_for(
    family: str,
    cfg: ModelConfig,
    data: dict[str, torch.Tensor],
    device: torch.device,
    args: argparse.Namespace,
) -> list[tuple[str, torch.nn.Module, Callable, dict]]:
    """(name, model, step, options) of every implementation timed for one workload."""
    amp = device.type == "cuda"
    build = CausalLM if family == "gpt" else PretrainingModel
    torch.manual_seed(0)
    ours = build(cfg).to(device).train()
    theirs = hf_model(family, cfg).to(device).train()
    step = functools.partial(ours_step, family, ours, data)
    fast = {"amp": amp, "fused": True}
    runs = [
        ("plmkit", ours, step, fast),
        ("Transformers eager", theirs, functools.partial(hf_step, family, theirs, data), fast),
    ]
    if args.compile:
        # model and loss as one graph, as the trainer compiles them (and as Transformers' model
        # computes its loss inside forward)
        def forward_loss(data: dict[str, torch.Tensor]) -> torch.Tensor:
            return ours_step(family, ours, data)

        whole_step = compile_step(forward_loss)
        runs.append(("plmkit compiled", ours, functools.partial(whole_step, data), fast))
        runs.append(
            (
                "Transformers compiled",
                theirs,
                functools.partial(hf_step, family, torch.compile(theirs), data),
                fast,
            )
        )
    if args.ablate:
        if family == "bert":
            padded = build(dataclasses.replace(cfg, unpad=False)).to(device).train()
            padded.load_state_dict(ours.state_dict())
            runs.append(
                (
                    "plmkit − unpadding",
                    padded,
                    functools.partial(ours_step, family, padded, data),
                    fast,
                )
            )
            runs.append(
                (
                    "plmkit − MLM head on masked only",
                    ours,
                    functools.partial(ours_step, family, ours, data, gather=False),
                    fast,
                )
            )
        if family == "gpt" and cfg.padded_vocab_size != cfg.vocab_size:
            exact = build(dataclasses.replace(cfg, vocab_multiple=1)).to(device).train()
            state = ours.state_dict()
            state["word.weight"] = state["word.weight"][: cfg.vocab_size]
            exact.load_state_dict(state)
            runs.append(
                (
                    "plmkit − vocab padding",
                    exact,
                    functools.partial(ours_step, family, exact, data),
                    fast,
                )
            )
        runs.append(("plmkit − fused AdamW", ours, step, {**fast, "fused": False}))
        if amp:
            runs.append(("plmkit − bf16 (fp32)", ours, step, {**fast, "amp": False}))
    return runs


def check_unpadded(cfg: ModelConfig, data: dict[str, torch.Tensor], device: torch.device) -> str:
    """The unpadded path (flash varlen attention on CUDA) against the padded one, both in bf16,
    each measured against the padded path in fp32: relative loss and gradient differences."""
    torch.manual_seed(0)
    models = {
        "unpadded": PretrainingModel(cfg),
        "padded": PretrainingModel(dataclasses.replace(cfg, unpad=False)),
    }
    models["padded"].load_state_dict(models["unpadded"].state_dict())
    results = {}
    for name, amp in (("padded fp32", False), ("padded bf16", True), ("unpadded bf16", True)):
        model = models[name.split()[0]].to(device).train()
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = ours_step("bert", model, data)
        loss.backward()
        grads = torch.cat(
            [p.grad.float().flatten() for p in model.parameters() if p.grad is not None]
        )
        results[name] = (float(loss.detach()), grads)
    ref_loss, ref_grads = results["padded fp32"]
    parts = []
    for name in ("padded bf16", "unpadded bf16"):
        loss, grads = results[name]
        grad_err = float((grads - ref_grads).norm() / ref_grads.norm())
        parts.append(
            f"{name}: loss rel diff {abs(loss - ref_loss) / abs(ref_loss):.1e}, "
            f"gradient ‖Δ‖/‖g‖ {grad_err:.1e}"
        )
    return "vs padded fp32 — " + "; ".join(parts)


def _number(value: float, form: str) -> str:
    return "–" if math.isnan(value) else form.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--workloads",
        default="",
        help="comma-separated names (default: all): "
        + "; ".join(f"{d}: {', '.join(w)}" for d, w in WORKLOADS.items()),
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument(
        "--compile-workloads", default="", help="compile only these workloads (default: all)"
    )
    parser.add_argument(
        "--ablate", action="store_true", help="also time plmkit with each technique off"
    )
    parser.add_argument(
        "--min-fill",
        type=float,
        default=1.0,
        help="BERT rows get lengths uniform in [F·S, S] (1.0 = full rows)",
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=0.0, help="for MFU (989 for H100 bf16)"
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", default="", help="also append each row to this JSON-lines file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    available = WORKLOADS[device.type]
    names = [n for n in args.workloads.split(",") if n] or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"--workloads {','.join(unknown)}: {device.type} has {', '.join(available)}")
    compiled = [n for n in args.compile_workloads.split(",") if n] or names
    print(
        f"torch {torch.__version__}, device {device}"
        f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
        f"bf16 autocast {device.type == 'cuda'}, {args.steps} timed steps after {args.warmup} "
        f"warm-up, BERT min fill {args.min_fill}\n",
        flush=True,
    )
    table = [
        "| workload | implementation | tokens/s | MFU | peak GiB | × Transformers eager "
        "| × Transformers compiled |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        family, hidden, layers, heads, vocab, size, seq = available[name]
        cfg = model_config(family, hidden, layers, heads, vocab, seq)
        data = batch(family, vocab, size, seq, device, args.min_fill if family == "bert" else 1.0)
        if family == "bert" and device.type == "cuda":
            print(f"{name} unpadded-path check: {check_unpadded(cfg, data, device)}", flush=True)
        tokens = int(data["attention_mask"].sum())  # real tokens per step
        options = argparse.Namespace(**{**vars(args), "compile": args.compile and name in compiled})
        runs = runs_for(family, cfg, data, device, options)
        flops = flops_per_token(runs[0][1], cfg, seq)
        results = {}
        for run_name, model, step, run_options in runs:
            try:
                seconds, peak = time_training(
                    step, model, device, args.steps, args.warmup, **run_options
                )
            except Exception as err:  # one failing row (a compiler error, say) keeps the rest
                print(f"  {name} {run_name}: FAILED {type(err).__name__}: {err}", flush=True)
                results[run_name] = (float("nan"), float("nan"))
                continue
            results[run_name] = (tokens / seconds, peak)
            print(f"  {name} {run_name}: {tokens / seconds:,.0f} tokens/s", flush=True)
        eager = results["Transformers eager"][0]
        hf_compiled = results.get("Transformers compiled", (float("nan"),))[0]
        label = f"{'BERT MLM' if family == 'bert' else 'GPT CLM'} {hidden}×{layers}, {size}×{seq}"
        for run_name, (tokens_per_s, peak) in results.items():
            mfu = tokens_per_s * flops / (args.peak_tflops * 1e12) if args.peak_tflops else None
            cells = [
                _number(tokens_per_s, "{:,.0f}"),
                _number(100 * mfu, "{:.1f}%") if mfu is not None else "–",
                _number(peak, "{:.1f}"),
                _number(tokens_per_s / eager, "{:.2f}×"),
                _number(tokens_per_s / hf_compiled, "{:.2f}×"),
            ]
            table.append(f"| {label} | {run_name} | {' | '.join(cells)} |")
            if args.json:
                with open(args.json, "a", encoding="utf-8") as f:
                    row = {
                        "workload": name,
                        "implementation": run_name,
                        "tokens_per_s": tokens_per_s,
                        "mfu": mfu,
                        "peak_gib": peak,
                        "torch": torch.__version__,
                    }
                    f.write(json.dumps(row) + "\n")
        del runs, results
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print("\n".join(table))


if __name__ == "__main__":
    main()
