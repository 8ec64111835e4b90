"""`igpg eval generator`: generated networks against the networks trained on the same task, per held-out split,
beside random initialisation, the nearest retrieved zoo network, the zoo mean and the generic-rows baseline.

Baselines (each a network of the query's own architecture, used as is, no training):
- random: an untrained network (the architecture's default initialisation);
- retrieved: the nearest training-split zoo network of the same architecture (most similar labels);
- zoo mean: the element-wise mean of the weights of the training-split zoo networks of the same architecture and
  dataset (the weight-space average that weight generators are often compared with);
- generic rows: the zoo's generic network of the same hidden layers trained on all classes of the dataset, with
  its output rows selected for the requested labels (a grouped label gets the mean of its classes' rows, plus the
  log of the group size on the bias). The strongest cheap baseline for class-subset tasks.

Held-out means held out: every category is selected from the zoo catalogue's split flags, and the generator's own
checkpoint records which zoo and splits it trained on (`train_split` in its config is the zoo's training split).

Categories (one query per distinct task x architecture, its reference = the zoo networks of that task and arch):
- seen tasks: training tasks on training architectures, training seeds (can the generator reproduce?);
- held-out seeds: training tasks and architectures, networks of a seed never trained on;
- held-out phrasings: training tasks, instructions from the phrasings held out of training;
- held-out tasks: tasks (label sets, orders, groupings) never seen in training, training architectures;
- held-out architectures: architectures never trained on.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from typing import Callable

import torch

from igpg.arch import ArchSpec
from igpg.coverage import arch_kind
from igpg.data import Task, load_dataset
from igpg.errors import IgpgError
from igpg.evaluate import accuracy
from igpg.generator.api import ParameterGenerator
from igpg.generator.sample import SamplingConfig
from igpg.generator.conditions import support_set
from igpg.generator.base import base_state
from igpg.zoo.catalogue import Catalogue

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


TRAIN_ONLY = "n.role='task' AND t.split='train' AND a.split='train' AND n.seed_split='train'"
LODO = "held-out dataset:"  # "held-out dataset:NAME": every network of NAME, for a generator trained without NAME


def category_query(name: str, gen: ParameterGenerator) -> str:
    """The catalogue condition of a category; for a leave-one-dataset-out category, refuses a generator whose
    training did not leave that dataset out (its checkpoint records `exclude_datasets`)."""
    if name.startswith(LODO):
        dataset = name[len(LODO):]
        if not dataset.isidentifier():
            raise IgpgError(f"category {name!r}: expected 'held-out dataset:NAME' with a dataset name")
        excluded = gen.model.cfg.exclude_datasets
        if dataset not in excluded:
            raise IgpgError(f"refusing to report {name!r}: generator {gen.name} was trained with "
                            f"{dataset} networks (exclude_datasets: {list(excluded) or 'none'})")
        return f"n.role='task' AND t.dataset='{dataset}'"
    if name not in CATEGORIES:
        raise IgpgError(f"unknown category {name!r}; known: {', '.join(CATEGORIES)}, {LODO}NAME")
    return CATEGORIES[name]


def _queries(zoo: Catalogue, where: str, limit: int, seed: int, keep: Callable[[dict], bool] | None = None) -> list[dict]:
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


def generic_rows_net(zoo: Catalogue, query: dict) -> torch.nn.Module | None:
    """The generic-rows baseline for the query (None when the zoo has no generic network of those hidden layers)."""
    spec = ArchSpec.parse(query["arch"])
    n_classes = load_dataset(query["dataset"]).num_classes
    gen_arch = str(spec.with_outputs(n_classes))
    hits = zoo.rows("n.role='generic' AND n.arch=? AND t.dataset=?", (gen_arch, query["dataset"]))
    if not hits:
        return None
    return spec.load(base_state(zoo.load(hits[0]["net_id"]).state_dict(), query["labels"]))


def zoo_mean_net(zoo: Catalogue, query: dict, train_rows: list[dict]) -> torch.nn.Module | None:
    """The zoo-mean baseline: the mean weights of the training-split networks of the query's arch and dataset."""
    same = [r for r in train_rows if r["arch"] == query["arch"] and r["dataset"] == query["dataset"]]
    if not same:
        return None
    states = [zoo.load(r["net_id"]).state_dict() for r in same]
    return ArchSpec.parse(query["arch"]).load({k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]})


def _test_data(dataset: str, labels):
    return Task.from_classes(dataset, labels).relabel(load_dataset(dataset).test)


