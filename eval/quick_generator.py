"""Quick generator figures for ablations: `evaluate_generator` with one sampling seed, printed per split.

    python eval/quick_generator.py --model runs/gen-rowkeys --tokenizer runs/tok-rvq5 [--category "held-out seeds"]
        [--seeds 0] [--mean-from Q] [--guidance G] [--samples K] [--no-base]

The figures of eval/results/generator-ablation.md marked "seed 0" come from this script (the released model's
3-seed figures from `igpg eval generator`). About 5-10 s per split on 2 cores with one seed and one sample.
"""

from __future__ import annotations

import argparse
import time

from igpg.evaluation.generator_quality import DEFAULT_CATEGORIES, evaluate_generator
from igpg.generator.api import ParameterGenerator
from igpg.generator.sample import SamplingConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--zoo", default="zoos/default")
    ap.add_argument("--category", action="append", help="a split (repeatable; default: all)")
    ap.add_argument("--seeds", default="0", help="comma-separated sampling seeds")
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--samples", type=int, default=None, help="best-of-K (default: SamplingConfig's)")
    ap.add_argument("--mean-from", type=int, default=None, help="decode levels >= Q as expected code vectors")
    ap.add_argument("--guidance", type=float, default=None, help="(default: SamplingConfig's, off)")
    ap.add_argument("--no-base", action="store_true", help="a base_rows model decoding without its bases")
    args = ap.parse_args()
    gen = ParameterGenerator.from_pretrained(args.model, tokenizer=args.tokenizer)
    given = dict(samples=args.samples, guidance=args.guidance, mean_from=args.mean_from)
    sampling = SamplingConfig(**{key: v for key, v in given.items() if v is not None}, use_base=not args.no_base)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    for cat in args.category or list(DEFAULT_CATEGORIES):
        t0 = time.perf_counter()
        r = evaluate_generator(gen, args.zoo, limit=args.limit, seeds=seeds, sampling=sampling,
                               categories=[cat], extras=False)["categories"][cat]
        if not r.get("n"):
            print(f"{cat:24s} no queries", flush=True)
            continue
        print(f"{cat:24s} n {r['n']} ratio {r['ratio_mean']:.4f} median {r['ratio_median']:.4f} min {r['ratio_min']:.4f} "
              f"decoded {r['decoded_ratio']:.4f} base picked {r['picked_base']:.0%} | "
              f"random {r['random_ratio']:.4f} retrieved {r['retrieved_ratio']:.4f} "
              f"generic rows {r['generic_rows_ratio']:.4f} transform {r['transform_ratio']:.4f} "
              f"calibrated {r['transform_calibrated_ratio']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
