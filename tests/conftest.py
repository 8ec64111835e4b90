import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "zoo" / "tiny.yaml"


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `igpg ARGS...` in-process through the real entry point (exit codes and stderr as a user sees them)."""
    from igpg.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["igpg", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    return run


def igpg_subprocess(*args: str, env_extra: dict | None = None, **kw) -> subprocess.Popen:
    """Start the installed `igpg` console script as a real process."""
    exe = Path(sys.executable).parent / "igpg"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env_extra or {})}
    return subprocess.Popen([str(exe), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """The tiny zoo, built once per test session (in-process, one worker)."""
    from igpg.zoo import build_zoo, load_zoo_config

    out = tmp_path_factory.mktemp("zoo") / "tiny"
    build_zoo(load_zoo_config(TINY), out)
    return out


TINY_TOK = ROOT / "configs" / "tokenizer" / "tiny.yaml"
# a tiny generator, by section, without the options the tiny zoo cannot feed (no probe networks, no lineage): the
# values that differ from the released defaults are set
TINY_GEN = {"model": dict(dim=32, depth=2, heads=2, slot_dim=16, row_keys=0, base_rows=False, compositional=False),
            "train": dict(steps=8, batch_size=4, log_every=2, checkpoint_every=4, warmup=2, lr=6e-4,
                          instr_dropout=0.1, head_loss_weight=1.0, probe_targets=False, sibling_bases=0.0),
            "codes": dict(vocab=64, codes_per_chunk=2, chunk_size=8, side_tokens=True)}


def tiny_gen_config(changes: dict | None = None, codes: bool = True):
    """A `GeneratorConfig` of TINY_GEN with dotted `changes` ({"model.row_keys": 64}); without `codes`, a recipe (the
    tokenizer decides the code format)."""
    from igpg.generator import GeneratorConfig

    return GeneratorConfig.parse({k: v for k, v in TINY_GEN.items() if codes or k != "codes"}).override(changes or {})


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_zoo, tmp_path_factory):
    """Tokenizer (layer_std, so side tokens are exercised) + codes + a few generator steps on the tiny zoo.

    Training copies the tokenizer into gen/tokenizer, so `--model gen` works alone."""
    from igpg.generator.train import train_generator
    from igpg.tokenizer.codes import extract_codes
    from igpg.tokenizer.tokenizer import load_tokenizer_config
    from igpg.tokenizer.train import train_tokenizer
    from igpg.zoo import Catalogue

    d = tmp_path_factory.mktemp("gen")
    cfg = load_tokenizer_config(TINY_TOK).override({"model.normalisation": "layer_std"})
    tok = train_tokenizer(tiny_zoo, cfg, d / "tok")
    extract_codes(tok, Catalogue(tiny_zoo), d / "tok" / "codes")
    gcfg = tiny_gen_config(codes=False)
    train_generator(tiny_zoo, d / "tok", gcfg, d / "gen")
    return d, gcfg