def nearest_trained(zoo: Catalogue, query: dict, train_rows: list[dict]) -> dict | None:
    """The retrieval baseline: the training-split network of the same architecture whose task is most similar
    (same ordered labels > most shared labels in the same positions > most shared classes)."""
    same = [r for r in train_rows if r["arch"] == query["arch"] and r["dataset"] == query["dataset"]]
    if not same:
        return None
    q = [tuple(x) if isinstance(x, list) else (x,) for x in query["labels"]]

    def score(r):
        lab = [tuple(x) if isinstance(x, list) else (x,) for x in r["labels"]]
        pos = sum(a == b for a, b in zip(q, lab))
        shared = len({c for x in q for c in x} & {c for x in lab for c in x})
        return (lab == q, pos, shared, r["val_acc"])

    return max(same, key=score)


def category_queries(zoo: Catalogue, name: str, gen: ParameterGenerator, limit: int,
                     trained: set[tuple[str, str]]) -> list[dict]:
    """Up to `limit` queries of a category (one per task x architecture), held-out flags checked."""
    keep = None
    if name in ARCH_KINDS:
        kind = ARCH_KINDS[name]
        keep = lambda r: arch_kind(r["arch"], r["dataset"], trained) == kind  # noqa: E731
    queries = _queries(zoo, category_query(name, gen), limit, seed=len(name), keep=keep)
    if not name.startswith(LODO):  # a dataset left out is held out whatever its catalogue flags say
        check_heldout(name, [r for q in queries for r in q["rows"]])
    return queries


def evaluate_generator(gen: ParameterGenerator, zoo_dir, limit: int = 30, seeds=(0, 1, 2),
                       sampling: SamplingConfig | None = None, categories=None, progress: Callable[[str, int, int], None] | None = None,
                       extras: bool = True) -> dict:
    """Generated vs trained per category, beside the baselines (module docstring); with `extras`, also the GHN
    protocol and the memorisation checks (`igpg.baselines`). `sampling`: how `generate` decodes (default: greedy)."""
    from igpg.baselines import TrainingPool, memorisation, one_epoch, seed_distance
    from igpg.generator.base import GenericBank

    sampling = sampling if sampling is not None else SamplingConfig()
    categories = list(categories or DEFAULT_CATEGORIES)
    for name in categories:
        category_query(name, gen)  # every category checked before any work
    zoo = Catalogue(zoo_dir)
    excluded = gen.model.cfg.exclude_datasets
    # the networks the generator trained on: retrieval, the zoo mean and the memorisation checks draw only on them
    train_rows = [r for r in zoo.rows(TRAIN_ONLY) if r["dataset"] not in excluded]
    trained = {(r["arch"], r["dataset"]) for r in train_rows}
    bank = GenericBank.from_zoo(zoo_dir, excluded)  # the transform baseline's sources: training architectures only
    pool = TrainingPool(zoo, train_rows, bank)
    report = {"generator": gen.name, "zoo": str(zoo_dir), "seeds": list(seeds), "samples": sampling.samples,
              "queries_per_category": limit, "categories": {}}
    for name in categories:
        queries = category_queries(zoo, name, gen, limit, trained)
        per_query = []
        for qi, q in enumerate(queries):
            spec = ArchSpec.parse(q["arch"])
            data = _test_data(q["dataset"], q["labels"])
            ref = statistics.mean(r["test_acc"] for r in q["rows"])
            if name == "held-out phrasings":
                instructions = q["heldout_instructions"]
            else:
                instructions = q["instructions"] or [q["instruction"]]
            rec = {"task_id": q["task_id"], "arch": q["arch"], "dataset": q["dataset"], "labels": q["labels"],
                   "trained": ref, "generated": [], "decoded": [], "picked_base": [], "random": [],
                   "transform_calibrated": []}
            task = Task.from_classes(q["dataset"], q["labels"])
            if extras:
                rec.update(gen_epoch1=[], random_epoch1=[], dist_nearest=[], nearest_noise=[], knn_mean=[])
            for s in seeds:
                instr = instructions[s % len(instructions)]
                net = gen.generate(instr, dataset=q["dataset"], classes=q["labels"], arch=q["arch"], seed=s,
                                   sampling=sampling)
                rec["generated"].append(accuracy(net, data.x, data.y))
                rec["decoded"].append(accuracy(net.igpg_decoded, data.x, data.y))  # the decoder's own candidate
                rec["picked_base"].append(net.igpg_metadata["igpg.source"].startswith("base:"))
                torch.manual_seed(s)
                rand = spec.build()
                rec["random"].append(accuracy(rand, data.x, data.y))
                support_x, _ = support_set(task, gen.cfg.k_support, seed=s)  # what the generator was given
                base = bank.base(q["arch"], q["dataset"], q["labels"], calibrate=support_x)
                rec["transform_calibrated"].append(accuracy(spec.load(base), data.x, data.y) if base else float("nan"))
                if extras:
                    rec["gen_epoch1"].append(one_epoch(net, q["dataset"], q["labels"], s))
                    rec["random_epoch1"].append(one_epoch(rand, q["dataset"], q["labels"], s))
                    m = memorisation(net, spec, pool, q["dataset"], data, s)
                    for key in ("dist_nearest", "nearest_noise", "knn_mean"):
                        rec[key].append(m[key])
            hit = nearest_trained(zoo, q, train_rows)
            rec["retrieved"] = accuracy(zoo.load(hit["net_id"]), data.x, data.y) if hit else float("nan")
            rec["retrieved_labels"] = hit["labels"] if hit else None
            generic = generic_rows_net(zoo, q)
            rec["generic_rows"] = accuracy(generic, data.x, data.y) if generic else float("nan")
            mean_net = zoo_mean_net(zoo, q, train_rows)
            rec["zoo_mean"] = accuracy(mean_net, data.x, data.y) if mean_net else float("nan")
            base = bank.base(q["arch"], q["dataset"], q["labels"])
            rec["transform"] = accuracy(spec.load(base), data.x, data.y) if base is not None else float("nan")
            if extras:
                rec["seed_distance"] = seed_distance(zoo, q["task_id"], q["arch"])
            per_query.append(rec)
            if progress:
                progress(name, qi + 1, len(queries))
        report["categories"][name] = {"queries": per_query, **summarise(per_query)}
    zoo.close()
    return report


