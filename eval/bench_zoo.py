"""Benchmark: zoo-building throughput with 1 and with 2 worker processes, measured side by side in one run.

    python eval/bench_zoo.py [--tasks 12] [--repeats 1]

Builds the same small zoo (digits, generic init) into fresh temporary directories, alternating 1 and 2 workers,
and prints networks per minute for each and their ratio. The machine is shared and noisy: compare the ratio, not
the absolute numbers. Process start-up (spawn + imports) is included, as a user pays it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from igpg.zoo import build_zoo, parse_zoo_config


def bench_config(tasks: int) -> dict:
    return {
        "name": "bench",
        "seed": 0,
        "init": "generic",
        "datasets": {"digits": {"tasks": tasks}, "mnist1d": {"tasks": tasks}},
        "tasks": {"min_ways": 2, "max_ways": 10, "grouped_fraction": 0.2, "test_fraction": 0.2},
        "archs": [{"arch": "mlp:*-32-*"}, {"arch": "cnn:*-8-16-*"}],
        "seeds": {"train": [0, 1]},
        "train": {"max_epochs": 20, "patience": 5, "lr": 0.01, "batch_size": 64},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=12, help="tasks per dataset")
    ap.add_argument("--repeats", type=int, default=1, help="alternating rounds of (1 worker, 2 workers)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    cfg = parse_zoo_config(bench_config(args.tasks))
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                report = build_zoo(cfg, Path(tmp) / "zoo", workers=workers)
                dt = time.perf_counter() - t0
            rates[workers].append(report.trained / dt * 60)
            print(f"workers={workers}: {report.trained} networks in {dt:.1f} s = {rates[workers][-1]:.1f} networks/min")
    best = {w: max(r) for w, r in rates.items()}
    ratio = best[2] / best[1]
    print(f"networks/min: 1 worker {best[1]:.1f}, 2 workers {best[2]:.1f}, ratio {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"networks_per_min": best, "ratio": ratio, "rounds": rates}, indent=1))


if __name__ == "__main__":
    main()
