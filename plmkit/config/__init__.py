"""Typed configuration: one dataclass per stage, filled from a YAML recipe and `key=value` overrides.

Every default of plmkit lives here, with a comment saying what the field means, so this file
doubles as the reference for recipes; loading.py fills the dataclasses. Loading is strict: an unknown key or a value of the
wrong type is a `UserError` naming the dotted field, raised before any heavy work starts.
The cost of strictness is that a recipe written for a newer plmkit fails on an older one;
we take that over silently ignoring a typo like `train.learning_rate`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from plmkit.config.loading import (  # noqa: F401  (the public names of plmkit.config)
    Repeated,
    Typed,
    dump_yaml,
    from_dict,
    load_config,
    merge,
    parse_overrides,
    read_yaml,
    to_dict,
)
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


# ----------------------------------------------------------------------------- text stages


@dataclasses.dataclass
class CorpusConfig:
    """How raw text files are read into documents and sentences."""

    format: str = "auto"  # auto | text | jsonl | wiki (WikiExtractor <doc> files)
    text_field: str = "text"  # JSONL field holding a document
    doc_split: str = "blank_line"  # blank_line | line (one document per line) | file
    normalize: str = "NFKC"  # NFC | NFKC | none
    min_chars: int = 1  # drop documents shorter than this


@dataclasses.dataclass
class TokenizerStageConfig:
    """`plmkit tokenizer`: train a tokenizer on a corpus."""

    inputs: list[str] = dataclasses.field(default_factory=list)  # files, folders or globs
    output: str = "tokenizer"
    overwrite: bool = False  # replace an earlier `plmkit tokenizer` output (never anything else)
    kind: str = "wordpiece"  # wordpiece (BERT) | bpe (GPT-2 byte-level BPE) | unigram (T5)
    vocab_size: int = 8000  # unigram: includes the 100 sentinels <extra_id_N>
    lowercase: bool | None = None  # None: true for wordpiece; bpe and unigram keep case
    min_frequency: int = 2
    limit_alphabet: int = 0  # 0 = vocab_size: on CJK a small alphabet means many [UNK]
    model_max_length: int = 512
    max_documents: int = 0  # train on the first N documents only (0 = all): faster on big corpora
    corpus: CorpusConfig = dataclasses.field(default_factory=CorpusConfig)


@dataclasses.dataclass
class PrepareConfig:
    """`plmkit prepare`: tokenize a corpus into packed, memory-mapped shards."""

    inputs: list[str] = dataclasses.field(default_factory=list)
    tokenizer: str = "tokenizer"
    output: str = "shards"
    overwrite: bool = False  # replace an earlier `plmkit prepare` output (never anything else)
    val_fraction: float = 0.01  # of documents, chosen by a hash of their text
    workers: int = 0  # tokenizer processes (0 = all cores)
    corpus: CorpusConfig = dataclasses.field(default_factory=CorpusConfig)


# ----------------------------------------------------------------------------- pretraining


@dataclasses.dataclass
class ObjectiveConfig:
    """What pretraining teaches: BERT's MLM (+ NSP), GPT's next token, or T5's span corruption."""

    kind: str = "mlm"  # mlm (family bert) | electra (replaced-token detection, family bert) | clm (causal LM, family gpt) | span (span corruption, family t5)
    seq_len: int = 128
    short_seq_len: int = 0  # train at this length first (0 = off): breaks the MLM plateau
    short_seq_fraction: float = 0.6  # share of the run spent at short_seq_len
    mask_prob: float = 0.15
    whole_word: bool = False  # mask every piece of a word together
    nsp: bool = True  # next sentence prediction: trains the pooled [CLS] (mlm only; electra has none)
    noise_density: float = 0.15  # span: share of tokens masked out
    mean_span: float = 3.0  # span: mean length of a masked-out span
    generator_size: float = 0.25  # electra: the generator's width as a share of the model's, (0, 1]
    generator_layers: float = 1.0  # electra: the generator's layers as a share of the model's, (0, 1]
    disc_weight: float = 50.0  # electra: λ, the replaced-token loss's weight beside the generator's MLM loss


@dataclasses.dataclass
class PretrainConfig:
    """`plmkit pretrain`: pretrain a model on shards; model.family follows objective.kind."""

    shards: str = "shards"
    output: str = "runs/pretrain"
    init: str | None = None  # start from a run or Hugging Face directory instead of random init
    resume: bool = False  # continue from the newest checkpoint in output
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------- fine-tuning


@dataclasses.dataclass
class TableConfig:
    """Which columns of a TSV/CSV/JSONL file hold the inputs and the label."""

    text_column: str = "text"
    text_pair_column: str | None = None  # second sentence for pair tasks
    label_column: str = "label"
    format: str = "auto"  # auto (from the suffix) | tsv | csv | jsonl
    header: bool = True  # TSV/CSV: first row names the columns; else columns are 0, 1, ...


