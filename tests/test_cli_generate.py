"""`igpg generate` and `igpg export` end to end through the CLI (tiny generator), and the shipped default model."""

import json

import pytest
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import ROOT, igpg_subprocess
from igpg.arch import ArchSpec
from igpg.generator.api import DEFAULT_MODEL


def test_generate_writes_loadable_file_with_metadata(tiny_pipeline, tmp_path, cli):
    d, _ = tiny_pipeline
    out = tmp_path / "net.safetensors"
    res = cli("generate", "Classify handwritten digits 3, 5 and 8", "--dataset", "digits", "--classes", "3,5,8",
              "--arch", "mlp:64-16-3", "--model", d / "gen", "--out", out)
    assert res.code == 0, res.err
    assert "test accuracy" in res.out
    ArchSpec.parse("mlp:64-16-3").build().load_state_dict(load_file(out), strict=True)
    meta = safe_open(out, "pt").metadata()
    for key in ("igpg.arch", "igpg.instruction", "igpg.dataset", "igpg.classes", "igpg.generator", "igpg.seed"):
        assert key in meta
    assert json.loads(meta["igpg.classes"]) == [3, 5, 8] and meta["igpg.arch"] == "mlp:64-16-3"


@pytest.mark.parametrize("args, message", [
    (["", "--classes", "3,5,8", "--arch", "mlp:64-16-3"], "instruction is empty"),
    (["x", "--classes", "3,5,11", "--arch", "mlp:64-16-3"], "out of range"),
    (["x", "--classes", "3,5,8", "--arch", "mlp:64--3"], "bad architecture"),
    (["x", "--classes", "3,5,8", "--arch", "mlp:64-16-4"], "labels"),
])
def test_generate_bad_input_exit_2_nothing_written(tiny_pipeline, tmp_path, cli, args, message):
    d, _ = tiny_pipeline
    out = tmp_path / "net.safetensors"
    res = cli("generate", args[0], "--dataset", "digits", *args[1:], "--model", d / "gen", "--out", out)
    assert res.code == 2 and message in res.err and len(res.err.strip().splitlines()) == 1, res.err
    assert not out.exists()


def test_export_cli_batches_and_reports_bad_lines(tiny_pipeline, tmp_path, cli):
    d, _ = tiny_pipeline
    req = tmp_path / "requests.jsonl"
    lines = [
        {"name": "a", "instruction": "Classify 3, 5 and 8", "dataset": "digits", "classes": [3, 5, 8], "arch": "mlp:64-16-3"},
        {"name": "b", "instruction": "odd vs even", "dataset": "digits", "classes": [[1, 3, 5, 7, 9], [0, 2, 4, 6, 8]],
         "arch": "mlp:64-16-2", "seed": 1},
        {"name": "../evil", "instruction": "x", "dataset": "digits", "classes": [1, 2], "arch": "mlp:64-16-2"},
    ]
    req.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    res = cli("export", req, "--out", tmp_path / "out", "--model", d / "gen", "--batch-size", "4")
    assert res.code == 2 and "line 3" in res.err
    manifest = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(m["name"] for m in manifest) == ["a", "b"]
    assert not (tmp_path / "evil.safetensors").exists()


