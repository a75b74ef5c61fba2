"""What every layer needs from the machine: where tensors run, and files written whole or not at all.

The bottom of the import graph (it imports nothing of the project), so extractors, models and
realtime all use the same device choice and the same atomic writer.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import IO

DEVICE_HELP = "use cpu, cuda, cuda:N or auto"


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """$MOMKE_CACHE, else $XDG_CACHE_HOME/momke, else ~/.cache/momke."""
    if os.environ.get("MOMKE_CACHE"):
        return Path(os.environ["MOMKE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "momke"


def bundled(*parts: str) -> Path:
    """A file or folder shipped with the package (momke.assets, the repo's assets/ folder):
    bundled("demo", "conversation.mp4"). The one way the code finds its bundled files."""
    return Path(str(resources.files("momke.assets").joinpath("/".join(parts))))


def pick_device(requested=None):
    """`requested`: None or "auto" = CUDA when present, else CPU; else "cpu", "cuda", "cuda:1" or a
    torch.device. A CUDA device that is not here is refused now, in words, not deep inside torch."""
    import torch  # here, not at import: `momke --help` must not wait for torch

    if requested is None or str(requested).strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(requested).strip().lower())
    except RuntimeError as error:
        raise ValueError(f"device {requested!r} is not a device name ({DEVICE_HELP})") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r}: no CUDA device is available here ({DEVICE_HELP})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {requested!r}: only {torch.cuda.device_count()} CUDA device(s) here ({DEVICE_HELP})")
    return device


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to `target`, renamed over it when the block ends without error and
    removed when it raises: a crash or a refused file never leaves half a file under target's name."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        # Readable by all, like any data file: mkstemp (and safetensors) create 0600, which would
        # leave a checkpoint or a shared cache other users cannot read.
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(target: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """An open stream whose content replaces `target` only once the block has ended without error."""
    with atomic_path(target) as temporary, open(temporary, mode, encoding=encoding) as stream:
        yield stream


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_write(target, "w", encoding="utf-8") as stream:
        stream.write(text)
