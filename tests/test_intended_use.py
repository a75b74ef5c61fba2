"""Intended use, said where people look: the README's section, the model card's "Intended use" and
"Out of scope" beside "Known limits", and one line on the Gradio page linking to the README's
section (shown at the page's foot)."""

from __future__ import annotations

import re

from frontend_support import REPO
from momke.models.checkpoint import DEFAULT_CHECKPOINT
from momke.realtime.ui.gradio_app import (
    INTENDED_USE_ANCHOR,
    INTENDED_USE_LINE,
    Visitors,
    build_app,
    installed_checkpoints,
    readme_section,
)

KEY_POINTS = ("expresses", "acted", "not what", "agree", "hiring", "grading", "policing", "credit",
              "Article 5(1)(f)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_says_what_a_reading_is_and_where_it_must_not_be_used():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    headings = [line[3:] for line in readme.splitlines() if line.startswith("## ")]
    assert INTENDED_USE_ANCHOR in [slug(h) for h in headings]  # the link's target exists
    section = readme_section("Intended use")
    for point in KEY_POINTS:
        assert point in section, point
    assert "workplace" in section and "education" in section


def test_model_card_has_intended_use_and_out_of_scope_beside_known_limits():
    card = (DEFAULT_CHECKPOINT / "MODEL_CARD.md").read_text(encoding="utf-8")
    headings = [line for line in card.splitlines() if line.startswith("## ")]
    assert {"## Intended use", "## Out of scope", "## Known limits"} <= set(headings)
    out_of_scope = card.split("## Out of scope", 1)[1].split("\n## ", 1)[0]
    for point in ("hiring", "grading", "policing", "credit", "Article", "5(1)(f)", "workplace", "education"):
        assert point in out_of_scope, point


def test_gradio_page_shows_the_line_and_the_section_it_links_to(tmp_path):
    assert INTENDED_USE_LINE.count("\n") == 0 and f"](#{INTENDED_USE_ANCHOR})" in INTENDED_USE_LINE
    for point in ("expresses", "not what anyone feels", "agree", "hiring", "Art. 5(1)(f)"):
        assert point in INTENDED_USE_LINE, point
    from momke.models.checkpoint import save_checkpoint
    from realtime_support import spy_model

    app = build_app(Visitors(installed_checkpoints(save_checkpoint(spy_model(), tmp_path / "ckpt")), device="cpu"))
    components = app.config["components"]
    texts = [c["props"].get("value") or "" for c in components if c["type"] == "markdown"]
    assert any(INTENDED_USE_LINE in t for t in texts)
    assert any(c["props"].get("elem_id") == INTENDED_USE_ANCHOR for c in components)  # the link's target
    assert readme_section("Intended use") in texts  # which is the README's section itself
