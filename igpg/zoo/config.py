"""Zoo configuration: a YAML file read by `ZooFile`, a model on the shared config layer (igpg/config.py) as the
tokenizer and generator configs are: unknown or missing keys, wrong types and out-of-range values are one-line errors
naming the key, and `--set` reaches every key (`--set train.lr=3e-3`, `--set datasets.digits.tasks=20`).
`parse_zoo_config` then checks what spans keys and resolves the file to a `ZooConfig`, what the builder reads.

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
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from igpg.arch import ArchSpec
from igpg.config import Config
from igpg.data import Task, load_dataset
from igpg.errors import IgpgError

NonNegative = Annotated[int, Field(ge=0)]


def _name(text: str) -> str:
    if not text.strip():
        raise ValueError("must be a non-empty string")
    return text


Name = Annotated[str, AfterValidator(_name)]

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
InitMode = Literal[tuple(INIT_MODES)]
ProbeMode = Literal[tuple(PROBE_MODES)]


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


class DatasetSection(Config):
    """One dataset of the zoo (`datasets: {NAME: {...}}`)."""

    what = "zoo"
    tasks: int = Field(ge=0, le=100_000)  # how many tasks to sample
    include: tuple[tuple[int | tuple[int, ...], ...], ...] = ()  # tasks always in the zoo: [[3, 5, 8], [[1, 3], [0, 2]]]


class ArchSection(Config):
    """One architecture template (`archs: [{arch: ...}, ...]`); see `ArchEntry`."""

    what = "zoo"
    arch: str  # an ArchSpec string, input `*` allowed, output `*`: "mlp:*-32-*"
    heldout: bool = False  # trained only as the reference a generated network is compared with
    datasets: tuple[str, ...] | None = None  # only these of the zoo's datasets (None: all)
    root: bool = False  # with lineage: its family's root
    max_tasks: int | None = Field(None, ge=1, le=100_000)  # trained on the first N tasks of each dataset only


class SeedsSection(Config):
    """Training seeds of every network, and seeds held out of training (`seeds:`)."""

    what = "zoo"
    train: tuple[NonNegative, ...] = Field(min_length=1)
    heldout: tuple[NonNegative, ...] = ()


class ZooFile(Config):
    """A zoo config file as written; `parse_zoo_config` checks what spans keys and resolves it to a `ZooConfig`."""

    what = "zoo"
    name: Name
    seed: NonNegative = 0  # task sampling, split assignment, generic-network training
    init: InitMode = "generic"  # see `INIT_MODES`
    datasets: dict[str, DatasetSection] = Field(min_length=1)
    tasks: TaskSampling = TaskSampling()
    archs: tuple[ArchSection, ...] = Field(min_length=1)
    seeds: SeedsSection
    train: TrainConfig = TrainConfig()
    keep_checkpoints: int = Field(0, ge=0, le=100)  # also keep the last K epochs' weights of each run
    probes: ProbeMode = "none"  # see `PROBE_MODES`
    lineage: bool = False  # generic networks grown from one root per family and dataset


def load_zoo_config(path: str | Path, overrides: list[str] | None = None) -> ZooConfig:
    """Read and validate a zoo config, with `--set` overrides (`train.max_epochs=20`); every problem is an
    `IgpgError` naming the key."""
    from igpg.config import apply_overrides, read_yaml

    raw = apply_overrides(read_yaml(path, "zoo"), overrides, ZooFile)
    return parse_zoo_config(raw, where=Path(path).name)


def parse_zoo_config(raw: Any, where: str = "config") -> ZooConfig:
    """Validate a zoo config mapping (types, ranges and unknown keys on the config layer; then what spans keys:
    known datasets, architectures that fit them, distinct seeds, lineage roots) and resolve it."""
    f = ZooFile.parse(raw, where)

    def fail(key: str, message: str) -> IgpgError:
        return IgpgError(f"zoo config {where!r}: {key}: {message}")

    datasets = []
    for ds_name, entry in f.datasets.items():
        try:
            load_dataset(ds_name)  # unknown dataset -> IgpgError listing the known ones
            include = tuple(Task.from_classes(ds_name, [c if isinstance(c, int) else list(c) for c in classes])
                            for classes in entry.include)
        except IgpgError as e:
            raise fail(f"datasets.{ds_name}", str(e)) from None
        datasets.append(DatasetEntry(ds_name, entry.tasks, include))

    tasks = f.tasks
    if tasks.min_ways > tasks.max_ways:
        raise fail("tasks", f"min_ways {tasks.min_ways} > max_ways {tasks.max_ways}")

    archs = []
    for i, entry in enumerate(f.archs):
        unknown = [d for d in entry.datasets or () if d not in f.datasets]
        if unknown:
            raise fail(f"archs.{i}.datasets", f"{unknown[0]!r} is not one of the zoo's datasets")
        if entry.root and entry.heldout:
            raise fail(f"archs.{i}", "a lineage root cannot be held out")
        arch = ArchEntry(entry.arch, entry.heldout, entry.datasets, entry.root, entry.max_tasks)
        for ds in datasets:  # validate now: nothing is built from a config that fails later
            if entry.datasets is None or ds.name in entry.datasets:
                try:
                    arch.resolve(ds.name, max(2, tasks.min_ways))
                except IgpgError as e:
                    raise fail(f"archs.{i}", str(e)) from None
        archs.append(arch)
    if len({a.template for a in archs}) != len(archs):
        raise fail("archs", "the same architecture is listed twice")

    train_seeds, heldout_seeds = f.seeds.train, f.seeds.heldout
    if set(train_seeds) & set(heldout_seeds) or len(set(train_seeds)) != len(train_seeds):
        raise fail("seeds", "a seed is listed twice (train and held-out seeds must be distinct)")

    if f.probes != "none" and f.init != "generic":
        raise fail("probes", f"probe networks train on a generic network's features; they need init: generic, "
                             f"not {f.init!r}")
    if f.lineage and f.init != "generic":
        raise fail("lineage", f"generic networks grown from a root need init: generic, not {f.init!r}")
    if any(a.root for a in archs) and not f.lineage:
        raise fail("archs", "'root' entries need lineage: true")
    if f.lineage:
        for ds in datasets:
            roots: dict[str, list[str]] = {}
            for a in archs:
                if a.root and (a.datasets is None or ds.name in a.datasets):
                    roots.setdefault(a.template.partition(":")[0].strip().lower(), []).append(a.template)
            for fam, names in roots.items():
                if len(names) > 1:
                    raise fail("archs", f"with lineage, the {fam} architectures of {ds.name} have one root at most, "
                                        f"got {', '.join(names)}")
    return ZooConfig(f.name.strip(), f.seed, f.init, tuple(datasets), tasks, tuple(archs), train_seeds,
                     heldout_seeds, f.train, f.keep_checkpoints, f.probes, f.lineage)
