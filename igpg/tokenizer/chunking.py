"""Row-aligned chunking: a network's state_dict <-> a sequence of fixed-size chunks of (normalised) weights.

    spec = ArchSpec.parse("mlp:64-32-3")
    ch = chunk_network(net.state_dict(), spec, chunk_size=8)           # ch.values (N, 8), ch.layout, ch.side
    state = unchunk(ch.values, spec, 8, ch.normalisation, ch.side)     # spec.build().load_state_dict(state)

A *row* of a layer is one output neuron: ``weight[r]`` flattened row-major (fan_in values: in_features, or
in_channels * k**d for a conv) followed by ``bias[r]``, so fan_in + 1 values. Each row is cut into
``ceil((fan_in + 1) / chunk_size)`` chunks; the last chunk of a row is zero-padded and `ChunkLayout.mask` marks
the real values. Rows never share a chunk, so every chunk belongs to exactly one neuron (for the head: one class).
Order: layers in schema order (hidden.0, ..., head), then rows, then chunks within a row.

Normalisation (per layer, weight and bias together; ``values = x / scale``, undone by ``x = values * scale``):
    none       scale 1: the round trip is bitwise exact.
    fanin      scale 1/sqrt(fan_in), PyTorch's default init bound for Linear/Conv weights and biases; derived
               from the architecture alone.
    layer_std  scale 2 ** (q / 8) with the side token q = round(log2(std) * 8) clamped to [-128, 127] (std over
               the layer's weight and bias, population form; round half to even; std 0 gives -128). The side
               tokens (one per layer) travel with the chunks and are needed to invert.
The chunking itself is bitwise exact for any normalisation; the division and multiplication by a float32 scale
make the fanin / layer_std round trip exact only up to float32 rounding (|error| <= ~2 ulp, within rtol 1e-6).

Shape legend: N chunks, C chunk_size, L layers (depth + 1), F position features, o output neurons (rows) of a
layer, i input features or channels, k / kh / kw kernel taps, p chunks per row.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from igpg.arch import ArchSpec, LayerSchema
from igpg.errors import IgpgError

NORMALISATIONS = ("none", "fanin", "layer_std")
LAYER_KINDS = ("linear", "conv1d", "conv2d")  # layer_kind codes 0, 1, 2
MAX_CHUNK_SIZE = 4096
SIDE_RANGE = (-128, 127)  # layer_std side tokens: q = round(log2(std) * 8), clamped
SIDE_STEPS_PER_OCTAVE = 8  # scale = 2 ** (q / 8): a grid of ~9% steps, fine enough that values stay O(1)

# One column each, in this order (see ChunkLayout.position_features).
POSITION_FEATURES = (
    "kind_linear",  # 1 if the layer is nn.Linear
    "kind_conv1d",  # 1 if the layer is nn.Conv1d
    "kind_conv2d",  # 1 if the layer is nn.Conv2d
    "rel_depth",  # layer_index / depth: 0 for hidden.0, 1 for the head
    "is_head",  # 1 for the head (its rows are the classes)
    "row_progress",  # chunk_in_row / max(1, chunks_per_row - 1): 0 at a row's first chunk, 1 at its last
    "first_in_row",  # 1 for a row's first chunk
    "last_in_row",  # 1 for a row's last chunk (the one that ends with the bias)
    "log_fan_in",  # log2(fan_in) / 16
    "log_fan_out",  # log2(fan_out) / 16
    "row_frac",  # row / max(1, fan_out - 1): where the neuron sits in its layer
    "valid_frac",  # n_valid / chunk_size: how much of the chunk is real (1 unless it is a padded last chunk)
)
NUM_POSITION_FEATURES = len(POSITION_FEATURES)
_CONTIGUOUS = torch.contiguous_format


@dataclass(frozen=True, eq=False)
class ChunkLayout:
    """Where every chunk sits: fixed by the architecture and chunk_size alone (no weights).

    A generator reads it to know how many codes each layer needs. Layouts are cached and shared between callers:
    treat the tensors as read-only. All tensors live on the CPU and have leading axis N.
    """

    arch: str  # canonical ArchSpec string the layout belongs to
    chunk_size: int  # C, values per chunk
    layer_index: Tensor  # (N,) int64: 0..depth (head = depth)
    layer_kind: Tensor  # (N,) int64: index into LAYER_KINDS (0 linear, 1 conv1d, 2 conv2d)
    rel_depth: Tensor  # (N,) float32: layer_index / depth (0 .. 1; head = 1)
    is_head: Tensor  # (N,) bool
    row: Tensor  # (N,) int64: output neuron within the layer
    chunk_in_row: Tensor  # (N,) int64: 0 .. chunks_per_row - 1
    chunks_per_row: Tensor  # (N,) int64: ceil((fan_in + 1) / C)
    chunk_in_layer: Tensor  # (N,) int64: index of the chunk within its layer
    fan_in: Tensor  # (N,) int64: values per row before the bias
    fan_out: Tensor  # (N,) int64: rows in the layer
    n_valid: Tensor  # (N,) int64: real values in the chunk (the rest is zero padding)

    def __len__(self) -> int:
        return self.layer_index.shape[0]

    def mask(self) -> Tensor:
        """(N, C) bool: True where a chunk holds a real value, False on padding."""
        return torch.arange(self.chunk_size) < self.n_valid[:, None]

    def position_features(self) -> Tensor:
        """(N, F) float32, F = NUM_POSITION_FEATURES: the columns POSITION_FEATURES names, each O(1)."""
        kind = F.one_hot(self.layer_kind, len(LAYER_KINDS)).float()  # (N, 3)
        last = self.chunks_per_row - 1
        columns = [
            self.rel_depth,
            self.is_head.float(),
            self.chunk_in_row / last.clamp(min=1),
            (self.chunk_in_row == 0).float(),
            (self.chunk_in_row == last).float(),
            torch.log2(self.fan_in.double()).float() / 16,
            torch.log2(self.fan_out.double()).float() / 16,
            self.row / (self.fan_out - 1).clamp(min=1),
            self.n_valid / self.chunk_size,
        ]
        return torch.cat([kind, torch.stack([c.float() for c in columns], dim=1)], dim=1)  # (N, F)


@dataclass(frozen=True, eq=False)
class Chunked:
    """One network as chunks: what `chunk_network` returns and `unchunk` inverts."""

    layout: ChunkLayout
    values: Tensor  # (N, C) float32: normalised weights, exactly zero where padded
    side: Tensor  # (L,) int64: layer_std side tokens, one per layer; empty (0,) for none / fanin
    normalisation: str  # none | fanin | layer_std


# ---- public API ----
def chunk_layout(spec: ArchSpec | str, chunk_size: int) -> ChunkLayout:
    """The layout of `spec` cut into chunks of `chunk_size` (cached per (str(spec), chunk_size))."""
    spec = ArchSpec.parse(spec)
    return _cached_layout(str(spec), _check_chunk_size(chunk_size))


def count_chunks(spec: ArchSpec | str, chunk_size: int) -> int:
    """N for `spec` and `chunk_size`, without building any tensor."""
    spec, c = ArchSpec.parse(spec), _check_chunk_size(chunk_size)
    return sum(layer.fan_out * _chunks_per_row(layer, c) for layer in spec.schema())


def layer_scales(spec: ArchSpec | str, normalisation: str, side: Tensor | None = None) -> Tensor:
    """(L,) float32: the per-layer scale; normalised values = weights / scale (see the module docstring)."""
    spec = ArchSpec.parse(spec)
    _check_normalisation(normalisation)
    layers = spec.schema()
    if normalisation == "none":
        return torch.ones(len(layers))
    if normalisation == "fanin":
        return torch.tensor([1 / math.sqrt(layer.fan_in) for layer in layers], dtype=torch.float64).float()
    side = _check_side(side, spec, normalisation)
    return torch.exp2(side.cpu().double() / SIDE_STEPS_PER_OCTAVE).float()


def chunk_network(state: Mapping[str, Tensor], spec: ArchSpec | str, chunk_size: int,
                  normalisation: str = "fanin") -> Chunked:
    """Cut a state_dict into row-aligned chunks (normalised per layer); values live on the state's device.

    Tensors of any float dtype are accepted and cast to float32 (exact for float16 / bfloat16 / float32).
    """
    spec = ArchSpec.parse(spec)
    c = _check_chunk_size(chunk_size)
    _check_normalisation(normalisation)
    _check_state(state, spec)
    layers = spec.schema()
    device = state[layers[0].tensors[0].name].device
    rows = [_layer_rows(state, layer, device) for layer in layers]  # each (o, fan_in + 1) float32
    if normalisation == "layer_std":
        side = torch.tensor([_side_token(r) for r in rows], dtype=torch.int64)
    else:
        side = torch.zeros(0, dtype=torch.int64)
    scales = layer_scales(spec, normalisation, side).to(device)
    parts = []
    for layer, r, scale in zip(layers, rows, scales):
        if normalisation != "none":
            r = r / scale
            if not torch.isfinite(r).all():
                raise IgpgError(f"weights of {layer.name} in '{spec}' overflow float32 when normalised with "
                                f"{normalisation}; use normalisation none")
        p = _chunks_per_row(layer, c)
        r = F.pad(r, (0, p * c - r.shape[1]))  # zero padding after the bias: (o, p * C)
        parts.append(rearrange(r, "o (p c) -> (o p) c", c=c))
    values = torch.cat(parts)  # (N, C)
    return Chunked(layout=chunk_layout(spec, c), values=values, side=side, normalisation=normalisation)


def unchunk(values: Tensor, spec: ArchSpec | str, chunk_size: int, normalisation: str = "fanin",
            side: Tensor | None = None) -> dict[str, Tensor]:
    """Chunks (N, C) back to a state_dict in ArchSpec order (contiguous float32, on values' device).

    Padded positions are ignored. The result loads with ``spec.build().load_state_dict(state, strict=True)``.
    Differentiable: gradients flow from the returned tensors back to `values`.
    """
    spec = ArchSpec.parse(spec)
    c = _check_chunk_size(chunk_size)
    _check_normalisation(normalisation)
    n = count_chunks(spec, c)
    if not isinstance(values, Tensor) or values.dim() != 2 or tuple(values.shape) != (n, c):
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise IgpgError(f"values for '{spec}' with chunk_size {c} must have shape ({n}, {c}), got {got}")
    if not values.is_floating_point():
        raise IgpgError(f"values must be a float tensor, got {values.dtype}")
    if normalisation != "layer_std" and side is not None and side.numel() > 0:
        raise IgpgError(f"side tokens apply to normalisation layer_std only, got {side.numel()} with "
                        f"{normalisation}")
    scales = layer_scales(spec, normalisation, side).to(values.device)
    values = values.float()
    state: dict[str, Tensor] = {}
    start = 0
    for layer, scale in zip(spec.schema(), scales):
        p = _chunks_per_row(layer, c)
        block = values[start:start + layer.fan_out * p]  # (o * p, C)
        start += layer.fan_out * p
        rows = rearrange(block, "(o p) c -> o (p c)", p=p)[:, :layer.fan_in + 1]  # drop the padding
        if normalisation != "none":
            rows = rows * scale
        weight, bias = layer.tensors
        # clone: the state never shares memory with `values`
        state[weight.name] = _unflatten_weight(rows[:, :layer.fan_in], layer).clone(memory_format=_CONTIGUOUS)
        state[bias.name] = rows[:, layer.fan_in].clone(memory_format=_CONTIGUOUS)
    return state


# ---- layout ----
@functools.lru_cache(maxsize=256)
def _cached_layout(arch: str, c: int) -> ChunkLayout:
    spec = ArchSpec.parse(arch)
    parts: dict[str, list[Tensor]] = {k: [] for k in ("layer_index", "layer_kind", "row", "chunk_in_row",
                                                      "chunks_per_row", "fan_in", "fan_out")}
    for layer in spec.schema():
        p = _chunks_per_row(layer, c)
        n = layer.fan_out * p
        parts["layer_index"].append(torch.full((n,), layer.index))
        parts["layer_kind"].append(torch.full((n,), LAYER_KINDS.index(layer.kind)))
        parts["row"].append(torch.arange(layer.fan_out).repeat_interleave(p))
        parts["chunk_in_row"].append(torch.arange(p).repeat(layer.fan_out))
        parts["chunks_per_row"].append(torch.full((n,), p))
        parts["fan_in"].append(torch.full((n,), layer.fan_in))
        parts["fan_out"].append(torch.full((n,), layer.fan_out))
    t = {k: torch.cat(v).to(torch.int64) for k, v in parts.items()}
    starts = torch.cumsum(torch.bincount(t["layer_index"]), 0) - torch.bincount(t["layer_index"])
    return ChunkLayout(
        arch=arch,
        chunk_size=c,
        layer_index=t["layer_index"],
        layer_kind=t["layer_kind"],
        rel_depth=(t["layer_index"].double() / spec.depth).float(),
        is_head=t["layer_index"] == spec.depth,
        row=t["row"],
        chunk_in_row=t["chunk_in_row"],
        chunks_per_row=t["chunks_per_row"],
        chunk_in_layer=torch.arange(len(t["row"])) - starts[t["layer_index"]],
        fan_in=t["fan_in"],
        fan_out=t["fan_out"],
        n_valid=(t["fan_in"] + 1 - t["chunk_in_row"] * c).clamp(max=c),
    )


def _chunks_per_row(layer: LayerSchema, c: int) -> int:
    return -(-(layer.fan_in + 1) // c)


# ---- rows <-> tensors ----
def _layer_rows(state: Mapping[str, Tensor], layer: LayerSchema, device: torch.device) -> Tensor:
    """(o, fan_in + 1) float32: each output neuron's flattened weights, then its bias."""
    weight, bias = (state[t.name].to(device=device, dtype=torch.float32) for t in layer.tensors)
    if layer.kind == "linear":
        flat = weight  # (o, i)
    elif layer.kind == "conv1d":
        flat = rearrange(weight, "o i k -> o (i k)")
    else:
        flat = rearrange(weight, "o i kh kw -> o (i kh kw)")
    return torch.cat([flat, rearrange(bias, "o -> o 1")], dim=1)


def _unflatten_weight(flat: Tensor, layer: LayerSchema) -> Tensor:
    """(o, fan_in) -> the weight's schema shape; the inverse of the flattening in _layer_rows."""
    if layer.kind == "linear":
        return flat
    in_channels = layer.tensors[0].shape[1]
    if layer.kind == "conv1d":
        return rearrange(flat, "o (i k) -> o i k", i=in_channels)
    return rearrange(flat, "o (i kh kw) -> o i kh kw", i=in_channels, kh=layer.kernel)


def _side_token(rows: Tensor) -> int:
    """q = round(log2(std) * 8) clamped to SIDE_RANGE; std over the whole layer (weight and bias)."""
    std = rows.detach().double().std(correction=0).item()
    lo, hi = SIDE_RANGE
    if std <= 0:
        return lo
    return min(hi, max(lo, round(math.log2(std) * SIDE_STEPS_PER_OCTAVE)))


# ---- validation ----
def _check_chunk_size(chunk_size: object) -> int:
    try:  # numpy integers are fine; bools and floats are not
        c = -1 if isinstance(chunk_size, bool) else operator.index(chunk_size)
    except TypeError:
        c = -1
    if not 1 <= c <= MAX_CHUNK_SIZE:
        raise IgpgError(f"chunk_size must be an integer in 1..{MAX_CHUNK_SIZE}, got {chunk_size!r}")
    return c


def _check_normalisation(normalisation: object) -> None:
    if normalisation not in NORMALISATIONS:
        raise IgpgError(f"unknown normalisation {normalisation!r}; allowed {' | '.join(NORMALISATIONS)}")


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_state(state: Mapping[str, Tensor], spec: ArchSpec) -> None:
    if not isinstance(state, Mapping):
        raise IgpgError(f"state must be a mapping of name -> tensor (a state_dict), got {type(state).__name__}")
    shapes = spec.tensor_shapes()
    missing = [k for k in shapes if k not in state]
    if missing:
        raise IgpgError(f"state for '{spec}' is missing {_names(missing)}; expected exactly {_names(list(shapes))}")
    extra = [str(k) for k in state if k not in shapes]
    if extra:
        raise IgpgError(f"state for '{spec}' has unexpected {_names(extra)}; expected exactly {_names(list(shapes))}")
    for name, shape in shapes.items():
        t = state[name]
        if not isinstance(t, Tensor):
            raise IgpgError(f"state[{name!r}] must be a tensor, got {type(t).__name__}")
        if tuple(t.shape) != shape:
            raise IgpgError(f"{name} for '{spec}' must have shape {shape}, got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise IgpgError(f"{name} must be a float tensor (float32, float16, bfloat16 or float64), got {t.dtype}")
        if not torch.isfinite(t).all():
            raise IgpgError(f"{name} contains NaN or infinite values; weights must be finite")


def _check_side(side: Tensor | None, spec: ArchSpec, normalisation: str) -> Tensor:
    n_layers = spec.depth + 1
    if side is None:
        raise IgpgError(f"normalisation {normalisation} needs the side tokens (Chunked.side, {n_layers} per "
                        f"network) to invert; pass side=")
    if not isinstance(side, Tensor) or tuple(side.shape) != (n_layers,):
        got = tuple(side.shape) if isinstance(side, Tensor) else type(side).__name__
        raise IgpgError(f"side tokens for '{spec}' must have shape ({n_layers},), got {got}")
    if side.dtype == torch.bool or side.is_floating_point() or side.is_complex():
        raise IgpgError(f"side tokens must be an integer tensor, got {side.dtype}")
    lo, hi = SIDE_RANGE
    if side.numel() and (side.min() < lo or side.max() > hi):
        raise IgpgError(f"side tokens must lie in {lo}..{hi}, got {side.min().item()}..{side.max().item()}")
    return side
