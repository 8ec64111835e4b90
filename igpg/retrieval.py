"""Retrieval: the zoo networks nearest to a query (instruction + dataset + ordered labels + architecture).

    hits = retrieve("zoos/default", "Classify handwritten digits 3, 5 and 8", "digits", [3, 5, 8], "mlp:64-32-3")
    for hit in hits:
        print(hit.describe())
    net = hits[0].load()                      # nn.Module, loaded strictly from the zoo

    index = RetrievalIndex.open("zoos/default")   # open once, search many times
    index.search("digits", [3, 5, 8], "mlp:64-32-3", "Classify handwritten digits 3, 5 and 8", hits=5)

Embedding (`query_vector`, `RECIPE`): the concatenation of weighted unit-norm parts, so the inner product of two
vectors is the weighted sum of the parts' cosines (weights in `PART_WEIGHTS`, summing to 1):
- ordered labels: a (16 x 100) matrix, row i = output neuron i, 1/|label| at each class of label i;
- class set: the same weights summed over positions (which classes, in any order);
- instruction: the MiniLM sentence embedding;
- dataset: a one-hot of the dataset name hashed into 16 slots (no registry needed; a collision only costs
  that part's 0.1).

Ranking (`RetrievalIndex.search`): hits must fit the query's family, input and number of outputs (any other
network cannot serve the task). They are ordered by
  1. architecture distance: 0 for the exact architecture, else the nearest shape of the same family (`arch_distance`);
  2. label agreement: the same dataset and ordered labels, then the same labels in another order, then the rest;
  3. similarity (the inner product, `Hit.score`), then net_id, so the order never depends on index order or
     backend.
Step 2 makes the intent of the weights exact: a linear embedding alone cannot always put a permutation of the
query's classes ([8, 3, 5]) above a near miss ([3, 5, 1]).

Index on disk: `ZOO/retrieval/index.faiss` (faiss's own binary format, `IndexFlatIP`, exact inner product) and
`ZOO/retrieval/ids.json` (net_ids in index order, the recipe, the index's sha256). `RetrievalIndex.open` adds the
networks that are new in the catalogue and rebuilds only when the zoo lost networks, the recipe changed or the
files are missing or inconsistent. Writes go to a temporary file renamed into place, under a blocking
`fcntl.flock` on `ZOO/retrieval/.lock`. A zoo directory that cannot be written still works: the index is then
kept in memory. Without the `faiss` package (extra `retrieval`) the same index is a numpy matrix scanned in
full, with the same results; it is then rebuilt in memory at every open (a few seconds for the default zoo)
because nothing can be stored in faiss's format.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from torch import nn

from igpg.arch import ArchSpec
from igpg.data import Task, default_instruction, load_dataset
from igpg.data.tasks import ClassesLike, Label
from igpg.errors import IgpgError
from igpg.io import atomic_path, atomic_write_text
from igpg.text import TEXT_DIM, check_instruction, embed_texts
from igpg.zoo.catalogue import Catalogue

# ---- the embedding recipe ----------------------------------------------------------------------------------------
# Share of the squared norm of each part: labels (ordered + class set) 0.6 > instruction 0.3 > dataset 0.1, so the
# same labels in the same order outweigh the same classes in another order, which outweigh the wording.
PART_WEIGHTS = {
    "order": 0.45,  # ordered labels: which class each output neuron means
    "classes": 0.15,  # the classes of the task, in any order (a permuted head is one row swap away)
    "text": 0.30,  # MiniLM embedding of the instruction
    "dataset": 0.10,  # hashed one-hot of the dataset name
}
MAX_POSITIONS = 16  # output neurons described by the ordered part; later ones count in the class-set part only
CLASS_SLOTS = 100  # class ids per position: the largest registered dataset (CIFAR-100); larger ids wrap around
DATASET_SLOTS = 16  # hashed dataset one-hot
EMBED_DIM = TEXT_DIM + MAX_POSITIONS * CLASS_SLOTS + CLASS_SLOTS + DATASET_SLOTS  # 2100
# Any change above changes RECIPE, and an index built with another recipe is rebuilt on open.
RECIPE = ("igpg-retrieval/1 text=all-MiniLM-L6-v2:{text} order={p}x{c}:{order} classes={c}:{classes} "
          "dataset=hash{d}:{dataset}").format(p=MAX_POSITIONS, c=CLASS_SLOTS, d=DATASET_SLOTS, **PART_WEIGHTS)

INDEX_DIR = "retrieval"
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
LOCK_FILE = ".lock"
BACKENDS = ("faiss", "numpy")
SPLITS = ("all", "train")
_SCORE_DECIMALS = 6  # scores are compared rounded, so faiss and numpy (other summation orders) rank alike


def _label_groups(labels: Sequence) -> tuple[Label, ...]:
    """[3, [0, 2]] or ((3,), (0, 2)) -> ((3,), (0, 2)): each label a sorted tuple of class ids."""
    return tuple(tuple(sorted(int(c) for c in g)) if isinstance(g, (list, tuple)) else (int(g),) for g in labels)


def _labels_text(groups: tuple[Label, ...]) -> str:
    """As a user writes them: [3, 5, 8] or [[1, 3], [0, 2]]."""
    return json.dumps([g[0] if len(g) == 1 else list(g) for g in groups])


def _dataset_slot(dataset: str) -> int:
    return int.from_bytes(hashlib.sha256(dataset.encode()).digest()[:8], "big") % DATASET_SLOTS


def _structured_parts(dataset: str, labels: Sequence) -> np.ndarray:
    """(EMBED_DIM - TEXT_DIM,) float32: weighted ordered-label, class-set and dataset parts."""
    order = np.zeros((MAX_POSITIONS, CLASS_SLOTS), np.float32)  # (P, C)
    classes = np.zeros(CLASS_SLOTS, np.float32)  # (C,)
    for i, group in enumerate(_label_groups(labels)):
        for c in group:  # a group spreads its unit weight over its classes
            if i < MAX_POSITIONS:
                order[i, c % CLASS_SLOTS] += 1.0 / len(group)
            classes[c % CLASS_SLOTS] += 1.0 / len(group)
    onehot = np.zeros(DATASET_SLOTS, np.float32)
    onehot[_dataset_slot(dataset)] = 1.0
    parts = [(order.reshape(-1), "order"), (classes, "classes"), (onehot, "dataset")]
    return np.concatenate([_unit(v) * math.sqrt(PART_WEIGHTS[name]) for v, name in parts])


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _assemble(text: np.ndarray, structured: np.ndarray) -> np.ndarray:
    """(N, TEXT_DIM) unit text vectors + (N, rest) weighted parts -> (N, EMBED_DIM) float32 unit vectors."""
    out = np.concatenate([text * math.sqrt(PART_WEIGHTS["text"]), structured], axis=1).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def query_vector(dataset: str, labels: Sequence, instruction: str) -> np.ndarray:
    """(EMBED_DIM,) float32 unit vector for a dataset, ordered labels ([3, 5, 8] or [[1, 3], [0, 2]]) and text."""
    text = embed_texts([instruction]).numpy()  # (1, TEXT_DIM)
    return _assemble(text, _structured_parts(dataset, labels)[None])[0]


def entry_vectors(rows: Sequence[dict]) -> np.ndarray:
    """(N, EMBED_DIM) float32: the vector of each catalogue row (its task's dataset, labels and instruction)."""
    if not rows:
        return np.zeros((0, EMBED_DIM), np.float32)
    text = embed_texts([r["instruction"] for r in rows]).numpy()  # (N, TEXT_DIM), batched
    structured = np.stack([_structured_parts(r["dataset"], r["labels"]) for r in rows])
    return _assemble(text, structured)


# ---- architecture distance -----------------------------------------------------------------------------------------


def _input_key(spec: ArchSpec) -> tuple[int, ...]:
    """What a network's input must equal to serve the query: the flat size for mlp, the exact shape for cnn."""
    return (spec.input_dim,) if spec.family == "mlp" else spec.input_shape


def arch_distance(query: ArchSpec | str, other: ArchSpec | str) -> float:
    """How far `other` is from the query's shape; inf if it cannot serve it (family, input or outputs differ).

    Sum over aligned hidden layers of |log2(width ratio)|, plus 1 per unmatched layer (the depth difference),
    plus 1 for another activation and 1 for another kernel size. 0 only for the same architecture.
    """
    a, b = ArchSpec.parse(query), ArchSpec.parse(other)
    if (a.family, _input_key(a), a.num_outputs) != (b.family, _input_key(b), b.num_outputs):
        return math.inf
    d = abs(a.depth - b.depth) + sum(abs(math.log2(x / y)) for x, y in zip(a.hidden, b.hidden))
    d += (a.activation != b.activation) + (a.kernel != b.kernel)
    return float(d)


# ---- hits ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    net_id: str
    score: float  # inner product of query and entry embeddings (cosine; 1 = same dataset, labels and wording)
    arch: str  # the network's canonical architecture
    exact_arch: bool  # arch equals the query's architecture
    arch_distance: float  # 0 if exact; see `arch_distance`
    dataset: str
    labels: list  # the network's labels as a nested list: [3, 5, 8] or [[1, 3], [0, 2]]
    labels_match: bool  # same dataset and the same labels in the same order as the query
    test_acc: float
    val_acc: float
    instruction: str  # the canonical instruction of the network's task
    file: str  # absolute path of the network's safetensors file
    task_id: str
    seed: int
    heldout: bool  # the network's task, architecture or seed is held out of generator training
    query_dataset: str = field(repr=False, default="")
    query_labels: list = field(repr=False, default_factory=list)
    query_arch: str = field(repr=False, default="")
    zoo_dir: str = field(repr=False, default="")

    def load(self) -> nn.Module:
        """The network as a module (strict load via the zoo catalogue)."""
        catalogue = Catalogue(self.zoo_dir)
        try:
            return catalogue.load(self.net_id)
        finally:
            catalogue.close()

    def describe(self) -> str:
        """One line for the CLI; says when the dataset, the labels or the architecture differ from the query."""
        labels = _labels_text(_label_groups(self.labels))
        text = (f"{self.net_id}  score {self.score:.3f}  {self.arch}  {self.dataset} {labels}  "
                f"test acc {self.test_acc:.3f}")
        notes = []
        if self.dataset != self.query_dataset:
            notes.append(f"dataset differs: {self.dataset} vs query {self.query_dataset}")
        if not self.labels_match:
            notes.append(f"labels differ: {labels} vs query {_labels_text(_label_groups(self.query_labels))}")
        if not self.exact_arch:
            notes.append(f"arch not exact: {self.arch} vs query {self.query_arch} (distance {self.arch_distance:.2f})")
        return text + ("  [" + "; ".join(notes) + "]" if notes else "")


# ---- the index -----------------------------------------------------------------------------------------------------


def _import_faiss():
    """The faiss module, or None when it is not installed (then the numpy scan serves)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _task_rows(root: Path) -> list[dict]:
    """Every task network of the zoo (generic networks are a resource, not answers), ordered by net_id."""
    catalogue = Catalogue(root)
    try:
        return catalogue.rows("n.role = 'task'")
    finally:
        catalogue.close()


@dataclass
class _Stored:
    ids: list[str]  # net_ids in index order
    index: object  # faiss.IndexFlatIP, or (N, EMBED_DIM) np.ndarray without faiss


def _read_stored(directory: Path, faiss) -> _Stored | None:
    """The index on disk if it is complete, consistent and of this recipe; else None (then it is rebuilt)."""
    if faiss is None:
        return None
    try:
        meta = json.loads((directory / IDS_FILE).read_text())
        blob = (directory / INDEX_FILE).read_bytes()
        if (not isinstance(meta, dict) or meta.get("recipe") != RECIPE or meta.get("dim") != EMBED_DIM
                or meta.get("index_sha256") != hashlib.sha256(blob).hexdigest()):
            return None
        ids = meta["net_ids"]
        index = faiss.deserialize_index(np.frombuffer(blob, np.uint8))
    except (OSError, ValueError, KeyError, RuntimeError):  # missing, unreadable, corrupt: rebuild
        return None
    if (not isinstance(ids, list) or len(set(ids)) != len(ids) or index.ntotal != len(ids) or index.d != EMBED_DIM
            or index.metric_type != faiss.METRIC_INNER_PRODUCT):
        return None
    return _Stored(ids, index)


def _write_stored(directory: Path, stored: _Stored, faiss) -> None:
    """index.faiss then ids.json, each atomically; ids.json names the index's sha256, so a reader never pairs
    an index with the ids of another (a crash between the two renames means a rebuild, not a wrong answer)."""
    blob = faiss.serialize_index(stored.index).tobytes()
    with atomic_path(directory / INDEX_FILE) as tmp:
        tmp.write_bytes(blob)
    meta = {"recipe": RECIPE, "dim": EMBED_DIM, "count": len(stored.ids),
            "index_sha256": hashlib.sha256(blob).hexdigest(), "net_ids": stored.ids}
    atomic_write_text(directory / IDS_FILE, json.dumps(meta, indent=0) + "\n")


@contextmanager
def _writer_lock(directory: Path) -> Iterator[bool]:
    """Hold `directory/.lock` (blocking: a second writer waits); yields False, locking nothing, when the
    directory cannot be created or written (a read-only zoo)."""
    try:
        directory.mkdir(exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # releases the lock; the kernel also does so if the process dies


def _new_index(vectors: np.ndarray, faiss):
    if faiss is None:
        return vectors
    index = faiss.IndexFlatIP(EMBED_DIM)
    index.add(vectors)
    return index


def _append(index, vectors: np.ndarray):
    if isinstance(index, np.ndarray):
        return np.concatenate([index, vectors])
    index.add(vectors)
    return index


def _sync(stored: _Stored | None, rows: list[dict], faiss) -> tuple[_Stored, int, bool]:
    """Bring the index up to the catalogue: (index, networks embedded, rebuilt?)."""
    current = {r["net_id"] for r in rows}
    if stored is not None and set(stored.ids) <= current:
        have = set(stored.ids)
        new = [r for r in rows if r["net_id"] not in have]
        if new:
            stored = _Stored(stored.ids + [r["net_id"] for r in new], _append(stored.index, entry_vectors(new)))
        return stored, len(new), False
    return _Stored([r["net_id"] for r in rows], _new_index(entry_vectors(rows), faiss)), len(rows), True


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise IgpgError(f"unknown retrieval backend {backend!r}; allowed: {' | '.join(BACKENDS)}")


class RetrievalIndex:
    """The task networks of one zoo, embedded, with what the architecture filter and ranking need."""

    def __init__(self, root: Path, rows: list[dict], stored: _Stored, backend: str, include_heldout: bool,
                 faiss, added: int = 0, rebuilt: bool = False, persisted: bool = False):
        by_id = {r["net_id"]: r for r in rows}
        self.root = root.resolve()
        self.rows = [by_id[i] for i in stored.ids]  # aligned with the index
        self.backend = backend  # "faiss" | "numpy": which scan answers searches
        self.include_heldout = include_heldout
        self.added = added  # networks embedded by this open
        self.rebuilt = rebuilt  # the index was (re)built from scratch by this open
        self.persisted = persisted  # the index on disk matches this one (False for a read-only zoo)
        self._faiss = faiss
        self._index = stored.index if faiss is not None else None
        if backend == "numpy":
            self._vectors = stored.index if faiss is None else stored.index.reconstruct_n(0, stored.index.ntotal)
        specs = {a: ArchSpec.parse(a) for a in {r["arch"] for r in self.rows}}
        self._spec = [specs[r["arch"]] for r in self.rows]
        self._groups: dict[tuple, list[int]] = {}  # (family, input key, outputs) -> row positions
        for i, s in enumerate(self._spec):
            self._groups.setdefault((s.family, _input_key(s), s.num_outputs), []).append(i)
        self._train_only = np.array([(r["task_split"], r["arch_split"], r["seed_split"]) == ("train",) * 3
                                     for r in self.rows], bool)
        self._test_acc = np.array([r["test_acc"] for r in self.rows], np.float64)
        self._labels = [_label_groups(r["labels"]) for r in self.rows]
        self._shapes: dict[tuple[str, bool], tuple[int, ...]] = {}  # (dataset, cnn query?) -> input shape
        self._id_rank = np.argsort(np.argsort(np.array(stored.ids, dtype=object)))  # position by net_id order

    @classmethod
    def open(cls, zoo_dir: str | Path, include_heldout: bool = True, backend: str = "faiss") -> RetrievalIndex:
        """Open (and build or update when needed) the index of a zoo.

        include_heldout=False leaves out, from every search, networks whose task, architecture or seed is held
        out of generator training. backend="faiss" falls back to "numpy" when faiss is not installed.
        """
        _check_backend(backend)
        root = Path(zoo_dir)
        if not root.is_dir():
            raise IgpgError(f"{root} is not a zoo: no such directory")
        faiss = _import_faiss()
        if faiss is None:
            backend = "numpy"
        directory = root / INDEX_DIR
        rows = _task_rows(root)
        stored = _read_stored(directory, faiss)
        if stored is not None and set(stored.ids) == {r["net_id"] for r in rows}:
            return cls(root, rows, stored, backend, include_heldout, faiss, persisted=True)
        with _writer_lock(directory) as writable:
            if writable:  # another process may have updated the index (or the zoo) while this one waited
                rows = _task_rows(root)
                stored = _read_stored(directory, faiss)
            stored, added, rebuilt = _sync(stored, rows, faiss)
            persisted = False
            if writable and faiss is not None and (added or rebuilt):
                try:
                    _write_stored(directory, stored, faiss)
                    persisted = True
                except OSError:  # full or read-only disk: the index still serves from memory
                    pass
            else:
                persisted = writable and faiss is not None
        return cls(root, rows, stored, backend, include_heldout, faiss, added, rebuilt, persisted)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def net_ids(self) -> list[str]:
        """net_ids in index order."""
        return [r["net_id"] for r in self.rows]

    # ---- searching ----
    def search(self, dataset: str, classes: ClassesLike, arch: str | ArchSpec, instruction: str | None = None,
               hits: int = 5, min_accuracy: float | None = None, splits: str = "all",
               data_root: str | None = None) -> list[Hit]:
        """The `hits` best networks for the query, ranked as the module docstring says.

        classes: any form `Task.from_classes` takes. instruction: empty or None means the task's default wording.
        min_accuracy: keep networks with test accuracy >= this (0..1). splits="train": only networks whose task,
        architecture and seed are all in the training split (evaluation uses it, so a held-out query never
        retrieves itself). data_root: for `torchvision:<Name>` datasets the zoo has no cnn network of.
        """
        if isinstance(hits, bool) or not isinstance(hits, int) or hits < 1:
            raise IgpgError(f"hits (the number of networks to return) must be an integer >= 1, got {hits!r}")
        if splits not in SPLITS:
            raise IgpgError(f"unknown splits {splits!r}; allowed: {' | '.join(SPLITS)}")
        if min_accuracy is not None and (isinstance(min_accuracy, bool) or not isinstance(min_accuracy, (int, float))
                                         or not 0.0 <= min_accuracy <= 1.0):
            raise IgpgError(f"min_accuracy must be a number in [0, 1], got {min_accuracy!r}")
        if not isinstance(dataset, str):
            raise IgpgError(f"dataset must be a name like 'digits', got {type(dataset).__name__}")
        task = Task.from_classes(dataset, classes)
        spec = ArchSpec.parse(arch)
        spec.check_compatible(self._input_shape(task.dataset, spec, data_root), task.num_labels)
        if instruction is None or (isinstance(instruction, str) and not instruction.strip()):
            instruction = default_instruction(task, load_dataset(task.dataset, data_root))
        query = query_vector(task.dataset, task.labels, check_instruction(instruction))

        positions = np.array(self._groups.get((spec.family, _input_key(spec), spec.num_outputs), []), np.int64)
        keep = np.ones(len(positions), bool)
        if not self.include_heldout or splits == "train":
            keep &= self._train_only[positions]
        if min_accuracy is not None:
            keep &= self._test_acc[positions] >= min_accuracy
        if not keep.any():
            raise self._nothing_found(task, spec, len(positions), splits, min_accuracy)
        positions = positions[keep]

        distance = {a: arch_distance(spec, a) for a in {self.rows[i]["arch"] for i in positions}}
        dist = np.array([round(distance[self.rows[i]["arch"]], 9) for i in positions])
        tier = np.array([self._label_tier(i, task) for i in positions])
        scores = self._scores(query, positions)  # (len(positions),)
        order = np.lexsort((self._id_rank[positions], -np.round(scores, _SCORE_DECIMALS), tier, dist))[:hits]
        return [self._hit(int(positions[j]), float(scores[j]), float(dist[j]), task, spec) for j in order]

    def _scores(self, query: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Inner products of the query with the entries at `positions` (sorted ascending), in that order."""
        if self.backend == "numpy":
            return self._vectors[positions] @ query
        faiss = self._faiss
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(positions))
        sims, found = self._index.search(query[None], len(positions), params=params)  # (1, n) each, best first
        scores = np.empty(len(positions), np.float32)
        scores[np.searchsorted(positions, found[0])] = sims[0]
        return scores

    def _label_tier(self, i: int, task: Task) -> int:
        """0: same dataset and ordered labels; 1: the same labels in another order; 2: anything else."""
        if self.rows[i]["dataset"] != task.dataset:
            return 2
        if self._labels[i] == task.labels:
            return 0
        return 1 if sorted(self._labels[i]) == sorted(task.labels) else 2

    def _input_shape(self, dataset: str, spec: ArchSpec, data_root: str | None) -> tuple[int, ...]:
        """The dataset's input shape, known from the zoo's own networks when possible (loading mnist takes
        seconds); an mlp query only needs the flat size, a cnn query the exact shape."""
        key = (dataset, spec.family == "cnn")
        if key not in self._shapes:
            mine = [s for s, r in zip(self._spec, self.rows) if r["dataset"] == dataset]
            cnn = [s.input_shape for s in mine if s.family == "cnn"]
            if cnn:
                self._shapes[key] = cnn[0]
            elif mine and spec.family == "mlp":
                self._shapes[key] = (mine[0].input_dim,)
            else:
                self._shapes[key] = load_dataset(dataset, data_root).input_shape
        return self._shapes[key]

    def _hit(self, i: int, score: float, distance: float, task: Task, spec: ArchSpec) -> Hit:
        r = self.rows[i]
        return Hit(net_id=r["net_id"], score=score, arch=r["arch"], exact_arch=r["arch"] == str(spec),
                   arch_distance=distance, dataset=r["dataset"], labels=r["labels"],
                   labels_match=self._label_tier(i, task) == 0, test_acc=r["test_acc"], val_acc=r["val_acc"],
                   instruction=r["instruction"], file=str(self.root / r["file"]), task_id=r["task_id"],
                   seed=r["seed"], heldout=not self._train_only[i], query_dataset=task.dataset,
                   query_labels=json.loads(task.classes_json()), query_arch=str(spec), zoo_dir=str(self.root))

    def _nothing_found(self, task: Task, spec: ArchSpec, shaped: int, splits: str,
                       min_accuracy: float | None) -> IgpgError:
        """What was searched and what the zoo has instead; `shaped` networks fit before the split/accuracy filters."""
        shape = "x".join(map(str, _input_key(spec)))
        what = f"{spec.family} networks with input {shape} and {spec.num_outputs} outputs"
        filters = []
        if not self.include_heldout or splits == "train":
            filters.append("in the training split")
        if min_accuracy is not None:
            filters.append(f"with test accuracy >= {min_accuracy:g}")
        if shaped:
            have = f"{shaped} have that shape but none is {' '.join(filters)}"
        else:
            outputs = sorted({key[2] for key in self._groups if key[:2] == (spec.family, _input_key(spec))})
            have = (f"its {spec.family} networks of that input have {', '.join(map(str, outputs))} outputs" if outputs
                    else f"it has no {spec.family} network of that input")
        return IgpgError(f"no compatible network in zoo {self.root} for {task.dataset} {_labels_text(task.labels)}: "
                         f"searched {len(self)} task networks for {what}; {have}")


def retrieve(zoo_dir: str | Path, instruction: str | None, dataset: str, classes: ClassesLike, arch: str | ArchSpec,
             hits: int = 5, min_accuracy: float | None = None, splits: str = "all", *, backend: str = "faiss",
             data_root: str | None = None) -> list[Hit]:
    """Open the zoo's index (updating it if the zoo grew) and search it once; see `RetrievalIndex.search`."""
    index = RetrievalIndex.open(zoo_dir, backend=backend)
    return index.search(dataset, classes, arch, instruction, hits=hits,
                        min_accuracy=min_accuracy, splits=splits, data_root=data_root)


__all__ = ["EMBED_DIM", "Hit", "PART_WEIGHTS", "RECIPE", "RetrievalIndex", "arch_distance", "entry_vectors",
           "query_vector", "retrieve"]
