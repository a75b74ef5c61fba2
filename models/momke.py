"""MoMKE: Mixture of Modality Knowledge Experts (Xu et al., ACM MM 2024), section 3.

Names follow the paper:
- W^m, the per-modality projection d_m -> d, then sinusoidal utterance positions;
- e^k, the modality expert k: a pre-LN transformer encoder over the utterances of a conversation;
- stage 1 (unimodal expert training): expert k reads modality k only, through its own FC head;
- stage 2 (experts mixing): every available modality m goes through every expert, and the Soft
  Router (a 2-layer MLP on the raw x^m, softmax over the experts) mixes them:
  R^m = sum_k w^m_k e^k(x^m); a missing modality gives R^m = 0;
- the head reads concat(R^a, R^t, R^v).

Beyond the paper: a modality mask per utterance (a sensor may drop for one utterance), a causal
context mode for live use, padded or fully-masked rows that never produce NaN, each present
modality's own prediction from the same pass (expert m on x^m through its stage-1 head), and
a key/value cache (KVCache) so that a causal model can take a conversation one utterance at a
time through this same forward().

Speed (CPU training, benchmarks/bench_training.py): the training forward computes only the
utterances where a modality is present, in packed rows and attention grids (models/packing.py);
stage 2's head reads only the utterances that have a modality.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import MODALITIES, MoMKEConfig
from .packing import Dropout, Packing, add_dropout, attend, scatter_rows


@functools.lru_cache(maxsize=32)
def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> Tensor:
    """The transformer's fixed sine/cosine position code, one row per utterance: [length, dim].

    Cached (live inference asks for the same tables at every step): the table is shared, so
    never write into it.
    """
    with torch.inference_mode(False):  # a normal tensor, so a table first made live also serves training
        position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
        frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
        table = torch.zeros(length, dim, device=device, dtype=torch.float32)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
        return table.to(dtype)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self, x: Tensor, allowed: Tensor | None, cache: LayerCache | None = None, packing: Packing | None = None
    ) -> Tensor:
        """x: [B, U, d]; allowed: bool [B, U (queries), K (keys)], True where attention may look.

        Without a cache the keys are x's own utterances (K = U). With one, they are the cached
        utterances followed by x's (K = cached + U), and x's keys and values join the cache.
        With a packing, x is packed rows [N, d] and allowed is unused (the packing's grids say).
        """
        qkv = self.qkv(x)
        p = self.dropout if self.training else 0.0
        if packing is not None:
            return self.out(packing.attend(qkv, p))
        batch, length, dim = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        q, k, v = qkv.view(batch, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = cache.extend(k, v)
        attended = attend(q, k, v, allowed, p)
        return self.out(attended.transpose(1, 2).reshape(batch, length, dim))


class ExpertBlock(nn.Module):
    """One pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        # In-place dropout: GELU's backward reads its input, not the output the dropout rewrites.
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), Dropout(dropout, inplace=True), nn.Linear(hidden, dim))
        self.dropout = Dropout(dropout)

    def forward(
        self, x: Tensor, allowed: Tensor | None, cache: LayerCache | None = None, packing: Packing | None = None
    ) -> Tensor:
        p = self.dropout.p
        # Each residual branch ends in a linear layer, whose output can take the sum (into_y).
        x = add_dropout(x, self.attention(self.norm1(x), allowed, cache, packing), p, self.training, into_y=True)
        return add_dropout(x, self.mlp(self.norm2(x)), p, self.training, into_y=True)


class ModalityExpert(nn.Module):
    """e^k: Q pre-LN blocks over the (projected, position-coded) utterance sequence."""

    def __init__(self, config: MoMKEConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ExpertBlock(config.hidden_dim, config.num_heads, config.mlp_ratio, config.dropout)
            for _ in range(config.num_blocks)
        )
        self.norm = nn.LayerNorm(config.hidden_dim)

    def forward(
        self, x: Tensor, allowed: Tensor | None, cache: list[LayerCache] | None = None, packing: Packing | None = None
    ) -> Tensor:
        """cache: one LayerCache per block (causal step-by-step inference), or None; packing: x is
        packed rows (see Packing)."""
        for index, block in enumerate(self.blocks):
            x = block(x, allowed, None if cache is None else cache[index], packing)
        return self.norm(x)


