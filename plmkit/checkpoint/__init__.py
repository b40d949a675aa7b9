"""Models to and from disk in the Hugging Face layout; the one map between our weight names and theirs.

A saved model is a plain Hugging Face directory: `config.json`, `model.safetensors` with
Transformers' tensor names, and the tokenizer files. Transformers loads it with
`from_pretrained` unchanged, and `read_checkpoint` reads any Hugging Face directory of a family
we support the same way, so importing a third-party model and reloading our own run are one
code path. No `transformers` import is needed: both formats are plain JSON and safetensors.

Key choice: each family's map is declarative (a table of `Row`s, expanded per layer), so adding
an architecture is a new row, not new code. The cost is that fused QKV weights must be split on
save and joined on load (a row lists several names), and GPT-2's Conv1D weights transposed (a
row says so).

The package, bottom to top: `family.py` defines `Row` and `Family` and the config.json helpers
every family shares; `bert.py`, `electra.py`, `gpt2.py` and `t5.py` each hold one family's map; `disk.py`
keeps the registry of families and does the saving and loading. Import from here.
"""

from plmkit.checkpoint.bert import BERT, BERT_ROWS
from plmkit.checkpoint.disk import (
    ARCHITECTURES,
    FAMILIES,
    MAPS,
    Checkpoint,
    config_from_hf,
    config_to_hf,
    family_of,
    file_family,
    holds,
    load_into,
    read_checkpoint,
    read_hf_config,
    resolve_model_dir,
    save_model,
)
from plmkit.checkpoint.electra import ELECTRA
from plmkit.checkpoint.family import (
    ACT_FROM_HF,
    ACT_TO_HF,
    Family,
    Row,
    activation_from_hf,
    check_heads,
    hf_activation,
    read_fields,
)
from plmkit.checkpoint.gpt2 import GPT2, GPT2_ROWS
from plmkit.checkpoint.t5 import T5, T5_ROWS

__all__ = [
    "ACT_FROM_HF",
    "ACT_TO_HF",
    "ARCHITECTURES",
    "BERT",
    "BERT_ROWS",
    "ELECTRA",
    "FAMILIES",
    "GPT2",
    "GPT2_ROWS",
    "MAPS",
    "T5",
    "T5_ROWS",
    "Checkpoint",
    "Family",
    "Row",
    "activation_from_hf",
    "check_heads",
    "config_from_hf",
    "config_to_hf",
    "family_of",
    "file_family",
    "hf_activation",
    "holds",
    "load_into",
    "read_checkpoint",
    "read_fields",
    "read_hf_config",
    "resolve_model_dir",
    "save_model",
]
