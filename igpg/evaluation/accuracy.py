"""Accuracy of a network on a task: `igpg.evaluate(net, dataset="digits", classes=[3, 5, 8], split="test")`."""

from __future__ import annotations

import torch
from torch import nn

from igpg.data import Task, load_dataset
from igpg.errors import IgpgError


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> float:
    """Top-1 accuracy of `net` on flat inputs `x` (N, D) with label indices `y` (N,)."""
    if len(y) == 0:
        raise IgpgError("no samples to evaluate on")
    was_training = net.training
    net.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += (net(x[i : i + batch_size]).argmax(-1) == y[i : i + batch_size]).sum().item()
    net.train(was_training)
    return correct / len(y)


def evaluate(net: nn.Module, dataset: str, classes, split: str = "test", data_root: str | None = None) -> float:
    """Accuracy of `net` on the task (dataset + ordered labels) over one split; output neuron i means label i.
    `data_root`: the folder of a torchvision:<Name> dataset."""
    ds = load_dataset(dataset, None if data_root is None else str(data_root))
    task = Task.from_classes(dataset, classes)
    spec = getattr(net, "spec", None)
    if spec is not None:
        spec.check_compatible(ds.input_shape, task.num_labels)
    data = task.relabel(ds.split(split))
    return accuracy(net, data.x, data.y)

