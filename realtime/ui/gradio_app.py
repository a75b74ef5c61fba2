"""The Gradio live demo (`momke-live --gradio` or `momke-demo`).

Three ways in, one engine (`LiveSession`):
- the bundled demo conversation, replayed as if live (its video is shown beside the results);
- this server's own microphone and camera (one visitor at a time: they are one device);
- the visitor's browser webcam and microphone, streamed to the server (PushedMicrophone /
  PushedCamera in sources/browser.py feed the session like local devices).

Every visitor (a browser tab: Gradio's session hash) has a session of their own: source,
privacy switches, history and views. Nothing is shared between visitors but the loaded
extractors; at most `max_sessions` sessions run at once, and a visitor's session ends when the
tab closes. Visitors choose a checkpoint from the installed ones, never a server path.

Privacy of streamed media: a webcam frame arrives inline and is decoded in memory; a microphone
chunk arrives as a small file in Gradio's upload folder, which is read and deleted at once. A
switched-off modality's browser device is hidden on the page, which stops the browser streaming
it: nothing of it is received (and anything still in flight is deleted unread).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from ...extractors.runtime import bundled
from ...models.config import MODALITIES
from ..events import StatusEvent
from ..options import LiveOptions
from . import gradio_views as views
from .live_state import LiveState

log = logging.getLogger(__name__)

SOURCE_DEMO = "Bundled demo conversation"
SOURCE_SERVER = "This server's microphone and camera"
SOURCE_BROWSER = "My browser's webcam and microphone"
SOURCES = (SOURCE_DEMO, SOURCE_SERVER, SOURCE_BROWSER)
DEFAULT_CHECKPOINT_NAME = "default (shipped)"
DEMO_VIDEO = bundled("demo", "conversation.mp4")
README = Path(__file__).resolve().parents[2] / "README.md"
INTENDED_USE_ANCHOR = "intended-use"  # README's "## Intended use", shown at the page's foot under this id
INTENDED_USE_LINE = (
    "**Intended use:** a reading estimates the emotion a voice, face or line *expresses* (learnt mostly "
    "from acted recordings), not what anyone feels; everyone recorded should know and agree. Never for "
    "decisions about people (hiring, grading, policing, credit) nor to monitor workers or pupils "
    f"(prohibited by the EU AI Act, Art. 5(1)(f)). [More: the README's section](#{INTENDED_USE_ANCHOR})"
)


def readme_section(title: str) -> str | None:
    """The README's "## title" section (up to the next "## "), or None without a README."""
    try:
        text = README.read_text(encoding="utf-8")
    except OSError:
        return None
    head = f"## {title}\n"
    if head not in text:
        return None
    body = text.split(head, 1)[1]
    return body.split("\n## ", 1)[0].strip()
SERVER_IN_USE = ("This server's microphone and camera are in use by another visitor. "
                 "Try the bundled demo or your browser's webcam and microphone.")


def installed_checkpoints(extra: Path | None = None) -> dict[str, Path | None]:
    """Name -> directory of the checkpoints a visitor may choose: the shipped default, the other
    checkpoints installed beside it, and the one the server was started with."""
    from ...models.checkpoint import DEFAULT_CHECKPOINT

    found: dict[str, Path | None] = {DEFAULT_CHECKPOINT_NAME: None}
    folder = DEFAULT_CHECKPOINT.parent
    if folder.is_dir():
        for directory in sorted(folder.iterdir()):
            if directory != DEFAULT_CHECKPOINT and (directory / "config.json").is_file():
                found[directory.name] = directory
    if extra is not None and Path(extra).resolve() not in {DEFAULT_CHECKPOINT, *found.values()}:
        found = {Path(extra).resolve().name: Path(extra), **found}
    return found


