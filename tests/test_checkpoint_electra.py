"""ELECTRA checkpoints: our discriminator and generator load in Transformers as
`ElectraForPreTraining` and `ElectraForMaskedLM` with the same outputs, and theirs load in ours.

Expected values come from `transformers` (eager attention); each assertion states the max abs
difference it saw (printed with `pytest -s`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import transformers  # a missing test dependency fails, never skips
from safetensors.torch import load_file, save_file

from plmkit.checkpoint import load_into, read_checkpoint, save_model
from plmkit.cli import main
from plmkit.config import ModelConfig
from plmkit.models.electra import (
    Discriminator,
    ElectraPretrainingModel,
    Generator,
    generator_config,
    sample_tokens,
)
from plmkit.runtime.errors import UserError

CFG = ModelConfig(vocab_size=1000, hidden_size=64, num_layers=2, num_heads=4,
                  intermediate_size=128, max_position=64)
GEN_CFG = generator_config(CFG, size=0.5, layers=1.0)  # 32 wide, 2 heads, embeddings 64 wide
TOL = 1e-4


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    """Three right-padded two-segment sequences of lengths 12, 7 and 3."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.zeros(3, 12, dtype=torch.long)
    mask, types = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, n in enumerate([12, 7, 3]):
        ids[row, :n] = torch.randint(1, CFG.vocab_size, (n,), generator=gen)
        mask[row, :n] = 1
        types[row, n // 2 : n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # move every tensor off its init value (biases 0, LayerNorm 1)
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))
    return model.eval()


@pytest.fixture
def electra() -> ElectraPretrainingModel:
    torch.manual_seed(0)
    return _perturbed(ElectraPretrainingModel(CFG, GEN_CFG))


def _hf_load(cls_name: str, path: Path, caplog: pytest.LogCaptureFixture) -> torch.nn.Module:
    """Load with Transformers; fail on any missing, unexpected or mismatched key, or warning."""
    transformers.utils.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger="transformers"):
            model, info = getattr(transformers, cls_name).from_pretrained(
                path, output_loading_info=True, attn_implementation="eager")
    finally:
        transformers.utils.logging.disable_propagation()
    assert not any(info.values()), f"loading info: {info}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, f"transformers warned: {warnings}"
    return model.eval()


def _max_diff(ours: torch.Tensor, theirs: torch.Tensor, what: str, mask: torch.Tensor) -> float:
    """Max abs difference over real tokens (padding carries no meaning), asserted < TOL."""
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    worst = (ours - theirs).abs()[mask.bool()].max().item()
    print(f"{what}: max abs diff {worst:.2e}")
    assert worst < TOL, f"{what}: max abs diff {worst:.2e} (tolerance {TOL})"
    return worst


@torch.no_grad()
def test_discriminator_and_generator_match_transformers(tmp_path, batch, electra, caplog) -> None:
    save_model(electra.discriminator, CFG, tmp_path / "d", "ElectraForPreTraining")
    save_model(electra.generator, GEN_CFG, tmp_path / "g", "ElectraForMaskedLM")
    disc = _hf_load("ElectraForPreTraining", tmp_path / "d", caplog)
    gen = _hf_load("ElectraForMaskedLM", tmp_path / "g", caplog)
    assert gen.config.embedding_size == 64 and gen.config.hidden_size == 32
    assert not hasattr(disc.electra, "embeddings_project")  # the discriminator is BERT-shaped
    _max_diff(electra.discriminator(**batch), disc(**batch).logits, "discriminator logits",
              batch["attention_mask"])
    _max_diff(electra.generator(**batch), gen(**batch).logits, "generator logits",
              batch["attention_mask"])
    # the embeddings are shared: both files hold the same matrices
    d, g = load_file(tmp_path / "d" / "model.safetensors"), load_file(tmp_path / "g" / "model.safetensors")
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        key = f"electra.embeddings.{name}.weight"
        assert torch.equal(d[key], g[key]), key


