"""DESIGN.md's import ranks, enforced: a module imports only plmkit modules of its rank or lower.

A short AST walk over plmkit/. Same-rank imports are allowed (text/shards uses text/corpus);
a module may never reach up, so data flows one way through the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "plmkit"

RANKS = {
    "plmkit.config": 0,
    "plmkit.runtime": 0,
    "plmkit.text": 1,
    "plmkit.models": 2,
    "plmkit.checkpoint": 3,
    "plmkit.objectives": 3,
    "plmkit.train": 4,
    "plmkit.tasks": 5,
    "plmkit.export": 6,
    "plmkit.serve": 6,
    "plmkit.probes": 6,
    "plmkit.stages": 7,
    "plmkit.cli": 8,
    "plmkit.__main__": 8,
    "plmkit": 8,  # the package __init__: the public API
}

# models/ is pure nn.Modules: torch and config only (STYLE.md rule 1).
MODELS_MAY_IMPORT = {"plmkit.config", "plmkit.models"}


def rank_of(module: str) -> int:
    """Rank of a dotted plmkit module name: the longest prefix listed in RANKS."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RANKS:
            return RANKS[prefix]
    raise AssertionError(f"{module} has no rank in tests/test_layering.py: give it one")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def plmkit_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("plmkit")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("plmkit"):
                found.append(node.module)
    return found


def test_every_module_has_a_rank_and_imports_flow_down() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        own = rank_of(name)
        for imported in plmkit_imports(path):
            if rank_of(imported) > own:
                violations.append(f"{name} (rank {own}) imports {imported} (rank {rank_of(imported)})")
    assert not violations, "\n".join(violations)


def test_models_import_only_torch_and_config() -> None:
    bad = []
    for path in sorted((PACKAGE / "models").rglob("*.py")):
        for imported in plmkit_imports(path):
            if not any(imported == m or imported.startswith(m + ".") for m in MODELS_MAY_IMPORT):
                bad.append(f"{module_name(path)} imports {imported}")
    assert not bad, "\n".join(bad)


def test_plmkit_never_imports_transformers() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "transformers" or n.startswith("transformers.") for n in names):
                offenders.append(module_name(path))
    assert not offenders, f"transformers belongs in tests and bench only: {offenders}"
