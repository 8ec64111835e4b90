"""Bring your own zoo: `igpg zoo import SRC --out DIR` catalogues networks trained elsewhere.

Two layouts are read:

- **a folder plus a tasks file** (`SRC/tasks.jsonl`, `SRC/tasks.csv`, or `--tasks FILE`), one row per network:
  `file` (a path relative to the tasks file: `.safetensors`, or a torch state dict read with
  `torch.load(weights_only=True)`, never unpickled otherwise), `dataset`, `classes` (`3,5,8`, `1+3,0+2` or a JSON
  list), `arch` (an igpg architecture string), `accuracy` (its held-out test accuracy in [0, 1]); optional
  `instruction`, `seed` (default 0), `role` (`task`, or `generic` for a network of all classes in order, which a
  generator uses as its base), `train_accuracy`, `val_accuracy`.
- **the public Model Zoos layout** (Schürholt et al., NeurIPS 2022 Datasets and Benchmarks; one folder per model
  with `params.json`, `result.json` and `checkpoint_NNNNNN/checkpoints`): the newest checkpoint of each model is
  imported, its accuracies read from the `result.json` line of that epoch (percentages are divided by 100). The
  architecture comes from `params.json` (`model::type` MLP with `model::i_dim`, `model::h_dim`, `model::o_dim`,
  `model::nlin`), or from an igpg string under `arch`; the dataset from `dataset` there or `--dataset`; the classes
  from `classes` there, `--classes`, or all classes of the dataset in order. Their CNNs (convolutions with
  max-pooling and a two-layer head) are not igpg architectures and are refused.

Every network is checked before anything is written: the architecture parses and fits the dataset and the labels,
the tensors are floating point and finite and are exactly the architecture's (by name, or in order by shape: a
`module_list.0.weight`-style state dict is renamed to igpg's names). A bad row or file stops the import with one
line naming it, and nothing is written. Networks are then stored like `igpg zoo build`'s (`save_weights`, one
catalogue transaction each, under the zoo's lock), with split flags: held-out tasks by a hash of the task id
(`test_fraction`), held-out architectures and seeds as listed. Re-running the same import adds nothing twice.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from igpg.arch import ArchSpec
from igpg.data import Task, assign_split, instructions, load_dataset
from igpg.errors import IgpgError
from igpg.io import load_weights, sha256_file
from igpg.zoo.builder import PlannedTask, ZooPlan, _check_writable, _net_id, _register, _store
from igpg.zoo.catalogue import CHECKPOINTS, NETS, Catalogue, exclusive_lock
from igpg.zoo.train import Job, Result

TASK_FILES = ("tasks.jsonl", "tasks.csv")
ROLES = ("task", "generic")
_REQUIRED = ("file", "dataset", "classes", "arch", "accuracy")
_NLIN = {"relu": "relu", "tanh": "tanh", "gelu": "gelu", "silu": "silu"}  # Model Zoos' nlin -> igpg activation


@dataclass
class Entry:
    """One network to import, checked: where it came from, its task, architecture and numbers."""

    where: str  # for messages: "tasks.csv:3" or a model folder
    path: Path  # the weight file
    task: Task
    arch: str  # canonical
    test_acc: float
    train_acc: float
    val_acc: float
    seed: int = 0
    role: str = "task"
    epochs: int = 0
    rename: dict[str, str] = field(default_factory=dict)  # source tensor name -> igpg name, when they differ


@dataclass
class ImportReport:
    layout: str  # "tasks file" | "model zoos"
    found: int
    imported: int
    skipped: int  # already in the zoo
    removed_orphans: int
    seconds: float

    def summary(self, out: Path) -> str:
        return (f"imported {self.imported} networks into {out} ({self.layout} layout; {self.found} found, "
                f"{self.skipped} already there" + (f", {self.removed_orphans} orphan files removed"
                                                   if self.removed_orphans else "") + f"; {self.seconds:.1f} s)")


@dataclass(frozen=True)
class _ImportConfig:
    """What `_register` records of a build: a name and the settings, as JSON."""

    name: str
    settings: dict

    def to_json(self) -> str:
        return json.dumps({"import": self.settings}, sort_keys=True)


# ---- reading weights ---------------------------------------------------------------------------------------------


def read_state(path: Path) -> dict:
    """Tensors of a weight file: safetensors, or a torch state dict loaded with weights_only=True (no code runs)."""
    import torch

    if path.suffix == ".safetensors":
        state, _ = load_weights(path)  # headers checked, NaN and infinities refused
        return state
    if not path.is_file():
        raise IgpgError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it is about to refuse anyway
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; none may pass as weights
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        why = ("it holds objects other than tensors, which would run code to load" if "Weights only load failed" in first
               else first[:120])
        raise IgpgError(f"{path}: not a safetensors file or a weights-only torch state dict ({why})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):  # Lightning-style wrappers
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items()):
        raise IgpgError(f"{path}: not a state dict (a mapping of tensor names to tensors)")
    return dict(obj)


def check_state(state: dict, spec: ArchSpec, where: str) -> dict[str, str]:
    """The renaming that makes `state` exactly `spec`'s tensors ({} when the names already are igpg's).

    Refuses non-float or non-finite tensors, and tensors that are not the architecture's by name or, in order, by
    shape."""
    import torch

    for name, t in state.items():
        if not t.is_floating_point():
            raise IgpgError(f"{where}: tensor {name!r} is {str(t.dtype).removeprefix('torch.')}; expected floating-point weights")
        if not torch.isfinite(t.float()).all():  # float64 beyond float32's range becomes infinite when stored
            raise IgpgError(f"{where}: tensor {name!r} has NaN or infinite values")
    want = spec.tensor_shapes()
    have = {k: tuple(v.shape) for k, v in state.items()}
    if have == want:
        return {}
    if [s for s in have.values()] == list(want.values()):  # e.g. module_list.0.weight, module_list.2.weight, ...
        return dict(zip(have, want))
    got = ", ".join(f"{k} {list(s)}" for k, s in list(have.items())[:6]) + (" ..." if len(have) > 6 else "")
    raise IgpgError(f"{where}: tensors do not match architecture {spec} (expected "
                    f"{', '.join(f'{k} {list(s)}' for k, s in want.items())}; got {got})")


# ---- layout 1: a folder and a tasks file ---------------------------------------------------------------------------


def _rows_of(tasks_file: Path) -> Iterator[tuple[str, dict]]:
    try:
        text = tasks_file.read_text()
    except FileNotFoundError:
        raise IgpgError(f"tasks file {tasks_file} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise IgpgError(f"tasks file {tasks_file}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    if tasks_file.suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise IgpgError(f"{tasks_file}: missing column(s) {', '.join(missing)}; needs {', '.join(_REQUIRED)}")
        for row in reader:
            yield f"{tasks_file.name}:{reader.line_num}", {k: v for k, v in row.items() if v not in (None, "")}
        return
    if tasks_file.suffix != ".jsonl":
        raise IgpgError(f"tasks file {tasks_file} must end in .jsonl or .csv")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            raise IgpgError(f"{tasks_file.name}:{n}: not a JSON object") from None
        if not isinstance(row, dict):
            raise IgpgError(f"{tasks_file.name}:{n}: not a JSON object")
        yield f"{tasks_file.name}:{n}", row


def _number(row: dict, key: str, where: str, default=None, kind=float):
    value = row.get(key, default)
    if value is None:
        raise IgpgError(f"{where}: missing {key!r}")
    try:
        if isinstance(value, bool):
            raise ValueError
        number = kind(value)
        if kind is int and str(value).strip() not in (str(number), f"{number}.0"):
            raise ValueError
    except (TypeError, ValueError):
        raise IgpgError(f"{where}: {key} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if kind is float and not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise IgpgError(f"{where}: {key} must be in [0, 1], got {value!r}")
    return number


def _entry(where: str, path: Path, dataset: str, classes, arch, accuracy: float, data_root, *, instruction="",
           seed: int = 0, role: str = "task", train_acc=None, val_acc=None, epochs: int = 0) -> Entry:
    """Check one network's description against its dataset and the tensors of its file."""
    if not isinstance(dataset, str):
        raise IgpgError(f"{where}: dataset must be a name, got {dataset!r}")
    try:
        ds = load_dataset(dataset, data_root)
        if isinstance(classes, str) and classes.strip().startswith("["):
            classes = json.loads(classes)
        task = Task.from_classes(ds, classes)
        spec = ArchSpec.parse(arch)
        spec.check_compatible(ds.input_shape, task.num_labels)
    except IgpgError as e:
        raise IgpgError(f"{where}: {e}") from None
    except ValueError:
        raise IgpgError(f"{where}: classes {classes!r} are not valid JSON") from None
    if role not in ROLES:
        raise IgpgError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "generic" and [list(g) for g in task.labels] != [[c] for c in range(ds.num_classes)]:
        raise IgpgError(f"{where}: a generic network has every class of {ds.name} in order as its labels")
    if not isinstance(instruction, str):
        raise IgpgError(f"{where}: instruction must be text, got {instruction!r}")
    rename = check_state(read_state(path), spec, f"{where} ({path.name})")
    return Entry(where, path, Task(task.dataset, task.labels, instruction.strip()), str(spec), accuracy,
                 accuracy if train_acc is None else train_acc, accuracy if val_acc is None else val_acc,
                 seed, role, epochs, rename)


