"""Checkpoints: round trip, self-description, and clear errors for everything that can be wrong."""

import functools
import json
from pathlib import Path

import model_support
import pytest
import torch
from model_support import DIMS
from momke.models import MODALITIES, MoMKE
from momke.models.checkpoint import (
    CONFIG_FILE,
    DEFAULT_CHECKPOINT,
    WEIGHTS_FILE,
    check_features,
    load_checkpoint,
    load_config,
    save_checkpoint,
)
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


tiny_model = functools.partial(model_support.tiny_model, num_blocks=1, feature_profile="lite")


def test_round_trip_gives_identical_outputs_and_config(tmp_path):
    model = tiny_model(context_mode="causal", labels=("calm", "tense", "glad"), metadata={"seed": 3})
    metadata = {"protocol": "random", "training_data": "synthetic", "metrics": {"WA": 0.5}}
    save_checkpoint(model.train(), tmp_path / "ckpt", metadata=metadata)
    assert model.config.metadata == {"seed": 3}  # saving does not change the model
    loaded = load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert not loaded.training
    assert loaded.config.context_mode == "causal"
    assert loaded.config.labels == ("calm", "tense", "glad")
    assert loaded.config.feature_profile == "lite" and loaded.config.feature_dims == DIMS
    assert loaded.config.metadata == {"seed": 3, **metadata}
    features = {m: torch.randn(2, 5, d) for m, d in zip(MODALITIES, DIMS)}
    mask = torch.rand(2, 5, 3) < 0.7
    mask[..., 1] = True
    expected = model.eval()(features, mask)
    output = loaded(features, mask)
    assert torch.equal(output.logits, expected.logits)
    assert torch.equal(output.router_weights, expected.router_weights)
    for name in (CONFIG_FILE, WEIGHTS_FILE):  # readable by others, e.g. once packaged
        assert (tmp_path / "ckpt" / name).stat().st_mode & 0o044 == 0o044
    document = json.loads((tmp_path / "ckpt" / CONFIG_FILE).read_text())
    assert document["config"]["feature_dims"] == list(DIMS)
    assert load_config(tmp_path / "ckpt") == loaded.config


def test_default_device_is_chosen_at_run_time(tmp_path):
    save_checkpoint(tiny_model(), tmp_path)
    loaded = load_checkpoint(tmp_path)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(loaded.parameters()).device.type == expected


