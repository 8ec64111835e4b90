"""`igpg eval generator`: generated networks against the networks trained on the same task, per held-out split,
beside random initialisation and the nearest retrieved zoo network.

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
from igpg.data import Task, load_dataset
from igpg.evaluate import accuracy
from igpg.generator.api import ParameterGenerator
from igpg.zoo.catalogue import Catalogue

CATEGORIES = {
    "seen tasks": "n.role='task' AND t.split='train' AND a.split='train' AND n.seed_split='train'",
    "held-out seeds": "n.role='task' AND t.split='train' AND a.split='train' AND n.seed_split='test'",
    "held-out phrasings": "n.role='task' AND t.split='train' AND a.split='train' AND n.seed_split='train'",
    "held-out tasks": "n.role='task' AND t.split='test' AND a.split='train'",
    "held-out architectures": "n.role='task' AND a.split='test'",
}
TRAIN_ONLY = "n.role='task' AND t.split='train' AND a.split='train' AND n.seed_split='train'"


def _queries(zoo: Catalogue, where: str, limit: int, seed: int) -> list[dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in zoo.rows(where):
        groups[(r["task_id"], r["arch"])].append(r)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    return [{"rows": groups[k], **groups[k][0]} for k in keys[:limit]]


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


def evaluate_generator(gen: ParameterGenerator, zoo_dir, limit: int = 30, seeds=(0, 1, 2), samples: int = 1,
                       categories=None, progress: Callable[[str, int, int], None] | None = None) -> dict:
    zoo = Catalogue(zoo_dir)
    train_rows = zoo.rows(TRAIN_ONLY)
    report = {"generator": gen.name, "zoo": str(zoo_dir), "seeds": list(seeds), "samples": samples,
              "queries_per_category": limit, "categories": {}}
    for name in categories or CATEGORIES:
        queries = _queries(zoo, CATEGORIES[name], limit, seed=len(name))
        per_query = []
        for qi, q in enumerate(queries):
            data = _test_data(q["dataset"], q["labels"])
            ref = statistics.mean(r["test_acc"] for r in q["rows"])
            if name == "held-out phrasings":
                instructions = q["heldout_instructions"]
            else:
                instructions = q["instructions"] or [q["instruction"]]
            gen_acc, rand_acc = [], []
            for s in seeds:
                instr = instructions[s % len(instructions)]
                net = gen.generate(instr, dataset=q["dataset"], classes=q["labels"], arch=q["arch"], samples=samples,
                                   seed=s)
                gen_acc.append(accuracy(net, data.x, data.y))
                torch.manual_seed(s)
                rand_acc.append(accuracy(ArchSpec.parse(q["arch"]).build(), data.x, data.y))
            hit = nearest_trained(zoo, q, train_rows)
            ret_acc = accuracy(zoo.load(hit["net_id"]), data.x, data.y) if hit else float("nan")
            per_query.append({"task_id": q["task_id"], "arch": q["arch"], "labels": q["labels"], "trained": ref,
                              "generated": gen_acc, "random": rand_acc, "retrieved": ret_acc,
                              "retrieved_labels": hit["labels"] if hit else None})
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
    return {
        "n": len(per_query),
        "trained_acc": statistics.mean(q["trained"] for q in per_query),
        "generated_acc": statistics.mean(statistics.mean(q["generated"]) for q in per_query),
        "ratio_mean": statistics.mean(seed_ratios),
        "ratio_std_over_seeds": statistics.pstdev(seed_ratios),
        "ratio_median": statistics.median(all_ratios),
        "ratio_min": min(all_ratios),
        "random_ratio": statistics.mean(statistics.mean(q["random"]) / max(q["trained"], 1e-9) for q in per_query),
        "retrieved_ratio": statistics.mean(q["retrieved"] / max(q["trained"], 1e-9) for q in per_query
                                           if q["retrieved"] == q["retrieved"]) if any(
            q["retrieved"] == q["retrieved"] for q in per_query) else float("nan"),
    }


def report_markdown(report: dict) -> str:
    lines = [f"# Generator `{report['generator']}` on `{report['zoo']}`", "",
             f"Ratio = test accuracy / test accuracy of the zoo network trained on the same task and architecture "
             f"(mean over queries; mean and std over sampling seeds {report['seeds']}; best-of-{report['samples']}). "
             "Random = an untrained network; retrieved = the nearest training-split zoo network of the same "
             "architecture (most similar labels), used as is.", "",
             "| split | queries | trained acc | generated acc | ratio mean ± std | median | min | random | retrieved |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, c in report["categories"].items():
        if not c.get("n"):
            lines.append(f"| {name} | 0 | | | | | | | |")
            continue
        lines.append(f"| {name} | {c['n']} | {c['trained_acc']:.4f} | {c['generated_acc']:.4f} | "
                     f"{c['ratio_mean']:.4f} ± {c['ratio_std_over_seeds']:.4f} | {c['ratio_median']:.4f} | "
                     f"{c['ratio_min']:.4f} | {c['random_ratio']:.4f} | {c['retrieved_ratio']:.4f} |")
    return "\n".join(lines) + "\n"
