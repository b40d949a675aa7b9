"""Save and load tokenizers (tokenizer_training.py trains them), in files Hugging Face's
`AutoTokenizer` reads as is.

A tokenizer is a `tokenizers.Tokenizer` (the Rust library Transformers' fast tokenizers wrap),
so training, the shards stage and a user's `AutoTokenizer` all run the same code and give the
same ids. We write `tokenizer.json` plus the small files older loaders want (`vocab.txt`,
`tokenizer_config.json`, `special_tokens_map.json`); the cost is keeping four files in step,
which is why only `save_tokenizer` writes them, all at once, into an atomic directory.

The corpus reader's Unicode normalisation (NFKC by default) is also the first step of the
tokenizer's normaliser, so text that never passes through the reader (fine-tuning files, a
prompt, a user's `AutoTokenizer` call) is read the same way: without it, full-width "，（）："
in Chinese text are [UNK] outside pretraining. Transformers' named tokenizer classes rebuild
their normaliser from code, so such a tokenizer is declared `PreTrainedTokenizerFast`, which
runs tokenizer.json as written.

Three kinds, one per model family: BERT's WordPiece (special tokens at fixed ids 0-4), GPT-2's
byte-level BPE (`<|endoftext|>` at id 0 is bos, eos and pad) and T5's Unigram (`<pad>` 0, `</s>`
1, `<unk>` 2, the sentinels `<extra_id_0…99>` as the last ids). Our BPE and Unigram pipelines
after the Unicode step are exactly those Transformers' GPT2Tokenizer and T5Tokenizer build in
code (with corpus.normalize=none they are declared so, and tests compare the ids): the cost is
that neither can lower-case. BPE and Unigram put a space (or "▁") before every encoded text,
so sentences encoded one by one (as the shards stage does) join with a space;
on Chinese that space is an artefact of decoding. Encoding a whole corpus goes through
encode.py's `SentenceEncoder` (the same ids, as flat arrays).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

from plmkit.runtime.errors import UserError
from plmkit.runtime.files import atomic_dir

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0, 1, 2, 3, 4
ENDOFTEXT = "<|endoftext|>"  # GPT-2's one special token: bos, eos and pad (id 0)
T5_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2
NUM_SENTINELS = 100  # <extra_id_0> … <extra_id_99>: the last ids, <extra_id_0> the highest
KINDS = ("wordpiece", "bpe", "unigram")
# tokenizer_class in tokenizer_config.json: what AutoTokenizer builds (Transformers ≥ 5 drops "Fast")
HF_CLASS = {"wordpiece": "BertTokenizer", "bpe": "GPT2TokenizerFast", "unigram": "T5TokenizerFast"}


class SpecialIds(NamedTuple):
    """Ids of BERT's special tokens in one vocabulary."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int


class TokenRoles(NamedTuple):
    """What the special tokens of a tokenizer of any kind are for (None: the kind has none)."""

    kind: str  # wordpiece | bpe | unigram
    pad: int | None
    unk: int | None  # None for byte-level BPE: every byte is in the vocabulary
    bos: int | None
    eos: int | None
    cls: int | None = None
    sep: int | None = None
    mask: int | None = None
    sentinels: tuple[int, ...] = ()  # T5 span-corruption ids: <extra_id_0>, <extra_id_1>, …

    def header(self) -> dict[str, int | list[int]]:
        """The roles a kind has, as plain data (shards' header.json)."""
        out: dict[str, int | list[int]] = {
            name: value
            for name, value in self._asdict().items()
            if name not in ("kind", "sentinels") and value is not None
        }
        if self.sentinels:
            out["sentinels"] = list(self.sentinels)
        return out


def bert_pipeline(
    tok: Tokenizer,
    *,
    lowercase: bool,
    strip_accents: bool | None = None,
    chinese_chars: bool = True,
    cls: tuple[str, int] = ("[CLS]", 2),
    sep: tuple[str, int] = ("[SEP]", 3),
) -> None:
    """Attach BERT's normaliser, pre-tokeniser, decoder and [CLS] A [SEP] B [SEP] template."""
    # strip_accents=None follows `lowercase`, exactly as BERT's uncased/cased models do.
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=chinese_chars,
        strip_accents=strip_accents,
        lowercase=lowercase,
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls[0]}:0 $A:0 {sep[0]}:0",
        pair=f"{cls[0]}:0 $A:0 {sep[0]}:0 $B:1 {sep[0]}:1",
        special_tokens=[cls, sep],
    )


def bpe_pipeline(tok: Tokenizer) -> None:
    """GPT-2's byte-level pipeline, as Transformers' GPT2Tokenizer(add_prefix_space=True) builds it."""
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)  # adds no special tokens


def unigram_pipeline(tok: Tokenizer, eos_id: int) -> None:
    """T5's pipeline, as Transformers' T5Tokenizer builds it: "▁" marks word starts, then "</s>"."""
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", eos_id)]
    )


