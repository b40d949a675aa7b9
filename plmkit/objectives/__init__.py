"""Pretraining objectives: token shards → batches → loss, for BERT (MLM + NSP, or ELECTRA's
replaced-token detection), GPT (causal LM) and T5 (span corruption).

Each objective is a batch source (`next_batch`, `state_dict`, `load_state_dict`: what the
trainer draws from) and a loss function (model, batch → loss, metrics). `mlm.py` holds BERT's
masked language modelling and next sentence prediction; `electra.py` ELECTRA's replaced-token
detection over MLM's batches; `stream.py` the packed token stream that GPT and T5 read, the
causal LM objective and the evaluation both LM objectives share; `span.py` T5's span
corruption. Import from here.

Key choice: every batch source draws from the memory-mapped shards with a NumPy generator whose
state *is* the data cursor, so exact resume needs only that state. The cost is sampling with
replacement: an epoch is not a pass over every token once.
"""

from plmkit.objectives.clm import CausalLMBatches, PackedStream, causal_lm_loss, evaluate_lm
from plmkit.objectives.electra import ElectraBatches, electra_loss
from plmkit.objectives.mlm import (
    MaskingSpec,
    PretrainBatches,
    collate,
    evaluate_pretraining,
    mask_tokens,
    pretrain_loss,
)
from plmkit.objectives.span import (
    SpanCorruptionBatches,
    corrupt_spans,
    span_corruption_lengths,
    span_corruption_loss,
    span_counts,
    span_noise_mask,
)

__all__ = [
    "CausalLMBatches",
    "ElectraBatches",
    "MaskingSpec",
    "PackedStream",
    "PretrainBatches",
    "SpanCorruptionBatches",
    "causal_lm_loss",
    "collate",
    "corrupt_spans",
    "electra_loss",
    "evaluate_lm",
    "evaluate_pretraining",
    "mask_tokens",
    "pretrain_loss",
    "span_corruption_lengths",
    "span_corruption_loss",
    "span_counts",
    "span_noise_mask",
]