def summarise(per_query: list[dict]) -> dict:
    if not per_query:
        return {"n": 0}
    by_seed = list(zip(*[q["generated"] for q in per_query]))  # one tuple per sampling seed
    ratio = lambda accs: statistics.mean(a / max(q["trained"], 1e-9) for a, q in zip(accs, per_query))  # noqa: E731
    seed_ratios = [ratio(accs) for accs in by_seed]
    all_ratios = [a / max(q["trained"], 1e-9) for q in per_query for a in q["generated"]]
    out = {
        "n": len(per_query),
        "trained_acc": statistics.mean(q["trained"] for q in per_query),
        "generated_acc": statistics.mean(statistics.mean(q["generated"]) for q in per_query),
        "ratio_mean": statistics.mean(seed_ratios),
        "ratio_std_over_seeds": statistics.pstdev(seed_ratios),
        "ratio_median": statistics.median(all_ratios),
        "ratio_min": min(all_ratios),
        **{f"{k}_ratio": _baseline_ratio(per_query, k)
           for k in ("decoded", "random", "retrieved", "zoo_mean", "generic_rows", "transform", "transform_calibrated")},
        "picked_base": statistics.mean(x for q in per_query for x in q.get("picked_base", [])) if "picked_base" in per_query[0] else float("nan"),
    }
    if "gen_epoch1" in per_query[0]:
        out.update({f"{k}_ratio": _baseline_ratio(per_query, k)
                    for k in ("gen_epoch1", "random_epoch1", "nearest_noise", "knn_mean")})
        out["dist_nearest"] = _median(per_query, "dist_nearest")
        out["seed_distance"] = _median(per_query, "seed_distance")
    return out


def _values(q: dict, key: str) -> list[float]:
    v = q.get(key, float("nan"))
    return [x for x in (v if isinstance(v, list) else [v]) if x is not None and x == x]


def _baseline_ratio(per_query: list[dict], key: str) -> float:
    """Mean over queries of (the mean over seeds of) a baseline's accuracy / trained accuracy; nan if none."""
    vals = [statistics.mean(v) / max(q["trained"], 1e-9) for q in per_query if (v := _values(q, key))]
    return statistics.mean(vals) if vals else float("nan")


def _median(per_query: list[dict], key: str) -> float:
    vals = [x for q in per_query for x in _values(q, key)]
    return statistics.median(vals) if vals else float("nan")