def read_tasks_folder(tasks_file: Path, data_root: str | None = None) -> list[Entry]:
    """Every row of a tasks file, checked (weights included)."""
    entries, seen = [], {}
    for where, row in _rows_of(tasks_file):
        missing = [c for c in _REQUIRED if c not in row]
        if missing:
            raise IgpgError(f"{where}: missing {', '.join(missing)}; each row needs {', '.join(_REQUIRED)}")
        rel = row["file"]
        if not isinstance(rel, str) or not rel.strip():
            raise IgpgError(f"{where}: file must be a path, got {rel!r}")
        path = (tasks_file.parent / rel).resolve()
        if path in seen:
            raise IgpgError(f"{where}: file {rel} is listed twice (also at {seen[path]})")
        seen[path] = where
        if not path.is_file():
            raise IgpgError(f"{where}: file {rel} not found")
        entries.append(_entry(
            where, path, row["dataset"], row["classes"], row["arch"], _number(row, "accuracy", where), data_root,
            instruction=row.get("instruction", ""), seed=_number(row, "seed", where, 0, int),
            role=row.get("role", "task"),
            train_acc=_number(row, "train_accuracy", where) if "train_accuracy" in row else None,
            val_acc=_number(row, "val_accuracy", where) if "val_accuracy" in row else None))
    if not entries:
        raise IgpgError(f"{tasks_file}: no networks listed")
    return entries


