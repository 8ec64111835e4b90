"""Training examples for the generator: zoo networks as row codes, with their conditions, batched.

Each example is one training-split network (task, architecture and seed all "train"): its codes (extracted once by
the tokenizer), its task's labels and training phrasings, and its architecture. Every time an example is drawn,
a phrasing and a support set (k samples per label from the dataset's train split) are drawn afresh.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from functools import lru_cache

import torch

from igpg.arch import ACTIVATIONS, ArchSpec
from igpg.data import Task, load_dataset
from igpg.generator.base_rows import base_batch, origin_batch
from igpg.generator.conditions import PROFILE, arch_features, sample_profile
from igpg.generator.model import GeneratorConfig, class_slot
from igpg.generator.rows import RowLayout, codes_to_rows, row_layout
from igpg.text import embed_texts

ACTIVATION_INDEX = {name: i for i, name in enumerate(ACTIVATIONS)}
ROW_KEYS = ("layer_index", "layer_kind", "row", "is_head", "rel_depth", "fan_in", "fan_out", "chunks")


@dataclass
class Example:
    net_id: str
    task: Task
    arch: str
    rows: torch.Tensor  # (R, J, Q) codes, -1 where a chunk does not exist
    side: torch.Tensor  # (A,) per-layer scale tokens (layer_std normalisation), else empty
    phrasings: list[str]
    base: tuple[torch.Tensor, torch.Tensor] | None = None  # base row codes (R, J, Q) and side (A,): generator/base_rows.py
    siblings: list = dataclasses.field(default_factory=list)  # bases carried over from other architectures


class ProfileBank:
    """Standardised 64-value profiles of every train-split sample of each dataset, indexed by class."""

    def __init__(self) -> None:
        self._by_class: dict[str, list[torch.Tensor]] = {}

    def of(self, dataset: str) -> list[torch.Tensor]:
        if dataset not in self._by_class:
            ds = load_dataset(dataset)
            prof = sample_profile(ds.train.x, ds.input_shape)
            self._by_class[dataset] = [prof[ds.train.y == c] for c in range(ds.num_classes)]
        return self._by_class[dataset]

    def support(self, task: Task, k: int, rng: random.Random) -> torch.Tensor:
        """(L, k, 64): k random profiles per label (a group's samples drawn from all its classes)."""
        by_class = self.of(task.dataset)
        out = []
        for label in task.labels:
            pool = torch.cat([by_class[c] for c in label])
            out.append(pool[[rng.randrange(len(pool)) for _ in range(k)]])
        return torch.stack(out)


def rows_tensor(indices: torch.Tensor, layout: RowLayout) -> torch.Tensor:
    """(N, Q) codes -> (R, J, Q)."""
    r = codes_to_rows(indices, layout)
    return r.view(len(layout), layout.max_chunks, layout.codes_per_chunk)


def condition_batch(tasks: list[Task], archs: list[str], profiles: list[torch.Tensor], instr: torch.Tensor,
                    cfg: GeneratorConfig, drop_instr: torch.Tensor | None = None,
                    drop_labels: torch.Tensor | None = None) -> dict:
    """The condition part of a batch (shared by training and sampling). profiles[i]: (L_i, k, 64)."""
    b = len(tasks)
    lmax = max(t.num_labels for t in tasks)
    gmax = max(len(label) for t in tasks for label in t.labels)
    specs = [ArchSpec.parse(a) for a in archs]
    amax = max(s.depth + 1 for s in specs)
    k = profiles[0].shape[1]
    out = {
        "instr": instr,
        "profiles": torch.zeros(b, lmax, k, PROFILE),
        "class_ids": torch.full((b, lmax, gmax), -1, dtype=torch.int64),
        "label_mask": torch.zeros(b, lmax),
        "arch_feat": torch.zeros(b, amax, 9),
        "arch_mask": torch.zeros(b, amax),
        "arch_act": torch.tensor([ACTIVATION_INDEX[s.activation] for s in specs]),
        "drop_instr": drop_instr if drop_instr is not None else torch.zeros(b, dtype=torch.bool),
        "drop_labels": drop_labels if drop_labels is not None else torch.zeros(b, dtype=torch.bool),
    }
    for i, (t, s, p) in enumerate(zip(tasks, specs, profiles)):
        out["profiles"][i, : t.num_labels] = p
        out["label_mask"][i, : t.num_labels] = 1
        for li, label in enumerate(t.labels):
            out["class_ids"][i, li, : len(label)] = torch.tensor([class_slot(t.dataset, c, cfg.model.class_slots) for c in label])
        af = arch_features(s)
        out["arch_feat"][i, : len(af)] = af
        out["arch_mask"][i, : len(af)] = 1
    return out


KEY_HASHES = 2  # each key takes the mean of 2 hashed slots: two keys rarely share both


def _slots(key: str, slots: int) -> list[int]:
    return [class_slot(f"{h}|{key}", "row-key", slots) for h in range(KEY_HASHES)]


def _arch_key(arch: str, compositional: bool = False) -> str:
    """An architecture without its output count: the part of a key that names which hidden layers these are.
    Compositional keys name only the family and the input (every architecture of a lineage zoo shares them)."""
    spec = ArchSpec.parse(arch)
    if compositional:
        return f"{spec.family}|{spec.input_shape}"
    return f"{spec.family}|{spec.input_shape}|{spec.hidden}|{spec.activation}|{spec.kernel}"


@lru_cache(maxsize=4096)
def _neuron_keys(prefix: str, arch: str, chunk_size: int, codes_per_chunk: int, slots: int) -> torch.Tensor:
    """(R, KEY_HASHES) slots of the keys `prefix|layer|neuron` of an architecture's hidden rows (output rows: -1)."""
    lay = row_layout(arch, chunk_size, codes_per_chunk)
    out = torch.full((len(lay), KEY_HASHES), -1, dtype=torch.int64)
    for r in range(len(lay)):
        if not bool(lay.is_head[r]):
            out[r] = torch.tensor(_slots(f"{prefix}|{int(lay.layer_index[r])}|{int(lay.row[r])}", slots))
    return out


def _label_rows(tasks: list[Task], archs: list[str], cfg: GeneratorConfig):
    """(batch index, output row index, label, key prefix of the task's architecture and dataset) of every output row."""
    for i, (t, a) in enumerate(zip(tasks, archs)):
        heads = row_layout(a, cfg.codes.chunk_size, cfg.codes.codes_per_chunk).is_head.nonzero().squeeze(1)
        for r, label in zip(heads.tolist(), t.labels):
            yield i, r, label, f"{_arch_key(a, cfg.model.compositional)}|{t.dataset}"


@lru_cache(maxsize=65536)
def _layer_keys(prefix: str, layer: int, n: int, slots: int) -> torch.Tensor:
    """(n, KEY_HASHES) slots of the keys `prefix|layer|neuron` of neurons 0..n-1."""
    return torch.tensor([_slots(f"{prefix}|{layer}|{j}", slots) for j in range(n)], dtype=torch.int64)


def _origin_keys(prefix: str, arch: str, origin: torch.Tensor, cfg: GeneratorConfig) -> torch.Tensor:
    """(R, KEY_HASHES) hidden-row keys addressed by each row's origin neuron (output rows -1)."""
    lay = row_layout(arch, cfg.codes.chunk_size, cfg.codes.codes_per_chunk)
    out = torch.full((len(lay), KEY_HASHES), -1, dtype=torch.int64)
    for layer in range(int(lay.layer_index.max())):  # hidden layers
        sel = (lay.layer_index == layer).nonzero().squeeze(1)
        table = _layer_keys(prefix, layer, int(origin[sel].max()) + 1, cfg.model.row_keys)
        out[sel] = table[origin[sel]]
    return out


def row_keys(tasks: list[Task], archs: list[str], cfg: GeneratorConfig, rmax: int,
             origins: torch.Tensor | None = None) -> torch.Tensor:
    """(B, R, KEY_HASHES * G) hashed row-key slots, -1 pad: see ModelConfig.row_keys. With `origins` (B, R)
    (compositional keys), a hidden row has the key of the neuron it stands for (`base.origin_batch`)."""
    gmax = max(len(label) for t in tasks for label in t.labels)
    out = torch.full((len(tasks), rmax, KEY_HASHES * gmax), -1, dtype=torch.int64)
    for i, a in enumerate(archs):
        prefix = _arch_key(a, cfg.model.compositional)
        if origins is not None and cfg.model.compositional:
            n = len(row_layout(a, cfg.codes.chunk_size, cfg.codes.codes_per_chunk))
            hidden = _origin_keys(prefix, a, origins[i, :n], cfg)
        else:
            hidden = _neuron_keys(prefix, a, cfg.codes.chunk_size, cfg.codes.codes_per_chunk, cfg.model.row_keys)
        out[i, : len(hidden), :KEY_HASHES] = hidden
    for i, r, label, prefix in _label_rows(tasks, archs, cfg):
        out[i, r, : KEY_HASHES * len(label)] = torch.tensor([s for c in label for s in _slots(f"{prefix}|{c}", cfg.model.row_keys)])
    return out


def row_batch(archs: list[str], cfg: GeneratorConfig, tasks: list[Task] | None = None,
              origins: torch.Tensor | None = None) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Row features (B, R) padded, the row mask (B, R) and head_label (B, R): label index of head rows, else -1.
    With `cfg.model.row_keys`, rows["keys"] holds the hashed row-key slots (B, R, M) of the tasks' rows. `origins` (B, R):
    the neuron each row stands for in its base (compositional models address rows by it; default: their own)."""
    layouts = [row_layout(a, cfg.codes.chunk_size, cfg.codes.codes_per_chunk) for a in archs]
    b, rmax = len(archs), max(len(lay) for lay in layouts)
    rows = {k: torch.zeros(b, rmax, dtype=torch.float32 if k == "rel_depth" else torch.int64) for k in ROW_KEYS}
    rows["fan_in"] += 1
    rows["fan_out"] += 1
    mask = torch.zeros(b, rmax)
    head = torch.full((b, rmax), -1, dtype=torch.int64)
    for i, lay in enumerate(layouts):
        n = len(lay)
        for key in ROW_KEYS:
            rows[key][i, :n] = getattr(lay, key).to(rows[key].dtype)
        mask[i, :n] = 1
        head[i, :n] = torch.where(lay.is_head, lay.row, torch.full_like(lay.row, -1))
    rows["is_head"] = rows["is_head"].bool()
    rows["origin"] = rows["row"].clone() if origins is None else origins
    rows["activation"] = torch.zeros(b, rmax, dtype=torch.int64)
    rows["layers_to_out"] = torch.zeros(b, rmax, dtype=torch.int64)
    for i, (a, lay) in enumerate(zip(archs, layouts)):
        spec = ArchSpec.parse(a)
        rows["activation"][i] = ACTIVATION_INDEX[spec.activation]
        rows["layers_to_out"][i, : len(lay)] = spec.depth - lay.layer_index
    if cfg.model.row_keys:
        if tasks is None:
            raise ValueError("row keys need the tasks")  # a programming error, not user input
        rows["keys"] = row_keys(tasks, archs, cfg, rmax, origins)
    return rows, mask, head


class ExampleSampler:
    """Draws training batches (with fresh phrasings and support sets) from a list of examples."""

    def __init__(self, examples: list[Example], cfg: GeneratorConfig):
        self.examples, self.cfg = examples, cfg
        self.bank = ProfileBank()
        texts = sorted({p for e in examples for p in e.phrasings})
        self.text_vec = dict(zip(texts, embed_texts(texts))) if texts else {}

    def batch(self, rng: random.Random, size: int | None = None) -> dict:
        return self.collate(self.draw(rng, size or self.cfg.train.batch_size), rng, dropout=True)

    def draw(self, rng: random.Random, n: int) -> list[Example]:
        """n examples, uniformly with replacement."""
        return [self.examples[rng.randrange(len(self.examples))] for _ in range(n)]

    def collate(self, picked: list[Example], rng: random.Random, dropout: bool) -> dict:
        cfg = self.cfg
        instr = torch.stack([self.text_vec[rng.choice(e.phrasings)] for e in picked])
        profiles = [self.bank.support(e.task, cfg.model.k_support, rng) for e in picked]
        p_i, p_l = (cfg.train.instr_dropout, cfg.train.cond_dropout) if dropout else (0.0, 0.0)
        drop_i = torch.tensor([rng.random() < p_i for _ in picked])
        drop_l = torch.tensor([rng.random() < p_l for _ in picked])
        batch = condition_batch([e.task for e in picked], [e.arch for e in picked], profiles, instr, cfg, drop_i, drop_l)
        bases = None
        if cfg.model.base_rows:
            p_b = cfg.train.base_dropout if dropout else 0.0
            bases = [None if rng.random() < p_b else e.base for e in picked]
            if dropout and cfg.train.sibling_bases > 0:  # a base carried over from another architecture instead
                bases = [rng.choice(e.siblings) if b is not None and e.siblings and rng.random() < cfg.train.sibling_bases
                         else b for b, e in zip(bases, picked)]
        archs = [e.arch for e in picked]
        rmax0 = max(len(e.rows) for e in picked)
        origins = origin_batch(bases, archs, cfg, rmax0) if cfg.model.compositional and bases is not None else None
        rows, mask, head = row_batch(archs, cfg, [e.task for e in picked], origins)
        rmax, jmax = rows["row"].shape[1], max(e.rows.shape[1] for e in picked)
        codes = torch.full((len(picked), rmax, jmax, cfg.codes.codes_per_chunk), -1, dtype=torch.int64)
        for i, e in enumerate(picked):
            codes[i, : e.rows.shape[0], : e.rows.shape[1]] = e.rows
        side = torch.zeros(len(picked), batch["arch_feat"].shape[1], dtype=torch.int64)
        for i, e in enumerate(picked):
            side[i, : len(e.side)] = e.side
        batch.update(rows=rows, row_mask=mask, head_label=head, codes=codes, side=side)
        if cfg.model.base_rows:
            batch["base"], batch["base_side"] = base_batch(bases, archs, cfg, rmax, jmax)
        return batch
