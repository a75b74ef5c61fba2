"""The audio emotion path, whisper profile against lite: a linear probe on unseen RAVDESS actors.

Data: RAVDESS speech (../shared/data/ravdess_speech_16k, or $MOMKE_DATA_DIR), 4 classes:
neutral (neutral + calm), happy, sad, angry; fearful, disgust and surprised are dropped
(36 clips per actor). Train on actors 01-16 (576 clips), test on actors 17-20 (144 clips).

Probe: StandardScaler + LogisticRegression(class_weight="balanced"); C is chosen by grouped
cross-validation on the training actors only (GroupKFold by actor, 4 folds, balanced accuracy),
then refit on all training actors and scored once on the test actors: UA (balanced accuracy,
the mean per-class recall) and WA (plain accuracy).

Extractors (each through the app's own class; per-clip CPU = `time.process_time()` around the
extraction of an already-loaded clip, CTranslate2's threads included, one untimed warm-up):
- lite: the lite profile's audio extractor (torchaudio functionals, 166-d);
- whisper-base: the whisper profile's audio extractor (Whisper base encoder, mean of the states
  over the utterance's own frames, 512-d);
- whisper-tiny.en: `WhisperAudioExtractor(model="tiny.en")` (384-d);
- whisper-base-padded: the design alternative: the encoder run on the utterance padded to 30 s
  (the window the ASR decoder needs; mel from the engine's own feature extractor, padded with
  np.pad to 3000 frames), mean of the first n/2 states (n = the utterance's own mel frames).

Features are kept in $MOMKE_CACHE/bench/probe_<name>.npz so a rerun only fits the probes.

    MOMKE_CACHE=/tmp/mc python benchmarks/audio_probe.py \
        [--extractors lite whisper-base whisper-tiny.en whisper-base-padded] \
        [--json benchmarks/results/audio_probe.json] [--md benchmarks/results/audio_probe.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from report_files import write_report  # benchmarks/ is on the path when run as a script

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MOMKE_DATA_DIR", REPO.parent / "shared" / "data"))
CLASSES = ("neutral", "happy", "sad", "angry")
EMOTION_CLASS = {"01": "neutral", "02": "neutral", "03": "happy", "04": "sad", "05": "angry"}
TRAIN_ACTORS = range(1, 17)
TEST_ACTORS = range(17, 21)
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
TARGET_UA = 0.72  # issue 9: audio-path UA on actors 17-20
EXTRACTORS = ("lite", "whisper-base", "whisper-tiny.en", "whisper-base-padded")


def clips() -> list[dict]:
    out = []
    for actor in [*TRAIN_ACTORS, *TEST_ACTORS]:
        for path in sorted((DATA / "ravdess_speech_16k" / f"Actor_{actor:02d}").glob("*.flac")):
            emotion = path.stem.split("-")[2]
            if emotion in EMOTION_CLASS:
                out.append({"id": path.stem, "path": str(path), "actor": actor, "repetition": path.stem.split("-")[5],
                            "label": CLASSES.index(EMOTION_CLASS[emotion])})
    return out


class PaddedWhisperBase:
    """Mean of Whisper base's encoder states for the utterance's frames, encoder run on 30 s."""

    dim = 512

    def __init__(self) -> None:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor
        from momke.extractors.whisper_weights import model_dir

        # Its own copy of the packaged, sha256-checked base model, driven through CTranslate2's
        # and faster-whisper's public APIs (the app's engine never pads to 30 s).
        self.model = ctranslate2.models.Whisper(str(model_dir("base")), device="cpu", compute_type="int8")
        self.mel_of = FeatureExtractor(feature_size=self.model.n_mels)

    def extract(self, utterance) -> np.ndarray | None:
        import ctranslate2
        from momke.extractors.whisper import WINDOW_SAMPLES

        samples = np.asarray(utterance.audio, np.float32)[:WINDOW_SAMPLES]
        own_frames = self.mel_of(samples, padding=0).shape[1]
        mel = self.mel_of(np.pad(samples, (0, WINDOW_SAMPLES - len(samples))), padding=0)
        mel = np.ascontiguousarray(np.pad(mel, ((0, 0), (0, max(0, 3000 - mel.shape[1]))))[None, :, :3000], np.float32)
        states = np.asarray(self.model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))[0]
        return states[: max(1, own_frames // 2)].mean(axis=0).astype(np.float32)


def make_extractor(name: str):
    from momke.extractors.profiles import load_profile
    from momke.extractors.whisper import WhisperAudioExtractor

    if name == "lite":
        return load_profile("lite", device="cpu").audio
    if name == "whisper-base":
        return load_profile("whisper", device="cpu").audio
    if name == "whisper-tiny.en":
        return WhisperAudioExtractor(model="tiny.en", device="cpu")
    if name == "whisper-base-padded":
        return PaddedWhisperBase()
    raise ValueError(f"unknown extractor {name!r}; expected one of {EXTRACTORS}")


def extract_all(name: str, items: list[dict], cache_dir: Path) -> dict:
    """Features [n, d] (NaN rows where the extractor gave None) and per-clip cost, cached."""
    from momke.extractors.base import Utterance
    from momke.extractors.media import load_audio

    path = cache_dir / f"probe_{name}.npz"
    ids = [c["id"] for c in items]
    if path.exists():
        cached = np.load(path, allow_pickle=False)
        if list(cached["ids"]) == ids:
            return {k: cached[k] for k in ("features", "cpu_s", "wall_s", "load_average")} | {"load_s": float(cached["load_s"])}
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    extractor = make_extractor(name)
    audio = [load_audio(c["path"]) for c in items]
    warm = Utterance(audio=audio[0][0], sample_rate=audio[0][1])
    extractor.extract(warm)  # loads the model; not timed per clip
    load_s = time.perf_counter() - t
    features, cpu_s, wall_s = [], [], []
    for i, (samples, rate) in enumerate(audio):
        utterance = Utterance(start=0.0, end=len(samples) / rate, audio=samples, sample_rate=rate, id=ids[i])
        c, w = time.process_time(), time.perf_counter()
        vector = extractor.extract(utterance)
        cpu_s.append(time.process_time() - c)
        wall_s.append(time.perf_counter() - w)
        features.append(np.full(extractor.dim, np.nan, np.float32) if vector is None else vector)
        if i % 100 == 0:
            print(f"{name}: {i}/{len(audio)} clips, {1000 * cpu_s[-1]:.0f} ms CPU", flush=True)
    result = {"features": np.stack(features), "cpu_s": np.array(cpu_s), "wall_s": np.array(wall_s), "load_s": load_s,
              "load_average": np.array([load_before, os.getloadavg()[0]])}  # 1-min, before / after extracting
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=np.array(ids), **result)
    return result


def probe(features: np.ndarray, items: list[dict]) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        recall_score,
    )
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.array([c["label"] for c in items])
    actors = np.array([c["actor"] for c in items])
    usable = ~np.isnan(features).any(axis=1)
    train = usable & np.isin(actors, list(TRAIN_ACTORS))
    test = usable & np.isin(actors, list(TEST_ACTORS))
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000))
    search = GridSearchCV(model, {"logisticregression__C": list(C_GRID)}, scoring="balanced_accuracy",
                          cv=GroupKFold(n_splits=4), n_jobs=1)
    search.fit(features[train], labels[train], groups=actors[train])  # test actors never seen here
    predicted = search.predict(features[test])
    truth = labels[test]
    # The same test clips for every extractor: a clip it gave no features for counts as an error.
    every_test = np.isin(actors, list(TEST_ACTORS))
    predicted_all = np.full(len(labels), -1)
    predicted_all[test] = predicted
    recalls_all = [float(np.mean(predicted_all[every_test & (labels == k)] == k)) for k in range(len(CLASSES))]
    return {
        "ua": round(float(balanced_accuracy_score(truth, predicted)), 4),
        "wa": round(float(accuracy_score(truth, predicted)), 4),
        "recall_per_class": dict(zip(CLASSES, np.round(recall_score(truth, predicted, average=None), 4).tolist())),
        "confusion_rows_true_cols_pred": confusion_matrix(truth, predicted, labels=range(len(CLASSES))).tolist(),
        "ua_all_test_clips": round(float(np.mean(recalls_all)), 4),
        "wa_all_test_clips": round(float(np.mean(predicted_all[every_test] == labels[every_test])), 4),
        "chosen_C": search.best_params_["logisticregression__C"],
        "cv_ua_train_actors": round(float(search.best_score_), 4),
        "train_clips": int(train.sum()), "test_clips": int(test.sum()),
        "clips_without_features": [c["id"] for c, ok in zip(items, usable) if not ok],
    }


def markdown(report: dict) -> str:
    lines = [
        "# Audio emotion path: whisper profile against lite, RAVDESS probe (issue 9)", "",
        f"Command: `{report['command']}`  ",
        (f"Machine: {report['machine']}, {report['cpu_count']} cores shared with other jobs, no GPU; load average "
        f"{report['load_average_before'][0]} before, {report['load_average_after'][0]} after. Extraction cost is "
        "process CPU time per clip (CTranslate2's threads included; one untimed warm-up); wall time is inflated by "
        "the other jobs. Raw figures: `audio_probe.json`."), "",
        ("Protocol: RAVDESS 4 classes (neutral = neutral + calm, happy, sad, angry; other emotions dropped), "
        "train actors 01-16 (576 clips), test actors 17-20 (144 clips) (half of each, repetition 01, where the table says so). Probe: StandardScaler + "
        "LogisticRegression(class_weight=\"balanced\"), C from "
        f"{list(C_GRID)} by 4-fold GroupKFold (by actor) on the training actors only, balanced accuracy. "
        "UA = balanced accuracy (mean per-class recall), WA = accuracy, on actors 17-20."), "",
        ("UA/WA are over the test clips the extractor gave features for; \"all clips\" counts a clip without "
        "features (too quiet for the extractor) as an error, so every extractor is scored on the same test clips."), "",
        "| extractor | clips | dim | UA % | WA % | UA % all clips | WA % all clips | CV UA % (train actors) | C | clips without features | CPU ms / clip (median) | CPU ms / clip (mean) | wall ms / clip (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in report["results"].items():
        lines.append(f"| {name} | {e['clips']} | {e['dim']} | {100 * e['ua']:.1f} | {100 * e['wa']:.1f} | {100 * e['ua_all_test_clips']:.1f} | "
                     f"{100 * e['wa_all_test_clips']:.1f} | {100 * e['cv_ua_train_actors']:.1f} | {e['chosen_C']} | "
                     f"{len(e['clips_without_features'])} | {e['cpu_ms_median']:.0f} | {e['cpu_ms_mean']:.0f} | {e['wall_ms_median']:.0f} |")
    results = report["results"]
    own = results.get("whisper-base, repetition 01 only") or results.get("whisper-base")
    padded = results.get("whisper-base-padded")
    if own and padded:
        lines += ["", (f"Design question: encoder on the utterance's own frames vs on the audio padded to 30 s "
                  f"(first n/2 states), Whisper base, same clips ({padded['clips']}: {padded['train_clips']} train, "
                  f"{padded['test_clips']} test): own frames UA {100 * own['ua']:.1f} / WA {100 * own['wa']:.1f} at "
                  f"{own['cpu_ms_median']:.0f} ms CPU per clip; padded UA {100 * padded['ua']:.1f} / WA "
                  f"{100 * padded['wa']:.1f} at {padded['cpu_ms_median']:.0f} ms CPU per clip "
                  f"({padded['cpu_ms_median'] / own['cpu_ms_median']:.1f}x the cost).")]
    lines += ["", f"Target (issue 9): audio-path UA >= {100 * TARGET_UA:.0f} on actors 17-20.", ""]
    for name, e in report["results"].items():
        lines.append(f"- {name}: UA {100 * e['ua_all_test_clips']:.1f} % on all test clips "
                     f"({'met' if e['ua_all_test_clips'] >= TARGET_UA else 'not met'}); "
                     "per-class recall " + ", ".join(f"{k} {100 * v:.0f}" for k, v in e["recall_per_class"].items()))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extractors", nargs="+", default=list(EXTRACTORS), choices=EXTRACTORS)
    parser.add_argument("--padded-clips", choices=("all", "rep01"), default="all",
                        help="clips for whisper-base-padded: all, or repetition 01 only (half the cost)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from momke.extractors.runtime import cache_root

    items = clips()
    if not items:
        print(f"no RAVDESS clips under {DATA / 'ravdess_speech_16k'}", file=sys.stderr)
        return 1
    load_before = os.getloadavg()
    # The padded encoder costs ~12x more; on this shared CPU it can run on repetition 01 only
    # (half the clips), and whisper-base is then also scored on exactly those clips.
    padded_items = items if args.padded_clips == "all" else [c for c in items if c["repetition"] == "01"]
    runs = [(name, items) for name in args.extractors if name != "whisper-base-padded"]
    if "whisper-base-padded" in args.extractors:
        if padded_items is not items and "whisper-base" in args.extractors:
            runs.append(("whisper-base", padded_items))
        runs.append(("whisper-base-padded", padded_items))
    results = {}
    for name, subset in runs:
        extracted = extract_all(name, items if name == "whisper-base" else subset, cache_root() / "bench")
        if name == "whisper-base" and subset is not items:  # the cached features of every clip, cut to the subset
            keep = np.isin([c["id"] for c in items], [c["id"] for c in subset])
            extracted = {k: (v[keep] if k in ("features", "cpu_s", "wall_s") else v) for k, v in extracted.items()}
            name = "whisper-base, repetition 01 only"
        cpu, wall = extracted["cpu_s"], extracted["wall_s"]
        results[name] = {
            "dim": int(extracted["features"].shape[1]),
            "clips": "all" if subset is items else "repetition 01 only",
            **probe(extracted["features"], subset),
            "cpu_ms_median": round(1000 * statistics.median(cpu), 1),
            "cpu_ms_mean": round(1000 * float(np.mean(cpu)), 1),
            "wall_ms_median": round(1000 * statistics.median(wall), 1),
            "load_average_extracting": [round(float(x), 2) for x in extracted["load_average"]],
            "setup_s": round(float(extracted["load_s"]), 2),  # model load + reading the clips
        }
        print(name, json.dumps(results[name]), flush=True)
    report = {
        "command": "MOMKE_CACHE=/tmp/mc python benchmarks/audio_probe.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "classes": CLASSES, "train_actors": list(TRAIN_ACTORS), "test_actors": list(TEST_ACTORS),
        "target_ua": TARGET_UA,
        "results": results,
    }
    write_report(report, markdown(report), args.json, args.md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
