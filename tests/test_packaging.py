"""The installed package, not the source tree: everything the app needs is in what setuptools builds.

The tests run in an editable install, which maps `momke.*` onto the source folders and so hides
a subpackage or data file that pyproject.toml forgets. Here setuptools builds the package the
way a wheel is built (`build_py` with the project's own pyproject.toml: the files a wheel's
purelib holds), and `momke-live --demo --fast --json` runs from that build with the editable
`momke` removed from the import path. A fresh venv is not used: it would need a second copy of
torch; the other installed packages are reused as they are.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("models", "extractors", "realtime")
# assets/ subfolders the app reads at run time (screenshots are for the README only).
ASSET_FOLDERS = ("checkpoints", "weights", "demo")


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split("\n")
    return [Path(name) for name in listed if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The `momke` package as setuptools builds it from a copy of the source tree."""
    base = tmp_path_factory.mktemp("package")
    source, lib = base / "source", base / "lib"
    for name in _tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                    "--build-lib", str(lib)], cwd=source, capture_output=True, text=True, check=True)
    return lib


def test_the_build_holds_every_module_and_asset(built):
    expected = {Path("momke") / name for name in _tracked_files()
                if (name.parts[0] in CODE_FOLDERS and name.suffix == ".py")
                or (name.parts[0] == "assets" and (len(name.parts) == 2 or name.parts[1] in ASSET_FOLDERS))}
    assert Path("momke/realtime/sources/__init__.py") in expected  # the subpackage once left out
    have = {path.relative_to(built) for path in built.rglob("*") if path.is_file()}
    assert sorted(map(str, expected - have)) == []


def _site_packages_without_momke(base: Path) -> Path:
    """A folder linking every installed package of this venv except the editable `momke`."""
    site = Path(importlib.util.find_spec("torch").origin).parents[1]
    folder = base / "site"
    folder.mkdir()
    for entry in site.iterdir():
        if entry.name == "momke" or entry.name.startswith(("momke_live", "__editable__")):
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.slow  # ~20 s alone, minutes on a loaded machine
def test_momke_live_runs_the_demo_from_the_build(built, tmp_path):
    site = _site_packages_without_momke(tmp_path)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["momke-live"].split(":")
    program = (
        "import importlib, site, sys\n"
        f"site.addsitedir({str(site)!r})\n"
        f"sys.path.insert(0, {str(built)!r})\n"
        f"entry = getattr(importlib.import_module({module!r}), {function!r})\n"
        "import momke.realtime.sources as sources\n"
        f"assert sources.__file__.startswith({str(built)!r}), sources.__file__\n"
        "sys.argv = ['momke-live', '--demo', '--fast', '--json']\n"
        "sys.exit(entry())\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-S", "-c", program], cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1"},
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    emotions = [line for line in run.stdout.splitlines() if '"type": "emotion"' in line]
    assert len(emotions) >= 3, run.stdout[-2000:]


def test_momke_answers_version_and_help_from_the_build(built, tmp_path):
    """No installed metadata and no pyproject.toml beside the build: --version still answers."""
    site = _site_packages_without_momke(tmp_path)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["momke"].split(":")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for argv, expected in ((["--version"], r"momke \S+\n"), (["--help"], r"usage: momke [\s\S]*make-toy-corpus[\s\S]*")):
        program = (
            "import importlib, site, sys\n"
            f"site.addsitedir({str(site)!r})\n"
            f"sys.path.insert(0, {str(built)!r})\n"
            f"entry = getattr(importlib.import_module({module!r}), {function!r})\n"
            f"assert entry.__module__ == {module!r} and sys.modules[{module!r}].__file__.startswith({str(built)!r})\n"
            f"sys.argv = ['momke', *{argv!r}]\n"
            "sys.exit(entry())\n"
        )
        run = subprocess.run([sys.executable, "-S", "-c", program], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60, check=False)
        assert run.returncode == 0 and re.fullmatch(expected, run.stdout), run.stderr[-3000:]
