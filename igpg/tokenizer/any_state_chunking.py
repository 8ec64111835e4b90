"""Chunking of ANY state dict (a torchvision ResNet, a transformer...), streamed in bounded blocks.

`chunking.py` cuts igpg's own architectures (an `ArchSpec` says which bias belongs to which neuron). A foreign
state dict has no such schema, so `state_schema` derives one from the tensors themselves:

    schema = state_schema(state)                                   # every tensor: name, shape, dtype, rows, row length
    for block in iter_blocks(state, schema, chunk_size=8):         # at most `max_chunks` chunks in memory at a time
        block.values  # (n, C) float32, normalised, zero-padded;  block.layout: ChunkLayout (position features)
    state2 = unchunk_state(values_or_blocks, schema, 8, "none", side, passthrough)   # bitwise equal to `state`

Rows: a tensor of shape (o, ...) with two or more axes has o rows of prod(...) values each (a Linear or Conv
output neuron's incoming weights, flattened row-major); a 1-d or 0-d tensor (a bias, BatchNorm's affine weights and
running statistics) is one row. Rows never share a chunk; the last chunk of a row is zero-padded, as in
`chunking.py`. Tensors that are not float16 / bfloat16 / float32 (BatchNorm's int64 `num_batches_tracked`,
float64) are not chunked: they pass through unchanged (`passthrough`), so the round trip stays exact.

Normalisation, per tensor: `none` (bitwise round trip), `fanin` (scale 1/sqrt(row length)), `layer_std` (the
same side-token grid as chunking.py, scale 2 ** (q / 8), but q from the tensor's root mean square, which is its
std for a zero-mean weight and is not degenerate for a constant tensor such as a fresh BatchNorm weight of ones).

Blocks: a tensor is cut at row boundaries into blocks of at most `max_chunks` chunks (at least one row), so
memory is bounded by the block, not by the network (the state dicts themselves aside).

Shape legend: n chunks of a block, C chunk size, o rows of a block, p chunks per row, T chunked tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from igpg.errors import IgpgError
from igpg.tokenizer.chunking import (
    LAYER_KINDS,
    NORMALISATIONS,
    SIDE_RANGE,
    SIDE_STEPS_PER_OCTAVE,
    ChunkLayout,
    _check_chunk_size,
)

CHUNKED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # exact in float32
MAX_BLOCK_CHUNKS = 4096  # chunks per block: 128 KiB of float32 values at C = 8 (measured here: blocks of 4096 go
# through the tokenizer's MLPs ~20x faster per chunk than blocks of 65536, whose activations miss every cache)


@dataclass(frozen=True)
class TensorEntry:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    rows: int  # o: output neurons (first axis), or 1 for a 1-d / 0-d tensor
    row_len: int  # values per row

    @property
    def kind(self) -> str:
        """The layer kind the position features report: conv2d for 4-d, conv1d for 3-d, else linear."""
        return {4: "conv2d", 3: "conv1d"}.get(len(self.shape), "linear")

    def chunks_per_row(self, c: int) -> int:
        return -(-self.row_len // c)


@dataclass(frozen=True)
class StateSchema:
    entries: tuple[TensorEntry, ...]  # chunked tensors, in state-dict order
    passthrough: tuple[str, ...]  # tensors kept as they are (not float16 / bfloat16 / float32)
    order: tuple[str, ...]  # every name, in state-dict order

    def num_chunks(self, chunk_size: int) -> int:
        c = _check_chunk_size(chunk_size)
        return sum(e.rows * e.chunks_per_row(c) for e in self.entries)

    @property
    def num_params(self) -> int:
        """Values chunked (passthrough tensors excluded)."""
        return sum(e.rows * e.row_len for e in self.entries)


@dataclass(frozen=True, eq=False)
class Block:
    entry: int  # index into schema.entries
    row_start: int
    row_stop: int
    values: Tensor  # (n, C) float32: normalised values, exactly zero where padded
    layout: ChunkLayout


def state_schema(state: Mapping[str, Tensor]) -> StateSchema:
    if not isinstance(state, Mapping) or not state:
        raise IgpgError("state must be a non-empty mapping of name -> tensor (a state_dict)")
    entries, passthrough = [], []
    for name, t in state.items():
        if not isinstance(t, Tensor):
            raise IgpgError(f"state[{name!r}] must be a tensor, got {type(t).__name__}")
        if t.dtype not in CHUNKED_DTYPES:
            passthrough.append(name)
            continue
        if t.numel() == 0:
            passthrough.append(name)
            continue
        if not torch.isfinite(t).all():
            raise IgpgError(f"{name} contains NaN or infinite values; weights must be finite")
        rows = t.shape[0] if t.dim() >= 2 else 1
        entries.append(TensorEntry(name, tuple(t.shape), t.dtype, rows, t.numel() // rows))
    if not entries:
        raise IgpgError("the state has no float16 / bfloat16 / float32 tensor to chunk")
    return StateSchema(tuple(entries), tuple(passthrough), tuple(state))


def side_tokens(state: Mapping[str, Tensor], schema: StateSchema) -> Tensor:
    """(T,) int64: q = round(8 log2(rms)) per chunked tensor, clamped to SIDE_RANGE (rms 0 gives the minimum)."""
    lo, hi = SIDE_RANGE
    out = []
    for e in schema.entries:
        rms = state[e.name].detach().double().pow(2).mean().sqrt().item()
        out.append(lo if rms <= 0 else min(hi, max(lo, round(math.log2(rms) * SIDE_STEPS_PER_OCTAVE))))
    return torch.tensor(out, dtype=torch.int64)


def tensor_scales(schema: StateSchema, normalisation: str, side: Tensor | None = None) -> Tensor:
    """(T,) float32: normalised values = tensor / scale."""
    if normalisation not in NORMALISATIONS:
        raise IgpgError(f"unknown normalisation {normalisation!r}; allowed {' | '.join(NORMALISATIONS)}")
    if normalisation == "none":
        return torch.ones(len(schema.entries))
    if normalisation == "fanin":
        return torch.tensor([1 / math.sqrt(e.row_len) for e in schema.entries], dtype=torch.float64).float()
    if side is None or tuple(side.shape) != (len(schema.entries),):
        raise IgpgError(f"normalisation layer_std needs one side token per chunked tensor ({len(schema.entries)})")
    return torch.exp2(side.cpu().double() / SIDE_STEPS_PER_OCTAVE).float()


def plan_blocks(schema: StateSchema, chunk_size: int, max_chunks: int = MAX_BLOCK_CHUNKS) -> list[tuple[int, int, int]]:
    """(entry, row_start, row_stop) of every block, in chunk order: whole rows, at most max_chunks chunks (or one
    row, if a row alone is longer)."""
    c = _check_chunk_size(chunk_size)
    out = []
    for i, e in enumerate(schema.entries):
        step = max(1, max_chunks // e.chunks_per_row(c))
        out += [(i, r, min(e.rows, r + step)) for r in range(0, e.rows, step)]
    return out


def block_layout(schema: StateSchema, entry: int, row_start: int, row_stop: int, chunk_size: int) -> ChunkLayout:
    """Where the chunks of rows row_start:row_stop of tensor `entry` sit (the position features' input)."""
    e, c = schema.entries[entry], chunk_size
    p, o, last = e.chunks_per_row(c), row_stop - row_start, len(schema.entries) - 1
    n = o * p
    row = torch.arange(row_start, row_stop).repeat_interleave(p)
    chunk_in_row = torch.arange(p).repeat(o)
    full = lambda v: torch.full((n,), v, dtype=torch.int64)  # noqa: E731
    return ChunkLayout(
        arch=f"state:{e.name}", chunk_size=c, layer_index=full(entry), layer_kind=full(LAYER_KINDS.index(e.kind)),
        rel_depth=torch.full((n,), entry / max(1, last)), is_head=torch.full((n,), entry == last),
        row=row, chunk_in_row=chunk_in_row, chunks_per_row=full(p), chunk_in_layer=row * p + chunk_in_row,
        fan_in=full(e.row_len), fan_out=full(e.rows), n_valid=(e.row_len - chunk_in_row * c).clamp(max=c),
    )


def iter_blocks(state: Mapping[str, Tensor], schema: StateSchema, chunk_size: int, normalisation: str = "none",
                side: Tensor | None = None, max_chunks: int = MAX_BLOCK_CHUNKS) -> Iterator[Block]:
    """The state's chunks, block by block (see `plan_blocks`); `side` is required for layer_std
    (`side_tokens(state, schema)`)."""
    c = _check_chunk_size(chunk_size)
    scales = tensor_scales(schema, normalisation, side)
    for i, r0, r1 in plan_blocks(schema, c, max_chunks):
        e = schema.entries[i]
        rows = state[e.name].detach().reshape(e.rows, e.row_len)[r0:r1].to(torch.float32)  # (o, row_len)
        if normalisation != "none":
            rows = rows / scales[i]
            if not torch.isfinite(rows).all():
                raise IgpgError(f"{e.name} overflows float32 when normalised with {normalisation}; use none")
        p = e.chunks_per_row(c)
        values = rearrange(F.pad(rows, (0, p * c - e.row_len)), "o (p c) -> (o p) c", c=c)  # (n, C)
        yield Block(i, r0, r1, values, block_layout(schema, i, r0, r1, c))


def chunk_state(state: Mapping[str, Tensor], chunk_size: int, normalisation: str = "none"
                ) -> tuple[StateSchema, Tensor, Tensor, dict[str, Tensor]]:
    """All at once (small states, tests): schema, values (N, C), side tokens (T,) or empty, passthrough tensors."""
    schema = state_schema(state)
    side = side_tokens(state, schema) if normalisation == "layer_std" else torch.zeros(0, dtype=torch.int64)
    values = torch.cat([b.values for b in iter_blocks(state, schema, chunk_size, normalisation,
                                                      side if normalisation == "layer_std" else None)])
    return schema, values, side, {k: state[k] for k in schema.passthrough}


def unchunk_state(values: Tensor | Iterable[Tensor], schema: StateSchema, chunk_size: int, normalisation: str = "none",
                  side: Tensor | None = None, passthrough: Mapping[str, Tensor] | None = None,
                  max_chunks: int = MAX_BLOCK_CHUNKS) -> dict[str, Tensor]:
    """Chunks back to a state dict in the original order, names, shapes and dtypes.

    `values`: all chunks (N, C), or an iterable of the blocks' values in `plan_blocks` order (streamed decoding:
    one block in memory at a time). Passthrough tensors are cloned from `passthrough`."""
    c = _check_chunk_size(chunk_size)
    plan = plan_blocks(schema, c, max_chunks)
    if isinstance(values, Tensor):
        n = schema.num_chunks(c)
        if values.dim() != 2 or tuple(values.shape) != (n, c):
            raise IgpgError(f"values must have shape ({n}, {c}), got {tuple(values.shape)}")
        sizes = [(r1 - r0) * schema.entries[i].chunks_per_row(c) for i, r0, r1 in plan]
        values = values.split(sizes)
    scales = tensor_scales(schema, normalisation, side)
    out = {e.name: torch.empty(e.shape, dtype=e.dtype) for e in schema.entries}
    blocks = iter(values)
    for i, r0, r1 in plan:
        block = next(blocks, None)
        e = schema.entries[i]
        p = e.chunks_per_row(c)
        if block is None or tuple(block.shape) != ((r1 - r0) * p, c):
            raise IgpgError(f"block of {e.name} rows {r0}:{r1} must have shape ({(r1 - r0) * p}, {c})")
        rows = rearrange(block.float(), "(o p) c -> o (p c)", p=p)[:, : e.row_len]
        if normalisation != "none":
            rows = rows * scales[i]
        out[e.name].view(e.rows, e.row_len)[r0:r1] = rows.to(e.dtype)
    passthrough = passthrough or {}
    missing = [k for k in schema.passthrough if k not in passthrough]
    if missing:
        raise IgpgError(f"passthrough tensors missing: {', '.join(missing)}")
    return {k: out[k] if k in out else passthrough[k].clone() for k in schema.order}


def reconstruction_error(original: Mapping[str, Tensor], restored: Mapping[str, Tensor]) -> dict:
    """Relative L2 error ||restored - original|| / ||original|| over all floating tensors; the worst tensor's (among
    tensors that are not all zero: their relative error is undefined); the largest absolute difference; and whether
    every tensor (integer ones too) came back bitwise equal."""
    num = den = 0.0
    worst, worst_name, max_abs, exact = 0.0, "", 0.0, True
    for k, a in original.items():
        b = restored[k]
        exact = exact and a.dtype == b.dtype and torch.equal(a, b)
        if not a.is_floating_point() or a.numel() == 0:
            continue
        a64, b64 = a.detach().double(), b.detach().double()
        d2, a2 = (b64 - a64).pow(2).sum().item(), a64.pow(2).sum().item()
        num, den = num + d2, den + a2
        if a2 > 0 and math.sqrt(d2 / a2) >= worst:
            worst, worst_name = math.sqrt(d2 / a2), k
        max_abs = max(max_abs, (b64 - a64).abs().max().item())
    return {"relative_l2": math.sqrt(num / den) if den > 0 else 0.0, "worst_tensor": worst_name,
            "worst_tensor_relative_l2": worst, "max_abs": max_abs, "exact": exact}