# ---- layout 2: Model Zoos ------------------------------------------------------------------------------------------


def _model_zoos_arch(params: dict, where: str) -> str:
    if isinstance(params.get("arch"), str):
        return params["arch"]
    kind = params.get("model::type")
    if kind != "MLP":
        raise IgpgError(f"{where}: model::type {kind!r} has no igpg architecture (igpg builds MLPs and stride-2 CNNs "
                        "with global pooling); put an igpg string under 'arch' in params.json if one fits")
    try:
        hidden = params["model::h_dim"]
        hidden = hidden if isinstance(hidden, list) else [hidden]
        nlin = params.get("model::nlin", "relu")
        if nlin not in _NLIN:
            raise IgpgError(f"{where}: model::nlin {nlin!r} is not an igpg activation ({', '.join(_NLIN)})")
        if params.get("model::use_bias", True) is not True:
            raise IgpgError(f"{where}: networks without biases are not igpg architectures (model::use_bias false)")
        sizes = [params["model::i_dim"], *hidden, params["model::o_dim"]]
    except KeyError as e:
        raise IgpgError(f"{where}: params.json has no {e.args[0]!r}") from None
    return f"mlp:{'-'.join(str(s) for s in sizes)}:act={_NLIN[nlin]}"


def _results_by_epoch(path: Path, where: str) -> dict[int, dict]:
    out = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise IgpgError(f"{where}: result.json not found") from None
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rec = json.loads(line)
            except ValueError:
                raise IgpgError(f"{where}: result.json line {n} is not JSON") from None
            if isinstance(rec, dict) and isinstance(rec.get("training_iteration"), int):
                out[rec["training_iteration"]] = rec
    return out