def test_shipped_default_model_generates_offline(tmp_path):
    """The README's main command, in a real process with no network: the released model must be in the repo."""
    assert (DEFAULT_MODEL / "model.safetensors").is_file(), "the released default model is missing"
    out = tmp_path / "net.safetensors"
    proc = igpg_subprocess("generate", "Classify handwritten digits 3, 5 and 8", "--dataset", "digits", "--classes",
                           "3,5,8", "--arch", "mlp:64-32-3", "--out", out, cwd=ROOT,
                           env_extra={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "test accuracy" in stdout
    ArchSpec.parse("mlp:64-32-3").build().load_state_dict(load_file(out), strict=True)


def test_generate_without_classes_reads_them_from_the_instruction(tmp_path, cli):
    """The released model, labels read from the instruction: printed before decoding, recorded in the file, and the
    test accuracy printed is the network's on those labels."""
    from igpg import evaluate, load

    out = tmp_path / "net.safetensors"
    res = cli("generate", "Is it a three or an eight?", "--dataset", "digits", "--arch", "mlp:64-32-2", "--out", out)
    assert res.code == 0, res.err
    assert "labels read from the instruction: output 0 = 3, output 1 = 8\n" in res.out
    meta = safe_open(out, "pt").metadata()
    assert json.loads(meta["igpg.classes"]) == [3, 8] and meta["igpg.labels_from"] == "instruction"
    printed = float(res.out.split("test accuracy ")[1].split()[0])
    assert printed == pytest.approx(evaluate(load(out), dataset="digits", classes=[3, 8]), abs=1e-4) and printed > 0.9


def test_generate_unreadable_instruction_exit_2_nothing_written(tmp_path, cli):
    out = tmp_path / "net.safetensors"
    res = cli("generate", "asdf qwerty zxcv", "--dataset", "digits", "--arch", "mlp:64-32-2", "--out", out)
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1, res.err
    assert "could not read the labels from the instruction" in res.err and "--classes 3,5,8" in res.err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_generate_or_retrieve_returns_the_better_and_says_which(tiny_pipeline, tiny_zoo):
    from igpg.generator import ParameterGenerator

    d, _ = tiny_pipeline
    gen = ParameterGenerator.from_pretrained(d / "gen")
    # the tiny generator is barely trained: the zoo's own network for this task wins on the support samples
    net = gen.generate_or_retrieve("Classify handwritten digits 3, 5 and 8", dataset="digits", classes=[3, 5, 8],
                                   arch="mlp:64-16-3", zoo=tiny_zoo)
    generated = gen.generate("Classify handwritten digits 3, 5 and 8", dataset="digits", classes=[3, 5, 8],
                             arch="mlp:64-16-3")
    assert net.igpg_support_acc >= generated.igpg_support_acc
    source = net.igpg_metadata["igpg.source"]
    assert source == "generated" or source.startswith("retrieved:")
    if net.igpg_support_acc > generated.igpg_support_acc:
        assert source.startswith("retrieved:")


def test_cli_refuses_every_malformed_architecture(tiny_zoo, tmp_path, cli):
    """The architecture table of test_arch, through a real command: exit 2, one line, nothing written."""
    from test_arch import MALFORMED

    before = sorted(p.name for p in tiny_zoo.rglob("*"))
    assert len(MALFORMED) >= 15
    for text in MALFORMED:
        if not text.strip():
            continue  # an empty --arch is refused by the same parser, but reads as a missing option here
        res = cli("retrieve", "x", "--dataset", "digits", "--classes", "3,5,8", "--arch", text, "--zoo", tiny_zoo)
        assert res.code == 2, (text, res.err)
        assert res.err.startswith("error: ") and len(res.err.strip().splitlines()) == 1, (text, res.err)
    assert sorted(p.name for p in tiny_zoo.rglob("*")) == before


def test_malformed_json_classes_is_a_one_line_error(tiny_zoo, cli):
    res = cli("retrieve", "x", "--dataset", "digits", "--classes", "[3,5", "--arch", "mlp:64-16-2", "--zoo", tiny_zoo)
    assert res.code == 2 and "not valid JSON" in res.err and len(res.err.strip().splitlines()) == 1


def test_retrieve_reads_the_labels_from_the_instruction_without_classes(tiny_zoo, cli):
    res = cli("retrieve", "Is it a three or an eight?", "--dataset", "digits", "--arch", "mlp:64-16-2", "--zoo",
              tiny_zoo, "--hits", "2")
    assert res.code == 0, res.err
    assert res.out.splitlines()[0] == "labels read from the instruction: output 0 = 3, output 1 = 8"
    assert res.out.splitlines()[1].startswith("1. ")
    res = cli("retrieve", "asdf qwerty zxcv", "--dataset", "digits", "--arch", "mlp:64-16-2", "--zoo", tiny_zoo)
    assert res.code == 2 and "--classes" in res.err and len(res.err.strip().splitlines()) == 1
