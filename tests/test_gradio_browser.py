"""The Gradio page in a real headless browser (Debian's chromium driven by Playwright; no browser
download): the page loads with neutral chips and the demo video as its input, the bundled demo
(the real LiveSession, replayed in real time) makes the fused label, each modality's reading, the
timeline and the expert loads update, and the visual privacy switch takes visual out of the next
events; the browser's (fake) webcam and microphone stream into the session. A screenshot is saved
to test-artifacts/ (or $MOMKE_ARTIFACT_DIR)."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from frontend_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, free_port, frontend_checkpoint

pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("chromium") is None,
                                reason="Debian's chromium is not installed (bash .ci/setup installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from momke.realtime.ui.gradio_app import close, launch

    checkpoint = frontend_checkpoint(tmp_path_factory)
    app, url = launch(host="127.0.0.1", port=free_port(), checkpoint=checkpoint, block=False)
    assert url.startswith("http://127.0.0.1:")
    yield app, url
    close(app)


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["camera", "microphone"])
        page = context.new_page()
        page.set_default_timeout(120_000)
        yield page
        browser.close()


def only_visitor(app):
    (visitor,) = app.visitors.all()
    return visitor


def test_page_loads(server, page):
    _, url = server
    page.goto(url)
    page.wait_for_selector("#mk-start")
    assert page.title() == "momke-live"
    assert "No utterance yet" in page.inner_text("#mk-timeline")
    for modality in ("audio", "text", "visual"):
        assert page.locator(f"#mk-use-{modality} input").is_checked()
        # Before anything started the chips are neutral, not a "missing" warning.
        page.wait_for_selector(f'#mk-status .mk-status[data-modality="{modality}"][data-state="idle"]')
    assert page.locator("#mk-demo-video video").is_visible()  # the input the visitor will see judged
    assert not page.locator("#mk-webcam").is_visible() and not page.locator("#mk-mic").is_visible()
    # The hints for the browser's own clicks go with the browser source only.
    assert not page.locator("#mk-webcam-hint").is_visible() and not page.locator("#mk-mic-hint").is_visible()
    # The session's state (its message, each sensor's status, the reading) is seen without scrolling.
    for element in ("#mk-info", "#mk-status", "#mk-current", "#mk-start"):
        box = page.locator(element).bounding_box()
        assert box is not None and box["y"] + box["height"] <= 800, (element, box)


def test_demo_updates_timeline_and_loads_and_privacy_switch_removes_visual(server, page):
    app, _ = server
    page.click("#mk-start")
    # Start answers at once (the model loads meanwhile): the sensors say "loading", not "missing".
    page.wait_for_function("['Starting', 'Running'].some(p => document.querySelector('#mk-info textarea').value.startsWith(p))")
    assert page.locator('#mk-status .mk-status[data-state="missing"]').count() == 0 or \
        page.input_value("#mk-info textarea").startswith("Running")
    page.wait_for_function("document.querySelectorAll('#mk-timeline circle.mk-utt').length >= 1")
    demo = only_visitor(app)
    session = demo.session
    assert session is not None
    events, lock = [], threading.Lock()
    session.on_event(lambda e: (lock.acquire(), events.append(e), lock.release()))

    # The input (the demo video, playing), the fused label and each modality's reading, side by side.
    assert page.locator("#mk-demo-video video").is_visible()
    page.wait_for_function("!document.querySelector('#mk-demo-video video').paused")
    current = page.locator("#mk-current .mk-current")
    shown = current.get_attribute("data-utterance")
    latest = next(e for e in reversed(demo.state.snapshot().history) if str(e.utterance_id) == shown)
    assert current.get_attribute("data-label") == latest.label == page.inner_text("#mk-current .mk-fused")
    assert page.locator("#mk-current .mk-reading").count() == 3
    for modality in ("audio", "text", "visual"):
        # (the demo's face is on camera during its happy lines only: visual is used there)
        reading = page.locator(f'#mk-current .mk-reading[data-modality="{modality}"]')
        assert reading.get_attribute("data-used") == ("true" if modality in latest.modalities else "false")
        own = (getattr(latest, "modality_probabilities", None) or {}).get(modality)
        if own:  # an engine that reports each modality's own probabilities: its top label is shown
            assert reading.get_attribute("data-label") == max(own, key=own.get)
    # The transcript is visible without scrolling at 1280x800.
    box = page.locator("#mk-transcript tr.mk-row").first.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800

    # The expert loads show the first utterance, then move on with the timeline.
    loads = page.locator("#mk-loads .mk-loads")
    first_loads_utterance = loads.get_attribute("data-utterance")
    assert page.locator('#mk-loads .mk-load-row[data-used="true"]').count() == len(latest.modalities)
    assert page.locator('#mk-loads .mk-load-row[data-modality="audio"] .mk-load').count() == 6  # now + mean bars
    page.wait_for_function("document.querySelectorAll('#mk-timeline circle.mk-utt').length >= 2")
    page.wait_for_function(
        f"document.querySelector('#mk-loads .mk-loads').dataset.utterance !== '{first_loads_utterance}'")
    # Line 2 (happy, the face on camera) is judged with the face.
    page.wait_for_function("document.querySelectorAll('#mk-timeline circle.mk-utt').length >= 2")
    assert "visual" in page.locator("#mk-timeline circle.mk-utt").nth(1).get_attribute("data-modalities")

    # Privacy: switch visual off mid-conversation.
    switched_at = session.clock.now()
    page.click("#mk-use-visual input")
    page.wait_for_selector('#mk-status .mk-status[data-modality="visual"][data-state="disabled"]')
    assert session.status()["visual"] == "disabled"

    deadline = time.monotonic() + 120
    after = []
    while time.monotonic() < deadline and not after:
        with lock:
            after = [e for e in events if getattr(e, "type", "") == "emotion" and e.start >= switched_at]
        time.sleep(0.2)
    assert after, "no utterance after the privacy switch"
    for event in after:
        assert "visual" not in event.modalities and "visual" not in event.expert_loads
    uid = after[0].utterance_id
    row = page.locator(f'#mk-transcript tr.mk-row[data-utterance="{uid}"]')
    row.wait_for()
    assert row.get_attribute("data-modalities") == "audio,text"
    page.wait_for_selector(f'#mk-timeline circle.mk-utt[data-utterance="{uid}"][data-modalities="audio,text"]')

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gradio_page.png"), full_page=True)

    page.click("#mk-stop")
    page.wait_for_function("document.querySelector('#mk-info textarea').value.startsWith('Stopped')")
    assert demo.session is None


def test_browser_webcam_and_microphone_stream_into_the_session(server, page, monkeypatch):
    from momke.realtime.sources import browser as browser_source

    pushed = {"audio": 0, "visual": 0}
    for cls, modality in ((browser_source.PushedMicrophone, "audio"), (browser_source.PushedCamera, "visual")):
        original = cls.push

        def counting(self, *args, _original=original, _modality=modality):
            pushed[_modality] += 1
            return _original(self, *args)

        monkeypatch.setattr(cls, "push", counting)
    app, _ = server
    page.locator("#mk-use-visual input").check()  # the previous test switched it off; the switch persists
    page.get_by_label("My browser's webcam and microphone").check()
    page.wait_for_selector("#mk-webcam", state="visible")
    assert "Access Webcam" in page.inner_text("#mk-webcam-hint") and "Record" in page.inner_text("#mk-mic-hint")
    page.click("#mk-start")
    page.wait_for_function("document.querySelector('#mk-info textarea').value.startsWith('Running: My browser')")
    assert not page.locator("#mk-demo-video").is_visible()
    page.locator("#mk-webcam button", has_text="Click to Access Webcam").click()
    page.locator("#mk-webcam button", has_text="Record").click()
    page.locator("#mk-mic button", has_text="Record").click()
    # (capture begins once the session's extractors are loaded: slow on a loaded 2-core CPU)
    page.wait_for_selector('#mk-status .mk-status[data-modality="audio"][data-state="active"]', timeout=180_000)
    session = only_visitor(app).session

    def camera_seen() -> bool:
        # Chromium's fake webcam shows a test pattern, no face: once an utterance is judged, the
        # camera's state is "missing: no face in view" (the device itself still works).
        state, reason = session.status()["visual"], session.health.reason("visual") or ""
        return pushed["visual"] > 0 and (state == "active" or "no face" in reason)

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not camera_seen():
        time.sleep(0.5)
    assert pushed["audio"] > 0 and camera_seen(), (pushed, session.status(), session.health.reason("visual"))
    page.click("#mk-stop")
    page.wait_for_function("document.querySelector('#mk-info textarea').value.startsWith('Stopped')")


@pytest.mark.slow
def test_screenshot_script_makes_both_pictures(tmp_path_factory):
    """tools/make_screenshots.py as the README says to run it (into a temporary
    folder): it checks the page shows the input, each modality's reading and the fused label."""
    import subprocess
    import sys

    from frontend_support import REPO
    from PIL import Image

    out = tmp_path_factory.mktemp("screenshots")
    checkpoint = frontend_checkpoint(tmp_path_factory)
    result = subprocess.run([sys.executable, "tools/make_screenshots.py", "--checkpoint", str(checkpoint),
                             "--out", str(out)], check=False, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    terminal, page = Image.open(out / "terminal_view.png"), Image.open(out / "gradio_page.png")
    assert terminal.width > 400 and terminal.height > 300
    assert page.width == 1280 and page.height >= 800


def real_voice_and_face(folder):
    """Chromium's fake capture files: a WAV of real speech (two RAVDESS clips of "Kids are talking
    by the door", with pauses, 48 kHz 16-bit PCM) and a Y4M of the demo's face (its second line,
    when the face is on camera). Chromium loops both."""
    import subprocess

    import numpy as np
    import soundfile as sf
    from frontend_support import DEMO_DIR
    from synth_speech import RAVDESS_SENTENCES, ravdess_clips, read_clips

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (bash .ci/setup installs it)")
    clips = ravdess_clips(2, actor="Actor_01")  # statement 01, twice
    assert all(path.name.split("-")[4] == "01" for path in clips)
    pause = np.zeros(16_000 * 2, np.float32)
    speech = np.concatenate([pause[: 16_000 * 3 // 2], *[part for clip in read_clips(clips) for part in (clip, pause)]])
    audio = np.interp(np.arange(0, len(speech), 1 / 3), np.arange(len(speech)), speech)  # 16 -> 48 kHz
    wav, y4m = folder / "voice.wav", folder / "face.y4m"
    sf.write(str(wav), (np.clip(audio, -1, 1) * 32767).astype(np.int16), 48_000, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "5.7", "-t", "3.6", "-i", str(DEMO_DIR / "conversation.mp4"),
                    "-vf", "scale=320:-2,fps=15", "-pix_fmt", "yuv420p", "-an", str(y4m)], check=True)
    return wav, y4m, RAVDESS_SENTENCES["01"]


@pytest.mark.slow
def test_browser_path_with_a_real_voice_and_face(server, tmp_path):
    """The visitor's "My browser's webcam and microphone" source, with Chromium's fake devices fed
    from files: a real voice (RAVDESS) and a real face (the demo's photo). The events carry the
    transcript of the spoken sentence (the server's Whisper heard it through the browser) and a
    visual reading (the face was found in the streamed webcam frames)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from momke.realtime.ui.gradio_app import SOURCE_BROWSER

    app, url = server
    wav, y4m, sentence = real_voice_and_face(tmp_path)
    args = [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}", f"--use-file-for-fake-video-capture={y4m}"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["camera", "microphone"])
            page = context.new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            page.get_by_label(SOURCE_BROWSER).check()
            page.wait_for_selector("#mk-webcam", state="visible")
            for modality in ("audio", "visual"):
                if not page.locator(f"#mk-use-{modality} input").is_checked():
                    page.locator(f"#mk-use-{modality} input").check()
            page.click("#mk-start")
            page.wait_for_function("document.querySelector('#mk-info textarea').value.startsWith('Running: My browser')")
            page.locator("#mk-webcam button", has_text="Click to Access Webcam").click()
            page.locator("#mk-webcam button", has_text="Record").click()
            page.locator("#mk-mic button", has_text="Record").click()
            visitor = next(v for v in app.visitors.all() if v.source == SOURCE_BROWSER and v.session is not None)

            def heard_and_seen():
                history = visitor.state.snapshot().history
                heard = [e for e in history if e.transcript and "door" in e.transcript.lower()]
                seen = [e for e in history if "visual" in e.modalities]
                return heard, seen

            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not all(heard_and_seen()):
                time.sleep(1.0)
            heard, seen = heard_and_seen()
            history = visitor.state.snapshot().history
            assert heard, ([(e.start, e.end, e.transcript, e.modalities) for e in history], visitor.session.status())
            assert seen, ([(e.start, e.end, e.transcript, e.modalities) for e in history], visitor.session.status())
            words = set(sentence.lower().split())
            assert len(words & set(heard[0].transcript.lower().strip(".!?").split())) >= 3, heard[0].transcript
            assert "audio" in heard[0].modalities and "text" in heard[0].modalities
            page.wait_for_selector('#mk-status .mk-status[data-modality="visual"]')
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "gradio_browser_source.png"))
            page.click("#mk-stop")
            page.wait_for_function("document.querySelector('#mk-info textarea').value.startsWith('Stopped')")
        finally:
            browser.close()
