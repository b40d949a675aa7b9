"""`plmkit generate`: prompts (or sources) + a GPT-style or T5-style model → generated text, as JSON lines."""

from __future__ import annotations

from plmkit.config import GenerateConfig, check_generation_config
from plmkit.runtime.errors import UserError
from plmkit.runtime.files import write_json_lines
from plmkit.serve.generator import Generator
from plmkit.tasks.inputs import read_lines


def run(cfg: GenerateConfig) -> list[dict]:
    """Generate for `cfg.text` or each line of `cfg.file`; prints or writes JSONL."""
    if not cfg.text and not cfg.file:
        raise UserError("generate: nothing to do (give text=... or file=...)")
    if cfg.batch_size < 1:
        raise UserError(f"config batch_size: must be ≥ 1, got {cfg.batch_size}")
    if cfg.max_input_tokens < 0:
        raise UserError(f"config max_input_tokens: must be ≥ 0, got {cfg.max_input_tokens}")
    check_generation_config(cfg.generation)
    texts = list(cfg.text)
    if cfg.file:
        texts = read_lines(cfg.file, paired=False)[0]
        if not texts:
            raise UserError(f"{cfg.file}: no text to generate from")
    generator = Generator.load(cfg.model)
    generator.check_mode(cfg.mode)
    outputs: list[str] = []
    for start in range(0, len(texts), cfg.batch_size):
        try:
            outputs += generator.generate(texts[start : start + cfg.batch_size], cfg.generation,
                                          max_input_tokens=cfg.max_input_tokens, mode=cfg.mode)
        except ValueError as err:  # models/generate.py: a prompt the model cannot continue
            raise UserError(f"generate: {err}") from None
    results = [{"input": t, "output": o} for t, o in zip(texts, outputs, strict=True)]
    write_json_lines(results, cfg.output)
    return results
