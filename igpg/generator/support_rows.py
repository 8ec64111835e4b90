"""Support rows: a network for data the generator has no generic network of, from a handful of labelled samples.

A request on a dataset without a generic network of its own (a registered dataset outside the zoo, such as
``ucr_gunpoint`` or ``mnist8``, or the user's own samples: ``igpg generate --support FILE``) borrows the hidden
layers of the nearest generic network that takes the same input (same flattened size for an MLP, same shape for a
CNN; carried over to the requested hidden layers as `GenericBank.source` plans it), and writes its output rows from
the support samples: the rows of a ridge regression of the labels (one-hot, +-1) on the hidden features of the
support samples, closed form, scaled by the temperature that fits the support samples best. No gradient step is
taken. The user's inputs are mapped to the borrowed network's input range inside its first layer (one scalar scale
and shift, matching the support samples' mean and spread to the source dataset's training split: exact for an MLP,
up to the zero padding at the borders for a CNN).

Measured on registered datasets outside the default zoo (`eval/support.py`, eval/results/support.md): far above
chance and above a nearest-class-mean head on the same features, but below a network trained from scratch on the
same samples for 100 steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from igpg.arch import ArchSpec
from igpg.data import load_dataset
from igpg.errors import IgpgError

RIDGE = 0.01  # ridge weight x mean diagonal of the Gram matrix of the support features (set once, not tuned per set)
TEMPERATURES = torch.logspace(-1, 2, 31)  # scales tried for the rows: the one with the lowest support loss is kept


def same_input_sources(bank, spec: ArchSpec, input_shape: tuple[int, ...], exclude: str | None = None):
    """(generic key, plan, its dataset) of every dataset in `bank` whose inputs fit `spec` like `input_shape` does
    (same flattened size for an MLP, the same shape for a CNN), the cheapest carry-over per dataset, cheapest first;
    `exclude`: a dataset left out (the request's own)."""
    found = []
    for dataset in sorted({key.rpartition("@")[2] for key in bank.states} - {exclude}):
        shape = load_dataset(dataset).input_shape
        fits = math.prod(shape) == math.prod(input_shape) if spec.family == "mlp" else tuple(shape) == tuple(input_shape)
        if not fits:
            continue
        src = bank.source(spec, dataset)
        if src is not None:
            found.append((src[0], src[1], dataset))
    return sorted(found, key=lambda f: (f[1].cost, f[2]))


@torch.no_grad()
def support_rows(features: torch.Tensor, y: torch.Tensor, num_labels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Output rows (w (L, F), b (L,)) from the support samples' hidden features (N, F) and labels (N,): ridge
    regression on +-1 one-hot targets, then scaled by the temperature in `TEMPERATURES` with the lowest
    cross-entropy on the support samples."""
    a = torch.cat([features, torch.ones(len(features), 1)], 1).double()
    t = F.one_hot(y, num_labels).double() * 2 - 1
    gram = a.T @ a
    lam = RIDGE * float(gram.diagonal().mean()) + 1e-8
    sol = torch.linalg.solve(gram + lam * torch.eye(len(gram), dtype=gram.dtype), a.T @ t)  # (F + 1, L)
    logits = a @ sol
    losses = torch.stack([F.cross_entropy(logits * s, y) for s in TEMPERATURES.double()])
    scale = TEMPERATURES.double()[int(losses.argmin())]
    return (sol[:-1].T * scale).float(), (sol[-1] * scale).float()


def _fold_input_affine(state: dict[str, torch.Tensor], spec: ArchSpec, scale: float, shift: float) -> None:
    """Make the network compute on x * scale + shift what it computed on x (its first layer absorbs the map)."""
    first = "hidden.0" if spec.hidden else "head"
    w, b = state[f"{first}.weight"], state[f"{first}.bias"]
    state[f"{first}.bias"] = b + shift * w.flatten(1).sum(1)
    state[f"{first}.weight"] = w * scale


def support_network(bank, spec: ArchSpec, x: torch.Tensor, y: torch.Tensor, labels, input_shape: tuple[int, ...],
                    exclude: str | None = None):
    """(network of `spec`, source text) for the support samples x (N, D), y (N,) (indices into `labels`), or None
    when no generic network in `bank` takes this input. See the module docstring."""
    found = same_input_sources(bank, spec, input_shape, exclude)
    if not found:
        return None
    key, plan, dataset = found[0]
    source = load_dataset(dataset)
    src = source.train.x
    # the support samples' mean and spread mapped onto the source's (scalars: the inputs' units, not per feature)
    spread = float(x.std()) if x.numel() > 1 else 0.0
    scale = float(src.std()) / spread if spread > 1e-6 else 1.0
    shift = float(src.mean()) - float(x.mean()) * scale
    n_src = source.num_classes
    state, _ = bank.carried(key, plan, dataset, list(range(n_src)), calibrate=x * scale + shift)
    target = plan.dst.with_outputs(n_src)
    _fold_input_affine(state, target, scale, shift)
    net = target.load(state)
    w, b = support_rows(net.features(x), y, len(labels))
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    state["head.weight"], state["head.bias"] = w, b
    out = spec.load(state)
    if not torch.isfinite(out(x)).all():
        raise IgpgError("the support samples give non-finite outputs through the borrowed hidden layers")
    steps = f" carried over ({'; '.join(plan.steps)})" if plan.steps else ""
    return out, f"support rows on {key}{steps}"
