"""How often the labels read from an instruction (`igpg.data.labels_from_instruction`, what `igpg generate` does
without --classes) are exactly the task's labels, in order.

    .venv/bin/python eval/read_labels.py --zoo zoos/default --out eval/results/read-labels.md

Every phrasing (training and held out, `igpg.data.instructions`) of every task of the zoo's catalogue, by the kind
of template (subset, grouped, named grouping: the grouping's own wordings), beside free-form phrasings written here
(not from the templates) that must be read, and nonsense or ambiguous ones that must be refused. No network, no
model: the reader alone. Without the zoo, only the free-form phrasings are measured.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from igpg.data import Task, instructions, labels_from_instruction, load_dataset
from igpg.errors import IgpgError

ODD, EVEN = (1, 3, 5, 7, 9), (0, 2, 4, 6, 8)
LOW, HIGH = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
# (instruction, dataset, the labels it means): phrasings a user might type, none of them a template's
FREE_FORM = [
    ("is it a three or an eight?", "digits", [3, 8]),
    ("tell odd digits from even ones", "digits", [ODD, EVEN]),
    ("Build a classifier for 1, 4 and 7 in that order", "digits", [1, 4, 7]),
    ("Distinguish 3s from 8s", "digits", [3, 8]),
    ("Recognise sevens, ones and fours", "digits", [7, 1, 4]),
    ("which digit is it: 2, 3 or 4?", "mnist", [2, 3, 4]),
    ("I want a network with 2 outputs: 6 and 9", "digits", [6, 9]),
    ("Separate the digit 5 from the digit 6", "mnist1d", [5, 6]),
    ("Build a three-way classifier: one, four and seven", "digits", [1, 4, 7]),
    ("Classify digits into two groups: 0 and 1 versus 2 and 3", "digits", [(0, 1), (2, 3)]),
    ("1+3+5 vs 0+2+4", "digits", [(1, 3, 5), (0, 2, 4)]),
    ("Sort the digits into {0, 9} and {6, 8}", "mnist", [(0, 9), (6, 8)]),
    ("even or odd?", "mnist1d", [EVEN, ODD]),
    ("Is the digit below five or five or more? answer: less than five vs 5 or more", "digits", [LOW, HIGH]),
    ("Tell prime digits from the ones that are not prime", "digits", [(2, 3, 5, 7), (0, 1, 4, 6, 8, 9)]),
    ("output 0 = 3, output 1 = 5, output 2 = 8", "digits", [3, 5, 8]),
    ("A 4-way classifier of MNIST-1D signals: nine, zero, two and six", "mnist1d", [9, 0, 2, 6]),
    ("Tell maple leaves from oak leaves", "ucr_osuleaf", [(0, 1, 2, 3), (4, 5)]),
    ("Acer negundo vs Quercus kelloggii", "ucr_osuleaf", [3, 5]),
    ("pick-up vs shake vs left circle", "ucr_pickupgesturewiimotez", [0, 1, 6]),
]
# nonsense, one label only, a class twice, a count or a threshold taken for a class, mixed groupings, negations
REFUSED = [
    ("asdf qwerty zxcv", "digits"),
    ("Classify handwritten digits", "digits"),
    ("Is it a 7?", "digits"),
    ("Classify 3, 5 and 3", "digits"),
    ("odd or less than 5", "digits"),
    ("Tell odd digits from 4 and 6", "digits"),
    ("digits 0-4 vs 5-9", "digits"),
    ("Classify digits greater than 4", "digits"),
    ("Classify 1, 2 and 3 but not 4", "digits"),
    ("Classify 3 and 5 or 8", "digits"),
    ("Classify digits 12 and 3", "mnist"),
    ("Classify 1 and 2", "ucr_osuleaf"),
]


def _reads(instruction: str, dataset, labels) -> bool | None:
    """True if read exactly (labels and order), False if read otherwise, None if refused."""
    try:
        return labels_from_instruction(instruction, dataset) == Task(dataset.name, labels).labels
    except IgpgError:
        return None


def _template_kind(template_id: str) -> str:
    kind = template_id.split(".")[0]
    return kind if kind in ("subset", "grouped") else "named grouping"


def zoo_table(zoo: Path) -> list[str]:
    from igpg.zoo.catalogue import Catalogue

    tasks = {r["task_id"]: (r["dataset"], r["labels"]) for r in Catalogue(zoo).rows("n.role='task'")}
    counts: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0, 0])  # right, wrong, refused
    misread: list[str] = []
    for dataset, labels in tasks.values():
        ds = load_dataset(dataset)
        task = Task(dataset, labels)
        for p in instructions(task, ds):
            result = _reads(p.text, ds, task.labels)
            counts[(_template_kind(p.template_id), p.heldout)][0 if result else 1 if result is False else 2] += 1
            if result is not True and len(misread) < 10:
                misread.append(f"- `{p.text}` ({dataset}, {'misread' if result is False else 'refused'})")
    lines = [f"Every phrasing of the {len(tasks)} tasks of `{_shown(zoo)}` (by template kind; `heldout` phrasings "
             "are kept out of the generator's training):", "",
             "| template kind | training phrasings read exactly | held-out phrasings read exactly | misread "
             "| refused |",
             "|---|---|---|---|---|"]
    for kind in ("subset", "grouped", "named grouping"):
        cells = []
        for held in (False, True):
            right, wrong, refused = counts[(kind, held)]
            n = right + wrong + refused
            cells.append(f"{right / n:.3f} ({right}/{n})" if n else "-")
        wrong = sum(counts[(kind, h)][1] for h in (False, True))
        refused = sum(counts[(kind, h)][2] for h in (False, True))
        lines.append(f"| {kind} | {cells[0]} | {cells[1]} | {wrong} | {refused} |")
    return lines + ([""] + misread if misread else [])


def free_form_table() -> list[str]:
    read = [(text, dataset, _reads(text, load_dataset(dataset), labels)) for text, dataset, labels in FREE_FORM]
    refused = [(text, dataset, _refused(text, dataset)) for text, dataset in REFUSED]
    right = sum(r is True for *_, r in read)
    n_refused = sum(r for *_, r in refused)
    lines = ["| free-form phrasings | result |", "|---|---|",
             f"| meant to be read ({len(read)}) | {right / len(read):.3f} read exactly ({right}/{len(read)}) |",
             f"| nonsense or ambiguous ({len(refused)}) | {n_refused / len(refused):.3f} refused "
             f"({n_refused}/{len(refused)}) |", "", "Each one:", ""]
    lines += [f"- {'read' if r else 'MISREAD' if r is False else 'REFUSED'}: `{t}` ({d})" for t, d, r in read]
    lines += [f"- {'refused' if r else 'READ'}: `{t}` ({d})" for t, d, r in refused]
    return lines


def _refused(text: str, dataset: str) -> bool:
    try:
        labels_from_instruction(text, dataset)
    except IgpgError:
        return True
    return False


def _shown(zoo: Path) -> str:
    return str(Path(*zoo.parts[-2:]))  # "zoos/default": no machine's absolute path in a results file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", type=Path, default=Path("zoos/default"))
    ap.add_argument("--out", type=Path, default=None, help="Markdown file to write (else printed only)")
    args = ap.parse_args()
    lines = ["# Labels read from the instruction", "",
             "`igpg generate` without `--classes` reads the labels from the instruction "
             "(`igpg.data.labels_from_instruction`). Written by `eval/read_labels.py"
             f"{f' --zoo {_shown(args.zoo)}' if args.zoo.is_dir() else ''}`.", ""]
    if args.zoo.is_dir():
        lines += zoo_table(args.zoo) + [""]
    else:
        lines += [f"(no zoo at `{args.zoo}`: the template phrasings are not measured)", ""]
    lines += free_form_table()
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for the temporary file, not the result
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
