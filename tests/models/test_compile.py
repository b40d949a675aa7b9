"""`torch.compile` sees each training forward as one graph: no graph breaks.

A break splits the compiled program and costs speed on GPU (issue: "torch.compile over a
graph without breaks"). `fullgraph=True` turns any break into an error; the "eager" backend
traces with Dynamo but generates no code, so the check runs in seconds on CPU.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from plmkit.config import ModelConfig
from plmkit.models.decoder import CausalLM
from plmkit.models.encoder import PretrainingModel
from plmkit.runtime.compiling import compile_step

CFG = ModelConfig(vocab_size=300, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                  max_position=64, dropout=0.1, attention_dropout=0.1)


def _counting(graphs: list[torch.fx.GraphModule]) -> object:
    """A Dynamo backend that records each graph it is given and runs it as traced."""

    def backend(gm: torch.fx.GraphModule, inputs: list) -> object:
        graphs.append(gm)
        return gm.forward

    return backend


@pytest.mark.parametrize("unpad", [True, False])
def test_bert_pretraining_forward_has_no_graph_break(unpad: bool) -> None:
    torch._dynamo.reset()
    model = PretrainingModel(dataclasses.replace(CFG, unpad=unpad)).train()
    ids = torch.randint(5, 300, (3, 16))
    mask = torch.ones(3, 16, dtype=torch.long)
    mask[1, 9:] = 0
    positions = torch.tensor([1, 5, 20, 40])
    out = torch.compile(model, fullgraph=True, backend="eager")(ids, mask, None, positions)
    (out.mlm_logits.sum() + out.nsp_logits.sum()).backward()
    assert out.mlm_logits.shape == (4, 300)


def test_gpt_training_forward_has_no_graph_break() -> None:
    torch._dynamo.reset()
    model = CausalLM(dataclasses.replace(CFG, family="gpt", eos_token_id=0)).train()
    logits = torch.compile(model, fullgraph=True, backend="eager")(torch.randint(0, 300, (2, 16)))
    logits.sum().backward()
    assert logits.shape == (2, 16, 300)


def test_unpadded_batches_of_any_size_share_one_dynamic_graph() -> None:
    """The unpadded path's sizes change every batch (real tokens N, masked positions M): Dynamo
    compiles once with static shapes, once more with those sizes symbolic, then never again."""
    torch._dynamo.reset()
    graphs: list[torch.fx.GraphModule] = []
    counting_backend = _counting(graphs)
    model = PretrainingModel(dataclasses.replace(CFG, unpad=True)).train()
    step = torch.compile(model, fullgraph=True, backend=counting_backend)
    rng = torch.Generator().manual_seed(0)
    sizes = set()
    for _ in range(8):
        ids = torch.randint(5, 300, (4, 32), generator=rng)
        lengths = torch.randint(8, 33, (4,), generator=rng)
        mask = (torch.arange(32)[None] < lengths[:, None]).long()
        masked = int(torch.randint(3, 12, (1,), generator=rng))
        positions = torch.randperm(4 * 32, generator=rng)[:masked].sort().values
        out = step(ids, mask, None, positions)
        (out.mlm_logits.sum() + out.nsp_logits.sum()).backward()
        sizes.add((int(mask.sum()), masked))
    assert len(sizes) == 8 and len(graphs) == 2


def test_training_compile_traces_the_unpadded_encoder_as_one_graph() -> None:
    """What the trainer compiles (runtime.compiling.compile_step, no fullgraph) must not split the
    unpadded encoder where `nonzero` finds the real tokens: at Dynamo's defaults (plain
    torch.compile) it is 6 graphs with 5 breaks."""
    torch._dynamo.reset()
    graphs: list[torch.fx.GraphModule] = []
    counting_backend = _counting(graphs)
    model = PretrainingModel(dataclasses.replace(CFG, unpad=True)).train()
    ids = torch.randint(5, 300, (3, 16))
    mask = torch.ones(3, 16, dtype=torch.long)
    mask[1, 9:] = 0
    positions = torch.tensor([1, 5, 20, 40])
    compile_step(model, backend=counting_backend)(ids, mask, None, positions)
    assert len(graphs) == 1
    torch._dynamo.reset()
    graphs.clear()
    torch.compile(model, backend=counting_backend)(ids, mask, None, positions)
    assert len(graphs) > 1  # the defaults, which compile_step must not change for others


def test_compile_dynamic_traces_once_for_batches_of_any_size() -> None:
    """train.compile_dynamic: the first trace is already symbolic, so a batch with another masked
    count (MLM's changes every batch) reuses it instead of compiling a second time."""
    torch._dynamo.reset()
    graphs: list[torch.fx.GraphModule] = []
    counting_backend = _counting(graphs)
    model = PretrainingModel(dataclasses.replace(CFG, unpad=True)).train()
    step = compile_step(model, backend=counting_backend, dynamic=True)
    for masked in (4, 7, 11):
        ids = torch.randint(5, 300, (3, 16))
        mask = torch.ones(3, 16, dtype=torch.long)
        step(ids, mask, None, torch.randperm(48)[:masked].sort().values)
    assert len(graphs) == 1
