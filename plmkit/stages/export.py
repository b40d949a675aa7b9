"""`plmkit export`: a run or Hugging Face directory → a Hugging Face directory of a chosen head.

A pretraining run's `final/` is already a Hugging Face directory (`BertForPreTraining`,
`GPT2LMHeadModel` or `T5ForConditionalGeneration`); export re-writes it as another architecture
of the same family when a user's downstream code expects one (`BertForMaskedLM`, a bare
`BertModel`, `ElectraModel`, `GPT2Model`, `T5EncoderModel`, …), and copies fine-tuned models as they are. All of
it goes through plmkit.checkpoint's one map per family. `format=onnx|int8` hands over to
stages/export_onnx.py (the ONNX forms and their gate).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from plmkit.checkpoint import (
    Checkpoint,
    file_family,
    load_into,
    read_checkpoint,
    resolve_model_dir,
    save_model,
)
from plmkit.config import ExportConfig
from plmkit.models.decoder import CausalLM
from plmkit.models.electra import Discriminator, Generator
from plmkit.models.encoder import Encoder, PretrainingModel
from plmkit.models.heads import SequenceClassifier
from plmkit.models.seq2seq import Seq2SeqLM
from plmkit.runtime.console import print0
from plmkit.runtime.errors import UserError
from plmkit.runtime.outputs import claim_output

NEEDS_HEADS = ("BertForPreTraining", "BertForSequenceClassification", "GPT2LMHeadModel",
               "T5ForConditionalGeneration", "T5Model", "ElectraForPreTraining",
               "ElectraForMaskedLM")
HEAD_KEYS = ("id2label", "label2id", "problem_type", "plmkit_pooling", "plmkit_task")  # kept as they are


def run(cfg: ExportConfig) -> Path:
    """Write `cfg.model` to `cfg.output` as `cfg.architecture` (format=hf) or as its ONNX forms."""
    if cfg.format != "hf":
        from plmkit.stages import export_onnx  # onnx, onnxruntime: only when asked for

        export_onnx.run(cfg)
        return Path(cfg.output)
    source = resolve_model_dir(cfg.model)
    claim_output(cfg.output, "export", [cfg.model], replace=cfg.overwrite)
    checkpoint = read_checkpoint(source)
    known = file_family(checkpoint.hf_config).architectures  # ELECTRA files stay ELECTRA
    trained = (checkpoint.hf_config.get("architectures") or [next(iter(known))])[0]
    architecture = trained if cfg.architecture == "auto" else cfg.architecture
    if architecture not in known:
        raise UserError(f"export: a {checkpoint.cfg.family} model can be written as auto or one of "
                        f"{', '.join(known)}, not '{architecture}'")
    model = _build(architecture, checkpoint)
    # re-writing the file's own architecture needs what it holds (an ELECTRA one has no pooler)
    load_into(model, checkpoint, require_heads=architecture in NEEDS_HEADS,
              architecture=architecture if architecture == trained else None)
    extra = {k: checkpoint.hf_config[k] for k in HEAD_KEYS if k in checkpoint.hf_config}
    save_model(model, checkpoint.cfg, cfg.output, architecture, extra_config=extra,
               tokenizer_dir=source, verb="export")
    print0(f"export: {source} → {cfg.output} ({architecture})")
    return Path(cfg.output)


def _build(architecture: str, checkpoint: Checkpoint) -> nn.Module:
    if checkpoint.cfg.family == "gpt":
        return CausalLM(checkpoint.cfg)
    if checkpoint.cfg.family == "t5":
        return Seq2SeqLM(checkpoint.cfg)
    if architecture in ("BertModel", "ElectraModel"):
        return Encoder(checkpoint.cfg)
    if architecture == "ElectraForPreTraining":
        return Discriminator(checkpoint.cfg)
    if architecture == "ElectraForMaskedLM":
        return Generator(checkpoint.cfg)
    if architecture == "BertForSequenceClassification":
        labels = checkpoint.hf_config.get("id2label")
        if not labels:
            raise UserError("export: BertForSequenceClassification needs a fine-tuned classifier")
        num_labels = 1 if checkpoint.hf_config.get("problem_type") == "regression" else len(labels)
        return SequenceClassifier(checkpoint.cfg, num_labels,
                                  pooling=checkpoint.hf_config.get("plmkit_pooling", "cls"))
    return PretrainingModel(checkpoint.cfg)
