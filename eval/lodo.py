"""Leave-one-dataset-out: a generator trained without any network of DATASET (`exclude_datasets: [DATASET]` in its
config, recorded in its checkpoint) on every task x architecture of DATASET, beside the usual baselines, and, as a
reference on the same queries and seeds, a generator that did train with DATASET (not a held-out figure).

    python eval/lodo.py --model runs/gen-lodo-mnist --tokenizer runs/tok-rvq5 --dataset mnist \
        --reference runs/gen-rownoise-3500 --out eval/results/generator-lodo-mnist

The held-out report itself is `igpg eval generator --category 'held-out dataset:NAME'`, which refuses a generator
that trained on NAME.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from igpg.evaluation.accuracy import accuracy
from igpg.evaluation.generator_quality import _test_data, evaluate_generator, report_markdown
from igpg.evaluation.heldout import category_query, select_queries
from igpg.evaluation.results import write_results
from igpg.generator import ParameterGenerator
from igpg.zoo import Catalogue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="generator trained with exclude_datasets: [DATASET]")
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--reference", type=Path, help="a generator trained with DATASET, for the reference row")
    ap.add_argument("--zoo", type=Path, default=Path("zoos/default"))
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--out", type=Path, required=True, help="file stem of the .json and .md written")
    args = ap.parse_args()

    gen = ParameterGenerator.from_pretrained(args.model, tokenizer=args.tokenizer)
    cat = f"held-out dataset:{args.dataset}"
    rep = evaluate_generator(gen, args.zoo, limit=args.limit, categories=[cat])
    md = report_markdown(rep)
    md += (f"\nHeld out by the generator's checkpoint (`exclude_datasets: {list(gen.model.cfg.train.exclude_datasets)}`: it "
           f"never trained on a {args.dataset} network), not by catalogue flags: every {args.dataset} network counts. "
           "Retrieved and zoo mean draw only from what the generator trained on, so they have nothing here. In the "
           "default zoo every dataset has its own input size (digits 8x8, mnist 28x28, mnist1d 40), so a dataset "
           "left out also leaves out all of its architectures: unseen data and unseen architecture at once.\n")
    if args.reference:
        ref = ParameterGenerator.from_pretrained(args.reference, tokenizer=args.tokenizer)
        zoo = Catalogue(args.zoo)
        queries = select_queries(zoo, category_query(cat, gen), args.limit, seed=len(cat))  # the report's own queries
        ratios = []
        for q, pq in zip(queries, rep["categories"][cat]["queries"]):
            assert (q["task_id"], q["arch"]) == (pq["task_id"], pq["arch"])
            data = _test_data(q["dataset"], q["labels"])
            instrs = q["instructions"] or [q["instruction"]]
            accs = [accuracy(ref.generate(instrs[s % len(instrs)], dataset=q["dataset"], classes=q["labels"],
                                          arch=q["arch"], seed=s), data.x, data.y) for s in rep["seeds"]]
            ratios.append(statistics.mean(accs) / max(pq["trained"], 1e-9))
        zoo.close()
        rep["reference"] = {"generator": ref.name, "trained_with": args.dataset, "ratio_mean": statistics.mean(ratios),
                            "ratio_median": statistics.median(ratios), "held_out": False}
        md += (f"\nReference on the same queries and seeds (**not** held out): `{ref.name}`, a generator that trained "
               f"with {args.dataset} networks, reaches ratio {statistics.mean(ratios):.4f} (median "
               f"{statistics.median(ratios):.4f}).\n")
    write_results(args.out.parent, args.out.stem, rep, md)  # NaN (a baseline with no network) as null
    print(md)


if __name__ == "__main__":
    main()
