"""Benchmark: retrieval query latency, faiss IndexFlatIP vs a plain numpy scan, side by side in one run.

    python eval/bench_retrieval.py [--sizes 1000 10000 100000] [--queries 200] [--k 5] [--zoo DIR]
                                   [--json eval/results/bench_retrieval.json]

For each index size: synthetic unit-norm float32 embeddings of the real dimension (`igpg.retrieval.EMBED_DIM`),
one query at a time (a user's latency, not batch throughput), top-k by exact inner product, with 1 thread and
with the default thread count (faiss OpenMP, numpy BLAS). The two backends alternate query by query so a noisy,
shared machine slows both alike; both must return the same top-k.
With --zoo DIR, also the latency of `RetrievalIndex.search` on that zoo (filters + ranking; instructions
pre-embedded, so the text encoder's cost, a separate 15-500 ms here depending on load, is left out).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import numpy as np

from igpg.retrieval import EMBED_DIM, RetrievalIndex


def unit_rows(rng: np.random.Generator, n: int, d: int, chunk: int = 10_000) -> np.ndarray:
    out = np.empty((n, d), np.float32)
    for i in range(0, n, chunk):  # in chunks: a float64 draw of 1e5 x 2100 would need 1.7 GB at once
        block = rng.standard_normal((min(chunk, n - i), d), dtype=np.float32)
        out[i:i + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def numpy_top(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = x @ q  # (N,)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def percentiles(ms: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def bench_size(n: int, threads: list[int], queries: int, k: int, seed: int) -> list[dict]:
    """One row per thread count, on the same data and queries."""
    import faiss
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    x = unit_rows(rng, n, EMBED_DIM)  # (N, D)
    index = faiss.IndexFlatIP(EMBED_DIM)
    index.add(x)
    qs = unit_rows(rng, queries + 5, EMBED_DIM)  # the first 5 warm caches and thread pools
    rows = []
    for t in threads:
        faiss.omp_set_num_threads(t)
        times: dict[str, list[float]] = {"faiss": [], "numpy": []}
        agree = 0
        with threadpool_limits(limits=t):
            for j, q in enumerate(qs):
                found = {}
                for backend in (("faiss", "numpy") if j % 2 == 0 else ("numpy", "faiss")):
                    t0 = time.perf_counter()
                    found[backend] = index.search(q[None], k)[1][0] if backend == "faiss" else numpy_top(x, q, k)
                    if j >= 5:
                        times[backend].append((time.perf_counter() - t0) * 1000)
                agree += j >= 5 and list(found["faiss"]) == list(found["numpy"])
        rows.append({"entries": n, "threads": t, "faiss": percentiles(times["faiss"]),
                     "numpy": percentiles(times["numpy"]), "same_top_k": f"{agree}/{queries}"})
    return rows


def bench_zoo(zoo: Path, queries: int, k: int, seed: int) -> dict:
    from igpg.text import embed_texts

    out = {}
    for backend in ("faiss", "numpy"):
        index = RetrievalIndex.open(zoo, backend=backend)
        rng = random.Random(seed)
        picks = [rng.choice(index.rows) for _ in range(queries)]
        embed_texts(sorted({r["instruction"] for r in picks}))  # pre-embed: measure the index, not the text encoder
        ms = []
        for r in picks:
            t0 = time.perf_counter()
            index.search(r["dataset"], r["labels"], r["arch"], r["instruction"], hits=k)
            ms.append((time.perf_counter() - t0) * 1000)
        out[backend] = percentiles(ms)
    return {"zoo": zoo.name, "zoo_networks": len(index), **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zoo", type=Path, help="also time RetrievalIndex.search on this zoo (writes ZOO/retrieval/)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_retrieval.json")
    args = ap.parse_args()
    import faiss

    default_threads = faiss.omp_get_max_threads()
    threads = sorted({1, default_threads})
    print(f"embedding dim {EMBED_DIM}, top-{args.k}, {args.queries} queries per size, one query at a time; "
          f"faiss {faiss.__version__}, numpy {np.__version__}; threads {threads} (faiss OpenMP and numpy BLAS)")
    rows = []
    print(f"{'entries':>8} {'threads':>7} | {'faiss p50':>9} {'p95':>8} | {'numpy p50':>9} {'p95':>8} | same top-k")
    for n in args.sizes:
        for r in bench_size(n, threads, args.queries, args.k, args.seed):
            rows.append(r)
            print(f"{n:>8} {r['threads']:>7} | {r['faiss']['p50_ms']:>9.3f} {r['faiss']['p95_ms']:>8.3f} | "
                  f"{r['numpy']['p50_ms']:>9.3f} {r['numpy']['p95_ms']:>8.3f} | {r['same_top_k']}", flush=True)
    faiss.omp_set_num_threads(default_threads)
    result = {"dim": EMBED_DIM, "k": args.k, "queries": args.queries, "unit": "milliseconds per query",
              "faiss": faiss.__version__, "numpy": np.__version__, "threads": threads,
              "machine": f"{platform.machine()}, 2 shared cores (often busy: compare backends, not runs)",
              "sizes": rows}
    if args.zoo:
        z = bench_zoo(args.zoo, args.queries, args.k, args.seed)
        print(f"RetrievalIndex.search on a zoo of {z['zoo_networks']} networks (filters + ranking, text pre-embedded): "
              f"faiss p50 {z['faiss']['p50_ms']} ms p95 {z['faiss']['p95_ms']} ms; "
              f"numpy p50 {z['numpy']['p50_ms']} ms p95 {z['numpy']['p95_ms']} ms")
        result["zoo_search"] = z
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
