"""`plmkit evaluate`: a fine-tuned model + a labelled file → metrics and results.md.

Classifiers and regressors are scored on their logits; taggers on entities (seqeval); QA
models by EM / F1 (SQuAD or CMRC 2018 rules); a seq2seq model decodes every source
(with the generation settings it was fine-tuned with) and is scored with BLEU, chrF and ROUGE;
a GPT-style model is scored by perplexity on raw text (tasks/lm/perplexity.py); a sentence embedder
(a matching run, or any bare `BertModel`) by the cosine of its pairs (tasks/matching/embeddings.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plmkit.checkpoint import load_into, read_checkpoint, read_hf_config, resolve_model_dir
from plmkit.config import EvaluateConfig, TableConfig, TagConfig, from_dict
from plmkit.models.decoder import CausalLM
from plmkit.runtime.console import print0
from plmkit.runtime.devices import pick_device
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_write_text
from plmkit.serve.embedder import Embedder, is_embedder
from plmkit.serve.generator import Generator
from plmkit.serve.pipeline import Classifier
from plmkit.serve.reader import Reader, is_reader
from plmkit.serve.tagger import Tagger
from plmkit.tasks.classification.features import encode_examples, evaluate_logits, predict_logits
from plmkit.tasks.lm.perplexity import perplexity, text_stream
from plmkit.tasks.matching.embeddings import score_pairs
from plmkit.tasks.metrics import markdown_table
from plmkit.tasks.ner.data import read_tagged_file
from plmkit.tasks.ner.features import ner_metrics
from plmkit.tasks.qa.answers import choose_metric, read_questions, score
from plmkit.tasks.seq2seq.features import generation_metrics
from plmkit.tasks.tables import read_table
from plmkit.text.tokenizer import load_tokenizer


def run(cfg: EvaluateConfig) -> dict[str, float]:
    """Score `cfg.model` on `cfg.file`; writes results.md (beside the model by default)."""
    if not cfg.file:
        raise UserError("evaluate: file is required (e.g. file=dev.tsv)")
    task = _task_of(cfg.model)
    if task == "lm":
        count, metrics = _score_perplexity(cfg)
    elif task == "seq2seq":
        examples, metrics = _score_seq2seq(cfg)
        count = len(examples)
    elif task == "ner":
        count, metrics = _score_ner(cfg)
    elif task == "qa":
        count, metrics = _score_qa(cfg)
    elif task == "matching":
        count, metrics = _score_matching(cfg)
    else:
        examples, metrics = _score_classifier(cfg)
        count = len(examples)
    rows: list[dict[str, Any]] = [{"model": str(cfg.model), "file": Path(cfg.file).name,
                                   "examples": count, **metrics}]
    out = Path(cfg.output) if cfg.output else Path(cfg.model) / f"eval-{Path(cfg.file).stem}.md"
    atomic_write_text(out, markdown_table(rows, list(rows[0])))
    print0(markdown_table(rows, list(rows[0])))
    return metrics


def _task_of(model: str) -> str:
    hf_config = read_hf_config(model)
    if hf_config.get("model_type") == "gpt2":
        return "lm"
    if is_embedder(hf_config):  # a matching run, or a bare encoder such as a sentence-transformers model
        return "matching"
    if is_reader(hf_config):  # a QA run, or any Transformers BertForQuestionAnswering
        return "qa"
    return (hf_config.get("plmkit_task") or {}).get("task", "classification")


def _score_perplexity(cfg: EvaluateConfig) -> tuple[int, dict[str, float]]:
    """Perplexity of a GPT-style model on raw text; `examples` counts the scored tokens."""
    model_dir = resolve_model_dir(cfg.model)
    checkpoint = read_checkpoint(model_dir)
    model = CausalLM(checkpoint.cfg)
    load_into(model, checkpoint, require_heads=True)
    tokenizer = load_tokenizer(model_dir)
    eos = checkpoint.cfg.eos_token_id
    if eos is None:
        raise UserError(f"{model_dir}/config.json: no eos_token_id to join documents with")
    context = checkpoint.cfg.max_position
    stride = cfg.stride or max(context // 2, 1)
    if not 0 < stride <= context:
        raise UserError(f"config stride: must be in [1, {context}] (the context window), got {cfg.stride}")
    stream, words = text_stream([cfg.file], cfg.corpus, tokenizer, eos)
    device = pick_device("auto")
    metrics = perplexity(model.to(device), stream, words, context=context, stride=stride,
                         batch_size=max(1, cfg.batch_size // 8), device=device)
    return int(metrics["tokens"]), metrics


def _score_classifier(cfg: EvaluateConfig) -> tuple[list, dict[str, float]]:
    clf = Classifier.load(cfg.model)
    examples = read_table(cfg.file, cfg.table or clf.table, task=clf.task)
    encoded = encode_examples(clf.tokenizer, examples, clf.max_length, clf.labels, clf.task)
    logits = predict_logits(clf.model, encoded, cfg.batch_size, clf.device)
    return examples, evaluate_logits(logits, encoded, clf.task, clf.labels)


def _score_matching(cfg: EvaluateConfig) -> tuple[int, dict[str, float]]:
    """Cosine-similarity scores of a sentence embedder: Spearman / Pearson, or AUC and recall@k."""
    embedder = Embedder.load(cfg.model)
    examples = read_table(cfg.file, cfg.table or embedder.table)
    return len(examples), score_pairs(lambda texts: embedder.embed(texts, cfg.batch_size), examples)


def _score_ner(cfg: EvaluateConfig) -> tuple[int, dict[str, float]]:
    """Entity-level scores of a token classifier; `examples` counts sentences."""
    tagger = Tagger.load(cfg.model)
    info = read_hf_config(cfg.model)["plmkit_task"]
    tags = from_dict(TagConfig, info.get("tags"), "plmkit_task.tags")
    sentences = read_tagged_file(cfg.file, tags)
    return len(sentences), ner_metrics([list(s.tags) for s in sentences], tagger.tag_sentences(sentences))


def _score_qa(cfg: EvaluateConfig) -> tuple[int, dict[str, float]]:
    """EM / F1 of an extractive QA model with the settings it was fine-tuned with."""
    examples = read_questions(cfg.file)
    reader = Reader.load(cfg.model)
    metric = choose_metric(reader.qa, examples)
    metrics, _ = score(reader.model, reader.tokenizer, examples, reader.qa, reader.max_length,
                       metric, reader.allow_null, reader.device)
    return len(examples), metrics


def _score_seq2seq(cfg: EvaluateConfig) -> tuple[list, dict[str, float]]:
    generator = Generator.load(cfg.model)
    info = read_hf_config(cfg.model)["plmkit_task"]
    table = cfg.table or from_dict(TableConfig, info.get("table"), "plmkit_task.table")
    examples = read_table(cfg.file, table, task="seq2seq")
    outputs: list[str] = []
    for start in range(0, len(examples), cfg.batch_size):
        batch = [ex.text for ex in examples[start : start + cfg.batch_size]]
        outputs += generator.generate(batch, max_input_tokens=info.get("max_length", 0))
    return examples, generation_metrics(outputs, [str(ex.label) for ex in examples], rouge=True)
