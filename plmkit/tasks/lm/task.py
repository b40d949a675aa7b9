"""GPT-style language models, as a (load-only) task contract.

plmkit pretrains them (`objective.kind=clm`) rather than fine-tuning them as a task, so the
family only says how one is built and read: `generate` continues prompts with it and
`evaluate` scores its perplexity on raw text (tasks/lm/perplexity.py). Its settings are the
generation defaults a directory records (GenerationConfig's own otherwise).
"""

from __future__ import annotations

from pathlib import Path

from plmkit.config import GenerationConfig, ModelConfig, from_dict
from plmkit.models.decoder import CausalLM
from plmkit.tasks.contract import TaskFamily


def settings_from_config(hf: dict, cfg: ModelConfig, model_dir: Path) -> GenerationConfig:
    saved = (hf.get("plmkit_task") or {}).get("generation")
    return from_dict(GenerationConfig, saved, "plmkit_task.generation")


LM = TaskFamily(
    name="lm",
    tasks=(),
    architectures=("GPT2LMHeadModel",),
    model_family="gpt",
    description="a GPT-style language model",
    build=lambda cfg, settings: CausalLM(cfg),
    settings_from_config=settings_from_config,
)
