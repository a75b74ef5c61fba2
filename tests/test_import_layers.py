"""Imports point one way: extractors <- models <- realtime (see ARCHITECTURE.md).

The imports are read with ast, nothing is imported: every `import`/`from ... import` anywhere in
a file (lazy ones inside functions too) and every `importlib.import_module("momke....")` with a
literal name. `momke.assets` is data only (files the app reads, found with extractors/runtime.py `bundled`):
its one Python file is the empty package marker, checked below; scripts live in tools/.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Top-level code folders from the bottom up: each may import only the ones below it.
LAYERS = ("extractors", "models", "realtime")
# Finer rules: files of (folder, subpackage) may not import these; "" = the folder's own files,
# "*" = the folder and all its subpackages.
BANNED = {
    ("models", ""): ("models.training", "models.commands"),  # the model knows no training or CLI
    ("models", "training"): ("models.commands",),  # training knows no orchestration
    ("realtime", "*"): ("models.training", "models.commands"),  # live code needs the model alone
    ("realtime", ""): ("realtime.ui",),  # the engine knows no front end
    ("realtime", "sources"): ("realtime.ui",),
}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["momke", *parts])


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute module a `from <level dots><module> import ...` in `importer` names."""
    if level == 0:
        return module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imported_modules(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for everything `path` imports: `from X import a` gives X.a where
    that is a module of the tree, else X."""
    importer, is_package = module_name(root, path), path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(importer, is_package, node.level, node.module)
            names = {f"{base}.{alias.name}" for alias in node.names}
            modules = sorted(name for name in names if _is_module(root, name) or base == "momke")
            found += [(node.lineno, name) for name in modules or [base]]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name.startswith("momke.")]


def _is_module(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _place(module: str) -> tuple[str, str]:
    """momke.realtime.ui.cli -> ("realtime", "ui"); momke.models.checkpoint -> ("models", "")."""
    parts = module.split(".")[1:]
    return parts[0], parts[1] if len(parts) > 2 else ""


def _code_files(root: Path) -> list[Path]:
    return sorted(path for folder in LAYERS for path in (root / folder).rglob("*.py"))


def layer_violations(root: Path) -> list[str]:
    """Every import that points up or sideways, as 'file:line imports module (why)'."""
    problems = []
    for path in _code_files(root):
        source_folder, source_sub = _place(module_name(root, path))
        for line, target in imported_modules(root, path):
            target_folder = target.split(".")[1] if target.count(".") else ""
            where = f"{path.relative_to(root)}:{line} imports {target}"
            if target_folder in LAYERS and LAYERS.index(target_folder) > LAYERS.index(source_folder):
                problems.append(f"{where} ({source_folder}/ may not import {target_folder}/)")
                continue
            banned = BANNED.get((source_folder, source_sub), ()) + BANNED.get((source_folder, "*"), ())
            for name in banned:
                if target == f"momke.{name}" or target.startswith(f"momke.{name}."):
                    problems.append(f"{where} ({source_folder}/{source_sub} may not import {name.replace('.', '/')}/)")
    return problems


def folder_cycles(root: Path) -> list[list[str]]:
    """Cycles in the graph 'top-level folder A imports folder B' (each cycle once, from its smallest name)."""
    edges: dict[str, set[str]] = {folder: set() for folder in LAYERS}
    for path in _code_files(root):
        source = _place(module_name(root, path))[0]
        for _, target in imported_modules(root, path):
            folder = target.split(".")[1] if target.count(".") else ""
            if folder in LAYERS and folder != source:
                edges[source].add(folder)
    cycles = []

    def walk(start: str, node: str, trail: list[str]) -> None:
        for following in sorted(edges[node]):
            if following == start:
                cycles.append([*trail, start])
            elif following not in trail and following > start:
                walk(start, following, [*trail, following])

    for start in sorted(edges):
        walk(start, start, [start])
    return cycles


def test_no_import_cycle_between_top_level_folders():
    assert [" -> ".join(cycle) for cycle in folder_cycles(ROOT)] == []


def test_imports_point_down_the_layers():
    assert layer_violations(ROOT) == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_check_finds_an_upward_import_and_the_cycle_it_makes(tmp_path):
    root = _write(tmp_path, {
        "extractors/__init__.py": "",
        "extractors/base.py": "def f():\n    from ..models.config import MODALITIES\n",
        "models/__init__.py": "",
        "models/config.py": "from ..extractors import base\nfrom .. import assets\n",
        "realtime/__init__.py": "",
        "realtime/app.py": "import importlib\nimportlib.import_module('momke.models.training.trainer')\n",
    })
    assert layer_violations(root) == [
        "extractors/base.py:2 imports momke.models.config (extractors/ may not import models/)",
        "realtime/app.py:2 imports momke.models.training.trainer (realtime/ may not import models/training/)",
    ]
    assert folder_cycles(root) == [["extractors", "models", "extractors"]]


def test_the_check_finds_the_engine_importing_a_front_end(tmp_path):
    root = _write(tmp_path, {
        "realtime/__init__.py": "",
        "realtime/session.py": "from .ui import cli\nfrom .sources import devices\n",
        "realtime/sources/__init__.py": "",
        "realtime/sources/devices.py": "from ..ui.cli import main\n",
        "realtime/ui/__init__.py": "",
        "realtime/ui/cli.py": "from ..session import run\nfrom ..sources.devices import read\n",
    })
    assert layer_violations(root) == [
        "realtime/session.py:1 imports momke.realtime.ui.cli (realtime/ may not import realtime/ui/)",
        "realtime/sources/devices.py:1 imports momke.realtime.ui.cli (realtime/sources may not import realtime/ui/)",
    ]
    assert folder_cycles(root) == []


def test_assets_hold_data_only():
    """assets/ is data: its only Python file is the package marker (which importlib.resources
    needs), with no statements; the scripts that make assets live in tools/."""
    python_files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "assets").rglob("*.py"))
    assert python_files == ["assets/__init__.py"], python_files
    marker = ast.parse((ROOT / "assets" / "__init__.py").read_text(encoding="utf-8"))
    statements = [node for node in marker.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    assert statements == [], "assets/__init__.py must hold no code"


def test_bundled_files_found_one_way():
    """The code finds bundled files through bundled() alone: no path built from __file__ or
    from momke.assets' module file reaches into assets/."""
    offenders = []
    for path in _code_files(ROOT):
        text = path.read_text(encoding="utf-8")
        if path.name == "runtime.py" and path.parent.name == "extractors":
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if ('"assets"' in line and "__file__" in line) or "assets.__file__" in line or 'files("momke.assets")' in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []
