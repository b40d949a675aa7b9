"""The one BatchSource of fine-tuning: `SampledBatches` over a task's collate function.

It replaced five per-task classes (ClassificationBatches, Seq2SeqBatches, TokenBatches,
QABatches, PairBatches) that each wrapped the same epoch sampler. The expected batches below were
produced by those classes (plmkit at commit a8944d9), before the change, on the same rows and
seeds: a run, or a resumed checkpoint, must see exactly the batches it saw before.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plmkit.runtime.errors import UserError
from plmkit.tasks.classification.features import EncodedSet, collate_examples
from plmkit.tasks.matching.embeddings import TextPairs, collate_text_pairs
from plmkit.tasks.sampling import SampledBatches
from plmkit.tasks.seq2seq.features import PairSet, collate_pairs

LENGTHS = [2, 3, 1, 4, 2]  # row i holds token i + 10 (a side: i + 20, length 6 - n)

# Seven batches of 2 over five rows: epochs of 3 batches, so two epoch boundaries.
OLD_CLASSIFICATION = [  # ClassificationBatches(rows, 2, seed=3): input_ids
    [[14, 14], [12, 0]],
    [[11, 11, 11, 0], [13, 13, 13, 13]],
    [[10, 10]],
    [[11, 11, 11], [14, 14, 0]],
    [[10, 10], [12, 0]],
    [[13, 13, 13, 13]],
    [[14, 14], [10, 10]],
]
OLD_SEQ2SEQ = [  # Seq2SeqBatches(pairs, 2, seed=4): (input_ids, labels)
    ([[12, 0], [14, 14]], [[22, 22, 22, 22, 22], [24, 24, 24, 24, -100]]),
    ([[10, 10, 0], [11, 11, 11]], [[20, 20, 20, 20], [21, 21, 21, -100]]),
    ([[13, 13, 13, 13]], [[23, 23]]),
    ([[11, 11, 11], [12, 0, 0]], [[21, 21, 21, -100, -100], [22, 22, 22, 22, 22]]),
    ([[14, 14, 0, 0], [13, 13, 13, 13]], [[24, 24, 24, 24], [23, 23, -100, -100]]),
    ([[10, 10]], [[20, 20, 20, 20]]),
    ([[12, 0], [10, 10]], [[22, 22, 22, 22, 22], [20, 20, 20, 20, -100]]),
]
OLD_MATCHING = [  # PairBatches(pairs, 2, seed=5): (input_ids, a_group)
    ([[14, 14, 0, 0], [13, 13, 13, 13], [24, 24, 24, 24], [23, 23, 0, 0]], [3, 2]),
    ([[11, 11, 11, 0, 0], [12, 0, 0, 0, 0], [21, 21, 21, 0, 0], [22, 22, 22, 22, 22]], [1, 0]),
    ([[10, 10, 0, 0], [20, 20, 20, 20]], [0]),
    ([[12, 0, 0, 0, 0], [10, 10, 0, 0, 0], [22, 22, 22, 22, 22], [20, 20, 20, 20, 0]], [0, 0]),
    ([[14, 14, 0, 0], [13, 13, 13, 13], [24, 24, 24, 24], [23, 23, 0, 0]], [3, 2]),
    ([[11, 11, 11], [21, 21, 21]], [1]),
    ([[10, 10, 0, 0], [13, 13, 13, 13], [20, 20, 20, 20], [23, 23, 0, 0]], [0, 2]),
]
OLD_STATE_AFTER_7 = {"epoch": 2, "position": 2, "num_examples": 5}  # what the old classes saved


def classification_rows() -> EncodedSet:
    return EncodedSet(
        input_ids=[np.full(n, i + 10, dtype=np.int32) for i, n in enumerate(LENGTHS)],
        token_type_ids=[np.arange(n, dtype=np.int8) % 2 for n in LENGTHS],
        labels=torch.arange(len(LENGTHS)),
    )


def seq2seq_rows() -> PairSet:
    return PairSet(
        sources=[np.full(n, i + 10) for i, n in enumerate(LENGTHS)],
        targets=[np.full(6 - n, i + 20) for i, n in enumerate(LENGTHS)],
        pad_id=0,
        examples=[],
    )


def matching_rows() -> TextPairs:
    return TextPairs(
        a=[np.full(n, i + 10) for i, n in enumerate(LENGTHS)],
        b=[np.full(6 - n, i + 20) for i, n in enumerate(LENGTHS)],
        a_group=np.array([0, 1, 0, 2, 3]),  # rows 0 and 2 share their a text
        b_group=np.arange(5),
        pad_id=0,
    )


def test_batches_are_those_of_the_per_task_classes_they_replace() -> None:
    batches = SampledBatches(classification_rows(), 2, collate_examples, seed=3)
    got = [batches.next_batch(0.0)["input_ids"].tolist() for _ in range(7)]
    assert got == OLD_CLASSIFICATION
    assert batches.state_dict() == OLD_STATE_AFTER_7

    batches = SampledBatches(seq2seq_rows(), 2, collate_pairs, seed=4)
    got = [(b["input_ids"].tolist(), b["labels"].tolist()) for b in _take(batches, 7)]
    assert got == OLD_SEQ2SEQ
    assert batches.state_dict() == OLD_STATE_AFTER_7

    batches = SampledBatches(matching_rows(), 2, collate_text_pairs, seed=5)
    got = [(b["input_ids"].tolist(), b["a_group"].tolist()) for b in _take(batches, 7)]
    assert got == OLD_MATCHING


def test_a_cursor_saved_by_the_old_classes_resumes_at_the_same_batch() -> None:
    # What the old classes saved after four batches (the first of epoch 1), as JSON.
    old_state = json.loads('{"epoch": 1, "position": 2, "num_examples": 5}')
    batches = SampledBatches(classification_rows(), 2, collate_examples, seed=3)
    batches.load_state_dict(old_state)
    assert [b["input_ids"].tolist() for b in _take(batches, 3)] == OLD_CLASSIFICATION[4:]


def test_drop_last_gives_full_batches_and_still_visits_every_row() -> None:
    full = SampledBatches(classification_rows(), 2, collate_examples, seed=3, drop_last=True)
    plain = SampledBatches(classification_rows(), 2, collate_examples, seed=3)
    batches = _take(full, 12)  # epochs of 2 batches: the fifth row waits for another order
    assert all(len(b["input_ids"]) == 2 for b in batches) and full.steps_per_epoch == 2
    assert [b["input_ids"].tolist() for b in batches[:2]] == [
        b["input_ids"].tolist() for b in _take(plain, 2)
    ]  # the same order, less the remainder
    seen = {int(t) for b in batches for t in b["input_ids"][:, 0]}
    assert seen == {10, 11, 12, 13, 14}
    # Fewer rows than a batch: one short batch per epoch, rather than none.
    one = seq2seq_rows()
    one = PairSet(one.sources[:1], one.targets[:1], pad_id=0, examples=[])
    tiny = SampledBatches(one, 2, collate_pairs, seed=0, drop_last=True)
    assert [len(b["input_ids"]) for b in _take(tiny, 2)] == [1, 1]


def test_no_rows_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no labelled examples"):
        SampledBatches(seq2seq_rows().sources[:0], 2, collate_pairs, seed=0)
    with pytest.raises(UserError, match="batch_size=0"):
        SampledBatches(seq2seq_rows(), 0, collate_pairs, seed=0)


def _take(batches: SampledBatches, n: int) -> list[dict[str, torch.Tensor]]:
    return [batches.next_batch(0.0) for _ in range(n)]
