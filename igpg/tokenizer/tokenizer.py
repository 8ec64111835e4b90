"""`WeightTokenizer`: a trained VQ-VAE plus chunking: any supported network <-> discrete codes.

    tok = WeightTokenizer.load("tokenizers/default")
    codes = tok.encode(state_dict, "mlp:64-32-3")        # Codes: (N, Q) int64 + per-layer side tokens
    state = tok.decode(codes, "mlp:64-32-3")              # a state_dict that loads strictly into spec.build()

    codes = tok.encode_state(torchvision.models.resnet18().state_dict())   # StateCodes: any state dict,
    state = tok.decode_state(codes)                                         # streamed in bounded blocks

The VQ-VAE runs over at most `WINDOW` chunks at a time, so memory stays bounded for large networks (networks of
fewer chunks go through in one pass, as they always did).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from igpg.arch import ArchSpec
from igpg.checkpoint import check_model_size, load_model_state, read_config, save_model
from igpg.config import apply_overrides, read_yaml, sections_of_flat
from igpg.errors import IgpgError
from igpg.tokenizer.chunking import NUM_POSITION_FEATURES, ChunkLayout, chunk_layout, chunk_network, unchunk
from igpg.tokenizer.any_state_chunking import (
    MAX_BLOCK_CHUNKS,
    StateSchema,
    block_layout,
    iter_blocks,
    plan_blocks,
    side_tokens,
    state_schema,
    unchunk_state,
)
from igpg.tokenizer.model import SECTIONS, TokenizerConfig, WeightVQVAE

KIND = "igpg-weight-tokenizer"
WINDOW = MAX_BLOCK_CHUNKS  # chunks through the VQ-VAE at once (activations ~4 MiB at hidden 256, distances to a
# 1024-entry codebook 16 MiB); windows give the same codes and weights as one pass (tested)


@dataclass(frozen=True)
class Codes:
    arch: str
    indices: torch.Tensor  # (N, Q) int64: Q codes for each of the network's N chunks
    side: torch.Tensor  # (L,) int64: per-layer scale tokens (layer_std normalisation), else empty


@dataclass(frozen=True)
class StateCodes:
    """Codes of an arbitrary state dict (see `any_state_chunking.py`): what `encode_state` returns and `decode_state` inverts."""

    schema: StateSchema
    indices: torch.Tensor  # (N, Q) int64
    side: torch.Tensor  # (T,) int64 per-tensor scale tokens (layer_std normalisation), else empty
    passthrough: dict[str, torch.Tensor]  # tensors that are not chunked (integer buffers, float64), as they were


def _windows(n: int) -> list[slice]:
    return [slice(i, min(n, i + WINDOW)) for i in range(0, n, WINDOW)]


def _window_inputs(layout: ChunkLayout, w: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Position features (n, F) and mask (n, C) of the chunks in window `w`, built for that window alone."""
    part = dataclasses.replace(layout, **{f.name: getattr(layout, f.name)[w] for f in dataclasses.fields(layout)
                                          if isinstance(getattr(layout, f.name), torch.Tensor)})
    return part.position_features(), part.mask()


# options removed from the tokenizer config, with their neutral value: a config.json written before the sections
# (2026-12; the released tokenizers among them) still loads if it holds them at that value
REMOVED = {"extra": {}}


def config_from_dict(raw: Any, where: str | Path | None = None) -> TokenizerConfig:
    """A tokenizer config from a checkpoint's config.json or a YAML file, validated (sizes bounded): its sections
    ({"model": ..., "train": ...}) or an older flat mapping."""
    return TokenizerConfig.parse(_as_sections(raw, where), where)


def _as_sections(raw: Any, where: str | Path | None) -> Any:
    """A flat mapping (a config written before the sections) as sections; anything else as it is."""
    return sections_of_flat(raw, SECTIONS, REMOVED, "tokenizer", where)


def load_tokenizer_config(path, overrides: list[str] | None = None) -> TokenizerConfig:
    """A tokenizer recipe (configs/tokenizer/*.yaml: `model:` and `train:` sections, or an older flat one) with
    `--set` overrides (`train.lr=3e-3`, `model.hidden=128`), validated."""
    raw = apply_overrides(_as_sections(read_yaml(path, "tokenizer"), path), overrides, TokenizerConfig)
    return TokenizerConfig.parse(raw, path)


