"""The `igpg` command line: one small function per command, each a thin call of the Python API.

    igpg zoo build --config configs/zoo/tiny.yaml --out zoos/tiny [--workers 2] [--backend ray [--address A]]
    igpg zoo info zoos/tiny
    igpg zoo verify zoos/tiny
    igpg zoo import my-nets/ --out zoos/mine     # your own networks: a folder + tasks.jsonl, or the Model Zoos layout
    igpg --version

Bad input prints `error: <one line>` on stderr and exits with code 2; nothing is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from igpg.errors import IgpgError


def _no_flag_type_labels() -> None:
    """Typer's rich help labels every flag `<bool>` (even --help); a flag takes no value, so it shows none."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_igpg", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag and not self.count else shown(self, ctx)

    display_type_rich._igpg = True
    TyperOption.display_type_rich = display_type_rich


_no_flag_type_labels()

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)  # one result per line, never wrapped mid-line

app = typer.Typer(
    name="igpg",
    help="Generate the weights of whole neural networks from an instruction, a few labelled samples and an "
    "architecture (IGPG, arXiv 2504.02012). Runs offline on CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="Build and inspect model zoos (the trained networks everything learns from).",
                      no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
train_app = typer.Typer(help="Train the weight tokenizer and the generator.", no_args_is_help=True)
app.add_typer(train_app, name="train")
eval_app = typer.Typer(help="Measure tokenizers and generators; write eval/results/*.json and *.md.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")

data_app = typer.Typer(help="Inspect the datasets igpg can use.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        from igpg import __version__

        out.print(f"igpg {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass  # the app's help is Typer(help=...); this callback only carries --version

# dotted overrides of a config file (igpg/config.py), shared by zoo build and the train commands
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", help="Override one config value (repeatable); the value is YAML, e.g. "
    "--set train.lr=3e-4 --set model.dim=256. An unknown key is an error.")]
ZooDir = Annotated[Path, typer.Argument(help="Zoo directory (catalogue.sqlite + nets/).", show_default=False)]
# options shared by generate and retrieve, defined once
InstructionArg = Annotated[str, typer.Argument(help="What the network should do, in plain words.")]
DatasetOpt = Annotated[str, typer.Option(help="Dataset name: digits, mnist, mnist1d, torchvision:<Name>.")]
ClassesOpt = Annotated[str, typer.Option(help="Output labels in order: 3,5,8 or groups 1+3+5,0+2+4 or JSON.")]
ReadClassesOpt = Annotated[Optional[str], typer.Option(
    "--classes", show_default=False, help="Output labels in order: 3,5,8 or groups 1+3+5,0+2+4 or JSON. Left out: "
    "read from the instruction, which must name them in order ('is it a 3 or an 8?', 'odd vs even').")]
ArchOpt = Annotated[str, typer.Option(help="Architecture, e.g. mlp:64-32-3 or cnn:1x8x8-8-16-3.")]
ModelOpt = Annotated[Optional[Path], typer.Option(help="Generator directory (default: the released model).")]
# budgets (generator/budget.py): the defaults are DEFAULT_MAX_PARAMS and DEFAULT_MAX_MEMORY
MaxParamsOpt = Annotated[str, typer.Option(help="Refuse a network with more parameters than this (e.g. 2M).")]
MaxMemoryOpt = Annotated[str, typer.Option(help="Refuse a request whose decoding is estimated to need more memory "
                                           "than this (e.g. 2GiB); batches are split to fit.")]
TokenizerOpt = Annotated[Optional[Path], typer.Option(
    "--tokenizer", help="Tokenizer directory, for a generator directory that holds none (default: MODEL/tokenizer).")]
DeviceOpt = Annotated[str, typer.Option(help="Where the model runs: auto (cuda, else mps, else cpu), cpu, cuda, "
                                        "cuda:N or mps.")]
DataRootOpt = Annotated[Optional[Path], typer.Option(
    help="Local folder of a torchvision:<Name> dataset (never downloaded).")]
# sampling (generator/sample.py SamplingConfig, which holds the defaults and checks the values): an option left
# unset is SamplingConfig's default, so the command line and the API decode alike
SamplesOpt = Annotated[Optional[int], typer.Option(min=1, show_default=False, help=(
    "Best-of-K: decode K networks (one at --temperature, K-1 sampled) and keep the best on the support samples "
    "\\[default: 1, greedy only]."))]
KOpt = Annotated[Optional[int], typer.Option("--k", min=1, max=1000, show_default=False, help=(
    "Support samples: labelled samples per label to condition on \\[default: the model's, 5 for the released one]."))]
TemperatureOpt = Annotated[Optional[float], typer.Option(min=0.0, max=100.0, show_default=False, help=(
    "0 = greedy; >0 samples (the K-1 extra candidates of --samples use 0.5 when it is 0) \\[default: 0]."))]
TopKOpt = Annotated[Optional[int], typer.Option("--top-k", min=1, show_default=False, help=(
    "Sample among the K most likely codes only \\[default: all]."))]
TopPOpt = Annotated[Optional[float], typer.Option("--top-p", min=0.0, max=1.0, show_default=False, help=(
    "Sample among the smallest set of codes whose probability reaches P \\[default: all]."))]
GuidanceOpt = Annotated[Optional[float], typer.Option(min=0.0, max=100.0, show_default=False, help=(
    "Classifier-free guidance scale \\[default: 1, off]."))]


def _root(data_root: Path | None) -> str | None:
    return None if data_root is None else str(data_root)


def _sampling(**given):
    """The SamplingConfig of the options given (None: not given, SamplingConfig's default); bad values are refused
    here, before any model loads."""
    from igpg.generator.sample import SamplingConfig

    return SamplingConfig(**{key: value for key, value in given.items() if value is not None})


class _Rate(ProgressColumn):
    """Steps (or items) per second, once rich has measured it."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f}/s" if task.speed else "", style="progress.data.speed")


class _Bars:
    """Rich progress bars that appear at the first update, so an early error prints nothing else; nothing at all
    when stderr is not a terminal (logs and pipes get the results, not bar frames). Keyword fields of an update
    (loss=...) are shown beside its bar."""

    def __init__(self, out_console: Console | None = None) -> None:
        self.console = out_console or console
        self.bar: Progress | None = None
        self.ids: dict[str, int] = {}
        self.done: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int, **fields) -> None:
        if not self.console.is_terminal:
            return
        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
                                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                console=self.console)
            self.bar.start()
        if phase not in self.ids:
            self.ids[phase] = self.bar.add_task(phase, total=total, info="")
        elif done < self.done[phase]:  # a phase that starts over (the rows of the next decoding pass)
            self.bar.reset(self.ids[phase], total=total)
        self.done[phase] = done
        info = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
        self.bar.update(self.ids[phase], completed=done, total=total, **({"info": info} if fields else {}))

    def __enter__(self) -> "_Bars":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@data_app.command("info")
def data_info(
    name: Annotated[str, typer.Argument(help="digits, mnist, mnist1d or torchvision:<Name>.")],
    data_root: DataRootOpt = None,
) -> None:
    """Load a dataset (offline) and print its shape, classes and split sizes.

    Example: igpg data info torchvision:MNIST --data-root ~/data
    """
    from igpg.data import load_dataset

    ds = load_dataset(name, str(data_root) if data_root else None)
    out.print(f"{ds.name}: input {'x'.join(map(str, ds.input_shape))}, {ds.num_classes} classes "
              f"({', '.join(ds.class_names)}); train {len(ds.train.y)}, val {len(ds.val.y)}, test {len(ds.test.y)}")


@zoo_app.command("build")
def zoo_build(
    config: Annotated[Path, typer.Option("--config", "-c", help="Zoo config YAML, e.g. configs/zoo/default.yaml.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Zoo directory to create or complete.")],
    workers: Annotated[int, typer.Option(min=1, help="Training processes (one core each); with ray, the CPUs of the "
                                         "local cluster started when no --address is given (at least 2).")] = 1,
    backend: Annotated[str, typer.Option(help="Where networks train: local (a process pool) or ray (Ray tasks; "
                                         "pip install 'igpg\\[ray]').")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (e.g. ray://head:10001 or auto); "
                                                   "default: start a local one.")] = None,
    overrides: SetOpt = None,
) -> None:
    """Train every network the config asks for that the zoo lacks; re-running resumes.

    Example: igpg zoo build --config configs/zoo/tiny.yaml --out zoos/tiny --workers 2 --set train.max_epochs=20
    """
    from igpg.zoo import build_zoo, load_zoo_config
    from igpg.zoo.builder import BACKENDS, require_ray

    if backend not in BACKENDS:
        raise IgpgError(f"unknown --backend {backend!r}; available: {', '.join(BACKENDS)}")
    if backend == "ray":
        require_ray()  # before reading the config: the one thing missing is Ray
    cfg = load_zoo_config(config, overrides)
    with _Bars() as bars:
        report = build_zoo(cfg, out_dir, workers=workers, progress=bars, backend=backend, address=address)
    out.print(f"zoo {cfg.name!r} in {out_dir}: {report.planned} networks planned, {report.trained} trained now, "
              f"{report.skipped} already there" + (f", {report.removed_orphans} orphan files removed" if report.removed_orphans else "")
              + f" ({report.seconds:.1f} s)")


@zoo_app.command("info")
def zoo_info(zoo: ZooDir) -> None:
    """Counts per dataset, architecture and split, and accuracy statistics.

    Example: igpg zoo info zoos/tiny
    """
    from igpg.zoo import zoo_summary

    zoo_summary(zoo).print(out)


@zoo_app.command("verify")
def zoo_verify(zoo: ZooDir) -> None:
    """Check every file against the catalogue (sha256, tensor shapes) and report problems; exit 1 if any.

    Example: igpg zoo verify zoos/tiny
    """
    from igpg.zoo import Catalogue

    cat = Catalogue(zoo)
    problems = cat.verify()
    n = len(cat.net_ids())
    for p in problems:
        out.print(f"problem: {p}")
    out.print(f"{n} networks checked, {len(problems)} problems")
    if problems:
        raise typer.Exit(1)


@zoo_app.command("import")
def zoo_import(
    src: Annotated[Path, typer.Argument(help="A folder of weight files with tasks.jsonl or tasks.csv, or a Model "
                                        "Zoos folder (one sub-folder per model: params.json, result.json, "
                                        "checkpoint_*/checkpoints).", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Zoo directory to create or complete.")],
    tasks: Annotated[Optional[Path], typer.Option(help="The tasks file (default: SRC/tasks.jsonl or SRC/tasks.csv); "
                                                  "columns file, dataset, classes, arch, accuracy [, instruction, "
                                                  "seed, role].")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Model Zoos layout: the dataset, when params.json names none.")] = None,
    classes: Annotated[Optional[str], typer.Option(help="Model Zoos layout: the output labels (default: every class "
                                                   "in order).")] = None,
    test_fraction: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of tasks held out (by a hash of "
                                                 "the task).")] = 0.2,
    heldout_arch: Annotated[Optional[list[str]], typer.Option(help="An architecture to hold out (repeatable).")] = None,
    heldout_seed: Annotated[Optional[list[int]], typer.Option(help="A seed to hold out (repeatable).")] = None,
    data_root: Annotated[Optional[Path], typer.Option(help="Local folder of a torchvision dataset (never downloaded).")] = None,
) -> None:
    """Catalogue networks trained elsewhere, checked, with split flags, ready for `igpg train`; re-running adds
    nothing twice. Bad rows or files: one line, exit code 2, nothing written.

    Example: igpg zoo import my-nets/ --out zoos/mine --heldout-seed 2
    """
    from igpg.zoo.importer import import_zoo

    with _Bars() as bars:
        report = import_zoo(src, out_dir, tasks, dataset=dataset, classes=classes,
                            data_root=str(data_root) if data_root else None, test_fraction=test_fraction,
                            heldout_archs=heldout_arch or (), heldout_seeds=heldout_seed or (), progress=bars)
    out.print(report.summary(out_dir), markup=False, highlight=False)


@train_app.command("tokenizer")
def train_tokenizer_cmd(
    zoo: Annotated[Path, typer.Option("--zoo", help="Zoo directory (its training split is used).")],
    config: Annotated[Path, typer.Option("--config", "-c", help="Tokenizer config YAML.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint directory; an existing one resumes.")],
    codes: Annotated[bool, typer.Option(help="Then extract every zoo network's codes to OUT/codes.")] = True,
    device: DeviceOpt = "auto",
    overrides: SetOpt = None,
) -> None:
    """Train a VQ-VAE weight tokenizer on the zoo's training networks (resumable), then extract codes.

    Example: igpg train tokenizer --zoo zoos/default --config configs/tokenizer/default.yaml --out runs/tok

    A variant: ... --out runs/tok-lr3 --set train.lr=3e-3 --set model.hidden=128 (keys: igpg/tokenizer/model.py)
    """
    from igpg import distributed
    from igpg.tokenizer.codes import extract_codes
    from igpg.tokenizer.tokenizer import load_tokenizer_config
    from igpg.tokenizer.train import train_tokenizer
    from igpg.zoo import Catalogue

    cfg = load_tokenizer_config(config, overrides)
    Catalogue(zoo).close()  # a missing zoo is reported before anything is written
    with distributed.session(device) as ctx, _Bars() as bars:  # under torchrun: data-parallel, rank 0 writes, reports
        tok = train_tokenizer(zoo, cfg, out_dir, progress=bars if ctx.is_main else None, device=device)
        if not ctx.is_main:
            return
        if codes:
            cat = Catalogue(zoo)
            n = extract_codes(tok, cat, out_dir / "codes", str(out_dir), progress=lambda d, t: bars("codes", d, t))
            cat.close()
    out.print(f"tokenizer in {out_dir}" + (f"; codes of {n} networks in {out_dir / 'codes'}" if codes else ""))


@eval_app.command("tokenizer")
def eval_tokenizer_cmd(
    zoo: Annotated[Path, typer.Option("--zoo", help="Zoo directory (its held-out networks are used).")],
    tokenizer: Annotated[list[Path], typer.Option("--tokenizer", "-t", help="Tokenizer directory; repeat to compare.")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="At most this many networks per held-out category.")] = None,
    results: Annotated[Path, typer.Option(help="Where to write tokenizer.json and tokenizer.md.")] = Path("eval/results"),
) -> None:
    """Fidelity on held-out networks: accuracy ratio (mean, min), relative error, bits/param, codes, usage.

    Example: igpg eval tokenizer --zoo zoos/default --tokenizer tokenizers/default --limit 200
    """
    from igpg.evaluation.results import write_results
    from igpg.evaluation.tokenizer_fidelity import evaluate_tokenizers, report_markdown

    if limit is not None and limit < 1:
        raise IgpgError(f"--limit must be at least 1, got {limit}")
    with _Bars() as bars:
        report = evaluate_tokenizers(zoo, tokenizer, limit, progress=bars)
    md = report_markdown(report)
    write_results(results, "tokenizer", report, md)
    out.print(md)


@train_app.command("generator")
def train_generator_cmd(
    zoo: Annotated[Path, typer.Option("--zoo", help="Zoo directory (its training split is used).")],
    tokenizer: Annotated[Path, typer.Option("--tokenizer", help="Tokenizer directory with extracted codes (codes/).")],
    config: Annotated[Path, typer.Option("--config", "-c", help="Generator config YAML.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Generator directory; an existing one resumes.")],
    device: DeviceOpt = "auto",
    overrides: SetOpt = None,
) -> None:
    """Train the conditional generator on the zoo's training networks (resumable). OUT holds everything
    `igpg generate --model OUT` needs (the tokenizer is copied into OUT/tokenizer).

    Example: igpg train generator --zoo zoos/default --tokenizer runs/tok --config configs/generator/default.yaml --out runs/gen

    A variant: ... --out runs/gen-lr3 --set train.lr=3e-4 --set model.dim=256 (keys: igpg/generator/config.py)
    """
    from igpg import distributed
    from igpg.generator.model_dir import load_generator_config
    from igpg.generator.train import train_generator
    from igpg.zoo import Catalogue

    cfg = load_generator_config(config, overrides)
    Catalogue(zoo).close()
    with distributed.session(device) as ctx, _Bars() as bars:  # under torchrun: data-parallel, rank 0 writes, reports
        train_generator(zoo, tokenizer, cfg, out_dir, progress=bars if ctx.is_main else None, device=device)
    if ctx.is_main:
        out.print(f"generator in {out_dir}")


@app.command("generate")
def generate_cmd(
    instruction: InstructionArg,
    arch: ArchOpt,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Where to write the network (.safetensors).")],
    dataset: Annotated[Optional[str], typer.Option(show_default=False, help=(
        "Registered dataset: digits, mnist, mnist1d, mnist8, fashion8, ucr_<name>, torchvision:<Name> "
        "(`igpg data list`). Or pass --support."))] = None,
    support: Annotated[Optional[Path], typer.Option(show_default=False, help=(
        "Your own labelled samples (.csv: a label column, then the features; .npz: arrays x, y) for data igpg has "
        "not registered; replaces --dataset. Output i is label i in sorted order, or as --classes picks them."))] = None,
    classes: ReadClassesOpt = None,
    model: ModelOpt = None,
    samples: SamplesOpt = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed for the support samples and sampling.")] = 0,
    k: KOpt = None,
    temperature: TemperatureOpt = None,
    top_k: TopKOpt = None,
    top_p: TopPOpt = None,
    guidance: GuidanceOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
    max_params: MaxParamsOpt = "2M",
    max_memory: MaxMemoryOpt = "2GiB",
    tokenizer: TokenizerOpt = None,
    device: DeviceOpt = "auto",
    data_root: DataRootOpt = None,
) -> None:
    """Generate a network for a task and write it as safetensors with its metadata; print its test accuracy.

    Example: igpg generate "Classify handwritten digits 3, 5 and 8" --dataset digits --classes 3,5,8 --arch mlp:64-32-3 --out net.safetensors

    Without --classes the labels are read from the instruction and printed before decoding (an instruction they
    cannot be read from unambiguously is refused):
    igpg generate "Is it a three or an eight?" --dataset digits --arch mlp:64-32-2 --out net.safetensors

    Your own data (a few labelled samples per label, CSV or NPZ) instead of a registered dataset: the hidden layers
    of the generic network taking the same input, output rows fitted to your samples:
    igpg generate "Gun or point?" --support my_samples.csv --arch mlp:40-64-2 --out net.safetensors
    """
    from igpg.data import load_dataset, using_data_root
    from igpg.evaluation.accuracy import evaluate
    from igpg.generator import ParameterGenerator
    from igpg.generator.budget import Budget, parse_size
    from igpg.io import check_writable

    if out_file.suffix != ".safetensors":
        raise IgpgError(f"--out must end in .safetensors, got {out_file}")
    if out_file.exists() and out_file.is_dir():
        raise IgpgError(f"--out {out_file} is a directory")
    if not out_file.parent.is_dir():
        raise IgpgError(f"directory {out_file.parent} does not exist")
    if (out_file.exists() or out_file.is_symlink()) and not overwrite:
        raise IgpgError(f"--out {out_file} exists; pass --overwrite to replace it")
    if (dataset is None) == (support is None):
        raise IgpgError("pass --dataset NAME (a registered dataset) or --support FILE (your own labelled samples)"
                        + (", not both" if dataset is not None else ""))
    if support is not None:
        given = [name for name, v in (("--samples", samples), ("--k", k), ("--temperature", temperature),
                                      ("--top-k", top_k), ("--top-p", top_p), ("--guidance", guidance),
                                      ("--data-root", data_root)) if v is not None]
        if given:
            raise IgpgError(f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not apply with --support: every "
                            "support sample is used and nothing is sampled")
    sampling = _sampling(samples=samples, k=k, temperature=temperature, top_k=top_k, top_p=top_p, guidance=guidance)
    budget = Budget(parse_size(max_params, "--max-params"), parse_size(max_memory, "--max-memory"))
    check_writable(out_file.parent)
    gen = ParameterGenerator.from_pretrained(model, tokenizer=tokenizer, device=device)
    gen.budget = budget
    if support is not None:
        picked = None if classes is None else [c.strip() for c in classes.split(",")]  # "03" matches label 3
        net = gen.generate_from_support(instruction, support, arch, classes=picked, seed=seed)
        meta = net.igpg_metadata
        out.print(f"labels (output order): {', '.join(json.loads(meta['igpg.classes']))} ({meta['igpg.support']}); "
                  f"{meta['igpg.source']}", markup=False, highlight=False)
        _save_network(out_file, net, overwrite, f"support accuracy {net.igpg_support_acc:.4f} (on the samples it "
                      "was fitted to; no test split)")
        return
    req = gen.check_request(instruction, dataset, classes, arch, seed, data_root)  # bad input: refused before any work
    check_writable(out_file.parent, 4 * req.spec.n_params + 64 * 1024)  # room for the file, before decoding
    if classes is None:  # said before decoding, so a misreading costs nothing
        _say_labels_read(req.task.labels, load_dataset(dataset, _root(data_root)))
    with using_data_root(_root(data_root)):  # the note reads the dataset's input shape
        note = gen.coverage_note(req.spec, dataset)
    if note:  # said before decoding: what the user is about to get
        console.print(f"warning: {note}", markup=False, highlight=False)
    with _Bars() as bars:
        net = gen.generate(instruction, dataset=dataset, classes=classes, arch=req.spec, seed=seed, sampling=sampling,
                           data_root=data_root, progress=bars)
    acc = evaluate(net, dataset, req.task.classes_json(), split="test", data_root=data_root)  # given or read
    _save_network(out_file, net, overwrite, f"support accuracy {net.igpg_support_acc:.4f}; test accuracy {acc:.4f}")


def _say_labels_read(labels, ds) -> None:
    from igpg.data import describe_labels

    out.print(f"labels read from the instruction: {describe_labels(labels, ds)}", markup=False, highlight=False)


def _save_network(out_file: Path, net, overwrite: bool, figures: str) -> None:
    """Write a generated network and its metadata (atomically, writers of one directory taking turns); print it."""
    from igpg.io import locked_dir, remove_stale_temps, save_weights

    with locked_dir(out_file.parent):  # concurrent writers of one directory take turns: the sha printed is the file's
        remove_stale_temps(out_file)  # what a generate killed mid-save left
        if (out_file.exists() or out_file.is_symlink()) and not overwrite:
            raise IgpgError(f"--out {out_file} was written by another process meanwhile; pass --overwrite to replace it")
        digest = save_weights(out_file, net.state_dict(), net.igpg_metadata)
        out.print(f"wrote {out_file} ({net.igpg_metadata['igpg.arch']}, sha256 {digest[:12]}); {figures}")


@app.command("info")
def info_cmd(model: ModelOpt = None, tokenizer: TokenizerOpt = None) -> None:
    """What a generator covers: the families, widths, depths, activations and datasets it trained on.

    Requests outside that range still get a network (its base carried over from the nearest trained architecture);
    `igpg generate` says so before decoding. Example: igpg info --model runs/gen
    """
    from igpg.coverage import describe
    from igpg.generator import ParameterGenerator

    gen = ParameterGenerator.from_pretrained(model, tokenizer=tokenizer, device="cpu")
    out.print(f"generator {gen.name}: {sum(p.numel() for p in gen.model.parameters()):,} parameters, tokenizer "
              f"{gen.cfg.codes.tokenizer} ({gen.cfg.codes.codes_per_chunk} codes per chunk of {gen.cfg.codes.chunk_size} "
              "weights)")
    lines = describe(gen.trained_on())
    if not lines:
        out.print("trained architectures: none recorded (this generator has no generic networks)")
    for line in lines:
        out.print(f"  {line}")
    out.print("other architectures of these families and datasets start from the nearest trained one, carried over "
              "(wider, deeper: exact; narrower, other activations: calibrated on the support samples)")
    out.print("other datasets (mnist8, fashion8, ucr_*, or your own samples with generate --support FILE) borrow the "
              "hidden layers of a network taking the same input, with output rows fitted to the support samples")


@eval_app.command("generator")
def eval_generator_cmd(
    zoo: Annotated[Path, typer.Option("--zoo", help="Zoo directory (its split flags decide what is held out).")],
    model: ModelOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Queries (task x architecture) per category.")] = 30,
    samples: SamplesOpt = None,
    results: Annotated[Path, typer.Option(help="Where to write generator.json and generator.md.")] = Path("eval/results"),
    name: Annotated[str, typer.Option(help="File stem of the results.")] = "generator",
    category: Annotated[Optional[list[str]], typer.Option(
        help="Only these categories (repeatable): seen tasks, held-out seeds, held-out phrasings, held-out tasks, "
        "held-out architectures, or 'held-out dataset:NAME' for a generator trained with exclude_datasets: [NAME]."
    )] = None,
    tokenizer: TokenizerOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Generated vs trained accuracy per held-out split, over 3 sampling seeds, beside random and retrieval.

    Example: igpg eval generator --zoo zoos/default --limit 30
    """
    from igpg.evaluation.generator_quality import evaluate_generator, report_markdown
    from igpg.evaluation.heldout import category_query
    from igpg.evaluation.results import write_results
    from igpg.generator import ParameterGenerator

    if limit < 1:
        raise IgpgError("--limit must be at least 1")
    sampling = _sampling(samples=samples)
    gen = ParameterGenerator.from_pretrained(model, tokenizer=tokenizer, device=device)
    for c in category or []:
        category_query(c, gen)  # unknown categories, and a dataset the generator was trained on, are refused
    with _Bars() as bars:
        report = evaluate_generator(gen, zoo, limit=limit, sampling=sampling, categories=category, progress=bars)
    md = report_markdown(report)
    write_results(results, name, report, md)
    out.print(md)


@eval_app.command("all")
def eval_all_cmd(
    zoo: Annotated[Path, typer.Option("--zoo", help="Zoo directory (its split flags decide what is held out).")] = Path("zoos/default"),
    model: ModelOpt = None,
    results: Annotated[Path, typer.Option(help="Where to write the JSON, Markdown and PNG files.")] = Path("eval/results"),
    quick: Annotated[bool, typer.Option("--quick", help="Test size: tiny limits, to check the suite runs.")] = False,
    skip: Annotated[Optional[list[str]], typer.Option(help="Leave out a piece: tokenizer, generator, fewshot, "
                                                      "finetune, speed, plots (repeatable).")] = None,
    tokenizer: TokenizerOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Tokenizer fidelity, generator quality, few-shot, fine-tuning curves, speed and plots, in one run.

    Example: igpg eval all --zoo zoos/default --results eval/results
    """
    from igpg.evaluation.run_all import run_all

    with _Bars() as bars:
        summary = run_all(zoo, results, model=model, quick=quick, skip=tuple(skip or ()), progress=bars,
                          log=lambda msg: console.print(msg, markup=False, highlight=False), device=device,
                          tokenizer=tokenizer)
    out.print(f"eval all: {summary['seconds']['total']:.0f} s; results in {results}")


@app.command("export")
def export_cmd(
    requests: Annotated[Path, typer.Argument(help="JSONL file, one request per line (see README).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for NAME.safetensors + manifest.jsonl.")],
    model: ModelOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Requests decoded together (same architecture).")] = 16,
    force: Annotated[bool, typer.Option("--force", help="Replace NAME.safetensors files that this export's manifest "
                                        "does not list (by default such a request fails and the file stays).")] = False,
    max_params: MaxParamsOpt = "2M",
    max_memory: MaxMemoryOpt = "2GiB",
    samples: SamplesOpt = None,
    k: KOpt = None,
    temperature: TemperatureOpt = None,
    top_k: TopKOpt = None,
    top_p: TopPOpt = None,
    guidance: GuidanceOpt = None,
    tokenizer: TokenizerOpt = None,
    device: DeviceOpt = "auto",
    data_root: DataRootOpt = None,
) -> None:
    """Generate many networks in batches; re-running resumes (finished names are skipped, damaged files redone).

    Example: igpg export requests.jsonl --out exported/ --batch-size 16 --samples 8
    """
    from igpg.generator import ParameterGenerator
    from igpg.generator.budget import Budget, parse_size

    if batch_size < 1:
        raise IgpgError(f"--batch-size must be at least 1, got {batch_size}")
    sampling = _sampling(samples=samples, k=k, temperature=temperature, top_k=top_k, top_p=top_p, guidance=guidance)
    if not requests.is_file():
        raise IgpgError(f"requests file {requests} not found")
    budget = Budget(parse_size(max_params, "--max-params"), parse_size(max_memory, "--max-memory"))
    gen = ParameterGenerator.from_pretrained(model, tokenizer=tokenizer, device=device)
    gen.budget = budget
    with _Bars() as bars:
        report = gen.export(requests, out_dir, batch_size=batch_size, sampling=sampling, data_root=data_root,
                            progress=lambda d, t: bars("export", d, t), force=force)
    for e in report.failed:
        console.print(f"error: {e}", markup=False, highlight=False)
    out.print(report.summary())
    if not report.ok:
        raise typer.Exit(2)


@app.command("retrieve")
def retrieve_cmd(
    instruction: InstructionArg,
    dataset: DatasetOpt,
    arch: ArchOpt,
    classes: ReadClassesOpt = None,
    hits: Annotated[int, typer.Option(min=1, help="How many networks to return.")] = 5,
    zoo: Annotated[Optional[Path], typer.Option(help="Zoo directory (default: zoos/default).")] = None,
    min_accuracy: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Only networks with at least this test accuracy.")] = None,
    data_root: DataRootOpt = None,
) -> None:
    """The nearest zoo networks for a task: exact architecture first, then the same family's nearest shape.

    Example: igpg retrieve "Classify digits 3, 5 and 8" --dataset digits --classes 3,5,8 --arch mlp:64-32-3 --hits 5

    Without --classes the labels are read from the instruction and printed first:
    igpg retrieve "Is it a three or an eight?" --dataset digits --arch mlp:64-32-2
    """
    from igpg.data import labels_from_instruction, load_dataset
    from igpg.generator.api import DEFAULT_ZOO
    from igpg.retrieval import retrieve
    from igpg.text import check_instruction

    if hits < 1:
        raise IgpgError(f"--hits must be at least 1, got {hits}")
    if classes is None:
        ds = load_dataset(dataset, _root(data_root))
        classes = labels_from_instruction(check_instruction(instruction), ds)
        _say_labels_read(classes, ds)
    found = retrieve(zoo or DEFAULT_ZOO, instruction, dataset, classes, arch, hits=hits, min_accuracy=min_accuracy,
                     data_root=_root(data_root))
    for i, h in enumerate(found, 1):
        out.print(f"{i}. {h.describe()}", markup=False, highlight=False)


def main() -> None:
    """Entry point: run the app; every failure is one line `error: ...` on stderr and exit code 2.

    `IgpgError` is bad input; an OSError (read-only or full disk, permissions) and a MemoryError are what the
    machine refused; anything else is a bug, still one line (IGPG_DEBUG=1 shows the traceback)."""
    import os
    import warnings

    from igpg.errors import one_line

    # x-transformers on torch 2.14 warns at import about torch.jit.script; it is not the user's concern
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

    def fail(message: str) -> None:
        console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)

    try:
        code = app(prog_name="igpg", standalone_mode=False)  # click returns Exit's code instead of raising here
        if isinstance(code, int) and code:
            sys.exit(code)
    except IgpgError as e:
        fail(one_line(e))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        console.print("aborted", markup=False)
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here in non-standalone mode
        if isinstance(e, _click_errors()):
            if type(e).__name__ == "NoArgsIsHelpError":  # `igpg` or `igpg zoo` alone: the help was the answer
                e.show()
                sys.exit(e.exit_code)
            ctx = getattr(e, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            fail(one_line(e.format_message()) + hint)
        if os.environ.get("IGPG_DEBUG"):
            raise
        if isinstance(e, OSError):  # ENOSPC, EROFS, EACCES: what the file system refused, and where
            where = f" ({e.filename})" if e.filename else ""
            fail(one_line(f"{e.strerror or e}{where}"))
        if isinstance(e, MemoryError):
            fail("out of memory; ask for a smaller architecture or fewer --samples (see --max-memory)")
        fail(one_line(f"internal error, please report it: {one_line(e)} (IGPG_DEBUG=1 shows the traceback)"))


def _click_errors() -> tuple[type, ...]:
    """Click's exception base, from click and from the copy typer >= 0.20 vendors (which raises its own)."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


if __name__ == "__main__":  # `python -m igpg.cli`, as torchrun launches it: torchrun ... -m igpg.cli train ...
    main()
