"""NER prediction API: a fine-tuned token classifier → entities with character offsets in raw text.

`Tagger.load` reads a plmkit NER run or any Hugging Face `BertForTokenClassification` directory
(its id2label gives the tags, BIO unless plmkit recorded another scheme). Raw text is cut into
words by one rule, each CJK character a word, each run of letters or digits a word, any other
non-space character a word, so entity offsets point into the text exactly as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from plmkit.checkpoint import load_into, read_checkpoint, resolve_model_dir
from plmkit.models.heads import TokenClassifier
from plmkit.runtime.devices import pick_device
from plmkit.runtime.errors import UserError
from plmkit.tasks.classification.features import LabelSet
from plmkit.tasks.ner.data import TaggedSentence
from plmkit.tasks.ner.features import encode_tagged, predict_tags
from plmkit.tasks.ner.schemes import tags_to_spans
from plmkit.text.tokenizer import load_tokenizer

ARCHITECTURE = "BertForTokenClassification"
_WORDS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+|\S", re.UNICODE)


@dataclass(frozen=True)
class Entity:
    """One entity found in a text: type, character span [start, end) and the text there."""

    type: str
    start: int
    end: int
    text: str


class Tagger:
    """A loaded token classifier with its tokenizer and tag set."""

    def __init__(self, model: TokenClassifier, tokenizer, labels: LabelSet, max_length: int,
                 device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        self.device = device

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Tagger:
        """Load a fine-tuned NER directory (or a run directory holding final/)."""
        model_dir = resolve_model_dir(path)
        checkpoint = read_checkpoint(model_dir)
        labels = LabelSet.from_config(checkpoint.hf_config, f"{model_dir}/config.json")
        model = TokenClassifier(checkpoint.cfg, len(labels))
        load_into(model, checkpoint, require_heads=True, architecture=ARCHITECTURE)
        info = checkpoint.hf_config.get("plmkit_task") or {}
        return cls(model, load_tokenizer(model_dir), labels, info.get("max_length", 128),
                   pick_device(device))

    def tag_sentences(self, sentences: list[TaggedSentence]) -> list[list[str]]:
        """One predicted tag per word of every sentence."""
        features = encode_tagged(self.tokenizer, sentences, self.max_length, None)
        return predict_tags(self.model, features, self.labels, 64, self.device)

    def predict(self, texts: list[str]) -> list[list[Entity]]:
        """The entities of each raw text, with offsets into that text."""
        words_of = [list(_WORDS.finditer(text)) for text in texts]
        for i, words in enumerate(words_of):
            if not words:
                raise UserError(f"predict: text {i + 1} is empty")
        sentences = [TaggedSentence(tuple(m.group() for m in words), None, i + 1)
                     for i, words in enumerate(words_of)]
        out = []
        for text, words, tags in zip(texts, words_of, self.tag_sentences(sentences), strict=True):
            spans = tags_to_spans(tags)
            out.append([Entity(s.type, words[s.start].start(), words[s.end - 1].end(),
                               text[words[s.start].start() : words[s.end - 1].end()]) for s in spans])
        return out
