"""Tokenizer fidelity on held-out networks: does a network still work after encode -> codes -> decode?

Per network: accuracy of the reconstruction over accuracy of the original (test split of its task), relative
weight error ||w' - w|| / ||w|| over all parameters, bits per parameter, codes per network.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Callable

import torch

from igpg.arch import ArchSpec
from igpg.data import Task, load_dataset
from igpg.evaluation.accuracy import accuracy
from igpg.io import load_weights
from igpg.tokenizer.tokenizer import WeightTokenizer
from igpg.zoo.catalogue import Catalogue

HELDOUT = {
    "held-out tasks": "n.role='task' AND t.split='test' AND a.split='train'",
    "held-out architectures": "n.role='task' AND a.split='test'",
    "held-out seeds": "n.role='task' AND n.seed_split='test'",
}


def _task_data(dataset: str, labels, split: str = "test"):
    task = Task.from_classes(dataset, labels)
    return task.relabel(load_dataset(dataset).split(split))


def fidelity_rows(tok: WeightTokenizer, zoo: Catalogue, rows: list[dict],
                  progress: Callable[[int, int], None] | None = None) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        state, _ = load_weights(zoo.root / r["file"])
        spec = ArchSpec.parse(r["arch"])
        codes = tok.encode(state, spec)
        recon = tok.decode(codes)
        data = _task_data(r["dataset"], r["labels"])
        net = spec.build()
        net.load_state_dict(state)
        acc = accuracy(net, data.x, data.y)
        net.load_state_dict(recon)
        acc_r = accuracy(net, data.x, data.y)
        w = torch.cat([t.flatten() for t in state.values()])
        w_r = torch.cat([recon[k].flatten() for k in state])
        n_params = w.numel()
        bits = codes.indices.numel() * math.log2(tok.cfg.model.vocab_size) + codes.side.numel() * 8
        out.append({"net_id": r["net_id"], "arch": r["arch"], "dataset": r["dataset"], "acc": acc, "acc_recon": acc_r,
                    "ratio": acc_r / max(acc, 1e-9), "rel_error": ((w_r - w).norm() / w.norm()).item(),
                    "bits_per_param": bits / n_params, "codes": codes.indices.numel(), "n_params": n_params,
                    "code_set": codes.indices})
        if progress:
            progress(i + 1, len(rows))
    return out


def summarise(results: list[dict], vocab: int, codes_per_chunk: int) -> dict:
    if not results:
        return {"networks": 0}
    ratios = [r["ratio"] for r in results]
    used = set()
    for r in results:
        for q in range(codes_per_chunk):
            used.update((q, int(c)) for c in r["code_set"][:, q].unique())
    by_ds = defaultdict(list)
    for r in results:
        by_ds[r["dataset"]].append(r["ratio"])
    return {
        "networks": len(results),
        "ratio_mean": statistics.mean(ratios),
        "ratio_min": min(ratios),
        "ratio_median": statistics.median(ratios),
        "acc_original_mean": statistics.mean(r["acc"] for r in results),
        "acc_recon_mean": statistics.mean(r["acc_recon"] for r in results),
        "rel_error_mean": statistics.mean(r["rel_error"] for r in results),
        "bits_per_param_mean": statistics.mean(r["bits_per_param"] for r in results),
        "codes_per_network_mean": statistics.mean(r["codes"] for r in results),
        "params_per_network_mean": statistics.mean(r["n_params"] for r in results),
        "codebook_usage": len(used) / (vocab * codes_per_chunk),
        "ratio_mean_by_dataset": {k: statistics.mean(v) for k, v in sorted(by_ds.items())},
    }


def evaluate_tokenizers(zoo_dir, tokenizer_dirs: list, limit: int | None = None, seed: int = 0,
                        progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Fidelity of each tokenizer on each held-out category of the zoo (the same networks for every tokenizer)."""
    import random
    from pathlib import Path

    from igpg.coverage import KIND_TEXT, arch_kind

    zoo = Catalogue(zoo_dir)
    report = {"zoo": str(zoo_dir), "limit_per_category": limit, "tokenizers": []}
    picked = {}
    trained = {(r["arch"], r["dataset"]) for r in zoo.rows("n.role='task' AND a.split='train'")}
    for name, where in HELDOUT.items():
        rows = zoo.rows(where)
        random.Random(seed).shuffle(rows)
        if name == "held-out architectures":  # one category per kind: inside the range, narrower, wider, ...
            by_kind: dict[str, list[dict]] = {}
            for r in rows:
                by_kind.setdefault(arch_kind(r["arch"], r["dataset"], trained), []).append(r)
            for kind, kind_rows in sorted(by_kind.items(), key=lambda kv: list(KIND_TEXT).index(kv[0])
                                          if kv[0] in KIND_TEXT else 99):
                label = name if kind == "inside" else f"held-out architectures: {kind}"
                picked[label] = kind_rows[:limit] if limit else kind_rows
            continue
        picked[name] = rows[:limit] if limit else rows
    for tdir in tokenizer_dirs:
        tok = WeightTokenizer.load(tdir)
        cfg = tok.cfg.model
        entry = {"tokenizer": str(tdir), "chunk_size": cfg.chunk_size, "quantizer": cfg.quantizer,
                 "codebook": cfg.vocab_size, "codes_per_chunk": cfg.codes_per_chunk,
                 "normalisation": cfg.normalisation, "results": {}}
        for name, rows in picked.items():
            res = fidelity_rows(tok, zoo, rows, (lambda d, t, n=name: progress(f"{Path(tdir).name}: {n}", d, t))
                                if progress else None)
            entry["results"][name] = summarise(res, cfg.vocab_size, cfg.codes_per_chunk)
        report["tokenizers"].append(entry)
    zoo.close()
    return report


def report_markdown(report: dict) -> str:
    lines = [f"# Tokenizer fidelity on held-out networks of `{report['zoo']}`", "",
             "Accuracy ratio = test accuracy of the reconstructed network / of the original, on the network's own "
             "task. Rel. error = ||w' - w|| / ||w||. Bits/param counts every code (and side token) over the "
             "network's parameters.", "",
             "| tokenizer | chunk | quantiser | codebook x codes/chunk | norm | held out | nets | ratio mean | ratio min "
             "| rel. error | bits/param | codes/net | codebook usage |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in report["tokenizers"]:
        for cat, r in t["results"].items():
            if not r.get("networks"):
                continue
            lines.append(
                f"| {t['tokenizer']} | {t['chunk_size']} | {t['quantizer']} | {t['codebook']} x {t['codes_per_chunk']} "
                f"| {t['normalisation']} | {cat} | {r['networks']} | {r['ratio_mean']:.4f} | {r['ratio_min']:.4f} "
                f"| {r['rel_error_mean']:.3f} | {r['bits_per_param_mean']:.2f} | {r['codes_per_network_mean']:.0f} "
                f"| {r['codebook_usage']:.2f} |")
    return "\n".join(lines) + "\n"
