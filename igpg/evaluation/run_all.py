"""`igpg eval all`: every evaluation in one run, at full size (`make eval`) or test size (`--quick`).

    run_all(zoo_dir="zoos/default", results=Path("eval/results"))            # full size (sizes: FULL)
    run_all(zoo_dir=tiny_zoo, results=tmp, model=gen_dir, quick=True)        # test size (sizes: QUICK)

Pieces, in order (each writes its files as soon as it is done; `skip` leaves pieces out):
  tokenizer  -> tokenizer.json / .md   fidelity of the generator's tokenizer on held-out networks
  generator  -> generator.json / .md   generated vs trained per held-out split, beside the baselines
  fewshot    -> fewshot.json / .md     k = 1, 5, 10 samples per label: generated, scratch, generated + fine-tuned
  finetune   -> finetune.json / .md    test accuracy vs Adam steps from generated, retrieved, random inits
  speed      -> speed.json / .md       batched generation vs training, time vs parameters, KV cache
  plots      -> *.png                  from whichever of the JSON files are in the results directory
and, from a complete run (nothing skipped), suite.json / suite.md: the sizes used, the seconds each piece took,
the files written (a partial run, e.g. plots alone after `generator.json` changed, leaves them as they are).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from igpg.errors import IgpgError
from igpg.generator.api import DEFAULT_MODEL, ParameterGenerator
from igpg.generator.model_dir import TOKENIZER_DIR
from igpg.io import atomic_write_text
from igpg.evaluation.heldout import Progress
from igpg.evaluation.results import write_json, write_results

PIECES = ("tokenizer", "generator", "fewshot", "finetune", "speed", "plots")


@dataclass(frozen=True)
class Sizes:
    tokenizer_limit: int  # networks per held-out category
    generator_limit: int  # task x architecture queries per category (3 sampling seeds each)
    fewshot_limit: int  # held-out task queries
    fewshot_ks: tuple[int, ...]
    fewshot_steps: int
    finetune_limit: int
    finetune_steps: tuple[int, ...]
    speed_limit: int  # held-out task queries generated in one batched run and trained to the same accuracy
    speed_per_query: int  # networks generated per speed query (seeds), so batches share an architecture
    speed_max_train_steps: int
    speed_repeats: int
    seeds: tuple[int, ...] = (0, 1, 2)
    scaling_archs: tuple | None = None  # None: speed.SCALING_ARCHS
    cache_archs: tuple | None = None  # None: speed.CACHE_ARCHS


# make eval: sized from measured pieces to finish in about 30 minutes here (see README, "Evaluation suite")
FULL = Sizes(tokenizer_limit=100, generator_limit=30, fewshot_limit=40, fewshot_ks=(1, 5, 10), fewshot_steps=100,
             finetune_limit=30, finetune_steps=(0, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500),
             speed_limit=32, speed_per_query=8, speed_max_train_steps=3000, speed_repeats=2)
# --quick: test size, about a minute on the tiny zoo
QUICK = Sizes(tokenizer_limit=3, generator_limit=2, fewshot_limit=2, fewshot_ks=(1, 5, 10), fewshot_steps=5,
              finetune_limit=2, finetune_steps=(0, 2, 5, 10), speed_limit=3, speed_per_query=2, speed_max_train_steps=50,
              speed_repeats=1, scaling_archs=(("digits", "mlp:64-4-10"), ("digits", "mlp:64-16-10"),
                                              ("digits", "mlp:64-64-10")),
              cache_archs=(("digits", "mlp:64-8-3"),))


def tokenizer_dir(model: Path | None, tokenizer: Path | None = None) -> Path:
    """The tokenizer `from_pretrained(model, tokenizer)` loads: `tokenizer`, else the generator directory's copy."""
    path = Path(tokenizer) if tokenizer is not None else Path(model if model is not None else DEFAULT_MODEL) / TOKENIZER_DIR
    try:  # shown in tokenizer.md: the name relative to the working directory when it is below it
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def run_all(zoo_dir, results: Path, model: Path | None = None, quick: bool = False, skip=(),
            progress: Progress | None = None, log=print, device: str = "auto",
            tokenizer: Path | None = None) -> dict:
    """Run every piece not in `skip`; returns the suite summary (written as results/suite.json and .md when nothing
    was skipped)."""
    from igpg.evaluation import fewshot, finetune, plots, speed
    from igpg.evaluation.generator_quality import evaluate_generator
    from igpg.evaluation.generator_quality import report_markdown as generator_markdown
    from igpg.evaluation.tokenizer_fidelity import evaluate_tokenizers
    from igpg.evaluation.tokenizer_fidelity import report_markdown as tokenizer_markdown
    from igpg.zoo.catalogue import Catalogue

    unknown = set(skip) - set(PIECES)
    if unknown:
        raise IgpgError(f"unknown piece(s) {', '.join(sorted(unknown))}; known: {', '.join(PIECES)}")
    Catalogue(zoo_dir).close()  # a missing zoo is reported before anything runs
    sizes = QUICK if quick else FULL
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    gen = ParameterGenerator.from_pretrained(model, tokenizer=tokenizer, device=device)
    summary = {"generator": gen.name, "zoo": str(zoo_dir), "quick": quick, "sizes": asdict(sizes), "seconds": {},
               "files": {}}
    sc = {"scaling_archs": sizes.scaling_archs or speed.SCALING_ARCHS,
          "cache_archs": sizes.cache_archs or speed.CACHE_ARCHS}
    steps = {
        "tokenizer": lambda: _write(results, "tokenizer", evaluate_tokenizers(
            zoo_dir, [tokenizer_dir(model, tokenizer)], sizes.tokenizer_limit, progress=progress), tokenizer_markdown),
        "generator": lambda: _write(results, "generator", evaluate_generator(
            gen, zoo_dir, limit=sizes.generator_limit, seeds=sizes.seeds, progress=progress), generator_markdown),
        "fewshot": lambda: fewshot.write_fewshot(fewshot.run_fewshot(
            gen, zoo_dir, ks=sizes.fewshot_ks, limit=sizes.fewshot_limit, seeds=sizes.seeds,
            steps=sizes.fewshot_steps, progress=progress), results),
        "finetune": lambda: finetune.write_finetune(finetune.run_finetune(
            gen, zoo_dir, limit=sizes.finetune_limit, seeds=sizes.seeds, steps=sizes.finetune_steps,
            progress=progress), results),
        "speed": lambda: speed.write_speed(speed.run_speed(
            gen, zoo_dir, limit=sizes.speed_limit, per_query=sizes.speed_per_query, repeats=sizes.speed_repeats,
            max_train_steps=sizes.speed_max_train_steps, progress=progress, **sc), results),
        "plots": lambda: [results / name for name in plots.plot_results(results)],
    }
    for piece in PIECES:
        if piece in skip:
            continue
        t0 = time.perf_counter()
        written = steps[piece]()
        summary["seconds"][piece] = round(time.perf_counter() - t0, 1)
        summary["files"][piece] = [p.name for p in written]
        log(f"{piece}: {summary['seconds'][piece]:.1f} s -> {', '.join(summary['files'][piece]) or 'nothing'}")
    summary["seconds"]["total"] = round(sum(summary["seconds"].values()), 1)
    if not skip:
        write_json(results / "suite.json", summary)
        atomic_write_text(results / "suite.md", suite_markdown(summary))
    return summary


def _write(results: Path, stem: str, report: dict, markdown) -> list[Path]:
    """As `igpg eval tokenizer` / `igpg eval generator` write their files (one writer: NaN as null)."""
    return write_results(results, stem, report, markdown(report))


def suite_markdown(summary: dict) -> str:
    lines = [f"# Evaluation suite: generator `{summary['generator']}`, zoo `{summary['zoo']}`"
             + (" (quick, test size)" if summary["quick"] else ""), "", "| piece | seconds | files |", "|---|---|---|"]
    for piece, secs in summary["seconds"].items():
        lines.append(f"| {piece} | {secs:.1f} | {', '.join(summary['files'].get(piece, []))} |")
    return "\n".join(lines) + "\n"