def bert_normalizer(tok: Tokenizer) -> normalizers.BertNormalizer | None:
    """The BertNormalizer of `tok`, alone or after a Unicode form (NFKC/NFC); None otherwise."""
    norm = tok.normalizer
    if isinstance(norm, normalizers.Sequence):
        steps = json.loads(norm.__getstate__())["normalizers"]
        if len(steps) == 2 and steps[0]["type"] in ("NFKC", "NFC"):
            norm = norm[1]
    return norm if isinstance(norm, normalizers.BertNormalizer) else None


def _hf_class(tok: Tokenizer, kind: str) -> str:
    """The tokenizer_class that makes AutoTokenizer give our ids: the kind's own class when it
    would rebuild our normaliser exactly, else the class that runs tokenizer.json as written."""
    own = tok.normalizer is None or (
        kind == "wordpiece" and isinstance(tok.normalizer, normalizers.BertNormalizer)
    )
    return HF_CLASS[kind] if own else "PreTrainedTokenizerFast"


def _hf_config(tok: Tokenizer, roles: TokenRoles) -> tuple[dict, dict]:
    """tokenizer_config.json fields particular to the kind, and the special tokens by name."""
    name = tok.id_to_token
    if roles.kind == "wordpiece":
        ids = special_ids(tok)
        specials = {
            f"{role}_token": name(i) for role, i in zip(SpecialIds._fields, ids, strict=True)
        }
        lowercase = bool(getattr(bert_normalizer(tok), "lowercase", False))
        return {
            "do_lower_case": lowercase,
            "strip_accents": None,
            "tokenize_chinese_chars": True,
            # The generic class would leave token_type_ids out; BERT's inputs need them.
            "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        }, specials
    if roles.kind == "bpe":
        end = name(roles.eos)
        specials = {"bos_token": end, "eos_token": end, "unk_token": end, "pad_token": end}
        return {"add_prefix_space": True, "add_bos_token": False, "errors": "replace"}, specials
    specials = {
        "eos_token": name(roles.eos),
        "unk_token": name(roles.unk),
        "pad_token": name(roles.pad),
    }
    extra = [name(i) for i in roles.sentinels]
    return {"extra_ids": len(extra), "additional_special_tokens": extra}, specials


def save_tokenizer(
    tok: Tokenizer, out_dir: str | Path, *, lowercase: bool | None = None, model_max_length: int
) -> None:
    """Write tokenizer.json, the HF config files (and vocab.txt for WordPiece) atomically into
    `out_dir`. `lowercase` is kept for old callers: the tokenizer's normaliser decides."""
    vocab = tok.get_vocab(with_added_tokens=True)
    by_id = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in by_id] != list(range(len(by_id))):
        raise UserError(f"{out_dir}: tokenizer ids are not contiguous 0..{len(by_id) - 1}")
    roles = token_roles(tok)
    fields, specials = _hf_config(tok, roles)
    if lowercase is not None and fields.get("do_lower_case", False) != lowercase:
        raise ValueError(f"lowercase={lowercase} contradicts the tokenizer's normaliser")
    config = {
        "tokenizer_class": _hf_class(tok, roles.kind),
        **fields,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        **specials,
    }
    with atomic_dir(out_dir, verb="tokenizer") as tmp:
        tok.save(str(tmp / "tokenizer.json"))
        if roles.kind == "wordpiece":
            (tmp / "vocab.txt").write_text("".join(t + "\n" for t in by_id), encoding="utf-8")
        (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")


def _from_vocab_txt(directory: Path) -> Tokenizer:
    """The BERT tokenizer an older HF directory (vocab.txt + tokenizer_config.json) describes."""
    config_path = directory / "tokenizer_config.json"
    config = {}
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{config_path}: not valid JSON ({err})") from None
    try:
        lines = (directory / "vocab.txt").read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise UserError(f"{directory / 'vocab.txt'}: not valid UTF-8 ({err.reason})") from None
    if lines and lines[-1] == "":
        lines.pop()  # the final newline; split("\n") like HF's reader, so U+2028 stays a token
    vocab = {token: i for i, token in enumerate(lines)}
    names = {
        name: config.get(f"{name}_token", default)
        for name, default in zip(SpecialIds._fields, SPECIAL_TOKENS, strict=True)
    }
    unk, cls, sep = names["unk"], names["cls"], names["sep"]
    for token in (unk, cls, sep):
        if token not in vocab:
            raise UserError(f"{directory / 'vocab.txt'}: token '{token}' is not in the vocabulary")
    tok = Tokenizer(models.WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
    # As Transformers does: special tokens written in the text are matched before splitting.
    tok.add_special_tokens([AddedToken(t, special=True) for t in names.values() if t in vocab])
    bert_pipeline(
        tok,
        lowercase=config.get("do_lower_case", True),
        strip_accents=config.get("strip_accents"),
        chinese_chars=config.get("tokenize_chinese_chars", True),
        cls=(cls, vocab[cls]),
        sep=(sep, vocab[sep]),
    )
    return tok


def tokenizer_dir(path: str | Path) -> Path:
    """The folder holding the tokenizer: `path` itself, or its `tokenizer/` (a run or shards dir)."""
    path = Path(path)
    if path.is_file() and path.name == "tokenizer.json":
        return path.parent
    if not path.is_dir():
        raise UserError(f"{path}: no such tokenizer directory")
    for candidate in (path, path / "tokenizer"):
        if (candidate / "tokenizer.json").is_file() or (candidate / "vocab.txt").is_file():
            return candidate
    raise UserError(
        f"{path}: no tokenizer.json or vocab.txt here (train one with `plmkit tokenizer`)"
    )


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def copy_tokenizer_files(source: str | Path, target: str | Path) -> None:
    """Copy the tokenizer files (only those) of `source` into `target`, adding tokenizer.json
    when `source` is an older Hugging Face directory with vocab.txt alone."""
    directory = tokenizer_dir(source)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (directory / name).is_file():
            shutil.copyfile(directory / name, target / name)
    if not (target / "tokenizer.json").is_file():
        load_tokenizer(directory).save(str(target / "tokenizer.json"))


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load ours or any Hugging Face BERT tokenizer dir (tokenizer.json, or vocab.txt alone)."""
    directory = tokenizer_dir(path)
    file = directory / "tokenizer.json"
    if not file.is_file():
        tok = _from_vocab_txt(directory)
    else:
        try:
            tok = Tokenizer.from_file(str(file))
        except Exception as err:  # the Rust loader raises a bare Exception
            reason = (str(err).splitlines() or ["unreadable"])[0][:200]
            raise UserError(f"{file}: cannot load tokenizer ({reason})") from None
    tok.no_truncation()
    tok.no_padding()
    return tok


@functools.lru_cache(maxsize=16)
def configured(tok: Tokenizer, max_length: int = 0, strategy: str = "longest_first",
               stride: int = 0) -> Tokenizer:
    """A copy of `tok` without padding, truncating at `max_length` (0: never), made once per
    tokenizer and setting: copying a 30k-piece tokenizer takes ~30 ms, more than encoding a
    request, so a predictor must not copy per call. The caller's tokenizer keeps its own
    settings; the copy is shared, so never change it."""
    work = Tokenizer.from_str(tok.to_str())
    work.no_padding()
    if max_length:
        work.enable_truncation(max_length, stride=stride, strategy=strategy)
    else:
        work.no_truncation()
    return work


def special_ids(tok: Tokenizer) -> SpecialIds:
    """Look up [PAD] [UNK] [CLS] [SEP] [MASK] by their strings."""
    found = []
    for token in SPECIAL_TOKENS:
        token_id = tok.token_to_id(token)
        if token_id is None:
            raise UserError(
                f"tokenizer has no {token} token (a BERT vocabulary needs all of {', '.join(SPECIAL_TOKENS)})"
            )
        found.append(token_id)
    return SpecialIds(*found)


def kind_of(tok: Tokenizer) -> str:
    """wordpiece, bpe or unigram: the kind of the tokenizer's model."""
    for kind, model in (
        ("wordpiece", models.WordPiece),
        ("bpe", models.BPE),
        ("unigram", models.Unigram),
    ):
        if isinstance(tok.model, model):
            return kind
    raise UserError(
        f"tokenizer model {type(tok.model).__name__} is not supported ({', '.join(KINDS)})"
    )


def token_roles(tok: Tokenizer) -> TokenRoles:
    """The special tokens of a tokenizer of any kind, found by their strings."""
    kind = kind_of(tok)
    if kind == "wordpiece":
        sp = special_ids(tok)
        return TokenRoles(kind, sp.pad, sp.unk, None, None, sp.cls, sp.sep, sp.mask)
    required = (ENDOFTEXT,) if kind == "bpe" else T5_SPECIALS
    ids = [tok.token_to_id(token) for token in required]
    if None in ids:
        missing = required[ids.index(None)]
        raise UserError(f"{kind} tokenizer has no {missing} token (it needs {', '.join(required)})")
    if kind == "bpe":
        return TokenRoles(kind, pad=ids[0], unk=None, bos=ids[0], eos=ids[0])
    sentinels = []
    while (i := tok.token_to_id(f"<extra_id_{len(sentinels)}>")) is not None:
        sentinels.append(i)
    return TokenRoles(
        kind, pad=ids[0], unk=ids[2], bos=None, eos=ids[1], sentinels=tuple(sentinels)
    )


def continuation_mask(tok: Tokenizer) -> np.ndarray:
    """Bool array [vocab_size]: True where the piece continues a word ("##…"), for whole-word masking."""
    prefix = getattr(tok.model, "continuing_subword_prefix", None) or "##"
    mask = np.zeros(tok.get_vocab_size(with_added_tokens=True), dtype=bool)
    for token, token_id in tok.get_vocab(with_added_tokens=True).items():
        if token.startswith(prefix) and len(token) > len(prefix):
            mask[token_id] = True
    return mask


def tokenizer_sha256(path: str | Path) -> str:
    """SHA-256 of tokenizer.json's bytes (path: the file or its folder)."""
    path = Path(path)
    file = path if path.is_file() else tokenizer_dir(path) / "tokenizer.json"
    if not file.is_file():
        raise UserError(f"{file}: no such file (the hash is taken over tokenizer.json)")
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
