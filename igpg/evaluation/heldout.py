"""Shared pieces of the evaluation suite: guarded held-out queries, a small Adam loop that records test accuracy
at chosen steps, mean ± std over seeds, result files.

Held-out means held out: every figure the suite reports on held-out tasks comes from `heldout_queries` (selected
by the zoo catalogue's split flags) and is checked again by `guard` (igpg.evaluation.check_heldout) right before it
is computed, so a caller that passes its own queries cannot report training networks as held out.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from igpg.data import Task, load_dataset
from igpg.data.datasets import Split
from igpg.errors import IgpgError
from igpg.evaluation.accuracy import accuracy
from igpg.evaluation.generator_quality import CATEGORIES, _queries, check_heldout
from igpg.io import atomic_write_text
from igpg.zoo.catalogue import Catalogue

HELDOUT_TASKS = "held-out tasks"  # the category every few-shot / fine-tuning / speed figure is reported on
Progress = Callable[[str, int, int], None]


def heldout_queries(zoo: Catalogue, limit: int, category: str = HELDOUT_TASKS, seed: int = 0) -> list[dict]:
    """Up to `limit` queries (one per task x architecture, with the zoo rows of both) of a held-out category."""
    if category not in CATEGORIES:
        raise IgpgError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    queries = _queries(zoo, CATEGORIES[category], limit, seed=seed)
    guard(category, queries)
    return queries


def guard(category: str, queries: list[dict]) -> None:
    """Refuse (IgpgError) to report `category` on queries whose zoo networks are flagged otherwise."""
    if not queries:
        raise IgpgError(f"no {category} queries in this zoo: nothing to report")
    check_heldout(category, [r for q in queries for r in q["rows"]])


def task_splits(query: dict) -> tuple[Task, Split, Split]:
    """The query's task and its relabelled train and test splits."""
    task = Task.from_classes(query["dataset"], query["labels"])
    ds = load_dataset(query["dataset"])
    return task, task.relabel(ds.train), task.relabel(ds.test)


def instruction_for(query: dict, seed: int) -> str:
    phrasings = query["instructions"] or [query["instruction"]]
    return phrasings[seed % len(phrasings)]


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


def mean_std(values: Sequence[float]) -> dict:
    vals = [v for v in values if v == v]
    if not vals:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": statistics.mean(vals), "std": statistics.pstdev(vals), "n": len(vals)}


def over_seeds(per_query: list[list[float]]) -> dict:
    """per_query[i][s] = accuracy of query i at seed s -> mean over queries per seed, then mean ± std over seeds."""
    by_seed = list(zip(*per_query))
    return mean_std([statistics.mean(accs) for accs in by_seed])


def fmt(stat: dict) -> str:
    return "n/a" if stat["n"] == 0 else f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def write_results(results: Path, stem: str, report: dict, markdown: str) -> list[Path]:
    results.mkdir(parents=True, exist_ok=True)
    paths = [results / f"{stem}.json", results / f"{stem}.md"]
    atomic_write_text(paths[0], json.dumps(json_safe(report), indent=1))
    atomic_write_text(paths[1], markdown)
    return paths


def json_safe(obj):
    """NaN and inf as null: the files are plain JSON any reader accepts."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
