"""text/pii.py, `prepare scrub_pii=true` and `plmkit scrub`: the PII scrubber, measured on a test set
written for plmkit (tests/data/pii/: hand-written English and Chinese sentences, each expected
span between ⟦ and ⟧, and hard negatives: years, dates, prices, ISBNs, order numbers, versions,
arithmetic, Chinese numerals, numbers one check digit away from an ID, a card or an IBAN).

The positives' check digits were computed with python-stdnum (outside this repo) and are checked
again here by formulas written apart from pii.py's (digit sums for Luhn, 2^(17-i) mod 11 for IDs,
a running remainder for IBANs), so a wrong value in the file fails whatever pii.py says.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import re
import unicodedata
from pathlib import Path

import pytest

from plmkit.cli import main
from plmkit.config import PrepareConfig, TokenizerStageConfig
from plmkit.runtime.outputs import MARKER
from plmkit.text import shards
from plmkit.text.pii import KINDS, count_kinds, find_pii, iban_valid, id_cn_valid, luhn_valid, scrub
from plmkit.text.shards import ShardReader, prepare_shards
from plmkit.text.tokenizer import load_tokenizer, save_tokenizer
from plmkit.text.tokenizer_training import train_tokenizer
from tests.test_bad_input_files import checksums

DATA = Path(__file__).resolve().parent / "data" / "pii"
MARK = re.compile(r"⟦(.*?)⟧")


def load_cases(name: str) -> list[tuple[str, str, str, list[tuple[str, int, int]]]]:
    """(lang, kind or category, raw sentence, expected spans) per row, markers removed."""
    rows = []
    for number, line in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        lang, label, text = line.split("\t")
        assert lang in ("en", "zh"), f"{name}:{number}: language {lang!r}"
        raw, spans, at = "", [], 0
        for m in MARK.finditer(text):
            raw += text[at : m.start()]
            start = len(raw)
            raw += m.group(1)
            spans.append((label, start, len(raw)))
            at = m.end()
        rows.append((lang, label, raw + text[at:], spans))
    return rows


POSITIVES = load_cases("positives.tsv")
NEGATIVES = load_cases("negatives.tsv")


def test_the_test_set_has_40_positives_per_kind_in_both_languages_and_200_hard_negatives() -> None:
    for kind in KINDS:
        rows = [(lang, spans) for lang, label, _, spans in POSITIVES if label == kind]
        assert sum(len(spans) for _, spans in rows) >= 40, kind
        assert {lang for lang, _ in rows} == {"en", "zh"}, kind
        assert all(spans for _, spans in rows), f"{kind}: a positive row without a ⟦span⟧"
    assert len(NEGATIVES) >= 200 and not any(spans for *_, spans in NEGATIVES)
    assert {lang for lang, *_ in NEGATIVES} == {"en", "zh"}


# ----------------------------------------------------------------------------- independent checks


def _luhn_by_digit_sums(digits: str) -> bool:
    doubled = "".join(str(int(d) * (1 + i % 2)) for i, d in enumerate(reversed(digits)))
    return sum(map(int, doubled)) % 10 == 0


def _id_check_by_powers(first17: str) -> str:
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def _iban_by_running_remainder(compact: str) -> bool:
    remainder = 0
    for ch in compact[4:] + compact[:4]:
        remainder = (remainder * (100 if ch.isalpha() else 10) + int(ch, 36)) % 97
    return remainder == 1


def _values(kind: str) -> list[str]:
    return [unicodedata.normalize("NFKC", raw[s:e]) for _, label, raw, spans in POSITIVES
            if label == kind for _, s, e in spans]


def test_positive_values_pass_checks_written_apart_from_pii_py() -> None:
    for value in _values("card"):
        assert _luhn_by_digit_sums(re.sub(r"[ -]", "", value)), value
    for value in _values("id_cn"):
        assert _id_check_by_powers(value[:17]) == value[17].upper(), value
    for value in _values("iban"):
        assert _iban_by_running_remainder(value.replace(" ", "")), value
    for value in _values("ip"):
        ipaddress.ip_address(value)  # raises on a malformed address


def test_validators_agree_with_published_examples() -> None:
    # Test card numbers the card networks publish, one digit changed for the negatives.
    for number in ("4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"):
        assert luhn_valid(number) and not luhn_valid(number[:-1] + str((int(number[-1]) + 1) % 10))
    # GB 11643's example ID, and the IBAN registry's examples for Germany and the UK.
    assert id_cn_valid("11010519491231002X") and not id_cn_valid("110105194912310021")
    assert not id_cn_valid("110105194902300026")  # 30 February
    assert iban_valid("DE89370400440532013000") and iban_valid("GB82WEST12345698765432")
    assert not iban_valid("DE89370400440532013001") and not iban_valid("DE8937040044053201300")


# ----------------------------------------------------------------------------- the test set


def _score() -> dict[str, tuple[int, int, int]]:
    """kind → (true positives, false positives, false negatives), exact (kind, start, end) matches."""
    tally = {kind: [0, 0, 0] for kind in KINDS}
    for _, _, raw, expected in POSITIVES + NEGATIVES:
        found = {(s.kind, s.start, s.end) for s in find_pii(raw)}
        for kind, _, _ in found & set(expected):
            tally[kind][0] += 1
        for kind, _, _ in found - set(expected):
            tally[kind][1] += 1
        for kind, _, _ in set(expected) - found:
            tally[kind][2] += 1
    return {kind: tuple(t) for kind, t in tally.items()}


def test_recall_and_precision_on_the_test_set_are_at_least_99_percent() -> None:
    tally = _score()
    figures = ", ".join(f"{k} recall {tp / max(tp + fn, 1):.1%} precision {tp / max(tp + fp, 1):.1%}"
                        for k, (tp, fp, fn) in tally.items())
    tp, fp, fn = (sum(t[i] for t in tally.values()) for i in range(3))
    assert tp / (tp + fn) >= 0.99 and tp / (tp + fp) >= 0.99, figures
    for kind, (tp, fp, fn) in tally.items():  # at most one miss or false hit in any kind
        assert tp / (tp + fn) >= 0.97 and tp / max(tp + fp, 1) >= 0.97, f"{kind}: {figures}"


def test_offsets_point_into_the_raw_text_when_nfkc_changes_its_length() -> None:
    raw = "电话：１３８１２３４５６７８，邮箱ｚｈａｎｇ＠１６３．ｃｏｍ；oﬃce@example.com ①"
    spans = find_pii(raw)
    assert [(s.kind, raw[s.start : s.end]) for s in spans] == [
        ("phone", "１３８１２３４５６７８"), ("email", "ｚｈａｎｇ＠１６３．ｃｏｍ"),
        ("email", "oﬃce@example.com"),  # ﬃ is one raw character, three in NFKC
    ]
    assert scrub(raw)[0] == "电话：[PHONE]，邮箱[EMAIL]；[EMAIL] ①"


def test_pii_between_chinese_characters_is_found_where_backslash_b_sees_none() -> None:
    text = "电话13812345678联系，邮箱zhangsan@163.com或身份证11010519491231002X办理"
    assert re.search(r"\b1[3-9]\d{9}\b", text) is None  # \b counts 话 and 联 as word characters
    scrubbed, spans = scrub(text)
    assert scrubbed == "电话[PHONE]联系，邮箱[EMAIL]或身份证[ID_CN]办理"
    assert count_kinds(spans) == {**dict.fromkeys(KINDS, 0), "phone": 1, "email": 1, "id_cn": 1}
    assert find_pii("订单2024120412345678已发货") == []  # 16 digits, no card brand, no phone


# ----------------------------------------------------------------------------- prepare scrub_pii=true

DOCS = [f"第{i}位客户的邮箱是user{i}@example.com，电话1381234{i:04d}。\nCall +44 20 7946 {i:04d} today."
        for i in range(40)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pii-prepare")
    (root / "corpus.txt").write_text("\n\n".join(DOCS) + "\n", encoding="utf-8")
    texts = DOCS + [scrub(doc)[0] for doc in DOCS]  # the placeholders' characters, too
    save_tokenizer(train_tokenizer(iter(texts), TokenizerStageConfig(vocab_size=300, min_frequency=1)),
                   root / "tok", lowercase=True, model_max_length=128)
    return root


def _prepare(root: Path, output: str, scrub_pii: bool) -> tuple[dict, str]:
    cfg = PrepareConfig(inputs=[str(root / "corpus.txt")], tokenizer=str(root / "tok"),
                        output=str(root / output), val_fraction=0.2, workers=2, scrub_pii=scrub_pii)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shards, "_CHUNK_CHARS", 300)  # many chunks, spread over both worker processes
        header = prepare_shards(cfg, progress=False)
    tok = load_tokenizer(root / "tok")
    text = " ".join(tok.decode(ShardReader(root / output, split).tokens.tolist())
                    for split in ("train", "val"))
    return header, text.replace(" ", "")


def test_prepare_scrub_pii_counts_in_the_header_and_shards_hold_placeholders(tiny: Path) -> None:
    header, text = _prepare(tiny, "scrubbed", scrub_pii=True)
    assert header["pii"] == {**dict.fromkeys(KINDS, 0), "email": 40, "phone": 80}
    assert json.loads((tiny / "scrubbed" / "header.json").read_text())["pii"] == header["pii"]
    assert text.count("[email]") == 40 and text.count("[phone]") == 80
    assert "example.com" not in text and "13812340007" not in text and "79460007" not in text


def test_prepare_without_scrub_pii_keeps_the_text_and_writes_no_counts(tiny: Path) -> None:
    header, text = _prepare(tiny, "plain", scrub_pii=False)
    assert "pii" not in header
    assert "user7@example.com" in text and "13812340007" in text and "[email]" not in text


# ----------------------------------------------------------------------------- plmkit scrub


def test_scrub_verb_writes_copies_under_the_same_names_and_a_report(tmp_path: Path) -> None:
    src = tmp_path / "notes"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("Mail bob@example.org or call (212) 555-0147.\nNothing here.\n",
                               encoding="utf-8")
    with gzip.open(src / "sub" / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("卡号4111 1111 1111 1111，IP 192.168.1.1\n")
    out = tmp_path / "out"
    assert main(["scrub", f"inputs={src}", f"output={out}", "hits=true"]) == 0
    assert (out / "a.txt").read_text(encoding="utf-8") == "Mail [EMAIL] or call [PHONE].\nNothing here.\n"
    with gzip.open(out / "sub" / "b.txt.gz", "rt", encoding="utf-8") as f:
        assert f.read() == "卡号[CARD]，IP [IP]\n"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["total"] == {**dict.fromkeys(KINDS, 0), "email": 1, "phone": 1, "card": 1, "ip": 1}
    assert report["files"]["a.txt"] == {"lines": 2, "pii": {**dict.fromkeys(KINDS, 0), "email": 1,
                                                             "phone": 1}}
    assert "| sub/b.txt.gz | 1 |" in (out / "report.md").read_text(encoding="utf-8")
    hits = [json.loads(line) for line in (out / "hits.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(h["file"], h["line"], h["kind"], h["text"]) for h in hits] == [
        ("a.txt", 1, "email", "bob@example.org"), ("a.txt", 1, "phone", "(212) 555-0147"),
        ("sub/b.txt.gz", 1, "card", "4111 1111 1111 1111"), ("sub/b.txt.gz", 1, "ip", "192.168.1.1")]
    first = (src / "a.txt").read_text(encoding="utf-8").splitlines()[0]
    assert first[hits[1]["start"] : hits[1]["end"]] == "(212) 555-0147"
    assert main(["scrub", f"inputs={src}", f"output={out}"]) == 2  # its own output: needs overwrite
    assert main(["scrub", f"inputs={src}", f"output={out}", "overwrite=true"]) == 0
    assert not (out / "hits.jsonl").exists()


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


BINARY = b"ok\nab" + bytes(3) + b"cd"
LATIN1 = b"fine\nna\xefve\n"


def _mine(tmp: Path) -> Path:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("years of work\n")
    return tmp / "mine"


BAD = [  # (case, argv builder, fragments the one line must hold)
    ("no inputs", lambda t: ["scrub", f"output={t / 'out'}"], ["no inputs given"]),
    ("a missing input", lambda t: ["scrub", f"inputs={t / 'nope.txt'}", f"output={t / 'out'}"],
     ["nope.txt", "no such file"]),
    ("a glob matching nothing", lambda t: ["scrub", f"inputs={t / '*.txt'}", f"output={t / 'out'}"],
     ["glob matches no files"]),
    ("a binary file", lambda t: ["scrub", f"inputs={_write(t, 'in/x.bin', BINARY)}",
                                 f"output={t / 'out'}"], ["x.bin:2", "NUL byte"]),
    ("a file that is not UTF-8", lambda t: ["scrub", f"inputs={_write(t, 'in/l1.txt', LATIN1)}",
                                            f"output={t / 'out'}"], ["l1.txt:2", "not valid UTF-8"]),
    ("an output plmkit did not write", lambda t: ["scrub", f"inputs={_write(t, 'in/a.txt', b'a@b.com')}",
                                                  f"output={_mine(t)}"], ["not written by plmkit"]),
    ("the output inside the input", lambda t: ["scrub", f"inputs={_write(t, 'in/a.txt', b'x').parent}",
                                               f"output={t / 'in' / 'out'}"], ["inside the input"]),
    ("an input named like the report", lambda t: ["scrub", f"inputs={_write(t, 'in/report.json', b'{}')}",
                                                  f"output={t / 'out'}"], ["report.json", "collide"]),
]


@pytest.mark.parametrize(("case", "build", "fragments"), BAD, ids=[c[0] for c in BAD])
def test_scrub_bad_input_is_one_line_and_writes_nothing(case: str, build, fragments: list[str],
                                                        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = build(tmp_path)
    before = checksums(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (case, err)
    for fragment in fragments:
        assert fragment in err, f"{case}: {fragment!r} not in {err!r}"
    assert checksums(tmp_path) == before, f"{case}: files changed or appeared"
    assert not any(p.name == MARKER for p in tmp_path.rglob("*") if "mine" not in p.parts)
