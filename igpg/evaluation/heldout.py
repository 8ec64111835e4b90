"""Held-out means held out: the categories every figure is reported on, selected by the zoo catalogue's split flags
and checked again (`check_heldout`, `guard`) right before a figure is computed, so a caller that passes its own
queries cannot report training networks as held out.

Categories (one query per distinct task x architecture, its reference = the zoo networks of that task and arch):
- seen tasks: training tasks on training architectures, training seeds (can the generator reproduce?);
- held-out seeds: training tasks and architectures, networks of a seed never trained on;
- held-out phrasings: training tasks, instructions from the phrasings held out of training;
- held-out tasks: tasks (label sets, orders, groupings) never seen in training, training architectures;
- held-out architectures: architectures never trained on, sorted by where they sit against the trained ones
  (`ARCH_KINDS`);
- held-out dataset:NAME: every network of NAME, for a generator trained without NAME (`exclude_datasets`).

The generator's own checkpoint records which zoo and splits it trained on (`train_split` in its config is the zoo's
training split).
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import TYPE_CHECKING, Callable

from igpg.coverage import arch_kind
from igpg.data import Task, load_dataset
from igpg.data.datasets import Split
from igpg.errors import IgpgError
from igpg.zoo.catalogue import Catalogue

if TYPE_CHECKING:
    from igpg.generator.api import ParameterGenerator


HELDOUT_ARCH = "n.role='task' AND a.split='test'"
# held-out architectures, by where they sit against the architectures the generator trained on (`arch_kind`)
ARCH_KINDS = {
    "held-out architectures": "inside",  # widths, depth, activation and kernel all within the trained range
    "narrower architectures": "narrower",
    "wider architectures": "wider",
    "deeper architectures": "deeper",
    "shallower architectures": "shallower",
    "other activations": "activation",
    "other kernels": "kernel",
    "other families": "family",  # a family never trained on this dataset
}
CATEGORIES = {
    "seen tasks": "n.role='task' AND t.split='train' AND a.split='train' AND n.seed_split='train'",
    "held-out seeds": "n.role='task' AND t.split='train' AND a.split='train' AND n.seed_split='test'",
    "held-out phrasings": "n.role='task' AND t.split='train' AND a.split='train' AND n.seed_split='train'",
    "held-out tasks": "n.role='task' AND t.split='test' AND a.split='train'",
    **{name: HELDOUT_ARCH for name in ARCH_KINDS},
}
# what each held-out category requires of every network it reports on (catalogue flags)
REQUIRED_FLAGS = {
    "seen tasks": {"task_split": "train", "arch_split": "train", "seed_split": "train"},
    "held-out seeds": {"task_split": "train", "arch_split": "train", "seed_split": "test"},
    "held-out phrasings": {"task_split": "train", "arch_split": "train", "seed_split": "train"},
    "held-out tasks": {"task_split": "test", "arch_split": "train"},
    **{name: {"arch_split": "test"} for name in ARCH_KINDS},
}
DEFAULT_CATEGORIES = ("seen tasks", "held-out seeds", "held-out phrasings", "held-out tasks", *ARCH_KINDS)
# the networks a generator trains on: retrieval, the zoo mean and the memorisation checks draw only on them
TRAIN_ONLY = "n.role='task' AND t.split='train' AND a.split='train' AND n.seed_split='train'"
LODO = "held-out dataset:"  # "held-out dataset:NAME": every network of NAME, for a generator trained without NAME


def category_query(name: str, gen: ParameterGenerator) -> str:
    """The catalogue condition of a category; for a leave-one-dataset-out category, refuses a generator whose
    training did not leave that dataset out (its checkpoint records `exclude_datasets`)."""
    if name.startswith(LODO):
        dataset = name[len(LODO):]
        if not dataset.isidentifier():
            raise IgpgError(f"category {name!r}: expected 'held-out dataset:NAME' with a dataset name")
        excluded = gen.model.cfg.train.exclude_datasets
        if dataset not in excluded:
            raise IgpgError(f"refusing to report {name!r}: generator {gen.name} was trained with "
                            f"{dataset} networks (exclude_datasets: {list(excluded) or 'none'})")
        return f"n.role='task' AND t.dataset='{dataset}'"
    if name not in CATEGORIES:
        raise IgpgError(f"unknown category {name!r}; known: {', '.join(CATEGORIES)}, {LODO}NAME")
    return CATEGORIES[name]


def select_queries(zoo: Catalogue, where: str, limit: int, seed: int, keep: Callable[[dict], bool] | None = None
                   ) -> list[dict]:
    """Up to `limit` queries of the catalogue rows matching `where` (and `keep`): one per task x architecture, each
    the first row's fields plus "rows" (all of them), picked in an order shuffled by `seed`."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in zoo.rows(where):
        if keep is None or keep(r):
            groups[(r["task_id"], r["arch"])].append(r)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    return [{"rows": groups[k], **groups[k][0]} for k in keys[:limit]]


def check_heldout(category: str, rows: list[dict]) -> None:
    """Refuse to report a figure for `category` computed on networks whose catalogue flags say otherwise (for
    instance a training task under "held-out tasks"): held-out means held out."""
    need = REQUIRED_FLAGS.get(category)
    if need is None:
        raise IgpgError(f"unknown category {category!r}; known: {', '.join(REQUIRED_FLAGS)}")
    for r in rows:
        for key, value in need.items():
            if r.get(key) != value:
                raise IgpgError(f"refusing to report {category!r}: network {r.get('net_id')} has {key}="
                                f"{r.get(key)!r} in the zoo catalogue, not {value!r}")


def category_queries(zoo: Catalogue, name: str, gen: ParameterGenerator, limit: int,
                     trained: set[tuple[str, str]]) -> list[dict]:
    """Up to `limit` queries of a category (one per task x architecture), held-out flags checked."""
    keep = None
    if name in ARCH_KINDS:
        kind = ARCH_KINDS[name]
        keep = lambda r: arch_kind(r["arch"], r["dataset"], trained) == kind  # noqa: E731
    queries = select_queries(zoo, category_query(name, gen), limit, seed=len(name), keep=keep)
    if not name.startswith(LODO):  # a dataset left out is held out whatever its catalogue flags say
        check_heldout(name, [r for q in queries for r in q["rows"]])
    return queries


HELDOUT_TASKS = "held-out tasks"  # the category every few-shot / fine-tuning / speed figure is reported on
Progress = Callable[[str, int, int], None]  # (category or piece, done, total)


def heldout_queries(zoo: Catalogue, limit: int, category: str = HELDOUT_TASKS, seed: int = 0) -> list[dict]:
    """Up to `limit` queries (one per task x architecture, with the zoo rows of both) of a held-out category."""
    if category not in CATEGORIES:
        raise IgpgError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    queries = select_queries(zoo, CATEGORIES[category], limit, seed=seed)
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
