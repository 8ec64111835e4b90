"""Base rows: the generic network's rows for a request, handed to the generator as an input it can copy.

The default zoo fine-tunes every task network from one generic network per architecture and dataset (trained on
all classes), its output rows started from the generic rows of their classes. The *base* of a request is that
starting point, built from the generic network alone (no task network): its hidden layers, and for output label i
the generic output row of its class. A group of classes has no such row: its row is fitted (`group_rows`, closed form,
no labels) to the generic network's log-sum-exp of the group's logits, the group's log-probability, on unlabelled
inputs of the dataset's training split; without inputs it is the mean of its classes' rows, bias + log of the group
size (measured on the held-out grouped tasks: eval/results/grouped-rows.md). The generator sees the base's codes row by row (`ModelConfig.base_rows`) and
learns what to keep and what to change; where no generic network of those hidden layers and that dataset exists (an
architecture never trained on) it decodes without a base, as it learned to with `base_dropout`.

Only generic networks of training-split architectures become bases: a held-out architecture stays held out.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
from pathlib import Path

import torch

from igpg.arch import ArchSpec
from igpg.data import load_dataset
from igpg.errors import IgpgError
from igpg.generator.model import SIDE_OFFSET, SIDE_VOCAB
from igpg.generator.rows import codes_to_rows, row_layout
from igpg.io import load_weights, save_weights
from igpg.transform import Plan, plan_cost, transform_state
from igpg.zoo.catalogue import Catalogue

GENERIC_DIR = "generic"  # inside a generator checkpoint / release directory


GROUP_INPUTS = 512  # unlabelled training inputs a group's row is fitted on
GROUP_PRIOR = 0.01  # ridge weight (x mean diagonal of the Gram matrix) pulling a group's row to its mean row


def base_state(generic: dict[str, torch.Tensor], labels, spec: ArchSpec | str | None = None,
               inputs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The base weights for `labels` (class ids or groups of them) from a generic network's state dict: its rows
    of the labels' classes; a group's row fitted on `inputs` (N, D) by `group_rows` when the generic network's
    architecture `spec` and inputs are given, else its classes' mean row (bias + log of the group size)."""
    groups = [list(x) if isinstance(x, (list, tuple)) else [x] for x in labels]
    state = {k: v.clone() for k, v in generic.items()}
    w, b = generic["head.weight"], generic["head.bias"]
    state["head.weight"] = torch.stack([w[g].mean(0) for g in groups])
    state["head.bias"] = torch.stack([b[g].mean() + math.log(len(g)) for g in groups])
    if spec is not None and inputs is not None and any(len(g) > 1 for g in groups):
        state["head.weight"], state["head.bias"] = group_rows(ArchSpec.parse(spec).load(generic), groups,
                                                              state["head.weight"], state["head.bias"], inputs)
    return state


@torch.no_grad()
def group_rows(net: torch.nn.Module, groups: list[list[int]], w: torch.Tensor, b: torch.Tensor,
               inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Output rows (w, b) with every group's row refitted: on those of `inputs` that the generic network `net`
    assigns to one of the task's classes, its features regressed (ridge, pulled towards the given row) on the
    log-sum-exp of the group's logits. A linear row cannot compute that maximum-like function everywhere; fitted
    where the task's inputs lie it comes close (digits, [6, 3, [4, 5, 7, 9]]: 0.66 -> 0.99 test accuracy, where the
    generic network's own group maximum scores 0.995). Single classes keep their exact rows."""
    net.eval()
    logits = net(inputs)
    keep = torch.isin(logits.argmax(1), torch.tensor([c for g in groups for c in g]))
    if int(keep.sum()) < 2:
        return w, b
    feats, logits = net.features(inputs[keep]), logits[keep]
    a = torch.cat([feats, torch.ones(len(feats), 1)], 1)  # (N, F + 1)
    gram = a.T @ a
    lam = GROUP_PRIOR * float(gram.diagonal().mean()) + 1e-6
    w, b = w.clone(), b.clone()
    for i, g in enumerate(groups):
        if len(g) > 1:
            prior = torch.cat([w[i], b[i : i + 1]])
            sol = torch.linalg.solve(gram + lam * torch.eye(len(gram)), a.T @ logits[:, g].logsumexp(1) + lam * prior)
            w[i], b[i] = sol[:-1], sol[-1]
    return w, b


@functools.lru_cache(maxsize=8)
def group_inputs(dataset: str) -> torch.Tensor:
    """`GROUP_INPUTS` unlabelled inputs of the dataset's training split (a fixed draw): what group rows are fitted on."""
    x = load_dataset(dataset).split("train").x
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:GROUP_INPUTS]]


