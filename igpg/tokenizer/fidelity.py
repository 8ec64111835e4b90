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
from igpg.evaluate import accuracy
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
        bits = codes.indices.numel() * math.log2(tok.cfg.vocab_size) + codes.side.numel() * 8
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
