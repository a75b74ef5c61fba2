"""Write a benchmark's report: the raw figures as JSON and the table as Markdown (both optional)."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(report: dict, markdown: str, json_path: Path | None, md_path: Path | None) -> None:
    """Print the Markdown and write whichever of the two files was asked for."""
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=1) + "\n")
    if md_path:
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(markdown)
    print(markdown)
