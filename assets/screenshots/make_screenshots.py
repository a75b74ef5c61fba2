"""Remakes the README's screenshots from real runs of the bundled demo (no devices needed).

    python assets/screenshots/make_screenshots.py [--checkpoint DIR]

- terminal_view.png: the `momke-live --demo` view after the whole demo (the real LiveSession,
  replayed fast), drawn by rich and photographed by headless chromium;
- gradio_page.png: the Gradio page after the demo, visual switched off by its privacy switch
  halfway through (real-time replay).
Needs Debian's chromium (/usr/bin/chromium) and the playwright pip package (test extras).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def terminal_svg(checkpoint) -> str:
    from momke.realtime.live_state import LiveState
    from momke.realtime.session import LiveSession
    from momke.realtime.terminal_view import render
    from rich.console import Console

    state = LiveState()
    with LiveSession.demo(realtime=False, asr=None, checkpoint=checkpoint) as session:
        for event in session.events():
            state.update(event)
    console = Console(record=True, width=104, file=io.StringIO())
    console.print(render(state.snapshot(), "momke-live · demo conversation (fast replay)"))
    return console.export_svg(title="momke-live --demo")


def trim(path: Path) -> None:
    """Cut the empty margin rich's SVG leaves around the terminal window."""
    from PIL import Image, ImageChops

    image = Image.open(path).convert("RGB")
    box = ImageChops.difference(image, Image.new("RGB", image.size, image.getpixel((0, 0)))).getbbox()
    if box:
        image.crop(box).save(path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args(argv)
    from momke.realtime.gradio_app import launch
    from playwright.sync_api import sync_playwright

    svg = terminal_svg(args.checkpoint)
    app, url = launch(port=0, checkpoint=args.checkpoint, block=False)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as tmp:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        svg_path = Path(tmp) / "view.svg"
        svg_path.write_text(svg)
        page.goto(svg_path.as_uri())
        page.locator("svg").screenshot(path=str(OUT / "terminal_view.png"))
        trim(OUT / "terminal_view.png")

        page.set_viewport_size({"width": 1280, "height": 1000})
        page.goto(url)
        page.click("#mk-start")
        page.wait_for_function("document.querySelectorAll('#mk-timeline circle.mk-utt').length >= 3", timeout=300_000)
        page.click("#mk-use-visual input")
        page.wait_for_function("document.querySelector('#mk-info textarea').value.startsWith('Finished')",
                               timeout=300_000)
        time.sleep(1.0)
        page.screenshot(path=str(OUT / "gradio_page.png"), full_page=True)
        browser.close()
    app.live_demo.stop()
    app.close()
    for name in ("terminal_view.png", "gradio_page.png"):
        print(name, (OUT / name).stat().st_size // 1024, "KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
