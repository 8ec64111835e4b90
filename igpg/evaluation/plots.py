"""The suite's figures (matplotlib, Agg backend: files only, no display), each drawn from a results JSON.

- generator-scatter.png: generated vs trained test accuracy per query of `igpg eval generator`, one colour per
  category, with Pearson r (all queries and per category);
- fewshot.png: accuracy per k for generated, scratch and generated + fine-tuned (mean ± std over seeds);
- finetune.png: fine-tuning curves (test accuracy vs Adam steps) from generated, retrieved and random inits;
- speed.png: generation time vs parameter count and vs rows on log-log axes with fitted slopes; KV cache vs none.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def generator_scatter(report: dict, out: Path) -> dict:
    """Scatter of generated (mean over sampling seeds) vs trained accuracy; returns Pearson r overall and per
    category."""
    fig, ax = plt.subplots(figsize=(6, 6))
    xs, ys, r = [], [], {}
    for name, cat in report["categories"].items():
        qs = cat.get("queries") or []
        if not qs:
            continue
        x = [q["trained"] for q in qs]
        y = [float(np.mean(q["generated"])) for q in qs]
        r[name] = pearson(x, y)
        ax.scatter(x, y, s=16, alpha=0.7, label=f"{name} (r={r[name]:.2f})")
        xs += x
        ys += y
    r["all"] = pearson(xs, ys)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="generated = trained")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="trained network test accuracy",
           ylabel="generated network test accuracy",
           title=f"{report['generator']}: Pearson r = {r['all']:.3f} ({len(xs)} queries)")
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, out)
    return r


def fewshot_plot(report: dict, out: Path) -> None:
    ks = list(report["results"])
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.25
    for i, (route, label) in enumerate((("generated", "generated"), ("scratch", "scratch"),
                                        ("finetuned", "generated + fine-tuned"))):
        m = [report["results"][k][route]["mean"] for k in ks]
        s = [report["results"][k][route]["std"] for k in ks]
        ax.bar(np.arange(len(ks)) + (i - 1) * width, m, width, yerr=s, capsize=3, label=label)
    ax.axhline(np.mean([report["results"][k]["trained"] for k in ks]), color="k", ls="--", lw=0.8,
               label="trained on full data")
    ax.set(xticks=range(len(ks)), xticklabels=[f"k={k} per label" for k in ks], ylim=(0, 1.2), ylabel="test accuracy",
           yticks=np.linspace(0, 1, 6),
           title=f"Few-shot on {report['queries']} held-out tasks (mean ± std over {len(report['seeds'])} seeds)")
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    _save(fig, out)


def finetune_plot(report: dict, out: Path) -> None:
    steps = report["steps"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for init, curve in report["mean"].items():
        if curve:
            std = report["std_over_queries"][init]
            ax.plot(steps, curve, marker="o", ms=3, label=init)
            ax.fill_between(steps, np.subtract(curve, std), np.add(curve, std), alpha=0.12)
    ax.axhline(report["scratch_final"], color="grey", ls=":", lw=0.8, label="scratch final")
    ax.set_xscale("symlog", linthresh=10)
    ax.set(xlabel="Adam steps on the task's training split", ylabel="test accuracy", ylim=(0, 1),
           title=f"Fine-tuning from each init ({report['queries']} held-out tasks x {len(report['seeds'])} seeds)")
    ax.legend(fontsize=8)
    _save(fig, out)


def speed_plot(report: dict, out: Path) -> None:
    sc, kv = report["scaling"], report["kv_cache"]
    fig, (a, a2, b) = plt.subplots(1, 3, figsize=(15, 4))
    t = np.array([x["seconds"] for x in sc["points"]], float)
    for ax, key, prefix, label in ((a, "params", "loglog", "parameters of the generated network"),
                                   (a2, "rows", "loglog_rows", "rows (output neurons) = decoding steps")):
        x = np.array([p[key] for p in sc["points"]], float)
        ax.loglog(x, t, "o", label="measured")
        slope, icpt = sc.get(f"{prefix}_slope", float("nan")), sc.get(f"{prefix}_intercept", float("nan"))
        if len(x) >= 2 and math.isfinite(slope):
            grid = np.geomspace(x.min(), x.max(), 50)
            ax.loglog(grid, 10 ** (icpt + slope * np.log10(grid)), "--", label=f"fit: slope {slope:.2f}")
        ax.set(xlabel=label, ylabel="seconds per network (batch 1)", title=f"Generation time vs {key}")
        ax.legend(fontsize=8)
    names = [r["arch"] for r in kv["archs"]]
    x = np.arange(len(names))
    b.bar(x - 0.2, [r["cache_s"] for r in kv["archs"]], 0.4, label="KV cache")
    b.bar(x + 0.2, [r["no_cache_s"] for r in kv["archs"]], 0.4, label="no cache")
    b.set(xticks=x, ylabel="seconds per network", title="KV cache vs no cache")
    b.set_xticklabels(names, rotation=15, fontsize=7)
    b.legend(fontsize=8)
    _save(fig, out)


def plot_results(results: Path) -> dict:
    """Draw every figure whose JSON is in `results`; returns {png name: what it shows or None} (absent = skipped)."""
    done: dict = {}
    jobs = (("generator.json", "generator-scatter.png", generator_scatter), ("fewshot.json", "fewshot.png", fewshot_plot),
            ("finetune.json", "finetune.png", finetune_plot), ("speed.json", "speed.png", speed_plot))
    for src, png, draw in jobs:
        path = results / src
        if path.is_file():
            done[png] = draw(_nan(json.loads(path.read_text())), results / png)
    return done


def _nan(obj):
    """The results files store NaN as null; plotting wants NaN back."""
    if obj is None:
        return float("nan")
    if isinstance(obj, dict):
        return {k: (v if k in ("retrieved_from", "retrieved_labels") else _nan(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan(v) for v in obj]
    return obj


def _save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
