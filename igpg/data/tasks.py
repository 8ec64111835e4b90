"""Tasks: a dataset plus an ordered list of output labels, and the instructions that describe them.

A label is one class id or a group of class ids; output neuron i of a network means `task.labels[i]`::

    Task.from_classes("digits", [3, 5, 8])                            # subset: 3-way, neuron 0 = digit 3
    Task.from_classes("digits", "1+3+5+7+9,0+2+4+6+8")                # grouped: odd vs even (CLI form)
    Task.from_classes("digits", [[0, 1], 2])                          # mixed: {0, 1} vs 2

Instruction wordings live in `templates.yaml` (package data), not in code: `instructions(task, ds)` renders every
phrasing for the task's kind, with the labels always named in output order so the order can be read back from the
text. Named groupings (odd vs even, less than 5 vs 5 or more, ...) get their own wordings. `sample_tasks` draws
distinct tasks from a seed and `assign_split` puts a task in train / val / test by a hash, independent of the
order tasks were drawn in.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import numbers
import random
import re
from dataclasses import dataclass
from importlib import resources
from typing import Sequence, Union

import yaml

from igpg.data.datasets import Dataset, Split, num_classes_of
from igpg.errors import IgpgError

Label = tuple[int, ...]  # one output label: a class id, or a group of class ids (sorted inside the group)
ClassesLike = Union[str, Sequence[Union[int, Sequence[int]]]]

_CLASSES_HELP = "classes are distinct non-negative integers like 3,5,8 or groups like 1+3+5,0+2+4"


# --- parsing and validation ------------------------------------------------------------------------------------


def _parse_classes_string(text: str) -> list:
    """'3,5,8' -> [3, 5, 8]; '1+3+5,0+2' -> [[1, 3, 5], [0, 2]]; a JSON list is accepted too."""
    s = text.strip()
    if s.startswith("["):
        try:
            return json.loads(s)
        except (ValueError, RecursionError):  # also nesting too deep and integers too long to read
            raise IgpgError(f"classes {_shorten(text)!r} are not valid JSON; {_CLASSES_HELP}") from None
    if not s:
        raise IgpgError(f"no classes given; {_CLASSES_HELP}")
    labels: list = []
    for part in s.split(","):
        members = [m.strip() for m in part.split("+")]
        if any(not re.fullmatch(r"\d+", m) for m in members):
            raise IgpgError(f"bad class {part.strip()!r} in {text!r}; {_CLASSES_HELP}")
        if any(len(m) > 9 for m in members):  # int() refuses 4300+ digits; no dataset has a billion classes
            raise IgpgError(f"class {_shorten(part.strip())} is out of range; {_CLASSES_HELP}")
        ids = [int(m) for m in members]
        labels.append(ids if len(ids) > 1 else ids[0])
    return labels


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _class_id(value, num_classes: int, dataset: str) -> int:
    # bool is an int subclass and 3.0 == 3, but both mean the caller built the list wrongly: refuse them
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy ints are Integral, bools refused
        raise IgpgError(f"class {value!r} is not an integer; {_CLASSES_HELP}")
    value = int(value)
    if not 0 <= value < num_classes:
        raise IgpgError(f"class {value} is out of range for {dataset}; allowed: 0..{num_classes - 1}")
    return value


def _normalise_labels(labels, dataset: str) -> tuple[Label, ...]:
    """Validate labels against the dataset and return them as a tuple of sorted tuples."""
    num_classes = num_classes_of(dataset)
    if isinstance(labels, str):
        labels = _parse_classes_string(labels)
    if not isinstance(labels, (list, tuple)):
        raise IgpgError(f"classes must be a list like [3, 5, 8] or [[1, 3], [0, 2]], got {labels!r}")
    out: list[Label] = []
    for item in labels:
        if isinstance(item, (list, tuple)):
            if not item:
                raise IgpgError(f"empty group in {labels!r}; every group needs at least one class")
            group = tuple(sorted(_class_id(v, num_classes, dataset) for v in item))
            if len(set(group)) != len(group):
                raise IgpgError(f"group {list(item)!r} repeats a class; each class may appear once")
            out.append(group)
        else:
            out.append((_class_id(item, num_classes, dataset),))
    seen: dict[int, Label] = {}
    for label in out:
        for c in label:
            if c in seen:
                raise IgpgError(f"class {c} appears in two labels of {labels!r}; labels must not overlap")
            seen[c] = label
    if len(out) < 2:
        raise IgpgError(f"a task needs at least 2 labels, got {labels!r}; {_CLASSES_HELP}")
    return tuple(out)


# --- the task --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    dataset: str  # registry name, e.g. "digits"
    labels: tuple[Label, ...]  # ordered: output neuron i means labels[i]
    instruction: str = ""  # one phrasing; empty means "use default_instruction(task, dataset)"

    def __post_init__(self) -> None:
        if isinstance(self.dataset, Dataset):
            object.__setattr__(self, "dataset", self.dataset.name)
        object.__setattr__(self, "labels", _normalise_labels(self.labels, self.dataset))

    @classmethod
    def from_classes(cls, dataset: str | Dataset, classes: ClassesLike, instruction: str = "") -> Task:
        """Build a task from user-facing classes: [3, 5, 8], [[1, 3], [0, 2]], [[0, 1], 2], "3,5,8", "1+3,0+2"."""
        name = dataset.name if isinstance(dataset, Dataset) else dataset
        return cls(name, classes, instruction)  # __post_init__ parses and validates

    @property
    def kind(self) -> str:
        return "grouped" if any(len(label) > 1 for label in self.labels) else "subset"

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def task_id(self) -> str:
        """Stable id from dataset and labels (not the instruction): readable prefix + 8 hex of a sha256."""
        canonical = json.dumps({"dataset": self.dataset, "labels": [list(g) for g in self.labels]},
                               separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
        sep = "" if all(c < 10 for g in self.labels for c in g) else "+"  # "13579" reads fine; "1+12" must not be "112"
        readable = ".".join(sep.join(str(c) for c in g) for g in self.labels)
        if len(readable) > 48:  # many-way tasks: the hash carries identity, the prefix only helps a reader
            readable = readable[:45] + "..."
        prefix = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{self.dataset}-{readable}")  # safe in file names
        return f"{prefix}-{digest}"

    def classes_json(self) -> str:
        """Labels as the user-facing nested list: [3,5,8] or [[1,3,5,7,9],[0,2,4,6,8]]; from_classes reads it back."""
        return json.dumps([g[0] if len(g) == 1 else list(g) for g in self.labels], separators=(",", ":"))

    def relabel(self, split: Split) -> Split:
        """Keep samples whose class is in some label; y becomes the index of that label."""
        import torch

        size = max(max(c for g in self.labels for c in g), int(split.y.max()) if len(split.y) else 0) + 1
        lookup = torch.full((size,), -1, dtype=torch.int64)  # class id -> label index, -1 = not in the task
        for i, group in enumerate(self.labels):
            lookup[list(group)] = i
        new_y = lookup[split.y]
        keep = new_y >= 0
        return Split(x=split.x[keep], y=new_y[keep])


# --- templates -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phrasing:
    template_id: str  # stable id from templates.yaml, e.g. "subset.classify"
    text: str  # the rendered instruction
    heldout: bool  # kept out of training to measure generalisation to unseen wordings


@functools.lru_cache(maxsize=1)
def load_templates() -> dict:
    """The parsed templates.yaml (package data)."""
    text = resources.files("igpg.data").joinpath("templates.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _dataset_name(dataset: str | Dataset) -> str:
    return dataset.name if isinstance(dataset, Dataset) else dataset


def named_groupings(dataset: str | Dataset) -> dict[str, tuple[Label, ...]]:
    """Named groupings (e.g. odd_even) that apply to this dataset, name -> labels."""
    name = _dataset_name(dataset)
    out: dict[str, tuple[Label, ...]] = {}
    for family in load_templates()["named_groupings"].values():
        if name in family["datasets"]:
            for gname, g in family["groupings"].items():
                out[gname] = tuple(tuple(sorted(label)) for label in g["labels"])
    return out


def named_grouping_of(task: Task) -> str | None:
    """The name of the named grouping equal to this task's labels, if any."""
    for gname, labels in named_groupings(task.dataset).items():
        if labels == task.labels:
            return gname
    return None


