"""The bottom layer stays at the bottom: extractors/ imports nothing of models/ or realtime/."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Corpus building is orchestration, above the model's dataset format; it is to move out of extractors/.
ORCHESTRATION = {"corpus.py", "corpora.py"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, written absolutely ("momke.models.config" for "..models.config")."""
    names = set()
    package = ["momke", *path.relative_to(ROOT).parent.parts]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add(".".join([*base, node.module or ""]).rstrip("."))
    return names


def test_relative_imports_are_resolved():
    names = imported_modules(ROOT / "extractors" / "base.py")
    assert "momke.extractors.modalities" in names


def test_extractors_import_neither_models_nor_realtime():
    upward = {}
    for path in sorted((ROOT / "extractors").glob("*.py")):
        if path.name in ORCHESTRATION:
            continue
        bad = sorted(n for n in imported_modules(path) if n.startswith(("momke.models", "momke.realtime")))
        if bad:
            upward[path.name] = bad
    assert upward == {}
