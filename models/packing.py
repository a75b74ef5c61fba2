"""The fast paths of MoMKE's training forward: packed utterances and cheap dropout.

Speed (CPU training, benchmarks/bench_training.py): without a cache, the per-utterance layers run
only on the utterances where a modality is present (Packing): padding and, in stage 2, missing
modalities cost nothing, and attention runs on each sequence's present utterances moved to the
front, in grids of sequences of similar length (length_groups), with its CPU training backward
written out (PackedAttention). Dropout draws its masks from random bytes (dropout_mask): on CPU a
third of the time of torch.rand's masks, a tenth of F.dropout's (bernoulli_). Every path gives
the outputs of the plain padded computation (tests/test_model_packing.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def dropout(x: Tensor, p: float, training: bool, inplace: bool = False) -> Tensor:
    """F.dropout, with the CPU mask drawn by dropout_mask: F.dropout's bernoulli_ costs more there
    than a 256 x 256 matmul of the same rows (benchmarks/bench_training.py). Same distribution.

    inplace: write into x (training only), as torch's Dropout(inplace=True) does: for an x that
    nothing else reads and whose backward does not need it (a GELU's output), it spares a new
    tensor: the MLP's GELU + dropout, forward and backward, in 20 % less time."""
    if not training or p == 0.0 or x.device.type != "cpu":
        return F.dropout(x, p, training, inplace and training)
    if p >= 1.0:
        return x.mul_(0.0) if inplace else x * 0.0
    mask = dropout_mask(x, p)
    return x.mul_(mask) if inplace else x * mask


def add_dropout(x: Tensor, y: Tensor, p: float, training: bool, into_y: bool = False) -> Tensor:
    """x + dropout(y, p, training): on CPU in one pass (addcmul) rather than a product and a sum.

    into_y: written into y, for a y that nothing else reads and whose backward does not need it
    (a linear layer's output): no new tensor, which on CPU costs more than the second pass (a
    residual's forward and backward in 5-8 % less time). Not when y is narrower than x (mixed
    precision's bfloat16 branch beside the float32 residual stream): the sum takes x's dtype,
    so bfloat16 rounding stays out of the residual stream."""
    if into_y and y.dtype == x.dtype:
        return dropout(y, p, training, inplace=True).add_(x)
    if not training or p == 0.0 or p >= 1.0 or y.device.type != "cpu":
        return x + dropout(y, p, training)
    return torch.addcmul(x, y, dropout_mask(y, p))


def dropout_mask(x: Tensor, p: float) -> Tensor:
    """Inverted dropout's mask, like x (its dtype): 1 / (1 - p) with probability 1 - p and 0.0
    otherwise, independently per element.

    On CPU torch draws random numbers one element at a time, and a draw costs about as much
    whatever its width, so when 256 p is whole (the default p = 0.5, or 0.25, 0.1875...) one
    64-bit draw serves eight elements: P(byte >= 256 p) = 1 - p exactly. Dropout on 512k
    elements then takes 0.7 ms instead of 2.3 ms with torch.rand (F.dropout: 7.8 ms); any other p
    takes torch.rand.
    """
    scale = 1.0 / (1.0 - p)
    threshold = p * 256
    if threshold != int(threshold):
        return torch.rand_like(x).ge_(p).mul_(scale)  # ge_ writes 1.0 / 0.0 in place
    # random_(-2**63, None): all 64 bits uniform (without `from`, int64 draws leave the top bit 0)
    words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    if p == 0.5:
        # byte >= 128 is the byte's top bit: moved to bit 1 of each byte with three operations on
        # the words (an eighth of the elements), every byte is already 2 (= 1 / (1 - p)) or 0, and
        # one conversion makes the mask, where the general way takes three passes over the floats
        # (a third less time; the same draws give the same mask)
        words.bitwise_right_shift_(7).bitwise_and_(0x0101010101010101).bitwise_left_shift_(1)
    mask = words.view(torch.uint8)[: x.numel()].view(x.shape).to(x.dtype)
    return mask if p == 0.5 else mask.ge_(threshold).mul_(scale)


class Dropout(nn.Module):
    """torch's Dropout layer through dropout() above (no parameters: checkpoints are unchanged)."""

    def __init__(self, p: float, inplace: bool = False) -> None:
        super().__init__()
        self.p, self.inplace = p, inplace

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training, self.inplace)