def _join(items: list[str], last: str) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"


def label_texts(task: Task, dataset: Dataset) -> list[str]:
    """How each label is written in instructions: "3" for a class, "{1, 3, 5}" for a group."""
    names = dataset.class_names
    return [names[g[0]] if len(g) == 1 else "{" + ", ".join(names[c] for c in g) + "}" for g in task.labels]


def instructions(task: Task, dataset: Dataset) -> list[Phrasing]:
    """Every phrasing of the task's kind, rendered: named-grouping wordings first, then the generic ones."""
    if dataset.name != task.dataset:
        raise IgpgError(f"task is for dataset {task.dataset!r} but dataset {dataset.name!r} was given")
    texts = label_texts(task, dataset)
    context = {
        "description": dataset.description,
        "n": task.num_labels,
        "labels": _join(texts, "and"),
        "labels_or": _join(texts, "or"),
        "labels_vs": " vs ".join(texts),
    }
    templates = load_templates()
    entries: list[dict] = []
    if task.kind == "grouped":
        gname = named_grouping_of(task)
        for family in templates["named_groupings"].values():
            if gname is not None and task.dataset in family["datasets"] and gname in family["groupings"]:
                entries += family["groupings"][gname]["phrasings"]
    entries += templates[task.kind]
    return [Phrasing(e["id"], e["text"].format(**context), bool(e.get("heldout", False))) for e in entries]


