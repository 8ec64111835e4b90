"""Sampling: prefill the condition prefix, then decode one row at a time with a KV cache.

The architecture fixes how many rows, chunks per row and codes per chunk a network needs, so decoding emits
exactly that many codes: no invalid sequence can come out. A batch holds requests of ONE architecture (the
caller groups them), so no padding is needed. Networks whose prefix + rows exceed `max_seq_len` are decoded in
windows: when the sequence is full, the cache is rebuilt from the prefix and the most recent half window of rows
(as IGPG decodes large networks in stages).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import torch

from igpg.arch import ArchSpec
from igpg.distributed import to_device
from igpg.errors import IgpgError
from igpg.generator.base_rows import base_batch, origin_batch
from igpg.generator.data import condition_batch, row_batch
from igpg.generator.model import SIDE_OFFSET, Conditions, WeightGenerator
from igpg.generator.rows import RowLayout, row_layout


MAX_TEMPERATURE = 100.0  # far past where sampling is uniform noise; inf / NaN would give chance-level networks
MIN_TEMPERATURE = 1e-3  # below it (but above 0, greedy) logits / t overflow to inf and the softmax to NaN
MAX_GUIDANCE = 100.0  # |scale|; guidance extrapolates logits, so a huge one is overflow, not a stronger condition


MAX_SAMPLES = 256  # best-of-K candidates per request
MAX_SUPPORT = 1000  # support samples per label


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How a request is decoded: one set of defaults for the API, the CLI, export and the evaluations."""

    samples: int = 1  # best-of-K: one network at `temperature`, K-1 sampled; the best on the support samples wins
    temperature: float = 0.0  # 0 = greedy (argmax); the K-1 extra candidates use 0.5 when it is 0
    top_k: int | None = None  # sample among the top_k most likely codes only (None = all)
    top_p: float | None = None  # nucleus: the smallest set of codes whose probability reaches top_p (None = all)
    guidance: float = 1.0  # classifier-free guidance scale; 1 = off (other values decode every network twice)
    k: int | None = None  # support samples per label to condition on; None = the model's k_support
    base_candidate: bool = True  # base_rows models: the request's base competes with the decoded networks, wins ties
    use_base: bool = True  # False: a base_rows model decodes without a base (as for architectures it has none of)
    mean_from: int | None = None  # residual levels >= this are decoded as expected code vectors (None = picked codes)
    use_cache: bool = True  # KV cache; False recomputes the whole sequence per row (same outputs, slower)

    def __post_init__(self) -> None:
        """Refuse values that would decode noise or NaN (IgpgError): they are user input (--temperature, ...)."""
        t, g = self.temperature, self.guidance
        if not _count(self.samples, MAX_SAMPLES):
            raise IgpgError(f"samples must be an integer in 1..{MAX_SAMPLES}, got {self.samples!r}")
        if not _real(t) or not (t == 0 or MIN_TEMPERATURE <= t <= MAX_TEMPERATURE):
            raise IgpgError(f"temperature must be 0 (greedy) or {MIN_TEMPERATURE:g}..{MAX_TEMPERATURE:g}, got {t!r}")
        if not _real(g) or not 0 <= g <= MAX_GUIDANCE:
            raise IgpgError(f"guidance must be a finite number in 0..{MAX_GUIDANCE:g} (1 = off), got {g!r}")
        if self.top_k is not None and not _count(self.top_k):
            raise IgpgError(f"top_k must be a positive integer, got {self.top_k!r}")
        if self.top_p is not None and (not _real(self.top_p) or not 0 < self.top_p <= 1):
            raise IgpgError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.k is not None and not _count(self.k, MAX_SUPPORT):
            raise IgpgError(f"k={self.k!r} samples per label: k (support samples) must be an integer in "
                            f"1..{MAX_SUPPORT}")
        m = self.mean_from
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 0):
            raise IgpgError(f"mean_from must be None or an integer >= 0, got {self.mean_from!r}")
        for key in ("base_candidate", "use_base", "use_cache"):
            if not isinstance(getattr(self, key), bool):
                raise IgpgError(f"{key} must be True or False, got {getattr(self, key)!r}")


