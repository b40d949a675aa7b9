"""Generation API: a GPT-style or T5-style model directory → text for raw prompts or sources.

`Generator.load` (= `plmkit.load_generator`) reads a plmkit run or any Hugging Face
`GPT2LMHeadModel` / `T5ForConditionalGeneration` directory through the task registry. A
decoder *continues* each prompt (the output is the new text only); an encoder-decoder
*transforms* each source (translation, summaries). Prompts are left-padded into one batch so rows of different lengths decode
together, which is what models/generate.py expects.
"""

from __future__ import annotations

from pathlib import Path

import torch

from plmkit.checkpoint import read_hf_config, resolve_model_dir
from plmkit.config import GenerationConfig, check_generation_config
from plmkit.models.decoder import CausalLM
from plmkit.models.generate import CausalDecoding, Seq2SeqDecoding, generate
from plmkit.models.seq2seq import Seq2SeqLM
from plmkit.runtime.errors import UserError
from plmkit.tasks.contract import TaskModel
from plmkit.tasks.lm.task import LM
from plmkit.tasks.registry import family_of, load_task_model
from plmkit.tasks.seq2seq.task import SEQ2SEQ
from plmkit.text.tokenizer import token_roles

MODES = ("auto", "continue", "transform")


class Generator:
    """A loaded decoder or encoder-decoder with its tokenizer, ready to generate."""

    def __init__(self, task_model: TaskModel) -> None:
        self.task_model = task_model
        self.model: CausalLM | Seq2SeqLM = task_model.model
        self.tokenizer = task_model.tokenizer
        self.source = str(task_model.path)
        self.device = task_model.device
        self.mode = "continue" if task_model.family is LM else "transform"
        settings = task_model.settings
        # A decoder's settings are its generation defaults; an encoder-decoder's also say how
        # long a source it reads: relative positions set no window, but attention is quadratic,
        # so it reads at most what it was fine-tuned on (or its max_position) unless told to cut.
        self.defaults: GenerationConfig = settings if task_model.family is LM else settings.generation
        self.max_source = 0 if task_model.family is LM else settings.max_length

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Generator:
        """Load a GPT-style or T5-style model directory (or a run directory holding final/)."""
        family = family_of(read_hf_config(path))
        if family not in (LM, SEQ2SEQ):
            raise UserError(f"{resolve_model_dir(path)}: a BERT encoder cannot generate text; use a "
                            "GPT-style (objective.kind=clm) or T5-style (objective.kind=span) model")
        return cls(load_task_model(path, device, family=family))

    def check_mode(self, mode: str) -> None:
        """`continue` needs a decoder, `transform` an encoder-decoder; `auto` takes the model's."""
        if mode not in MODES:
            raise UserError(f"generate: mode '{mode}': use one of {', '.join(MODES)}")
        if mode != "auto" and mode != self.mode:
            kind = "a decoder (GPT)" if mode == "continue" else "an encoder-decoder (T5)"
            raise UserError(f"generate: mode '{mode}' needs {kind}, but {self.source} is "
                            f"{'a GPT-style decoder' if self.mode == 'continue' else 'a T5-style encoder-decoder'}")

    def generate(self, texts: list[str], cfg: GenerationConfig | None = None, *,
                 max_input_tokens: int = 0, mode: str = "auto") -> list[str]:
        """Generated text for each input, in order (new text only for a decoder)."""
        self.check_mode(mode)
        cfg = cfg or self.defaults
        check_generation_config(cfg)
        if not texts:
            return []
        ids = self._encode(texts, max_input_tokens)
        width = max(len(row) for row in ids)
        pad = self.model.pad_token_id if isinstance(self.model, Seq2SeqLM) else 0
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for i, row in enumerate(ids):
            if self.mode == "continue":  # left padding: each prompt ends at the last column
                input_ids[i, width - len(row):], mask[i, width - len(row):] = torch.tensor(row), 1
            else:
                input_ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        if self.mode == "continue":
            decoding = CausalDecoding(self.model, input_ids, mask)
        else:
            decoding = Seq2SeqDecoding(self.model, input_ids, mask)
        out = generate(decoding, cfg)
        skip = not cfg.show_special_tokens
        return [self.tokenizer.decode(tokens[:n], skip_special_tokens=skip)
                for tokens, n in zip(out.tokens.tolist(), out.lengths.tolist(), strict=True)]

    def _encode(self, texts: list[str], max_input_tokens: int) -> list[list[int]]:
        roles = token_roles(self.tokenizer)
        rows = []
        for i, text in enumerate(texts):
            if not text.strip():
                raise UserError(f"generate: input {i + 1} is empty")
            ids = self.tokenizer.encode(text, add_special_tokens=False).ids
            if self.mode == "transform" and roles.eos is not None:
                ids = ids[: max_input_tokens - 1] if max_input_tokens else ids
                ids = [*ids, roles.eos]
                if not max_input_tokens and self.max_source and len(ids) > self.max_source:
                    raise UserError(
                        f"generate: input {i + 1} is {len(ids)} tokens; this model reads at most "
                        f"{self.max_source} (max_input_tokens={self.max_source} cuts longer inputs)")
            elif max_input_tokens and len(ids) > max_input_tokens:
                ids = ids[-max_input_tokens:]  # a prompt keeps its end: that is what continues
            rows.append(ids)
        return rows
