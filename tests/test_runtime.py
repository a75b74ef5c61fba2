"""The one device picker and the one atomic writer (extractors/runtime.py)."""

import os

import pytest
import torch
from momke.extractors.runtime import atomic_path, atomic_write, pick_device, write_text_atomic


def test_auto_is_cuda_when_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    assert pick_device("auto").type == expected


def test_an_explicit_choice_is_kept():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


def test_a_missing_cuda_device_is_refused_in_words():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match="CUDA"):
        pick_device(f"cuda:{count}")  # one past the last device
    if count == 0:
        with pytest.raises(ValueError, match="no CUDA device"):
            pick_device("cuda")


def test_a_non_device_name_is_refused():
    with pytest.raises(ValueError, match="not a device name"):
        pick_device("tpu")


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "sub" / "report.json"
    write_text_atomic(target, "first")
    with atomic_write(target, "w", encoding="utf-8") as stream:
        stream.write("second")
        assert target.read_text() == "first"  # the old content stays until the block ends
    assert target.read_text() == "second"
    assert os.stat(target).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]  # no temporary left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]