@dataclasses.dataclass
class TagConfig:
    """How a token-classification (NER) file is read: CoNLL-style columns or JSONL {tokens, tags}."""

    scheme: str = "bio"  # the files' tag scheme: bio | bioes | bmes (MSRA)
    model_scheme: str | None = None  # retag to this scheme before training (e.g. bio); None = as read
    token_column: int = 0  # column of the word in a column file
    tag_column: int = -1  # column of the tag (-1 = the last)
    format: str = "auto"  # auto (from the suffix) | columns | jsonl
    separator: str | None = None  # joins words into text (None: "" for one-character words, else " ")


@dataclasses.dataclass
class QAConfig:
    """Extractive question answering: windows over long contexts, answer decoding, scoring."""

    stride: int = 128  # tokens shared by consecutive windows of a long context
    max_question_length: int = 64  # longer questions are cut to this many tokens
    max_answer_length: int = 30  # tokens; longer spans are never answers
    n_best: int = 20  # candidate spans kept per question
    version_2: bool | None = None  # unanswerable questions allowed (None: if train has any)
    null_threshold: float = 0.0  # v2: answer "" when the no-answer score wins by more than this
    metric: str = "auto"  # squad | cmrc (character-level) | auto (cmrc for mostly-CJK contexts)


@dataclasses.dataclass
class MatchingConfig:
    """Semantic matching: which training pairs are positives, and how sharp the contrastive loss is."""

    temperature: float = 0.05  # the loss's logits are cosine / temperature (0.05 = scale 20, as sentence-transformers)
    min_score: float | None = None  # pairs scoring ≥ this are positives (STS-B: 4.0); None = label "1" is positive


@dataclasses.dataclass
class FinetuneConfig:
    """`plmkit finetune`: a task head on a pretrained (or random) encoder."""

    init: str | None = None  # run dir or Hugging Face dir; None = random init (the baseline)
    tokenizer: str | None = None  # defaults to the tokenizer inside init
    train_file: str = ""
    dev_file: str | None = None
    output: str = "runs/finetune"
    resume: bool = False  # continue a killed or stopped run from its newest checkpoint
    task: str = "classification"  # classification | regression | ner | qa | matching | seq2seq (label column = target)
    labels: list[str] | None = None  # label set; default: sorted labels seen in train_file
    max_length: int = 128  # tokens per input (seq2seq: per source)
    max_target_length: int = 128  # seq2seq: tokens per target, eos included
    dropout: float | None = None  # fine-tuning dropout (hidden and attention); None = the model's own
    pooling: str = "cls"  # cls (pooler, Hugging Face compatible; matching: [CLS] state) | mean
    reinit_layers: int = 0  # draw the init model's top N blocks (and pooler) afresh before fine-tuning
    epochs: float = 3.0  # sets train.max_steps when train.max_steps is 0
    limit_train: int = 0  # use only the first N training rows (0 = all)
    eval_batch_size: int = 64  # dev rows scored together after training
    seeds: int = 1  # fine-tune N times (train.seed, +1, ...) into OUTPUT/seed-K; report median, min, max
    table: TableConfig = dataclasses.field(default_factory=TableConfig)
    tags: TagConfig = dataclasses.field(default_factory=TagConfig)  # task ner
    qa: QAConfig = dataclasses.field(default_factory=QAConfig)  # task qa
    matching: MatchingConfig = dataclasses.field(default_factory=MatchingConfig)  # task matching
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # random init only
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(lr=1e-4, max_steps=0, warmup_fraction=0.1)
    )
    generation: GenerationConfig = dataclasses.field(
        default_factory=lambda: GenerationConfig(max_new_tokens=64)
    )  # seq2seq: how dev outputs are decoded for BLEU / chrF / ROUGE


@dataclasses.dataclass
class EvaluateConfig:
    """`plmkit evaluate`: score a fine-tuned model on a labelled file, or a GPT-style model's perplexity."""

    model: str = "runs/finetune"
    file: str = ""  # a labelled table; for a GPT-style model, raw text to score by perplexity
    batch_size: int = 64
    table: TableConfig | None = None  # default: the columns the model was fine-tuned with
    output: str | None = None  # Markdown results file (default: MODEL/eval-FILE.md)
    stride: int = 0  # perplexity: tokens between window starts (0 = half the context window)
    corpus: CorpusConfig = dataclasses.field(default_factory=CorpusConfig)  # perplexity: how `file` is read


@dataclasses.dataclass
class SuiteConfig:
    """`plmkit evaluate --suite FILE.yaml`: fine-tune one model on a list of tasks → one table."""

    init: str | None = None  # the model every task starts from (run dir or Hugging Face dir)
    data: str = "../shared/data"  # relative train_file / dev_file paths are under this folder
    output: str = "runs/suite"  # OUTPUT/<task>/ per task; suite.md, suite.json and built data here
    only: list[str] = dataclasses.field(default_factory=list)  # run just these task names (default: all)
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)  # finetune settings every task starts from
    tasks: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # name, metric, source + finetune settings
    override: dict[str, Any] = dataclasses.field(default_factory=dict)  # finetune settings over every task's own (override.train.max_steps=5: a smoke run)
    keep_checkpoints: bool = False  # keep each task's resume state (optimizer included: ~3× the model)


