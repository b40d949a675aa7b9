"""How well a tokenizer covers text it was not trained on: the coverage table `plmkit tokenizer`
ends with (held-out documents of its corpus, and any `probe_file=`), saved as report.json.

Figures, each over the texts given: the share of tokens that are the unknown token, characters
and words per token, the share of words cut into more than one piece, the share of the
vocabulary used, the rarest pieces that occur, and for CJK text the share of Han characters
kept as a token of their own (what whole-word masking and character-level Chinese models
expect). A "word" is what the tokenizer's own pre-tokenizer cuts (BERT's: whitespace and
punctuation, each Han character alone; GPT-2's and T5's: space-separated runs), so the figures
compare kinds on their own terms; the cost is that "words per token" means something else for
Chinese than for English, which the Han figure makes up for.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer

from plmkit.text.tokenizer import token_roles

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
RAREST = 10


def coverage(tokenizer: Tokenizer, texts: Iterable[str]) -> dict:
    """The coverage figures of `tokenizer` on `texts` (see the module docstring)."""
    unk = token_roles(tokenizer).unk
    counts: Counter[int] = Counter()
    chars = words = split_words = han = han_single = 0
    for text in texts:
        enc = tokenizer.encode(text, add_special_tokens=False)
        chars += len(text)
        counts.update(enc.ids)
        pieces = Counter(w for w in enc.word_ids if w is not None)
        words += len(pieces)
        split_words += sum(1 for n in pieces.values() if n > 1)
        singles = {start for (start, end), i in zip(enc.offsets, enc.ids, strict=True)
                   if end - start == 1 and i != unk}
        for match in HAN.finditer(text):
            han += 1
            han_single += match.start() in singles
    tokens = sum(counts.values())
    vocab = tokenizer.get_vocab_size()
    specials = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    pieces_seen = [(i, n) for i, n in counts.items() if i not in specials]
    rarest = sorted(pieces_seen, key=lambda kv: (kv[1], kv[0]))[:RAREST]
    return {
        "characters": chars,
        "tokens": tokens,
        "words": words,
        "unk_rate": counts[unk] / tokens if tokens and unk is not None else 0.0,
        "chars_per_token": chars / tokens if tokens else 0.0,
        "words_per_token": words / tokens if tokens else 0.0,
        "words_split": split_words / words if words else 0.0,
        "vocabulary_used": len(counts) / vocab if vocab else 0.0,
        "han_characters": han,
        "han_single_token": han_single / han if han else None,
        "rarest": [{"piece": tokenizer.id_to_token(i), "count": n} for i, n in rarest],
    }


def report_table(reports: dict[str, dict]) -> str:
    """A Markdown table, one column per text slice (held-out, probe file ...)."""
    rows = [("characters", "{:,}"), ("tokens", "{:,}"), ("unk_rate", "{:.2%}"),
            ("chars_per_token", "{:.2f}"), ("words_per_token", "{:.2f}"),
            ("words_split", "{:.1%}"), ("vocabulary_used", "{:.1%}"),
            ("han_single_token", "{:.1%}")]
    names = list(reports)
    lines = ["| figure | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for key, form in rows:
        cells = ["–" if reports[n][key] is None else form.format(reports[n][key]) for n in names]
        lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(cells) + " |")
    rarest = [", ".join(f"{r['piece']} ({r['count']})" for r in reports[n]["rarest"][:5])
              for n in names]
    lines.append("| rarest pieces | " + " | ".join(rarest) + " |")
    return "\n".join(lines) + "\n"
