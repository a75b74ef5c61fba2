"""Remakes the README's screenshots from real runs of the bundled demo (no devices needed).

    python tools/make_screenshots.py [--checkpoint DIR] [--out DIR]

- terminal_view.png: the `momke-live --demo` view after the whole demo (the real LiveSession,
  replayed fast) in an 80x24 terminal, drawn by rich and photographed by headless chromium;
- gradio_page.png: the Gradio page at 1280x800 after the demo (real-time replay), audio
  switched off by its privacy switch halfway through (the demo's synthetic voice is its least
  trustworthy path). The script checks that the page shows the input (the demo video), each
  modality's reading and the fused label before photographing it.
Needs Debian's chromium (/usr/bin/chromium) and the playwright pip package (test extras).
tests/test_gradio_browser.py runs it (into a temporary folder).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "assets" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def terminal_svg(checkpoint) -> str:
    from momke.realtime.session import LiveSession
    from momke.realtime.ui.live_state import LiveState
    from momke.realtime.ui.terminal_view import render
    from rich.console import Console

    state = LiveState()
    with LiveSession.demo(realtime=False, asr=None, checkpoint=checkpoint) as session:
        for event in session.events():
            state.update(event)
    console = Console(record=True, width=80, height=24, file=io.StringIO())
    console.print(render(state.snapshot(), "momke-live · demo conversation (fast replay)", height=24))
    return console.export_svg(title="momke-live --demo")


def trim(path: Path) -> None:
    """Cut the empty margin rich's SVG leaves around the terminal window."""
    from PIL import Image, ImageChops

    image = Image.open(path).convert("RGB")
    box = ImageChops.difference(image, Image.new("RGB", image.size, image.getpixel((0, 0)))).getbbox()
    if box:
        image.crop(box).save(path, optimize=True)


def check_page(page) -> None:
    """What the README promises the page shows; raises (no picture) when it does not."""
    if not page.locator("#mk-demo-video video").is_visible():
        raise SystemExit("the page does not show its input (the demo video)")
    if page.locator("#mk-current .mk-reading").count() != 3:
        raise SystemExit("the page does not show each modality's reading")
    fused = page.locator("#mk-current .mk-current").get_attribute("data-label")
    if not fused or page.inner_text("#mk-current .mk-fused").strip() != fused:
        raise SystemExit("the page does not show the fused label")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the two PNGs (default: beside this script)")
    args = parser.parse_args(argv)
    from momke.realtime.ui.gradio_app import close, launch
    from playwright.sync_api import sync_playwright

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    svg = terminal_svg(args.checkpoint)
    app, url = launch(port=0, checkpoint=args.checkpoint, block=False)
    try:
        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as tmp:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            svg_path = Path(tmp) / "view.svg"
            svg_path.write_text(svg)
            page.goto(svg_path.as_uri())
            page.locator("svg").screenshot(path=str(out / "terminal_view.png"))
            trim(out / "terminal_view.png")

            page.set_viewport_size({"width": 1280, "height": 800})
            page.goto(url)
            page.click("#mk-start")
            page.wait_for_function("document.querySelectorAll('#mk-timeline circle.mk-utt').length >= 3",
                                   timeout=300_000)
            page.click("#mk-use-audio input")
            page.wait_for_function("document.querySelector('#mk-info textarea').value.startsWith('Finished')",
                                   timeout=300_000)
            time.sleep(1.0)
            check_page(page)
            page.screenshot(path=str(out / "gradio_page.png"), full_page=True)
            browser.close()
    finally:
        close(app)
    for name in ("terminal_view.png", "gradio_page.png"):
        print(name, (out / name).stat().st_size // 1024, "KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
