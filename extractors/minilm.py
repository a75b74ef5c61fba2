"""all-MiniLM-L6-v2 as a plain torch module: a 6-layer BERT encoder, mean pooling, L2 norm.

Written here so the live text path needs only `tokenizers` and `safetensors` (both imported in
milliseconds) instead of sentence-transformers, whose import pulls in transformers and costs about
4 s of a live session's start on a 2-core CPU. The arithmetic follows the published model card
(BERT post-LayerNorm layers with exact GELU; mean over the real tokens; unit length), and the
test suite checks it against sentence-transformers on real transcripts.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MAX_TOKENS = 256  # the model's `max_seq_length` (sentence_bert_config.json): longer text is cut
WEIGHTS = "model.safetensors"  # in the model folder


class _Layer(nn.Module):
    def __init__(self, width: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.attention_out = nn.Linear(width, width)
        self.attention_norm = nn.LayerNorm(width, eps=eps)
        self.inner = nn.Linear(width, inner)
        self.outer = nn.Linear(inner, width)
        self.output_norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def split(projection: nn.Linear) -> torch.Tensor:
            return projection(x).view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(split(self.query), split(self.key), split(self.value), attn_mask=keep)
        attended = attended.transpose(1, 2).reshape(batch, length, width)
        x = self.attention_norm(x + self.attention_out(attended))
        return self.output_norm(x + self.outer(F.gelu(self.inner(x))))


class MiniLMEncoder(nn.Module):
    """Token ids and attention mask -> unit-length sentence vectors [batch, hidden]."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        width, eps = config["hidden_size"], config["layer_norm_eps"]
        self.words = nn.Embedding(config["vocab_size"], width)
        self.positions = nn.Embedding(config["max_position_embeddings"], width)
        self.token_types = nn.Embedding(config["type_vocab_size"], width)
        self.embedding_norm = nn.LayerNorm(width, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(width, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        )

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.words(ids) + self.positions(positions) + self.token_types.weight[0]
        x = self.embedding_norm(x)
        keep = mask.bool()[:, None, None, :]  # attend to real tokens only
        for layer in self.layers:
            x = layer(x, keep)
        weights = mask.to(x.dtype).unsqueeze(-1)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


def _renamed(name: str) -> str | None:
    """The published checkpoint's tensor name -> this module's, None for tensors not used."""
    if name.startswith("pooler.") or name == "embeddings.position_ids":
        return None  # the [CLS] pooler is not part of the sentence embedding
    for old, new in (
        ("embeddings.word_embeddings", "words"), ("embeddings.position_embeddings", "positions"),
        ("embeddings.token_type_embeddings", "token_types"), ("embeddings.LayerNorm", "embedding_norm"),
        ("encoder.layer.", "layers."), ("attention.self.", ""), ("attention.output.dense", "attention_out"),
        ("attention.output.LayerNorm", "attention_norm"), ("intermediate.dense", "inner"),
        ("output.dense", "outer"), ("output.LayerNorm", "output_norm"),
    ):
        name = name.replace(old, new)
    return name


def load_minilm(folder: Path) -> tuple[MiniLMEncoder, object]:
    """(encoder in eval mode, tokenizer) from the model folder; raises if a tensor is missing."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    encoder = MiniLMEncoder(json.loads((folder / "config.json").read_text()))
    published = load_file(folder / WEIGHTS)
    state = {new: tensor for name, tensor in published.items() if (new := _renamed(name)) is not None}
    encoder.load_state_dict(state, strict=True, assign=True)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in each batch
    return encoder.eval(), tokenizer
