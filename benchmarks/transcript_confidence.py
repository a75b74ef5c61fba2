"""Transcript confidence against measured word error (issue 19): collect, fit, and choose the gate.

Every clip is cut as the app cuts it (extractors/served.py `speech_segments_of`) and each cut is
decoded by the app's own backend's engine (`make_asr(spec, language).engine.decode`, what
`transcribe_scored` maps to a confidence), giving the decoder's numbers (average log-probability, no-speech probability, compression ratio) and the
cut's word error against the clip's reference. Only clips the segmenter keeps as one utterance
are used (the reference is per clip); how many were left out is reported.

Sets (read from ../shared/data or $MOMKE_DATA_DIR, never copied; sizes seeded subsamples):
- commonvoice: commonvoice_en_dev50 (English read speech, 50 speakers).
- ravdess: RAVDESS actors 01-16 (the test actors 17-20 are kept for the gating benchmark).
- nemo, korean: nEMO (Polish) and the Korean emotional TTS sample, their non-test speakers
  (models/commands/recipes/whisper_4class.json); an English model hears them as nonsense.
- espeak-de/-es/-fr/-en: espeak-ng voices reading short everyday sentences (made here).

`--fit` fits the logistic mapping of extractors/transcript_confidence.py (soft targets 1 - WER
clipped to [0, 1], L2 0.01 on the raw features, so the coefficients apply as they are) and prints the coefficients to paste there; the report then scores the mapping the
code holds: Spearman rank correlation of confidence with WER (overall, in 5-fold
cross-validation for the fit, and within each set), per-set means, and the threshold: the
highest step of 0.05 that keeps >= 99 % of the English clips with WER <= 0.5 (setting
aside the most of the others), with each set's kept share.

    MOMKE_CACHE=/tmp/mc python benchmarks/transcript_confidence.py [--asr whisper-tiny] [--fit] \
        [--json benchmarks/results/transcript_confidence.json] [--md benchmarks/results/transcript_confidence.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_wer import RAVDESS_SENTENCES, commonvoice, normalise, read_clip, word_errors
from report_files import write_report

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MOMKE_DATA_DIR", REPO.parent / "shared" / "data"))
RECIPE = REPO / "models" / "commands" / "recipes" / "whisper_4class.json"
ENGLISH_SETS = ("commonvoice", "ravdess", "espeak-en")

SENTENCES = {
    "de": ["Guten Morgen, wie geht es dir heute?", "Ich habe keine Zeit, ich muss zur Arbeit.",
           "Das Essen war wirklich sehr lecker.", "Kannst du mir bitte das Salz geben?",
           "Wir fahren am Wochenende in die Berge.", "Ich bin so müde, ich gehe jetzt schlafen.",
           "Warum hast du mich gestern nicht angerufen?", "Das Wetter ist heute schrecklich kalt.",
           "Meine Schwester wohnt seit zwei Jahren in Berlin.", "Hör auf damit, das ist nicht lustig!",
           "Der Zug hat wieder zwanzig Minuten Verspätung.", "Ich freue mich so sehr auf den Urlaub."],
    "es": ["Buenos días, ¿cómo estás hoy?", "No tengo tiempo, tengo que ir a trabajar.",
           "La comida estaba muy rica.", "¿Me puedes pasar la sal, por favor?",
           "Vamos a la playa el fin de semana.", "Estoy muy cansado, me voy a dormir.",
           "¿Por qué no me llamaste ayer?", "Hoy hace un frío terrible.",
           "Mi hermana vive en Madrid desde hace dos años.", "¡Basta ya, eso no tiene gracia!",
           "El tren llega otra vez con veinte minutos de retraso.", "Tengo muchas ganas de ir de vacaciones."],
    "fr": ["Bonjour, comment vas-tu aujourd'hui ?", "Je n'ai pas le temps, je dois aller travailler.",
           "Le repas était vraiment délicieux.", "Tu peux me passer le sel, s'il te plaît ?",
           "Nous partons à la montagne ce week-end.", "Je suis très fatigué, je vais dormir.",
           "Pourquoi tu ne m'as pas appelé hier ?", "Il fait terriblement froid aujourd'hui.",
           "Ma soeur habite à Paris depuis deux ans.", "Arrête, ce n'est pas drôle !",
           "Le train a encore vingt minutes de retard.", "J'ai tellement hâte d'être en vacances."],
    "en": ["Good morning, how are you today?", "I don't have time, I have to go to work.",
           "The food was really delicious.", "Can you pass me the salt, please?",
           "We are going to the mountains this weekend.", "I am so tired, I am going to bed now.",
           "Why didn't you call me yesterday?", "The weather is terribly cold today.",
           "My sister has lived in London for two years.", "Stop it, that is not funny!",
           "The train is twenty minutes late again.", "I am really looking forward to the holiday."],
}
VOICES = {"de": ["de", "de+f3"], "es": ["es", "es+f2"], "fr": ["fr", "fr+m3"], "en": ["en-us", "en-gb+f3"]}


# ----------------------------------------------------------------------------------- the sets
def ravdess(per_actor: int, seed: int = 0) -> list[dict]:
    rng, clips = np.random.default_rng(seed), []
    for actor in range(1, 17):
        paths = sorted((DATA / "ravdess_speech_16k" / f"Actor_{actor:02d}").glob("*.flac"))
        for i in rng.choice(len(paths), size=min(per_actor, len(paths)), replace=False):
            statement = paths[i].stem.split("-")[4]
            clips.append({"set": "ravdess", "id": paths[i].stem, "path": str(paths[i]),
                          "reference": RAVDESS_SENTENCES[statement]})
    return clips


def emotional_speech(corpus: str, set_name: str, per_speaker: int, seed: int = 0) -> list[dict]:
    """Clips of the corpus's non-test speakers (the test speakers measure the gate in the app)."""
    spec = json.loads(RECIPE.read_text())["speech_corpora"][corpus]
    folder = DATA / spec["folder"]
    by_speaker: dict[str, list[dict]] = {}
    with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["speaker"] not in spec["test_speakers"]:
                by_speaker.setdefault(row["speaker"], []).append(row)
    rng, clips = np.random.default_rng(seed), []
    for speaker in sorted(by_speaker):
        rows = by_speaker[speaker]
        for i in rng.choice(len(rows), size=min(per_speaker, len(rows)), replace=False):
            clips.append({"set": set_name, "id": rows[i]["file"], "path": str(folder / rows[i]["file"]),
                          "reference": rows[i]["text"]})
    return clips


