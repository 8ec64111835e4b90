"""Zoo configuration: a YAML file, validated strictly (unknown or missing keys are errors); its flat sections
(`train:`, `tasks:`) are models on the shared config layer (igpg/config.py), as the tokenizer and generator configs are.

Example (`configs/zoo/tiny.yaml`)::

    name: tiny
    seed: 0                      # task sampling, split assignment, generic-network training
    init: generic                # independent | shared | generic (see `INIT_MODES`)
    datasets:
      digits: {tasks: 4, include: [[3, 5, 8]]}
    tasks: {min_ways: 2, max_ways: 4, grouped_fraction: 0.25, test_fraction: 0.25}
    archs:
      - {arch: "mlp:*-16-*"}
      - {arch: "mlp:*-24-*", heldout: true}
    seeds: {train: [0, 1], heldout: [2]}
    train: {max_epochs: 10, patience: 3, lr: 0.003, batch_size: 64, weight_decay: 0.0}
    keep_checkpoints: 0
    probes: none                 # none | grouped | all (see `PROBE_MODES`)
    lineage: false               # true: generic networks grow from one root per family (see `ArchEntry.root`)

An architecture entry may also say `root: true` (lineage) and `max_tasks: N` (train it on the first N tasks only).

An architecture entry is an `ArchSpec` string whose input may be `*` (the dataset's input: its flat size for an
mlp, its CxHxW / CxL shape for a cnn) and whose output must be `*` (the task's number of labels).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from igpg.arch import ArchSpec
from igpg.config import Config
from igpg.data import Task, load_dataset
from igpg.errors import IgpgError

INIT_MODES = {
    "independent": "each network starts from its own random initialisation (seed, task and architecture)",
    "shared": "one random initialisation per architecture and seed, shared by every task",
    "generic": "fine-tuned from one generic network per architecture trained on all classes of the dataset, "
    "its output rows started from the generic rows of the task's labels (train-once-for-all, as in Tina)",
}

PROBE_MODES = {
    "none": "no probe networks",
    "grouped": "a probe network beside each task network of a grouped-label task",
    "all": "a probe network beside every task network",
}
"""A probe network (role "probe") is a task network's twin whose hidden layers stay the generic network's: only its
output layer is trained (a linear probe on the generic features, from the same start, data and seed). Generators
may learn from it (`probe_targets`); it is never a query or a baseline of the evaluation."""


class TrainConfig(Config):
    """How each zoo network is trained (`train:`)."""

    what = "zoo"
    max_epochs: int = Field(40, ge=1, le=10_000)  # upper bound; validation-based early stopping usually ends sooner
    patience: int = Field(5, ge=1, le=10_000)  # epochs without a better validation accuracy before stopping
    lr: float = Field(3e-3, ge=1e-7, le=10.0)  # Adam learning rate
    batch_size: int = Field(64, ge=1, le=1 << 20)
    weight_decay: float = Field(0.0, ge=0.0, le=10.0)


class TaskSampling(Config):
    """How tasks are drawn from each dataset (`tasks:`)."""

    what = "zoo"
    min_ways: int = Field(2, ge=2, le=1000)  # fewest output labels of a sampled task
    max_ways: int = Field(10, ge=2, le=1000)  # most output labels (capped by the dataset's classes)
    grouped_fraction: float = Field(0.2, ge=0.0, le=1.0)  # share of sampled tasks whose labels are groups of classes
    test_fraction: float = Field(0.15, ge=0.0, le=0.9)  # share of tasks held out of training (by a hash of the task id)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    tasks: int  # how many tasks to sample
    include: tuple[Task, ...] = ()  # tasks always in the zoo, given as class lists


@dataclass(frozen=True)
class ArchEntry:
    template: str  # e.g. "mlp:*-32-*"
    heldout: bool = False
    datasets: tuple[str, ...] | None = None  # None: every dataset of the zoo
    # with `lineage`: this family's root on its datasets (where a family has no root entry, its first training
    # entry is the root). The root's generic network is trained from a random init; every other generic network of the family and dataset starts from the root's, carried to its own
    # architecture by `igpg.transform` (widened by splitting, deepened by identity layers, narrowed by importance),
    # and is then trained the same way. Neuron j of layer l then means the same thing across the zoo's
    # architectures (what a generator needs to learn from one architecture for another)
    root: bool = False
    # train this architecture on at most this many tasks of each dataset (the first in the plan's fixed order;
    # None: all): a held-out architecture needs only enough reference networks for the evaluation's queries
    max_tasks: int | None = None

    def resolve(self, dataset: str, num_labels: int) -> ArchSpec:
        """The concrete architecture for one dataset and task size."""
        ds = load_dataset(dataset)
        family, sep, rest = self.template.partition(":")
        if not sep:
            raise IgpgError(f"bad architecture template {self.template!r}: expected e.g. 'mlp:*-32-*'")
        fam = family.strip().lower()
        in_str = str(ds.num_features) if fam == "mlp" else "x".join(str(s) for s in ds.input_shape)
        dims, _, opts = rest.partition(":")
        parts = dims.split("-")
        if parts[-1].strip() != "*":
            raise IgpgError(f"bad architecture template {self.template!r}: the output size must be '*' (the task's labels)")
        parts[-1] = str(num_labels)
        if parts[0].strip() == "*":
            parts[0] = in_str
        text = f"{fam}:{'-'.join(parts)}" + (f":{opts}" if opts else "")
        spec = ArchSpec.parse(text)
        try:
            spec.check_compatible(ds.input_shape, num_labels)
        except IgpgError as e:
            raise IgpgError(f"architecture {self.template!r} does not fit dataset {dataset!r}: {e}") from None
        return spec


@dataclass(frozen=True)
class ZooConfig:
    name: str
    seed: int
    init: str
    datasets: tuple[DatasetEntry, ...]
    tasks: TaskSampling
    archs: tuple[ArchEntry, ...]
    train_seeds: tuple[int, ...]
    heldout_seeds: tuple[int, ...]
    train: TrainConfig = field(default_factory=TrainConfig)
    keep_checkpoints: int = 0  # also keep the last K epochs' weights of each run, as p-diff collects them
    probes: str = "none"  # none | grouped | all (see `PROBE_MODES`); needs init generic
    lineage: bool = False  # generic networks grown from one root per family and dataset (`ArchEntry.root`)

    def to_json(self) -> str:
        d = asdict(self)  # the sections on the config layer are pydantic models: dumped as plain values
        d["train"], d["tasks"] = self.train.to_dict(), self.tasks.to_dict()
        d["datasets"] = [
            {"name": e.name, "tasks": e.tasks, "include": [json.loads(t.classes_json()) for t in e.include]}
            for e in self.datasets
        ]
        return json.dumps(d, sort_keys=True)


_TOP_KEYS = {"name", "seed", "init", "datasets", "tasks", "archs", "seeds", "train", "keep_checkpoints", "probes",
             "lineage"}
_REQUIRED = {"name", "datasets", "archs", "seeds"}


def _check_keys(where: str, got: dict, allowed: set[str], required: set[str] = frozenset()) -> None:
    if not isinstance(got, dict):
        raise IgpgError(f"{where}: expected a mapping, got {type(got).__name__}")
    unknown = sorted(set(got) - allowed)
    if unknown:
        raise IgpgError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(got))
    if missing:
        raise IgpgError(f"{where}: missing key {missing[0]!r}")


def _typed(where: str, value: Any, kind: type, lo: float | None = None, hi: float | None = None):
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise IgpgError(f"{where}: expected {kind.__name__}, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise IgpgError(f"{where}: {value!r} is outside [{lo}, {hi}]")
    return value


# the keys `--set` may reach (datasets.NAME.* and archs are reached where the file has them)
_SCHEMA = {(): _TOP_KEYS, ("train",): set(TrainConfig.model_fields), ("tasks",): set(TaskSampling.model_fields),
           ("seeds",): {"train", "heldout"}}


def load_zoo_config(path: str | Path, overrides: list[str] | None = None) -> ZooConfig:
    """Read and validate a zoo config, with `--set` overrides (`train.max_epochs=20`); every problem is an
    `IgpgError` naming the key."""
    from igpg.config import apply_overrides, read_yaml

    raw = apply_overrides(read_yaml(path, "zoo"), overrides, _SCHEMA)
    return parse_zoo_config(raw, where=Path(path).name)


def parse_zoo_config(raw: Any, where: str = "config") -> ZooConfig:
    _check_keys(where, raw, _TOP_KEYS, _REQUIRED)
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise IgpgError(f"{where}.name: expected a non-empty string")
    seed = _typed(f"{where}.seed", raw.get("seed", 0), int, 0)
    init = raw.get("init", "generic")
    if not isinstance(init, str) or init not in INIT_MODES:
        raise IgpgError(f"{where}.init: unknown mode {init!r}; allowed: {', '.join(INIT_MODES)}")

    if not isinstance(raw["datasets"], dict) or not raw["datasets"]:
        raise IgpgError(f"{where}.datasets: expected a mapping of dataset name -> {{tasks: N}}")
    datasets = []
    for ds_name, entry in raw["datasets"].items():
        w = f"{where}.datasets.{ds_name}"
        _check_keys(w, entry, {"tasks", "include"}, {"tasks"})
        load_dataset(ds_name)  # unknown dataset -> IgpgError listing the known ones
        n = _typed(f"{w}.tasks", entry["tasks"], int, 0, 100_000)
        include = entry.get("include") or []
        if not isinstance(include, list):
            raise IgpgError(f"{w}.include: expected a list of class lists, e.g. [[3, 5, 8]]")
        tasks = tuple(Task.from_classes(ds_name, classes) for classes in include)
        datasets.append(DatasetEntry(ds_name, n, tasks))

    tasks = TaskSampling.parse(raw.get("tasks") or {}, f"{where}.tasks")
    if tasks.min_ways > tasks.max_ways:
        raise IgpgError(f"{where}.tasks: min_ways {tasks.min_ways} > max_ways {tasks.max_ways}")

    if not isinstance(raw["archs"], list) or not raw["archs"]:
        raise IgpgError(f"{where}.archs: expected a non-empty list of {{arch: 'mlp:*-32-*'}} entries")
    archs = []
    for i, entry in enumerate(raw["archs"]):
        w = f"{where}.archs[{i}]"
        _check_keys(w, entry, {"arch", "heldout", "datasets", "root", "max_tasks"}, {"arch"})
        if not isinstance(entry["arch"], str):
            raise IgpgError(f"{w}.arch: expected a string like 'mlp:*-32-*'")
        heldout = entry.get("heldout", False)
        if not isinstance(heldout, bool):
            raise IgpgError(f"{w}.heldout: expected true or false")
        only = entry.get("datasets")
        if only is not None:
            if not isinstance(only, list) or not all(isinstance(d, str) for d in only):
                raise IgpgError(f"{w}.datasets: expected a list of dataset names")
            unknown = [d for d in only if d not in {e.name for e in datasets}]
            if unknown:
                raise IgpgError(f"{w}.datasets: {unknown[0]!r} is not one of the zoo's datasets")
            only = tuple(only)
        root = entry.get("root", False)
        if not isinstance(root, bool):
            raise IgpgError(f"{w}.root: expected true or false")
        if root and heldout:
            raise IgpgError(f"{w}: a lineage root cannot be held out")
        max_tasks = entry.get("max_tasks")
        if max_tasks is not None:
            max_tasks = _typed(f"{w}.max_tasks", max_tasks, int, 1, 100_000)
        arch = ArchEntry(entry["arch"], heldout, only, root, max_tasks)
        for ds in datasets:  # validate now: nothing is built from a config that fails later
            if only is None or ds.name in only:
                arch.resolve(ds.name, max(2, tasks.min_ways))
        archs.append(arch)
    if len({a.template for a in archs}) != len(archs):
        raise IgpgError(f"{where}.archs: the same architecture is listed twice")

    seeds = raw["seeds"]
    _check_keys(f"{where}.seeds", seeds, {"train", "heldout"}, {"train"})
    train_seeds = tuple(_typed(f"{where}.seeds.train", s, int, 0) for s in _as_list(seeds["train"], f"{where}.seeds.train"))
    heldout_seeds = tuple(
        _typed(f"{where}.seeds.heldout", s, int, 0) for s in _as_list(seeds.get("heldout", []), f"{where}.seeds.heldout")
    )
    if not train_seeds:
        raise IgpgError(f"{where}.seeds.train: at least one seed is needed")
    if set(train_seeds) & set(heldout_seeds) or len(set(train_seeds)) != len(train_seeds):
        raise IgpgError(f"{where}.seeds: a seed is listed twice (train and held-out seeds must be distinct)")

    train = TrainConfig.parse(raw.get("train") or {}, f"{where}.train")
    keep = _typed(f"{where}.keep_checkpoints", raw.get("keep_checkpoints", 0), int, 0, 100)
    probes = raw.get("probes", "none")
    if not isinstance(probes, str) or probes not in PROBE_MODES:
        raise IgpgError(f"{where}.probes: unknown mode {probes!r}; allowed: {', '.join(PROBE_MODES)}")
    if probes != "none" and init != "generic":
        raise IgpgError(f"{where}.probes: probe networks train on a generic network's features; they need "
                        f"init: generic, not {init!r}")
    lineage = raw.get("lineage", False)
    if not isinstance(lineage, bool):
        raise IgpgError(f"{where}.lineage: expected true or false")
    if lineage and init != "generic":
        raise IgpgError(f"{where}.lineage: generic networks grown from a root need init: generic, not {init!r}")
    if any(a.root for a in archs) and not lineage:
        raise IgpgError(f"{where}.archs: 'root' entries need lineage: true")
    if lineage:
        for ds in datasets:
            roots: dict[str, list[str]] = {}
            for a in archs:
                if a.root and (a.datasets is None or ds.name in a.datasets):
                    roots.setdefault(a.template.partition(":")[0].strip().lower(), []).append(a.template)
            for fam, names in roots.items():
                if len(names) > 1:
                    raise IgpgError(f"{where}.archs: with lineage, the {fam} architectures of {ds.name} have one root "
                                    f"at most, got {', '.join(names)}")
    return ZooConfig(name.strip(), seed, init, tuple(datasets), tasks, tuple(archs), train_seeds, heldout_seeds,
                     train, keep, probes, lineage)


def _as_list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise IgpgError(f"{where}: expected a list")
    return value
