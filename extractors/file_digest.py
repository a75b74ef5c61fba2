"""The sha256 of a large, rarely changing file (installed model weights), hashed once per version.

Hashing the 90 MB MiniLM weights takes 70-130 ms on this 2-core CPU: too much for every live
start. The digest is kept under the cache folder, keyed by the file's resolved path, size and
modification time (nanoseconds), the same test `make` and git's index use to see that a file
changed: a reinstall or an edit writes a new mtime, and a new key means the file is hashed again.
A cache that cannot be read or written only costs the hash, never the answer.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .runtime import cache_root, file_sha256, write_text_atomic

_KNOWN: dict[tuple[str, int, int], str] = {}  # this process's answers, by the same key


def _stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


def _record(path: Path) -> Path:
    return cache_root() / "file_sha256" / f"{hashlib.sha1(str(path).encode()).hexdigest()}.json"


def weights_sha256(path: str | os.PathLike) -> str:
    """The file's sha256 (hex), from the cache while its path, size and mtime are unchanged."""
    path = Path(path).resolve()
    key = _stamp(path)
    if key in _KNOWN:
        return _KNOWN[key]
    record = _record(path)
    try:
        stored = json.loads(record.read_text())
        if (stored["path"], stored["size"], stored["mtime_ns"]) == key:
            _KNOWN[key] = stored["sha256"]
            return stored["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no record yet, or an unreadable one: hash below
    digest = file_sha256(path)
    if _stamp(path) == key:  # not rewritten while it was read
        _KNOWN[key] = digest
        try:
            write_text_atomic(record, json.dumps({"path": key[0], "size": key[1], "mtime_ns": key[2], "sha256": digest}))
        except OSError:
            pass  # a read-only cache folder: hashed again next start
    return digest