class LiveDemo:
    """One visitor's session: the running LiveSession, the LiveState the page shows, the privacy
    switches. Thread-safe. `hub` holds what visitors share (see Visitors)."""

    def __init__(self, hub: Visitors, key: str = "") -> None:
        self.hub = hub
        self.key = key
        self.enabled = {m: m not in hub.disabled for m in MODALITIES}
        self._lock = threading.RLock()
        self.session = None
        self.state = self._idle_state()
        self.source = None
        self.microphone = self.camera = None
        self.message = "Choose a source and press Start."
        self._starting = False  # a session is being made (start(wait=False))
        self._generation = 0  # bumped by every start and stop: a late load knows it is stale

    def _idle_state(self) -> LiveState:
        return LiveState(status={m: "idle" if on else "disabled" for m, on in self.enabled.items()})

    # ---------------------------------------------------------------------------- controls
    def start(self, source: str, checkpoint: str | None = None, fast: bool = False, wait: bool = True) -> str:
        """Start a session on `source`. wait=False (the page's Start button) answers at once with
        "Starting: ..." and loads the model on a thread of its own; the page shows the sensors as
        "loading" meanwhile, then "Running: ..."."""
        with self._lock:
            self.stop()
            refusal = self._refusal(source, checkpoint)
            if refusal:
                self.message = refusal
                return refusal
            self._generation += 1
            self.source = source
            self.state = LiveState(status={m: "loading" if on else "disabled" for m, on in self.enabled.items()})
            self.message = f"Starting: {source} (loading the model…)"
            if wait:
                return self._open(self._generation, source, checkpoint, fast)
            self._starting = True
            threading.Thread(target=self._open, args=(self._generation, source, checkpoint, fast),
                             name="momke-gradio-start", daemon=True).start()
            return self.message

    def _open(self, generation: int, source: str, checkpoint: str | None, fast: bool) -> str:
        """Make and start the session (slow: outside the lock), unless the visitor stopped or
        started again meanwhile."""
        try:
            session, microphone, camera = self._make_session(source, checkpoint, fast)
        except Exception as error:
            log.info("cannot start", exc_info=True)
            with self._lock:
                if generation == self._generation:
                    self._starting = False
                    self.hub.release_server(self.key)
                    self.message = f"Cannot start: {error}"
                return self.message
        with self._lock:
            if generation != self._generation:  # stopped (or started again) while loading
                return self.message
            for modality, on in self.enabled.items():  # switches flipped while it loaded
                session.set_enabled(modality, on)
            session.on_event(self.state.update)
            session.start()
            self.message = f"Running: {source}" + (" (fast replay)" if fast and source == SOURCE_DEMO else "")
            self.session, self.microphone, self.camera = session, microphone, camera  # (after the message)
            self._starting = False
            return self.message

    def _refusal(self, source: str, checkpoint: str | None) -> str | None:
        if source not in SOURCES:
            return "Choose one of the sources."
        if checkpoint is not None and checkpoint not in self.hub.checkpoints:
            return "Unknown checkpoint: choose one from the list."
        if self.hub.running_sessions() >= self.hub.max_sessions:
            return (f"The server is busy ({self.hub.max_sessions} sessions running, the most it serves at once). "
                    "Try again in a moment.")
        if source == SOURCE_SERVER and not self.hub.claim_server(self.key):
            return SERVER_IN_USE
        return None

    def _make_session(self, source: str, checkpoint: str | None, fast: bool):
        from ..session import LiveSession

        factory = self.hub.session_factory or LiveSession
        self.hub.wait_preloaded(timeout=120)
        chosen = {"checkpoint": self.hub.checkpoints.get(checkpoint) if checkpoint else None,
                  "disabled": tuple(m for m, on in self.enabled.items() if not on)}
        if self.hub.profile is not None:
            chosen["profile"] = self.hub.profile
        options = LiveOptions.of(self.hub.options, **chosen)
        microphone = camera_device = None
        if source == SOURCE_DEMO:
            session = factory.demo(options=options, realtime=not fast, asr=None)
        elif source == SOURCE_SERVER:
            from .device_probe import probe_camera, probe_microphone

            mic = probe_microphone()
            if not mic.found:
                raise ValueError(f"this server has no usable microphone ({mic.detail}); "
                                 f"try the bundled demo or your browser's microphone")
            # With visual off the camera is not even probed: the session opens it only if the
            # visitor switches visual on (and reports it missing if there is none).
            camera = 0 if not self.enabled["visual"] or probe_camera(0).found else None
            # Probed above, with this page's own message: the session need not open them again.
            session = factory(options=LiveOptions.of(options, microphone="default", camera=camera, check_devices=False))
        else:
            from ..sources.browser import PushedCamera, PushedMicrophone

            microphone, camera_device = PushedMicrophone(), PushedCamera()
            session = factory(options=LiveOptions.of(options, microphone=microphone, camera=camera_device))
            microphone.bind_clock(session.clock.now)
        self.hub.profile = getattr(session, "profile", None)
        return session, microphone, camera_device

    def stop(self) -> str:
        with self._lock:
            if self._starting:  # a load still running is dropped when it ends
                self._starting = False
                self._generation += 1
                self.message = "Stopped."
            session, self.session = self.session, None
            self.microphone = self.camera = None
            if session is not None:
                session.stop()
                self.message = "Stopped."
            self.hub.release_server(self.key)
            return self.message

    def set_enabled(self, modality: str, enabled: bool) -> None:
        with self._lock:
            self.enabled[modality] = bool(enabled)
            if self.session is not None:
                self.session.set_enabled(modality, bool(enabled))
            elif self._starting:  # applied to the session once it is made
                self.state.update(StatusEvent(modality=modality, state="loading" if enabled else "disabled"))
            else:
                self.state = self._idle_state()

    def push_audio(self, chunk) -> None:
        """A streamed microphone chunk: (sample_rate, int16 samples [n] or [n, channels])."""
        microphone = self.microphone
        if microphone is not None and chunk is not None and self.enabled["audio"]:
            rate, samples = chunk
            microphone.push(rate, samples)

    def push_frame(self, frame) -> None:
        camera = self.camera
        if camera is not None and frame is not None and self.enabled["visual"]:
            camera.push(frame)

    def running(self) -> bool:
        session = self.session
        return self._starting or (session is not None and not session.wait(timeout=0))

    def info(self) -> str:
        count = self.state.emotion_count
        if self.session is None:
            return self.message
        if not self.running():
            return f"Finished: {self.source} ({count} utterances)."
        return f"{self.message} ({count} utterances so far)"