@torch.no_grad()
def test_transformers_electra_files_load_into_ours(tmp_path, batch, caplog) -> None:
    """Their random ELECTRA-Small-shaped models (embeddings 32 wide under 64-wide layers, as
    google/electra-small's 128 under 256) read into our Discriminator and Generator."""
    config = transformers.ElectraConfig(vocab_size=1000, embedding_size=32, hidden_size=64,
                                        num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=128, max_position_embeddings=64)
    config._attn_implementation = "eager"  # an independent formulation of attention
    for name, ours_cls in (("ElectraForPreTraining", Discriminator),
                           ("ElectraForMaskedLM", Generator)):
        torch.manual_seed(3)
        theirs = _perturbed(getattr(transformers, name)(config))
        theirs.save_pretrained(tmp_path / name)
        ckpt = read_checkpoint(tmp_path / name)
        assert ckpt.cfg.family == "bert" and ckpt.cfg.embedding_size == 32
        ours = ours_cls(ckpt.cfg).eval()
        load_into(ours, ckpt, require_heads=True, architecture=name)
        _max_diff(ours(**batch), theirs(**batch).logits, f"{name} read into ours",
                  batch["attention_mask"])


def test_untied_generator_is_refused(tmp_path, electra) -> None:
    save_model(electra.generator, GEN_CFG, tmp_path / "g", "ElectraForMaskedLM")
    tensors = load_file(tmp_path / "g" / "model.safetensors")
    tensors["generator_lm_head.weight"] = torch.randn(1000, 64)
    save_file(tensors, tmp_path / "g" / "model.safetensors")
    with pytest.raises(UserError, match="generator_lm_head differs"):
        read_checkpoint(tmp_path / "g")


def test_bert_file_refuses_a_projected_encoder(tmp_path, electra) -> None:
    with pytest.raises(UserError, match="only ELECTRA files"):
        save_model(electra.generator.encoder, GEN_CFG, tmp_path / "b", "BertModel")


def test_sampling_follows_the_generator_distribution() -> None:
    """Inverse-CDF sampling: the uniform numbers fix the tokens, and over many draws the
    frequencies approach the softmax (expected values from torch.softmax)."""
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0]]).repeat(20_000, 1)
    uniform = torch.rand(20_000, generator=torch.Generator().manual_seed(0))
    ids = sample_tokens(logits, uniform)
    assert torch.equal(ids, sample_tokens(logits, uniform))
    freq = torch.bincount(ids, minlength=4).float() / len(ids)
    assert (freq - torch.softmax(logits[0], -1)).abs().max() < 0.01, freq
    assert sample_tokens(torch.tensor([[0.0, 50.0, 0.0]]), torch.tensor([0.999999])).item() == 1


def test_replaced_marks_only_changed_positions(batch, electra) -> None:
    flat = batch["input_ids"].reshape(-1)
    positions = torch.tensor([1, 2, 13, 25])
    out = electra(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], positions,
                  flat[positions], torch.tensor([0.1, 0.5, 0.9, 0.3]))
    assert out.mlm_logits.shape == (4, CFG.vocab_size) and out.disc_logits.shape == (3, 12)
    sampled = sample_tokens(out.mlm_logits, torch.tensor([0.1, 0.5, 0.9, 0.3]))
    expected = torch.zeros(36)
    expected[positions] = (sampled != flat[positions]).float()
    assert torch.equal(out.replaced.reshape(-1), expected)


def test_finetune_refuses_narrow_embeddings_before_training(tmp_path, capsys) -> None:
    """A Transformers ELECTRA-Small-shaped file cannot become the BERT that fine-tuning writes:
    a one-line error up front, not a failure at save after training."""
    config = transformers.ElectraConfig(vocab_size=30, embedding_size=16, hidden_size=32,
                                        num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=64, max_position_embeddings=64)
    transformers.ElectraForPreTraining(config).save_pretrained(tmp_path / "small")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghij"]
    (tmp_path / "small" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    train = tmp_path / "t.tsv"
    train.write_text("text\tlabel\n" + "".join(f"{'abc'[i % 3]} d\t{i % 2}\n" for i in range(8)))
    code = main(["finetune", f"init={tmp_path / 'small'}", f"train_file={train}",
                 f"output={tmp_path / 'out'}", "train.max_steps=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "embeddings 16 wide under layers 32 wide" in err, err
    assert not (tmp_path / "out").exists()
