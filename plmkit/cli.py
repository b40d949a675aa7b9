"""`plmkit VERB [RECIPE.yaml] [key=value ...]`: one subcommand per stage, a thin layer over stages/.

Each verb resolves its config (defaults ← the recipe's section for the verb ← dotted
overrides) and calls `stages.<verb>.run(cfg)`, the same function the Python API exposes.
`--help` lists every field with its default and the comment from config/__init__.py, so the help
can never drift from the code. A `UserError` prints one line and exits 2, with no traceback;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterator
from typing import Any

from plmkit import config as C
from plmkit.runtime.errors import UserError
from plmkit.runtime.lock import release_all
from plmkit.runtime.processes import world_size

VERBS: dict[str, tuple[type, str, str]] = {
    # verb: (config class, stages module, one-line description)
    "tokenizer": (C.TokenizerStageConfig, "tokenizer", "train a tokenizer (WordPiece, byte-BPE, Unigram) on raw text"),
    "prepare": (C.PrepareConfig, "prepare", "tokenize raw text into memory-mapped token shards"),
    "scrub": (C.ScrubConfig, "scrub", "copies of text files with e-mails, phones, IDs, cards, IBANs, URLs, IPs replaced, and a report"),
    "pretrain": (C.PretrainConfig, "pretrain", "pretrain BERT (MLM + NSP), GPT (causal LM) or T5 (span corruption) on shards"),
    "finetune": (C.FinetuneConfig, "finetune", "fine-tune a task head: classification, regression, NER, QA, matching, seq2seq"),
    "evaluate": (C.EvaluateConfig, "evaluate", "score a fine-tuned model on a labelled table"),
    "distill": (C.DistillConfig, "distill", "distil a fine-tuned classifier or tagger into a smaller student"),
    "export": (C.ExportConfig, "export", "write a model as a Hugging Face directory, or as ONNX / int8 with a gate table"),
    "predict": (C.PredictConfig, "predict", "labels, entities, answers or similarities for raw text"),
    "generate": (C.GenerateConfig, "generate", "continue prompts (GPT) or transform sources (T5)"),
    "serve": (C.ServeConfig, "serve", "an HTTP API and web page for any fine-tuned model, with dynamic batching"),
    "inspect": (C.InspectConfig, "inspect", "attention maps and token attributions of one input, as PNG heat maps and JSON"),
    "probe": (C.ProbeConfig, "probe", "probe a model: bias (minimal pairs), robustness (metric under input noise) or memorization (canary exposure)"),
    "demo": (C.DemoConfig, "recipe", "the built-in Chinese demo: raw text → pretrain → fine-tune → table"),
}

EXAMPLES = """examples:
  plmkit tokenizer inputs=corpus.txt vocab_size=8000 output=tok
  plmkit prepare inputs=corpus.txt tokenizer=tok output=shards
  plmkit scrub inputs=corpus.txt output=scrubbed   # or: plmkit prepare ... scrub_pii=true
  plmkit pretrain recipes/tiny-cpu.yaml train.max_steps=200 output=runs/pre
  plmkit finetune init=runs/pre train_file=train.tsv dev_file=dev.tsv output=runs/cls
  plmkit evaluate model=runs/cls file=test.tsv
  plmkit evaluate --suite suites/zh.yaml init=runs/demo/hf-model
  plmkit predict model=runs/cls text='a fine film'
  plmkit distill teacher=runs/cls train_file=train.tsv dev_file=dev.tsv output=runs/small
  plmkit export model=runs/small format=onnx,int8 eval_file=dev.tsv output=exported
  plmkit generate model=runs/gpt text='The history of' generation.max_new_tokens=30
  plmkit serve model=runs/cls port=8000   # then open http://127.0.0.1:8000/
  plmkit inspect model=runs/cls text='a fine film' output=look   # attention.png, attributions.png
  plmkit probe bias model=runs/pre file=crows_pairs_anonymized.csv
  plmkit probe robustness model=runs/cls file=dev.tsv
  plmkit probe memorization model=runs/gpt shards=shards   # after prepare canaries=40
"""


def field_docs(cls: type) -> dict[str, str]:
    """The trailing `# comment` of each field in the dataclass source: the field's documentation."""
    return _module_field_docs(cls.__module__).get(cls.__qualname__, {})


