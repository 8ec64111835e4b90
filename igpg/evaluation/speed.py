"""Speed, side by side in one run (a benchmark: timings are reported, never asserted).

1. throughput: networks per second of batched generation (`generate_batch`, requests grouped by architecture),
   of one-at-a-time generation, and of gradient training from scratch (Adam, the zoo's recipe) run until each
   network reaches the test accuracy its generated counterpart has, on the same held-out tasks;
2. scaling: time to generate one network (greedy, batch 1, end to end: conditions, decoding, weight decoding,
   support score) against its parameter count, over MLPs as wide and deep as the generator accepts, with the
   least-squares slope of log(time) on log(parameters);
3. KV cache: the same generations with and without the cache (`SamplingConfig.use_cache`), time and whether
   the weights are identical.

Every timing is the best (minimum) of `repeats` runs after a warm-up, with torch's thread count recorded: the
machine may be shared, and the minimum is the least disturbed run.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from igpg.arch import ArchSpec
from igpg.errors import IgpgError
from igpg.evaluation.accuracy import accuracy
from igpg.evaluation.heldout import HELDOUT_TASKS, Progress, guard, heldout_queries, instruction_for, task_splits
from igpg.evaluation.results import write_results
from igpg.evaluation.train_curve import adam_steps
from igpg.generator.api import ParameterGenerator
from igpg.zoo.catalogue import Catalogue

# (dataset, architecture): digits MLPs from 8 to 1024 hidden units, then MNIST (784 inputs) one and two layers wide
SCALING_ARCHS = (("digits", "mlp:64-8-10"), ("digits", "mlp:64-32-10"), ("digits", "mlp:64-128-10"),
                 ("digits", "mlp:64-512-10"), ("mnist", "mlp:784-128-10"), ("mnist", "mlp:784-512-10"),
                 ("mnist", "mlp:784-512-512-10"), ("mnist", "mlp:784-1024-1024-10"))
CACHE_ARCHS = (("digits", "mlp:64-32-10"), ("digits", "mlp:64-128-10"), ("digits", "mlp:64-64-64-64-10"))


def _best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _train_to(net: nn.Module, train, test, target: float, lr: float, batch_size: int, max_steps: int,
              check_every: int, seed: int) -> tuple[int | None, float, float]:
    """Adam until test accuracy >= target (checked every `check_every` steps): (steps or None, seconds, accuracy)."""
    t0 = time.perf_counter()
    run = adam_steps(net, train, lr, batch_size, seed)
    acc, step = accuracy(net, test.x, test.y), 0
    while acc < target and step < max_steps:
        run(check_every)
        step += check_every
        acc = accuracy(net, test.x, test.y)
    return (step if acc >= target else None), time.perf_counter() - t0, acc


def throughput(gen: ParameterGenerator, queries: list[dict], per_query: int = 8, lr: float = 1e-2,
               batch_size: int = 64, max_steps: int = 3000, check_every: int = 10,
               progress: Progress | None = None) -> dict:
    """`per_query` networks (seeds 0..per_query-1) for each held-out query, generated in one `generate_batch` call
    (batches of one architecture), against one-at-a-time generation (one network per query) and against training
    from scratch to the mean test accuracy of the query's generated networks (one run per query). Instruction
    embeddings and datasets are warmed up before either is timed, so both routes pay the same."""
    from igpg.data import load_dataset
    from igpg.text import embed_texts

    guard(HELDOUT_TASKS, queries)
    reqs = [{"instruction": instruction_for(q, 0), "dataset": q["dataset"], "classes": q["labels"],
             "arch": q["arch"], "seed": s} for q in queries for s in range(per_query)]
    embed_texts(sorted({r["instruction"] for r in reqs}))  # warm-up: text encoder and embedding cache
    for d in {q["dataset"] for q in queries}:
        load_dataset(d)
    gen.generate_batch(reqs[:1])
    t0 = time.perf_counter()
    nets = gen.generate_batch(reqs)
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in reqs[::per_query]:
        gen.generate_batch([r])
    single = time.perf_counter() - t0
    rows, train_seconds = [], 0.0
    for qi, q in enumerate(queries):
        _, train, test = task_splits(q)
        accs = [accuracy(net, test.x, test.y) for net in nets[qi * per_query : (qi + 1) * per_query]]
        target = statistics.mean(accs)
        torch.manual_seed(0)
        steps, seconds, reached = _train_to(ArchSpec.parse(q["arch"]).build(), train, test, target, lr, batch_size,
                                            max_steps, check_every, seed=0)
        train_seconds += seconds
        rows.append({"task_id": q["task_id"], "arch": q["arch"], "generated_accs": accs, "target_acc": target,
                     "train_steps": steps, "train_seconds": seconds, "train_acc_reached": reached})
        if progress:
            progress("speed: training to the generated accuracy", qi + 1, len(queries))
    n, nq = len(reqs), len(queries)
    reached = [r for r in rows if r["train_steps"] is not None]
    batch_sizes = [sum(1 for r in reqs if r["arch"] == a) for a in sorted({r["arch"] for r in reqs})]
    return {"queries": nq, "networks_per_query": per_query, "networks": n, "architectures": len(batch_sizes),
            "mean_batch_size": statistics.mean(batch_sizes),
            "generated_acc_mean": statistics.mean(r["target_acc"] for r in rows),
            "batched_generation_s": batched, "batched_networks_per_s": n / batched,
            "single_generation_s": single, "single_networks_per_s": nq / single,
            "training": {"optimizer": "Adam", "lr": lr, "batch_size": batch_size, "max_steps": max_steps,
                         "check_every": check_every, "networks": nq, "seconds": train_seconds,
                         "networks_per_s": nq / train_seconds if train_seconds else float("nan"),
                         "reached": len(reached),
                         "median_steps_when_reached": statistics.median(r["train_steps"] for r in reached)
                         if reached else None},
            "batched_vs_training": (n / batched) / (nq / train_seconds) if train_seconds else float("nan"),
            "batched_vs_single": (n / batched) / (nq / single),
            "per_query": rows}


def _request(dataset: str, arch: str) -> dict:
    k = ArchSpec.parse(arch).num_outputs
    classes = list(range(k))
    return {"instruction": f"Classify {dataset} classes {', '.join(map(str, classes))}", "dataset": dataset,
            "classes": classes, "arch": arch, "seed": 0}


def scaling(gen: ParameterGenerator, archs=SCALING_ARCHS, repeats: int = 2, progress: Progress | None = None) -> dict:
    points = []
    gen.generate_batch([_request(*archs[0])])  # warm-up
    for i, (dataset, arch) in enumerate(archs):
        req = _request(dataset, arch)
        seconds = _best_time(lambda: gen.generate_batch([req]), repeats)
        spec = ArchSpec.parse(arch)
        points.append({"dataset": dataset, "arch": arch, "params": spec.n_params,
                       "rows": sum(layer.fan_out for layer in spec.schema()), "seconds": seconds})
        if progress:
            progress("speed: time vs parameters", i + 1, len(archs))
    return {"repeats": repeats, "points": points, **loglog_fits(points)}


def loglog_fits(points: list[dict]) -> dict:
    """Least-squares lines of log10(seconds) on log10(parameters) and on log10(rows): decoding is one step per
    row (output neuron), so rows, not parameters, are what the time follows."""
    out = {}
    for key, prefix in (("params", "loglog"), ("rows", "loglog_rows")):
        slope = intercept = float("nan")
        if len({p[key] for p in points}) >= 2:
            slope, intercept = np.polyfit(np.log10([p[key] for p in points]), np.log10([p["seconds"] for p in points]), 1)
        out[f"{prefix}_slope"], out[f"{prefix}_intercept"] = float(slope), float(intercept)
    return out


def kv_cache(gen: ParameterGenerator, archs=CACHE_ARCHS, repeats: int = 2, progress: Progress | None = None) -> dict:
    rows = []
    for i, (dataset, arch) in enumerate(archs):
        req = _request(dataset, arch)
        out = {}
        for cache in (True, False):
            nets = []
            seconds = _best_time(lambda: nets.append(gen.generate_batch([req], use_cache=cache)[0]), repeats)
            out[cache] = (seconds, nets[-1].state_dict())
        a, b = out[True][1], out[False][1]
        rows.append({"dataset": dataset, "arch": arch, "params": ArchSpec.parse(arch).n_params,
                     "cache_s": out[True][0], "no_cache_s": out[False][0],
                     "speedup": out[False][0] / out[True][0],
                     "identical": all(torch.equal(a[k], b[k]) for k in a),
                     "max_abs_diff": max(float((a[k] - b[k]).abs().max()) for k in a)})
        if progress:
            progress("speed: KV cache", i + 1, len(archs))
    return {"repeats": repeats, "archs": rows}


def run_speed(gen: ParameterGenerator, zoo_dir, limit: int = 32, per_query: int = 8, scaling_archs=SCALING_ARCHS,
              cache_archs=CACHE_ARCHS, repeats: int = 2, max_train_steps: int = 3000,
              queries: list[dict] | None = None, progress: Progress | None = None) -> dict:
    """All three speed measurements in one run (see the module docstring)."""
    zoo = Catalogue(zoo_dir)
    try:
        queries = heldout_queries(zoo, limit) if queries is None else queries
    finally:
        zoo.close()
    check_archs(gen, (*scaling_archs, *cache_archs))
    return {"generator": gen.name, "zoo": str(zoo_dir), "category": HELDOUT_TASKS, "torch_threads": torch.get_num_threads(),
            "throughput": throughput(gen, queries, per_query, max_steps=max_train_steps, progress=progress),
            "scaling": scaling(gen, scaling_archs, repeats, progress),
            "kv_cache": kv_cache(gen, cache_archs, repeats, progress)}


def speed_markdown(report: dict) -> str:
    t, s, c = report["throughput"], report["scaling"], report["kv_cache"]
    tr = t["training"]
    lines = [f"# Speed: generator `{report['generator']}` (torch threads: {report['torch_threads']})", "",
             "All in one run on the same machine (a shared 2-core CPU: read ratios rather than absolute times).", "",
             f"## Generation vs training to the same accuracy ({t['queries']} held-out task queries, "
             f"{t['architectures']} architectures)", "",
             "| route | networks | networks/s | seconds | note |", "|---|---|---|---|---|",
             f"| batched generation (`generate_batch`: {t['networks_per_query']} seeds per query, one batch per "
             f"architecture, mean batch {t['mean_batch_size']:.1f}) | {t['networks']} | "
             f"{t['batched_networks_per_s']:.2f} | {t['batched_generation_s']:.1f} | mean test acc "
             f"{t['generated_acc_mean']:.4f} |",
             f"| one-at-a-time generation (one per query) | {t['queries']} | {t['single_networks_per_s']:.2f} "
             f"| {t['single_generation_s']:.1f} | |",
             f"| training from scratch to the query's generated test accuracy ({tr['optimizer']} lr {tr['lr']}, "
             f"batch {tr['batch_size']}, <= {tr['max_steps']} steps, test accuracy checked every {tr['check_every']}) "
             f"| {tr['networks']} | {tr['networks_per_s']:.2f} | {tr['seconds']:.1f} | reached by "
             f"{tr['reached']}/{tr['networks']}; median {tr['median_steps_when_reached']} steps |", "",
             f"Batched generation: **{t['batched_vs_training']:.1f}x** the training throughput and "
             f"{t['batched_vs_single']:.1f}x one-at-a-time generation (a network that never reached the target "
             "counts with its full step budget). Instruction embeddings are warmed up before timing.", "",
             f"## Generation time vs parameter count (batch 1, greedy, best of {s['repeats']})", "",
             "| dataset | architecture | parameters | rows | seconds |", "|---|---|---|---|---|"]
    lines += [f"| {p['dataset']} | `{p['arch']}` | {p['params']:,} | {p['rows']} | {p['seconds']:.3f} |" for p in s["points"]]
    lines += ["", f"Log-log slope (time ~ parameters^slope): **{s['loglog_slope']:.2f}**; against rows (output neurons, "
              f"one decoding step each): **{s.get('loglog_rows_slope', float('nan')):.2f}**. Decoding is one step per "
              "row, so the row count, not the parameter count, sets the time (a 784-input row costs little more "
              "than a 64-input one: its chunks are decoded in parallel).", "",
              f"## KV cache vs no cache (batch 1, greedy, best of {c['repeats']})", "",
              "| architecture | parameters | cache s | no cache s | speedup | identical weights |", "|---|---|---|---|---|---|"]
    lines += [f"| `{r['arch']}` | {r['params']:,} | {r['cache_s']:.3f} | {r['no_cache_s']:.3f} | {r['speedup']:.2f}x "
              f"| {'yes' if r['identical'] else 'no (max diff %.2g)' % r['max_abs_diff']} |" for r in c["archs"]]
    return "\n".join(lines) + "\n"


def write_speed(report: dict, results: Path) -> list[Path]:
    return write_results(results, "speed", report, speed_markdown(report))


def check_archs(gen: ParameterGenerator, archs) -> None:
    for dataset, arch in archs:
        try:
            gen.check_request("x", dataset, list(range(ArchSpec.parse(arch).num_outputs)), arch)
        except IgpgError as e:
            raise IgpgError(f"speed benchmark architecture {arch}: {e}") from None
