"""The weight VQ-VAE: a chunk of normalised weights -> Q discrete codes -> the chunk back.

Shape legend: N chunks, C chunk size (values), F position features per chunk, D latent size, Q codes per chunk.

    encoder  (N, C + F) -> (N, D)          an MLP that sees the chunk's values and where it sits in the network
    quantiser (N, D) -> (N, D), (N, Q)     VectorQuantize (Q = 1), ResidualVQ (Q levels) or FSQ (Q = 1),
                                           from vector-quantize-pytorch
    decoder  (N, D + F) -> (N, C)          an MLP; padded positions are ignored by the loss

Decoding from indices equals the forward output in eval mode (`decode_indices`), which is what lets a generator
emit codes and get weights back.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn
from vector_quantize_pytorch import FSQ, ResidualVQ, VectorQuantize

from igpg.config import Config
from igpg.errors import IgpgError

QUANTIZERS = ("vq", "rvq", "fsq")


class TokenizerModelConfig(Config):
    """What builds the VQ-VAE: `WeightVQVAE(cfg)` depends on these alone (and a tokenizer's codes on them)."""

    what = "tokenizer"
    chunk_size: int = Field(8, ge=1, le=4096)  # weights per chunk; a chunk never spans two neurons (row-aligned chunking)
    normalisation: Literal["none", "fanin", "layer_std"] = "fanin"  # see tokenizer/chunking.py
    quantizer: Literal["vq", "rvq", "fsq"] = "rvq"  # one codebook, residual levels, or finite scalar quantisation
    codebook_size: int = Field(1024, ge=0, le=2**16)  # vq / rvq: entries per codebook
    num_quantizers: int = Field(4, ge=0, le=64)  # rvq: residual levels = codes per chunk
    fsq_levels: tuple[int, ...] = (8, 8, 8, 5, 5)  # fsq: levels per latent dim (codebook = their product)
    latent_dim: int = Field(16, ge=0, le=4096)  # D: size of the quantised vector (fsq: len(fsq_levels))
    hidden: int = Field(256, ge=0, le=16384)  # encoder / decoder width; 0 = linear maps
    families: tuple[str, ...] = ("mlp", "cnn")  # architecture families this tokenizer accepts
    position_features: bool = True  # condition encoder and decoder on the chunk's place in the network
    commitment_weight: float = Field(0.25, ge=0)  # VQ-VAE beta (van den Oord et al. 2017)
    decay: float = Field(0.9, ge=0)  # EMA decay of the codebooks
    kmeans_init: bool = True  # initialise codebooks from the first batch (stabler than random)
    dead_code_threshold: float = Field(2.0, ge=0)  # codes used less than this (EMA count) are re-seeded from the batch
    num_position_features: int = Field(0, ge=0, le=4096)  # filled from the chunk layout when the model is built

    @property
    def codes_per_chunk(self) -> int:
        return self.num_quantizers if self.quantizer == "rvq" else 1

    @property
    def vocab_size(self) -> int:
        """Distinct values one code can take."""
        return math.prod(self.fsq_levels) if self.quantizer == "fsq" else self.codebook_size

    @property
    def bits_per_chunk(self) -> float:
        return self.codes_per_chunk * math.log2(self.vocab_size)


class TokenizerTrainConfig(Config):
    """How the VQ-VAE is trained: none of these changes the module's shapes or its codes' format."""

    what = "tokenizer"
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(4096, ge=1)  # chunks per step
    lr: float = Field(1e-3, ge=0)
    seed: int = Field(0, ge=0)
    log_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(500, ge=1)


SECTIONS = {"model": TokenizerModelConfig, "train": TokenizerTrainConfig}


class TokenizerConfig(Config):
    """The VQ-VAE (`model:`) and its training (`train:`): igpg train tokenizer --config configs/tokenizer/*.yaml
    --set train.lr=3e-3 --set model.hidden=128. Reads name the section: cfg.model.chunk_size, cfg.train.lr."""

    what = "tokenizer"
    model: TokenizerModelConfig = TokenizerModelConfig()
    train: TokenizerTrainConfig = TokenizerTrainConfig()


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Module:
    if hidden == 0:
        return nn.Linear(d_in, d_out)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, d_out))


class WeightVQVAE(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        m = cfg.model
        f = m.num_position_features if m.position_features else 0
        d = len(m.fsq_levels) if m.quantizer == "fsq" else m.latent_dim
        self.encoder = _mlp(m.chunk_size + f, m.hidden, d)
        self.decoder = _mlp(d + f, m.hidden, m.chunk_size)
        common = dict(decay=m.decay, commitment_weight=m.commitment_weight, kmeans_init=m.kmeans_init,
                      threshold_ema_dead_code=m.dead_code_threshold)
        if m.quantizer == "vq":
            self.quantizer = VectorQuantize(dim=d, codebook_size=m.codebook_size, **common)
        elif m.quantizer == "rvq":
            self.quantizer = ResidualVQ(dim=d, num_quantizers=m.num_quantizers, codebook_size=m.codebook_size,
                                        **common)
        else:
            self.quantizer = FSQ(levels=list(m.fsq_levels))

    def _cond(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, pos], -1) if self.cfg.model.position_features else x

    def encode(self, values: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._cond(values, pos))  # (N, D)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, D) -> quantised (N, D), indices (N, Q), auxiliary loss (scalar)."""
        if self.cfg.model.quantizer == "fsq":
            zq, idx = self.quantizer(z[None])  # the library wants a sequence axis: (1, N, D)
            return zq[0], idx[0][:, None], z.new_zeros(())
        zq, idx, aux = self.quantizer(z[None])  # the library wants a sequence axis: (1, N, D)
        idx = idx[0]
        return zq[0], (idx if idx.ndim == 2 else idx[:, None]), aux.sum()

    def latent_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(N, Q) codes -> (N, D) quantised latents."""
        self.check_indices(indices)
        if self.cfg.model.quantizer == "fsq":
            return self.quantizer.indices_to_codes(indices[None, :, 0])[0]
        if self.cfg.model.quantizer == "vq":
            return self.quantizer.get_output_from_indices(indices[None, :, 0])[0]
        return self.quantizer.get_output_from_indices(indices[None])[0]

    def check_indices(self, indices: torch.Tensor) -> None:
        q = self.cfg.model.codes_per_chunk
        if indices.ndim != 2 or indices.shape[1] != q:
            raise IgpgError(f"codes must have shape (chunks, {q}), got {tuple(indices.shape)}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.cfg.model.vocab_size):
            raise IgpgError(f"codes must lie in 0..{self.cfg.model.vocab_size - 1}")

    def decode(self, zq: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.decoder(self._cond(zq, pos))  # (N, C)

    def decode_indices(self, indices: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.decode(self.latent_from_indices(indices), pos)

    def forward(self, values: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor):
        """Reconstruction, codes and losses for a batch of chunks."""
        zq, idx, aux = self.quantize(self.encode(values, pos))
        recon = self.decode(zq, pos)
        err = (recon - values).pow(2) * mask
        rec = err.sum() / mask.sum().clamp(min=1)
        return recon, idx, {"loss": rec + aux, "recon": rec, "aux": aux}