class WeightTokenizer:
    def __init__(self, cfg: TokenizerConfig, model: WeightVQVAE | None = None):
        if cfg.model.num_position_features != NUM_POSITION_FEATURES:
            cfg = cfg.override({"model.num_position_features": NUM_POSITION_FEATURES})
        self.cfg = cfg
        self.model = model if model is not None else WeightVQVAE(cfg)
        self.model.eval()

    @classmethod
    def load(cls, path: str | Path) -> "WeightTokenizer":
        cfg = config_from_dict(read_config(path, KIND))
        check_model_size(path, lambda: cls(cfg).model)  # before allocating what the config says
        tok = cls(cfg)
        load_model_state(path, tok.model)
        tok.model.eval()
        return tok

    def save(self, path: str | Path) -> None:
        """Write config.json + model.safetensors (what `load` reads; no training state), e.g. into a generator's
        directory so that it travels with it."""
        save_model(path, KIND, self.cfg, self.model.state_dict())

    def check_arch(self, arch: str | ArchSpec) -> ArchSpec:
        spec = ArchSpec.parse(arch)
        if spec.family not in self.cfg.model.families:
            raise IgpgError(f"this tokenizer supports architecture families {', '.join(self.cfg.model.families)}, "
                            f"not {spec.family!r} ({spec})")
        return spec

    @torch.no_grad()
    def encode(self, state: Mapping[str, torch.Tensor], arch: str | ArchSpec) -> Codes:
        spec = self.check_arch(arch)
        ch = chunk_network(state, spec, self.cfg.model.chunk_size, self.cfg.model.normalisation)
        idx = torch.cat([self._encode_values(ch.values[w], _window_inputs(ch.layout, w)[0])
                         for w in _windows(len(ch.values))])
        return Codes(str(spec), idx, ch.side)

    def _encode_values(self, values: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        _, idx, _ = self.model.quantize(self.model.encode(values, pos))
        return idx

    @torch.no_grad()
    def decode(self, codes: Codes) -> dict[str, torch.Tensor]:
        spec = self.check_arch(codes.arch)
        layout = chunk_layout(spec, self.cfg.model.chunk_size)
        if codes.indices.shape[0] != len(layout):
            raise IgpgError(f"{spec} needs {len(layout)} chunks of codes, got {codes.indices.shape[0]}")
        values = torch.empty(len(layout), self.cfg.model.chunk_size)
        for w in _windows(len(layout)):
            pos, mask = _window_inputs(layout, w)
            values[w] = self.model.decode_indices(codes.indices[w], pos) * mask
        return unchunk(values, spec, self.cfg.model.chunk_size, self.cfg.model.normalisation, codes.side)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, arch: str | ArchSpec, side: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decode quantised latents (N, Dz) (e.g. a generator's expected code vectors) instead of indices."""
        spec = self.check_arch(arch)
        layout = chunk_layout(spec, self.cfg.model.chunk_size)
        if latents.shape[0] != len(layout):
            raise IgpgError(f"{spec} needs {len(layout)} chunk latents, got {latents.shape[0]}")
        values = torch.empty(len(layout), self.cfg.model.chunk_size)
        for w in _windows(len(layout)):
            pos, mask = _window_inputs(layout, w)
            values[w] = self.model.decode(latents[w], pos) * mask
        return unchunk(values, spec, self.cfg.model.chunk_size, self.cfg.model.normalisation, side)

    # ---- any state dict (any_state_chunking.py): streamed block by block -------------------------------------
    @torch.no_grad()
    def encode_state(self, state: Mapping[str, torch.Tensor]) -> StateCodes:
        """Codes of any state dict (a torchvision model's, ...), one block of at most WINDOW chunks at a time.

        The tokenizer was trained on igpg's MLP / CNN zoo: on other architectures it runs, and
        `reconstruction_error` says how well."""
        schema = state_schema(state)
        cfg = self.cfg.model
        side = side_tokens(state, schema) if cfg.normalisation == "layer_std" else torch.zeros(0, dtype=torch.int64)
        blocks = iter_blocks(state, schema, cfg.chunk_size, cfg.normalisation,
                             side if cfg.normalisation == "layer_std" else None, WINDOW)
        # one output tensor filled block by block: many small long-lived pieces between the blocks' temporaries
        # would fragment the heap (measured here on resnet18: ~1 GB resident instead of ~0.1 GB)
        idx = torch.empty(schema.num_chunks(cfg.chunk_size), cfg.codes_per_chunk, dtype=torch.int64)
        start = 0
        for b in blocks:
            idx[start:start + len(b.values)] = self._encode_values(b.values, b.layout.position_features())
            start += len(b.values)
        return StateCodes(schema, idx, side, {k: state[k] for k in schema.passthrough})

    @torch.no_grad()
    def decode_state(self, codes: StateCodes) -> dict[str, torch.Tensor]:
        """The state dict back from `encode_state`'s codes (names, shapes and dtypes of the original)."""
        cfg, schema = self.cfg.model, codes.schema
        if codes.indices.shape[0] != schema.num_chunks(cfg.chunk_size):
            raise IgpgError(f"the state needs {schema.num_chunks(cfg.chunk_size)} chunks of codes, "
                            f"got {codes.indices.shape[0]}")

        def blocks():
            start = 0
            for i, r0, r1 in plan_blocks(schema, cfg.chunk_size, WINDOW):
                lay = block_layout(schema, i, r0, r1, cfg.chunk_size)
                idx = codes.indices[start:start + len(lay)]
                start += len(lay)
                yield self.model.decode_indices(idx, lay.position_features()) * lay.mask()

        side = codes.side if cfg.normalisation == "layer_std" else None
        return unchunk_state(blocks(), schema, cfg.chunk_size, cfg.normalisation, side, codes.passthrough, WINDOW)

    def codebooks(self) -> torch.Tensor | None:
        """The residual codebooks (Q, V, Dz) of an rvq / vq tokenizer (None for fsq)."""
        qz = self.model.quantizer
        if self.cfg.model.quantizer == "rvq":
            return qz.codebooks.detach()
        if self.cfg.model.quantizer == "vq":
            return qz.codebook.detach()[None]
        return None

    def reconstruct(self, state: Mapping[str, torch.Tensor], arch: str | ArchSpec) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(state, arch))

    def codes_per_network(self, arch: str | ArchSpec) -> int:
        return len(chunk_layout(self.check_arch(arch), self.cfg.model.chunk_size)) * self.cfg.model.codes_per_chunk
