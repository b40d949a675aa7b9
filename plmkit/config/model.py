"""Model shapes, generation and the training loop's settings: what every stage that builds,
decodes or trains a model shares (re-exported by plmkit.config)."""

from __future__ import annotations

import dataclasses

from plmkit.runtime.errors import UserError

# ----------------------------------------------------------------------------- model and training


@dataclasses.dataclass
class ModelConfig:
    """Shape of a model of any family. Names are ours; plmkit.checkpoint maps them to config.json."""

    family: str = "bert"  # bert (encoder) | gpt (decoder) | t5 (encoder-decoder)
    vocab_size: int = 8000  # set from the tokenizer when a stage builds a model
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 512
    max_position: int = 512
    type_vocab_size: int = 2
    dropout: float = 0.1  # on embeddings, attention output and feed-forward output
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    activation: str = "gelu"  # gelu (erf) | gelu_tanh | relu
    initializer_range: float = 0.02
    # decoder (gpt) and encoder-decoder (t5) families
    tie_word_embeddings: bool = True  # the output projection is the input embedding matrix
    bos_token_id: int | None = None  # set from the tokenizer when a stage builds a model
    eos_token_id: int | None = None
    # encoder-decoder (t5) only
    num_decoder_layers: int = 0  # 0 = num_layers
    head_dim: int = 0  # width of one attention head (0 = hidden_size / num_heads)
    relative_buckets: int = 32  # relative-position buckets of T5 attention
    relative_max_distance: int = 128  # distances beyond this share the last bucket
    gated: bool = False  # gated feed-forward (T5 v1.1, "gated-gelu")
    unpad: bool = True  # BERT: run the layers on real tokens only, no compute on padding (speed only)
    vocab_multiple: int = 1  # GPT: token-matrix rows rounded up to this (64 on GPUs); never exported
    embedding_size: int = 0  # BERT: width of the token embeddings (0 = hidden_size); else projected to hidden_size (ELECTRA generators)

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the GPT decoder's token matrix: vocab_size rounded up to vocab_multiple."""
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple


FAMILIES = ("bert", "gpt", "t5")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu")


