"""Where a generator loses accuracy: per query, its network beside the zoo's, layer by layer.

    python eval/diagnose_generator.py --model runs/gen-rowkeys --tokenizer runs/tok-rvq5 [--category "seen tasks"]

For each query (the first zoo network of the task x architecture is the reference) it prints the ratio (test
accuracy / the reference's) of: the generated network; the reference's hidden layers with the generated output
layer; the generated hidden layers with the reference's output layer; the generic-rows baseline; the reference
through the tokenizer (encode + decode). Then the relative L2 error of every generated weight matrix against the
reference, beside that of the generic network. Swapping layers tells whether the hidden layers or the output rows
cost the accuracy (eval/results/generator-ablation.md).
"""

from __future__ import annotations

import argparse
import statistics

from igpg.arch import ArchSpec
from igpg.evaluation.accuracy import accuracy
from igpg.evaluation.baselines import generic_rows_net
from igpg.evaluation.generator_quality import _test_data
from igpg.evaluation.heldout import CATEGORIES, select_queries
from igpg.generator.api import ParameterGenerator
from igpg.zoo.catalogue import Catalogue

KEYS = ("generated", "ref hidden + gen head", "gen hidden + ref head", "generic rows", "tokenizer round trip")


def build(arch: str, state: dict):
    return ArchSpec.parse(arch).load(state)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--zoo", default="zoos/default")
    ap.add_argument("--category", default="seen tasks", choices=list(CATEGORIES))
    ap.add_argument("--limit", type=int, default=20)
    args = ap.parse_args()
    gen = ParameterGenerator.from_pretrained(args.model, tokenizer=args.tokenizer)
    zoo = Catalogue(args.zoo)
    rows = []
    for q in select_queries(zoo, CATEGORIES[args.category], args.limit, seed=len(args.category)):
        data = _test_data(q["dataset"], q["labels"])
        ref = zoo.load(q["rows"][0]["net_id"])
        rs = ref.state_dict()
        gs = gen.generate((q["instructions"] or [q["instruction"]])[0], dataset=q["dataset"], classes=q["labels"],
                          arch=q["arch"], seed=0).state_dict()
        generic = generic_rows_net(zoo, q)
        acc = lambda net: accuracy(net, data.x, data.y) / max(accuracy(ref, data.x, data.y), 1e-9)  # noqa: E731
        head = lambda k: k.startswith("head")  # noqa: E731
        r = dict(zip(KEYS, (
            acc(build(q["arch"], gs)),
            acc(build(q["arch"], {k: gs[k] if head(k) else rs[k] for k in rs})),
            acc(build(q["arch"], {k: rs[k] if head(k) else gs[k] for k in rs})),
            acc(generic) if generic is not None else float("nan"),
            acc(build(q["arch"], gen.tokenizer.decode(gen.tokenizer.encode(rs, q["arch"])))),
        )))
        rows.append(r)
        rel = lambda a, b: float((a - b).norm() / b.norm().clamp(min=1e-12))  # noqa: E731
        errs = {k: round(rel(gs[k], rs[k]), 3) for k in rs if k.endswith("weight")}
        gerrs = {k: round(rel(generic.state_dict()[k], rs[k]), 3) for k in rs if k.endswith("weight")} if generic else {}
        print(q["arch"], {k: round(v, 3) for k, v in r.items()}, "| generated error", errs, "| generic error", gerrs,
              flush=True)
    zoo.close()
    print("mean:", {k: round(statistics.mean(r[k] for r in rows), 4) for k in KEYS})


if __name__ == "__main__":
    main()