class SoftRouter(nn.Module):
    """2-layer MLP on the raw features x^m, softmax over the experts: w^m, [B, U, num_experts]."""

    def __init__(self, input_dim: int, hidden_dim: int, num_experts: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(input_dim, hidden_dim), nn.ReLU(inplace=True), Dropout(dropout), nn.Linear(hidden_dim, num_experts)
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.mlp(features).softmax(dim=-1)


class PredictionHead(nn.Module):
    """FC head: Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, input_dim: int, hidden_dim: int, num_outputs: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(input_dim, hidden_dim), nn.ReLU(inplace=True), Dropout(dropout), nn.Linear(hidden_dim, num_outputs)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


@dataclass
class MoMKEOutput:
    """What one forward pass returns.

    logits: [B, U, C] class scores, or [B, U, 1] sentiment scores for regression.
    router_weights: [B, U, 3 modalities, E experts], the Soft Router's expert loads w^m. Rows of
        present modalities sum to 1; rows of missing modalities are 0.
    modality_mask: [B, U, 3], the mask that was applied (after padding).
    modality_logits: [B, U, 3 modalities, C], each present modality's own prediction: expert m
        on modality m through its stage-1 head (what forward_unimodal(m) gives); 0 where m is
        missing or the model has no expert m.
    """

    logits: Tensor
    router_weights: Tensor
    modality_mask: Tensor
    modality_logits: Tensor


class MoMKE(nn.Module):
    def __init__(self, config: MoMKEConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, d) for m, dim in zip(MODALITIES, config.feature_dims)}
        )
        self.experts = nn.ModuleDict({k: ModalityExpert(config) for k in config.experts})
        self.routers = nn.ModuleDict(
            {
                m: SoftRouter(dim, config.router_hidden_dim, len(config.experts), config.dropout)
                for m, dim in zip(MODALITIES, config.feature_dims)
            }
        )
        # Stage 1: each expert has its own FC head. Stage 2: one head over concat(R^a, R^t, R^v).
        self.unimodal_heads = nn.ModuleDict(
            {k: PredictionHead(d, d, config.num_outputs, config.dropout) for k in config.experts}
        )
        self.head = PredictionHead(len(MODALITIES) * d, d, config.num_outputs, config.dropout)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for step-by-step inference (causal models)."""
        return KVCache(self.config)

    # ----------------------------------------------------------------------------------------
    # Input checking and masks

    def _prepare(
        self, features: Mapping[str, Tensor], modality_mask: Tensor, utterance_mask: Tensor | None
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Check the inputs; return each modality's present utterances, rows [n_m, d_m] (mask's
        True places, row by row; missing ones are never read, so they may hold anything), and the
        mask with padding combined into it."""
        unknown = set(features) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; expected keys among {MODALITIES}")
        if modality_mask.dim() != 3 or modality_mask.shape[-1] != len(MODALITIES):
            raise ValueError(f"modality_mask must be [batch, utterances, 3], got {tuple(modality_mask.shape)}")
        batch, length, _ = modality_mask.shape
        mask = modality_mask.bool()
        if utterance_mask is not None:
            if utterance_mask.shape != (batch, length):
                raise ValueError(f"utterance_mask must be [batch, utterances] = {(batch, length)}, got {tuple(utterance_mask.shape)}")
            mask = mask & utterance_mask.bool().unsqueeze(-1)
        dtype = self.head.mlp[0].weight.dtype
        rows = {}
        for index, (name, dim) in enumerate(zip(MODALITIES, self.config.feature_dims)):
            x = features.get(name)
            present = mask[..., index]
            if x is None:
                if present.any():
                    raise ValueError(f"modality_mask marks {name} present but no {name} features were given")
                rows[name] = torch.zeros(0, dim, device=modality_mask.device, dtype=dtype)
                continue
            if x.shape != (batch, length, dim):
                raise ValueError(
                    f"{name} features must be [batch, utterances, {dim}] = {(batch, length, dim)}, "
                    f"got {tuple(x.shape)}: a checkpoint only reads the feature profile it was trained on "
                    f"({self.config.feature_profile!r})"
                )
            rows[name] = x[present].to(dtype)  # float64 features (numpy's default) would not meet float32 weights
            # NaN and inf show in the extremes: one read, where isfinite().all() cost 6x (cold rows)
            if rows[name].numel() and not torch.isfinite(torch.stack(torch.aminmax(rows[name]))).all():
                raise ValueError(f"{name} features contain NaN or inf in utterances marked present")
        return rows, mask

    def attention_mask(self, key_present: Tensor, past: int = 0) -> Tensor:
        """bool [B, U, past + U]: which utterances (keys) each of the newest U utterances (queries)
        may attend to; key_present [B, past + U] covers every key, the `past` cached ones first.

        Keys are the utterances where the modality is present; causal mode also hides later
        utterances. Every query may see itself, so no softmax row is empty (no NaN): the output
        of a query whose modality is missing is discarded anyway.
        """
        device, total = key_present.device, key_present.shape[1]
        keys = torch.arange(total, device=device)
        queries = torch.arange(past, total, device=device).unsqueeze(1)
        allowed = key_present.unsqueeze(1).expand(-1, total - past, -1)
        if self.config.context_mode == "causal":
            allowed = allowed & (keys <= queries)
        return allowed | (keys == queries)

    def embed_rows(self, modality: str, rows: Tensor, utterance: Tensor, length: int) -> Tensor:
        """embed() for packed rows [N, d_m] at positions `utterance` [N] of conversations of
        `length` utterances: [N, d]."""
        projected = self.projections[modality](rows)
        positions = sinusoidal_positions(length, projected.shape[-1], projected.device, rows.dtype)
        # Into the gathered positions (a new tensor): the residual stream keeps the rows' float32
        # when mixed precision makes the projection bfloat16
        return positions[utterance].add_(projected)

    def embed(self, modality: str, x: Tensor, past: int = 0) -> Tensor:
        """W^m x^m plus sinusoidal utterance positions (past, past + 1, ...): [B, U, d]."""
        projected = self.projections[modality](x)
        positions = sinusoidal_positions(past + x.shape[1], projected.shape[-1], projected.device, projected.dtype)
        return projected + positions[past:]

    # ----------------------------------------------------------------------------------------
    # Stage 1: unimodal expert training

    def forward_unimodal(
        self, modality: str, features: Tensor, present: Tensor, utterance_mask: Tensor | None = None
    ) -> Tensor:
        """Expert `modality` on its own modality only, through its own head: [B, U, C], 0 where
        the modality is missing or on padding.

        present: bool [B, U], where this modality exists. Reads nothing of the other modalities.
        """
        if modality not in self.experts:
            raise ValueError(f"no {modality} expert in this model (experts: {self.config.experts})")
        batch, length = present.shape
        mask = torch.zeros(batch, length, len(MODALITIES), dtype=torch.bool, device=present.device)
        mask[..., MODALITIES.index(modality)] = present.bool()
        rows, mask = self._prepare({modality: features}, mask, utterance_mask)
        keep = mask[..., MODALITIES.index(modality)]
        if not keep.any():
            return rows[modality].new_zeros(batch, length, self.config.num_outputs)
        packing = Packing(keep, self.config.context_mode == "causal", self.config.num_heads)
        embedded = self.embed_rows(modality, rows[modality], packing.utterance, length)
        hidden = self.experts[modality](embedded, None, packing=packing)
        return scatter_rows(self.unimodal_heads[modality](hidden), keep)

    # ----------------------------------------------------------------------------------------
    # Stage 2: experts mixing

    def forward(
        self,
        features: Mapping[str, Tensor],
        modality_mask: Tensor,
        utterance_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> MoMKEOutput:
        """features: {"audio": [B, U, d_a], "text": ..., "visual": ...} (a key may be left out when
        that modality is missing everywhere); modality_mask: bool [B, U, 3], True where a
        modality is present; utterance_mask: bool [B, U], False on padding.

        cache (causal models only): the KVCache of the utterances before these ones, extended
        here; the outputs are those of the whole conversation so far, for the new utterances."""
        rows, mask = self._prepare(features, modality_mask, utterance_mask)
        if cache is None:
            outputs = self.experts_packed(rows, mask)
        else:
            outputs = self.experts_cached(rows, mask, cache)
        weights, mixed, own = self.mix(rows, outputs, mask)
        logits = self.head_on_rows(mixed, mask.any(dim=-1))
        return MoMKEOutput(
            logits=logits, router_weights=weights, modality_mask=mask, modality_logits=torch.stack(own, dim=2)
        )

    def experts_packed(self, present_rows: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
        """e^k(x^m) for every expert k and every present (m, utterance), computed on the present
        utterances only (see Packing): {m: [n_m, E, d]} for the modalities present anywhere."""
        used = [i for i in range(len(MODALITIES)) if mask[..., i].any()]
        if not used:
            return {}
        # Every used modality goes through every expert; modalities are stacked along the batch
        # so each expert runs once per forward pass.
        packing = Packing(
            torch.cat([mask[..., i] for i in used]), self.config.context_mode == "causal", self.config.num_heads
        )
        rows = [present_rows[MODALITIES[i]] for i in used]
        counts = [len(x) for x in rows]
        embedded = torch.cat([
            self.embed_rows(MODALITIES[i], x, utterance, mask.shape[1])
            for i, x, utterance in zip(used, rows, packing.utterance.split(counts))
        ])
        expert_outputs = torch.stack(
            [self.experts[k](embedded, None, packing=packing) for k in self.config.experts], dim=1
        )  # [N, E, d]
        return {MODALITIES[i]: outputs for i, outputs in zip(used, expert_outputs.split(counts))}

    def experts_cached(self, present_rows: dict[str, Tensor], mask: Tensor, cache: KVCache) -> dict[str, Tensor]:
        """experts_packed() for the newest utterances of conversations whose earlier utterances
        are in `cache` (extended here): {m: [n_m, E, d]} for every modality (n_m may be 0)."""
        if self.config.context_mode != "causal":
            raise ValueError("a key/value cache needs a causal model: in bidirectional mode a new utterance changes every earlier one")
        batch, length, _ = mask.shape
        past = cache.length
        # Every modality goes through every expert, stacked along the batch (zeros where
        # missing), so the cache keeps one layout whichever modalities a call brings.
        embedded = torch.cat([
            self.embed(m, scatter_rows(present_rows[m], mask[..., i]), past) for i, m in enumerate(MODALITIES)
        ])
        key_present = cache.extend_presence(torch.cat([mask[..., i] for i in range(len(MODALITIES))]))
        allowed = self.attention_mask(key_present, past)
        expert_outputs = torch.stack(
            [self.experts[k](embedded, allowed, cache.layers[k]) for k in self.config.experts], dim=-2
        ).view(len(MODALITIES), batch, length, len(self.config.experts), -1)  # [modality, B, U, E, d]
        return {m: expert_outputs[i][mask[..., i]] for i, m in enumerate(MODALITIES)}

    def mix(
        self, present_rows: dict[str, Tensor], outputs: dict[str, Tensor], mask: Tensor
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Stage 2's mixing, from the experts' outputs on the present utterances ({m: [n_m, E, d]}):
        (w [B, U, 3, E], concat(R^a, R^t, R^v) [n, 3d] for the n utterances with a modality
        (mask.any(-1)'s True places, row by row; R^m = 0 where m is missing), each modality's own
        logits [B, U, C] (0 where missing))."""
        batch, length, _ = mask.shape
        expert_names = list(self.config.experts)
        dtype = present_rows[MODALITIES[0]].dtype
        weights = mask.new_zeros(batch, length, len(MODALITIES), len(expert_names), dtype=dtype)
        own = [weights.new_zeros(batch, length, self.config.num_outputs) for _ in MODALITIES]
        # Row j * 3 + i of mixed: R^i of the j-th utterance with a modality.
        has_modality = mask.any(dim=-1).flatten()
        utterance_row = has_modality.cumsum(0) - 1
        mixed = weights.new_zeros(int(has_modality.sum()) * len(MODALITIES), self.config.hidden_dim)
        for i, m in enumerate(MODALITIES):
            if m not in outputs or not len(outputs[m]):
                continue
            present = mask[..., i]
            w = self.route(m, present_rows[m])  # [n, E]
            weights[:, :, i] = scatter_rows(w, present)
            r = (w.unsqueeze(-1) * outputs[m]).sum(dim=1)  # R^m = sum_k w^m_k e^k(x^m)
            # .to: under mixed precision r is bfloat16 (index_copy_ wants one dtype); else a no-op
            mixed.index_copy_(0, utterance_row[present.flatten()] * len(MODALITIES) + i, r.to(mixed.dtype))
            if m in expert_names:  # m's own prediction: its expert, its stage-1 head
                own[i] = scatter_rows(self.unimodal_heads[m](outputs[m][:, expert_names.index(m)]), present)
        return weights, mixed.view(-1, len(MODALITIES) * self.config.hidden_dim), own

    def head_on_rows(self, mixed: Tensor, where: Tensor) -> Tensor:
        """The head on concat(R^a, R^t, R^v) of every utterance [B, U, C], from its rows [n, 3d] at
        where's True places: elsewhere the input is 0, so the first layer gives its bias there and
        its matmul (the head's cost) runs on the n rows only, not on padding."""
        first = self.head.mlp[0]
        hidden = first.bias.expand(*where.shape, -1).clone()
        hidden[where] = first(mixed).to(hidden.dtype)  # bfloat16 under mixed precision
        return self.head.mlp[1:](hidden)

    def route(self, modality: str, x: Tensor) -> Tensor:
        """The Soft Router's expert weights w^m for the (zero-filled) features x^m [..., d_m]: [..., E].

        Ablations: no router -> equal weights; no mixing -> a one-hot on modality m's own
        expert, or equal weights when the model has no expert of that modality (an expert
        subset), so the modality is still used rather than silently dropped.
        """
        expert_names = list(self.config.experts)
        num_experts = len(expert_names)
        if not self.config.mixing and modality in expert_names:
            own = torch.zeros(num_experts, dtype=x.dtype, device=x.device)
            own[expert_names.index(modality)] = 1.0
            return own.expand(*x.shape[:-1], -1)
        if not self.config.mixing or not self.config.use_router:
            return x.new_full((*x.shape[:-1], num_experts), 1.0 / num_experts)
        return self.routers[modality](x)


# --------------------------------------------------------------------------------------------
# Causal step-by-step inference (models/streaming.py): the key/value cache forward() extends


class LayerCache:
    """The keys and values [S, H, K, d / H] one attention layer computed for earlier utterances."""

    def __init__(self) -> None:
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def extend(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new utterances' keys and values; return all of them."""
        if self.keys is not None:
            keys, values = torch.cat([self.keys, keys], dim=2), torch.cat([self.values, values], dim=2)
        self.keys, self.values = keys, values
        return keys, values


class KVCache:
    """What causal step-by-step inference keeps between calls of MoMKE.forward(..., cache=).

    A causal utterance attends only to itself and earlier ones, so the keys and values earlier
    utterances produced in every (input modality, expert, block) never change: they are kept
    here and a new utterance costs one query row per block. Every modality is stacked along the
    batch (S = 3 x batch rows, MODALITIES order, zeros where missing) so the layout does not
    depend on which modalities each call brings. Tensors are replaced, never written in place:
    a copy() made before a call is a snapshot to fall back to if the call's output is rejected.
    """

    def __init__(self, config: MoMKEConfig) -> None:
        self.length = 0  # utterances seen, so the next one's position
        self.key_present: Tensor | None = None  # bool [S, length]: which utterances are keys of each row
        self.layers = {k: [LayerCache() for _ in range(config.num_blocks)] for k in config.experts}

    def copy(self) -> KVCache:
        twin = copy.copy(self)
        twin.layers = {k: [copy.copy(layer) for layer in layers] for k, layers in self.layers.items()}
        return twin

    def extend_presence(self, key_present: Tensor) -> Tensor:
        """Append the new utterances' key presence [S, U]; return it for every utterance [S, K]."""
        if self.key_present is not None:
            if self.key_present.shape[0] != key_present.shape[0]:
                raise ValueError(
                    f"this cache holds {self.key_present.shape[0] // len(MODALITIES)} conversation(s), "
                    f"got a batch of {key_present.shape[0] // len(MODALITIES)}"
                )
            key_present = torch.cat([self.key_present, key_present], dim=1)
        self.key_present, self.length = key_present, key_present.shape[1]
        return key_present