@dataclasses.dataclass
class ExportConfig:
    """`plmkit export`: write a model as a Hugging Face directory of a chosen architecture."""

    model: str = "runs/pretrain"  # run dir or Hugging Face dir
    output: str = "export"
    overwrite: bool = False  # replace an earlier `plmkit export` output (never anything else)
    architecture: str = "auto"  # auto (as trained) | BertForMaskedLM | BertModel | GPT2Model | T5EncoderModel | …


@dataclasses.dataclass
class PredictConfig:
    """`plmkit predict`: labels for raw text from a fine-tuned classifier (entities for NER, answers for QA)."""

    model: str = "runs/finetune"
    text: list[str] = dataclasses.field(default_factory=list)  # texts given on the command line
    question: list[str] = dataclasses.field(default_factory=list)  # QA model: questions given on the command line
    context: list[str] = dataclasses.field(default_factory=list)  # QA model: the context of each question, in the same order
    file: str | None = None  # or a file: one text per line (TAB separates a sentence pair); QA: JSONL {question, context} or SQuAD/CMRC JSON
    output: str | None = None  # JSONL predictions (default: print to stdout)


@dataclasses.dataclass
class GenerateConfig:
    """`plmkit generate`: continue prompts with a GPT-style model, or transform sources with a T5-style one."""

    model: str = "runs/pretrain"  # run dir or Hugging Face dir (GPT2LMHeadModel or T5ForConditionalGeneration)
    text: list[str] = dataclasses.field(default_factory=list)  # prompts given on the command line
    file: str | None = None  # or a file: one prompt per line
    output: str | None = None  # JSONL results (default: print to stdout)
    mode: str = "auto"  # auto | continue (decoder: extend the prompt) | transform (encoder-decoder)
    max_input_tokens: int = 0  # cut longer inputs (a prompt keeps its end); 0 = no cut
    batch_size: int = 16  # prompts decoded together
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)


def _demo_tokenizer() -> TokenizerStageConfig:
    return TokenizerStageConfig(vocab_size=8000, min_frequency=2)


def _demo_pretrain() -> PretrainConfig:
    return PretrainConfig(
        model=ModelConfig(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=512,
                          max_position=128, dropout=0.0, attention_dropout=0.0),
        objective=ObjectiveConfig(seq_len=128, short_seq_len=32, short_seq_fraction=0.6),
        train=TrainConfig(lr=2e-3, batch_size=64, max_steps=6000, warmup_fraction=0.05,
                          save_every=1000, log_every=20),
    )


def _demo_tapt() -> PretrainConfig:
    return PretrainConfig(
        objective=ObjectiveConfig(seq_len=128, nsp=False),
        train=TrainConfig(lr=5e-4, batch_size=64, max_steps=1000, warmup_fraction=0.1,
                          save_every=500, log_every=20),
    )


def _demo_finetune() -> FinetuneConfig:
    # Chosen on dev (BENCHMARKS.md, "Pretraining that pays"): the pretrained encoder keeps more
    # of what it learned when the head trains alone first and faster than the body.
    return FinetuneConfig(
        max_length=128,
        pooling="mean",
        dropout=0.1,
        epochs=4.0,
        train=TrainConfig(lr=1e-3, batch_size=32, max_steps=0, warmup_fraction=0.1,
                          head_first=0.3, head_lr_scale=10.0),
    )


def _demo_scratch() -> FinetuneConfig:
    # From random init the plain recipe did best on dev (the head-first one: 73.1 vs 74.0).
    return FinetuneConfig(
        max_length=128,
        pooling="mean",
        dropout=0.1,
        epochs=4.0,
        train=TrainConfig(lr=3e-4, batch_size=32, max_steps=0, warmup_fraction=0.1),
    )


@dataclasses.dataclass
class DemoConfig:
    """`plmkit demo`: the built-in Chinese run: news + reviews → pretrain → sentiment at 3 budgets."""

    output: str = "demo-out"  # everything the demo writes goes here (replaced on each run)
    budgets: list[int] = dataclasses.field(default_factory=lambda: [100, 500, 2000])  # labelled sentences
    min_finetune_steps: int = 150  # small budgets train for more epochs, up to this many steps
    tokenizer: TokenizerStageConfig = dataclasses.field(default_factory=_demo_tokenizer)
    pretrain: PretrainConfig = dataclasses.field(default_factory=_demo_pretrain)
    tapt: PretrainConfig = dataclasses.field(default_factory=_demo_tapt)  # task-adaptive: continue on the unlabelled reviews (train.max_steps 0 = off)
    seeds: int = 3  # fine-tuning seeds per cell; the table shows median (min–max)
    finetune: FinetuneConfig = dataclasses.field(default_factory=_demo_finetune)  # the pretrained rows
    scratch: FinetuneConfig = dataclasses.field(default_factory=_demo_scratch)  # the random-init rows, each at its dev-best setting