class Visitors:
    """Every visitor's LiveDemo, by Gradio session hash, and what they share: the checkpoints on
    offer, the loaded extractors, the server's own devices (one visitor at a time) and a bound on
    the sessions running at once. Thread-safe."""

    def __init__(self, checkpoints: dict[str, Path | None] | None = None, device: str | None = None,
                 disabled=(), session_factory=None, max_sessions: int = 4, options: LiveOptions | None = None) -> None:
        """options: what every visitor's session starts from (the server's --language,
        --min-transcript-confidence; `device` overrides its device); each visitor's source,
        checkpoint and switches are set on top of it."""
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self.checkpoints = checkpoints or {DEFAULT_CHECKPOINT_NAME: None}
        self.options = LiveOptions.of(options, **({"device": device} if device is not None else {}))
        self.device = self.options.device
        self.disabled = tuple(disabled)
        self.session_factory = session_factory
        self.max_sessions = max_sessions
        self.profile = None  # the loaded feature extractors, kept across sessions (slow to load)
        self._preloading: threading.Thread | None = None
        self._lock = threading.Lock()
        self._visitors: dict[str, LiveDemo] = {}
        self._server_holder: str | None = None

    def preload(self, checkpoint: Path | None = None) -> threading.Thread:
        """Load and warm the feature extractors of `checkpoint` (default: the shipped one) and the
        live speech-to-text in the background, so that a fresh server's first Start finds them
        ready (the first utterance's event then follows its end as it does later on)."""
        thread = threading.Thread(target=self._preload, args=(checkpoint,), name="momke-preload", daemon=True)
        self._preloading = thread
        thread.start()
        return thread

    def _preload(self, checkpoint: Path | None) -> None:
        try:
            from ...extractors.profiles import load_profile
            from ...models.checkpoint import DEFAULT_CHECKPOINT, load_config
            from ..asr import make_asr
            from ..pipeline import warm_up_utterance

            config = load_config(checkpoint or DEFAULT_CHECKPOINT)
            profile = load_profile(config.feature_profile, device=self.device)
            for modality in MODALITIES:
                if modality not in self.disabled:
                    profile.extractor(modality).extract(warm_up_utterance())
            with self._lock:
                if self.profile is None:
                    self.profile = profile
            # the engine is cached for the sessions' ASR (the model the language needs)
            make_asr("whisper", language=self.options.asr_language, device=self.device)
        except Exception:
            log.info("preloading the extractors failed", exc_info=True)

    def wait_preloaded(self, timeout: float | None = None) -> None:
        """A session about to be made waits for a preload still running (not to load twice)."""
        thread = self._preloading
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def get(self, key: str) -> LiveDemo:
        with self._lock:
            visitor = self._visitors.get(key)
            if visitor is None:
                visitor = self._visitors[key] = LiveDemo(self, key)
            return visitor

    def peek(self, key: str) -> LiveDemo | None:
        with self._lock:
            return self._visitors.get(key)

    def drop(self, key: str) -> None:
        """The visitor left (tab closed): stop their session and forget everything of it."""
        with self._lock:
            visitor = self._visitors.pop(key, None)
        if visitor is not None:
            visitor.stop()

    def all(self) -> list[LiveDemo]:
        with self._lock:
            return list(self._visitors.values())

    def stop_all(self) -> None:
        for key in [v.key for v in self.all()]:
            self.drop(key)

    def running_sessions(self) -> int:
        return sum(1 for visitor in self.all() if visitor.running())

    def claim_server(self, key: str) -> bool:
        with self._lock:
            if self._server_holder not in (None, key):
                return False
            self._server_holder = key
            return True

    def release_server(self, key: str) -> None:
        with self._lock:
            if self._server_holder == key:
                self._server_holder = None

    @property
    def server_holder(self) -> str | None:
        return self._server_holder


