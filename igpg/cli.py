"""The `igpg` command line: one small function per command, each a thin call of the Python API.

    igpg zoo build --config configs/zoo/tiny.yaml --out zoos/tiny [--workers 2]
    igpg zoo info zoos/tiny
    igpg zoo verify zoos/tiny

Bad input prints `error: <one line>` on stderr and exits with code 2; nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from igpg.errors import IgpgError

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

ZooDir = Annotated[Path, typer.Argument(help="Zoo directory (catalogue.sqlite + nets/).", show_default=False)]


class _Bars:
    """Rich progress bars that appear at the first update, so an early error prints nothing else."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.ids: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            self.bar.start()
        if phase not in self.ids:
            self.ids[phase] = self.bar.add_task(phase, total=total)
        self.bar.update(self.ids[phase], completed=done, total=total)

    def __enter__(self) -> "_Bars":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@zoo_app.command("build")
def zoo_build(
    config: Annotated[Path, typer.Option("--config", "-c", help="Zoo config YAML, e.g. configs/zoo/default.yaml.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Zoo directory to create or complete.")],
    workers: Annotated[int, typer.Option(help="Training processes (one core each).")] = 1,
    backend: Annotated[str, typer.Option(help="Where networks train: local (a process pool).")] = "local",
) -> None:
    """Train every network the config asks for that the zoo lacks; re-running resumes.

    Example: igpg zoo build --config configs/zoo/tiny.yaml --out zoos/tiny --workers 2
    """
    from igpg.zoo import build_zoo, load_zoo_config

    if backend != "local":
        raise IgpgError(f"unknown --backend {backend!r}; available: local")
    cfg = load_zoo_config(config)
    with _Bars() as bars:
        report = build_zoo(cfg, out_dir, workers=workers, progress=bars)
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


def main() -> None:
    """Entry point: run the app, turning `IgpgError` into a one-line message and exit code 2."""
    try:
        code = app(standalone_mode=False)  # click returns Exit's code instead of raising in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except IgpgError as e:
        console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        console.print("aborted", markup=False)
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
