"""benchmarks/checkpoint_validation.py in_order_of: two profiles' corpora compared dialogue by dialogue."""

import sys
from pathlib import Path

import pytest
from momke.models.training.toy_corpus import make_toy_corpus

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from checkpoint_validation import in_order_of


def test_the_other_side_follows_the_reference_order():
    reference = {"meld": make_toy_corpus(num_dialogues=6, seed=0)}
    shuffled = make_toy_corpus(num_dialogues=6, seed=1)  # other features, same dialogue ids
    shuffled = shuffled.subset(shuffled.conversations[::-1])
    ordered = in_order_of(reference, {"meld": shuffled})
    assert [c.dialogue_id for c in ordered["meld"].conversations] == [c.dialogue_id for c in reference["meld"].conversations]
    # the features stay the other side's own
    assert ordered["meld"].conversations[0] is shuffled.conversations[-1]
    assert in_order_of(reference, reference) is reference


def test_corpora_of_other_dialogues_are_refused():
    reference = {"meld": make_toy_corpus(num_dialogues=6)}
    fewer = {"meld": make_toy_corpus(num_dialogues=5)}
    with pytest.raises(ValueError, match="different dialogues"):
        in_order_of(reference, fewer)
