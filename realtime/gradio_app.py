"""The Gradio live demo (`momke-live --gradio` or `momke-demo`).

Three ways in, one engine (`LiveSession`):
- the bundled demo conversation, replayed as if live;
- this server's own microphone and camera;
- the visitor's browser webcam and microphone, streamed to the server (PushedMicrophone /
  PushedCamera in browser_source.py feed the session like local devices).
Controls: start, stop, a privacy switch per modality (applied at once, mid-session too) and the
checkpoint. Views: the current emotion with probabilities, the emotion timeline, the Soft Router's
expert loads per modality, the transcript and each modality's status, refreshed by a timer.

One session is served at a time and every visitor sees it: this is a demo, not a multi-user
service. It listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from ..models.config import MODALITIES
from . import gradio_views as views
from .live_state import LiveState

log = logging.getLogger(__name__)

SOURCE_DEMO = "Bundled demo conversation"
SOURCE_SERVER = "This server's microphone and camera"
SOURCE_BROWSER = "My browser's webcam and microphone"
SOURCES = (SOURCE_DEMO, SOURCE_SERVER, SOURCE_BROWSER)
DEFAULT_CHECKPOINT_NAME = "default (shipped)"


class LiveDemo:
    """Owns the one running LiveSession and the LiveState the page shows. Thread-safe."""

    def __init__(self, checkpoints: dict[str, Path | None] | None = None, device: str | None = None,
                 disabled=(), session_factory=None) -> None:
        self.checkpoints = checkpoints or {DEFAULT_CHECKPOINT_NAME: None}
        self.device = device
        self.enabled = {m: m not in disabled for m in MODALITIES}
        self._session_factory = session_factory
        self._lock = threading.RLock()
        self._profile = None  # the loaded feature extractors, kept across sessions (slow to load)
        self.session = None
        self.state = LiveState()
        self.source = None
        self.microphone = self.camera = None
        self.message = "Choose a source and press Start."

    # ---------------------------------------------------------------------------- controls
    def start(self, source: str, checkpoint: str | None = None, fast: bool = False) -> str:
        with self._lock:
            self.stop()
            try:
                self.session = self._make_session(source, checkpoint, fast)
            except Exception as error:
                log.info("cannot start", exc_info=True)
                self.message = f"Cannot start: {error}"
                return self.message
            self.state = LiveState()
            self.session.on_event(self.state.update)
            self.source = source
            self.session.start()
            self.message = f"Running: {source}" + (" (fast replay)" if fast and source == SOURCE_DEMO else "")
            return self.message

    def _make_session(self, source: str, checkpoint: str | None, fast: bool):
        from .session import LiveSession

        factory = self._session_factory or LiveSession
        ckpt = self.checkpoints.get(checkpoint, checkpoint) if checkpoint else None
        common = {"checkpoint": ckpt, "device": self.device,
                  "disabled": tuple(m for m, on in self.enabled.items() if not on)}
        if self._profile is not None:
            common["profile"] = self._profile
        self.microphone = self.camera = None
        if source == SOURCE_DEMO:
            session = factory.demo(realtime=not fast, asr=None, **common)
        elif source == SOURCE_SERVER:
            from .device_probe import probe_camera, probe_microphone

            mic, cam = probe_microphone(), probe_camera(0)
            if not mic.found:
                raise ValueError(f"this server has no usable microphone ({mic.detail}); "
                                 f"try the bundled demo or your browser's microphone")
            session = factory(microphone="default", camera=0 if cam.found else None, **common)
        elif source == SOURCE_BROWSER:
            from .browser_source import PushedCamera, PushedMicrophone

            self.microphone, self.camera = PushedMicrophone(), PushedCamera()
            session = factory(microphone=self.microphone, camera=self.camera, **common)
            self.microphone.bind_clock(session.clock.now)
        else:
            raise ValueError(f"unknown source {source!r}; choose one of {SOURCES}")
        self._profile = getattr(session, "profile", None)
        return session

    def stop(self) -> str:
        with self._lock:
            session, self.session = self.session, None
            self.microphone = self.camera = None
            if session is not None:
                session.stop()
                self.message = "Stopped."
            return self.message

    def set_enabled(self, modality: str, enabled: bool) -> None:
        with self._lock:
            self.enabled[modality] = bool(enabled)
            if self.session is not None:
                self.session.set_enabled(modality, bool(enabled))

    def push_audio(self, chunk) -> None:
        """A streamed gr.Audio chunk: (sample_rate, int16 samples [n] or [n, channels])."""
        microphone = self.microphone
        if microphone is not None and chunk is not None:
            rate, samples = chunk
            microphone.push(rate, samples)

    def push_frame(self, frame) -> None:
        camera = self.camera
        if camera is not None and frame is not None:
            camera.push(frame)

    def running(self) -> bool:
        session = self.session
        return session is not None and not session.wait(timeout=0)

    def info(self) -> str:
        count = self.state.emotion_count
        if self.session is None:
            return self.message
        if not self.running():
            return f"Finished: {self.source} ({count} utterances)."
        return f"{self.message} ({count} utterances so far)"


# -------------------------------------------------------------------------------- the page
def build_app(demo_state: LiveDemo, refresh_s: float = 0.5):
    import gradio as gr

    checkpoint_names = list(demo_state.checkpoints)
    with gr.Blocks(title="momke-live", analytics_enabled=False) as app:  # no network calls from the demo
        gr.Markdown("## momke-live: live multimodal emotion recognition (MoMKE)\n"
                    "Speech, face and words → one emotion per utterance; the Soft Router's expert loads show "
                    "how each modality is spread over the modality experts. The bundled demo is synthetic "
                    "(espeak-ng voices over a still photo): it shows the pipeline, not accuracy.")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                source = gr.Radio(list(SOURCES), value=SOURCE_DEMO, label="Source", elem_id="mk-source")
                checkpoint = gr.Dropdown(checkpoint_names, value=checkpoint_names[0], allow_custom_value=True,
                                         label="Checkpoint (name or directory)", elem_id="mk-checkpoint")
                fast = gr.Checkbox(False, label="Fast replay (demo only)", elem_id="mk-fast")
                with gr.Row():
                    start = gr.Button("Start", variant="primary", elem_id="mk-start")
                    stop = gr.Button("Stop", elem_id="mk-stop")
                gr.Markdown("**Privacy**: a switched-off modality is not captured and nothing of it is kept.")
                switches = {m: gr.Checkbox(demo_state.enabled[m], label=f"use {m}", elem_id=f"mk-use-{m}")
                            for m in MODALITIES}
                info = gr.Textbox(demo_state.info(), label="Session", interactive=False, elem_id="mk-info")
                with gr.Accordion("Browser webcam and microphone", open=False):
                    gr.Markdown("Choose *My browser's webcam and microphone*, press Start, then allow and start both.")
                    webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                                      elem_id="mk-webcam")
                    mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone",
                                   elem_id="mk-mic")
            with gr.Column(scale=2):
                status = gr.HTML(views.status_html(demo_state.state.snapshot()), elem_id="mk-status")
                with gr.Row():
                    emotion = gr.Label(label="Current emotion", num_top_classes=8, elem_id="mk-emotion")
                    loads = gr.HTML(views.expert_loads_html(demo_state.state.snapshot()), label="Expert loads",
                                    elem_id="mk-loads")
                gr.Markdown("**Emotion timeline** (probability per label; dots: the predicted emotion)")
                timeline = gr.HTML(views.timeline_svg(demo_state.state.snapshot()), elem_id="mk-timeline")
                gr.Markdown("**Transcript**")
                transcript = gr.HTML(views.transcript_html(demo_state.state.snapshot()), elem_id="mk-transcript")

        outputs = [info, status, emotion, loads, timeline, transcript]
        last_key = gr.State(None)

        def refresh(key):
            snap = demo_state.state.snapshot()
            new_key = (id(demo_state.state), len(snap.history), len(snap.dropped),
                       tuple((m, s.state, s.reason) for m, s in snap.status.items()), demo_state.info())
            if new_key == key:
                return [gr.skip()] * len(outputs) + [key]
            return [demo_state.info(), views.status_html(snap), views.probabilities(snap),
                    views.expert_loads_html(snap), views.timeline_svg(snap), views.transcript_html(snap), new_key]

        def on_start(src, ckpt, is_fast):
            demo_state.start(src, ckpt, bool(is_fast))
            return demo_state.info()

        def on_stop():
            demo_state.stop()
            return demo_state.info()

        start.click(on_start, [source, checkpoint, fast], [info], concurrency_limit=1)
        stop.click(on_stop, None, [info], concurrency_limit=1)
        for modality, box in switches.items():
            box.change(lambda on, m=modality: demo_state.set_enabled(m, on), [box], None)
        webcam.stream(demo_state.push_frame, [webcam], None, stream_every=0.2, show_progress="hidden")
        mic.stream(demo_state.push_audio, [mic], None, stream_every=0.25, show_progress="hidden")
        timer = gr.Timer(refresh_s)
        timer.tick(refresh, [last_key], [*outputs, last_key], show_progress="hidden")
    return app


def launch(host: str = "127.0.0.1", port: int = 7860, checkpoint: Path | None = None, device: str | None = None,
           disabled=(), block: bool = True):
    """Serve the page; returns 0 when the server stops (Ctrl-C), or (app, url) with block=False."""
    checkpoints: dict[str, Path | None] = {DEFAULT_CHECKPOINT_NAME: None}
    if checkpoint is not None:
        checkpoints = {str(checkpoint): Path(checkpoint), **checkpoints}
    demo_state = LiveDemo(checkpoints, device=device, disabled=disabled)
    app = build_app(demo_state)
    app.queue(default_concurrency_limit=4)
    _, url, _ = app.launch(server_name=host, server_port=port or None, prevent_thread_lock=True,
                           ssr_mode=False, quiet=not block, show_error=True)
    app.live_demo = demo_state  # for embedding hosts and tests
    if not block:
        return app, url
    print(f"momke-live: serving the demo on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        app.block_thread()  # returns on Ctrl-C (Gradio closes its server)
    except KeyboardInterrupt:
        pass
    finally:
        demo_state.stop()
        app.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`momke-demo`: the Gradio demo on its own."""
    parser = argparse.ArgumentParser(prog="momke-demo", description="The momke-live Gradio demo.")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 = any free port)")
    parser.add_argument("--checkpoint", type=Path, help="an extra checkpoint directory to offer")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return launch(args.host, args.port, args.checkpoint, None if args.device == "auto" else args.device)


if __name__ == "__main__":
    sys.exit(main())