def default_instruction(task: Task, dataset: Dataset) -> str:
    """The first phrasing that is not held out."""
    return next(p.text for p in instructions(task, dataset) if not p.heldout)


# --- sampling and splitting ------------------------------------------------------------------------------------


def _ordered_partitions(m: int, k: int) -> int:
    """Ways to split m distinct classes into k ordered non-empty groups (surjections m -> k)."""
    return sum((-1) ** j * math.comb(k, j) * (k - j) ** m for j in range(k + 1))


def _grouped_ways(min_ways: int, max_ways: int, c: int) -> range:
    # random groupings have 2 or 3 groups, and fewer groups than classes (k groups of more than k classes)
    return range(max(2, min_ways), min(3, max_ways, c - 1) + 1)


def _count_subset(c: int, min_ways: int, max_ways: int) -> int:
    return sum(math.perm(c, k) for k in range(min_ways, max_ways + 1))


def _count_grouped(c: int, min_ways: int, max_ways: int) -> int:
    # m > k classes in k groups, so at least one group has two classes: never a subset task
    return sum(math.comb(c, m) * _ordered_partitions(m, k)
               for k in _grouped_ways(min_ways, max_ways, c) for m in range(k + 1, c + 1))


def _random_subset(rng: random.Random, c: int, min_ways: int, max_ways: int) -> tuple[Label, ...]:
    k = rng.randint(min_ways, max_ways)
    return tuple((cls,) for cls in rng.sample(range(c), k))  # rng.sample order is random: so is the label order


def _random_grouping(rng: random.Random, c: int, ways: range) -> tuple[Label, ...]:
    k = rng.choice(ways)
    m = rng.randint(k + 1, c)
    classes = rng.sample(range(c), m)
    groups: list[list[int]] = [[cls] for cls in classes[:k]]  # one class each first, so no group is empty
    for cls in classes[k:]:
        groups[rng.randrange(k)].append(cls)
    return tuple(tuple(sorted(g)) for g in groups)


