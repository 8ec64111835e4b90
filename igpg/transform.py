"""Training-free architecture transforms: a trained network's weights carried over to another architecture.

    state = transform_state(generic_state, ArchSpec.parse("mlp:64-32-10"), ArchSpec.parse("mlp:64-48-48-10"))

This is the learngene / Net2Net family of baselines (Net2Net, arXiv 1511.05641; FRONT, WAVE), and the bases the
generator refines for architectures it never trained on (generator/base_rows.py). Each step is exact (the new network
computes the same function) or as close as a data-free rule gets; `plan_cost` scores a source architecture for a
target, so that callers pick the source that needs the fewest lossy steps. Steps, in order:

- family: a CNN becomes an exactly equivalent MLP (every conv written as a dense layer over the flattened map,
  global average pooling folded into the head), when the target is an MLP and the input shape is known. Exact.
- input: an MLP's first layer is composed with the linear resampling map from the target's input shape to the
  source's (images area-averaged or interpolated, sequences interpolated, channels averaged): what a source
  network trained on 8x8 images needs to read 28x28 ones. A CNN's filters read any spatial size; only its input
  channels are averaged or replicated. Exact only for the resampled view of the data.
- depth: deeper targets get identity layers inserted after the last hidden layer (ReLU: exact; tanh: a small-scale
  layer in its linear range, undone by the next layer; GELU/SiLU: a shifted layer in their near-linear range,
  undone by the next layer's bias; CNN: a centre-tap conv, which halves the map before global pooling: close, not
  exact); shallower targets merge the last two hidden layers into one linear map, dropping the activation between
  them (lossy).
- width: wider layers split neurons (Net2Net: a copy's incoming row is its original's, and the original's
  outgoing weights are shared among its copies; exact for any activation); narrower layers keep the neurons of
  largest importance (|outgoing| x |incoming|; lossy).
- kernel: a CNN's kernels are zero-padded to a larger size (exact: the padding k//2 keeps the centre aligned) or
  cropped around their centre (lossy).
- activation: swapped as is (lossy unless equal).

Output rows are left as the source's (a generic network's classes); `generator.base_rows.base_state` selects them.

Shape legend: O out features (neurons / channels), I in features, k kernel, D flat input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from igpg.arch import ACTIVATIONS, ArchSpec
from igpg.errors import IgpgError

Layer = tuple[torch.Tensor, torch.Tensor]  # weight (O, I, *k), bias (O,)

SHIFT = {"gelu": 4.0, "silu": 10.0}  # GELU / SiLU are within 1e-3 of the identity on [SHIFT - 0.3, inf)
TANH_SCALE = 0.05  # tanh(s x) / s is within 0.1% of x for |x| <= 1 at this scale


@dataclass(frozen=True)
class Plan:
    """What carrying `src` over to `dst` involves; `cost` ranks sources (0 = exact, the same architecture)."""

    src: ArchSpec
    dst: ArchSpec
    steps: tuple[str, ...]  # human-readable, e.g. ("widen 32->48", "deepen 1->2")
    exact: bool  # every step preserves the function
    cost: float


def _layers(state: dict[str, torch.Tensor], spec: ArchSpec) -> list[Layer]:
    return [(state[f"{layer.name}.weight"].float().clone(), state[f"{layer.name}.bias"].float().clone())
            for layer in spec.schema()]


def _state(layers: list[Layer], spec: ArchSpec) -> dict[str, torch.Tensor]:
    out = {}
    for layer, (w, b) in zip(spec.schema(), layers):
        out[f"{layer.name}.weight"] = w.contiguous()
        out[f"{layer.name}.bias"] = b.contiguous()
    return out


def plan_cost(src: ArchSpec, dst: ArchSpec, src_input: tuple[int, ...] | None = None,
              dst_input: tuple[int, ...] | None = None) -> Plan | None:
    """How `src` would be carried to `dst` (None: no transform exists). `src_input` / `dst_input` are the datasets'
    input shapes (needed when an MLP reads data of another shape, or a CNN becomes an MLP)."""
    steps, exact, cost = [], True, 0.0
    src_input = src_input or src.input_shape
    dst_input = dst_input or dst.input_shape
    hidden = src.hidden
    if src.family != dst.family:
        if not (src.family == "cnn" and dst.family == "mlp"):
            return None
        if math.prod(dst_input) != dst.input_dim or len(dst_input) < 2:
            return None
        shape = tuple(dst_input)
        hidden = _cnn_map_widths(src.with_input_shape(shape))
        steps.append(f"cnn as mlp {'-'.join(map(str, hidden))}")
        cost += 0.5  # exact, but the widths rarely fit without a lossy narrowing
    if tuple(src_input) != tuple(dst_input):
        if src.family == "cnn" and dst.family == "cnn":
            if len(src_input) != len(dst_input):
                return None
            steps.append(f"input {'x'.join(map(str, src_input))}->{'x'.join(map(str, dst_input))}")
            exact, cost = False, cost + 1.0
        elif src.family == dst.family:  # mlp reading another input shape
            if len(src_input) != len(dst_input) and not (len(src_input) >= 2 and len(dst_input) >= 2):
                return None
            steps.append(f"input {'x'.join(map(str, src_input))}->{'x'.join(map(str, dst_input))}")
            exact, cost = False, cost + 3.0
    if len(hidden) < dst.depth:
        steps.append(f"deepen {len(hidden)}->{dst.depth}")
        if src.family == "cnn" and dst.family == "cnn":
            exact, cost = False, cost + 0.3 * (dst.depth - len(hidden))
        else:
            cost += 0.05 * (dst.depth - len(hidden))
        hidden = tuple(hidden) + (hidden[-1],) * (dst.depth - len(hidden))
    elif len(hidden) > dst.depth:
        if dst.family == "cnn":
            return None  # strided convs do not merge into one
        steps.append(f"merge {len(hidden)}->{dst.depth}")
        exact, cost = False, cost + 4.0 * (len(hidden) - dst.depth)
        hidden = tuple(hidden[: dst.depth - 1]) + (hidden[-1],)
    for i, (a, b) in enumerate(zip(hidden, dst.hidden)):
        if b > a:
            steps.append(f"widen layer {i} {a}->{b}")
            cost += 0.01 * math.log2(b / a)
        elif b < a:
            steps.append(f"narrow layer {i} {a}->{b}")
            exact, cost = False, cost + 2.0 * math.log2(a / b)
    if dst.family == "cnn" and src.family == "cnn" and src.kernel != dst.kernel:
        steps.append(f"kernel {src.kernel}->{dst.kernel}")
        if dst.kernel < src.kernel:
            exact, cost = False, cost + 1.5
    if src.activation != dst.activation:
        steps.append(f"activation {src.activation}->{dst.activation}")
        exact, cost = False, cost + 2.5
    return Plan(src, dst, tuple(steps), exact, cost)


def transform_state(state: dict[str, torch.Tensor], src: ArchSpec, dst: ArchSpec,
                    src_input: tuple[int, ...] | None = None, dst_input: tuple[int, ...] | None = None,
                    keep_outputs: bool = True, noise: float = 0.0, seed: int = 0,
                    calibrate: torch.Tensor | None = None, return_origin: bool = False):
    """`state` of architecture `src` carried over to `dst`'s hidden layers (see the module docstring).

    With `keep_outputs` (the default) the head keeps the source's output rows and the result is a state dict of
    `dst.with_outputs(src.num_outputs)`; otherwise `dst` must have the source's number of outputs anyway.
    `noise` > 0 adds Gaussian noise of that size (x the layer's weight std) to the incoming rows of split copies,
    so that training can tell them apart (no longer exact; drawn from `seed`). `calibrate` (N, D): samples on which
    every layer whose input a lossy step changed (a narrowed layer below it, another activation, merged layers) is
    refit to the source's pre-activations (`_calibrate`; MLPs only). With `return_origin`, also returns, per hidden
    layer, which neuron of the source's layer each neuron stands for (a split copy: its original; a kept one: itself;
    an inserted identity layer: the neuron it passes on)."""
    if plan_cost(src, dst, src_input, dst_input) is None:
        raise IgpgError(f"no transform from {src} to {dst}")
    src_input = tuple(src_input or src.input_shape)
    dst_input = tuple(dst_input or dst.input_shape)
    layers = _layers(state, src)
    spec = src
    if src.family == "cnn" and dst.family == "mlp":
        layers = _cnn_as_mlp(layers, src.with_input_shape(dst_input))
        spec = ArchSpec("mlp", (math.prod(dst_input),), tuple(w.shape[0] for w, _ in layers[:-1]), src.num_outputs,
                        src.activation)
        src_input = dst_input
    if src_input != dst_input:
        layers = _adapt_input(layers, spec, src_input, dst_input)
        spec = spec.with_input_shape(dst_input if spec.family == "cnn" else (math.prod(dst_input),))
    act = spec.activation
    while spec.depth < dst.depth:
        layers = _insert_identity(layers, spec, act)
        spec = spec.with_hidden((*spec.hidden, spec.hidden[-1]))
    merged = spec.depth > dst.depth
    while spec.depth > dst.depth:
        layers = _merge_last(layers)
        spec = spec.with_hidden((*spec.hidden[:-2], spec.hidden[-1]))
    teacher, teacher_spec = list(layers), spec  # the network before any width or activation change
    origin = [torch.arange(w) for w in spec.hidden]  # which teacher neuron each neuron stands for
    changed = [False] * (spec.depth + 1)  # layer i's input differs from the teacher's layer i input
    gen = torch.Generator().manual_seed(seed)
    for i, width in enumerate(dst.hidden):
        if width > spec.hidden[i]:
            layers, copies = _widen(layers, i, width, noise, gen)
            origin[i] = origin[i][copies]
        elif width < spec.hidden[i]:
            layers, keep = _narrow(layers, i, width)
            origin[i] = origin[i][keep]
            changed[i + 1] = True
    spec = spec.with_hidden(dst.hidden)
    if spec.family == "cnn" and spec.kernel != dst.kernel:
        layers = _set_kernel(layers, spec, dst.kernel)
    if dst.activation != spec.activation:
        changed[1:] = [True] * spec.depth
    origin_rows = [o.clone() for o in origin]
    out_spec = ArchSpec(dst.family, dst.input_shape, dst.hidden, src.num_outputs if keep_outputs else dst.num_outputs,
                        dst.activation, dst.kernel)
    if not keep_outputs and dst.num_outputs != src.num_outputs:
        raise IgpgError(f"{src} has {src.num_outputs} outputs, {dst} has {dst.num_outputs}: select output rows instead")
    if calibrate is not None and (any(changed) or merged):
        if merged:  # no layer-to-layer correspondence with the source: only the head is refit, to the source
            teacher, teacher_spec = _layers(state, src), src
            origin, changed = None, [False] * spec.depth + [True]
        same_input = teacher_spec.input_dim == out_spec.input_dim
        if spec.family == "mlp" and teacher_spec.family == "mlp" and same_input:
            layers = _calibrate(layers, out_spec, teacher, teacher_spec, origin, changed, calibrate)
    if return_origin:
        return _state(layers, out_spec), origin_rows
    return _state(layers, out_spec)


# ---- calibration on a few samples ----------------------------------------------------------------------------
CALIBRATION_PRIOR = 0.1  # ridge weight (x mean diagonal of the Gram matrix) pulling refit weights to the transform's


def _mlp_forward(layers: list[Layer], act: str, x: torch.Tensor) -> list[torch.Tensor]:
    """Pre-activations of every layer (the head last) of an MLP given as layers."""
    f = ACTIVATIONS[act]()
    pre, h = [], x
    for i, (w, b) in enumerate(layers):
        z = h @ w.T + b
        pre.append(z)
        h = f(z)
    return pre


@torch.no_grad()
def _calibrate(layers: list[Layer], spec: ArchSpec, teacher: list[Layer], teacher_spec: ArchSpec,
               origin: list[torch.Tensor] | None, changed: list[bool], x: torch.Tensor) -> list[Layer]:
    """Refit, from the input up, every layer whose input a lossy step changed, so that its pre-activations on the
    samples `x` (N, D) match the teacher's (its neurons' origins; the head: the teacher's logits), by ridge
    regression pulled towards the transformed weights (a few samples move them little)."""
    target = _mlp_forward(teacher, teacher_spec.activation, x)
    f = ACTIVATIONS[spec.activation]()
    out, h = list(layers), x
    for i, (w, b) in enumerate(layers):
        head = i == len(layers) - 1
        if changed[i] and (head or origin is not None):
            t = target[-1] if head else target[i][:, origin[i]]
            a = torch.cat([h, torch.ones(len(h), 1)], 1)  # (N, I + 1)
            prior = torch.cat([w, b[:, None]], 1).T  # (I + 1, O)
            gram = a.T @ a
            lam = CALIBRATION_PRIOR * float(gram.diagonal().mean()) + 1e-6
            sol = torch.linalg.solve(gram + lam * torch.eye(len(gram)), a.T @ t + lam * prior)
            w, b = sol[:-1].T.contiguous(), sol[-1].contiguous()
            out[i] = (w, b)
        h = f(h @ w.T + b)
    return out


# ---- family -------------------------------------------------------------------------------------------------
def _cnn_map_widths(spec: ArchSpec) -> tuple[int, ...]:
    """The flattened size (channels x map) after each conv of a CNN on its input shape."""
    widths, size = [], spec.input_shape[1:]
    for c in spec.hidden:
        size = tuple((s + 2 * (spec.kernel // 2) - spec.kernel) // 2 + 1 for s in size)
        widths.append(c * math.prod(size))
    return tuple(widths)


@torch.no_grad()
def _cnn_as_mlp(layers: list[Layer], spec: ArchSpec) -> list[Layer]:
    """A CNN's layers as dense layers over flattened maps (exact): conv l -> (C_l * map_l, C_{l-1} * map_{l-1})."""
    conv = F.conv1d if spec.conv_dims == 1 else F.conv2d
    shape = spec.input_shape  # (C, *map)
    out: list[Layer] = []
    for w, b in layers[:-1]:
        n_in = math.prod(shape)
        eye = torch.eye(n_in).view(n_in, *shape)
        y = conv(eye, w, None, stride=2, padding=spec.kernel // 2)  # (n_in, C', *map')
        shape = tuple(y.shape[1:])
        dense = rearrange(y, "i c ... -> (c ...) i")
        bias = b.repeat_interleave(math.prod(shape[1:]))
        out.append((dense, bias))
    hw, hb = layers[-1]
    positions = math.prod(shape[1:])
    out.append((hw.repeat_interleave(positions, dim=1) / positions, hb))  # global average pooling, folded
    return out


# ---- input ---------------------------------------------------------------------------------------------------
def resample(x: torch.Tensor, src_shape: tuple[int, ...], dst_shape: tuple[int, ...]) -> torch.Tensor:
    """Flat samples (N, prod(src_shape)) resampled to (N, prod(dst_shape)): channels averaged or replicated, images
    area-averaged (down) or bilinearly interpolated (up), sequences linearly interpolated. Linear in x."""
    n = x.shape[0]
    if len(src_shape) == 1 and len(dst_shape) == 1:
        src_shape, dst_shape = (1, src_shape[0]), (1, dst_shape[0])
    if len(src_shape) != len(dst_shape):
        raise IgpgError(f"cannot resample inputs of shape {src_shape} to {dst_shape}")
    v = x.reshape(n, *src_shape)
    if v.shape[1] != dst_shape[0]:
        v = v.mean(1, keepdim=True).expand(-1, dst_shape[0], *v.shape[2:])
    size = tuple(dst_shape[1:])
    if tuple(v.shape[2:]) != size:
        if len(size) == 2 and all(a >= b for a, b in zip(v.shape[2:], size)):
            v = F.adaptive_avg_pool2d(v, size)
        elif len(size) == 2:
            v = F.interpolate(v, size=size, mode="bilinear", align_corners=False)
        else:
            v = F.interpolate(v, size=size, mode="linear", align_corners=False)
    return v.reshape(n, -1)


@torch.no_grad()
def _adapt_input(layers: list[Layer], spec: ArchSpec, src_input, dst_input) -> list[Layer]:
    w, b = layers[0]
    if spec.family == "mlp":
        d = math.prod(dst_input)
        p = resample(torch.eye(d), tuple(dst_input), tuple(src_input))  # (D_dst, D_src): row i = e_i resampled
        return [(w @ p.T, b), *layers[1:]]
    c_src, c_dst = src_input[0], dst_input[0]
    if c_src != c_dst:  # one filter per output channel reads the channel mean
        w = w.sum(1, keepdim=True).expand(-1, c_dst, *w.shape[2:]) / c_dst
    return [(w.contiguous(), b), *layers[1:]]


# ---- depth ---------------------------------------------------------------------------------------------------
@torch.no_grad()
def _insert_identity(layers: list[Layer], spec: ArchSpec, act: str) -> list[Layer]:
    """A new last hidden layer computing (nearly) the identity of the one before it; the head reads it instead."""
    width = spec.hidden[-1]
    head_w, head_b = layers[-1]
    scale, shift = 1.0, 0.0
    if act == "tanh":
        scale = TANH_SCALE
    elif act in SHIFT:
        shift = SHIFT[act]
    if spec.family == "cnn":
        k, nd = spec.kernel, spec.conv_dims
        w = torch.zeros(width, width, *([k] * nd))
        centre = (slice(None), slice(None), *([k // 2] * nd))
        w[centre] = torch.eye(width) * scale
    else:
        w = torch.eye(width) * scale
    b = torch.full((width,), shift)
    new_head = (head_w / scale, head_b - head_w @ torch.full((width,), shift / scale))
    return [*layers[:-1], (w, b), new_head]


@torch.no_grad()
def _merge_last(layers: list[Layer]) -> list[Layer]:
    """The last two hidden layers of an MLP as one (their composition without the activation between them)."""
    (w1, b1), (w2, b2) = layers[-3], layers[-2]
    return [*layers[:-3], (w2 @ w1, w2 @ b1 + b2), layers[-1]]


# ---- width ---------------------------------------------------------------------------------------------------
def _next(layers: list[Layer], i: int) -> torch.Tensor:
    return layers[i + 1][0]


@torch.no_grad()
def _widen(layers: list[Layer], i: int, width: int, noise: float = 0.0,
           gen: torch.Generator | None = None) -> tuple[list[Layer], torch.Tensor]:
    """Net2Net splitting of hidden layer i to `width` neurons: copies round-robin, outgoing weights shared; also
    returns which neuron each new neuron copies."""
    w, b = layers[i]
    n = w.shape[0]
    src = torch.arange(width) % n  # new neuron j copies neuron src[j]
    counts = torch.bincount(src, minlength=n).float()
    nxt_w, nxt_b = layers[i + 1]
    # the next layer reads neuron j's copies; the original's weight is divided among them
    scale = (1.0 / counts[src]).view(1, width, *([1] * (nxt_w.dim() - 2)))
    out = list(layers)
    new_w = w[src].clone()
    if noise > 0:
        new_w[n:] += noise * w.std() * torch.randn(new_w[n:].shape, generator=gen)
    out[i] = (new_w, b[src].clone())
    out[i + 1] = (nxt_w[:, src] * scale, nxt_b)
    return out, src


def importance(layers: list[Layer], i: int) -> torch.Tensor:
    """(O,) a data-free score of each neuron of hidden layer i: |incoming row, bias| x |outgoing column|."""
    w, b = layers[i]
    incoming = torch.cat([w.flatten(1), b[:, None]], 1).norm(dim=1)
    outgoing = _next(layers, i).transpose(0, 1).flatten(1).norm(dim=1)
    return incoming * outgoing


@torch.no_grad()
def _narrow(layers: list[Layer], i: int, width: int) -> tuple[list[Layer], torch.Tensor]:
    keep = importance(layers, i).argsort(descending=True)[:width].sort().values
    w, b = layers[i]
    nxt_w, nxt_b = layers[i + 1]
    out = list(layers)
    out[i] = (w[keep].clone(), b[keep].clone())
    out[i + 1] = (nxt_w[:, keep].clone(), nxt_b)
    return out, keep


# ---- kernel --------------------------------------------------------------------------------------------------
@torch.no_grad()
def _set_kernel(layers: list[Layer], spec: ArchSpec, k: int) -> list[Layer]:
    out = list(layers)
    nd = spec.conv_dims
    for i in range(spec.depth):
        w, b = layers[i]
        old = w.shape[-1]
        if k > old:
            pad = (k - old) // 2
            w = F.pad(w, (pad, pad) * nd)
        else:
            lo = (old - k) // 2
            w = w[(..., *[slice(lo, lo + k)] * nd)] if nd == 1 else w[..., lo:lo + k, lo:lo + k]
        out[i] = (w.contiguous(), b)
    return out
