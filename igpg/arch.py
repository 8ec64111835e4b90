"""Architecture specs: the networks igpg can generate, written as one canonical string.

Grammar (``family:INPUT-HIDDEN-...-OUTPUTS[:act=A][:k=K]``)::

    mlp:64-32-3                     input 64, one hidden layer of 32, 3 outputs (ReLU)
    mlp:64-32-16-10:act=tanh        two hidden layers, tanh
    cnn:1x8x8-8-16-10               input 1 channel 8x8 (Conv2d), conv channels 8 then 16, 10 outputs
    cnn:1x40-8-16-10                input 1 channel of length 40 (Conv1d)
    cnn:1x28x28-8-16-10:act=gelu:k=5

- mlp: INPUT is one number D (the flattened input size); 1..8 hidden widths.
- cnn: INPUT is CxL (Conv1d) or CxHxW (Conv2d); 1..6 conv channel counts. Each conv has stride 2 and
  padding k//2; global average pooling follows the stack, then a linear head.
- sizes are positive integers written with ASCII digits, no sign, no leading zero, at most 65536;
  OUTPUTS is 2..1000 (output neuron i means the task's label i).
- options, each at most once: ``act`` in relu (default) | tanh | gelu | silu; ``k`` the cnn kernel size,
  odd 1..7 (default 3; not allowed for mlp).

Parsing ignores whitespace around each part and the case of letters (``MLP : 64 - 32 - 3`` is fine) and takes
options in any order; ``str(spec)`` is the canonical form: lower case, defaults omitted, ``act`` before ``k``,
so ``ArchSpec.parse(str(spec)) == spec``. Anything else raises `IgpgError` with the allowed form.

Shape legend: B batch, D flat input size (``input_dim``), C channels, L length, H height, W width, O outputs.
Every network takes a flat float32 input (B, D) and returns logits (B, O); its ``state_dict`` names are
``hidden.0.weight, hidden.0.bias, ..., head.weight, head.bias`` in that order, as `ArchSpec.schema` lists them.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from einops import rearrange, reduce
from torch import nn

from igpg.errors import IgpgError

FAMILIES = ("mlp", "cnn")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}
KERNELS = (1, 3, 5, 7)
MAX_SIZE = 65536  # any width, channel count or input dimension
MAX_DEPTH = {"mlp": 8, "cnn": 6}  # number of hidden layers
MAX_OUTPUTS = 1000
_EXAMPLES = "expected e.g. mlp:64-32-3, mlp:64-32-16-10:act=tanh or cnn:1x8x8-8-16-10:k=5"
_DIGITS = re.compile(r"[1-9][0-9]*")  # ASCII only: str.isdigit and int() would accept '６４'


@dataclass(frozen=True)
class TensorSchema:
    name: str  # state_dict name, e.g. "hidden.0.weight"
    shape: tuple[int, ...]
    role: str  # "weight" | "bias"


@dataclass(frozen=True)
class LayerSchema:
    index: int  # 0..depth; the head is last, index == depth
    name: str  # "hidden.0" ... "head"
    kind: str  # "linear" | "conv1d" | "conv2d"
    fan_in: int  # in_features, or in_channels * kernel**conv_dims
    fan_out: int  # out_features / out_channels
    kernel: int  # 1 for linear
    is_head: bool
    tensors: tuple[TensorSchema, ...]  # weight then bias


@dataclass(frozen=True)
class ArchSpec:
    family: str  # "mlp" | "cnn"
    input_shape: tuple[int, ...]  # mlp: (D,); cnn: (C, L) -> Conv1d stack, or (C, H, W) -> Conv2d stack
    hidden: tuple[int, ...]  # mlp: hidden widths (1..8); cnn: conv channels (1..6)
    num_outputs: int  # output neurons, 2..1000
    activation: str = "relu"  # after every hidden layer: relu | tanh | gelu | silu
    kernel: int = 3  # cnn only: odd kernel size 1..7; mlp keeps 3 (ignored, not printed)

    def __post_init__(self) -> None:
        try:  # accept lists and numpy integers, store plain tuples of int (hashable, comparable)
            object.__setattr__(self, "input_shape", _int_tuple(self.input_shape))
            object.__setattr__(self, "hidden", _int_tuple(self.hidden))
            object.__setattr__(self, "num_outputs", _int(self.num_outputs))
            object.__setattr__(self, "kernel", _int(self.kernel))
        except TypeError as exc:
            raise IgpgError(f"bad architecture {self!r}: {exc}; {_EXAMPLES}") from None
        problem = _problem(self)
        if problem:
            raise IgpgError(f"bad architecture {self!r}: {problem}; {_EXAMPLES}")

    # ---- string form ----
    @classmethod
    def parse(cls, s: str | ArchSpec) -> ArchSpec:
        """Parse an architecture string (see the module docstring); an ArchSpec is returned as is."""
        if isinstance(s, ArchSpec):
            return s
        if not isinstance(s, str):
            raise IgpgError(f"architecture must be a string, got {type(s).__name__}; {_EXAMPLES}")
        shown = s if len(s) <= 120 else s[:117] + "..."

        def bad(reason: str) -> IgpgError:
            return IgpgError(f"bad architecture {shown!r}: {reason}; {_EXAMPLES}")

        parts = [p.strip() for p in s.strip().split(":")]
        if parts == [""]:
            raise bad("empty string")
        family = parts[0].lower()
        if family not in FAMILIES:
            raise bad(f"unknown family {parts[0]!r}; allowed {' | '.join(FAMILIES)}")
        if len(parts) < 2 or not parts[1]:
            raise bad(f"missing sizes after '{family}:'")
        sizes = [t.strip() for t in parts[1].split("-")]
        for i, tok in enumerate(sizes):
            if not tok:
                where = "before the first dash (sizes have no sign)" if i == 0 else (
                    "after the last dash" if i == len(sizes) - 1 else "between dashes")
                raise bad(f"empty size {where}")
        if len(sizes) < 3:
            raise bad("needs INPUT-HIDDEN-OUTPUTS with at least one hidden size")
        dims = [d.strip() for d in sizes[0].lower().split("x")]
        if family == "mlp" and len(dims) != 1:
            raise bad(f"mlp input must be one number (the flattened size), got {sizes[0]!r}")
        if family == "cnn" and len(dims) not in (2, 3):
            raise bad(f"cnn input must be CxL (Conv1d) or CxHxW (Conv2d), got {sizes[0]!r}")
        options: dict[str, str] = {}
        for opt in parts[2:]:
            key, eq, value = (x.strip() for x in opt.partition("="))
            key = key.lower()
            if not opt:
                raise bad("empty option after ':'")
            if not eq or not value:
                raise bad(f"option {opt!r} must be key=value (act=..., k=...)")
            if key not in ("act", "k"):
                raise bad(f"unknown option {key!r}; allowed act, k")
            if key in options:
                raise bad(f"option {key!r} given twice")
            if key == "k" and family != "cnn":
                raise bad("option k (kernel size) applies to cnn only")
            options[key] = value.lower()
        try:
            input_shape = tuple(_parse_size(d) for d in dims)
            numbers = [_parse_size(t) for t in sizes[1:]]
            kernel = _parse_size(options.get("k", "3"))
        except ValueError as exc:
            raise bad(str(exc)) from None
        fields = dict(family=family, input_shape=input_shape, hidden=tuple(numbers[:-1]),
                      num_outputs=numbers[-1], activation=options.get("act", "relu"), kernel=kernel)
        problem = _problem(SimpleNamespace(**fields))
        if problem:
            raise bad(problem)
        return cls(**fields)

    def __str__(self) -> str:
        text = f"{self.family}:{'x'.join(map(str, self.input_shape))}-"
        text += "-".join(map(str, (*self.hidden, self.num_outputs)))
        if self.activation != "relu":
            text += f":act={self.activation}"
        if self.family == "cnn" and self.kernel != 3:
            text += f":k={self.kernel}"
        return text

    # ---- derived facts ----
    @property
    def input_dim(self) -> int:
        """D, the flat input size every built network takes."""
        return math.prod(self.input_shape)

    @property
    def depth(self) -> int:
        return len(self.hidden)

    @property
    def conv_dims(self) -> int | None:
        """1 (Conv1d) or 2 (Conv2d) for cnn; None for mlp."""
        return len(self.input_shape) - 1 if self.family == "cnn" else None

    @property
    def n_params(self) -> int:
        return sum(math.prod(t.shape) for layer in self.schema() for t in layer.tensors)

    def schema(self) -> tuple[LayerSchema, ...]:
        """Every layer in state_dict order: hidden.0 .. hidden.{depth-1}, then head."""
        cnn = self.family == "cnn"
        k, nd = (self.kernel, self.conv_dims) if cnn else (1, 0)
        ins = (self.input_shape[0] if cnn else self.input_dim, *self.hidden)
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(ins, (*self.hidden, self.num_outputs))):
            head = i == self.depth
            name = "head" if head else f"hidden.{i}"
            kind = "linear" if head or not cnn else f"conv{nd}d"
            kk = 1 if kind == "linear" else k
            w_shape = (fan_out, fan_in) + (kk,) * (0 if kind == "linear" else nd)
            tensors = (TensorSchema(f"{name}.weight", w_shape, "weight"),
                       TensorSchema(f"{name}.bias", (fan_out,), "bias"))
            layers.append(LayerSchema(i, name, kind, math.prod(w_shape[1:]), fan_out, kk, head, tensors))
        return tuple(layers)

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """state_dict name -> shape, in state_dict order."""
        return {t.name: t.shape for layer in self.schema() for t in layer.tensors}

    def schema_problem(self, state: dict[str, torch.Tensor], values: bool = True) -> str | None:
        """What keeps `state` from being this network's weights, in one line (missing, unexpected or misshapen
        tensors; with `values`, integer tensors and values that are not finite as float32), or None."""
        want = self.tensor_shapes()
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        missing = [k for k in want if k not in shapes]
        extra = sorted(k for k in shapes if k not in want)
        wrong = [f"{k} is {list(shapes[k])}, expected {list(want[k])}" for k in want if k in shapes and shapes[k] != want[k]]
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else []) + wrong
        if not parts and values:
            for k, t in state.items():
                if not t.is_floating_point():
                    parts.append(f"{k} has dtype {t.dtype}; weights are floating point")
                elif not torch.isfinite(t.to(torch.float32)).all():
                    parts.append(f"{k} has values that are not finite as float32")
        if not parts:
            return None
        text = "; ".join(parts)
        return text if len(text) <= 300 else text[:297] + "..."

    # ---- variants ----
    def with_outputs(self, n: int) -> ArchSpec:
        return dataclasses.replace(self, num_outputs=n)

    def with_input_shape(self, shape: tuple[int, ...] | int) -> ArchSpec:
        """A copy for another input shape; for mlp a multi-dimensional shape is flattened to (D,)."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if self.family == "mlp" and len(shape) > 1 and all(isinstance(d, int) and d > 0 for d in shape):
            shape = (math.prod(shape),)
        return dataclasses.replace(self, input_shape=shape)

    def with_hidden(self, hidden: tuple[int, ...]) -> ArchSpec:
        return dataclasses.replace(self, hidden=tuple(hidden))

    def check_compatible(self, input_shape: tuple[int, ...], num_labels: int) -> None:
        """Raise IgpgError unless this network fits a dataset with this input shape and this many labels.

        An mlp fits any input whose flattened size is D; a cnn needs exactly the dataset's shape.
        """
        shape = tuple(int(d) for d in input_shape)
        size = math.prod(shape)
        if self.family == "mlp" and size != self.input_dim:
            raise IgpgError(f"architecture '{self}' takes inputs of size {self.input_dim} but the data has shape "
                            f"{shape} (size {size}){_hint(self.with_input_shape, shape)}")
        if self.family == "cnn" and shape != self.input_shape:
            raise IgpgError(f"architecture '{self}' takes inputs of shape {self.input_shape} but the data has "
                            f"shape {shape}{_hint(self.with_input_shape, shape)}")
        if num_labels != self.num_outputs:
            raise IgpgError(f"architecture '{self}' has {self.num_outputs} outputs but the task has {num_labels} "
                            f"labels{_hint(self.with_outputs, num_labels)}")

    def build(self) -> Net:
        """A freshly initialised network (PyTorch default init)."""
        return Net(self)

    def load(self, state: dict[str, torch.Tensor]) -> Net:
        """The network with weights `state` (loaded strictly: every tensor, right names and shapes), in eval mode."""
        net = Net(self)
        net.load_state_dict(state, strict=True)
        return net.eval()


