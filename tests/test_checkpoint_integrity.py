"""Checkpoint integrity: the weights file's sha256 is recorded at save and checked at load (weights
zeroed or scaled after training used to load and run with nothing said); a config that is a JSON
list, and a calibration missing a condition's temperature, are refused clearly."""

from __future__ import annotations

import json

import pytest
import torch
from momke.models.checkpoint import (
    CONFIG_FILE,
    DEFAULT_CHECKPOINT,
    WEIGHTS_FILE,
    file_sha256,
    load_checkpoint,
    load_config,
    save_checkpoint,
)
from momke.models.config import MoMKEConfig
from momke.models.momke import MoMKE
from safetensors.torch import load_file, save_file


def small(calibration=None) -> MoMKE:
    torch.manual_seed(0)
    return MoMKE(MoMKEConfig(feature_dims=(4, 6, 3), hidden_dim=8, num_blocks=1, router_hidden_dim=8,
                             calibration=calibration or {})).eval()


def edit_document(folder, change) -> None:
    path = folder / CONFIG_FILE
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_save_records_the_weights_sha256_and_a_modified_file_is_refused_unless_accepted(tmp_path):
    folder = save_checkpoint(small(), tmp_path / "ckpt")
    recorded = json.loads((folder / CONFIG_FILE).read_text())["weights_sha256"]
    assert recorded == file_sha256(folder / WEIGHTS_FILE)
    load_checkpoint(folder, device="cpu")
    tensors = load_file(str(folder / WEIGHTS_FILE))
    save_file({name: t * 0.5 for name, t in tensors.items()}, str(folder / WEIGHTS_FILE))  # scaled after training
    with pytest.raises(ValueError, match=r"model\.safetensors was modified after the checkpoint was saved.*allow_modified=True"):
        load_checkpoint(folder, device="cpu")
    scaled = load_checkpoint(folder, device="cpu", allow_modified=True)  # accepted knowingly
    assert scaled.config == load_config(folder)


def test_the_shipped_checkpoint_records_its_real_sha256():
    document = json.loads((DEFAULT_CHECKPOINT / CONFIG_FILE).read_text())
    assert document["weights_sha256"] == file_sha256(DEFAULT_CHECKPOINT / WEIGHTS_FILE)


def test_a_config_that_is_a_json_list_is_refused_clearly(tmp_path):
    folder = save_checkpoint(small(), tmp_path / "ckpt")
    edit_document(folder, lambda d: d.update(config=[1, 2, 3]))
    with pytest.raises(ValueError, match=r'"config" must be a JSON object of MoMKE settings, got a JSON list'):
        load_checkpoint(folder)


def test_a_calibration_missing_a_conditions_temperature_is_refused(tmp_path):
    fused = {c: 1.5 for c in ("a", "t", "v", "at", "av", "tv", "atv")}
    modalities = {"audio": 1.2, "text": 1.1, "visual": 1.3}
    folder = save_checkpoint(small({"modalities": modalities, "fused": fused}), tmp_path / "ckpt")
    load_checkpoint(folder, device="cpu")  # complete: loads
    del fused["av"]
    folder = save_checkpoint(small({"modalities": modalities, "fused": fused}), tmp_path / "partial")
    with pytest.raises(ValueError, match=r"calibration\['fused'\] has no temperature for av: those would run uncalibrated"):
        load_checkpoint(folder, device="cpu")


def test_momke_live_refuses_a_modified_checkpoint_with_exit_2_and_the_flag_to_accept_it(tmp_path, capsys):
    from momke.realtime.ui.cli import main

    folder = save_checkpoint(small(), tmp_path / "ckpt")
    tensors = load_file(str(folder / WEIGHTS_FILE))
    save_file({name: torch.zeros_like(t) for name, t in tensors.items()}, str(folder / WEIGHTS_FILE))
    assert main(["--demo", "--fast", "--json", "--checkpoint", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "was modified after the checkpoint was saved" in err and "--accept-modified-checkpoint" in err
