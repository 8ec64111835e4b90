"""Output rows for grouped labels from a generic network: the mean row of the group's classes vs the row fitted to
the group's log-sum-exp on unlabelled inputs (`igpg.generator.base_rows.group_rows`), beside the generic network's
own maximum over each group (not a linear head: the reference the fitted row approximates) and the zoo's networks
trained on the task.

    .venv/bin/python eval/grouped_rows.py --zoo zoos/default --out eval/results/grouped-rows.md

Every zoo task with a grouped label whose architecture has a generic network of its dataset (the base of a request
of that architecture), per task split (train / test = held out). Ratios are to the trained networks' test accuracy.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from igpg.arch import ArchSpec
from igpg.data import Task, load_dataset
from igpg.evaluation.accuracy import accuracy
from igpg.evaluation.baselines import generic_group_max
from igpg.generator.base_rows import base_state, generic_key, group_inputs
from igpg.zoo.catalogue import Catalogue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", default="zoos/default")
    ap.add_argument("--out", type=Path, default=None, help="Markdown file to write (else printed only)")
    args = ap.parse_args()
    zoo = Catalogue(args.zoo)
    generics = {f"{r['arch']}@{r['dataset']}": r["net_id"] for r in zoo.rows("n.role='generic' AND a.split='train'")}
    queries: dict[tuple, dict] = {}
    for r in zoo.rows("n.role='task' AND a.split='train'"):
        labels = r["labels"]
        if not any(isinstance(x, list) for x in labels):
            continue
        key = generic_key(r["arch"], r["dataset"])
        if key not in generics:
            continue
        q = queries.setdefault((r["task_id"], r["arch"]), {"split": r["task_split"], "arch": r["arch"], "key": key,
                                                          "dataset": r["dataset"], "labels": labels, "trained": []})
        q["trained"].append(r["test_acc"])
    rows = []
    for (task_id, arch), q in sorted(queries.items()):
        gen_arch = q["key"].rpartition("@")[0]
        generic = zoo.load(generics[q["key"]]).state_dict()
        spec = ArchSpec.parse(arch)
        test = Task.from_classes(q["dataset"], q["labels"]).relabel(load_dataset(q["dataset"]).test)
        group_max = generic_group_max(zoo, q, test)
        mean_row = accuracy(spec.load(base_state(generic, q["labels"])), test.x, test.y)
        fitted = accuracy(spec.load(base_state(generic, q["labels"], gen_arch, group_inputs(q["dataset"]))),
                          test.x, test.y)
        rows.append({"task_id": task_id, "arch": arch, "split": q["split"], "labels": q["labels"],
                     "trained": statistics.mean(q["trained"]), "mean_row": mean_row, "fitted": fitted,
                     "group_max": group_max})
    zoo.close()
    lines = ["| task split | queries | trained acc | mean row | fitted row | generic group max |", "|---|---|---|---|---|---|"]
    for split in ("train", "test"):
        sel = [r for r in rows if r["split"] == split]
        if not sel:
            continue
        ratio = lambda k: statistics.mean(r[k] / max(r["trained"], 1e-9) for r in sel)  # noqa: E731
        lines.append(f"| {split} | {len(sel)} | {statistics.mean(r['trained'] for r in sel):.4f} | "
                     f"{ratio('mean_row'):.4f} | {ratio('fitted'):.4f} | {ratio('group_max'):.4f} |")
    worse = [r for r in rows if r["fitted"] < r["mean_row"] - 1e-9]
    lines.append("")
    lines.append(f"Fitted row below the mean row on {len(worse)} of {len(rows)} queries"
                 + (": " + "; ".join(f"{r['arch']} {r['labels']} {r['mean_row']:.3f} -> {r['fitted']:.3f}"
                                     for r in worse[:8]) if worse else "") + ".")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        head = (f"# Grouped output rows from a generic network (`{args.zoo}`)\n\n"
                "Ratio = test accuracy / that of the zoo networks trained on the task (mean over queries). Mean row "
                "= the mean of the group's classes' generic rows, bias + log of the group size (the base before "
                "2026-12-03); fitted row = `base_rows.group_rows`: ridge regression of the generic network's "
                "features on the log-sum-exp of the group's logits, on 512 unlabelled training inputs that the generic "
                "network assigns to one of the task's classes (the base since); generic group max = the generic "
                "network with its logits maxed over each group (not expressible as a linear head: the reference).\n\n"
                "`.venv/bin/python eval/grouped_rows.py --zoo zoos/default`\n\n")
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(head + text + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
