"""`plmkit pretrain`: token shards → a pretrained model → a run directory.

One verb for the three families: `objective.kind` picks BERT's MLM (+ NSP), ELECTRA's
replaced-token detection (a BERT encoder too), GPT's causal LM or T5's span corruption, and with
it the model family and the Hugging Face architecture of `final/` (for ELECTRA the discriminator,
with the generator in `final/generator/`). Flat wiring, read top to bottom: open the shards and their tokenizer, build the
model, build the objective (batches, loss, held-out evaluation), fit, export `final/`. The run
directory holds the resolved config, metrics.jsonl, checkpoints for `resume=true`, and
`summary.json` with the numbers the demo table shows.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tokenizers import Tokenizer

from plmkit.checkpoint import load_into, read_checkpoint, resolve_model_dir, save_model
from plmkit.config import (
    ModelConfig,
    ObjectiveConfig,
    PretrainConfig,
    check_model_config,
    dump_yaml,
    to_dict,
)
from plmkit.models.decoder import CausalLM
from plmkit.models.electra import ElectraPretrainingModel, generator_config
from plmkit.models.encoder import PretrainingModel
from plmkit.models.seq2seq import Seq2SeqLM
from plmkit.objectives import (
    CausalLMBatches,
    ElectraBatches,
    MaskingSpec,
    PretrainBatches,
    SpanCorruptionBatches,
    causal_lm_loss,
    electra_loss,
    evaluate_lm,
    evaluate_pretraining,
    pretrain_loss,
    span_corruption_loss,
)
from plmkit.runtime.console import print0
from plmkit.runtime.devices import pick_device, seed_everything
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_dir, atomic_write_text
from plmkit.runtime.group import barrier, start_processes
from plmkit.runtime.processes import data_seed, is_main_process
from plmkit.text.shards import ShardReader, check_tokenizer
from plmkit.text.tokenizer import continuation_mask, load_tokenizer, special_ids, token_roles
from plmkit.text.words import han_share
from plmkit.train.checks import check_train_config
from plmkit.train.state import check_fresh_output, close_run, open_run
from plmkit.train.trainer import fit

EVAL_BATCHES = 8


# objective.kind → (model family, the Hugging Face architecture its final/ directory is written as)
OBJECTIVES = {
    "mlm": ("bert", "BertForPreTraining"),
    "electra": ("bert", "ElectraForPreTraining"),  # the discriminator; final/generator/ the generator
    "clm": ("gpt", "GPT2LMHeadModel"),
    "span": ("t5", "T5ForConditionalGeneration"),
}
MODELS = {"bert": PretrainingModel, "gpt": CausalLM, "t5": Seq2SeqLM}


class Objective(NamedTuple):
    """What one objective hands the trainer: batches, a loss, and held-out scoring."""

    batches: Any  # a BatchSource
    loss: Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]
    evaluate: Callable[[torch.nn.Module], dict[str, float]]
    headline: tuple[str, str]  # (loss key, accuracy key) of `evaluate`'s result, for the log line


def run(cfg: PretrainConfig) -> dict[str, Any]:
    """Pretrain per `cfg`; returns the summary also written to OUTPUT/summary.json.

    Under torchrun every rank trains on batches of its own (runtime.processes.data_seed) and rank 0 alone
    writes; the checks run on every rank before anything is written.
    """
    run_dir = Path(cfg.output)
    _check_kind(cfg)
    check_train_config(cfg.train)
    start_processes(cfg.train.device)
    check_fresh_output(run_dir, cfg.resume, verb="pretrain", inputs=[cfg.shards, cfg.init],
                       overwrite=cfg.overwrite)
    barrier()  # no rank writes before every rank has checked the output directory
    train_split = ShardReader(cfg.shards, "train")
    if train_split.num_sentences == 0:
        raise UserError(f"{cfg.shards}: the train split is empty (lower val_fraction in prepare?)")
    has_val = train_split.header["splits"].get("val", {}).get("sentences", 0) > 0
    val_split = ShardReader(cfg.shards, "val") if has_val else train_split
    if not has_val:
        print0(f"pretrain: {cfg.shards} has no val split; held-out metrics use train batches")
    tokenizer_dir = Path(cfg.shards) / "tokenizer"
    check_tokenizer(cfg.shards, tokenizer_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    roles = token_roles(tokenizer)
    family, architecture = OBJECTIVES[cfg.objective.kind]

    if cfg.init is not None and cfg.model != ModelConfig():
        raise UserError(f"pretrain: model.* settings shape a random-init model; with init={cfg.init} "
                        "the model's own config.json decides (drop the model.* overrides)")
    init = read_checkpoint(resolve_model_dir(cfg.init)) if cfg.init is not None else None
    model_cfg = init.cfg if init else dataclasses.replace(
        cfg.model, family=family, vocab_size=tokenizer.get_vocab_size(),
        pad_token_id=roles.pad if roles.pad is not None else roles.eos,
        bos_token_id=roles.bos, eos_token_id=roles.eos)
    if model_cfg.family != family:
        raise UserError(f"init {cfg.init}: a {model_cfg.family} model cannot train objective "
                        f"'{cfg.objective.kind}' (that needs family {family})")
    if tokenizer.get_vocab_size() > model_cfg.vocab_size:
        raise UserError(f"init {cfg.init}: its vocabulary ({model_cfg.vocab_size}) is smaller than "
                        f"the shards' tokenizer's ({tokenizer.get_vocab_size()})")
    check_model_config(model_cfg)
    _check_objective(cfg, model_cfg)
    seed_everything(cfg.train.seed)
    model = _electra_model(cfg, model_cfg) if cfg.objective.kind == "electra" \
        else MODELS[family](model_cfg)
    if init is not None:
        _load_init(model, init, cfg.init)
    elif family == "t5" and not cfg.train.lr_by_rms:
        print0("pretrain: a T5 from random init with plain AdamW tends to stall at the unigram "
               "plateau (watch val_span_acc); train.lr_by_rms=true with train.lr ~3e-2 and "
               "model.dropout=0 learned span filling (recipes/t5-tiny-cpu.yaml)")
    device = pick_device(cfg.train.device)
    objective = _objective(cfg, model_cfg, tokenizer, train_split, val_split, device)

    open_run(run_dir)  # the run's lock and marker, before its first write
    run_dir.mkdir(parents=True, exist_ok=True)
    start_file = run_dir / "start_metrics.json"
    main = is_main_process()
    if main and not (cfg.resume and start_file.is_file()):  # a resume keeps the first run's
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        atomic_write_text(start_file, json.dumps(objective.evaluate(model.to(device))))
    start = json.loads(start_file.read_text(encoding="utf-8")) if main and start_file.is_file() else {}
    print0(f"pretrain: {_count(model) / 1e6:.2f}M parameters ({family}), "
           f"{train_split.num_tokens:,} tokens")
    result = fit(model, objective.batches, objective.loss, cfg.train, run_dir,
                 eval_fn=objective.evaluate, resume=cfg.resume, run_config=_run_config(cfg))
    if not main:  # rank 0 evaluates and writes what the run made
        return {"objective": cfg.objective.kind, "steps": result.steps,
                "train_time_s": result.train_time_s}
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    end = objective.evaluate(model)
    _save_final(model, model_cfg, cfg, run_dir / "final", architecture, tokenizer_dir)
    summary = {"objective": cfg.objective.kind, "steps": result.steps,
               "train_time_s": result.train_time_s, "start": start, "end": end,
               "parameters": _count(model), "throughput": result.throughput}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    loss_key, acc_key = objective.headline
    print0(f"pretrain: {result.steps} steps in {result.train_time_s:.0f}s, "
           f"{loss_key} {end[loss_key]:.3f}, {acc_key} {end[acc_key]:.3f} → {run_dir}/final")
    close_run(run_dir)
    return summary


def _masking(cfg: PretrainConfig, model_cfg: ModelConfig, tokenizer: Tokenizer,
             train_split: ShardReader) -> MaskingSpec:
    """Token or whole-word masking; whole words come from the shards' word starts (Chinese,
    prepare word_boundaries=jieba) or else from the "##" pieces (English)."""
    obj = cfg.objective
    boundaries = obj.whole_word and train_split.words is not None
    if obj.whole_word and not boundaries and han_share(tokenizer, train_split.tokens[:20_000]) > 0.2:
        raise UserError(f"{cfg.shards}: objective.whole_word=true on Chinese text needs word "
                        "boundaries: prepare the shards with word_boundaries=jieba")
    continuation = continuation_mask(tokenizer) if obj.whole_word and not boundaries else None
    return MaskingSpec(special_ids(tokenizer), model_cfg.vocab_size, obj.mask_prob, continuation,
                       word_boundaries=boundaries)


def _objective(cfg: PretrainConfig, model_cfg: ModelConfig, tokenizer: Tokenizer,
               train_split: ShardReader, val_split: ShardReader, device: torch.device) -> Objective:
    """Training batches, loss and held-out evaluation for cfg.objective.kind."""
    obj, batch_size, seed = cfg.objective, cfg.train.batch_size, cfg.train.seed
    roles = token_roles(tokenizer)
    if obj.kind in ("mlm", "electra"):  # ELECTRA masks as MLM does, through the same routine
        masking = _masking(cfg, model_cfg, tokenizer, train_split)
        electra = obj.kind == "electra"
        mlm = functools.partial(PretrainBatches, masking=masking, batch_size=batch_size,
                                seq_len=obj.seq_len, nsp=obj.nsp and not electra)
        make = (lambda *a, **k: ElectraBatches(mlm(*a, **k))) if electra else mlm
        batches = make(train_split, short_seq_len=obj.short_seq_len,
                       short_seq_fraction=obj.short_seq_fraction, seed=data_seed(seed))
        held_out = [make(val_split, seed=seed + 1).next_batch(1.0) for _ in range(EVAL_BATCHES)]
        loss = functools.partial(electra_loss, disc_weight=obj.disc_weight) if electra \
            else pretrain_loss
        evaluate = functools.partial(evaluate_pretraining, batches=held_out, device=device,
                                     loss_fn=loss)
        headline = ("val_disc_loss", "val_disc_acc") if electra else ("val_mlm_loss", "val_mlm_acc")
        return Objective(batches, loss, evaluate, headline)
    if obj.kind == "clm":
        make = functools.partial(CausalLMBatches, eos_id=model_cfg.eos_token_id,
                                 batch_size=batch_size, seq_len=obj.seq_len)
        loss = causal_lm_loss
    else:
        make = functools.partial(SpanCorruptionBatches, sentinel_ids=roles.sentinels,
                                 eos_id=model_cfg.eos_token_id, pad_id=model_cfg.pad_token_id,
                                 batch_size=batch_size, seq_len=obj.seq_len,
                                 noise_density=obj.noise_density, mean_span=obj.mean_span)
        loss = span_corruption_loss
    batches = make(train_split, seed=data_seed(seed))
    held_out = [make(val_split, seed=seed + 1).next_batch(1.0) for _ in range(EVAL_BATCHES)]
    evaluate = functools.partial(evaluate_lm, batches=held_out, loss_fn=loss, device=device)
    return Objective(batches, loss, evaluate,
                     ("val_lm_loss", "val_span_acc" if obj.kind == "span" else "val_lm_acc"))


def _check_kind(cfg: PretrainConfig) -> None:
    kind = cfg.objective.kind
    if kind not in OBJECTIVES:
        raise UserError(f"config objective.kind '{kind}': use one of {', '.join(OBJECTIVES)}")
    family = OBJECTIVES[kind][0]
    if cfg.model.family not in ("bert", family):  # "bert" is the default: it follows the objective
        raise UserError(f"config model.family '{cfg.model.family}' cannot train objective.kind "
                        f"'{kind}' (that needs family {family})")


def _check_objective(cfg: PretrainConfig, model_cfg: ModelConfig) -> None:
    obj, max_position = cfg.objective, model_cfg.max_position
    if obj.seq_len < 8:
        raise UserError(f"objective.seq_len must be at least 8, got {obj.seq_len}")
    if obj.seq_len > max_position and model_cfg.family != "t5":  # T5's positions are relative
        raise UserError(f"objective.seq_len {obj.seq_len} exceeds model.max_position {max_position}")
    if obj.kind not in ("mlm", "electra") and obj.short_seq_len:
        raise UserError("objective.short_seq_len applies to kinds mlm and electra only; set it to 0")
    if model_cfg.embedding_size not in (0, model_cfg.hidden_size):
        raise UserError(f"model.embedding_size {model_cfg.embedding_size}: pretraining builds "
                        "embeddings as wide as the layers (hidden_size); leave it 0")
    if obj.kind == "electra":
        _check_electra(obj, model_cfg)
    if obj.kind not in ("mlm", "electra") and model_cfg.eos_token_id is None:
        raise UserError(f"objective.kind {obj.kind} needs an eos token: train the tokenizer with "
                        f"kind={'bpe' if obj.kind == 'clm' else 'unigram'}")
    if obj.kind == "span" and not 0.0 < obj.noise_density < 1.0:
        raise UserError(f"objective.noise_density must be in (0, 1), got {obj.noise_density}")
    if obj.kind == "span" and not obj.mean_span >= 1.0:
        raise UserError(f"objective.mean_span must be at least 1, got {obj.mean_span}")
    if obj.short_seq_len and not 8 <= obj.short_seq_len <= obj.seq_len:
        raise UserError(f"objective.short_seq_len must be 0 or in [8, seq_len], got {obj.short_seq_len}")
    if not 0.0 <= obj.short_seq_fraction <= 1.0:
        raise UserError(f"objective.short_seq_fraction must be in [0, 1], got {obj.short_seq_fraction}")
    if not 0.0 < obj.mask_prob < 1.0:
        raise UserError(f"objective.mask_prob must be in (0, 1), got {obj.mask_prob}")


def _check_electra(obj: ObjectiveConfig, model_cfg: ModelConfig) -> None:
    """The generator must be a real, no wider, no deeper encoder and λ positive."""
    for name in ("generator_size", "generator_layers"):
        if not 0.0 < getattr(obj, name) <= 1.0:
            raise UserError(f"objective.{name} must be in (0, 1] (the generator is at most the "
                            f"model's size; 1/4 to 1/2 of its width works best), got "
                            f"{getattr(obj, name)}")
    if not obj.disc_weight > 0:
        raise UserError(f"objective.disc_weight must be > 0 (λ, 50 in the paper), got {obj.disc_weight}")
    gen = generator_config(model_cfg, obj.generator_size, obj.generator_layers)
    if gen.hidden_size % gen.num_heads:
        raise UserError(f"objective.generator_size {obj.generator_size}: a generator "
                        f"{gen.hidden_size} wide does not split into {gen.num_heads} heads as "
                        f"wide as the model's ({model_cfg.hidden_size // model_cfg.num_heads})")


def _electra_model(cfg: PretrainConfig, model_cfg: ModelConfig) -> ElectraPretrainingModel:
    """Discriminator of model_cfg's shape and the generator objective.generator_* sizes."""
    obj = cfg.objective
    return ElectraPretrainingModel(
        model_cfg, generator_config(model_cfg, obj.generator_size, obj.generator_layers))