def report_markdown(report: dict) -> str:
    lines = [f"# Generator `{report['generator']}` on `{report['zoo']}`", "",
             f"Ratio = test accuracy / test accuracy of the zoo networks trained on the same task and architecture "
             f"(mean over queries; mean and std over sampling seeds {report['seeds']}; best-of-{report['samples']}). "
             "Generated = what `generate` returns: the best on the support samples of the decoded network and the "
             "request's base itself (ties to the base); decoded alone = the decoded network, whichever was picked; "
             "base picked = how often the base was returned. "
             "Random = an untrained network; retrieved = the nearest training-split zoo network of the same "
             "architecture (most similar labels), used as is; zoo mean = the mean weights of the training-split networks "
             "of the architecture and dataset; transform = the generic network of the nearest training architecture "
             "carried over to the query's architecture (igpg/transform.py: widen by splitting, deepen with identity "
             "layers, narrow by importance, ...) with its output rows selected for the labels: the strongest "
             "training-free baseline the generator could use, and the same as generic rows on training architectures; "
             "transform, calibrated = the same with every layer a lossy step changed refit on the support samples the "
             "generator was given (ridge regression to the source network's outputs: what the generator's own base "
             "is); "
             "generic rows = the zoo's generic network of the query's own architecture, rows selected (for a held-out "
             "architecture a network the generator never saw: a reference, not a baseline it could use). "
             "Every category is selected by, and checked against, the zoo catalogue's split flags; held-out "
             "architectures are sorted by where they sit against the trained ones (inside the range, narrower, wider, "
             "deeper, other activations, other kernels).", "",
             "| split | queries | trained acc | generated acc | ratio mean ± std | median | min | decoded alone | base picked "
             "| random | retrieved | zoo mean | transform | transform, calibrated | generic rows | generator vs transform |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    below = []
    nan = float("nan")
    for name, c in report["categories"].items():
        if not c.get("n"):
            lines.append(f"| {name} | 0 | | | | | | | | | | | | | | |")
            continue
        verdict = _versus(c["ratio_mean"], c.get("transform_ratio", nan))
        if verdict == "below":
            below.append(name)
        lines.append(f"| {name} | {c['n']} | {c['trained_acc']:.4f} | {c['generated_acc']:.4f} | "
                     f"{c['ratio_mean']:.4f} ± {c['ratio_std_over_seeds']:.4f} | {c['ratio_median']:.4f} | "
                     f"{c['ratio_min']:.4f} | {c.get('decoded_ratio', nan):.4f} | {c.get('picked_base', nan):.0%} | "
                     f"{c['random_ratio']:.4f} | {c['retrieved_ratio']:.4f} | "
                     f"{c.get('zoo_mean_ratio', nan):.4f} | {c.get('transform_ratio', nan):.4f} | "
                     f"{c.get('transform_calibrated_ratio', nan):.4f} | "
                     f"{c.get('generic_rows_ratio', nan):.4f} | {verdict} |")
    if below:
        lines += ["", f"The generator does **not** beat the transform baseline on: {', '.join(below)}."]
    if any("gen_epoch1_ratio" in c for c in report["categories"].values()):
        lines += ["", "GHN protocol and memorisation checks (ratios to trained as above; distances are L2 over all "
                  "weights). Epoch 1 = one epoch of Adam (lr 0.01, batch 64) on the task's training split, from the "
                  "generated network and from a random initialisation. Nearest + noise = the training checkpoint "
                  "nearest to the generated network plus Gaussian noise as far from it as the generated network is; "
                  f"{3}-NN mean = the mean of the 3 nearest training checkpoints. Training checkpoints of an "
                  "architecture never trained on are those of its base's source architecture, carried over.", "",
                  "| split | generated (step 0) | generated, epoch 1 | random, epoch 1 | nearest + noise | 3-NN mean | "
                  "distance to nearest checkpoint | distance between two seeds |", "|---|---|---|---|---|---|---|---|"]
        for name, c in report["categories"].items():
            if c.get("n") and "gen_epoch1_ratio" in c:
                lines.append(f"| {name} | {c['ratio_mean']:.4f} | {c['gen_epoch1_ratio']:.4f} | "
                             f"{c['random_epoch1_ratio']:.4f} | {c['nearest_noise_ratio']:.4f} | "
                             f"{c['knn_mean_ratio']:.4f} | {c['dist_nearest']:.2f} | {c['seed_distance']:.2f} |")
    return "\n".join(lines) + "\n"


def _versus(ours: float, baseline: float) -> str:
    """'above' / 'below' / 'level' (within 0.01) against a baseline ratio; 'no baseline' where it is nan."""
    if baseline != baseline:
        return "no baseline"
    if abs(ours - baseline) <= 0.01:
        return "level"
    return "above" if ours > baseline else "below"
