"""Training text as the live speech-to-text writes it: a normaliser and transcription-like noise.

Live, the text path reads Whisper's transcript: normal spacing ("Hey, you wanna see a movie
tomorrow?"), sentence casing, contractions joined, straight apostrophes, a full stop at the end,
and about one word in five wrong (tiny.en: 21.4 % WER on held-out varied read English in issue
19's measurement; 16.1 % on the 50 Common Voice dev clips of benchmarks/results/wer.md, where
spontaneous talk over a room microphone will do worse). The corpora are written otherwise (DailyDialog is tokenised with
spaces before punctuation, "Don ' t"; MELD has curly quotes and shouted capitals; EmoryNLP
"Yeah, right!.......Y'serious?"), and they are typed, never misheard.

- `whisper_style(text)`: one corpus line -> how Whisper would write the same words.
- `asr_noise(text, rng, wer)`: the words with transcription-like errors at about `wer` (drops,
  substitutions by similar-sounding or frequent words, two words merged into one, a word split),
  then Whisper's punctuation habits (fewer commas and exclamation marks) and `whisper_style`.
- `word_error_rate(reference, hypothesis)`: Levenshtein over lower-case words without punctuation.
- `utterance_wers(n, rng, mean, concentration)`: per-utterance rates ~ Beta with that mean:
  ASR errors come in bursts (most lines near right, a few badly wrong), not evenly.

Frozen sentence embeddings read the text, so noise must be applied to the text before
embedding: each noisy copy is its own transcript with its own cached vector.
"""

from __future__ import annotations

import re

import numpy as np

CONTRACTION_SUFFIXES = ("t", "s", "re", "ve", "ll", "m", "d")
# Words an English ASR confuses with one another (sound-alikes and short function words).
SOUND_ALIKES = [
    ("there", "their", "they're"), ("to", "too", "two"), ("your", "you're"), ("its", "it's"), ("then", "than"),
    ("a", "the", "uh"), ("and", "an", "in"), ("on", "in", "and"), ("were", "we're", "where"), ("know", "no", "now"),
    ("right", "write", "alright"), ("hear", "here"), ("for", "four", "from"), ("would", "wood", "what"),
    ("i", "i'm", "I'd"), ("is", "as", "his"), ("of", "have", "off"), ("it", "at", "that"), ("this", "these", "the"),
    ("he", "she", "we"), ("him", "them", "him"), ("you", "ya", "you'll"), ("can", "can't", "could"),
    ("want", "won't", "went"), ("don't", "do", "didn't"), ("so", "sew", "sow"), ("be", "been", "being"),
    ("our", "are", "hour"), ("by", "buy", "bye"), ("way", "weigh", "we"), ("one", "won", "when"),
    ("really", "rarely", "reader"), ("yeah", "yes", "yet"), ("okay", "ok", "oh"), ("oh", "so", "no"),
    ("what", "one", "wait"), ("just", "adjust", "jest"), ("like", "light", "liked"), ("very", "every", "vary"),
    ("well", "will", "we'll"), ("good", "could", "would"), ("mad", "man", "bad"), ("sad", "said", "sat"),
    ("happy", "happen", "half"), ("great", "grade", "create"), ("sorry", "story", "starry"), ("hate", "eight", "ate"),
    ("love", "laugh", "of"), ("feel", "fill", "fail"), ("tired", "tide", "tried"), ("angry", "hungry", "anger"),
]
CONFUSIONS = {w.lower(): [o for o in group if o.lower() != w.lower()] for group in SOUND_ALIKES for w in group}
FREQUENT = ("the", "a", "and", "to", "I", "you", "it", "that", "of", "is", "in", "so", "we", "what", "yeah", "oh")
MERGES = {("going", "to"): "gonna", ("want", "to"): "wanna", ("got", "to"): "gotta", ("a", "lot"): "alot",
          ("kind", "of"): "kinda", ("all", "right"): "alright", ("out", "of"): "outta", ("let", "me"): "lemme"}
PUNCTUATION = ".,!?;:"