@functools.cache
def _module_field_docs(module: str) -> dict[str, dict[str, str]]:
    """{class name: {field: comment}} for every class of a module, from one parse of its source
    (parsing per class took ~0.5 s of every `plmkit` call)."""
    lines = inspect.getsource(sys.modules[module]).splitlines()
    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse("\n".join(lines)).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = docs.setdefault(node.name, {})
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                match = re.search(r"#\s*(.+)$", lines[item.end_lineno - 1])
                if match:
                    fields[item.target.id] = match.group(1).strip()
    return docs


def iter_fields(cls: type, prefix: str = "") -> Iterator[tuple[str, str, Any, str]]:
    """(dotted name, type, default, doc) for every leaf field, nested sections included."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(hint):
            yield from iter_fields(hint, f"{prefix}{f.name}.")
            continue
        type_name = re.sub(r"\b(typing|plmkit\.config)\.", "", getattr(hint, "__name__", str(hint)))
        yield f"{prefix}{f.name}", type_name, value, docs.get(f.name, "")


def fields_help(cls: type) -> str:
    """The settings block of a verb's --help."""
    lines = ["settings (key=value; a recipe section sets the same keys):"]
    for name, type_name, default, doc in iter_fields(cls):
        lines.append(f"  {name} = {default!r}  ({type_name})" + (f"\n      {doc}" if doc else ""))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per verb."""
    parser = argparse.ArgumentParser(
        prog="plmkit", description="From raw text to pretrained and fine-tuned Transformers.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (cls, _, summary) in VERBS.items():
        p = sub.add_parser(verb, help=summary, description=f"{summary}. {cls.__doc__}",
                           epilog=fields_help(cls), formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("args", nargs="*", metavar="KIND key=value" if verb == "probe"
                       else "[RECIPE.yaml] key=value",
                       help="an optional YAML recipe, then dotted overrides such as train.lr=3e-4")
        p.add_argument("--print-config", action="store_true",
                       help="print the resolved config as YAML and exit")
        if verb == "evaluate":
            p.add_argument("--suite", metavar="FILE.yaml",
                           help="run a task suite instead (keys: init, data, output, only, defaults, "
                                "tasks): fine-tune `init` on each task, write OUTPUT/suite.md")
    return parser


def resolve(verb: str, args: list[str]) -> Any:
    """The verb's config from an optional recipe and overrides."""
    cls, _, _ = VERBS[verb]
    if verb == "probe":  # `probe KIND key=value` sets kind=KIND and KIND.key=value
        args = C.probe_arguments(args)
    recipe: dict[str, Any] | None = None
    if args and "=" not in args[0]:
        recipe, args = C.read_yaml(args[0]), args[1:]
        # A recipe either has one section per verb (every top-level key a verb) or is one verb's config.
        if recipe and set(recipe) <= set(VERBS):
            recipe = recipe.get(verb) or {}
    for arg in args:
        if "=" not in arg:
            raise UserError(f"'{arg}': expected key=value (a recipe file may only come first)")
    return C.load_config(cls, recipe, args)


def stage_runner(verb: str) -> Callable[[Any], Any]:
    """stages.<module>.run, imported on demand so `--help` stays fast."""
    return stage_module(VERBS[verb][1]).run


def stage_module(name: str) -> Any:
    """plmkit.stages.<name>, imported on demand."""
    import importlib

    return importlib.import_module(f"plmkit.stages.{name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `plmkit` command; returns the exit code."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.verb is None:
        parser.print_help()
        return 2
    try:
        suite = getattr(ns, "suite", None)
        cfg = stage_module("suite").load_suite(suite, ns.args) if suite else resolve(ns.verb, ns.args)
        if ns.print_config:
            print(C.dump_yaml(cfg), end="")
            return 0
        if world_size() > 1 and (suite or ns.verb not in ("pretrain", "finetune")):
            raise UserError(f"torchrun runs `plmkit pretrain` and `finetune` on several "
                            f"processes; run `{ns.verb}` in one (WORLD_SIZE is {world_size()})")
        if suite:
            stage_module("suite").run(cfg, suite)
        else:
            stage_runner(ns.verb)(cfg)
    except UserError as err:
        release_all()  # a refused run leaves no lock behind, in this process or after it
        print(f"plmkit {ns.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"plmkit {ns.verb}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
