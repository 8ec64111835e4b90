"""`igpg eval generator`: generated networks against the networks trained on the same task, per held-out split,
beside random initialisation, the nearest retrieved zoo network, the zoo mean and the generic-rows baseline.

Baselines: igpg/evaluation/baselines.py; categories and the held-out checks: igpg/evaluation/heldout.py.
"""

from __future__ import annotations

import statistics
from typing import Callable

import torch

from igpg.arch import ArchSpec
from igpg.data import Task, load_dataset
from igpg.evaluation.accuracy import accuracy
from igpg.evaluation.baselines import (TrainingPool, generic_group_max, generic_rows_net, memorisation,
                                       nearest_trained, one_epoch, seed_distance, zoo_mean_net)
from igpg.evaluation.heldout import DEFAULT_CATEGORIES, TRAIN_ONLY, category_queries, category_query
from igpg.generator.api import ParameterGenerator
from igpg.generator.base_rows import GenericBank
from igpg.generator.sample import SamplingConfig
from igpg.generator.conditions import support_set
from igpg.zoo.catalogue import Catalogue


def _test_data(dataset: str, labels):
    return Task.from_classes(dataset, labels).relabel(load_dataset(dataset).test)


def evaluate_generator(gen: ParameterGenerator, zoo_dir, limit: int = 30, seeds=(0, 1, 2),
                       sampling: SamplingConfig | None = None, categories=None,
                       progress: Callable[[str, int, int], None] | None = None, extras: bool = True) -> dict:
    """Generated vs trained per category, beside the baselines (module docstring); with `extras`, also the GHN
    protocol and the memorisation checks (`igpg.evaluation.baselines`). `sampling`: how `generate` decodes
    (default: greedy)."""
    sampling = sampling if sampling is not None else SamplingConfig()
    categories = list(categories or DEFAULT_CATEGORIES)
    for name in categories:
        category_query(name, gen)  # every category checked before any work
    zoo = Catalogue(zoo_dir)
    excluded = gen.model.cfg.train.exclude_datasets
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
                support_x, _ = support_set(task, gen.cfg.model.k_support, seed=s)  # what the generator was given
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
            rec["generic_group_max"] = generic_group_max(zoo, q, data)
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
           for k in ("decoded", "random", "retrieved", "zoo_mean", "generic_rows", "generic_group_max", "transform",
                     "transform_calibrated")},
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
             "architecture a network the generator never saw: a reference, not a baseline it could use); generic group max = "
             "that generic network with its logits maxed over each label's classes (the same as generic rows where no "
             "label is a group; for grouped labels the reference, not a network of the query's architecture). "
             "Every category is selected by, and checked against, the zoo catalogue's split flags; held-out "
             "architectures are sorted by where they sit against the trained ones (inside the range, narrower, wider, "
             "deeper, other activations, other kernels).", "",
             "| split | queries | trained acc | generated acc | ratio mean ± std | median | min | decoded alone | base picked "
             "| random | retrieved | zoo mean | transform | transform, calibrated | generic rows | generic group max | generator vs transform |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    below = []
    nan = float("nan")
    for name, c in report["categories"].items():
        if not c.get("n"):
            lines.append(f"| {name} | 0 | | | | | | | | | | | | | | | |")
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
                     f"{c.get('generic_rows_ratio', nan):.4f} | {c.get('generic_group_max_ratio', nan):.4f} | "
                     f"{verdict} |")
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