def check_model_config(cfg: ModelConfig, where: str = "model") -> None:
    """Reject model shapes that cannot be built, naming the field (before any heavy work)."""
    if cfg.family not in FAMILIES:
        raise UserError(f"config {where}.family '{cfg.family}': use {', '.join(FAMILIES)}")
    positive = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                "max_position", "type_vocab_size", "vocab_multiple")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise UserError(f"config {where}.{name}: must be ≥ 1, got {getattr(cfg, name)}")
    if cfg.embedding_size < 0:
        raise UserError(f"config {where}.embedding_size: must be ≥ 0 (0 = hidden_size), got {cfg.embedding_size}")
    if cfg.hidden_size % cfg.num_heads and not (cfg.family == "t5" and cfg.head_dim):
        raise UserError(f"config {where}.hidden_size {cfg.hidden_size} is not divisible by "
                        f"{where}.num_heads {cfg.num_heads}")
    if cfg.activation not in ACTIVATIONS:
        raise UserError(f"config {where}.activation '{cfg.activation}': use {', '.join(ACTIVATIONS)}")
    for name in ("dropout", "attention_dropout"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise UserError(f"config {where}.{name}: must be in [0, 1), got {getattr(cfg, name)}")


@dataclasses.dataclass
class GenerationConfig:
    """How models/generate.py extends prompts: greedy, sampling or beam search."""

    max_new_tokens: int = 50  # tokens added after the prompt (fewer when every row has stopped)
    do_sample: bool = False  # sample from the filtered distribution (false: the likeliest token)
    temperature: float = 1.0  # sampling: logits are divided by it first (> 0; < 1 sharpens)
    top_k: int = 0  # sampling: only the k likeliest tokens (0 = no limit); ties with the k-th stay
    top_p: float = 1.0  # sampling: the fewest likeliest tokens whose probability reaches top_p, (0, 1]
    num_beams: int = 1  # > 1: beam search (deterministic; not combined with do_sample)
    length_penalty: float = 1.0  # beam score = sum of log-probs / (new tokens ** length_penalty)
    eos_token_id: int | None = None  # ends a row; None = the model's eos_token_id
    stop_ids: list[int] = dataclasses.field(default_factory=list)  # more token ids that end a row
    pad_token_id: int | None = None  # fills a row after it ended; None = the eos id (or 0)
    seed: int = 0  # of the torch.Generator that sampling draws from: same seed, same tokens
    show_special_tokens: bool = False  # keep <extra_id_N>, </s> … in the text (probe span filling)


def check_generation_config(cfg: GenerationConfig, where: str = "generation") -> None:
    """Reject settings generate() cannot honour, naming the field."""
    if cfg.max_new_tokens < 1:
        raise UserError(f"config {where}.max_new_tokens: must be ≥ 1, got {cfg.max_new_tokens}")
    if not cfg.temperature > 0:
        raise UserError(f"config {where}.temperature: must be > 0, got {cfg.temperature}")
    if cfg.top_k < 0:
        raise UserError(f"config {where}.top_k: must be ≥ 0 (0 = off), got {cfg.top_k}")
    if not 0 < cfg.top_p <= 1:
        raise UserError(f"config {where}.top_p: must be in (0, 1], got {cfg.top_p}")
    if cfg.num_beams < 1:
        raise UserError(f"config {where}.num_beams: must be ≥ 1, got {cfg.num_beams}")
    if cfg.num_beams > 1 and cfg.do_sample:
        raise UserError(f"config {where}.num_beams: beam search does not sample; set do_sample=false")
    ids = [("eos_token_id", cfg.eos_token_id), ("pad_token_id", cfg.pad_token_id)]
    ids += [(f"stop_ids[{i}]", v) for i, v in enumerate(cfg.stop_ids)]
    for name, value in ids:
        if value is not None and value < 0:
            raise UserError(f"config {where}.{name}: must be a token id ≥ 0, got {value}")


@dataclasses.dataclass
class TrainConfig:
    """The one training loop's settings, shared by pretraining and fine-tuning."""

    lr: float = 5e-4
    weight_decay: float = 0.01  # not applied to biases and LayerNorm weights
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-6
    batch_size: int = 32  # per device, per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    max_steps: int = 1000  # optimizer steps
    max_time_s: float = 0.0  # time budget (0 = none): turned once into a step plan, kept on resume
    warmup_fraction: float = 0.06  # of the run's planned steps
    schedule: str = "linear"  # linear | cosine | constant (after warm-up)
    clip_norm: float = 1.0  # 0 = no clipping
    eval_every: int = 0  # optimizer steps between evaluations (0 = only at the end)
    save_every: int = 0  # optimizer steps between checkpoints (0 = only at the end)
    save_every_s: float = 1800.0  # also checkpoint after this much training time (0 = off)
    log_every: int = 10
    seed: int = 0
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    compile: bool = False  # torch.compile the model and its loss (speed only)
    # false: compile for the first batch's sizes, again once one changes (best for fixed shapes)
    compile_dynamic: bool = False  # with compile: sizes symbolic from the start (MLM: one compile)
    fused_adamw: bool = True  # the fused AdamW kernel (speed only; same update as the loop)
    lr_by_rms: bool = False  # each matrix's lr × its starting RMS; T5 from scratch: true, lr ~3e-2
    layer_decay: float = 1.0  # fine-tuning: block i's lr × layer_decay^(blocks above it) (1 = off)
    head_lr_scale: float = 1.0  # fine-tuning: the task head's lr × this
    head_first: float = 0.0  # fine-tuning: share of the run that trains the head alone (LP-FT)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads on CPU (0 = torch's default)
    peak_flops: float | None = None  # the device's peak FLOP/s, for MFU in the log (None: CUDA table; CPU: no MFU)
