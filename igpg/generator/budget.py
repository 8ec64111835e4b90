"""Budgets: what decoding a request costs, estimated from its architecture alone, and the limits above which the
request is refused before any tensor is allocated.

    cost = request_cost(spec, chunk_size=8, codes_per_chunk=5, batch=1)   # rows, codes, params, peak bytes
    Budget().check(spec, 8, 5)                   # the cost, or IgpgError above --max-params / --max-memory

The estimate is arithmetic over `spec.schema()` (no layout tensor is built: a layout of mlp:64-65536-...-3 alone
would not fit in memory). Peak memory is what one decode adds beyond the loaded models, fitted on this machine
with the released model (peak RSS of one greedy decode: mlp:64-2000-3 measured 228 MiB, estimated 200 MiB;
mlp:64-256-3 to mlp:64-1024-3 measured 67-145 MiB, estimated 69-105 MiB):

    bytes = B * (PER_SLOT * R*J*Q + PER_CODE * N*Q + PER_PARAM * P) + FIXED

B networks decoded together (doubled with classifier-free guidance), R rows (output neurons), J the longest row's
chunks (rows are padded to it), Q codes per chunk, N chunks, P parameters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from igpg.arch import ArchSpec
from igpg.errors import IgpgError
from igpg.tokenizer.chunking import _chunks_per_row

DEFAULT_MAX_PARAMS = 2_000_000  # mnist's mlp:784-512-256-10 has 0.54M; the released model trained on < 0.1M
DEFAULT_MAX_MEMORY = 2 * 1024**3  # bytes one decode may add; the machine has 24 GiB shared with training

# fitted coefficients (bytes); see the module docstring
PER_SLOT = 48  # padded (row, chunk, level) slots: base codes, masks, gathered embeddings
PER_CODE = 160  # emitted codes: codes, latents, embedding-bag indices, the tokenizer's decoder activations
PER_PARAM = 48  # the decoded network, its base (carried over), chunked copies
FIXED = 64 * 1024**2  # conditions, KV cache, support samples


@dataclass(frozen=True)
class Cost:
    rows: int  # R: output neurons over all layers (one decoder position each)
    codes: int  # N*Q: codes emitted
    params: int  # P: parameters of the network
    memory: int  # bytes: estimated peak of one decode call

    def describe(self) -> str:
        return (f"{self.params:,} parameters, {self.rows:,} rows, {self.codes:,} codes, about "
                f"{format_bytes(self.memory)} to decode")


def request_cost(spec: ArchSpec, chunk_size: int, codes_per_chunk: int, batch: int = 1, guided: bool = False) -> Cost:
    """The cost of decoding `batch` networks of `spec` together (arithmetic only)."""
    layers = spec.schema()
    rows = sum(layer.fan_out for layer in layers)
    per_row = [_chunks_per_row(layer, chunk_size) for layer in layers]
    chunks = sum(layer.fan_out * j for layer, j in zip(layers, per_row))
    q = codes_per_chunk
    b = batch * (2 if guided else 1)
    params = spec.n_params
    memory = b * (PER_SLOT * rows * max(per_row) * q + PER_CODE * chunks * q + PER_PARAM * params) + FIXED
    return Cost(rows, chunks * q, params, memory)


@dataclass(frozen=True)
class Budget:
    max_params: int = DEFAULT_MAX_PARAMS  # parameters of one requested network
    max_memory: int = DEFAULT_MAX_MEMORY  # bytes one decode call may add (a batch is split to fit)

    def __post_init__(self) -> None:
        for name in ("max_params", "max_memory"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise IgpgError(f"{name} must be a positive integer, got {v!r}")

    def check(self, spec: ArchSpec, chunk_size: int, codes_per_chunk: int, guided: bool = False) -> Cost:
        """The cost of one network of `spec`, or IgpgError when it is above a limit."""
        if spec.n_params > self.max_params:
            raise IgpgError(f"{spec} has {spec.n_params:,} parameters, above the limit of {self.max_params:,} "
                            f"(--max-params)")
        cost = request_cost(spec, chunk_size, codes_per_chunk, 1, guided)
        if cost.memory > self.max_memory:
            raise IgpgError(f"{spec} needs {cost.describe()}, above the limit of {format_bytes(self.max_memory)} "
                            f"(--max-memory)")
        return cost

    def batch_size(self, spec: ArchSpec, chunk_size: int, codes_per_chunk: int, guided: bool = False) -> int:
        """How many networks of `spec` one decode call may hold within max_memory (at least 1)."""
        one = request_cost(spec, chunk_size, codes_per_chunk, 1, guided).memory - FIXED
        return max(1, (self.max_memory - FIXED) // max(1, one))


_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str | int, what: str) -> int:
    """'2000000', '2M', '4GiB', '512MB' -> an integer (k/M/G/T are powers of 1000, Ki/Mi/Gi/Ti of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?)?[bB]?\s*", str(text))
        if not m:
            raise IgpgError(f"{what} must be a number like 2000000, 2M or 4GiB, got {str(text)[:40]!r}")
        value = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
        if not math.isfinite(value) or value > 2**62:
            raise IgpgError(f"{what} is too large: {str(text)[:40]!r}")
        value = int(value)
    if value < 1:
        raise IgpgError(f"{what} must be at least 1, got {text!r}")
    return value


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