def espeak_clips(language: str) -> list[dict]:
    return [{"set": f"espeak-{language}", "id": f"{voice}/{i}", "voice": voice, "reference": text}
            for i, text in enumerate(SENTENCES[language]) for voice in VOICES[language][i % 2:i % 2 + 1]]


def espeak_audio(text: str, voice: str) -> np.ndarray:
    from momke.extractors.media import load_audio, resample_to_target

    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
        samples, rate = load_audio(str(wav))
    # A second of silence either side, as a speaker pauses; the segmenter cuts it as it would live.
    speech = resample_to_target(samples, rate).numpy()
    pad = np.zeros(16000, np.float32)
    return np.concatenate([pad, speech, pad])


def all_sets(args) -> list[dict]:
    clips = [dict(c, set="commonvoice") for c in commonvoice()]
    clips += ravdess(args.ravdess_per_actor)
    clips += emotional_speech("nemo", "nemo", args.per_speaker)
    clips += emotional_speech("kor_emotiontts", "korean", max(1, args.per_speaker // 2))
    for language in ("de", "es", "fr", "en"):
        clips += espeak_clips(language)
    return clips


# ----------------------------------------------------------------------------------- running
def collect(clips: list[dict], asr, cache: Path, done: dict) -> list[dict]:
    from momke.extractors.media import SAMPLE_RATE
    from momke.extractors.served import speech_segments_of
    from momke.extractors.whisper import compression_ratio

    rows = []
    with cache.open("a", encoding="utf-8") as out:
        for clip in clips:
            key = f"{clip['set']}:{clip['id']}"
            if key not in done:
                samples = espeak_audio(clip["reference"], clip["voice"]) if "voice" in clip else read_clip(clip["path"])
                segments = speech_segments_of(samples, SAMPLE_RATE)
                row = {"key": key, "set": clip["set"], "segments": len(segments), "reference": clip["reference"]}
                if len(segments) == 1:
                    began = time.perf_counter()
                    engine = asr.engine
                    decoded = engine.decode(segments[0].audio, language=asr.language)
                    row.update(text=decoded.text, avg_logprob=decoded.avg_logprob, no_speech_prob=decoded.no_speech_prob,
                               compression_ratio=compression_ratio(decoded.text), seconds=len(segments[0].audio) / SAMPLE_RATE,
                               decode_s=time.perf_counter() - began)
                    reference = normalise(clip["reference"])
                    row["wer"] = word_errors(reference, normalise(decoded.text)) / max(1, len(reference))
                done[key] = row
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
            rows.append(done[key])
    return rows


def fit(x: np.ndarray, y: np.ndarray, l2: float = 0.01) -> tuple[np.ndarray, float]:
    """Logistic regression with soft targets y in [0, 1] (cross-entropy + l2 on the weights)."""
    from scipy.optimize import minimize

    def loss(theta):
        z = x @ theta[:-1] + theta[-1]
        p = 1 / (1 + np.exp(-np.clip(z, -60, 60)))
        eps = 1e-9
        ce = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
        grad_z = (p - y) / len(y)
        grad = np.concatenate([x.T @ grad_z + 2 * l2 * theta[:-1], [grad_z.sum()]])
        return ce + l2 * np.sum(theta[:-1] ** 2), grad

    theta = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B").x
    return theta[:-1], float(theta[-1])


def confidence(x: np.ndarray, w, b) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x @ np.asarray(w) + b, -60, 60)))


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")


