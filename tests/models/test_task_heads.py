"""Token-tagging, QA-span and sentence-embedding heads compute what Transformers' do.

The reference is `transformers` (eager attention): its `BertForTokenClassification` and
`BertForQuestionAnswering` load our body (saved as `BertModel`) and get our head's two tensors
copied in, since the checkpoint map has no rows for these heads yet; each assertion states the
max abs difference it saw.
"""

from __future__ import annotations

import pytest
import torch
import transformers  # a missing test dependency fails, never skips

from plmkit.checkpoint import save_model
from plmkit.config import ModelConfig
from plmkit.models.heads import SentenceEmbedder, SpanExtractor, TokenClassifier

CFG = ModelConfig(
    vocab_size=300, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position=32
)
TOL = 1e-4


def _ours(model: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():  # move every tensor off its init value
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))
    return model.eval()


def _batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, CFG.vocab_size, (2, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    types = torch.zeros_like(ids)
    types[:, 4:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _hf(cls_name: str, model: torch.nn.Module, tmp_path, **kwargs) -> torch.nn.Module:
    save_model(model.encoder, CFG, tmp_path / "body", "BertModel")
    cls = getattr(transformers, cls_name)
    return cls.from_pretrained(tmp_path / "body", attn_implementation="eager", **kwargs).eval()


def _worst(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    return (ours - theirs).abs()[mask.bool()].max().item()


@torch.no_grad()
def test_token_classifier_matches_bert_for_token_classification(tmp_path) -> None:
    model = _ours(TokenClassifier(CFG, num_labels=5))
    hf = _hf("BertForTokenClassification", model, tmp_path, num_labels=5)
    hf.classifier.load_state_dict(model.classifier.state_dict())
    batch = _batch()
    worst = _worst(model(**batch), hf(**batch).logits, batch["attention_mask"])
    assert worst < TOL, f"token logits: max abs diff {worst:.2e}"


@torch.no_grad()
def test_span_extractor_matches_bert_for_question_answering(tmp_path) -> None:
    model = _ours(SpanExtractor(CFG))
    hf = _hf("BertForQuestionAnswering", model, tmp_path)
    hf.qa_outputs.load_state_dict(model.qa_outputs.state_dict())
    batch = _batch()
    ours, theirs = model(**batch), hf(**batch)
    for name, a, b in (
        ("start", ours.start, theirs.start_logits),
        ("end", ours.end, theirs.end_logits),
    ):
        worst = _worst(a, b, batch["attention_mask"])
        assert worst < TOL, f"{name} logits: max abs diff {worst:.2e}"


@torch.no_grad()
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_sentence_embedder_pools_bert_model_hidden_states(tmp_path, pooling: str) -> None:
    model = _ours(SentenceEmbedder(CFG, pooling=pooling))
    hf = _hf("BertModel", model, tmp_path)
    batch = _batch()
    hidden = hf(**batch).last_hidden_state  # (B, T, H)
    weights = batch["attention_mask"].unsqueeze(-1).float()
    expected = hidden[:, 0] if pooling == "cls" else (hidden * weights).sum(1) / weights.sum(1)
    worst = (model(**batch) - expected).abs().max().item()
    assert worst < TOL, f"{pooling} embedding: max abs diff {worst:.2e}"