class Net(nn.Module):
    """The network an ArchSpec describes: flat (B, D) float32 in, logits (B, O) out."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec  # a frozen dataclass, so not a parameter or buffer
        self.act = ACTIVATIONS[spec.activation]()
        layers: list[nn.Module] = []
        for layer in spec.schema()[:-1]:
            if layer.kind == "linear":
                layers.append(nn.Linear(layer.fan_in, layer.fan_out))
            else:
                conv = nn.Conv1d if layer.kind == "conv1d" else nn.Conv2d
                in_channels = layer.tensors[0].shape[1]
                layers.append(conv(in_channels, layer.fan_out, spec.kernel, stride=2, padding=spec.kernel // 2))
        self.hidden = nn.ModuleList(layers)
        self.head = nn.Linear(spec.hidden[-1], spec.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, O)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the head sees: the last hidden layer's activations (a CNN: globally average-pooled), (B, F)."""
        spec = self.spec
        if x.dim() != 2 or x.shape[1] != spec.input_dim:
            raise IgpgError(f"network '{spec}' takes a flat input (B, {spec.input_dim}), got {tuple(x.shape)}")
        if spec.conv_dims == 1:
            x = rearrange(x, "b (c l) -> b c l", c=spec.input_shape[0])
        elif spec.conv_dims == 2:
            x = rearrange(x, "b (c h w) -> b c h w", c=spec.input_shape[0], h=spec.input_shape[1])
        for layer in self.hidden:
            x = self.act(layer(x))
        if spec.conv_dims:
            x = reduce(x, "b c ... -> b c", "mean")  # global average pooling
        return x