def whisper_style(text: str) -> str:
    """A corpus line written the way Whisper writes a transcript (spacing, casing, apostrophes)."""
    t = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'").replace("\u201c", '"').replace("\u201d", '"')
    t = " ".join(t.split())
    # Tokenised contractions: "Don ' t", "you ' Ve", "do n't", "it 's".
    suffixes = "|".join(CONTRACTION_SUFFIXES)
    t = re.sub(rf"(\w) ?' ?({suffixes})\b", lambda m: f"{m.group(1)}'{m.group(2).lower()}", t, flags=re.IGNORECASE)
    t = re.sub(r"(\w) n't\b", r"\1n't", t)
    t = re.sub(r"(\ws) ' ", r"\1' ", t)  # plural possessive: "parents ' apartment"
    t = re.sub(r"\$ (\d)", r"$\1", t)
    t = re.sub(r"(\d) %", r"\1%", t)
    t = re.sub(r"\s+([.,!?;:%)])", r"\1", t)  # no space before punctuation
    t = re.sub(r"\(\s+", "(", t)
    t = re.sub(r"\.{4,}", "...", t)  # "......." -> "..."
    t = re.sub(r"([!?])\.+(?!\.)", r"\1", t)  # "right!." -> "right!"
    t = re.sub(r"([.,!?;:])(?=[A-Za-z])", r"\1 ", t)  # "...Y'serious" -> "... Y'serious"
    t = re.sub(r"\s*([!?]){2,}", r"\1", t)  # "?!?" -> "?"
    # Shouted capitals: Whisper writes "OH MY GOD!" as "Oh my god!"; a lone short acronym (TV, OK) stays.
    t = re.sub(r"\b[A-Z][A-Z']*(?:[\s,.!?]+[A-Z][A-Z']*)+\b|\b[A-Z][A-Z']{3,}\b", lambda m: m.group(0).lower(), t)
    t = re.sub(r"\bi\b", "I", t)
    t = re.sub(r"\bi'(m|ll|d|ve)\b", lambda m: "I'" + m.group(1), t)
    t = " ".join(t.split()).strip()
    if not t:
        return ""
    # Sentence casing: the first letter and the first after . ! ?
    # (not after "...": Whisper writes "Well... you never know")
    t = re.sub(r"(^|(?:(?<!\.)\.|[!?])\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), t)
    if t[-1].isalnum() or t[-1] in "'\"":
        t += "."
    return t


def _words(text: str) -> list[str]:
    return [w for w in (re.sub(r"[^\w']", "", w).lower() for w in text.split()) if w]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance / reference words (lower case, punctuation removed)."""
    ref, hyp = _words(reference), _words(hypothesis)
    if not ref:
        return float(bool(hyp))
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / len(ref)


def utterance_wers(n: int, rng: np.random.Generator, mean: float, concentration: float = 4.0) -> np.ndarray:
    """n per-utterance error rates ~ Beta(mean * c, (1 - mean) * c): mean `mean`, bursty."""
    if not 0 <= mean < 1:
        raise ValueError(f"mean word error rate must be in [0, 1), got {mean}")
    if mean == 0:
        return np.zeros(n)
    return rng.beta(mean * concentration, (1 - mean) * concentration, size=n)


def _substitute(word: str, rng: np.random.Generator) -> str:
    options = CONFUSIONS.get(word.lower())
    if options and rng.random() < 0.8:
        return str(options[rng.integers(len(options))])
    if len(word) > 4 and rng.random() < 0.5:  # a near miss: an ending lost or changed
        cut = word[:-1] if word[-1] in "sd" else word[: -int(rng.integers(1, 3))]
        return cut
    return FREQUENT[rng.integers(len(FREQUENT))]


def asr_noise(text: str, rng: np.random.Generator, wer: float = 0.214) -> str:
    """`text` with transcription-like word errors at about `wer`, written the way Whisper writes.

    Per word, with probability `wer` one error: a drop (40 %), a substitution (45 %), a merge with
    the next word (10 %: known pairs like "going to" -> "gonna", else the two joined, which is
    two errors) or a split/insertion (5 %). Then Whisper's habits: a third of the commas go, a
    third of the exclamation marks become full stops; finally `whisper_style`.
    """
    tokens = whisper_style(text).split()
    # Each token: (word without trailing punctuation, trailing punctuation).
    parts = [(m.group(1), m.group(2)) for m in (re.match(r"^(.*?)([.,!?;:\"]*)$", t) for t in tokens)]
    # A merge costs two errors in WER, a split one insertion: scale so the expected rate is `wer`.
    rate = wer / (0.40 + 0.45 + 0.10 * 1.5 + 0.05)
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(parts):
        word, punct = parts[i]
        if not word or rng.random() >= rate:
            out.append((word, punct))
            i += 1
            continue
        kind = rng.random()
        if kind < 0.40:  # dropped; keep its punctuation on the previous word
            if out and punct and not out[-1][1]:
                out[-1] = (out[-1][0], punct)
        elif kind < 0.85:
            out.append((_substitute(word, rng), punct))
        elif kind < 0.95 and i + 1 < len(parts) and parts[i + 1][0]:
            following, after = parts[i + 1]
            merged = MERGES.get((word.lower(), following.lower()), (word + following).lower())
            out.append((merged, after))
            i += 1
        else:  # an extra short word heard (split or insertion)
            out += [(word, ""), (FREQUENT[rng.integers(len(FREQUENT))].lower(), punct)]
        i += 1
    pieces = []
    for word, punct in out:
        if punct == "," and rng.random() < 1 / 3:
            punct = ""
        if "!" in punct and rng.random() < 1 / 3:
            punct = punct.replace("!", ".")
        pieces.append(word + punct)
    noisy = whisper_style(" ".join(p for p in pieces if p))
    return noisy if _words(noisy) else whisper_style(text).split()[0]
