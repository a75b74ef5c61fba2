"""The Gradio demo served to several visitors: each has a session of their own (switches,
history, views), the server's own devices serve one visitor at a time, sessions are bounded,
checkpoints are chosen by name (never a server path), streamed browser media does not stay on
disk and a switched-off modality's device stops streaming.

The first tests drive the per-visitor controller in-process with the real LiveSession (the
bundled demo replayed); the browser tests use headless Debian chromium through Playwright with
two browser contexts (two visitors) and chromium's fake webcam and microphone.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from frontend_support import CHROMIUM, CHROMIUM_ARGS, free_port, frontend_checkpoint
from momke.realtime.ui import device_probe
from momke.realtime.ui.gradio_app import (
    DEFAULT_CHECKPOINT_NAME,
    SERVER_IN_USE,
    SOURCE_BROWSER,
    SOURCE_DEMO,
    SOURCE_SERVER,
    Visitors,
    installed_checkpoints,
    read_and_delete,
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return installed_checkpoints(frontend_checkpoint(tmp_path_factory))


@pytest.fixture
def visitors(checkpoints):
    hub = Visitors(checkpoints, device="cpu", max_sessions=2)
    yield hub
    hub.stop_all()


def test_each_visitor_has_their_own_session_switches_and_history(visitors):
    alice, bob = visitors.get("alice"), visitors.get("bob")
    assert alice.start(SOURCE_DEMO, DEFAULT_CHECKPOINT_NAME, fast=True).startswith("Running")
    bob.set_enabled("visual", False)
    assert alice.session.wait(timeout=120)
    assert alice.state.emotion_count > 0 and bob.state.emotion_count == 0 and bob.session is None
    assert alice.enabled["visual"] and not bob.enabled["visual"]
    # Alice's face is used wherever her demo shows one (lines 2 and 7); bob's switch changed nothing of hers.
    assert sum("visual" in e.modalities for e in alice.state.snapshot().history) >= 2
    # Before bob starts, his page shows his own switch (visual disabled) and neutral chips.
    assert bob.state.snapshot().status["visual"].state == "disabled"
    assert bob.state.snapshot().status["audio"].state == "idle"


def test_sessions_are_bounded_and_checkpoints_chosen_by_name_only(visitors):
    for name in ("a", "b"):
        assert visitors.get(name).start(SOURCE_DEMO, DEFAULT_CHECKPOINT_NAME).startswith("Running")
    assert visitors.running_sessions() == 2
    refused = visitors.get("c").start(SOURCE_DEMO, DEFAULT_CHECKPOINT_NAME)
    assert "busy" in refused and visitors.get("c").session is None
    visitors.drop("a")  # a visitor closing the tab ends their session and frees its place
    assert visitors.peek("a") is None and visitors.running_sessions() == 1
    assert visitors.get("c").start(SOURCE_DEMO, DEFAULT_CHECKPOINT_NAME).startswith("Running")
    visitors.stop_all()
    for path in ("/etc", "/no/such/folder", "../assets"):
        message = visitors.get("d").start(SOURCE_DEMO, path)
        assert message == "Unknown checkpoint: choose one from the list."  # says nothing of the server's folders
    assert all("/" not in name for name in visitors.checkpoints)


def test_the_servers_devices_serve_one_visitor_at_a_time(visitors, monkeypatch):
    probed = []
    monkeypatch.setattr(device_probe, "probe_microphone", lambda *a: device_probe.Probe(True, "test microphone"))
    monkeypatch.setattr(device_probe, "probe_camera",
                        lambda source: probed.append(source) or device_probe.Probe(False, "no camera"))
    alice, bob = visitors.get("alice"), visitors.get("bob")
    alice.set_enabled("visual", False)
    assert alice.start(SOURCE_SERVER, DEFAULT_CHECKPOINT_NAME).startswith("Running")
    assert probed == []  # visual off: the camera is not even probed
    assert bob.start(SOURCE_SERVER, DEFAULT_CHECKPOINT_NAME) == SERVER_IN_USE
    assert bob.start(SOURCE_DEMO, DEFAULT_CHECKPOINT_NAME, fast=True).startswith("Running")  # other sources: fine
    alice.stop()
    assert bob.start(SOURCE_SERVER, DEFAULT_CHECKPOINT_NAME).startswith("Running")
    assert probed == [0]
    assert alice.start(SOURCE_SERVER, DEFAULT_CHECKPOINT_NAME) == SERVER_IN_USE
    visitors.drop("bob")
    assert visitors.server_holder is None


def test_the_visitors_sessions_get_the_servers_speech_to_text_options(checkpoints):
    """momke-live --gradio --language de --min-transcript-confidence 0.7: each live session a
    visitor starts (browser or server devices) is made with them, as the terminal app's is."""
    made = []

    from momke.realtime.ui.cli import build_parser
    from momke.realtime.ui.gradio_app import server_options

    made = []

    def factory(options):
        made.append(options)
        raise RuntimeError("not needed further")

    args = build_parser().parse_args(["--gradio", "--language", "de", "--min-transcript-confidence", "0.7"])
    hub = Visitors(checkpoints, device="cpu", session_factory=factory, options=server_options(args))
    message = hub.get("alice").start(SOURCE_BROWSER, DEFAULT_CHECKPOINT_NAME)
    assert message == "Cannot start: not needed further"
    assert (made[0].asr_language, made[0].min_transcript_confidence, made[0].device) == ("de", 0.7, "cpu")
    assert made[0].microphone is not None and made[0].camera is not None  # the browser's streams
    hub.stop_all()


