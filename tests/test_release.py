"""Self-contained generator directories: what training writes, save_pretrained / from_pretrained, the shipped
release, and the built wheel installed outside the repository."""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from igpg.arch import ArchSpec
from igpg.errors import IgpgError
from igpg.generator import ParameterGenerator
from igpg.generator.api import DEFAULT_MODEL
from igpg.io import load_weights

TASK = dict(instruction="Classify handwritten digits 3, 5 and 8", dataset="digits", classes=[3, 5, 8])


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)


def test_trained_generator_directory_holds_its_tokenizer_and_survives_a_move(tiny_pipeline, tmp_path):
    d, _ = tiny_pipeline
    assert (d / "gen" / "tokenizer" / "model.safetensors").is_file()  # train_generator put it there
    assert _same_state(load_weights(d / "gen" / "tokenizer" / "model.safetensors")[0],
                       load_weights(d / "tok" / "model.safetensors")[0])
    moved = shutil.copytree(d / "gen", tmp_path / "elsewhere" / "gen")
    net = ParameterGenerator.from_pretrained(moved).generate(**TASK, arch="mlp:64-16-3")
    ref = ParameterGenerator.from_pretrained(d / "gen", tokenizer=d / "tok").generate(**TASK, arch="mlp:64-16-3")
    assert _same_state(net.state_dict(), ref.state_dict())


def test_save_pretrained_round_trips(tiny_pipeline, tmp_path):
    d, _ = tiny_pipeline
    gen = ParameterGenerator.from_pretrained(d / "gen")
    gen.save_pretrained(tmp_path / "saved")
    shutil.move(tmp_path / "saved", tmp_path / "moved")  # nothing in it points back to where it was written
    again = ParameterGenerator.from_pretrained(tmp_path / "moved")
    assert again.cfg == gen.cfg
    assert _same_state(again.model.state_dict(), gen.model.state_dict())
    assert _same_state(again.tokenizer.model.state_dict(), gen.tokenizer.model.state_dict())
    a = gen.generate(**TASK, arch="mlp:64-16-3", samples=2, seed=3)
    b = again.generate(**TASK, arch="mlp:64-16-3", samples=2, seed=3)
    assert _same_state(a.state_dict(), b.state_dict())


def test_a_directory_without_tokenizer_says_what_to_pass(tiny_pipeline, tmp_path):
    d, _ = tiny_pipeline
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(d / "gen" / name, bare / name)
    with pytest.raises(IgpgError, match="holds no tokenizer.*--tokenizer"):
        ParameterGenerator.from_pretrained(bare)
    assert ParameterGenerator.from_pretrained(bare, tokenizer=d / "tok").cfg.codes.vocab > 0


def test_default_release_carries_its_tokenizer_and_bases():
    gen = ParameterGenerator.from_pretrained()
    inside = DEFAULT_MODEL / "tokenizer"
    released = ROOT / "tokenizers" / gen.cfg.codes.tokenizer  # the released tokenizers keep their folder
    for name in ("config.json", "model.safetensors"):
        assert (inside / name).read_bytes() == (released / name).read_bytes(), name
    assert len(gen.bank) > 0 and gen.cfg.model.base_rows
    assert not (ROOT / "tokenizers" / "__init__.py").exists()  # never a package: it would shadow HF tokenizers
    size = sum(p.stat().st_size for d in (DEFAULT_MODEL, ROOT / "tokenizers") for p in d.rglob("*") if p.is_file())
    assert size < 30 * 2**20


def test_default_saved_in_float16_loads_back_exactly(tmp_path):
    gen = ParameterGenerator.from_pretrained()
    gen.save_pretrained(tmp_path / "half", dtype=torch.float16)
    state = load_file(tmp_path / "half" / "model.safetensors")
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    again = ParameterGenerator.from_pretrained(tmp_path / "half")
    assert _same_state(again.model.state_dict(), gen.model.state_dict())  # the release is float16 already
    assert sorted(again.bank.states) == sorted(gen.bank.states)
    assert (tmp_path / "half" / "CARD.md").read_text() == (DEFAULT_MODEL / "CARD.md").read_text()


def test_release_script_writes_a_self_contained_release(tiny_pipeline, tmp_path):
    sys.path.insert(0, str(ROOT / "train"))
    try:
        from release import release
    finally:
        sys.path.remove(str(ROOT / "train"))
    d, _ = tiny_pipeline
    size = release(d / "tok", d / "gen", "mine", "tok-mine", root=tmp_path)
    assert 0 < size < 30 * 2**20
    gen = ParameterGenerator.from_pretrained(tmp_path / "igpg" / "pretrained" / "mine")
    assert gen.cfg.codes.tokenizer == "tok-mine" and (tmp_path / "tokenizers" / "tok-mine" / "model.safetensors").is_file()
    assert not (tmp_path / "igpg" / "pretrained" / "mine" / "training_state").exists()


def _run(*cmd, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=240, **kw)
    assert res.returncode == 0, f"{cmd}: {res.stderr[-2000:]}"
    return res


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="no build backend (setuptools) here")
def test_built_wheel_generates_outside_the_repository(tiny_pipeline, tiny_zoo, tmp_path):
    """pip wheel, installed into a fresh venv (dependencies: this venv's, through a .pth file; offline), run from a
    folder outside the repository: the default model and a generator trained by the installed CLI both generate."""
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("igpg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "igpg/pretrained/default/tokenizer/model.safetensors" in names
    assert not any(n.startswith(("tokenizers/", "tests/")) for n in names)  # never importable, never shipped
    assert wheel.stat().st_size < 30 * 2**20
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    py = venv / "bin" / "python"
    site = _run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after its own packages
    _run(sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel)
    work = tmp_path / "work"
    work.mkdir()
    where = _run(py, "-c", "import igpg; print(igpg.__file__)", cwd=work).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    assert (venv / "bin" / "igpg").is_file()  # the console script, which calls igpg.cli:main
    d, _ = tiny_pipeline
    task = ["Classify handwritten digits 3, 5 and 8", "--dataset", "digits", "--classes", "3,5,8", "--samples", "1"]
    commands = [  # one process for the three commands: each new process pays ~10 s of imports here
        ["generate", *task, "--arch", "mlp:64-32-3", "--out", "default.safetensors"],
        ["train", "generator", "--zoo", str(tiny_zoo), "--tokenizer", str(d / "tok"), "--config",
         str(ROOT / "configs" / "generator" / "tiny.yaml"), "--out", "gen", "--device", "cpu"],
        ["generate", *task, "--arch", "mlp:64-16-3", "--model", "gen", "--out", "tiny.safetensors"],
    ]
    script = ("import sys\nfrom igpg.cli import main\n"
              f"for argv in {commands!r}:\n"
              "    sys.argv = ['igpg', *argv]\n"
              "    try:\n        main()\n    except SystemExit as e:\n        assert not e.code, (argv, e.code)\n")
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
           "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    out = _run(py, "-c", script, cwd=work, env=env)
    assert out.stdout.count("test accuracy") == 2, out.stdout
    assert (work / "gen" / "tokenizer" / "model.safetensors").is_file()
    for name, arch in (("default", "mlp:64-32-3"), ("tiny", "mlp:64-16-3")):
        ArchSpec.parse(arch).build().load_state_dict(load_file(work / f"{name}.safetensors"), strict=True)
