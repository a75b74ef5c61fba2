"""Training text as the live speech-to-text writes it: the normaliser, the transcription-like
noise, the DailyDialog reader and the recipe that trains on them."""

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from momke.models.commands.corpus_readers import read_corpus
from momke.models.commands.default_recipe import (
    CONVERSATION_RECIPE,
    DEFAULT_RECIPE,
    NOISY,
    TEXT_SOURCES,
    load_recipe,
    noisy_dialogues,
    text_dialogues,
)
from momke.models.training.asr_text import asr_noise, utterance_wers, whisper_style, word_error_rate

DATA = Path(os.environ.get("MOMKE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
DAILYDIALOG = DATA / "dailydialog"
needs_dailydialog = pytest.mark.skipif(not DAILYDIALOG.is_dir(), reason=f"DailyDialog not found at {DAILYDIALOG}")


@pytest.mark.parametrize(("corpus", "whisper"), [
    ("Hey , you wanna see a movie tomorrow ?", "Hey, you wanna see a movie tomorrow?"),
    ("What am I doing ? Don ' t you know what day it is ?", "What am I doing? Don't you know what day it is?"),
    ("You ' Ve got to be kidding me ! it 's fine", "You've got to be kidding me! It's fine."),
    ("i do n't know", "I don't know."),
    ("from my parents ' apartment building .", "From my parents' apartment building."),
    ("Here is $ 150 . Keep the change .", "Here is $150. Keep the change."),
    ("So let\u2019s talk a little bit about your duties", "So let's talk a little bit about your duties."),
    ("Yeah, right!.......Y'serious?", "Yeah, right! Y'serious?"),
    ("Well... you never know. how's the family?", "Well... you never know. How's the family?"),
    ("OH MY GOD! I watched TV", "Oh my god! I watched TV."),
    ("  ", ""),
])
def test_whisper_style_writes_lines_as_the_live_asr_does(corpus, whisper):
    assert whisper_style(corpus) == whisper
    assert whisper_style(whisper) == whisper  # already Whisper-like: unchanged


def test_word_error_rate_counts_word_edits():
    assert word_error_rate("I don't know.", "I don't know") == 0
    assert word_error_rate("I really don't know.", "I don't now, yeah.") == pytest.approx(3 / 4)
    assert word_error_rate("", "") == 0


def lines() -> list[str]:
    """DailyDialog's validation lines when present (real text), else a few fixed ones."""
    if DAILYDIALOG.is_dir():
        return [u.transcript for d in read_corpus(DAILYDIALOG, "dailydialog") if d.split == "valid" for u in d.utterances]
    return ["Hey, you wanna see a movie tomorrow?", "I'm so sorry to hear that, it must have been awful.",
            "Get out of my office right now!", "We could go to the beach on Sunday if the weather is nice."] * 100


@pytest.mark.parametrize("wer", [0.1, 0.214, 0.35])
def test_noise_hits_the_asked_word_error_rate(wer):
    rng = np.random.default_rng(0)
    reference = [whisper_style(t) for t in lines()]
    noisy = [asr_noise(t, rng, wer) for t in reference]
    words = np.array([len(t.split()) for t in reference])
    measured = np.array([word_error_rate(r, h) for r, h in zip(reference, noisy)])
    assert abs(float((measured * words).sum() / words.sum()) - wer) < 0.03
    assert all(h and h == whisper_style(h) for h in noisy)  # written the way Whisper writes
    assert np.mean([r == h for r, h in zip(reference, noisy)]) < 0.6  # most lines changed


def test_noise_is_deterministic_with_a_seed_and_bursty():
    text = "I've already made a hotel reservation for you, let's go to the hotel first and drop off your things."
    first = [asr_noise(text, np.random.default_rng(7), 0.214) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    assert len({asr_noise(text, np.random.default_rng(s), 0.214) for s in range(10)}) > 5
    rates = utterance_wers(20000, np.random.default_rng(0), 0.214)
    assert rates.mean() == pytest.approx(0.214, abs=0.005)
    assert np.mean(rates < 0.05) > 0.15 and np.mean(rates > 0.5) > 0.05  # errors come in bursts
    assert asr_noise(text, np.random.default_rng(0), 0.0) == whisper_style(text)


@needs_dailydialog
def test_dailydialog_reader_reads_the_real_files():
    dialogues = read_corpus(DAILYDIALOG)  # told apart from the other formats by its file names
    by_split = Counter(d.split for d in dialogues)
    assert by_split == {"train": 791, "valid": 44}
    train = [u for d in dialogues if d.split == "train" for u in d.utterances]
    assert len(train) == 7755
    labels = Counter(u.label for u in train)
    assert labels["neutral"] == 3448 and labels["happiness"] == 3372
    assert labels["anger"] == 246 and labels["sadness"] == 199 and labels["sad"] == 3 and labels["excited"] == 2
    first = next(d for d in dialogues if d.split == "valid")
    assert [u.id for u in first.utterances] == sorted(u.id for u in first.utterances)  # turn order
    assert first.utterances[0].transcript.endswith("How was your flight ?")  # as tokenised in the file


def test_the_conversation_recipe_trains_the_text_path_on_dailydialog_too():
    recipe = load_recipe(CONVERSATION_RECIPE)
    assert "dailydialog" in TEXT_SOURCES and "dailydialog" in recipe["label_maps"]
    assert recipe["label_maps"]["dailydialog"] == {
        "happiness": "happy", "happy": "happy", "excited": "happy", "sadness": "sad", "sad": "sad",
        "anger": "angry", "angry": "angry", "neutral": "neutral"}
    assert recipe["text_style"] == "whisper"
    assert recipe["text_noise"]["splits"] == ["train", "valid"] and 0.15 < recipe["text_noise"]["wer_mean"] < 0.3
    assert "dailydialog" in recipe["licences"]
    # Otherwise the default recipe: the text data differ, and the class weights and stage-1
    # epochs are per modality (the text data would otherwise move the voice's and faces').
    default = load_recipe(DEFAULT_RECIPE)
    assert "dailydialog" not in default["label_maps"] and "text_noise" not in default
    assert {k: v for k, v in recipe["label_maps"].items() if k != "dailydialog"} == default["label_maps"]
    per_modality = {"class_weighting", "class_weighting_note", "stage1_selection", "stage1_selection_note"}
    assert recipe["training"]["class_weighting"] == "inverse-frequency-per-modality"
    assert recipe["training"]["stage1_selection"] == "per-expert"
    assert recipe["model"] == default["model"]
    assert {k: v for k, v in recipe["training"].items() if k not in per_modality} == {
        k: v for k, v in default["training"].items() if k not in per_modality}


@needs_dailydialog
def test_recipe_text_is_whisper_style_with_a_noisy_copy():
    recipe = load_recipe(CONVERSATION_RECIPE)
    dialogues = text_dialogues("dailydialog", DAILYDIALOG, recipe)
    counts = Counter(u.label for d in dialogues if d.split == "train" for u in d.utterances)
    assert counts == {"neutral": 3448, "happy": 3374, None: 485, "angry": 246, "sad": 202}
    valid = [d for d in dialogues if d.split == "valid"]
    assert valid[0].utterances[0].transcript.startswith("Mr. Bryant? Hi, I'm Mike")
    noisy = noisy_dialogues(valid, recipe["text_noise"], ["valid"])
    assert [d.id for d in noisy] == [d.id + NOISY for d in valid]
    assert noisy_dialogues(valid, recipe["text_noise"], ["valid"]) == noisy  # the same copy every time
    assert [u.label for d in noisy for u in d.utterances] == [u.label for d in valid for u in d.utterances]
    assert noisy_dialogues(valid, recipe["text_noise"], ["train"]) == []
    pairs = [(a.transcript, b.transcript) for x, y in zip(valid, noisy) for a, b in zip(x.utterances, y.utterances)]
    words = np.array([len(a.split()) for a, _ in pairs])
    wer = np.array([word_error_rate(a, b) for a, b in pairs])
    assert abs(float((wer * words).sum() / words.sum()) - recipe["text_noise"]["wer_mean"]) < 0.04
    json.dumps(recipe["text_noise"])  # stored in the checkpoint's metadata