def _load_init(model: torch.nn.Module, init: Any, init_path: str) -> None:
    """The init checkpoint's weights; an ELECTRA model takes them into its discriminator (a
    BERT's body will do) and its generator from the init's generator/, when there is one."""
    if not isinstance(model, ElectraPretrainingModel):
        load_into(model, init)
        return
    load_into(model.discriminator, init)
    generator_dir = resolve_model_dir(init_path) / "generator"
    if (generator_dir / "config.json").is_file():
        load_into(model.generator, read_checkpoint(generator_dir), require_heads=True,
                  architecture="ElectraForMaskedLM")  # its file holds no pooler
    else:
        print0(f"pretrain: {init_path} has no generator/; the generator starts from random init")


def _save_final(model: torch.nn.Module, model_cfg: ModelConfig, cfg: PretrainConfig, final: Path,
                architecture: str, tokenizer_dir: Path) -> None:
    """final/ as `architecture`; for ELECTRA the discriminator there and the generator in
    final/generator/ (ElectraForMaskedLM), both written before either appears."""
    if not isinstance(model, ElectraPretrainingModel):
        save_model(model, model_cfg, final, architecture, tokenizer_dir=tokenizer_dir)
        return
    obj = cfg.objective
    generator_cfg = generator_config(model_cfg, obj.generator_size, obj.generator_layers)
    with atomic_dir(final, verb="model") as tmp:  # save_model refills tmp, then adds generator/
        save_model(model.discriminator, model_cfg, tmp, architecture, tokenizer_dir=tokenizer_dir)
        save_model(model.generator, generator_cfg, tmp / "generator", "ElectraForMaskedLM",
                   tokenizer_dir=tokenizer_dir)


def _run_config(cfg: PretrainConfig) -> dict[str, Any]:
    """What a resumed run must share with the original; the run may have moved, so not `output`."""
    data = to_dict(cfg)
    data.pop("output")
    return data


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
