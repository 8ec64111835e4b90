"""Train one zoo network: a `Job` in, a `Result` (best weights by validation accuracy, metrics) out.

Runs in a worker process (or a Ray task); it never touches the zoo directory except to read the generic network it
starts from (a Ray task is handed those weights instead).
Everything random derives from the job (seeded from its ids), so a network trains the same with 1 or N workers.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file
from torch import nn

from igpg.arch import ArchSpec
from igpg.data import Task, load_dataset
from igpg.evaluation.accuracy import accuracy
from igpg.transform import transform_state
from igpg.zoo.config import TrainConfig


def exit_with_parent(parent: int) -> None:
    """Pool-worker initializer: end this worker as soon as the build process `parent` is gone.

    A SIGKILLed build cannot shut its pool down, and a worker never sees end-of-file on the job queue (it holds the
    queue's write end itself): it would wait forever, holding memory and the build's stdout/stderr pipes."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="igpg-exit-with-parent", daemon=True).start()


LINEAGE_NOISE = 0.05  # split copies' incoming rows get this much noise (x the layer's std): copies that stay equal
# get equal gradients and never become distinct neurons (Net2Net adds noise for the same reason)


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, the same in every process (unlike `hash`)."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:15], 16)


@dataclass(frozen=True)
class Job:
    net_id: str
    role: str  # "task" | "generic" (trained on all classes, the start of init="generic" task networks) | "probe"
    # (a task network's twin trained on its output layer only: its hidden layers stay the generic network's)
    task: Task
    arch: str
    seed: int
    seed_split: str  # "train" | "test" (a held-out seed of a training task)
    init: str  # independent | shared | generic
    train: TrainConfig
    keep_checkpoints: int = 0
    generic_file: str | None = None  # weights of the generic network (role task, init generic), or of the lineage
    # root (role generic, init lineage)
    parent_arch: str | None = None  # init lineage: the root's architecture, carried over to `arch`


@dataclass
class Result:
    job: Job
    state: dict[str, torch.Tensor]
    metrics: dict[str, float | int]
    checkpoints: list[tuple[int, dict[str, torch.Tensor]]] = field(default_factory=list)


def initial_network(job: Job, generic_state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The network a job starts training from, following its init mode.

    `generic_state`: the generic network's weights, when the caller has them (a Ray worker on another machine
    cannot read the driver's `job.generic_file`); else they are read from `job.generic_file`."""
    spec = ArchSpec.parse(job.arch)
    if job.role == "generic" and job.init == "lineage":  # the root's generic network, carried over, then trained
        source = generic_state if generic_state is not None else load_file(job.generic_file)
        shape = load_dataset(job.task.dataset).input_shape
        state = transform_state(source, ArchSpec.parse(job.parent_arch), spec, shape, shape,
                                noise=LINEAGE_NOISE, seed=stable_seed("lineage", job.arch, job.seed))
        return spec.load(state).train()
    if job.init == "independent" or job.role == "generic":
        torch.manual_seed(stable_seed("init", job.task.task_id, job.arch, job.seed))
        return spec.build()
    ds = load_dataset(job.task.dataset)
    wide = spec.with_outputs(ds.num_classes)  # one output row per class: the task's rows are taken from it
    if job.init == "shared":
        torch.manual_seed(stable_seed("shared-init", str(wide), job.seed))
        source = wide.build().state_dict()
    else:  # generic
        source = generic_state if generic_state is not None else load_file(job.generic_file)
    net = spec.build()
    state = {k: v.clone() for k, v in source.items() if not k.startswith("head.")}
    rows = [list(label) for label in job.task.labels]
    # a grouped label starts from the mean of its classes' rows: a reasonable start, refined by fine-tuning
    state["head.weight"] = torch.stack([source["head.weight"][r].mean(0) for r in rows])
    state["head.bias"] = torch.stack([source["head.bias"][r].mean(0) for r in rows])
    net.load_state_dict(state, strict=True)
    return net


def train_job(job: Job, generic_state: dict[str, torch.Tensor] | None = None) -> Result:
    """Train with Adam and validation-based early stopping; return the best epoch's weights."""
    start = time.perf_counter()
    torch.set_num_threads(1)  # one core per worker: small nets gain nothing from more, and N workers share N cores
    ds = load_dataset(job.task.dataset)
    train, val, test = (job.task.relabel(ds.split(s)) for s in ("train", "val", "test"))
    net = initial_network(job, generic_state)
    cfg = job.train
    params = [p for n, p in net.named_parameters() if job.role != "probe" or n.startswith("head.")]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(stable_seed("order", job.net_id))
    best_acc, best_epoch = accuracy(net, val.x, val.y), 0
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    recent: list[tuple[int, dict[str, torch.Tensor]]] = []
    epoch = 0
    for epoch in range(1, cfg.max_epochs + 1):
        net.train()
        perm = torch.randperm(len(train.y), generator=gen)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = nn.functional.cross_entropy(net(train.x[idx]), train.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val_acc = accuracy(net, val.x, val.y)
        if job.keep_checkpoints:
            recent = (recent + [(epoch, {k: v.detach().clone() for k, v in net.state_dict().items()})])[
                -job.keep_checkpoints :
            ]
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= cfg.patience:
            break
    net.load_state_dict(best_state)
    metrics = {
        "epochs": epoch,
        "best_epoch": best_epoch,
        "train_acc": accuracy(net, train.x, train.y),
        "val_acc": best_acc,
        "test_acc": accuracy(net, test.x, test.y),
        "train_seconds": time.perf_counter() - start,
    }
    return Result(job, best_state, metrics, recent)