def sampling_config(sampling: SamplingConfig | None = None, **overrides) -> SamplingConfig:
    """`sampling` (default: SamplingConfig()) with `overrides` (its field names) replaced: what the API's
    `generate(..., samples=8)` keywords become."""
    if sampling is None:
        return SamplingConfig(**overrides)
    if not isinstance(sampling, SamplingConfig):
        raise IgpgError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}")
    return dataclasses.replace(sampling, **overrides) if overrides else sampling


def _count(x: object, most: int | None = None) -> bool:
    """An int (not a bool) >= 1 (and <= most)."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1 and (most is None or x <= most)


def _real(x: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _filter(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        srt, idx = logits.sort(-1, descending=True)
        cum = srt.softmax(-1).cumsum(-1)
        drop = cum - srt.softmax(-1) > top_p  # keep the smallest prefix whose mass reaches top_p
        logits = logits.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))
    return logits


def _pick(logits: torch.Tensor, sc: SamplingConfig, gen: torch.Generator) -> torch.Tensor:
    if sc.temperature <= 0:
        return logits.argmax(-1)
    probs = _filter(logits / sc.temperature, sc.top_k, sc.top_p).softmax(-1)
    return torch.multinomial(probs.flatten(0, -2), 1, generator=gen).view(probs.shape[:-1])


class _Stepper:
    """Runs the decoder over a growing sequence, with or without a KV cache, windowing when it is full."""

    def __init__(self, model: WeightGenerator, prefix: torch.Tensor, use_cache: bool):
        self.model, self.prefix, self.use_cache = model, prefix, use_cache
        self.rows: list[torch.Tensor] = []  # inputs of the row positions in the current window, each (B, D)
        self.cache = None

    def step(self, row_input: torch.Tensor) -> torch.Tensor:
        """Append one row input (B, D); return the hidden state at that position (B, D)."""
        self.rows.append(row_input)
        limit = self.model.cfg.model.max_seq_len
        if self.prefix.shape[1] + len(self.rows) > limit:
            keep = max(1, (limit - self.prefix.shape[1]) // 2)
            del self.rows[:-keep]  # rows before the window are never read again: memory is bounded by the window
            self.cache = None
        x = torch.cat([self.prefix, torch.stack(self.rows, 1)], 1)
        if not self.use_cache:
            return self.model.decoder(x)[:, -1]
        out, self.cache = self.model.decoder(x, cache=self.cache, return_hiddens=True)
        return out[:, -1]


@dataclass
class Decoded:
    """What `sample_codes` decodes, on the CPU."""

    codes: torch.Tensor  # (B, N, Q)
    side: torch.Tensor  # (B, A) per-layer scale tokens (A = 0 without side tokens)
    latents: torch.Tensor | None = None  # (B, N, Dz), with codebooks
    logits: list[torch.Tensor] | None = None  # level-0 logits of every row, (B, J_r, V) each, with return_logits


@dataclass
class _Batch:
    """A batch of requests of one architecture, on the model's device, its conditions encoded; with guidance the
    second half repeats the requests without instruction and labels."""

    lay: RowLayout
    rows: dict  # row features, (B', R) each
    cond: Conditions
    base: torch.Tensor | None  # (B', R, J, Q) base codes (-1 none), base_rows models


def _batch(model: WeightGenerator, tasks, arch: str, profiles, instr: torch.Tensor, bases: list | None,
           guided: bool = False) -> _Batch:
    cfg = model.cfg
    dev = model.start_row.device
    b, n = len(tasks), 2 if guided else 1
    archs = [arch] * b * n
    keep = torch.zeros(b, dtype=torch.bool)
    drop = torch.cat([keep, ~keep]) if guided else keep  # the second half is unconditional
    cond = to_device(condition_batch(list(tasks) * n, archs, list(profiles) * n, torch.cat([instr] * n), cfg, drop,
                                     drop), dev)
    lay = row_layout(arch, cfg.codes.chunk_size, cfg.codes.codes_per_chunk)
    bases = list(bases or [None] * b) * n
    origins = origin_batch(bases, archs, cfg, len(lay)) if cfg.model.base_rows and cfg.model.compositional else None
    rows, _, head = to_device(row_batch(archs, cfg, list(tasks) * n, origins), dev)
    base = base_side = None
    if cfg.model.base_rows:
        base, base_side = to_device(base_batch(bases, archs, cfg, len(lay), lay.max_chunks), dev)
    return _Batch(lay, rows, model.encode_conditions(cond, head, base, base_side), base)


def _guide(logits: torch.Tensor, b: int, sc: SamplingConfig) -> torch.Tensor:
    """(2B, ...) conditional then unconditional logits -> (B, ...) guided; unguided logits pass through."""
    if sc.guidance == 1.0:
        return logits
    return logits[b:] + sc.guidance * (logits[:b] - logits[b:])


class _RowDecoder:
    """Emits the codes of one row at a time from its hidden state: level by level, each level conditioned on the
    levels below; picks, guides, and (with codebooks) sums the latents."""

    def __init__(self, model: WeightGenerator, batch: _Batch, b: int, sc: SamplingConfig, gen: torch.Generator,
                 codebooks: torch.Tensor | None, trace: list | None):
        self.model, self.batch, self.b, self.sc, self.gen, self.trace = model, batch, b, sc, gen, trace
        dev = model.start_row.device
        self.codebooks = None if codebooks is None else codebooks.to(dev)
        n = int(batch.lay.chunks.sum())
        self.latents = None if codebooks is None else torch.zeros(b, n, codebooks.shape[-1], device=dev)

    def side(self, h: torch.Tensor) -> torch.Tensor:
        """The layer's scale token from the hidden state of its first row, (B,)."""
        return _pick(_guide(self.model.side_head(h), self.b, self.sc), self.sc, self.gen) - SIDE_OFFSET

    def codes(self, r: int, h: torch.Tensor) -> torch.Tensor:
        """Row r's codes (B, J_r, Q) from its hidden state h (B', D)."""
        model, sc, lay, b = self.model, self.sc, self.batch.lay, self.b
        n, q_levels, bb = int(lay.chunks[r]), model.cfg.codes.codes_per_chunk, h.shape[0]
        dev = h.device
        hj = h[:, None].expand(-1, n, -1).reshape(bb * n, -1)
        jj = torch.arange(n, device=dev).repeat(bb)
        lower = torch.zeros(bb * n, model.cfg.model.slot_dim, device=dev)
        codes = torch.empty(b, n, q_levels, dtype=torch.int64, device=dev)
        for q in range(q_levels):
            base_q = None if self.batch.base is None else self.batch.base[:, r, :n, q].reshape(-1)
            logits = _guide(model.level_logits(hj, jj, lower, q, base_q).view(bb, n, -1), b, sc)
            if self.trace is not None and q == 0:
                self.trace.append(logits.clone())
            codes[:, :, q] = _pick(logits, sc, self.gen)
            if self.latents is not None:
                self.latents[:, lay.chunk_index[r, :n]] += self._latent(logits, codes[:, :, q], q)
            both = codes[:, :, q].repeat(bb // b, 1)
            lower = lower + model.code_emb[q, both.reshape(-1)]
        return codes

    def _latent(self, logits: torch.Tensor, picked: torch.Tensor, q: int) -> torch.Tensor:
        """Level q's contribution to the latents: the picked code's vector, or from `mean_from` on the expected
        vector under the (guided, tempered) level distribution: the posterior mean where the fine levels are
        uncertain, which costs less weight error than committing to one code."""
        if self.sc.mean_from is not None and q >= self.sc.mean_from:
            t = self.sc.temperature if self.sc.temperature > 0 else 1.0
            return (logits / t).softmax(-1) @ self.codebooks[q]
        return self.codebooks[q][picked]


@torch.no_grad()
def sample_codes(model: WeightGenerator, tasks, arch: str, profiles: list[torch.Tensor], instr: torch.Tensor,
                 sc: SamplingConfig, seed: int = 0, return_logits: bool = False, codebooks: torch.Tensor | None = None,
                 bases: list | None = None, progress: Callable[[int, int], None] | None = None) -> Decoded:
    """Decode the B requests (all of architecture `arch`) as `sc` says; decoding runs on the model's device.
    `progress(rows_done, rows)` is called after each decoded row.

    `bases`: with a base_rows model, each request's base (`generator.base.encode_base`'s result, or None).
    With `return_logits`, also the level-0 logits of every row in decoding order (for cache parity tests).
    With `codebooks` (Q, V, Dz) (the tokenizer's residual codebooks), also the latents (B, N, Dz) (levels from
    `sc.mean_from` on as expected vectors, see `_RowDecoder._latent`); later levels and rows are still conditioned
    on the picked codes.
    """
    b = len(tasks)
    dev = model.start_row.device
    batch = _batch(model, tasks, arch, profiles, instr.to(dev), bases, guided=sc.guidance != 1.0)
    lay = batch.lay
    pos = model.row_position(batch.rows) + batch.cond.head_labels  # (B', R, D)
    if batch.cond.base_input is not None:
        pos = pos + batch.cond.base_input
    out = torch.zeros(b, int(lay.chunks.sum()), model.cfg.codes.codes_per_chunk, dtype=torch.int64, device=dev)
    side = torch.zeros(b, int(lay.layer_index.max()) + 1, dtype=torch.int64, device=dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    trace = [] if return_logits else None
    rows = _RowDecoder(model, batch, b, sc, gen, codebooks, trace)
    stepper = _Stepper(model, batch.cond.prefix, sc.use_cache)
    row_in = pos[:, 0] + model.start_row
    for r in range(len(lay)):
        h = stepper.step(row_in)  # (B', D)
        if model.side_head is not None and int(lay.row[r]) == 0:
            side[:, int(lay.layer_index[r])] = rows.side(h)
        codes = rows.codes(r, h)
        out[:, lay.chunk_index[r, : codes.shape[1]]] = codes
        if r + 1 < len(lay):
            row_in = pos[:, r + 1] + model.bag(codes.repeat(h.shape[0] // b, 1, 1))
        if progress is not None:
            progress(r + 1, len(lay))
    side = side.cpu() if model.side_head is not None else side[:, :0].cpu()
    return Decoded(out.cpu(), side, None if rows.latents is None else rows.latents.cpu(), trace)


def decode_logits_full(model: WeightGenerator, tasks, arch: str, profiles, instr, codes: torch.Tensor,
                       bases: list | None = None) -> list:
    """Level-0 logits of every row, from ONE forward pass over the whole sequence with the given codes (teacher
    forcing, no cache): what `sample_codes(..., return_logits=True)` must reproduce step by step."""
    cfg = model.cfg
    b = len(tasks)
    batch = _batch(model, tasks, arch, profiles, instr, bases)
    lay = batch.lay
    row_codes = torch.full((b, len(lay), lay.max_chunks, cfg.codes.codes_per_chunk), -1, dtype=torch.int64)
    valid = lay.chunk_index >= 0
    row_codes[:, valid] = codes[:, lay.chunk_index[valid]]
    row_in = model.row_inputs(batch.rows, row_codes, batch.cond.head_labels)
    if batch.cond.base_input is not None:
        row_in = row_in + batch.cond.base_input
    prefix = batch.cond.prefix
    h = model.decoder(torch.cat([prefix, row_in], 1))[:, prefix.shape[1]:]
    out = []
    for r in range(len(lay)):
        n = int(lay.chunks[r])
        hj = h[:, r, None].expand(-1, n, -1).reshape(b * n, -1)
        base_q = None if batch.base is None else batch.base[:, r, :n, 0].reshape(-1)
        out.append(model.level_logits(hj, torch.arange(n).repeat(b), torch.zeros(b * n, cfg.model.slot_dim), 0, base_q)
                   .view(b, n, -1))
    return out