# ---- validation shared by parse and __post_init__ ----
def _int(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"expected an integer, got {value!r}") from None


def _int_tuple(value: object) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"expected a tuple of integers, got {value!r}")
    return tuple(_int(v) for v in value)


def _hint(make: Callable[..., ArchSpec], value: object) -> str:
    """'; use e.g. <fixed spec>' when the fix is itself a valid spec, else ''."""
    try:
        return f"; use e.g. '{make(value)}'"
    except IgpgError:
        return ""


def _parse_size(token: str) -> int:
    if not _DIGITS.fullmatch(token):
        if not token:
            raise ValueError("empty size")
        if re.fullmatch(r"[+-].*", token):
            reason = "sizes have no sign"
        elif token.isdigit() and not token.isascii():
            reason = "only ASCII digits 0-9 are allowed"
        elif token == "0" or token.startswith("0"):
            reason = "sizes are positive, without leading zeros"
        else:
            reason = "sizes are positive integers"
        raise ValueError(f"{token!r} is not a valid size ({reason})")
    if len(token) > 6:  # also keeps int() away from huge digit strings
        raise ValueError(f"size {token[:12]}{'...' if len(token) > 12 else ''} is too large; at most {MAX_SIZE}")
    return int(token)


def _problem(f: ArchSpec | SimpleNamespace) -> str | None:
    """What is wrong with these fields, or None."""
    if not isinstance(f.family, str) or f.family not in FAMILIES:
        return f"unknown family {f.family!r}; allowed {' | '.join(FAMILIES)}"
    if f.family == "mlp" and len(f.input_shape) != 1:
        return f"mlp input must be one number (the flattened size), got {len(f.input_shape)}"
    if f.family == "cnn" and len(f.input_shape) not in (2, 3):
        return f"cnn input must be CxL (Conv1d) or CxHxW (Conv2d), got {len(f.input_shape)} numbers"
    for what, values in (("input", f.input_shape), ("hidden", f.hidden)):
        if any(v < 1 or v > MAX_SIZE for v in values):
            return f"{what} sizes must be 1..{MAX_SIZE}, got {values}"
    if not 1 <= len(f.hidden) <= MAX_DEPTH[f.family]:
        return f"{f.family} needs 1..{MAX_DEPTH[f.family]} hidden layers, got {len(f.hidden)}"
    if not 2 <= f.num_outputs <= MAX_OUTPUTS:
        return f"number of outputs must be 2..{MAX_OUTPUTS}, got {f.num_outputs}"
    if not isinstance(f.activation, str) or f.activation not in ACTIVATIONS:
        return f"unknown activation {f.activation!r}; allowed {' | '.join(ACTIVATIONS)}"
    if f.family == "cnn" and f.kernel not in KERNELS:
        return f"kernel size must be odd 1..7, got {f.kernel}"
    if f.family == "mlp" and f.kernel != 3:
        return f"kernel applies to cnn only; mlp keeps the default 3, got {f.kernel}"
    return None
