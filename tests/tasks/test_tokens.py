"""Token classification: CoNLL/MSRA/JSONL reading, first-sub-word labels, windows, entities, scores.

Expected values come from the data's published counts (shared/data/README.md), from seqeval,
and from hand-written sentences whose entity offsets can be read off the text; never from our
own output. A throwaway WordPiece tokenizer is trained in-process.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from seqeval.metrics import f1_score, precision_score, recall_score
from tokenizers import Tokenizer
from torch import nn

from plmkit.config import ModelConfig, TokenizerStageConfig
from plmkit.models.heads import TokenClassifier
from plmkit.runtime.errors import UserError
from plmkit.tasks.ner.data import TaggedSentence, read_tagged, retag
from plmkit.tasks.ner.features import (
    IGNORE,
    collate_tagged,
    encode_tagged,
    ner_metrics,
    predict_tags,
    sentence_entities,
    tag_label_set,
    token_classification_loss,
)
from plmkit.tasks.ner.schemes import tags_to_spans
from plmkit.tasks.sampling import SampledBatches
from plmkit.text.tokenizer_training import train_tokenizer

CORPUS = [
    "Johannesburg is in South Africa and Zhang Wei lives there .",
    "The United Nations met in Geneva on Monday .",
    "张伟住在北京市，李娜在上海工作。联合国总部在纽约。",
    "Peter visited Berlin , then Paris , then London .",
] * 5


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    """A small WordPiece vocabulary: rare long words split into several pieces."""
    return train_tokenizer(CORPUS, TokenizerStageConfig(vocab_size=120, min_frequency=1))


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def sentence(words: list[str], tags: list[str], separator: str) -> TaggedSentence:
    return TaggedSentence(tuple(words), tuple(tags), 1, "mem", separator)


class PerfectTagger(nn.Module):
    """Gives each window the logits of its gold labels (looked up by its token ids)."""

    def __init__(self, features, num_labels: int) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.gold = {
            tuple(ids.tolist()): labels for ids, labels in zip(features.input_ids, features.labels)
        }

    def forward(self, input_ids, attention_mask, token_type_ids):
        logits = torch.zeros(*input_ids.shape, self.num_labels)  # (B, T, C)
        for row in range(len(input_ids)):
            n = int(attention_mask[row].sum())
            labels = self.gold[tuple(input_ids[row, :n].tolist())]
            for t, label in enumerate(labels):
                logits[row, t, max(int(label), 0)] = 1.0
        return logits


# ----------------------------------------------------------------------------- real files


def test_conll2003_valid_and_train_match_published_counts(shared_data) -> None:
    valid = read_tagged(shared_data / "conll2003" / "valid.txt", scheme="bio")
    assert len(valid) == 3250
    assert sum(len(s.words) for s in valid) == 51362
    assert valid[0].separator == " " and valid[0].line == 1
    train = read_tagged(shared_data / "conll2003" / "train.txt", scheme="bio")
    assert len(train) == 14041
    counts = Counter(span.type for s in train for span in tags_to_spans(s.tags))
    assert counts == {"PER": 6600, "ORG": 6321, "LOC": 7140, "MISC": 3438}


def test_msra_dev_reads_as_character_level_bmes(shared_data) -> None:
    dev = read_tagged(shared_data / "msra-ner" / "dev.ner", scheme="bmes")
    assert len(dev) == 4636
    assert all(s.separator == "" for s in dev[:50])
    labels = tag_label_set(dev, "bmes")
    assert labels.names[0] == "O" and len(labels) == 1 + 3 * 4
    bio = retag(dev, "bio")
    assert [tags_to_spans(s.tags) for s in bio] == [tags_to_spans(s.tags) for s in dev]
    assert {t[0] for s in bio for t in s.tags} == {"B", "I", "O"}
    with pytest.raises(UserError, match=r"dev.ner:\d+: tag '[EMS]-N[RST]'.*scheme 'bio'.*'bmes'"):
        read_tagged(shared_data / "msra-ner" / "dev.ner", scheme="bio")


# ----------------------------------------------------------------------------- reading errors


def test_docstart_and_blank_lines_split_sentences_with_their_lines(tmp_path) -> None:
    path = write(
        tmp_path,
        "a.txt",
        "-DOCSTART- -X- O\n\nEU B-ORG\nrejects O\n\n\nPeter B-PER\n-DOCSTART- -X- O\nBlair B-PER\n",
    )
    rows = read_tagged(path)
    assert [(s.words, s.line) for s in rows] == [
        (("EU", "rejects"), 3),
        (("Peter",), 7),
        (("Blair",), 9),
    ]
    assert rows[0].where(1) == f"{path}:4"


def test_wrong_column_count_names_file_and_line(tmp_path) -> None:
    path = write(tmp_path, "bad.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\ncall NN O\n")
    with pytest.raises(UserError, match=r"bad.txt:4: expected 4 columns .* found 3"):
        read_tagged(path)


def test_configurable_columns_and_ideographic_space_word(tmp_path) -> None:
    path = write(tmp_path, "c.tsv", "B-PER\tx\t张\nI-PER\tx\t伟\nO\tx\t\u3000\n")
    (row,) = read_tagged(path, token_column=2, tag_column=0)
    assert row.words == ("张", "伟", "\u3000") and row.text == "张伟\u3000"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "the file is empty"),
        ("-DOCSTART- O\n\n", "no sentences"),
        ("word\n", "one column only"),
    ],
)
def test_empty_or_untagged_files_are_user_errors(tmp_path, content: str, match: str) -> None:
    with pytest.raises(UserError, match=match):
        read_tagged(write(tmp_path, "e.txt", content))


def test_jsonl_rows_and_their_errors(tmp_path) -> None:
    good = write(tmp_path, "g.jsonl", '{"tokens": ["Peter", "ran"], "tags": ["B-PER", "O"]}\n')
    assert read_tagged(good)[0].tags == ("B-PER", "O")
    bad = write(tmp_path, "b.jsonl", '\n{"tokens": ["a", "b"], "tags": ["O"]}\n')
    with pytest.raises(UserError, match=r"b.jsonl:2: 2 tokens but 1 tags"):
        read_tagged(bad)


def test_dev_type_absent_from_training_is_a_clear_error(tmp_path, tokenizer) -> None:
    train = read_tagged(write(tmp_path, "train.txt", "Peter B-PER\nran O\n"))
    dev = read_tagged(write(tmp_path, "dev.txt", "Peter B-PER\n\nin O\nParis B-LOC\n"))
    labels = tag_label_set(train, "bio")
    with pytest.raises(
        UserError, match=r"dev.txt:4: tag 'B-LOC': entity type 'LOC' does not occur"
    ):
        encode_tagged(tokenizer, dev, 32, labels)


# ----------------------------------------------------------------------------- alignment and offsets


def test_only_first_sub_word_is_labelled(tokenizer) -> None:
    words = ["Johannesburg", "is", "in", "South", "Africa"]
    assert len(tokenizer.encode("Johannesburg", add_special_tokens=False).ids) > 1
    row = sentence(words, ["B-LOC", "O", "O", "B-LOC", "I-LOC"], " ")
    labels = tag_label_set([row], "bio")
    features = encode_tagged(tokenizer, [row], 64, labels)
    (ids,), (lab,), (word_index,) = features.input_ids, features.labels, features.word_index
    pieces = [tokenizer.encode(w, add_special_tokens=False).ids for w in words]
    assert ids.tolist() == [2, *sum(pieces, []), 3]
    firsts = np.cumsum([1] + [len(p) for p in pieces[:-1]])
    assert np.flatnonzero(lab != IGNORE).tolist() == firsts.tolist()
    assert [labels.names[i] for i in lab[firsts]] == list(row.tags)
    assert word_index[firsts].tolist() == list(range(len(words)))


@pytest.mark.parametrize("max_length", [64, 6])  # 6: every sentence is cut into several windows
def test_predictions_map_back_to_exact_character_offsets(tokenizer, max_length: int) -> None:
    english = sentence(
        ["Johannesburg", "is", "in", "South", "Africa", "and", "Zhang", "Wei", "lives", "there"],
        ["B-LOC", "O", "O", "B-LOC", "I-LOC", "O", "B-PER", "I-PER", "O", "O"],
        " ",
    )
    chinese_text = "张伟住在北京市，联合国总部在纽约。"
    tags = ["O"] * len(chinese_text)
    for kind, start, end in (("PER", 0, 2), ("LOC", 4, 7), ("ORG", 8, 11), ("LOC", 14, 16)):
        tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    chinese = sentence(list(chinese_text), tags, "")
    rows = [english, chinese]
    labels = tag_label_set(rows, "bio")
    features = encode_tagged(tokenizer, rows, max_length, labels)
    assert (len(features) > len(rows)) == (max_length == 6)
    assert all(len(ids) <= max_length for ids in features.input_ids)
    predicted = predict_tags(PerfectTagger(features, len(labels)), features, labels, batch_size=3)
    assert predicted == [list(english.tags), tags]
    found = [
        [(e.type, e.start, e.end, e.text) for e in sentence_entities(r, p)]
        for r, p in zip(rows, predicted)
    ]
    text = english.text
    assert found[0] == [
        ("LOC", 0, 12, "Johannesburg"),
        ("LOC", text.index("South"), text.index(" and"), "South Africa"),
        ("PER", text.index("Zhang"), text.index(" lives"), "Zhang Wei"),
    ]
    assert found[1] == [
        ("PER", 0, 2, "张伟"),
        ("LOC", 4, 7, "北京市"),
        ("ORG", 8, 11, "联合国"),
        ("LOC", 14, 16, "纽约"),
    ]
    for entities, row in zip(found, rows):
        assert all(row.text[start:end] == span for _, start, end, span in entities)


def test_word_with_no_token_is_counted_and_predicted_o(tokenizer) -> None:
    row = sentence(["Peter", "\x07", "ran"], ["B-PER", "O", "O"], " ")
    labels = tag_label_set([row], "bio")
    features = encode_tagged(tokenizer, [row], 16, labels)
    assert features.unaligned == 1
    predicted = predict_tags(PerfectTagger(features, len(labels)), features, labels)
    assert predicted == [["B-PER", "O", "O"]]


# ----------------------------------------------------------------------------- scores and training


def test_ner_metrics_equal_seqeval_and_ignore_the_scheme() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-PER"], ["B-ORG", "O"]]
    scores = ner_metrics(gold, pred)
    assert scores["precision"] == pytest.approx(precision_score(gold, pred)) == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(recall_score(gold, pred))
    assert scores["f1"] == pytest.approx(f1_score(gold, pred))
    assert scores["LOC_f1"] == 0.0 and scores["ORG_f1"] == 1.0
    bmes_gold = [["B-PER", "E-PER", "O", "S-LOC"], ["S-ORG", "O"]]
    bmes_pred = [["B-PER", "E-PER", "O", "S-PER"], ["S-ORG", "O"]]
    assert ner_metrics(bmes_gold, bmes_pred) == scores


def test_tiny_tagger_loss_goes_down(tokenizer, single_thread) -> None:
    rows = [
        sentence(["Peter", "visited", "Berlin", "."], ["B-PER", "O", "B-LOC", "O"], " "),
        sentence(["Zhang", "Wei", "lives", "there"], ["B-PER", "I-PER", "O", "O"], " "),
    ]
    labels = tag_label_set(rows, "bio")
    features = encode_tagged(tokenizer, rows, 32, labels)
    cfg = ModelConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        max_position=64,
        dropout=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(0)
    model = TokenClassifier(cfg, len(labels))
    batches = SampledBatches(features, 2, collate_tagged, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, metrics = token_classification_loss(model, batches.next_batch(0.0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses
    assert metrics["acc"] == 1.0
    assert predict_tags(model, features, labels) == [list(r.tags) for r in rows]


def test_ner_metrics_with_no_entities_anywhere_are_zero_and_quiet(recwarn) -> None:
    assert ner_metrics([["O", "O"]], [["O", "O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert not recwarn.list
