"""Named feature profiles: which three extractors make a checkpoint's features.

- "lite": everything ships in installed packages / assets and works offline on a CPU:
  audio = torchaudio functionals (audio_lite, 166-d), text = all-MiniLM-L6-v2 (384-d),
  visual = MTCNN faces + mini-Xception features (extractors/visual.py).
- "whisper": the default from the Whisper issue to the served-path issue: audio = the mean of Whisper base's
  encoder states over the utterance (whisper.py, 512-d; the same packaged model is the live
  ASR), text as in lite, visual = the mini-Xception's 7 expression log-probabilities alone
  (visual.py says why its pooled features are left out).
- "whisper-prosody" (the default checkpoint's from the served-path issue to issue 19): as whisper, with
  the lite acoustic/prosodic functionals (pitch, energy, spectral shape, pauses; 166) beside
  Whisper's states in the audio vector (678-d): Whisper's last layer is tuned to the words, the
  functionals carry how they are said (linear probe through the served path, RAVDESS actors
  17-20: 66.9 -> 75.8 % UA; see benchmarks/README.md).
- "whisper-prosody-conv" (the default checkpoint's since issue 19): as whisper-prosody, the text encoder with a
  low-rank delta fine-tuned on conversation (assets/weights/minilm_conversation_delta.safetensors,
  merged into the weights at load: same 384-d, same cost per utterance, other vectors). Its audio
  and visual features are whisper-prosody's, so caches of those are shared (`feature_source`).
- "research": the paper's kind of encoders from local checkpoint folders (research.py):
  `audio_path` (wav2vec 2.0 / HuBERT) and `text_path` (DeBERTa or another encoder), with
  `audio_layer`, `audio_pooling`, `text_layers`, `text_pooling`; visual = the lite one unless
  a `visual` extractor is passed.

Building a profile loads no network (every extractor loads lazily on first use), so
`profile_dims(...)` is cheap and is what checkpoint checks use.
"""

from __future__ import annotations

import importlib

import numpy as np

from .base import FeatureProfile, ModalityExtractor, Utterance

PROFILES = ("lite", "whisper", "whisper-prosody", "whisper-prosody-conv", "research")
CONVERSATION_DELTA = "minilm_conversation_delta.safetensors"  # in assets/weights/
# Profiles whose features of some modalities are exactly another profile's: {profile: {modality: other}}.
SHARED_FEATURES = {"whisper-prosody-conv": {"audio": "whisper-prosody", "visual": "whisper-prosody"}}
# mini-Xception's pooled last-block features (128) + the 7 FER2013 expression probabilities.
LITE_VISUAL_DIM = 135
EXPRESSION_DIM = 7  # the whisper profile's visual features: log-probabilities only


class UnavailableExtractor(ModalityExtractor):
    """Stands in for an extractor whose code or weights are not installed; extracting raises."""

    def __init__(self, modality: str, dim: int, reason: str) -> None:
        self.modality, self.dim, self.reason = modality, dim, reason

    def extract(self, utterance: Utterance) -> np.ndarray | None:
        raise RuntimeError(f"the {self.modality} extractor is not available: {self.reason}")


def _lite_visual(device, options: dict) -> ModalityExtractor:
    """The lite visual extractor from extractors/visual.py, imported only when a profile is built."""
    try:
        module = importlib.import_module(f"{__package__}.visual")
    except ImportError as error:
        # Audio and text still work; only extracting visual features raises, saying why.
        dim = EXPRESSION_DIM if options.get("expression_only") else LITE_VISUAL_DIM
        return UnavailableExtractor("visual", dim, f"momke.extractors.visual cannot be imported ({error})")
    return module.VisualExtractor(device=device, **options)


def load_profile(name: str = "lite", device=None, **options) -> FeatureProfile:
    """Build a profile's extractors (networks load lazily on first use).

    lite and whisper(-prosody) options: text_batch_size, visual_options (dict for the visual
    extractor); whisper(-prosody) also whisper_model ("base", the default, or "tiny.en" / a local CTranslate2 folder).
    research options: audio_path, text_path (required local folders), audio_layer,
    audio_pooling, text_layers, text_pooling, visual (a ModalityExtractor to use for faces),
    visual_options.
    """
    from .audio_lite import LiteAudioExtractor
    from .text_lite import LiteTextExtractor

    if name not in PROFILES:
        raise ValueError(f"unknown feature profile {name!r}; expected one of {PROFILES}")
    options = dict(options)
    visual_options = dict(options.pop("visual_options", None) or {})
    if name in ("lite", "whisper", "whisper-prosody", "whisper-prosody-conv"):
        from .runtime import bundled

        # The delta is part of the profile, not an option: its name alone must say what the features are.
        delta = bundled("weights", CONVERSATION_DELTA) if name == "whisper-prosody-conv" else None
        text = LiteTextExtractor(device=device, delta=delta, **_take(options, {"text_batch_size": "batch_size"}))
        if name.startswith("whisper"):
            from .whisper import WhisperAudioExtractor, WhisperProsodyExtractor

            audio = WhisperAudioExtractor(device=device, **_take(options, {"whisper_model": "model"}))
            if name.startswith("whisper-prosody"):
                audio = WhisperProsodyExtractor(audio, LiteAudioExtractor())
            visual_options.setdefault("expression_only", True)
        else:
            audio = LiteAudioExtractor()
        _refuse_unknown(name, options)
        return FeatureProfile(name, audio, text, _lite_visual(device, visual_options))

    from .research import ResearchAudioExtractor, ResearchTextExtractor

    audio = ResearchAudioExtractor(options.pop("audio_path", None), device=device,
                                   **_take(options, {"audio_layer": "layer", "audio_pooling": "pooling"}))
    text = ResearchTextExtractor(options.pop("text_path", None), device=device,
                                 **_take(options, {"text_layers": "layers", "text_pooling": "pooling",
                                                   "text_batch_size": "batch_size"}))
    visual = options.pop("visual", None) or _lite_visual(device, visual_options)
    _refuse_unknown(name, options)
    return FeatureProfile("research", audio, text, visual)


def feature_source(name: str, modality: str) -> str:
    """The profile whose cached features of `modality` equal this profile's (itself unless shared)."""
    return SHARED_FEATURES.get(name, {}).get(modality, name)


def profile_dims(name: str = "lite", **options) -> tuple[int, int, int]:
    """(audio, text, visual) dimensions of a profile, without loading any network."""
    return load_profile(name, device="cpu", **options).dims


def _take(options: dict, renames: dict[str, str]) -> dict:
    return {inner: options.pop(outer) for outer, inner in renames.items() if outer in options}


def _refuse_unknown(name: str, options: dict) -> None:
    if options:
        raise ValueError(f"unknown options for the {name!r} profile: {sorted(options)}")