def read_and_delete(path: str | None):
    """A streamed microphone chunk Gradio wrote to its upload folder: read it, then delete it (and
    its folder) at once, so no audio of a visitor stays on disk."""
    if not path:
        return None
    import soundfile as sf

    file = Path(path)
    try:
        samples, rate = sf.read(str(file), dtype="int16", always_2d=False)
        return rate, samples
    except Exception:  # a chunk the browser cut short: skip it
        log.debug("unreadable audio chunk %s", file, exc_info=True)
        return None
    finally:
        delete_upload(file)


def delete_upload(file: Path) -> None:
    file.unlink(missing_ok=True)
    try:
        file.parent.rmdir()  # Gradio puts each upload in a folder of its own
    except OSError:
        pass


AUDIO_SUFFIXES = (".wav", ".webm", ".ogg", ".mp3", ".m4a", ".flac")


class UploadSweeper(threading.Thread):
    """Deletes audio chunks no handler read: the ones still in flight when a visitor switched audio
    off or left, and the few Gradio finishes writing only after the handler ran. Looks at this
    app's uploads only (`Blocks.upload_file_set`, the set Gradio's own cache deletion uses)."""

    def __init__(self, uploads: set, max_age_s: float = 2.0, every_s: float = 1.0) -> None:
        super().__init__(name="momke-upload-sweeper", daemon=True)
        self.uploads, self.max_age_s, self.every_s = uploads, max_age_s, every_s
        self.stopped = threading.Event()
        self._missing: dict[str, float] = {}  # name -> when first seen missing

    def sweep(self) -> int:
        swept, now = 0, time.time()
        for name in list(self.uploads):
            file = Path(name)
            if file.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            try:
                if now - file.stat().st_mtime < self.max_age_s:
                    continue  # a handler may be about to read it
            except FileNotFoundError:
                # Read and deleted already, or Gradio has not moved it into place yet: forget the
                # name only once it has stayed missing for a while.
                if now - self._missing.setdefault(name, now) > 10 * self.max_age_s:
                    self.uploads.discard(name)
                    self._missing.pop(name, None)
                continue
            delete_upload(file)
            self.uploads.discard(name)
            swept += 1
        return swept

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                self.sweep()
            except Exception:  # never let the sweeper die: it is the backstop
                log.warning("upload sweep failed", exc_info=True)


# -------------------------------------------------------------------------------- the page
# The browser asks for two clicks of the visitor's own (Gradio's components), said next to them.
BROWSER_HINTS = {
    "visual": "① Under the picture: **Click to Access Webcam** (allow it), then **Record** to stream it.",
    "audio": "② Under the microphone: **Record** (allow it) to stream your voice.",
}
TIMELINE_SIZE = {"width": 1200, "height": 240}  # the page's full width, drawn about 1:1
PAGE_CSS = """
#mk-current, #mk-status, #mk-transcript, #mk-loads { padding: 0 !important; }
#mk-transcript table { margin: 0 !important; border: none !important; }
#mk-transcript td, #mk-transcript th { padding: 1px 6px !important; border: none !important;
  border-bottom: 1px solid #e5e7eb !important; line-height: 1.3 !important; vertical-align: top; }
"""


