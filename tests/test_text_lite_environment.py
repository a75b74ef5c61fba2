"""Loading the packaged text model leaves the host program's environment as it was."""

import os

import pytest
from momke.extractors.base import Utterance
from momke.extractors.text_lite import OFFLINE_VARIABLES, LiteTextExtractor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("before", [None, "0"])
def test_loading_restores_the_offline_variables(monkeypatch, before):
    for name in OFFLINE_VARIABLES:
        if before is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, before)
    extractor = LiteTextExtractor(device="cpu")
    vector = extractor.extract(Utterance(transcript="I am so happy today"))
    assert vector.shape == (384,)
    assert extractor._model is not None  # the model really loaded inside the guarded block
    for name in OFFLINE_VARIABLES:
        assert os.environ.get(name) == before
