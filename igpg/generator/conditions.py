"""What the generator is conditioned on, turned into vectors.

- instruction: the frozen MiniLM sentence embedding (384-d, `igpg.text`), one prefix token;
- dataset: k labelled samples per output label (the "support set", default k = 5 as IGPG embeds 5 images per
  class), in output-label order; a learned set encoder maps each label's samples to one label token, so output
  row i of the generated head is steered by the samples of label i;
- architecture: one token per layer (kind, fan-in, fan-out, kernel, depth, is-head).

Datasets with different input sizes share one set encoder: every sample is resampled to a fixed 64-value profile
(images: area-averaged to 8x8 and averaged over channels; sequences: averaged/stretched to length 64; flat
vectors: treated as length-D sequences) and standardised per sample, so digits (8x8), MNIST (28x28) and
MNIST-1D (40) all give 64 numbers of the same scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from igpg.arch import ArchSpec
from igpg.data import Task, load_dataset
from igpg.errors import IgpgError

PROFILE = 64  # values per sample after resampling
ARCH_FEATURES = 9


def sample_profile(x: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """(n, D) flat samples -> (n, 64) standardised profiles, whatever the input shape."""
    n = x.shape[0]
    if len(input_shape) == 3:
        img = x.view(n, *input_shape)
        prof = F.adaptive_avg_pool2d(img, (8, 8)).mean(1).flatten(1)
    else:
        seq = x.view(n, input_shape[0], -1) if len(input_shape) == 2 else x.view(n, 1, -1)
        prof = F.interpolate(seq, size=PROFILE, mode="linear", align_corners=False).mean(1)
    prof = prof - prof.mean(1, keepdim=True)
    return prof / prof.std(1, keepdim=True).clamp(min=1e-4)


def support_set(task: Task, k: int, seed: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """k labelled samples per output label of the task: x (L*k, D), y (L*k,) in label order, drawn with `seed`."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise IgpgError(f"k (samples per label) must be a positive integer, got {k!r}")
    data = task.relabel(load_dataset(task.dataset).split(split))
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for i in range(task.num_labels):
        idx = (data.y == i).nonzero().squeeze(1)
        if len(idx) < k:
            raise IgpgError(f"k={k} samples per label requested but label {i} of {task.classes_json()} has only "
                            f"{len(idx)} in the {task.dataset} {split} split")
        pick = idx[torch.randperm(len(idx), generator=g)[:k]]
        xs.append(data.x[pick])
        ys.append(data.y[pick])
    return torch.cat(xs), torch.cat(ys)


def arch_features(spec: ArchSpec) -> torch.Tensor:
    """(L, 9) per-layer features: kind one-hot (3), log fan-in, log fan-out, kernel, is-head, rel. depth, depth."""
    rows = []
    for layer in spec.schema():
        kind = [float(layer.kind == k) for k in ("linear", "conv1d", "conv2d")]
        rows.append(kind + [math.log2(layer.fan_in) / 16, math.log2(layer.fan_out) / 16, layer.kernel / 7,
                            float(layer.is_head), layer.index / max(1, spec.depth), spec.depth / 8])
    return torch.tensor(rows, dtype=torch.float32)


class SetEncoder(nn.Module):
    """k sample profiles of one label -> one label vector (mean-pooled deep set)."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.per_sample = nn.Sequential(nn.Linear(PROFILE, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.pooled = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, profiles: torch.Tensor) -> torch.Tensor:
        """(B, L, k, 64) -> (B, L, dim)"""
        return self.pooled(self.per_sample(profiles).mean(2))
