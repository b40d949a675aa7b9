"""Typed configuration: one dataclass per stage, filled from a YAML recipe and `key=value` overrides.

Every default of plmkit lives in this package (model.py: shapes, generation, training; tasks.py:
how task files are read; here: one dataclass per stage), with a comment saying what each field
means, so these files double as the reference for recipes; loading.py fills the dataclasses.
Loading is strict: an unknown key or a value of the wrong type is a `UserError` naming the
dotted field, raised before any heavy work starts.
The cost of strictness is that a recipe written for a newer plmkit fails on an older one;
we take that over silently ignoring a typo like `train.learning_rate`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from plmkit.config.inspect import InspectConfig  # noqa: F401
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
from plmkit.config.model import (  # noqa: F401
    ACTIVATIONS,
    FAMILIES,
    GenerationConfig,
    ModelConfig,
    TrainConfig,
    check_generation_config,
    check_model_config,
)
from plmkit.config.privacy import ScrubConfig  # noqa: F401
from plmkit.config.probes import ProbeConfig, probe_arguments  # noqa: F401
from plmkit.config.serve import ServeConfig  # noqa: F401
from plmkit.config.tasks import MatchingConfig, QAConfig, TableConfig, TagConfig  # noqa: F401

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
    holdout_fraction: float = 0.01  # documents kept out of training (by a hash of their text) for the coverage report
    probe_file: str | None = None  # more text to report coverage on (e.g. a fine-tuning file), read like inputs
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
    word_boundaries: str = "none"  # none | jieba: store where Chinese words start, for objective.whole_word
    scrub_pii: bool = False  # replace e-mails, URLs, IPs, phones, Chinese IDs, cards, IBANs with [EMAIL], [PHONE], ... before tokenizing (counts in header.json)
    canaries: int = 0  # memorization probe: plant this many random secrets (listed apart in canaries.json; 0 = none)
    canary_repeats: list[int] = dataclasses.field(default_factory=lambda: [1, 4, 16, 64])  # copies of each canary, cycling through the list
    canary_format: str = "my secret number is {digits:9}"  # canary template: each {digits:N} slot gets N random digits
    canary_seed: int = 0  # draws the canaries' secrets and where their copies go
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
    whole_word: bool = False  # mask every piece of a word together (Chinese: shards prepared with word_boundaries=jieba)
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
    overwrite: bool = False  # replace an earlier `plmkit pretrain` run in output (kept until this one ends)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------- fine-tuning



@dataclasses.dataclass
class FinetuneConfig:
    """`plmkit finetune`: a task head on a pretrained (or random) encoder."""

    init: str | None = None  # run dir or Hugging Face dir; None = random init (the baseline)
    tokenizer: str | None = None  # defaults to the tokenizer inside init
    train_file: str = ""
    dev_file: str | None = None
    output: str = "runs/finetune"
    resume: bool = False  # continue a killed or stopped run from its newest checkpoint
    overwrite: bool = False  # replace an earlier `plmkit finetune` run in output (kept until this one ends)
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
class DistillConfig:
    """`plmkit distill`: a fine-tuned teacher → a smaller student for the same task and labels."""

    teacher: str = "runs/finetune"  # a fine-tuned classifier or tagger (plmkit run or Hugging Face dir)
    student_init: str | None = None  # start the student from this encoder (any width); default: the teacher's layers
    student_layers: list[int] = dataclasses.field(default_factory=list)  # teacher blocks the student keeps, e.g. [1, 3] (default: every other one, the top one kept)
    train_file: str = ""  # labelled rows, read as the teacher was fine-tuned (its columns and labels)
    dev_file: str | None = None  # scored after training, like finetune's
    output: str = "runs/distill"
    resume: bool = False  # continue a killed or stopped run from its newest checkpoint
    overwrite: bool = False  # replace an earlier `plmkit distill` run in output
    temperature: float = 2.0  # softens both sides' logits; the KL term is scaled by its square (Hinton et al. 2015)
    alpha: float = 0.5  # weight of the teacher's soft targets; 1 − alpha goes to the gold labels
    epochs: float = 3.0  # sets train.max_steps when train.max_steps is 0
    limit_train: int = 0  # use only the first N training rows (0 = all)
    eval_batch_size: int = 64  # dev rows scored together after training
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(lr=1e-4, max_steps=0, warmup_fraction=0.1)
    )


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
    """`plmkit export`: a model as a Hugging Face directory of a chosen architecture, or as ONNX
    (fp32 and int8) with a gate table of what each form costs in accuracy and buys in speed."""

    model: str = "runs/pretrain"  # run dir or Hugging Face dir
    output: str = "export"
    overwrite: bool = False  # replace an earlier `plmkit export` output (never anything else)
    architecture: str = "auto"  # auto (as trained) | BertForMaskedLM | BertModel | GPT2Model | T5EncoderModel | …
    format: str = "hf"  # hf (a Hugging Face directory) | onnx | int8 | onnx,int8 (fine-tuned classifiers)
    eval_file: str | None = None  # onnx/int8: labelled dev rows; each form is checked, scored and timed on them
    max_drop: float = 1.0  # onnx/int8: a form whose dev metric falls more points than this is not written
    per_channel: str = "auto"  # int8: auto (whichever scores better on eval_file) | true | false


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
        # 4,000 steps, the first 3,000 at length 32: on dev as good as the 6,000-step plan
        # (BENCHMARKS.md, "A demo that fits its budget") in about half the time
        objective=ObjectiveConfig(seq_len=128, short_seq_len=32, short_seq_fraction=0.75),
        train=TrainConfig(lr=2e-3, batch_size=64, max_steps=4000, warmup_fraction=0.05,
                          save_every=1000, log_every=20),
    )


def _demo_tapt() -> PretrainConfig:
    return PretrainConfig(
        objective=ObjectiveConfig(seq_len=128, nsp=False),
        train=TrainConfig(lr=5e-4, batch_size=64, max_steps=500, warmup_fraction=0.1,
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
    word_boundaries: str = "none"  # jieba: shards record word starts (with pretrain.objective.whole_word=true)
    pretrain: PretrainConfig = dataclasses.field(default_factory=_demo_pretrain)
    tapt: PretrainConfig = dataclasses.field(default_factory=_demo_tapt)  # task-adaptive: continue on the unlabelled reviews (train.max_steps 0 = off)
    seeds: int = 3  # fine-tuning seeds per cell; the table shows median (min–max)
    workers: int = 2  # fine-tuning cells run in this many processes of one thread each (1 = in this one, as pretraining does)
    finetune: FinetuneConfig = dataclasses.field(default_factory=_demo_finetune)  # the pretrained rows
    scratch: FinetuneConfig = dataclasses.field(default_factory=_demo_scratch)  # the random-init rows, each at its dev-best setting