def _enumerate_kind(kind: str, c: int, min_ways: int, max_ways: int):
    """Every task of a kind, for the end of sampling when random draws keep hitting used ones."""
    if kind == "subset":
        for k in range(min_ways, max_ways + 1):
            for perm in itertools.permutations(range(c), k):
                yield tuple((x,) for x in perm)
    else:
        for k in _grouped_ways(min_ways, max_ways, c):
            for m in range(k + 1, c + 1):
                for classes in itertools.combinations(range(c), m):
                    for assign in itertools.product(range(k), repeat=m):
                        if len(set(assign)) == k:
                            yield tuple(tuple(x for x, a in zip(classes, assign) if a == g) for g in range(k))


def sample_tasks(dataset: Dataset, n: int, rng_seed: int, min_ways: int = 2, max_ways: int = 10,
                 grouped_fraction: float = 0.2) -> list[Task]:
    """`n` distinct tasks, the same list for the same arguments in every process.

    round(n * grouped_fraction) tasks are grouped: half the draws pick a named grouping (while unused ones fit),
    the rest partition a random subset of more than k classes into k = 2 or 3 groups. The others are subset tasks
    with a uniform number of ways in [min_ways, max_ways] and a random class order.
    """
    c = dataset.num_classes
    if not 2 <= min_ways <= max_ways <= c:
        raise IgpgError(f"need 2 <= min_ways <= max_ways <= {c} classes of {dataset.name}; "
                        f"got min_ways={min_ways}, max_ways={max_ways}")
    if not 0.0 <= grouped_fraction <= 1.0:
        raise IgpgError(f"grouped_fraction must be in [0, 1], got {grouped_fraction}")
    if n < 0:
        raise IgpgError(f"number of tasks must be >= 0, got {n}")
    n_grouped = round(n * grouped_fraction)
    counts = {"subset": n - n_grouped, "grouped": n_grouped}
    possible = {"subset": _count_subset(c, min_ways, max_ways), "grouped": _count_grouped(c, min_ways, max_ways)}
    for kind in counts:
        if counts[kind] > possible[kind]:
            raise IgpgError(f"asked for {counts[kind]} distinct {kind} tasks on {dataset.name} with "
                            f"{min_ways}..{max_ways} ways, but only {possible[kind]} exist")

    rng = random.Random(rng_seed)
    ways = _grouped_ways(min_ways, max_ways, c)
    named = [labels for labels in named_groupings(dataset).values() if len(labels) in ways]
    kinds = ["grouped"] * counts["grouped"] + ["subset"] * counts["subset"]
    rng.shuffle(kinds)
    used: set[tuple[Label, ...]] = set()
    tasks: list[Task] = []
    for kind in kinds:
        for _attempt in range(1000):
            if kind == "subset":
                labels = _random_subset(rng, c, min_ways, max_ways)
            elif named and rng.random() < 0.5:
                labels = rng.choice(named)
            else:
                labels = _random_grouping(rng, c, ways)
            if labels not in used:
                break
        else:  # the space of this kind is nearly used up (it is small): take the first unused one in a fixed order
            labels = next(t for t in _enumerate_kind(kind, c, min_ways, max_ways) if t not in used)
        used.add(labels)
        tasks.append(Task(dataset.name, labels))
    return tasks


def assign_split(task_id: str, seed: int, test_fraction: float, val_fraction: float = 0.0) -> str:
    """"train", "val" or "test" for a task, from a hash of (seed, task_id): stable, independent of order."""
    if not (0.0 <= test_fraction <= 1.0 and 0.0 <= val_fraction <= 1.0 and test_fraction + val_fraction <= 1.0):
        raise IgpgError(f"split fractions must be in [0, 1] and sum to at most 1; "
                        f"got test_fraction={test_fraction}, val_fraction={val_fraction}")
    digest = hashlib.sha256(f"{seed}:{task_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"