# The demo video plays from the start with the replay, once the session runs (Start answers at
# once with "Starting: ..."; the model loads meanwhile), muted if the browser refuses sound without
# a fresh click.
PLAY_DEMO_VIDEO = f"""(source, info) => {{
  if (source !== {SOURCE_DEMO!r} || !info.startsWith('Start')) return;
  const play = (tries) => {{
    const video = document.querySelector('#mk-demo-video video');
    const state = document.querySelector('#mk-info textarea');
    const running = state && state.value.startsWith('Running');
    if (!video || video.readyState < 2 || !running) {{ if (tries > 0) setTimeout(() => play(tries - 1), 100); return; }}
    video.currentTime = 0;
    video.play().catch(() => {{ video.muted = true; return video.play(); }})
      .catch(() => {{ if (tries > 0) setTimeout(() => play(tries - 1), 250); }});
  }};
  play(1200);
}}"""
PAUSE_DEMO_VIDEO = "() => { const video = document.querySelector('#mk-demo-video video'); if (video) video.pause(); }"


def build_app(visitors: Visitors, refresh_s: float = 0.5):
    import gradio as gr

    checkpoint_names = list(visitors.checkpoints)
    blank = LiveState(status={m: "idle" for m in MODALITIES}).snapshot()
    # delete_cache: a backstop only; streamed audio chunks are deleted as soon as they are read.
    with gr.Blocks(title="momke-live", analytics_enabled=False, delete_cache=(30, 30)) as app:
        gr.Markdown("### momke-live: live multimodal emotion recognition (MoMKE)\n"
                    "Speech, face and words → one emotion per utterance. The bundled demo is synthetic "
                    "(espeak-ng voices over a still photo): it shows the pipeline, not accuracy. The voice path learnt "
                    "from human voices and misreads the synthetic one; untick \"use audio\" to read the words and the "
                    "face alone.\n\n" + INTENDED_USE_LINE)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=250):
                source = gr.Radio(list(SOURCES), value=SOURCE_DEMO, label="Source", elem_id="mk-source")
                checkpoint = gr.Dropdown(checkpoint_names, value=checkpoint_names[0], allow_custom_value=False,
                                         label="Checkpoint (installed)", elem_id="mk-checkpoint")
                fast = gr.Checkbox(False, label="Fast replay (demo only)", elem_id="mk-fast")
                with gr.Row():
                    start = gr.Button("Start", variant="primary", elem_id="mk-start")
                    stop = gr.Button("Stop", elem_id="mk-stop")
                gr.Markdown("**Privacy**: a switched-off modality is not captured and nothing of it is kept.")
                switches = {m: gr.Checkbox(m not in visitors.disabled, label=f"use {m}", elem_id=f"mk-use-{m}")
                            for m in MODALITIES}
            with gr.Column(scale=4, min_width=300, elem_id="mk-input"):
                demo_video = gr.Video(str(DEMO_VIDEO), label="Input: the demo conversation", interactive=False,
                                      autoplay=False, elem_id="mk-demo-video", height=230)
                webcam_hint = gr.Markdown(BROWSER_HINTS["visual"], visible=False, elem_id="mk-webcam-hint")
                webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Input: your webcam",
                                  elem_id="mk-webcam", visible=False, height=230)
                mic_hint = gr.Markdown(BROWSER_HINTS["audio"], visible=False, elem_id="mk-mic-hint")
                mic = gr.Audio(sources=["microphone"], streaming=True, type="filepath", format=None,
                               label="Input: your microphone", elem_id="mk-mic", visible=False)
                server_note = gr.Markdown("Input: this server's own microphone and camera (no preview here).",
                                          visible=False, elem_id="mk-server-note")
            with gr.Column(scale=6, min_width=420):
                # The session's state first: visible without scrolling on a 1280x800 screen.
                info = gr.Textbox("Choose a source and press Start.", label="Session", interactive=False,
                                  elem_id="mk-info", lines=2)
                status = gr.HTML(views.status_html(blank), elem_id="mk-status")
                current = gr.HTML(views.current_html(blank), elem_id="mk-current")
                transcript = gr.HTML(views.transcript_html(blank, last=6), elem_id="mk-transcript")
                loads = gr.HTML(views.expert_loads_html(blank), elem_id="mk-loads")
        gr.Markdown("**Emotion timeline** (probability per label; dots: the predicted emotion)")
        timeline = gr.HTML(views.timeline_svg(blank, **TIMELINE_SIZE), elem_id="mk-timeline")
        with gr.Accordion("Intended use (the README's section)", open=False, elem_id=INTENDED_USE_ANCHOR):
            gr.Markdown(readme_section("Intended use") or "See the project's README, section \"Intended use\".")

        inputs_shown = [demo_video, webcam, mic, server_note, webcam_hint, mic_hint]
        views_out = [info, status, current, transcript, loads, timeline]
        boxes = [switches[m] for m in MODALITIES]
        last_key = gr.State(None)

        def input_updates(chosen: str, visitor: LiveDemo | None) -> list:
            """Only the chosen source's input is shown; a browser device whose modality is off is
            hidden, which stops the browser streaming it."""
            enabled = visitor.enabled if visitor else {m: m not in visitors.disabled for m in MODALITIES}
            browser = chosen == SOURCE_BROWSER
            return [gr.Video(visible=chosen == SOURCE_DEMO), gr.Image(visible=browser and enabled["visual"]),
                    gr.Audio(visible=browser and enabled["audio"]), gr.Markdown(visible=chosen == SOURCE_SERVER),
                    gr.Markdown(visible=browser and enabled["visual"]), gr.Markdown(visible=browser and enabled["audio"])]

        def render_views(visitor: LiveDemo | None, key):
            snap = visitor.state.snapshot() if visitor else blank
            message = visitor.info() if visitor else "Choose a source and press Start."
            enabled = tuple(visitor.enabled.values()) if visitor else None
            new_key = (id(visitor.state) if visitor else None, len(snap.history), len(snap.dropped),
                       tuple((m, s.state, s.reason) for m, s in snap.status.items()), message, enabled)
            if new_key == key:
                return [gr.skip()] * (len(views_out) + len(boxes)) + [key]
            # The switches show this visitor's true state (never another visitor's), sent only when
            # it changed on the server: a refresh never undoes a click still on its way.
            changed = visitor is not None and (key is None or key[-1] != enabled)
            box_values = [gr.Checkbox(value=visitor.enabled[m]) if changed else gr.skip() for m in MODALITIES]
            return [message, views.status_html(snap), views.current_html(snap), views.transcript_html(snap, last=6),
                    views.expert_loads_html(snap), views.timeline_svg(snap, **TIMELINE_SIZE), *box_values, new_key]

        def refresh(key, request):
            return render_views(visitors.peek(request.session_hash), key)

        def on_load(request):
            visitor = visitors.peek(request.session_hash)
            chosen = visitor.source if visitor and visitor.source else SOURCE_DEMO
            return [*render_views(visitor, None), *input_updates(chosen, visitor)]

        def on_start(src, ckpt, is_fast, request):
            visitor = visitors.get(request.session_hash)
            visitor.start(src, ckpt, bool(is_fast), wait=False)  # answers at once; the model loads meanwhile
            return [*render_views(visitor, None), *input_updates(src, visitor)]

        def on_stop(src, request):
            visitor = visitors.peek(request.session_hash)
            if visitor is not None:
                visitor.stop()
            return [visitor.info() if visitor else "Stopped.", *input_updates(src, visitor)]

        def on_switch(modality: str, on: bool, src, request):
            visitor = visitors.get(request.session_hash)
            visitor.set_enabled(modality, bool(on))
            return input_updates(src, visitor)

        def on_source(src, request):
            return input_updates(src, visitors.peek(request.session_hash))

        def on_audio(path, request):
            chunk = read_and_delete(path)  # deleted even when unused
            visitor = visitors.peek(request.session_hash)
            if visitor is not None and chunk is not None:
                visitor.push_audio(chunk)

        def on_frame(frame, request):
            visitor = visitors.peek(request.session_hash)
            if visitor is not None:
                visitor.push_frame(frame)

        def switch_handler(modality: str):
            return lambda on, src, request: on_switch(modality, on, src, request)

        def forget_visitor(request):
            visitors.drop(request.session_hash)

        # Gradio passes the visitor's request (its session hash: whose session) to a parameter
        # annotated gr.Request; with postponed annotations in this module, set the class itself.
        for handler in (refresh, on_load, on_start, on_stop, on_source, on_audio, on_frame, forget_visitor):
            handler.__annotations__["request"] = gr.Request
        app.load(on_load, None, [*views_out, *boxes, last_key, *inputs_shown])
        start.click(on_start, [source, checkpoint, fast], [*views_out, *boxes, last_key, *inputs_shown],
                    concurrency_limit=None).then(
            None, [source, info], None, js=PLAY_DEMO_VIDEO)
        stop.click(on_stop, [source], [info, *inputs_shown], concurrency_limit=None).then(
            None, None, None, js=PAUSE_DEMO_VIDEO)
        source.input(on_source, [source], inputs_shown)
        for modality, box in switches.items():
            handler = switch_handler(modality)
            handler.__annotations__["request"] = gr.Request
            box.input(handler, [box, source], inputs_shown)
        webcam.stream(on_frame, [webcam], None, stream_every=0.2, show_progress="hidden", concurrency_limit=None)
        mic.stream(on_audio, [mic], None, stream_every=0.25, show_progress="hidden", concurrency_limit=None)
        timer = gr.Timer(refresh_s)
        timer.tick(refresh, [last_key], [*views_out, *boxes, last_key], show_progress="hidden", concurrency_limit=None)
        app.unload(forget_visitor)
    return app