def cross_validated(x, y, sets, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each clip's confidence from a mapping fitted without its fold (an honest rank figure)."""
    order = np.random.default_rng(seed).permutation(len(y))
    out = np.zeros(len(y))
    for k in range(folds):
        held = order[k::folds]
        kept = np.setdiff1d(order, held)
        w, b = fit(x[kept], y[kept])
        out[held] = confidence(x[held], w, b)
    return out


def choose_threshold(conf: np.ndarray, wer: np.ndarray, sets: list[str], keep: float = 0.99) -> float:
    """The highest 0.05 step that still keeps >= `keep` of the good English transcripts."""
    english_good = np.array([s in ENGLISH_SETS for s in sets]) & (wer <= 0.5)
    best = 0.0
    for t in np.arange(0.05, 1.0, 0.05):
        if np.mean(conf[english_good] >= t) >= keep:
            best = round(float(t), 2)
    return best


def summarise(rows: list[dict], w, b, threshold: float | None, cv: np.ndarray) -> dict:
    from momke.extractors.transcript_confidence import FEATURES

    x = np.array([[r[f] for f in FEATURES] for r in rows])
    wer = np.array([r["wer"] for r in rows])
    sets = [r["set"] for r in rows]
    conf = confidence(x, w, b)
    threshold = choose_threshold(conf, wer, sets) if threshold is None else threshold
    per_set = {}
    for name in dict.fromkeys(sets):
        mask = np.array([s == name for s in sets])
        per_set[name] = {"clips": int(mask.sum()), "wer": float(np.mean(np.minimum(wer[mask], 1))),
                         "confidence": float(np.mean(conf[mask])), "spearman": spearman(conf[mask], wer[mask]),
                         "kept": float(np.mean(conf[mask] >= threshold)),
                         "avg_logprob": float(np.mean(x[mask, 0])), "no_speech_prob": float(np.mean(x[mask, 1])),
                         "compression_ratio": float(np.mean(x[mask, 2]))}
    return {"coefficients": [float(v) for v in w], "intercept": float(b), "threshold": threshold,
            "spearman": spearman(conf, wer), "spearman_cv": spearman(cv, wer), "per_set": per_set,
            "single_features": {f: spearman(x[:, i], wer) for i, f in enumerate(FEATURES)}}


def markdown(report: dict) -> str:
    s = report["summary"]
    lines = [
        "# Transcript confidence against word error (issue 19)", "",
        (f"ASR {report['asr']} (language {report['language']}), every clip cut as the app cuts it; "
         f"{report['used']} clips used, {report['left_out']} left out (cut into more or fewer than one utterance). "
         f"Machine: {report['machine']}; load average {report['load']} (shared CPU)."), "",
        (f"Mapping (extractors/transcript_confidence.py): sigmoid({s['intercept']:.3f} + "
         + " + ".join(f"{c:.3f}*{f}" for c, f in zip(s["coefficients"], ("avg_logprob", "no_speech_prob", "compression_ratio")))
         + ")"), "",
        (f"Spearman rank correlation, confidence vs WER: {s['spearman']:.3f} (fit data), "
         f"{s['spearman_cv']:.3f} (5-fold cross-validated). Single inputs: "
         + ", ".join(f"{k} {v:.3f}" for k, v in s["single_features"].items()) + "."), "",
        (f"Threshold (`--min-transcript-confidence` default): **{s['threshold']:.2f}**, the highest 0.05 step that keeps "
         ">= 99 % of the English clips transcribed with WER <= 50 %."), "",
        "| set | clips | mean WER | mean confidence | Spearman in set | kept at threshold | avg logprob | no-speech p | compression |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in s["per_set"].items():
        lines.append(f"| {name} | {v['clips']} | {100 * v['wer']:.1f} % | {v['confidence']:.2f} | {v['spearman']:.2f} | "
                     f"{100 * v['kept']:.0f} % | {v['avg_logprob']:.2f} | {v['no_speech_prob']:.2f} | {v['compression_ratio']:.2f} |")
    lines += ["", "WER per clip is capped at 100 % in the means (an inserting decoder can exceed it)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--asr", default="whisper-tiny")
    parser.add_argument("--language", default="en")
    parser.add_argument("--ravdess-per-actor", type=int, default=5)
    parser.add_argument("--per-speaker", type=int, default=8)
    parser.add_argument("--fit", action="store_true", help="fit the mapping here (else score the code's)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from momke.extractors import transcript_confidence as tc
    from momke.realtime.asr import make_asr

    asr = make_asr(args.asr, language=args.language, device="cpu")
    cache = Path(os.environ.get("MOMKE_CACHE", Path.home() / ".cache" / "momke")) / "bench" / \
        f"confidence_{asr.name}_{args.language}.jsonl"
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if cache.is_file():
        for line in cache.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[row["key"]] = row
    clips = all_sets(args)
    load_before = os.getloadavg()[0]
    rows = collect(clips, asr, cache, done)
    used = [r for r in rows if r["segments"] == 1 and r.get("text")]
    x = np.array([[r[f] for f in tc.FEATURES] for r in used])
    y = np.clip(1 - np.array([r["wer"] for r in used]), 0, 1)
    if args.fit:
        w, b = fit(x, y)
        print(f"COEFFICIENTS = ({', '.join(f'{v:.3f}' for v in w)})\nINTERCEPT = {b:.3f}")
    else:
        w, b = tc.COEFFICIENTS, tc.INTERCEPT
    cv = cross_validated(x, y, [r["set"] for r in used])
    report = {"asr": asr.name, "language": args.language, "used": len(used), "left_out": len(rows) - len(used),
              "left_out_by_set": {s: sum(1 for r in rows if r["set"] == s and r not in used) for s in dict.fromkeys(r["set"] for r in rows)},
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
              "load": f"{load_before:.1f}-{os.getloadavg()[0]:.1f}",
              "summary": summarise(used, w, b, None, cv)}
    write_report(report, markdown(report), args.json, args.md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
