"""The generator's view of a network: a sequence of ROWS (output neurons), each holding its chunks' codes.

The tokenizer cuts every neuron's incoming weights (+ bias) into chunks of C values and gives each chunk Q codes
(residual levels). The generator steps over rows, not codes: one transformer position per neuron, and a small
head that emits the row's `chunks x Q` codes (levels in order). A 64-64-10 MLP is 74 positions instead of ~2,600
codes, which is what makes training on 2 CPU cores feasible.

Shape legend: N chunks, Q codes per chunk, R rows, J max chunks per row, S = J * Q slots per row.
Slot s of a row holds level q = s % Q of chunk j = s // Q.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from einops import rearrange

from igpg.arch import ArchSpec
from igpg.errors import IgpgError
from igpg.tokenizer.chunking import chunk_layout


@dataclass(frozen=True)
class RowLayout:
    arch: str
    chunk_size: int
    codes_per_chunk: int  # Q
    layer_index: torch.Tensor  # (R,) int64
    layer_kind: torch.Tensor  # (R,) int64: 0 linear, 1 conv1d, 2 conv2d
    row: torch.Tensor  # (R,) int64 neuron index within its layer
    is_head: torch.Tensor  # (R,) bool
    rel_depth: torch.Tensor  # (R,) float32
    fan_in: torch.Tensor  # (R,) int64
    fan_out: torch.Tensor  # (R,) int64
    chunks: torch.Tensor  # (R,) int64 chunks in the row
    chunk_index: torch.Tensor  # (R, J) int64: the global chunk index of each of the row's chunks (-1 = none)

    def __len__(self) -> int:
        return len(self.row)

    @property
    def max_chunks(self) -> int:
        return self.chunk_index.shape[1]

    @property
    def slots(self) -> int:
        return self.max_chunks * self.codes_per_chunk

    def slot_mask(self) -> torch.Tensor:
        """(R, S) bool: which slots hold a code."""
        return rearrange((self.chunk_index >= 0)[:, :, None].expand(-1, -1, self.codes_per_chunk), "r j q -> r (j q)")

    @property
    def num_codes(self) -> int:
        return int(self.chunks.sum()) * self.codes_per_chunk


@lru_cache(maxsize=512)
def row_layout(arch: str, chunk_size: int, codes_per_chunk: int) -> RowLayout:
    spec = ArchSpec.parse(arch)
    lay = chunk_layout(spec, chunk_size)
    # rows are consecutive runs of chunks with the same (layer, row)
    first = torch.ones(len(lay), dtype=torch.bool)
    first[1:] = (lay.layer_index[1:] != lay.layer_index[:-1]) | (lay.row[1:] != lay.row[:-1])
    starts = first.nonzero().squeeze(1)
    counts = lay.chunks_per_row[starts]
    j = int(counts.max())
    offs = torch.arange(j)
    chunk_index = torch.where(offs[None] < counts[:, None], starts[:, None] + offs[None], torch.full((1,), -1))
    return RowLayout(str(spec), chunk_size, codes_per_chunk, lay.layer_index[starts], lay.layer_kind[starts],
                     lay.row[starts], lay.is_head[starts], lay.rel_depth[starts], lay.fan_in[starts],
                     lay.fan_out[starts], counts, chunk_index)


def codes_to_rows(indices: torch.Tensor, layout: RowLayout) -> torch.Tensor:
    """(N, Q) codes -> (R, S) row slots, -1 where a slot is empty."""
    q = layout.codes_per_chunk
    if indices.ndim != 2 or indices.shape[1] != q or indices.shape[0] != int(layout.chunks.sum()):
        raise IgpgError(f"{layout.arch} needs codes of shape ({int(layout.chunks.sum())}, {q}), got {tuple(indices.shape)}")
    safe = layout.chunk_index.clamp(min=0)
    rows = indices[safe]  # (R, J, Q)
    rows = torch.where((layout.chunk_index >= 0)[..., None], rows, torch.full_like(rows, -1))
    return rearrange(rows, "r j q -> r (j q)")


def rows_to_codes(rows: torch.Tensor, layout: RowLayout) -> torch.Tensor:
    """(R, S) row slots -> (N, Q) codes (the inverse of `codes_to_rows`)."""
    q = layout.codes_per_chunk
    per_chunk = rearrange(rows, "r (j q) -> r j q", q=q)
    valid = layout.chunk_index >= 0
    out = torch.empty(int(layout.chunks.sum()), q, dtype=rows.dtype, device=rows.device)
    out[layout.chunk_index[valid]] = per_chunk[valid]
    return out
