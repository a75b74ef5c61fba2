"""Write a benchmark's report: the raw figures as JSON and the table as Markdown (both optional)."""

from __future__ import annotations

import json
from pathlib import Path

from momke.extractors.runtime import write_text_atomic


def write_report(report: dict, markdown: str, json_path: Path | None, md_path: Path | None) -> None:
    """Print the Markdown and write whichever of the two files was asked for."""
    if json_path:
        write_text_atomic(json_path, json.dumps(report, indent=1) + "\n")
    if md_path:
        write_text_atomic(md_path, markdown)
    print(markdown)
