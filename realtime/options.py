"""`LiveOptions`: every setting of a live session, in one object.

The session, its runner, `momke-live`, the Gradio demo and the benchmarks build one of these and
hand it on; `LiveSession(**settings)` builds it from keyword arguments (the README's way). How
speech is cut and the camera sampled is `serving`, the same `ServingOptions` the corpus builders
use, so the live app and the training features cannot drift apart. Checks that need nothing
loaded (names, ranges, a replayed file that is not there) are made here, before any model loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..extractors.runtime import bundled
from ..extractors.served import ServingOptions
from ..models.config import MODALITIES
from .transcript_gate import DEFAULT_MIN_TRANSCRIPT_CONFIDENCE, check_confidence_threshold

DEMO_DIR = bundled("demo")


@dataclass(frozen=True)
class LiveOptions:
    """What a LiveSession runs on and how (LiveSession's docstring says what each one means)."""

    microphone: object = None
    camera: object = None
    input_file: str | Path | None = None
    transcript: object = None
    realtime: bool = True
    asr: object = "whisper"
    checkpoint: object = None
    device: str | None = None
    disabled: tuple[str, ...] = ()
    log_path: str | Path | None = None
    max_context: int | None = None
    profile: object = None
    asr_language: str | None = "en"
    asr_timeout_s: float = 3.0
    asr_timeout_factor: float = 1.0
    serving: ServingOptions = field(default_factory=ServingOptions)
    segmenter: object = None  # an UtteranceSegmenter of one's own; None: serving.segmenter()
    window_s: float = 2.0
    accept_modified_checkpoint: bool = False
    emit: tuple = ()
    check_devices: bool = True
    min_transcript_confidence: float = DEFAULT_MIN_TRANSCRIPT_CONFIDENCE
    clock_origin: float | None = None  # time.monotonic() the timeline counts from; None: capture's start

    def __post_init__(self) -> None:
        object.__setattr__(self, "disabled", tuple(self.disabled))
        object.__setattr__(self, "emit", tuple(self.emit or ()))
        unknown = set(self.disabled) - set(MODALITIES)
        if unknown:
            raise ValueError(f"disabled must be a subset of {MODALITIES}, got {sorted(unknown)}")
        if self.input_file is not None and (self.microphone is not None or self.camera is not None):
            raise ValueError("give either input_file (a replay) or live devices (microphone / camera), not both")
        if self.input_file is not None and not Path(self.input_file).is_file():
            raise ValueError(f"input_file {self.input_file} does not exist")
        if self.transcript is not None and self.input_file is None:
            raise ValueError("transcript goes with input_file (times are seconds from the file's start)")
        if self.max_context is not None and self.max_context < 1:
            raise ValueError(f"max_context must be at least 1, got {self.max_context}")
        if self.serving.max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {self.serving.max_frames}")
        if not self.window_s > 0:
            raise ValueError(f"window_s must be positive, got {self.window_s}")
        check_confidence_threshold(self.min_transcript_confidence)

    @classmethod
    def of(cls, base: LiveOptions | None = None, **settings) -> LiveOptions:
        """`base` (default: the defaults) with `settings` changed; `camera_fps` and `max_frames`
        (LiveSession's keyword names) change `serving`."""
        base = base or cls()
        serving = {name: settings.pop(name) for name in ("camera_fps", "max_frames") if name in settings}
        if serving:
            settings["serving"] = dataclasses.replace(settings.get("serving", base.serving), **serving)
        return dataclasses.replace(base, **settings) if settings else base

    @classmethod
    def demo(cls, base: LiveOptions | None = None, **settings) -> LiveOptions:
        """The bundled demo conversation (assets/demo/), with its transcript unless `transcript`
        is given (None: none, the ASR hears it)."""
        video = DEMO_DIR / "conversation.mp4"
        if not video.is_file():
            raise FileNotFoundError(f"the bundled demo is missing: {video}")
        if "transcript" not in settings and (base is None or base.transcript is None):
            settings["transcript"] = DEMO_DIR / "transcript.json"
        return cls.of(base, input_file=video, **settings)

    @property
    def live(self) -> bool:
        """Devices (or pushed media), not a replayed file."""
        return self.input_file is None

    @property
    def fast(self) -> bool:
        """A replayed file read as fast as possible, not paced in real time."""
        return not (self.live or self.realtime)

    def to_log(self) -> dict:
        """The settings that describe a run, for the log's header (devices and objects by name)."""
        def plain(value):
            return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)

        return {"realtime": self.realtime, "asr": plain(self.asr), "asr_language": self.asr_language,
                "max_context": self.max_context, "min_transcript_confidence": self.min_transcript_confidence,
                "window_s": self.window_s, "serving": self.serving.to_dict()}