def test_a_streamed_audio_chunk_is_deleted_as_soon_as_it_is_read(tmp_path):
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "upload-1234"
    folder.mkdir()
    chunk = folder / "audio.wav"
    sf.write(str(chunk), (np.sin(np.arange(4000) / 5) * 8000).astype(np.int16), 16000)
    rate, samples = read_and_delete(str(chunk))
    assert rate == 16000 and samples.shape == (4000,) and samples.dtype == np.int16
    assert not chunk.exists() and not folder.exists()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....")
    assert read_and_delete(str(broken)) is None and not broken.exists()  # unreadable: still deleted


# --------------------------------------------------------------------------- in a browser
browser_only = pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("chromium") is None,
                                  reason="Debian's chromium is not installed (bash .ci/setup installs it)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a free port, with Gradio's upload folder in a temporary folder we can inspect."""
    upload_dir = tmp_path_factory.mktemp("gradio-uploads")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(upload_dir))
        from momke.realtime.ui.gradio_app import close, launch

        app, url = launch(host="127.0.0.1", port=free_port(), checkpoint=frontend_checkpoint(tmp_path_factory),
                          block=False, max_sessions=3)
        yield app, url, upload_dir
        close(app)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_visitor(browser, url):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["camera", "microphone"])
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_selector("#mk-start")
    return context, page


