"""Baselines that stand beside every generated figure of `igpg eval generator`, each a network of the query's own
architecture.

Used as is, no training:
- random: an untrained network (the architecture's default initialisation);
- retrieved (`nearest_trained`): the nearest training-split zoo network of the same architecture (most similar
  labels);
- zoo mean (`zoo_mean_net`): the element-wise mean of the weights of the training-split zoo networks of the same
  architecture and dataset (the weight-space average that weight generators are often compared with);
- generic rows (`generic_rows_net`): the zoo's generic network of the same hidden layers trained on all classes of
  the dataset, with its output rows selected for the requested labels (a grouped label gets a row fitted to
  the log-sum-exp of its classes' logits on unlabelled training inputs: `base_rows.group_rows`);
- generic group max (`generic_group_max`): that generic network with its logits maxed over each label's classes (not
  a linear head; for grouped labels the reference the generated network is held to); The strongest cheap baseline for class-subset tasks.
- transform: the zoo's generic network of the nearest training architecture carried over to the request's
  architecture by `igpg.transform` (widen by splitting, deepen with identity layers, narrow by importance, ...), its
  output rows selected for the labels: the learngene / Net2Net / FRONT family of training-free baselines; for a
  training architecture it is the generic-rows baseline itself;
- the GHN protocol ("Parameter Prediction for Unseen Deep Architectures", GHN-2): accuracy at step 0 and after one
  epoch of fine-tuning, beside one epoch from a random initialisation;
- the memorisation checks of "Generative Modeling of Weights: Generalization or Memorization?" (CVPR 2026): the
  generated network's distance to its nearest training checkpoint beside the distance between two seeds of one
  task, the nearest training checkpoint plus Gaussian noise of the size that matches the generator's distance, and
  the average of the k nearest training checkpoints.

"Training checkpoints" are the zoo networks the generator trained on (task, architecture and seed all "train") of
the query's architecture, dataset and number of outputs; for an architecture it never trained on, those of the
architecture its base is carried from, carried over the same way (so that distances are taken in one weight space).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from igpg.arch import ArchSpec
from igpg.data import Task, load_dataset
from igpg.evaluation.accuracy import accuracy
from igpg.generator.base_rows import GenericBank, base_state, group_inputs
from igpg.transform import transform_state
from igpg.zoo.catalogue import Catalogue

KNN = 3  # checkpoints averaged by the k-nearest baseline
EPOCH_LR, EPOCH_BATCH = 0.01, 64  # the zoo's own training settings (configs/zoo/default.yaml)


def flat(state: dict[str, torch.Tensor], spec: ArchSpec) -> torch.Tensor:
    """A state dict as one float32 vector, in the architecture's state_dict order."""
    return torch.cat([state[name].float().flatten() for name in spec.tensor_shapes()])


def unflat(vec: torch.Tensor, spec: ArchSpec) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for name, shape in spec.tensor_shapes().items():
        n = math.prod(shape)
        out[name] = vec[i : i + n].view(shape).clone()
        i += n
    return out



def _generic(zoo: Catalogue, query: dict) -> tuple[dict[str, torch.Tensor], str] | None:
    """The zoo's generic network of the query's hidden layers and dataset (state, architecture), or None."""
    spec = ArchSpec.parse(query["arch"])
    gen_arch = str(spec.with_outputs(load_dataset(query["dataset"]).num_classes))
    hits = zoo.rows("n.role='generic' AND n.arch=? AND t.dataset=?", (gen_arch, query["dataset"]))
    return (zoo.load(hits[0]["net_id"]).state_dict(), gen_arch) if hits else None


def generic_rows_net(zoo: Catalogue, query: dict) -> torch.nn.Module | None:
    """The generic-rows baseline for the query (None when the zoo has no generic network of those hidden layers)."""
    found = _generic(zoo, query)
    if found is None:
        return None
    generic, gen_arch = found
    return ArchSpec.parse(query["arch"]).load(base_state(generic, query["labels"], gen_arch,
                                                         group_inputs(query["dataset"])))


@torch.no_grad()
def generic_group_max(zoo: Catalogue, query: dict, test) -> float:
    """Test accuracy of the zoo's generic network of the query's hidden layers with its logits maxed over each
    label's classes (a grouped label scores as its best class): not a network of the query's architecture (no
    linear head computes a maximum), the reference for grouped labels; nan without a generic network."""
    found = _generic(zoo, query)
    if found is None:
        return float("nan")
    generic, gen_arch = found
    logits = ArchSpec.parse(gen_arch).load(generic).eval()(test.x)
    groups = [x if isinstance(x, list) else [x] for x in query["labels"]]
    pred = torch.stack([logits[:, g].max(1).values for g in groups], 1).argmax(1)
    return int((pred == test.y).sum()) / len(test.y)


def zoo_mean_net(zoo: Catalogue, query: dict, train_rows: list[dict]) -> torch.nn.Module | None:
    """The zoo-mean baseline: the mean weights of the training-split networks of the query's arch and dataset."""
    same = [r for r in train_rows if r["arch"] == query["arch"] and r["dataset"] == query["dataset"]]
    if not same:
        return None
    states = [zoo.load(r["net_id"]).state_dict() for r in same]
    return ArchSpec.parse(query["arch"]).load({k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]})


