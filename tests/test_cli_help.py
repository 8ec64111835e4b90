"""The command line's surface: help text as rendered, --version, start-up cost, numeric options refused with one line."""

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

COMMANDS = [(), ("zoo",), ("zoo", "build"), ("zoo", "import"), ("zoo", "info"), ("zoo", "verify"), ("train",),
            ("train", "tokenizer"), ("train", "generator"), ("generate",), ("export",), ("retrieve",), ("info",),
            ("eval",), ("eval", "all"), ("eval", "generator"), ("eval", "tokenizer"), ("data",), ("data", "info")]
HEAVY = ("torch", "sentence_transformers", "x_transformers", "vector_quantize_pytorch", "faiss", "sklearn")


def _run(*args: str, **env) -> tuple[subprocess.CompletedProcess, float]:
    """`igpg ARGS` as a real process; returns it and the CPU seconds it used (user + system, machine load aside)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([str(Path(sys.executable).parent / "igpg"), *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", **env}, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_importing_the_cli_loads_no_torch():
    code = "import sys, igpg.cli, igpg; print(sorted(m for m in %r if m in sys.modules))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_version_and_help_answer_at_once():
    """`igpg --help`, `--version` and a command's --help: no torch, so well under a second of CPU each (the torch
    import alone costs several)."""
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]  # 3.10: no tomllib
    proc, cpu = _run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"igpg {version}" and cpu < 1.5, (proc.stderr, cpu)
    for args in (("--help",), ("generate", "--help"), ("zoo", "import", "--help")):
        proc, cpu = _run(*args)
        assert proc.returncode == 0 and "Usage: igpg" in proc.stdout and cpu < 1.5, (args, proc.stderr, cpu)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "igpg")
def test_help_renders(args, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per option, so the checks below read whole phrases
    res = cli(*args, "--help")
    assert res.code == 0 and "Usage: igpg" in res.out, res.err
    assert "<bool>" not in res.out  # a flag takes no value
    if len(args) == 2 or args in (("generate",), ("export",), ("retrieve",), ("info",)):
        assert "Example: igpg" in res.out  # every command shows one use
    if args == ("zoo", "build"):
        assert "pip install 'igpg[ray]'" in res.out  # not eaten as rich markup
    if args == ():
        assert "--version" in res.out


NUMERIC = [  # every numeric option, out of range: refused while parsing, before any model or zoo is read
    ("generate", "x", "--dataset", "digits", "--classes", "3,5", "--arch", "mlp:64-8-2", "--out", "n.safetensors",
     "--temperature", "-1"),
    ("generate", "x", "--dataset", "digits", "--classes", "3,5", "--arch", "mlp:64-8-2", "--out", "n.safetensors",
     "--samples", "0"),
    ("generate", "x", "--dataset", "digits", "--classes", "3,5", "--arch", "mlp:64-8-2", "--out", "n.safetensors",
     "--k", "0"),
    ("generate", "x", "--dataset", "digits", "--classes", "3,5", "--arch", "mlp:64-8-2", "--out", "n.safetensors",
     "--guidance", "-0.5"),
    ("generate", "x", "--dataset", "digits", "--classes", "3,5", "--arch", "mlp:64-8-2", "--out", "n.safetensors",
     "--seed", "-3"),
    ("retrieve", "x", "--dataset", "digits", "--classes", "3,5", "--arch", "mlp:64-8-2", "--hits", "0"),
    ("retrieve", "x", "--dataset", "digits", "--classes", "3,5", "--arch", "mlp:64-8-2", "--min-accuracy", "1.5"),
    ("export", "r.jsonl", "--out", "x", "--batch-size", "0"),
    ("zoo", "build", "--config", "c.yaml", "--out", "x", "--workers", "0"),
    ("zoo", "import", "src", "--out", "x", "--test-fraction", "1.5"),
    ("eval", "generator", "--zoo", "z", "--limit", "0"),
    ("eval", "generator", "--zoo", "z", "--samples", "0"),
    ("eval", "tokenizer", "--zoo", "z", "--tokenizer", "t", "--limit", "0"),
]


@pytest.mark.parametrize("args", NUMERIC, ids=lambda a: f"{' '.join(a[:2])} {a[-2]}")
def test_numeric_options_out_of_range_one_line_exit_2(args, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = cli(*args)
    assert res.code == 2, (res.out, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and args[-2] in lines[0], lines
    assert re.search(r"greater than|less than|not in the range", lines[0]), lines
    assert list(tmp_path.iterdir()) == []


def test_sampling_values_checked_in_the_api_too():
    from igpg import IgpgError
    from igpg.generator.sample import SamplingConfig

    for bad in (dict(temperature=-1.0), dict(temperature=float("nan")), dict(guidance=-1.0), dict(top_k=0),
                dict(top_p=0.0), dict(top_p=1.5)):
        with pytest.raises(IgpgError):
            SamplingConfig(**bad)
    assert SamplingConfig(temperature=0.0, top_k=5, top_p=0.9).top_k == 5


def test_one_sampling_config_with_keyword_overrides():
    """The API's keywords are SamplingConfig fields replaced in one config: no second set of defaults."""
    from igpg import IgpgError
    from igpg.generator.sample import SamplingConfig, sampling_config

    assert sampling_config() == SamplingConfig() and SamplingConfig().samples == 1 and SamplingConfig().temperature == 0
    base = SamplingConfig(samples=3, top_p=0.9)
    assert sampling_config(base) is base
    assert sampling_config(base, temperature=0.5) == SamplingConfig(samples=3, top_p=0.9, temperature=0.5)
    for bad in (dict(samples=0), dict(samples=257), dict(k=0), dict(k=True), dict(mean_from=-1), dict(use_cache="no")):
        with pytest.raises(IgpgError):
            SamplingConfig(**bad)
    with pytest.raises(TypeError):
        sampling_config(top_n=3)  # not a field: Python's own error, as for any unknown keyword
    with pytest.raises(TypeError):
        SamplingConfig(1)  # keywords only: a bare number could mean samples or temperature


def test_generate_help_shows_the_defaults_written_in_brackets():
    """`[default: ...]` in a help string is rich markup unless escaped: it used to vanish from the rendered help."""
    proc, _ = _run("generate", "--help")
    text = re.sub(r"[│\s]+", " ", proc.stdout)
    for shown in ("[default: 1, greedy only]", "[default: the model's, 5 for the released one]", "[default: 0]",
                  "[default: all]", "[default: 1, off]"):
        assert shown in text, shown
    assert "--support" in text and "--dataset" in text