def new_key(app, known: set[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        keys = {v.key for v in app.visitors.all()} - known
        if keys:
            (key,) = keys
            return key
        time.sleep(0.1)
    raise AssertionError("the visitor has no session on the server")


def audio_files(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".wav", ".webm", ".mp3", ".ogg")]


@pytest.mark.slow
@browser_only
def test_two_visitors_each_see_and_switch_only_their_own_session(served, browser):
    app, url, _ = served
    alice_context, alice = open_visitor(browser, url)
    bob_context, bob = open_visitor(browser, url)
    try:
        alice.click("#mk-start")
        alice_key = new_key(app, set())
        alice.wait_for_function("document.querySelectorAll('#mk-timeline circle.mk-utt').length >= 1")
        bob.locator("#mk-use-visual input").uncheck()
        bob_key = new_key(app, {alice_key})
        alice_visitor, bob_visitor = app.visitors.peek(alice_key), app.visitors.peek(bob_key)
        assert not bob_visitor.enabled["visual"] and alice_visitor.enabled["visual"]
        # Bob's switch leaves Alice's camera on (the demo's first lines show a slide, no face:
        # "missing" then, never "disabled").
        assert alice_visitor.session.status()["visual"] in ("active", "missing")
        time.sleep(1.5)  # a few refreshes: bob's page still shows nothing of alice's conversation
        assert bob.locator("#mk-timeline circle.mk-utt").count() == 0
        assert "No utterance yet" in bob.inner_text("#mk-current")
        assert alice.locator("#mk-use-visual input").is_checked()
        bob.wait_for_selector('#mk-status .mk-status[data-modality="visual"][data-state="disabled"]')
        assert alice.locator('#mk-status .mk-status[data-modality="visual"]:not([data-state="disabled"])').count() == 1

        # A switch changed elsewhere (here by the server) shows on the visitor's page: always the true state.
        alice_visitor.set_enabled("visual", False)
        alice.wait_for_function("!document.querySelector('#mk-use-visual input').checked")
        alice.wait_for_selector('#mk-status .mk-status[data-modality="visual"][data-state="disabled"]')

        # Visitors choose among the installed checkpoints; the list holds names, not paths.
        alice.click("#mk-checkpoint input")
        options = alice.locator("ul[role='listbox'] li").all_inner_texts()
        assert options and {o.replace("✓", "").strip() for o in options} == set(app.visitors.checkpoints)
        assert not any("/" in o for o in options)
        alice.keyboard.press("Escape")
    finally:
        bob_context.close()
    # Bob closed his tab: his session and switches are gone from the server.
    deadline = time.monotonic() + 30
    while app.visitors.peek(bob_key) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert app.visitors.peek(bob_key) is None
    assert app.visitors.peek(alice_key) is not None
    alice_context.close()


@pytest.mark.slow
@browser_only
def test_browser_media_is_not_kept_and_a_switched_off_microphone_stops_streaming(served, browser, monkeypatch):
    from momke.realtime.sources import browser as browser_source

    _app, url, upload_dir = served
    pushed = {"audio": 0, "visual": 0}
    lock = threading.Lock()
    for cls, modality in ((browser_source.PushedMicrophone, "audio"), (browser_source.PushedCamera, "visual")):
        original = cls.push

        def counting(self, *args, _original=original, _modality=modality):
            with lock:
                pushed[_modality] += 1
            return _original(self, *args)

        monkeypatch.setattr(cls, "push", counting)
    context, page = open_visitor(browser, url)
    uploads, streamed = [], []
    page.on("request", lambda request: uploads.append(time.monotonic()) if "/upload" in request.url else None)
    page.on("request", lambda request: streamed.append(time.monotonic()) if "/stream/" in request.url else None)
    try:
        page.get_by_label(SOURCE_BROWSER).check()
        page.wait_for_selector("#mk-mic", state="visible")
        page.click("#mk-start")
        page.wait_for_function("document.querySelector('#mk-info textarea').value.startsWith('Running: My browser')")
        page.locator("#mk-webcam button", has_text="Click to Access Webcam").click()
        page.locator("#mk-webcam button", has_text="Record").click()
        page.locator("#mk-mic button", has_text="Record").click()
        page.wait_for_selector('#mk-status .mk-status[data-modality="audio"][data-state="active"]', timeout=60_000)
        oldest = 0.0
        for _ in range(25):  # 5 s of streaming: a chunk stays on disk only until it is read (or swept)
            now = time.time()
            ages = [now - f.stat().st_mtime for f in audio_files(upload_dir) if f.exists()]
            oldest = max([oldest, *ages])
            time.sleep(0.2)
        assert pushed["audio"] > 0 and pushed["visual"] > 0
        assert oldest < 4.0, f"an audio chunk stayed {oldest:.1f} s on disk"

        # Audio off: the microphone disappears from the page and the browser stops sending it.
        page.locator("#mk-use-audio input").uncheck()
        page.wait_for_selector("#mk-mic", state="hidden")
        time.sleep(1.0)  # what was already on its way (each microphone chunk is one upload)
        switched = time.monotonic()
        with lock:
            before = dict(pushed)
        time.sleep(3.0)
        with lock:
            assert pushed["audio"] == before["audio"], "audio reached the session after the switch"
        assert uploads and not [t for t in uploads if t > switched], "the browser kept uploading audio"
        with lock:
            assert pushed["visual"] > before["visual"]  # the webcam, still on, keeps streaming

        # Visual off too: the webcam disappears and the browser streams nothing at all.
        page.locator("#mk-use-visual input").uncheck()
        page.wait_for_selector("#mk-webcam", state="hidden")
        time.sleep(1.0)
        switched = time.monotonic()
        time.sleep(2.0)
        assert streamed and not [t for t in streamed if t > switched], "the browser kept streaming media"
        page.click("#mk-stop")
        page.wait_for_function("document.querySelector('#mk-info textarea').value.startsWith('Stopped')")
        deadline = time.monotonic() + 5  # the sweeper's bound: chunks nobody read go within ~3 s
        while audio_files(upload_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert audio_files(upload_dir) == []  # nothing of the visitor's voice left on disk
    finally:
        context.close()


def test_start_answers_at_once_and_a_preloaded_server_starts_warm(visitors):
    """The page's Start (wait=False) returns "Starting" with the sensors "loading" before any
    model is loaded; the server's preload has the extractors warm for the first session, which
    then uses them (no load of its own); a stop while starting drops the late session."""
    visitors.preload().join(300)
    assert visitors.profile is not None
    preloaded = visitors.profile
    alice = visitors.get("alice")
    answer = alice.start(SOURCE_DEMO, DEFAULT_CHECKPOINT_NAME, fast=True, wait=False)
    assert answer.startswith("Starting") and alice.running()
    assert {s.state for s in alice.state.snapshot().status.values()} <= {"loading", "active"}
    deadline = time.monotonic() + 120
    while alice.session is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alice.info().startswith(("Running", "Finished")) and alice.session.profile is preloaded
    assert alice.session.wait(120)
    bob = visitors.get("bob")
    assert bob.start(SOURCE_DEMO, DEFAULT_CHECKPOINT_NAME, wait=False).startswith("Starting")
    assert bob.stop() == "Stopped." and not bob.running()
    time.sleep(2.0)  # the load that was under way ends: its session is never started
    assert bob.session is None and bob.info() == "Stopped."