def nearest_trained(zoo: Catalogue, query: dict, train_rows: list[dict]) -> dict | None:
    """The retrieval baseline: the training-split network of the same architecture whose task is most similar
    (same ordered labels > most shared labels in the same positions > most shared classes)."""
    same = [r for r in train_rows if r["arch"] == query["arch"] and r["dataset"] == query["dataset"]]
    if not same:
        return None
    q = [tuple(x) if isinstance(x, list) else (x,) for x in query["labels"]]

    def score(r):
        lab = [tuple(x) if isinstance(x, list) else (x,) for x in r["labels"]]
        pos = sum(a == b for a, b in zip(q, lab))
        shared = len({c for x in q for c in x} & {c for x in lab for c in x})
        return (lab == q, pos, shared, r["val_acc"])

    return max(same, key=score)


class TrainingPool:
    """Flat weights of the training checkpoints per (architecture, dataset), built on first use."""

    def __init__(self, zoo: Catalogue, train_rows: list[dict], bank: GenericBank):
        self.zoo, self.bank = zoo, bank
        self.by_arch: dict[tuple[str, str], list[dict]] = {}
        for r in train_rows:
            self.by_arch.setdefault((r["arch"], r["dataset"]), []).append(r)
        self._cache: dict[tuple[str, str], tuple[torch.Tensor, list[dict]]] = {}

    def of(self, arch: str, dataset: str) -> tuple[torch.Tensor, list[dict]]:
        """(N, P) flat weights of the training checkpoints in `arch`'s weight space and their catalogue rows
        (N = 0 when there is no source architecture)."""
        key = (arch, dataset)
        if key not in self._cache:
            spec = ArchSpec.parse(arch)
            rows = self.by_arch.get(key, [])
            src = spec
            if not rows:  # an architecture never trained on: the checkpoints of its base's source, carried over
                found = self.bank.source(arch, dataset)
                if found is not None:
                    src = found[1].src.with_outputs(spec.num_outputs)
                    rows = self.by_arch.get((str(src), dataset), [])
            shape = load_dataset(dataset).input_shape
            vecs = []
            for r in rows:
                state = self.zoo.load(r["net_id"]).state_dict()
                if src != spec:
                    state = transform_state(state, src, spec, shape, shape)
                vecs.append(flat(state, spec))
            mat = torch.stack(vecs) if vecs else torch.zeros(0, spec.n_params)
            self._cache[key] = (mat, rows)
        return self._cache[key]


def memorisation(net: nn.Module, spec: ArchSpec, pool: TrainingPool, dataset: str, test, seed: int) -> dict:
    """The CVPR 2026 checks for one generated network: its distance to the nearest training checkpoint, and the
    test accuracy of that checkpoint + matched noise and of the mean of the k nearest."""
    mat, rows = pool.of(str(spec), dataset)
    if len(rows) == 0:
        return {"dist_nearest": float("nan"), "nearest_noise": float("nan"), "knn_mean": float("nan"),
                "nearest_task": None}
    vec = flat(net.state_dict(), spec)
    dist = (mat - vec).norm(dim=1)
    order = dist.argsort()
    nearest = mat[order[0]]
    d = float(dist[order[0]])
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(nearest.shape, generator=gen)
    noisy = nearest + noise * (d / max(float(noise.norm()), 1e-12))  # as far from the checkpoint as the generator
    knn = mat[order[:KNN]].mean(0)
    return {"dist_nearest": d, "nearest_noise": accuracy(spec.load(unflat(noisy, spec)), test.x, test.y),
            "knn_mean": accuracy(spec.load(unflat(knn, spec)), test.x, test.y),
            "nearest_task": rows[int(order[0])]["task_id"]}


def seed_distance(zoo: Catalogue, task_id: str, arch: str) -> float:
    """The distance between two zoo networks of one task and architecture (seeds 0 and 1 where present)."""
    rows = sorted(zoo.rows("n.role='task' AND n.task_id=? AND n.arch=?", (task_id, arch)), key=lambda r: r["seed"])
    if len(rows) < 2:
        return float("nan")
    spec = ArchSpec.parse(arch)
    a, b = (flat(zoo.load(r["net_id"]).state_dict(), spec) for r in rows[:2])
    return float((a - b).norm())


def one_epoch(net: nn.Module, dataset: str, labels, seed: int) -> float:
    """Test accuracy after one epoch of Adam on the task's training split (a copy of `net` is trained)."""
    task = Task.from_classes(dataset, labels)
    ds = load_dataset(dataset)
    train, test = task.relabel(ds.train), task.relabel(ds.test)
    net = copy.deepcopy(net).train()
    opt = torch.optim.Adam(net.parameters(), lr=EPOCH_LR)
    order = torch.randperm(len(train.y), generator=torch.Generator().manual_seed(seed))
    for i in range(0, len(order), EPOCH_BATCH):
        idx = order[i : i + EPOCH_BATCH]
        loss = nn.functional.cross_entropy(net(train.x[idx]), train.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return accuracy(net.eval(), test.x, test.y)
