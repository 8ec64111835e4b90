"""`igpg zoo info`: counts per dataset / architecture / split and accuracy statistics of a zoo."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from igpg.zoo.catalogue import Catalogue


@dataclass
class ZooSummary:
    name: str
    rows: list[dict]

    def groups(self, key) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = defaultdict(list)
        for r in self.rows:
            out[key(r)].append(r)
        return dict(sorted(out.items()))

    def table(self, title: str, key) -> Table:
        t = Table(title=title, title_justify="left")
        t.add_column("", justify="left", no_wrap=True)  # the group's name; short headers keep a row within 80 columns
        for col in ("networks", "median", "mean", "min", "chance"):
            t.add_column(col, justify="right", no_wrap=True)
        for name, rows in self.groups(key).items():
            acc = [r["test_acc"] for r in rows]
            chance = statistics.mean(1 / len(r["labels"]) for r in rows)
            t.add_row(name, str(len(rows)), f"{statistics.median(acc):.4f}", f"{statistics.mean(acc):.4f}",
                      f"{min(acc):.4f}", f"{chance:.4f}")
        return t

    def print(self, console: Console) -> None:
        tasks = {r["task_id"] for r in self.rows if r["role"] == "task"}
        console.print(f"zoo {self.name!r}: {len(self.rows)} networks, {len(tasks)} tasks, "
                      f"{len({r['arch'] for r in self.rows})} architectures; test accuracy per group "
                      "(median, mean, min) beside chance (1 / number of labels)")
        if not self.rows:
            return
        console.print(ZooSummary(self.name, [r for r in self.rows if r["role"] == "task"]).table(
            "by dataset (task networks)", lambda r: r["dataset"]))
        console.print(self.table("by role", lambda r: r["role"]))
        console.print(self.table("by architecture template and split",
                                 lambda r: f"{r['template']} [{r['arch_split']}]"))
        task_rows = [r for r in self.rows if r["role"] == "task"]
        split = ZooSummary(self.name, task_rows)
        console.print(split.table("by split (task / architecture / seed)",
                                  lambda r: f"{r['task_split']} / {r['arch_split']} / {r['seed_split']}"))
        console.print(split.table("by task kind", lambda r: r["kind"]))


def zoo_summary(root: str | Path) -> ZooSummary:
    cat = Catalogue(root)
    try:
        rows = cat.rows()
        templates = dict(cat.db.execute("SELECT arch, template FROM archs").fetchall())
        name = (cat.db.execute("SELECT value FROM meta WHERE key='name'").fetchone() or [str(root)])[0]
    finally:
        cat.close()
    for r in rows:
        r["template"] = templates[r["arch"]]
    return ZooSummary(name, rows)