def attend(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, p: float) -> Tensor:
    """Scaled dot-product attention, allowed: bool [B, U, K]; dropout p on the attention weights."""
    if p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed.unsqueeze(1), dropout_p=p)
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    weights = scores.masked_fill(~allowed.unsqueeze(1), float("-inf")).softmax(dim=-1)
    return dropout(weights, p, True) @ v


def scatter_rows(values: Tensor, where: Tensor) -> Tensor:
    """Packed rows [N, F] back to [B, U, F] at the True places of where (bool [B, U]); 0 elsewhere."""
    out = values.new_zeros(*where.shape, values.shape[-1])
    out[where] = values
    return out


def length_groups(counts: list[int], group_cost: float) -> list[int]:
    """Where to cut counts (sorted, longest first) into groups that each get their own attention
    grid, as wide as the group's longest sequence: the cuts that minimise the cells computed (a
    group of n sequences of at most L utterances costs n * L * L) plus group_cost per group (its
    own few small operations per block). Returns each group's end index."""
    best, cut = [0.0], [0]  # best[j]: the least cost of the first j sequences; cut[j]: its last group's start
    for end in range(1, len(counts) + 1):
        costs = [best[start] + (end - start) * counts[start] ** 2 + group_cost for start in range(end)]
        start = min(range(end), key=costs.__getitem__)
        best.append(costs[start])
        cut.append(start)
    ends, end = [], len(counts)
    while end > 0:
        ends.append(end)
        end = cut[end]
    return ends[::-1]