def test_saving_again_replaces_the_checkpoint(tmp_path):
    save_checkpoint(tiny_model(), tmp_path)
    save_checkpoint(tiny_model(labels=("a", "b")), tmp_path)
    assert load_checkpoint(tmp_path, device="cpu").config.labels == ("a", "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(tiny_model(), tmp_path / "x", metadata={"array": object()})
    assert not (tmp_path / "x" / CONFIG_FILE).exists()


def test_check_features():
    config = tiny_model().config
    check_features(config, "lite", DIMS)
    check_features(config, "lite", dict(zip(MODALITIES, DIMS)))
    with pytest.raises(ValueError, match="'lite' feature profile, not 'research'"):
        check_features(config, "research", DIMS)
    with pytest.raises(ValueError, match=r"text 5 \(got 1024\)"):
        check_features(config, "lite", (6, 1024, 4))


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=CONFIG_FILE):
        load_checkpoint(tmp_path)
    save_checkpoint(tiny_model(), tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_checkpoint(tmp_path)


def test_corrupt_config(tmp_path):
    save_checkpoint(tiny_model(), tmp_path)
    path = tmp_path / CONFIG_FILE
    good = path.read_text()
    path.write_text(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(tmp_path)
    path.write_text(json.dumps({"hidden_dim": 8}))
    with pytest.raises(ValueError, match="not a MoMKE checkpoint config"):
        load_checkpoint(tmp_path)
    document = json.loads(good)
    document["config"]["context_mode"] = "sideways"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="invalid MoMKE config.*context_mode"):
        load_checkpoint(tmp_path)
    document = json.loads(good)
    document["version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="version 99"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_match_the_config(tmp_path):
    save_checkpoint(tiny_model(), tmp_path)
    path = tmp_path / CONFIG_FILE
    document = json.loads(path.read_text())
    document["config"]["feature_dims"] = [6, 5, 7]
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="do not match its config.*projections.visual.weight"):
        load_checkpoint(tmp_path)

    save_checkpoint(tiny_model(), tmp_path)
    tensors = load_file(str(tmp_path / WEIGHTS_FILE))
    del tensors["head.mlp.0.bias"]
    save_file(tensors, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(ValueError, match="missing.*head.mlp.0.bias"):
        load_checkpoint(tmp_path)

    (tmp_path / WEIGHTS_FILE).write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_checkpoint(tmp_path)


def test_default_checkpoint_lives_in_the_assets_package():
    import momke.assets

    assert DEFAULT_CHECKPOINT == Path(momke.assets.__file__).resolve().parent / "checkpoints" / "momke-whisper-4class"
    if (DEFAULT_CHECKPOINT / CONFIG_FILE).exists():
        model = load_checkpoint(DEFAULT_CHECKPOINT, device="cpu")
        assert model.config.feature_profile == "whisper-prosody-conv" and len(model.config.labels) == 4


def _edit_config(directory: Path, **changes) -> None:
    path = directory / CONFIG_FILE
    document = json.loads(path.read_text())
    document["config"].update(changes)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("hidden_dim", 8.0, "'hidden_dim' must be an integer, got 8.0"),
    ("num_blocks", True, "'num_blocks' must be an integer, got True"),
    ("use_router", "false", "'use_router' must be true or false, got 'false'"),
    ("mixing", 0, "'mixing' must be true or false, got 0"),
    ("labels", "hsna", "'labels' must be a list, got 'hsna'"),
    ("labels", ["happy", 2], "'labels' item 1 must be a string, got 2"),
    ("feature_dims", [6, 5], "'feature_dims' must be a list of 3 items"),
    ("feature_dims", [6, 5, 4.5], "'feature_dims' item 2 must be an integer"),
    ("mlp_ratio", "4", "'mlp_ratio' must be a number"),
    ("dropout", None, "'dropout' must be a number"),
    ("metadata", [], "'metadata' must be an object"),
])
def test_config_types_are_checked_strictly(tmp_path, key, value, message):
    save_checkpoint(tiny_model(), tmp_path)
    _edit_config(tmp_path, **{key: value})
    with pytest.raises(ValueError, match=f"invalid MoMKE config: config key {message}".replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[")):
        load_checkpoint(tmp_path, device="cpu")


def test_a_config_asking_for_a_huge_model_is_refused_before_it_is_built(tmp_path, monkeypatch):
    from momke.models import ensemble

    built = []

    class Spy(MoMKE):
        def __init__(self, config):
            built.append(torch.empty(0).device.type)  # the device a new tensor lands on
            super().__init__(config)

    monkeypatch.setattr(ensemble, "MoMKE", Spy)  # build_model's
    model = tiny_model()
    save_checkpoint(model, tmp_path)
    width = int(model.config.hidden_dim * model.config.mlp_ratio)
    _edit_config(tmp_path, mlp_ratio=1e5)  # 8 * 1e5 wide feed-forward layers: ~150 MB if built
    with pytest.raises(ValueError, match=rf"wrong shapes.*mlp.0.weight: \({width}, 8\) in file, \(800000, 8\) in config"):
        load_checkpoint(tmp_path, device="cpu")
    assert built == ["meta"]  # shapes were compared on the meta device, nothing real was built

    _edit_config(tmp_path, mlp_ratio=4.0, num_blocks=10**7)  # even a meta model would take minutes
    with pytest.raises(ValueError, match="num_blocks is 10000000 in config, 1 in the weights file"):
        load_checkpoint(tmp_path, device="cpu")
    assert built == ["meta"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    save_checkpoint(tiny_model(), tmp_path)
    tensors = load_file(str(tmp_path / WEIGHTS_FILE))
    tensors["experts.text.blocks.0.mlp.0.weight"][0, 0] = bad
    save_file(tensors, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(ValueError, match="NaN or infinite values.*experts.text.blocks.0.mlp.0.weight"):
        load_checkpoint(tmp_path, device="cpu")


def test_integer_weights_are_refused(tmp_path):
    save_checkpoint(tiny_model(), tmp_path)
    tensors = load_file(str(tmp_path / WEIGHTS_FILE))
    tensors["head.mlp.0.bias"] = tensors["head.mlp.0.bias"].to(torch.int64)
    save_file(tensors, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(ValueError, match="not floating point.*head.mlp.0.bias: I64"):
        load_checkpoint(tmp_path, device="cpu")