def server_options(args) -> LiveOptions:
    """The visitors' sessions' options from --language / --min-transcript-confidence (a
    threshold left out: the session's default)."""
    settings = {"asr_language": args.language}
    if args.min_transcript_confidence is not None:
        settings["min_transcript_confidence"] = args.min_transcript_confidence
    return LiveOptions(**settings)


def launch(host: str = "127.0.0.1", port: int = 7860, checkpoint: Path | None = None, device: str | None = None,
           disabled=(), block: bool = True, max_sessions: int = 4, options: LiveOptions | None = None):
    """Serve the page until the server stops (0) or Ctrl-C (KeyboardInterrupt, after a clean
    shutdown); with block=False, return (app, url) at once. options: see Visitors."""
    visitors = Visitors(installed_checkpoints(checkpoint), device=device, disabled=disabled,
                        max_sessions=max_sessions, options=options)
    visitors.preload(checkpoint)  # the page offers it first when given
    app = build_app(visitors)
    app.queue(default_concurrency_limit=4)
    _, url, _ = app.launch(server_name=host, server_port=port or None, prevent_thread_lock=True,
                           ssr_mode=False, quiet=not block, show_error=True, css=PAGE_CSS)
    app.visitors = visitors  # for embedding hosts and tests
    sweeper = UploadSweeper(app.upload_file_set)
    sweeper.start()
    app.upload_sweeper = sweeper
    if not block:
        return app, url
    print(f"momke-live: serving the demo on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        while app.is_running:  # Gradio's block_thread() would swallow Ctrl-C: the caller says 130
            time.sleep(0.2)
    finally:  # Ctrl-C (KeyboardInterrupt) goes on to the caller after the clean shutdown
        close(app)
    return 0


def close(app) -> None:
    """Stop every visitor's session, the sweeper and the server (Gradio then deletes its cache)."""
    app.visitors.stop_all()
    # A preload still loading native code (torch, CTranslate2) when the interpreter exits aborts
    # the process (SIGABRT, "terminate called without an active exception"): Ctrl-C soon after
    # launch waits for it to end instead.
    app.visitors.wait_preloaded(timeout=60)
    app.upload_sweeper.stopped.set()
    app.upload_sweeper.sweep()
    app.close()


def main(argv: list[str] | None = None) -> int:
    """`momke-demo`: the Gradio demo on its own."""
    from ...models.cli_common import OneLineErrorParser, VersionAction
    from .cli import _unit_float

    parser = OneLineErrorParser(prog="momke-demo", description="The momke-live Gradio demo.")
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help="address to serve on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860, metavar="N", help="port (default 7860; 0 = any free port)")
    parser.add_argument("--checkpoint", type=Path, metavar="DIR", help="an extra checkpoint directory to offer")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs (default auto)")
    parser.add_argument("--max-sessions", type=int, default=4, metavar="N", help="visitors' sessions running at once (default 4)")
    parser.add_argument("--language", metavar="CODE", default="en",
                        help="language spoken, for speech-to-text (default en; see momke-live --help)")
    parser.add_argument("--min-transcript-confidence", metavar="X", type=_unit_float,
                        help="speech-to-text words less sure than X (0-1, default 0.5) are not used for emotion")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        return launch(args.host, args.port, args.checkpoint, None if args.device == "auto" else args.device,
                      max_sessions=args.max_sessions, options=server_options(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
