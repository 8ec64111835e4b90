"""Benchmark: generation time and peak memory against network size, ~1e3 to ~1e6 parameters, and the log-log slope.

    python eval/bench_scale.py [--model DIR] [--tokenizer DIR] [--repeats 3] [--no-beyond] [--no-resnet]

One architecture family, `mlp:64-H-H-H-10` on digits (three hidden layers of width H, 10 classes; H chosen for
~1e3, 1e4, 1e5 and 1e6 parameters), generated greedily (`samples=1`) with the released generator
(igpg/pretrained/default) and tokenizer (tokenizers/default). The 1e6 network has 2,074 rows, twice the
generator's context: it is decoded in windows (sample.py), and the tokenizer decodes its 125k chunks in windows
of 4096 (tokenizer.py). Each size runs in a fresh process, after a warm-up generation, so memory is the
generation's own:
- time: wall-clock seconds of `ParameterGenerator.generate` (decoding, tokenizer, support-set scoring), median
  of --repeats runs (one run for the largest);
- memory: peak resident set size above the process's size before the call, sampled every 5 ms from
  /proc/self/statm (torch allocates outside Python, where tracemalloc cannot see), and the ru_maxrss delta.
Slope: least-squares fit of log(time) on log(parameters) over the four sizes (1.0 = linear in parameters).
Unless --no-beyond, one more network of ~2e6 parameters (3,010 rows, three context windows), outside the fit: its
peak memory should stay near the 1e6 network's, since decoding holds one window of rows, not the network.

Unless --no-quality: do large networks work? `mlp:784-512-512-10` on mnist and `mlp:64-577-577-577-10` on digits
(each >= 500K parameters, all classes), generated and scored on the test split beside the transform baseline, a
network of the architecture trained on the task, and that network through the tokenizer.

Then, unless --no-resnet: torchvision's resnet18 (11.7M parameters, weights=None) through the released tokenizer
by the generic state-dict path (tokenizer/any_state_chunking.py: encode_state / decode_state, blocks of 4096 chunks): time,
peak memory and reconstruction error. The tokenizer never saw a ResNet; this says how far it carries, no more.

The machine is shared (2 cores, other jobs training in the background): timings are noisy, and the printed
results say so. Writes eval/results/bench_scale.json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (1_000, 10_000, 100_000, 1_000_000)
BEYOND = 2_000_000
INSTRUCTION = "Classify handwritten digits 0 to 9"
NOTE = ("Shared machine: 2 CPU cores, with other jobs (model training) running in the background during the "
        "measurement, so timings are noisy (they include waiting for a core); read the slope and orders of "
        "magnitude, not the last digit.")


def params_of(h: int) -> int:
    """mlp:64-H-H-H-10: (64 + 1) H + 2 (H + 1) H + (H + 1) 10."""
    return 65 * h + 2 * (h + 1) * h + (h + 1) * 10


def width_for(target: int) -> int:
    return min(range(1, 4096), key=lambda h: abs(params_of(h) - target))


class PeakRss:
    """Peak resident set size (bytes) while the block runs, sampled from /proc/self/statm."""

    def __init__(self, every: float = 0.005):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self.page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * self.page

    def __enter__(self) -> "PeakRss":
        self.before = self.rss()
        self.peak = self.before
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child_generate(args) -> dict:
    """In a fresh process: load, warm up, then time `repeats` generations of one width."""
    import torch

    torch.set_num_threads(1)
    from igpg.generator import ParameterGenerator

    gen = ParameterGenerator.from_pretrained(args.model, tokenizer=args.tokenizer)
    classes = list(range(10))
    gen.generate(INSTRUCTION, dataset="digits", classes=classes, arch="mlp:64-4-4-4-10", samples=1, seed=0)  # warm-up
    arch = f"mlp:64-{args.width}-{args.width}-{args.width}-10"
    runs = []
    for r in range(args.repeats):
        base = maxrss()
        with PeakRss() as mem:
            t0 = time.perf_counter()
            net = gen.generate(INSTRUCTION, dataset="digits", classes=classes, arch=arch, samples=1, seed=r)
            dt = time.perf_counter() - t0
        n = sum(p.numel() for p in net.parameters())
        runs.append({"seconds": dt, "peak_rss_delta_mb": (mem.peak - mem.before) / 2**20,
                     "ru_maxrss_delta_mb": (maxrss() - base) / 2**20, "support_acc": net.igpg_support_acc})
    spec = gen.check_request(INSTRUCTION, "digits", classes, arch).spec
    from igpg.generator.rows import row_layout

    lay = row_layout(str(spec), gen.cfg.codes.chunk_size, gen.cfg.codes.codes_per_chunk)
    return {"arch": arch, "params": n, "rows": len(lay), "codes": lay.num_codes,
            "windowed": 1 + 10 + (spec.depth + 1) + len(lay) > gen.cfg.model.max_seq_len,  # prefix: instruction, labels, layers
            "runs": runs}


QUALITY = (("mnist", "mlp:784-512-512-10"), ("digits", "mlp:64-577-577-577-10"))  # >= 500K parameters each


def child_quality(args) -> dict:
    """In a fresh process: does a large generated network work? Its test accuracy beside the transform baseline
    (the base it starts from), a network of the same architecture trained on the task (the zoo's settings: Adam,
    early stopping on validation) and that trained network after a tokenizer round trip (the tokenizer's cap)."""
    import torch

    torch.set_num_threads(1)
    from igpg.data import Task, load_dataset
    from igpg.evaluation.accuracy import accuracy
    from igpg.generator import ParameterGenerator
    from igpg.generator.conditions import support_set
    from igpg.zoo.config import TrainConfig
    from igpg.zoo.train import Job, train_job

    dataset, arch = QUALITY[args.width]
    gen = ParameterGenerator.from_pretrained(args.model, tokenizer=args.tokenizer)
    ds = load_dataset(dataset)
    classes = list(range(ds.num_classes))
    task = Task.from_classes(dataset, classes, INSTRUCTION)
    test = task.relabel(ds.test)
    t0 = time.perf_counter()
    net = gen.generate(INSTRUCTION, dataset=dataset, classes=classes, arch=arch, samples=1, seed=0)
    gen_seconds = time.perf_counter() - t0
    x, _ = support_set(task, gen.cfg.model.k_support, seed=0)
    spec = net.spec
    base = gen.bank.base(arch, dataset, classes, calibrate=x)
    t0 = time.perf_counter()
    trained = train_job(Job("bench", "generic", task, arch, 0, "train", "independent", TrainConfig(max_epochs=40, patience=5, lr=0.01, batch_size=64, weight_decay=0.0)))
    train_seconds = time.perf_counter() - t0
    ref = spec.load(trained.state)
    recon = spec.load(gen.tokenizer.decode(gen.tokenizer.encode(trained.state, arch)))
    found = gen.bank.source(arch, dataset)
    return {"dataset": dataset, "arch": arch, "params": spec.n_params, "generated": accuracy(net, test.x, test.y),
            "transform_calibrated": accuracy(spec.load(base), test.x, test.y) if base is not None else float("nan"),
            "trained": accuracy(ref, test.x, test.y), "tokenizer_round_trip": accuracy(recon, test.x, test.y),
            "base_from": None if found is None else found[0], "plan": [] if found is None else list(found[1].steps),
            "generate_seconds": gen_seconds, "train_seconds": train_seconds}


def child_resnet(args) -> dict:
    import torch
    import torchvision

    torch.set_num_threads(1)
    from igpg.tokenizer.any_state_chunking import reconstruction_error, state_schema
    from igpg.tokenizer.tokenizer import WeightTokenizer

    tok = WeightTokenizer.load(args.tokenizer or ROOT / "tokenizers" / "default")
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    schema = state_schema(state)
    with PeakRss() as mem:
        t0 = time.perf_counter()
        codes = tok.encode_state(state)
        t1 = time.perf_counter()
        back = tok.decode_state(codes)
        t2 = time.perf_counter()
    err = reconstruction_error(state, back)
    torchvision.models.resnet18(weights=None).load_state_dict(back, strict=True)
    state_mb = sum(v.numel() * v.element_size() for v in state.values()) / 2**20
    return {"arch": "torchvision resnet18 (weights=None)", "params": schema.num_params,
            "chunks": schema.num_chunks(tok.cfg.model.chunk_size), "encode_seconds": t1 - t0, "decode_seconds": t2 - t1,
            "peak_rss_delta_mb": (mem.peak - mem.before) / 2**20, "state_dict_mb": state_mb, **err}


def run_child(kind: str, args, **extra) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--repeats", str(extra.get("repeats", args.repeats))]
    if "width" in extra:
        cmd += ["--width", str(extra["width"])]
    for flag in ("model", "tokenizer"):
        if getattr(args, flag):
            cmd += [f"--{flag}", str(getattr(args, flag))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{kind} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def markdown(report: dict) -> str:
    lines = ["# Generation time and memory against network size (`eval/bench_scale.py`)", "", report["note"], "",
             "| target | architecture | parameters | rows | codes | windowed | time s (median) | runs | "
             "peak RSS delta MiB | ru_maxrss delta MiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in report["sizes"]:
        lines.append(f"| {s['target']:.0e} | `{s['arch']}` | {s['params']:,} | {s['rows']:,} | {s['codes']:,} | "
                     f"{'yes' if s['windowed'] else 'no'} | {s['seconds']:.2f} | {len(s['runs'])} | "
                     f"{s['peak_rss_delta_mb']:.1f} | {s['ru_maxrss_delta_mb']:.1f} |")
    big = report["sizes"][3]
    lines += ["", f"Log-log slope of time on parameters (the 4 sizes 1e3-1e6): **{report['slope']:.3f}** "
              f"(1e4 to 1e6 only: {report['slope_large']:.3f}). Time per parameter at 1e6: "
              f"{big['seconds'] / big['params'] * 1e6:.1f} us." + (" The 2e6 row is outside the fit: a memory check."
                                                                  if len(report["sizes"]) > 4 else ""), ""]
    if report.get("quality"):
        lines += ["Do large generated networks work? Test accuracy on all classes of the dataset (seed 0, one sample), "
                  "beside the transform baseline (the base the generator starts from: the nearest trained "
                  "architecture's generic network carried over, calibrated on the support samples), a network of the "
                  "same architecture trained on the task (Adam, lr 0.01, early stopping on validation, as the zoo) and "
                  "that trained network after a tokenizer round trip (the tokenizer's cap).", "",
                  "| dataset | architecture | parameters | generated | ratio | transform, calibrated | trained | "
                  "trained, tokenized | base from | generate s | train s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for q in report["quality"]:
            lines.append(f"| {q['dataset']} | `{q['arch']}` | {q['params']:,} | {q['generated']:.4f} | "
                         f"{q['generated'] / q['trained']:.3f} | {q['transform_calibrated']:.4f} | {q['trained']:.4f} | "
                         f"{q['tokenizer_round_trip']:.4f} | {q['base_from']} ({'; '.join(q['plan']) or 'its own'}) | "
                         f"{q['generate_seconds']:.1f} | {q['train_seconds']:.1f} |")
        lines.append("")
    if report.get("resnet18"):
        r = report["resnet18"]
        lines += [f"Generic path: {r['arch']}, {r['params']:,} parameters ({r['chunks']:,} chunks) through the "
                  f"released tokenizer: encode {r['encode_seconds']:.1f} s, decode {r['decode_seconds']:.1f} s, peak RSS "
                  f"delta {r['peak_rss_delta_mb']:.0f} MiB (the state dict alone is {r['state_dict_mb']:.0f} MiB); "
                  f"reconstruction relative L2 error {r['relative_l2']:.4f} (worst tensor {r['worst_tensor']}: "
                  f"{r['worst_tensor_relative_l2']:.4f}; max abs {r['max_abs']:.4f}). The tokenizer was trained on small "
                  "MLPs and CNNs only.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="generator directory (default: the released one)")
    ap.add_argument("--tokenizer", type=Path, default=None, help="tokenizer directory (default: the generator's)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per size below 1e6 (the median is reported)")
    ap.add_argument("--no-beyond", action="store_true", help="skip the ~2e6-parameter network (memory check)")
    ap.add_argument("--no-resnet", action="store_true", help="skip the resnet18 tokenizer round trip")
    ap.add_argument("--results", type=Path, default=ROOT / "eval" / "results")
    ap.add_argument("--no-quality", action="store_true", help="skip the accuracy of the large networks")
    ap.add_argument("--only-quality", action="store_true", help="only the accuracy of the large networks "
                    "(bench_scale_quality.json)")
    ap.add_argument("--child", choices=("generate", "resnet", "quality"), help=argparse.SUPPRESS)
    ap.add_argument("--width", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "generate":
        print(json.dumps(child_generate(args)))
        return
    if args.child == "resnet":
        print(json.dumps(child_resnet(args)))
        return
    if args.child == "quality":
        print(json.dumps(child_quality(args)))
        return

    if args.only_quality:
        report = {"note": NOTE, "model": str(args.model or "igpg/pretrained/default"),
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "quality": [run_child("quality", args, width=i, repeats=1) for i in range(len(QUALITY))]}
        print(json.dumps(report, indent=1))
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "bench_scale_quality.json").write_text(json.dumps(report, indent=1))
        return
    sizes = []
    for target in TARGETS + (() if args.no_beyond else (BEYOND,)):
        res = run_child("generate", args, width=width_for(target), repeats=1 if target >= 1_000_000 else args.repeats)
        res["target"] = target
        res["seconds"] = statistics.median(r["seconds"] for r in res["runs"])
        res["peak_rss_delta_mb"] = max(r["peak_rss_delta_mb"] for r in res["runs"])
        res["ru_maxrss_delta_mb"] = max(r["ru_maxrss_delta_mb"] for r in res["runs"])
        sizes.append(res)
        print(f"{res['arch']}: {res['params']:,} parameters, {res['seconds']:.2f} s, "
              f"peak RSS +{res['peak_rss_delta_mb']:.1f} MiB", flush=True)
    xs, ys = [s["params"] for s in sizes[:4]], [s["seconds"] for s in sizes[:4]]
    report = {"note": NOTE, "sizes": sizes, "slope": slope(xs, ys), "slope_large": slope(xs[1:], ys[1:]),
              "model": str(args.model or "igpg/pretrained/default"), "tokenizer": str(args.tokenizer or "tokenizers/default"),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if not args.no_resnet:
        report["resnet18"] = run_child("resnet", args, repeats=1)
    if not args.no_quality:
        report["quality"] = [run_child("quality", args, width=i, repeats=1) for i in range(len(QUALITY))]
        for q in report["quality"]:
            print(f"{q['arch']} on {q['dataset']}: generated {q['generated']:.4f}, trained {q['trained']:.4f}", flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bench_scale.json").write_text(json.dumps(report, indent=1))
    md = markdown(report)
    (args.results / "bench_scale.md").write_text(md + "\n")
    print(json.dumps(report, indent=1))
    print(md)


if __name__ == "__main__":
    main()
