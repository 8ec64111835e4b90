"""`WeightTokenizer`: a trained VQ-VAE plus chunking: any supported network <-> discrete codes.

    tok = WeightTokenizer.load("tokenizers/default")
    codes = tok.encode(state_dict, "mlp:64-32-3")        # Codes: (N, Q) int64 + per-layer side tokens
    state = tok.decode(codes, "mlp:64-32-3")              # a state_dict that loads strictly into spec.build()
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from igpg.arch import ArchSpec
from igpg.checkpoint import dataclass_from_dict, load_model_state, read_config
from igpg.errors import IgpgError
from igpg.tokenizer.chunking import NUM_POSITION_FEATURES, chunk_layout, chunk_network, unchunk
from igpg.tokenizer.model import TokenizerConfig, WeightVQVAE

KIND = "igpg-weight-tokenizer"


@dataclass(frozen=True)
class Codes:
    arch: str
    indices: torch.Tensor  # (N, Q) int64: Q codes for each of the network's N chunks
    side: torch.Tensor  # (L,) int64: per-layer scale tokens (layer_std normalisation), else empty


def config_from_dict(raw: dict) -> TokenizerConfig:
    return dataclass_from_dict(TokenizerConfig, raw, "tokenizer")


class WeightTokenizer:
    def __init__(self, cfg: TokenizerConfig, model: WeightVQVAE | None = None):
        if cfg.num_position_features != NUM_POSITION_FEATURES:
            cfg = dataclasses.replace(cfg, num_position_features=NUM_POSITION_FEATURES)
        self.cfg = cfg
        self.model = model if model is not None else WeightVQVAE(cfg)
        self.model.eval()

    @classmethod
    def load(cls, path: str | Path) -> "WeightTokenizer":
        cfg = config_from_dict(read_config(path, KIND))
        tok = cls(cfg)
        load_model_state(path, tok.model)
        tok.model.eval()
        return tok

    def check_arch(self, arch: str | ArchSpec) -> ArchSpec:
        spec = ArchSpec.parse(arch)
        if spec.family not in self.cfg.families:
            raise IgpgError(f"this tokenizer supports architecture families {', '.join(self.cfg.families)}, "
                            f"not {spec.family!r} ({spec})")
        return spec

    @torch.no_grad()
    def encode(self, state: Mapping[str, torch.Tensor], arch: str | ArchSpec) -> Codes:
        spec = self.check_arch(arch)
        ch = chunk_network(state, spec, self.cfg.chunk_size, self.cfg.normalisation)
        z = self.model.encode(ch.values, ch.layout.position_features())
        _, idx, _ = self.model.quantize(z)
        return Codes(str(spec), idx, ch.side)

    @torch.no_grad()
    def decode(self, codes: Codes) -> dict[str, torch.Tensor]:
        spec = self.check_arch(codes.arch)
        layout = chunk_layout(spec, self.cfg.chunk_size)
        if codes.indices.shape[0] != len(layout):
            raise IgpgError(f"{spec} needs {len(layout)} chunks of codes, got {codes.indices.shape[0]}")
        values = self.model.decode_indices(codes.indices, layout.position_features())
        values = values * layout.mask()
        return unchunk(values, spec, self.cfg.chunk_size, self.cfg.normalisation, codes.side)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, arch: str | ArchSpec, side: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decode quantised latents (N, Dz) (e.g. a generator's expected code vectors) instead of indices."""
        spec = self.check_arch(arch)
        layout = chunk_layout(spec, self.cfg.chunk_size)
        if latents.shape[0] != len(layout):
            raise IgpgError(f"{spec} needs {len(layout)} chunk latents, got {latents.shape[0]}")
        values = self.model.decode(latents, layout.position_features()) * layout.mask()
        return unchunk(values, spec, self.cfg.chunk_size, self.cfg.normalisation, side)

    def codebooks(self) -> torch.Tensor | None:
        """The residual codebooks (Q, V, Dz) of an rvq / vq tokenizer (None for fsq)."""
        qz = self.model.quantizer
        if self.cfg.quantizer == "rvq":
            return qz.codebooks.detach()
        if self.cfg.quantizer == "vq":
            return qz.codebook.detach()[None]
        return None

    def reconstruct(self, state: Mapping[str, torch.Tensor], arch: str | ArchSpec) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(state, arch))

    def codes_per_network(self, arch: str | ArchSpec) -> int:
        return len(chunk_layout(self.check_arch(arch), self.cfg.chunk_size)) * self.cfg.codes_per_chunk
