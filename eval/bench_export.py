"""Benchmark: batch export of 64 requests with batch size 16 against one request at a time, side by side.

    python eval/bench_export.py [--model DIR] [--tokenizer DIR] [--n 64] [--batch-size 16]

Both runs export the same requests into fresh directories with the same generator, in two scenarios: requests
that share architectures (3-way tasks on three architectures) and requests of mixed output sizes (12 distinct
architectures; a batch holds requests of one architecture, so batches are smaller); the script checks that every file loads strictly into its architecture and prints networks per second
for each and their ratio. The machine is shared and noisy: the ratio is the figure to read.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

from igpg.arch import ArchSpec
from igpg.export import read_manifest
from igpg.generator import ParameterGenerator

ARCHS = ["mlp:64-32-{k}", "mlp:64-32-32-{k}", "cnn:1x8x8-8-16-32-{k}"]


def requests(n: int, seed: int = 0, same_size: bool = False) -> list[dict]:
    """n digits requests over three architectures; with same_size every task has 3 labels (so requests share
    architectures), else 2 to 5 labels (12 distinct architectures: smaller batches)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = 3 if same_size else rng.randint(2, 5)
        classes = rng.sample(range(10), k)
        out.append({"name": f"net{i:03d}", "instruction": f"Classify handwritten digits {', '.join(map(str, classes))}",
                    "dataset": "digits", "classes": classes, "arch": ARCHS[i % len(ARCHS)].format(k=k), "seed": i})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--tokenizer", type=Path, default=None)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--json", type=Path, default=Path("eval/results/bench_export.json"))
    args = ap.parse_args()
    gen = ParameterGenerator.from_pretrained(args.model, tokenizer=args.tokenizer)
    gen.generate_batch(requests(2))  # warm up: text encoder, datasets, caches
    results = {}
    for scenario, same in (("3 architectures (all tasks 3-way)", True), ("12 architectures (2- to 5-way)", False)):
        reqs = requests(args.n, same_size=same)
        rates = {}
        for bs in (1, args.batch_size):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "out"
                t0 = time.perf_counter()
                report = gen.export(reqs, out, batch_size=bs)
                dt = time.perf_counter() - t0
                assert report.ok and len(report.exported) == args.n, report.summary()
                for m in read_manifest(out):
                    ArchSpec.parse(m["arch"]).build().load_state_dict(load_file(out / m["file"]), strict=True)
            rates[bs] = args.n / dt
            print(f"{scenario}: batch size {bs:>3}: {args.n} networks in {dt:.1f} s = {rates[bs]:.2f} networks/s "
                  "(all load strictly)")
        ratio = rates[args.batch_size] / rates[1]
        print(f"{scenario}: throughput ratio batch {args.batch_size} / one at a time: {ratio:.2f}x")
        results[scenario] = {"networks_per_s": rates, "ratio": ratio}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"n": args.n, "batch_size": args.batch_size, "generator": gen.name,
                                     "scenarios": results}, indent=1))


if __name__ == "__main__":
    main()