def _fraction(value, key: str, where: str) -> float:
    """An accuracy from result.json: a fraction, or a percentage (divided by 100)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 100:
        raise IgpgError(f"{where}: result.json {key} must be a fraction or a percentage, got {value!r}")
    return value / 100 if value > 1 else float(value)


def read_model_zoos(src: Path, dataset: str | None = None, classes=None, data_root: str | None = None) -> list[Entry]:
    """Every model folder under `src` (one with params.json), its newest checkpoint, checked."""
    entries = []
    for params_file in sorted(src.rglob("params.json")):
        folder = params_file.parent
        where = str(folder.relative_to(src)) if folder != src else folder.name
        try:
            params = json.loads(params_file.read_text())
        except (OSError, ValueError):
            raise IgpgError(f"{where}: params.json is not readable JSON") from None
        if not isinstance(params, dict):
            raise IgpgError(f"{where}: params.json is not a JSON object")
        ckpts = sorted((int(m.group(1)), p) for p in folder.iterdir()
                       if (m := re.fullmatch(r"checkpoint_(\d+)", p.name)) and (p / "checkpoints").is_file())
        if not ckpts:
            raise IgpgError(f"{where}: no checkpoint_*/checkpoints file")
        epoch, ckpt = ckpts[-1]
        results = _results_by_epoch(folder / "result.json", where)
        rec = results.get(epoch) or (results[max(results)] if results else None)
        if rec is None or "test_acc" not in rec:
            raise IgpgError(f"{where}: result.json has no test_acc for epoch {epoch}")
        name = params.get("dataset", dataset)
        if name is None:
            raise IgpgError(f"{where}: params.json names no dataset; pass --dataset NAME")
        arch = _model_zoos_arch(params, where)
        labels = params.get("classes", classes)
        if labels is None:  # every class in order, as the Model Zoos networks are trained
            try:
                labels = list(range(load_dataset(name, data_root).num_classes))
            except IgpgError as e:
                raise IgpgError(f"{where}: {e}") from None
        seed = params.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise IgpgError(f"{where}: params.json seed must be an integer, got {seed!r}")
        train = rec.get("train_acc")
        train = _fraction(train, "train_acc", where) if isinstance(train, (int, float)) and train >= 0 else None
        entries.append(_entry(where, ckpt / "checkpoints", name, labels, arch,
                              _fraction(rec["test_acc"], "test_acc", where), data_root, seed=seed,
                              train_acc=train, epochs=epoch))
    if not entries:
        raise IgpgError(f"{src}: no model folders (params.json) found")
    return entries


# ---- cataloguing ---------------------------------------------------------------------------------------------------


def find_layout(src: Path, tasks: Path | None = None) -> tuple[str, Path | None]:
    """("tasks file", its path) or ("model zoos", None) for what `src` holds."""
    if tasks is not None:
        return "tasks file", tasks
    if not src.is_dir():
        raise IgpgError(f"{src} is not a directory")
    found = [src / n for n in TASK_FILES if (src / n).is_file()]
    if len(found) > 1:
        raise IgpgError(f"{src} holds both {found[0].name} and {found[1].name}; pass --tasks FILE to choose")
    if found:
        return "tasks file", found[0]
    if next(src.rglob("params.json"), None) is not None:
        return "model zoos", None
    raise IgpgError(f"{src} has no tasks file ({' or '.join(TASK_FILES)}) and no Model Zoos folders (params.json); "
                    "pass --tasks FILE")


def _plan(entries: list[Entry], test_fraction: float, heldout_archs: set[str], seed: int) -> ZooPlan:
    plan = ZooPlan()
    given: dict[str, list[str]] = {}
    for e in entries:
        if e.task.instruction and e.task.instruction not in given.setdefault(e.task.task_id, []):
            given[e.task.task_id].append(e.task.instruction)
        given.setdefault(e.task.task_id, [])
        plan.archs.setdefault(e.arch, ("imported", "test" if e.arch in heldout_archs else "train"))
    for e in entries:
        tid = e.task.task_id
        if tid in plan.tasks:
            continue
        phr = instructions(e.task, load_dataset(e.task.dataset))
        own = given[tid]  # the file's phrasings first, then igpg's templates
        train = tuple(own) + tuple(p.text for p in phr if not p.heldout and p.text not in own)
        split = "train" if e.role == "generic" else assign_split(tid, seed, test_fraction)
        plan.tasks[tid] = PlannedTask(Task(e.task.dataset, e.task.labels, train[0]), split, train,
                                      tuple(p.text for p in phr if p.heldout and p.text not in own))
    return plan


def import_zoo(src: str | Path, out: str | Path, tasks: str | Path | None = None, *, dataset: str | None = None,
               classes=None, data_root: str | None = None, test_fraction: float = 0.2, heldout_archs=(),
               heldout_seeds=(), name: str | None = None, seed: int = 0,
               progress: Callable[[str, int, int], None] | None = None) -> ImportReport:
    """Check every network of `src`, then catalogue them in the zoo `out` (created or completed).

    Held-out tasks: a hash of each task id below `test_fraction` (stable, as in `igpg zoo build`); held-out
    architectures: `heldout_archs` (strings, any spelling); held-out seeds: networks whose seed is in
    `heldout_seeds`. Nothing is written unless every network passes the checks."""
    start = time.perf_counter()
    src, out = Path(src), Path(out)
    if not (isinstance(test_fraction, (int, float)) and 0.0 <= test_fraction < 1.0):
        raise IgpgError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    heldout = {str(ArchSpec.parse(a)) for a in heldout_archs}
    layout, tasks_file = find_layout(src, Path(tasks) if tasks is not None else None)
    if layout == "tasks file":
        if dataset is not None or classes is not None:
            raise IgpgError("--dataset and --classes apply to the Model Zoos layout; a tasks file names its own")
        entries = read_tasks_folder(tasks_file, data_root)
    else:
        entries = read_model_zoos(src, dataset, classes, data_root)
    unknown = heldout - {e.arch for e in entries}
    if unknown:
        raise IgpgError(f"held-out architecture {sorted(unknown)[0]} is not among the imported ones")
    plan = _plan(entries, test_fraction, heldout, seed)
    heldout_seeds = {int(s) for s in heldout_seeds}
    cfg = _ImportConfig(name or src.resolve().name, {"src": str(src.resolve()), "test_fraction": test_fraction,
                                                      "heldout_archs": sorted(heldout),
                                                      "heldout_seeds": sorted(heldout_seeds), "seed": seed})
    _check_writable(out)
    with exclusive_lock(out, "zoo build or import"):
        (out / NETS).mkdir(exist_ok=True)
        (out / CHECKPOINTS).mkdir(exist_ok=True)
        cat = Catalogue(out, create=True)
        try:
            removed = cat.recover()
            build_id = _register(cat, cfg, plan)  # refuses a split that contradicts the zoo's
            have = cat.net_ids()
            imported = 0
            for i, e in enumerate(entries):
                digest = sha256_file(e.path)
                net_id = _net_id("import", e.arch, e.task.task_id, e.seed, e.role, digest)
                if net_id not in have:
                    state = read_state(e.path)
                    state = {e.rename.get(k, k): v.detach().float().contiguous() for k, v in state.items()}
                    task = plan.tasks[e.task.task_id].task
                    seed_split = "test" if e.seed in heldout_seeds and e.role == "task" else "train"
                    job = Job(net_id, e.role, task, e.arch, e.seed, seed_split, "imported", train=None)
                    metrics = {"epochs": e.epochs, "best_epoch": e.epochs, "train_acc": e.train_acc,
                               "val_acc": e.val_acc, "test_acc": e.test_acc, "train_seconds": 0.0}
                    _store(cat, Result(job, state, metrics), build_id, cfg.name)
                    have.add(net_id)
                    imported += 1
                if progress:
                    progress("imported networks", i + 1, len(entries))
        finally:
            cat.close()
    return ImportReport(layout, len(entries), imported, len(entries) - imported, removed, time.perf_counter() - start)