def generic_key(arch: str, dataset: str) -> str:
    """Which generic network serves an architecture on a dataset: its hidden layers with the dataset's classes."""
    return f"{ArchSpec.parse(arch).with_outputs(load_dataset(dataset).num_classes)}@{dataset}"


class GenericBank:
    """Generic networks by (architecture with all classes, dataset), read from a directory of safetensors."""

    def __init__(self, states: dict[str, dict[str, torch.Tensor]] | None = None):
        self.states = states or {}

    def __len__(self) -> int:
        return len(self.states)

    @classmethod
    def from_zoo(cls, zoo_dir: str | Path, exclude_datasets=()) -> "GenericBank":
        """The zoo's generic networks of training-split architectures."""
        zoo = Catalogue(zoo_dir)
        try:
            rows = zoo.rows("n.role='generic' AND a.split='train'")
            states = {f"{r['arch']}@{r['dataset']}": zoo.load(r["net_id"]).state_dict() for r in rows
                      if r["dataset"] not in exclude_datasets}
        finally:
            zoo.close()
        return cls(states)

    @classmethod
    def load(cls, directory: str | Path) -> "GenericBank":
        directory = Path(directory)
        states = {}
        if directory.is_dir():
            for p in sorted(directory.glob("*.safetensors")):
                state, meta = load_weights(p)
                if "igpg.generic" not in meta:
                    raise IgpgError(f"{p}: not a generic network file (no igpg.generic metadata)")
                arch = meta["igpg.generic"].rsplit("@", 1)[0]  # "ARCH@DATASET"
                try:
                    problem = ArchSpec.parse(arch).schema_problem(state)
                except IgpgError as e:
                    problem = str(e)
                if problem:  # found now, not as a KeyError in the middle of a request
                    raise IgpgError(f"{p}: not a generic network of {arch[:80]!r}: {problem}")
                states[meta["igpg.generic"]] = state
        return cls(states)

    def save(self, directory: str | Path) -> None:
        """Write the bank as `directory/NNN.safetensors`, whole or not at all (a temporary directory, renamed)."""
        directory = Path(directory)
        tmp = directory.with_name(f".{directory.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for i, (key, state) in enumerate(sorted(self.states.items())):
            save_weights(tmp / f"{i:03d}.safetensors", state, {"igpg.generic": key})
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(tmp, directory)

    def source(self, arch: str | ArchSpec, dataset: str) -> tuple[str, Plan] | None:
        """The generic network a request's base comes from, with the transform that carries it to the request's
        hidden layers (an empty plan: the same architecture); None when no generic network of `dataset` can be
        carried there. The cheapest plan wins (`transform.plan_cost`: exact steps first)."""
        spec = ArchSpec.parse(arch)
        ds = load_dataset(dataset)
        target = spec.with_outputs(ds.num_classes)
        best = None
        for key in self.states:
            src, _, src_dataset = key.rpartition("@")
            if src_dataset != dataset:
                continue  # another dataset's classes and inputs: measured far below chance-free (README)
            plan = plan_cost(ArchSpec.parse(src), target, ds.input_shape, ds.input_shape)
            if plan is not None and (best is None or (plan.cost, key) < (best[1].cost, best[0])):
                best = (key, plan)
        return best

    def siblings(self, arch: str | ArchSpec, dataset: str, max_cost: float = 4.0, limit: int = 3) -> list[tuple[str, Plan]]:
        """The other generic networks of `dataset` that carry over to `arch` at a plan cost below `max_cost` (not
        its own), cheapest first, at most `limit`: the bases a request for an unseen architecture would get."""
        spec = ArchSpec.parse(arch)
        ds = load_dataset(dataset)
        target = spec.with_outputs(ds.num_classes)
        found = []
        for key in self.states:
            src, _, src_dataset = key.rpartition("@")
            if src_dataset != dataset or ArchSpec.parse(src) == target:
                continue
            plan = plan_cost(ArchSpec.parse(src), target, ds.input_shape, ds.input_shape)
            if plan is not None and plan.cost < max_cost:
                found.append((key, plan))
        return sorted(found, key=lambda kp: (kp[1].cost, kp[0]))[:limit]

    def carried(self, key: str, plan: Plan, dataset: str, labels, calibrate: torch.Tensor | None = None
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The base weights for `labels` from generic network `key`, carried over by `plan` (where a step is lossy,
        calibrated on the samples `calibrate`, the request's support samples: transform.py), and the origin of
        each row (R,): the index, in its layer of the source, of the neuron it stands for (output rows: their own)."""
        src = key.rpartition("@")[0]
        grouped = any(isinstance(x, (list, tuple)) and len(x) > 1 for x in labels)
        state = base_state(self.states[key], labels, src, group_inputs(dataset) if grouped else None)
        n = len(labels)
        origin = [torch.arange(w) for w in plan.dst.hidden]
        if plan.steps:
            shape = load_dataset(dataset).input_shape
            state, origin = transform_state(state, plan.src.with_outputs(n), plan.dst.with_outputs(n), shape, shape,
                                            calibrate=None if plan.exact else calibrate, return_origin=True)
        return state, torch.cat([*origin, torch.arange(n)])

    def base(self, arch: ArchSpec | str, dataset: str, labels, calibrate: torch.Tensor | None = None
             ) -> dict[str, torch.Tensor] | None:
        """The base weights of a request, or None when the bank has no generic network it can be carried from."""
        found = self.base_with_origin(arch, dataset, labels, calibrate)
        return None if found is None else found[0]

    def base_with_origin(self, arch: ArchSpec | str, dataset: str, labels, calibrate: torch.Tensor | None = None):
        """(base weights, row origins) of a request (see `carried`), or None."""
        found = self.source(arch, dataset)
        if found is None:
            return None
        return self.carried(*found, dataset, labels, calibrate)


def encode_base(tokenizer, bank: GenericBank, arch: ArchSpec | str, dataset: str, labels, chunk_size: int,
                codes_per_chunk: int, carried: tuple[dict, torch.Tensor] | None = None,
                calibrate: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The base row codes (R, J, Q), per-layer side tokens (A,) and row origins (R,) of a request (of `carried`, a
    (state, origins) pair, if given; else of the bank's base for it, calibrated on `calibrate`), or None without
    a generic network. `arch`: the API passes the request's ArchSpec, training a catalogue row's string (parsed
    here, once)."""
    spec = ArchSpec.parse(arch)
    carried = bank.base_with_origin(spec, dataset, labels, calibrate) if carried is None else carried
    if carried is None:
        return None
    state, origin = carried
    codes = tokenizer.encode(state, spec)
    lay = row_layout(spec, chunk_size, codes_per_chunk)
    rows = codes_to_rows(codes.indices, lay).view(len(lay), lay.max_chunks, lay.codes_per_chunk)
    return rows, codes.side, origin


def base_batch(bases: list, archs: list[str], cfg, rmax: int, jmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad the requests' bases (each `encode_base`'s result or None) into base (B, R, J, Q) codes (-1 none) and
    base_side (B, R): the side token of each row's layer shifted to 0..255, SIDE_VOCAB where none."""
    base = torch.full((len(bases), rmax, jmax, cfg.codes.codes_per_chunk), -1, dtype=torch.int64)
    side = torch.full((len(bases), rmax), SIDE_VOCAB, dtype=torch.int64)
    for i, (b, arch) in enumerate(zip(bases, archs)):
        if b is None:
            continue
        rows, layer_side = b[0], b[1]
        base[i, : rows.shape[0], : rows.shape[1]] = rows
        if len(layer_side):
            lay = row_layout(arch, cfg.codes.chunk_size, cfg.codes.codes_per_chunk)
            side[i, : len(lay)] = layer_side[lay.layer_index] + SIDE_OFFSET
    return base, side


def origin_batch(bases: list, archs: list[str], cfg, rmax: int) -> torch.Tensor:
    """(B, R) the neuron index each row stands for: its base's origin (`encode_base`), else its own index."""
    out = torch.zeros(len(archs), rmax, dtype=torch.int64)
    for i, (b, arch) in enumerate(zip(bases, archs)):
        lay = row_layout(arch, cfg.codes.chunk_size, cfg.codes.codes_per_chunk)
        out[i, : len(lay)] = lay.row if b is None else b[2]
    return out