class Packing:
    """The utterances to compute, keep (bool [S, L]: S sequences of L utterances), and nothing else.

    Per-utterance layers read the packed rows [N, F] (keep's True places, row by row). Attention
    runs on grids: the sequences are sorted by how many utterances they keep and cut into groups
    (length_groups), and each group's grid [S_g, L_g] holds its sequences' kept utterances in
    their order, moved to the front (L_g = the most any of them keeps). A query sees the kept keys,
    only earlier ones when causal, and itself, so a grid cell without an utterance has no empty
    softmax row (its output is never read). As the padded forward hides the other utterances from
    attention entirely, this gives the same outputs on the kept utterances.

    The grids are head-major ([heads * S_g, L_g, d / heads], what bmm reads), gathered
    from the packed rows by one index_select (qkv_gather), and read back by another: transposing a
    [S, L, heads, d / heads] grid instead cost a copy per q, k, v and output, forward and backward.
    """

    GROUP_COST = 1024  # in attention cells (length_groups): 1024 to 4096 measured within 1 %, 512 5 % slower

    def __init__(self, keep: Tensor, causal: bool, heads: int = 1) -> None:
        length = keep.shape[1]
        self.rows = keep.flatten().nonzero().squeeze(1)  # kept places in the flat [S * L]
        self.utterance = self.rows % length  # each kept row's position in its conversation
        self.heads = heads
        counts = keep.sum(dim=1)
        order = counts.argsort(descending=True, stable=True)
        sorted_counts = counts[order].tolist()
        used = sum(1 for c in sorted_counts if c > 0)
        ends = length_groups(sorted_counts[:used], self.GROUP_COST)
        # Per group: (sequences, width, allowed bool [S_g, L_g, L_g]); per sequence: its group's
        # first cell in the grids, its own first cell, and its group's cell count.
        self.groups: list[tuple[int, int, Tensor]] = []
        group_start = torch.zeros_like(counts)
        own_start = torch.zeros_like(counts)
        group_cells = torch.ones_like(counts)
        cells, start = 0, 0
        for end in ends:
            members, width = order[start:end], sorted_counts[start]
            group_start[members] = cells
            own_start[members] = cells + torch.arange(end - start, device=keep.device) * width
            group_cells[members] = (end - start) * width
            keys = torch.arange(width, device=keep.device)
            allowed = (keys < counts[members].unsqueeze(1)).unsqueeze(1).expand(-1, width, -1)
            if causal:
                allowed = allowed & (keys <= keys.unsqueeze(1))
            self.groups.append((end - start, width, allowed | (keys == keys.unsqueeze(1))))
            cells, start = cells + (end - start) * width, end
        self.cells = cells
        sequence = self.rows // length
        slot = (keep.cumsum(dim=1) - 1).flatten()[self.rows]  # each kept row's place in its sequence
        cell = own_start[sequence] + slot - group_start[sequence]  # its cell within its group's grid
        part = torch.arange(3 * heads, device=keep.device)  # q, k, v of each head, as qkv's columns are
        # Row r's part j goes to row 3 * heads * start + j * cells_g + cell of the layout
        # [3 * heads * cells, d / heads] (each group: q, k, v, each [heads, S_g, L_g]); its head h
        # comes back from row heads * start + h * cells_g + cell of the attended outputs (each
        # group: [heads, S_g, L_g]).
        size = group_cells[sequence].unsqueeze(1)
        self.qkv_index = ((3 * heads * group_start[sequence] + cell).unsqueeze(1) + part * size).flatten()
        self.out_index = ((heads * group_start[sequence] + cell).unsqueeze(1) + part[:heads] * size).flatten()
        # The grids are gathered rather than scattered into zeros: layout row i reads row
        # qkv_gather[i] of qkv [N * 3 * heads, d / heads]. A cell without an utterance reads its
        # sequence's first utterance: any finite value gives the same outputs (its key's weight
        # is exactly 0, its query's output is never read and its gradient is 0), and one from
        # its own sequence keeps a non-finite input from reaching other sequences.
        first_row = counts.cumsum(0) - counts  # each sequence's first packed row
        gather = torch.empty(3 * heads * cells, dtype=torch.long, device=keep.device)
        cells = start = 0
        for end in ends:
            members, width = order[start:end], sorted_counts[start]
            block = (first_row[members] * 3 * heads).view(1, -1, 1) + part.view(-1, 1, 1)
            gather[3 * heads * cells : 3 * heads * (cells + (end - start) * width)] = block.expand(-1, -1, width).flatten()
            cells, start = cells + (end - start) * width, end
        gather[self.qkv_index] = torch.arange(len(self.qkv_index), device=keep.device)
        self.qkv_gather = gather
        # The attended outputs' gradient, gathered the same way from [N * heads, d / heads]: its
        # empty cells read row 0 and are then zeroed (their query's gradient must be 0, not just finite).
        self.out_gather = torch.zeros(heads * self.cells, dtype=torch.long, device=keep.device)
        self.out_gather[self.out_index] = torch.arange(len(self.out_index), device=keep.device)
        empty = torch.ones(heads * self.cells, dtype=torch.bool, device=keep.device)
        empty[self.out_index] = False
        self.empty_cells = empty.nonzero().squeeze(1)
        self._biases: list[Tensor] | None = None

    def biases(self, dtype: torch.dtype) -> list[Tensor]:
        """Per group, 0 where attention may look and -inf elsewhere: [heads * S_g, L_g, L_g]."""
        if self._biases is None or self._biases[0].dtype != dtype:
            self._biases = [
                torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
                .masked_fill_(~allowed, float("-inf")).repeat(self.heads, 1, 1)
                for _, _, allowed in self.groups
            ]
        return self._biases

    def grids(self, layout: Tensor, parts: int) -> list[tuple[Tensor, ...]]:
        """Per group, the `parts` grids [heads * S_g, L_g, d / heads] (views) of a layout
        [parts * heads * cells, d / heads]; split, so that autograd's backward is one cat."""
        pieces = layout.split([self.heads * n * width for n, width, _ in self.groups for _ in range(parts)])
        return [
            tuple(piece.view(self.heads * n, width, -1) for piece in pieces[parts * index : parts * (index + 1)])
            for index, (n, width, _) in enumerate(self.groups)
        ]

    def attend(self, qkv: Tensor, p: float) -> Tensor:
        """Attention for packed rows qkv [N, 3d] (q, k, v, each head after head): [N, d]."""
        if p > 0.0 and qkv.device.type == "cpu":  # torch's attention would draw its dropout with bernoulli_
            return PackedAttention.apply(qkv, self, p)
        part = qkv.shape[1] // (3 * self.heads)
        layout = qkv.reshape(-1, part).index_select(0, self.qkv_gather)
        attended = []
        for (q, k, v), (n, width, allowed) in zip(self.grids(layout, 3), self.groups):
            # Heads as the batch, the group's sequences as heads: allowed [S_g, L_g, L_g] broadcasts.
            q, k, v = (t.view(self.heads, n, width, part) for t in (q, k, v))
            attended.append(F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p).reshape(-1, part))
        attended = attended[0] if len(attended) == 1 else torch.cat(attended)
        return attended.index_select(0, self.out_index).view(qkv.shape[0], -1)


