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

from igpg.distributed import to_device
from igpg.errors import IgpgError
from igpg.generator.base import base_batch, origin_batch
from igpg.generator.data import condition_batch, row_batch
from igpg.generator.model import SIDE_OFFSET, WeightGenerator
from igpg.generator.rows import row_layout


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
        limit = self.model.cfg.max_seq_len
        if self.prefix.shape[1] + len(self.rows) > limit:
            keep = max(1, (limit - self.prefix.shape[1]) // 2)
            del self.rows[:-keep]  # rows before the window are never read again: memory is bounded by the window
            self.cache = None
        x = torch.cat([self.prefix, torch.stack(self.rows, 1)], 1)
        if not self.use_cache:
            return self.model.decoder(x)[:, -1]
        out, self.cache = self.model.decoder(x, cache=self.cache, return_hiddens=True)
        return out[:, -1]


@torch.no_grad()
def sample_codes(model: WeightGenerator, tasks, arch: str, profiles: list[torch.Tensor], instr: torch.Tensor,
                 sc: SamplingConfig, seed: int = 0, return_logits: bool = False, codebooks: torch.Tensor | None = None,
                 bases: list | None = None, progress: Callable[[int, int], None] | None = None):
    """Codes (B, N, Q) and side tokens (B, A) for the B requests (all of architecture `arch`), on the CPU; decoding
    runs on the model's device. `progress(rows_done, rows)` is called after each decoded row.

    `bases`: with a base_rows model, each request's base (`generator.base.encode_base`'s result, or None).

    With `return_logits`, also returns the level-0 logits of every chunk in decoding order (for cache parity tests).
    With `codebooks` (Q, V, Dz) (the tokenizer's residual codebooks), also returns latents (B, N, Dz):
    levels below `sc.mean_from` contribute their picked code's vector, levels from `sc.mean_from` on the expected vector
    under the (guided, tempered) level distribution: the posterior mean where the fine levels are uncertain, which
    costs less weight error than committing to one code. Later levels and rows are still conditioned on the picked
    codes.
    """
    cfg = model.cfg
    dev = model.start_row.device
    b = len(tasks)
    guided = sc.guidance != 1.0
    archs = [arch] * b
    drop = torch.zeros(b, dtype=torch.bool)
    cond = condition_batch(tasks, archs, profiles, instr, cfg, drop, drop)
    if guided:  # the second half is unconditional: no instruction, no labels
        cond = condition_batch(list(tasks) * 2, archs * 2, list(profiles) * 2, torch.cat([instr, instr]), cfg,
                               torch.cat([drop, ~drop]), torch.cat([drop, ~drop]))
    cond = to_device(cond, dev)
    labels = model.label_tokens(cond["profiles"], cond["class_ids"], cond["label_mask"], cond["drop_labels"])
    prefix = model.prefix(cond["instr"], cond["drop_instr"], labels, cond["arch_feat"], cond["arch_act"])
    bb = prefix.shape[0]
    lay = row_layout(arch, cfg.chunk_size, cfg.codes_per_chunk)
    origins = None
    if cfg.base_rows and cfg.compositional:
        origins = origin_batch(list(bases or [None] * b) * (2 if guided else 1), archs * (2 if guided else 1), cfg,
                               len(lay))
    rows, _, head = to_device(row_batch(archs * (2 if guided else 1), cfg, list(tasks) * (2 if guided else 1),
                                        origins), dev)
    pos = model.row_position(rows)  # (bb, R, D)
    head_lab = torch.gather(labels, 1, head.clamp(min=0)[..., None].expand(-1, -1, labels.shape[-1]))
    pos = pos + head_lab * (head >= 0)[..., None]
    base = None
    if cfg.base_rows:
        base, base_side = base_batch(list(bases or [None] * b) * (2 if guided else 1), archs * (2 if guided else 1),
                                     cfg, len(lay), lay.max_chunks)
        base, base_side = base.to(dev), base_side.to(dev)
        pos = pos + model.base_input(base, base_side)
    q_levels = cfg.codes_per_chunk
    out = torch.zeros(b, int(lay.chunks.sum()), q_levels, dtype=torch.int64, device=dev)  # zeros: decodable early
    side = torch.zeros(b, int(lay.layer_index.max()) + 1, dtype=torch.int64, device=dev)
    codebooks = None if codebooks is None else codebooks.to(dev)
    latents = None if codebooks is None else torch.zeros(b, out.shape[1], codebooks.shape[-1], device=dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    stepper = _Stepper(model, prefix, sc.use_cache)
    row_in = pos[:, 0] + model.start_row
    logits_trace = []
    for r in range(len(lay)):
        h = stepper.step(row_in)  # (bb, D)
        if model.side_head is not None and int(lay.row[r]) == 0:
            side_logits = model.side_head(h)
            if guided:
                side_logits = side_logits[b:] + sc.guidance * (side_logits[:b] - side_logits[b:])
            side[:, int(lay.layer_index[r])] = _pick(side_logits, sc, gen) - SIDE_OFFSET
        n = int(lay.chunks[r])
        j = torch.arange(n, device=dev)
        hj = h[:, None].expand(-1, n, -1).reshape(bb * n, -1)
        jj = j.repeat(bb)
        lower = torch.zeros(bb * n, cfg.slot_dim, device=dev)
        codes = torch.empty(b, n, q_levels, dtype=torch.int64, device=dev)
        for q in range(q_levels):
            base_q = None if base is None else base[:, r, :n, q].reshape(-1)
            logits = model.level_logits(hj, jj, lower, q, base_q).view(bb, n, -1)
            if guided:
                logits = logits[b:] + sc.guidance * (logits[:b] - logits[b:])
            if return_logits and q == 0:
                logits_trace.append(logits.clone())
            codes[:, :, q] = _pick(logits, sc, gen)
            if latents is not None:
                if sc.mean_from is not None and q >= sc.mean_from:
                    t = sc.temperature if sc.temperature > 0 else 1.0
                    vec = (logits / t).softmax(-1) @ codebooks[q]
                else:
                    vec = codebooks[q][codes[:, :, q]]
                latents[:, lay.chunk_index[r, :n]] += vec
            both = codes[:, :, q].repeat(2, 1) if guided else codes[:, :, q]
            lower = lower + model.code_emb[q, both.reshape(-1)]
        out[:, lay.chunk_index[r, :n]] = codes
        if r + 1 < len(lay):
            both = codes.repeat(2, 1, 1) if guided else codes
            row_in = pos[:, r + 1] + model.bag(both)
        if progress is not None:
            progress(r + 1, len(lay))
    out, side = out.cpu(), side.cpu()
    if model.side_head is None:
        side = side[:, :0]
    if latents is not None:
        return out, side, latents.cpu()
    return (out, side, logits_trace) if return_logits else (out, side)


def decode_logits_full(model: WeightGenerator, tasks, arch: str, profiles, instr, codes: torch.Tensor,
                       bases: list | None = None) -> list:
    """Level-0 logits of every row, from ONE forward pass over the whole sequence with the given codes (teacher
    forcing, no cache): what `sample_codes(..., return_logits=True)` must reproduce step by step."""
    cfg = model.cfg
    b = len(tasks)
    drop = torch.zeros(b, dtype=torch.bool)
    cond = condition_batch(tasks, [arch] * b, profiles, instr, cfg, drop, drop)
    labels = model.label_tokens(cond["profiles"], cond["class_ids"], cond["label_mask"], cond["drop_labels"])
    prefix = model.prefix(cond["instr"], cond["drop_instr"], labels, cond["arch_feat"], cond["arch_act"])
    lay = row_layout(arch, cfg.chunk_size, cfg.codes_per_chunk)
    origins = None
    if cfg.base_rows and cfg.compositional:
        origins = origin_batch(list(bases or [None] * b), [arch] * b, cfg, len(lay))
    rows, _, head = row_batch([arch] * b, cfg, list(tasks), origins)
    row_codes = torch.full((b, len(lay), lay.max_chunks, cfg.codes_per_chunk), -1, dtype=torch.int64)
    valid = lay.chunk_index >= 0
    row_codes[:, valid] = codes[:, lay.chunk_index[valid]]
    head_lab = torch.gather(labels, 1, head.clamp(min=0)[..., None].expand(-1, -1, labels.shape[-1]))
    head_lab = head_lab * (head >= 0)[..., None]
    row_in = model.row_inputs(rows, row_codes, head_lab)
    base = None
    if cfg.base_rows:
        base, base_side = base_batch(list(bases or [None] * b), [arch] * b, cfg, len(lay), lay.max_chunks)
        row_in = row_in + model.base_input(base, base_side)
    x = torch.cat([prefix, row_in], 1)
    h = model.decoder(x)[:, prefix.shape[1]:]
    out = []
    for r in range(len(lay)):
        n = int(lay.chunks[r])
        hj = h[:, r, None].expand(-1, n, -1).reshape(b * n, -1)
        base_q = None if base is None else base[:, r, :n, 0].reshape(-1)
        out.append(model.level_logits(hj, torch.arange(n).repeat(b), torch.zeros(b * n, cfg.slot_dim), 0, base_q)
                   .view(b, n, -1))
    return out
