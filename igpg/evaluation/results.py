"""Result files and the statistics written into them: every evaluation writes through `write_results` (a JSON
report and its markdown table) or `write_json`, so every file is plain JSON (NaN and inf as null).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Sequence

from igpg.io import atomic_write_text


def mean_std(values: Sequence[float]) -> dict:
    vals = [v for v in values if v == v]
    if not vals:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": statistics.mean(vals), "std": statistics.pstdev(vals), "n": len(vals)}


def over_seeds(per_query: list[list[float]]) -> dict:
    """per_query[i][s] = accuracy of query i at seed s -> mean over queries per seed, then mean ± std over seeds."""
    by_seed = list(zip(*per_query))
    return mean_std([statistics.mean(accs) for accs in by_seed])


def fmt(stat: dict) -> str:
    return "n/a" if stat["n"] == 0 else f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def write_results(results: Path, stem: str, report: dict, markdown: str) -> list[Path]:
    results.mkdir(parents=True, exist_ok=True)
    paths = [results / f"{stem}.json", results / f"{stem}.md"]
    write_json(paths[0], report)
    atomic_write_text(paths[1], markdown)
    return paths


def write_json(path: Path, obj) -> Path:
    """`obj` as indented JSON at `path` (atomically), NaN and inf as null."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=1))
    return path


def json_safe(obj):
    """NaN and inf as null: the files are plain JSON any reader accepts."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
