"""A short Adam run on a task's training split, and the test accuracy it reaches at chosen step counts: the training
behind the few-shot, fine-tuning and speed figures.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from igpg.data.datasets import Split
from igpg.errors import IgpgError
from igpg.evaluation.accuracy import accuracy


def adam_steps(net: nn.Module, train: Split, lr: float, batch_size: int, seed: int) -> Callable[[int], None]:
    """A function that trains `net` in place for k more Adam steps per call (cross-entropy, minibatches of
    `batch_size` drawn epoch by epoch with `seed`, the whole set when it is smaller)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = len(train.y)
    state = {"order": torch.randperm(n, generator=gen), "pos": 0}

    def run(k: int) -> None:
        net.train()
        for _ in range(k):
            if state["pos"] >= n:
                state["order"], state["pos"] = torch.randperm(n, generator=gen), 0
            idx = state["order"][state["pos"] : state["pos"] + batch_size]
            state["pos"] += batch_size
            loss = nn.functional.cross_entropy(net(train.x[idx]), train.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def train_curve(net: nn.Module, train: Split, test: Split, eval_steps: Sequence[int], lr: float, batch_size: int,
                seed: int) -> list[float]:
    """Train `net` in place with Adam (cross-entropy, minibatches of `batch_size` drawn epoch by epoch with `seed`,
    the whole set when it is smaller) and return its test accuracy after each step count in `eval_steps`."""
    steps = list(eval_steps)
    if steps != sorted(set(steps)) or (steps and steps[0] < 0):
        raise IgpgError(f"eval steps must be increasing and non-negative, got {steps}")
    run, done, accs = adam_steps(net, train, lr, batch_size, seed), 0, []
    for target in steps:
        run(target - done)
        done = target
        accs.append(accuracy(net, test.x, test.y))
    net.eval()
    return accs