class PackedAttention(torch.autograd.Function):
    """Packing.attend on CPU with dropout p on the attention weights (training), its backward
    written out: every group's outputs and gradients go straight into one buffer (bmm's out=)
    rather than through autograd's cats, clones and scalings, and the buffers of cells without
    an utterance are never zeroed where nothing reads them."""

    @staticmethod
    def forward(ctx, qkv: Tensor, packing: Packing, p: float) -> Tensor:
        part = qkv.shape[1] // (3 * packing.heads)
        layout = qkv.reshape(-1, part).index_select(0, packing.qkv_gather)
        attended = qkv.new_empty(packing.heads * packing.cells, part)
        ctx.saved = []  # per group: softmax weights, the dropout mask scaled by 1 / (1 - p), their product
        for (q, k, v), (out,), bias in zip(packing.grids(layout, 3), packing.grids(attended, 1), packing.biases(qkv.dtype)):
            weights = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=part**-0.5).softmax(dim=-1)
            keep = dropout_mask(weights, p)
            dropped = weights * keep
            torch.bmm(dropped, v, out=out)
            ctx.saved.append((weights, keep, dropped))
        ctx.packing, ctx.layout, ctx.shape = packing, layout, qkv.shape
        return attended.index_select(0, packing.out_index).view(qkv.shape[0], -1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        if not hasattr(ctx, "saved"):
            raise RuntimeError("PackedAttention frees what it saved at its first backward: no retain_graph")
        packing, layout = ctx.packing, ctx.layout
        part = layout.shape[1]
        # Zeros where no utterance is: those queries' outputs are not read, so they pass nothing back.
        grad_attended = grad.reshape(-1, part).index_select(0, packing.out_gather).index_fill_(0, packing.empty_cells, 0.0)
        grad_layout = grad.new_empty(layout.shape)  # every row written below
        for (q, k, v), (grad_q, grad_k, grad_v), (grad_out,), (weights, keep, dropped) in zip(
            packing.grids(layout, 3), packing.grids(grad_layout, 3), packing.grids(grad_attended, 1), ctx.saved
        ):
            torch.bmm(dropped.transpose(1, 2), grad_out, out=grad_v)
            grad_weights = torch.bmm(grad_out, v.transpose(1, 2)).mul_(keep)
            grad_scores = torch._softmax_backward_data(grad_weights, weights, -1, weights.dtype).mul_(part**-0.5)
            torch.bmm(grad_scores, k, out=grad_q)
            torch.bmm(grad_scores.transpose(1, 2), q, out=grad_k)
        del ctx.saved, ctx.layout  # now, not when the whole graph goes: less memory held during backward
        return grad_layout.index_select(0, packing.qkv_index).view(ctx.shape), None, None
