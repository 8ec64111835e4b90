"""Head features: what the output layer of the network being generated will see, handed to its rows.

An output row must fit the hidden layers below it. The zoo fine-tunes some tasks' hidden layers away from the
generic network (grouped labels above all), differently for every seed, so output rows copied from training
networks do not fit hidden layers decoded for a new seed (measured: eval/results/generator-ablation.md). With
`GeneratorConfig.head_features`, every chunk of an output row also sees the label's **prototype**: the mean, over
the label's support samples, of the features the head reads (`Net.features`: the last hidden activations, pooled
for a CNN), computed through the hidden layers of the network itself (teacher forcing: the zoo network's hidden
layers as the tokenizer decodes them; sampling: the hidden layers just decoded). The output row of label i then
follows the hidden layers it sits on, as a linear classifier follows its class means.

Per output row and fan-in position f, two numbers: the prototype's contrast with the mean of all labels'
prototypes, and the prototype itself, each divided by its RMS over the network (scale-free, as the codes are).
The bias position gets zeros. Shape legend: L labels, F features (the head's fan-in), J chunks per row, C chunk
size, P pooled samples per class, K support samples per label.
"""

from __future__ import annotations

import random

import torch
from einops import rearrange

from igpg.data import Task, load_dataset

FEATURE_CHANNELS = 2  # contrast, prototype


def prototypes(net, x: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Support samples x (L*K, D) in label order (as `support_set` gives them) -> prototypes (L, F)."""
    with torch.no_grad():
        feats = net.features(x)
    return rearrange(feats, "(l k) f -> l k f", l=num_labels).mean(1)


def feature_slots(protos: torch.Tensor, chunk_size: int, max_chunks: int) -> torch.Tensor:
    """Prototypes (L, F) -> per-chunk head features (L, J, 2C) of the output rows (row = F weights + the bias)."""
    contrast = protos - protos.mean(0, keepdim=True)
    chans = [contrast / contrast.pow(2).mean().sqrt().clamp(min=1e-6),
             protos / protos.pow(2).mean().sqrt().clamp(min=1e-6)]
    width = max_chunks * chunk_size
    padded = [torch.nn.functional.pad(c, (0, width - c.shape[1])) for c in chans]  # the bias and padding: 0
    return torch.cat([rearrange(c, "l (j c) -> l j c", c=chunk_size) for c in padded], -1)


class FeaturePool:
    """A fixed pool of P training samples per class of each dataset, to compute training networks' features on."""

    def __init__(self, per_class: int, seed: int = 0):
        self.per_class, self.seed = per_class, seed
        self._x: dict[str, torch.Tensor] = {}

    def samples(self, dataset: str) -> torch.Tensor:
        """(classes, P, D) samples of the dataset's train split (fewer per class is an error the zoo can't make)."""
        if dataset not in self._x:
            ds = load_dataset(dataset)
            g = torch.Generator().manual_seed(self.seed)
            out = []
            for c in range(ds.num_classes):
                idx = (ds.train.y == c).nonzero().squeeze(1)
                out.append(ds.train.x[idx[torch.randperm(len(idx), generator=g)[: self.per_class]]])
            self._x[dataset] = torch.stack(out)
        return self._x[dataset]

    def features(self, net, dataset: str) -> torch.Tensor:
        """(classes, P, F) head inputs of the network on the pool."""
        x = self.samples(dataset)
        with torch.no_grad():
            return rearrange(net.features(x.flatten(0, 1)), "(c p) f -> c p f", c=x.shape[0])


def sample_prototypes(pool_features: torch.Tensor, task: Task, k: int, rng: random.Random) -> torch.Tensor:
    """A training draw: for each label, the mean feature of k samples drawn from its classes' pools -> (L, F)."""
    out = []
    for label in task.labels:
        pool = torch.cat([pool_features[c] for c in label])
        out.append(pool[[rng.randrange(len(pool)) for _ in range(k)]].mean(0))
    return torch.stack(out)


