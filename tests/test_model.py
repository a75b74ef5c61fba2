"""MoMKE's forward passes: routing, masks, context modes, padding, stage 1, ablations, config."""

import pytest
import torch
from model_support import DIMS, tiny_config, tiny_model
from momke.models import MODALITIES, MoMKEConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_features(batch: int, length: int, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, length, d, generator=generator) for m, d in zip(MODALITIES, DIMS)}


def random_mask(batch: int, length: int, seed: int = 2, p: float = 0.6) -> torch.Tensor:
    """Per-utterance modality masks with at least one modality per utterance."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, length, 3, generator=generator) < p
    empty = ~mask.any(-1)
    mask[..., 0] |= empty
    return mask


# ---------------------------------------------------------------------------------------------
# Router


@pytest.mark.parametrize("context_mode", ["bidirectional", "causal"])
def test_router_weights_sum_to_one_for_present_modalities_and_zero_for_missing(context_mode):
    model = tiny_model(context_mode=context_mode)
    mask = random_mask(2, 7)
    output = model(random_features(2, 7), mask)
    assert output.router_weights.shape == (2, 7, 3, 3)
    sums = output.router_weights.sum(-1)
    assert torch.allclose(sums[mask], torch.ones(int(mask.sum())), atol=1e-6)
    assert torch.all(output.router_weights[~mask] == 0)
    assert torch.all(output.router_weights >= 0)
    assert torch.equal(output.modality_mask, mask)
    # The router really depends on the features (not a constant split).
    present = output.router_weights[mask]
    assert (present - present[0]).abs().max() > 1e-4


# ---------------------------------------------------------------------------------------------
# Missing modalities


@pytest.mark.parametrize("context_mode", ["bidirectional", "causal"])
def test_missing_modality_has_no_influence(context_mode):
    model = tiny_model(context_mode=context_mode)
    features, mask = random_features(2, 9), random_mask(2, 9)
    reference = model(features, mask)

    changed = {m: x.clone() for m, x in features.items()}
    for index, name in enumerate(MODALITIES):
        missing = ~mask[..., index]
        changed[name][missing] = torch.randn(int(missing.sum()), DIMS[index]) * 100
    first = model(changed, mask)
    for index, name in enumerate(MODALITIES):
        changed[name][~mask[..., index]] = float("nan")
    second = model(changed, mask)
    for output in (first, second):
        assert torch.equal(output.logits, reference.logits)
        assert torch.equal(output.router_weights, reference.router_weights)

    # ...whereas a present modality does matter (the check above can fail).
    changed = {m: x.clone() for m, x in features.items()}
    changed["text"][mask[..., 1]] += 1.0
    assert not torch.allclose(model(changed, mask).logits, reference.logits)


def test_modality_absent_everywhere_may_be_left_out():
    model = tiny_model()
    features, mask = random_features(1, 5), random_mask(1, 5)
    mask[..., 2] = False
    mask[..., 0] = True
    full = model(features, mask)
    without_visual = model({m: x for m, x in features.items() if m != "visual"}, mask)
    assert torch.equal(full.logits, without_visual.logits)


@pytest.mark.parametrize("context_mode", ["bidirectional", "causal"])
def test_attention_never_looks_at_utterances_where_the_modality_is_missing(context_mode):
    model = tiny_model(context_mode=context_mode)
    key_present = torch.tensor([[True, False, True, True, False]])
    allowed = model.attention_mask(key_present)[0]
    for query in range(5):
        for key in range(5):
            visible = key == query or (bool(key_present[0, key]) and (context_mode == "bidirectional" or key <= query))
            assert bool(allowed[query, key]) == visible, (query, key)


# ---------------------------------------------------------------------------------------------
# Context modes


def test_causal_mode_earlier_outputs_ignore_later_utterances():
    model = tiny_model(context_mode="causal")
    features, mask = random_features(1, 10), random_mask(1, 10)
    reference = model(features, mask)
    changed = {m: x.clone() for m, x in features.items()}
    for x in changed.values():
        x[:, 6:] = torch.randn_like(x[:, 6:]) * 10
    changed_mask = mask.clone()
    changed_mask[:, 6:] = True
    output = model(changed, changed_mask)
    torch.testing.assert_close(output.logits[:, :6], reference.logits[:, :6], rtol=0, atol=1e-6)
    torch.testing.assert_close(output.router_weights[:, :6], reference.router_weights[:, :6], rtol=0, atol=1e-6)
    assert not torch.allclose(output.logits[:, 6:], reference.logits[:, 6:])
    # A truncated conversation gives the same outputs as its prefix in the full one.
    prefix = model({m: x[:, :6] for m, x in features.items()}, mask[:, :6])
    torch.testing.assert_close(prefix.logits, reference.logits[:, :6], rtol=0, atol=1e-5)


def test_bidirectional_mode_earlier_outputs_see_later_utterances():
    model = tiny_model(context_mode="bidirectional")
    features = random_features(1, 10)
    mask = torch.ones(1, 10, 3, dtype=torch.bool)
    reference = model(features, mask)
    changed = {m: x.clone() for m, x in features.items()}
    for x in changed.values():
        x[:, 6:] = torch.randn_like(x[:, 6:]) * 10
    output = model(changed, mask)
    assert (output.logits[:, :6] - reference.logits[:, :6]).abs().max() > 1e-4


# ---------------------------------------------------------------------------------------------
# Padding


@pytest.mark.parametrize("context_mode", ["bidirectional", "causal"])
def test_padded_batch_equals_one_conversation_at_a_time(context_mode):
    model = tiny_model(context_mode=context_mode)
    lengths = [7, 3, 5]
    conversations = [(random_features(1, n, seed=10 + i), random_mask(1, n, seed=20 + i)) for i, n in enumerate(lengths)]
    # Conversation 1 has no visual at all: the batch still runs the visual modality for others.
    conversations[1][1][..., 2] = False
    conversations[1][1][..., 0] = True
    longest = max(lengths)
    batch = {m: torch.full((len(lengths), longest, d), float("nan")) for m, d in zip(MODALITIES, DIMS)}
    mask = torch.ones(len(lengths), longest, 3, dtype=torch.bool)  # padding marked present on purpose
    utterance_mask = torch.zeros(len(lengths), longest, dtype=torch.bool)
    for i, ((features, conversation_mask), n) in enumerate(zip(conversations, lengths)):
        for m in MODALITIES:
            batch[m][i, :n] = features[m][0]
        mask[i, :n] = conversation_mask[0]
        utterance_mask[i, :n] = True
    output = model(batch, mask, utterance_mask)
    assert torch.isfinite(output.logits).all()
    assert torch.all(output.router_weights[~utterance_mask] == 0)
    for i, ((features, conversation_mask), n) in enumerate(zip(conversations, lengths)):
        single = model(features, conversation_mask)
        torch.testing.assert_close(output.logits[i, :n], single.logits[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(output.router_weights[i, :n], single.router_weights[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("context_mode", ["bidirectional", "causal"])
def test_padding_and_fully_masked_rows_never_give_nan(context_mode):
    model = tiny_model(context_mode=context_mode).train()
    features = random_features(2, 6)
    for x in features.values():
        x[1, 4:] = float("nan")  # padding
    mask = random_mask(2, 6)
    mask[0, 2] = False  # an utterance with every modality missing
    mask[:, :, 1] = False  # text missing in the whole batch
    utterance_mask = torch.ones(2, 6, dtype=torch.bool)
    utterance_mask[1, 4:] = False
    output = model(features, mask, utterance_mask)
    assert torch.isfinite(output.logits).all() and torch.isfinite(output.router_weights).all()
    output.logits.square().sum().backward()
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            assert torch.isfinite(parameter.grad).all(), name
    unimodal = model.forward_unimodal("audio", features["audio"], mask[..., 0], utterance_mask)
    assert torch.isfinite(unimodal).all()
    # A conversation with one utterance that has nothing at all.
    lone = model(random_features(1, 1), torch.zeros(1, 1, 3, dtype=torch.bool))
    assert torch.isfinite(lone.logits).all()


# ---------------------------------------------------------------------------------------------
# Stage 1


@pytest.mark.parametrize("modality", MODALITIES)
def test_stage_one_expert_reads_only_its_modality_and_trains_only_its_parts(modality):
    model = tiny_model(dropout=0.0).train()
    index = MODALITIES.index(modality)
    features, mask = random_features(2, 6), random_mask(2, 6)
    present = mask[..., index]
    present[:, 0] = True
    logits = model.forward_unimodal(modality, features[modality], present)
    assert logits.shape == (2, 6, len(model.config.labels))
    logits.square().sum().backward()
    own = (f"projections.{modality}.", f"experts.{modality}.", f"unimodal_heads.{modality}.")
    for name, parameter in model.named_parameters():
        reached = parameter.grad is not None and parameter.grad.abs().sum() > 0
        if name.startswith(own):
            assert reached, f"{name} got no gradient"
        else:
            assert not reached, f"{name} got a gradient from stage 1 of the {modality} expert"
    # Utterances where the modality is absent do not influence the present ones.
    changed = features[modality].clone()
    changed[~present] = float("nan")
    model.eval()
    torch.testing.assert_close(
        model.forward_unimodal(modality, changed, present)[present],
        model.forward_unimodal(modality, features[modality], present)[present],
        rtol=0,
        atol=0,
    )


def test_stage_one_needs_the_expert():
    model = tiny_model(experts=("audio", "text"))
    with pytest.raises(ValueError, match="no visual expert"):
        model.forward_unimodal("visual", torch.zeros(1, 2, 4), torch.ones(1, 2, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------
# Ablations


def test_no_router_gives_equal_weights():
    model = tiny_model(use_router=False)
    mask = random_mask(2, 5)
    weights = model(random_features(2, 5), mask).router_weights
    assert torch.allclose(weights[mask], torch.full((int(mask.sum()), 3), 1 / 3))


def test_no_mixing_sends_each_modality_through_its_own_expert_only():
    model = tiny_model(mixing=False)
    mask = torch.zeros(1, 4, 3, dtype=torch.bool)
    mask[..., 0] = True  # audio only
    features = random_features(1, 4)
    output = model(features, mask)
    assert torch.equal(output.router_weights[0, :, 0], torch.tensor([[1.0, 0.0, 0.0]] * 4))
    # Disturbing the text and visual experts leaves an audio-only prediction unchanged...
    with torch.no_grad():
        for name in ("text", "visual"):
            for parameter in model.experts[name].parameters():
                parameter.add_(1.0)
    torch.testing.assert_close(model(features, mask).logits, output.logits, rtol=0, atol=0)
    # ...while disturbing the audio expert changes it.
    with torch.no_grad():
        for parameter in model.experts["audio"].parameters():
            parameter.add_(1.0)
    assert not torch.allclose(model(features, mask).logits, output.logits)


def test_expert_subset():
    model = tiny_model(experts=("audio", "visual"))
    assert set(model.experts) == {"audio", "visual"} and set(model.unimodal_heads) == {"audio", "visual"}
    mask = random_mask(1, 5)
    weights = model(random_features(1, 5), mask).router_weights
    assert weights.shape == (1, 5, 3, 2)
    assert torch.allclose(weights.sum(-1)[mask], torch.ones(int(mask.sum())), atol=1e-6)
    # No mixing with a subset: a modality without its own expert is spread evenly.
    no_mixing = tiny_model(experts=("audio", "visual"), mixing=False)
    text_only = torch.zeros(1, 2, 3, dtype=torch.bool)
    text_only[..., 1] = True
    weights = no_mixing(random_features(1, 2), text_only).router_weights
    assert torch.equal(weights[0, :, 1], torch.full((2, 2), 0.5))


def test_regression_head_gives_one_score():
    model = tiny_model(task="regression", labels=())
    output = model(random_features(2, 3), random_mask(2, 3))
    assert output.logits.shape == (2, 3, 1)


def test_float64_features_are_accepted():
    model = tiny_model()
    features = {m: x.double() for m, x in random_features(1, 3).items()}
    mask = random_mask(1, 3)
    expected = model({m: x.float() for m, x in features.items()}, mask).logits
    torch.testing.assert_close(model(features, mask).logits, expected)


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_gives_clear_errors():
    model = tiny_model()
    features, mask = random_features(1, 4), torch.ones(1, 4, 3, dtype=torch.bool)
    for value in (float("inf"), float("-inf"), float("nan")):
        bad = dict(features, audio=features["audio"].clone())
        bad["audio"][0, 1, 0] = value
        with pytest.raises(ValueError, match="NaN or inf"):
            model(bad, mask)
        model(bad, mask.logical_and(torch.tensor([True, False, True, True]).view(1, 4, 1)))  # not present: not read
    with pytest.raises(ValueError, match=r"audio features must be \[batch, utterances, 6\]"):
        model(dict(features, audio=torch.zeros(1, 4, 7)), mask)
    with pytest.raises(ValueError, match="no text features"):
        model({m: x for m, x in features.items() if m != "text"}, mask)
    with pytest.raises(ValueError, match="unknown modalities"):
        model(dict(features, smell=torch.zeros(1, 4, 2)), mask)
    with pytest.raises(ValueError, match="modality_mask"):
        model(features, mask[..., :2])
    with pytest.raises(ValueError, match="utterance_mask"):
        model(features, mask, torch.ones(1, 5, dtype=torch.bool))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"feature_dims": (6, 5)}, "feature_dims"),
        ({"feature_dims": (6, 0, 4)}, "feature_dims"),
        ({"task": "ranking"}, "task"),
        ({"labels": ("only",)}, "two labels"),
        ({"labels": ("a", "a")}, "distinct"),
        ({"context_mode": "future"}, "context_mode"),
        ({"experts": ()}, "experts"),
        ({"experts": ("audio", "smell")}, "experts"),
        ({"hidden_dim": 9, "num_heads": 2}, "divisible"),
        ({"num_heads": 0}, "num_heads"),
        ({"num_blocks": 0}, "num_blocks"),
        ({"dropout": 1.0}, "dropout"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
        ({"max_context": 0}, "max_context"),
        ({"max_context": 2.5}, "max_context"),
        ({"max_context": True}, "max_context"),
        ({"calibration": [1.0]}, "calibration must be a dict"),
        ({"calibration": {"path": {}}}, "unknown keys"),
        ({"calibration": {"modalities": 1.5}}, "dict of temperatures"),
        ({"calibration": {"modalities": {"smell": 1.0}}}, "unknown keys"),
        ({"calibration": {"fused": {"ta": 1.0}}}, "unknown keys"),
        ({"calibration": {"fused": {"atv": 0.0}}}, r"calibration\['fused'\]\['atv'\].*> 0"),
        ({"calibration": {"fused": {"a": -1.0}}}, "> 0"),
        ({"calibration": {"modalities": {"text": float("nan")}}}, "finite"),
        ({"calibration": {"modalities": {"text": "2"}}}, "temperature"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_config_round_trip_and_unknown_keys():
    config = tiny_config(context_mode="causal", experts=("text",), metadata={"protocol": "random"})
    data = config.to_dict()
    assert MoMKEConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="unknown MoMKE config keys"):
        MoMKEConfig.from_dict(dict(data, colour="blue"))


def test_config_context_limit_and_calibration_round_trip_and_old_configs_load():
    calibration = {"modalities": {"audio": 2.5, "text": 1}, "fused": {"atv": 1.7, "t": 0.8}}
    config = tiny_config(max_context=25, calibration=calibration)
    assert MoMKEConfig.from_dict(config.to_dict()) == config
    # A checkpoint written before these fields existed loads with the defaults.
    old = {k: v for k, v in config.to_dict().items() if k not in ("max_context", "calibration")}
    loaded = MoMKEConfig.from_dict(old)
    assert loaded.max_context == 110 and loaded.calibration == {}


# ---------------------------------------------------------------------------------------------
# Each modality's own prediction, from the fused pass


@pytest.mark.parametrize("context_mode", ["bidirectional", "causal"])
def test_modality_logits_equal_each_expert_on_its_own_modality(context_mode):
    model = tiny_model(context_mode=context_mode)
    features, mask = random_features(3, 7), random_mask(3, 7)
    utterance_mask = torch.ones(3, 7, dtype=torch.bool)
    utterance_mask[1, 5:] = False
    with torch.no_grad():
        output = model(features, mask, utterance_mask)
        assert output.modality_logits.shape == (3, 7, 3, model.config.num_outputs)
        for i, m in enumerate(MODALITIES):
            present = mask[..., i] & utterance_mask
            alone = model.forward_unimodal(m, features[m], mask[..., i], utterance_mask)
            torch.testing.assert_close(output.modality_logits[..., i, :][present], alone[present], rtol=1e-5, atol=1e-5)
            assert torch.all(output.modality_logits[..., i, :][~present] == 0)


def test_modality_logits_are_zero_without_the_expert_or_the_modality():
    model = tiny_model(experts=("text",))
    features, mask = random_features(1, 5), torch.ones(1, 5, 3, dtype=torch.bool)
    mask[0, 2, 1] = False
    with torch.no_grad():
        output = model({m: x for m, x in features.items()}, mask)
    own = output.modality_logits[0]
    assert torch.all(own[:, [0, 2]] == 0)  # no audio or visual expert: no own prediction
    assert torch.all(own[2, 1] == 0) and torch.all(own[[0, 1, 3, 4], 1] != 0)


# ---------------------------------------------------------------------------------------------
# The key/value cache: a conversation fed in pieces gives what one pass gives


@pytest.mark.parametrize("pieces", [[1] * 9, [4, 1, 3, 1], [9]])
def test_cached_pieces_equal_one_forward_pass(pieces):
    from momke.models.momke import KVCache

    model = tiny_model(context_mode="causal")
    features, mask = random_features(2, 9, seed=4), random_mask(2, 9, seed=5)
    mask[:, 2, 2] = False  # visual missing at one utterance of both conversations
    mask[0, :, 0] = False  # no audio anywhere in the first conversation
    with torch.no_grad():
        full = model(features, mask)
        cache, start = KVCache(model.config), 0
        for size in pieces:
            part = slice(start, start + size)
            output = model({m: x[:, part] for m, x in features.items()}, mask[:, part], cache=cache)
            for name in ("logits", "router_weights", "modality_logits"):
                torch.testing.assert_close(getattr(output, name), getattr(full, name)[:, part], rtol=1e-5, atol=1e-5)
            start += size
    assert cache.length == 9


def test_cache_checks_the_model_and_the_batch():
    from momke.models.momke import KVCache

    features, mask = random_features(1, 3), random_mask(1, 3)
    bidirectional = tiny_model()
    with pytest.raises(ValueError, match="causal"):
        bidirectional(features, mask, cache=KVCache(bidirectional.config))
    model = tiny_model(context_mode="causal")
    cache = KVCache(model.config)
    with torch.no_grad():
        model(features, mask, cache=cache)
        with pytest.raises(ValueError, match="holds 1 conversation"):
            model(random_features(2, 1), random_mask(2, 1), cache=cache)
