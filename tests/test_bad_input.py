"""Bad input, table-driven: every malformed input is refused in one line and nothing is written.

CLI cases run the installed `igpg` console script in a real process (cwd = the case's tmp dir) and check: exit code
2, stderr exactly one line `error: ...` naming the problem (no traceback), and the tmp dir (inputs, output paths,
anything a path could escape to) byte-for-byte unchanged. API cases check the same through `IgpgError`.

Only the released default model is used, and only where a command loads one before it can see the bad input; no
case trains anything. Each CLI case costs one interpreter start (~3 s); the variants of one parser are API cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

from conftest import ROOT, TINY, igpg_subprocess
from igpg import ArchSpec, ExportRequest, IgpgError, Task, export_networks, load, load_dataset, parse_requests
from igpg.checkpoint import read_config
from igpg.generator.api import DEFAULT_MODEL
from igpg.generator.model_dir import load_generator_config
from igpg.io import read_header, save_weights
from igpg.text import check_instruction
from igpg.tokenizer.tokenizer import load_tokenizer_config
from igpg.zoo import Catalogue, load_zoo_config

INSTRUCTION = "Classify handwritten digits 3, 5 and 8"
DEEP = "[" * 5000 + "]" * 5000  # valid-looking JSON nested past Python's recursion limit
HUGE = "9" * 5000  # more digits than int() converts
GOOD_REQUEST = {"name": "n1", "instruction": INSTRUCTION, "dataset": "digits", "classes": [3, 5, 8],
                "arch": "mlp:64-32-3", "seed": 0}


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Path], object]  # CLI: tmp -> argv; API: tmp -> a zero-argument call that must raise
    message: str  # must appear in the one-line error


# ---- helpers that write the malformed inputs into the case's tmp dir -------------------------------------------


def generate(instruction: str = INSTRUCTION, *, dataset: str = "digits", classes: str = "3,5,8",
             arch: str = "mlp:64-32-3", out: str = "net.safetensors", extra: tuple = ()) -> Callable[[Path], list]:
    """`igpg generate` argv with one thing changed (greedy, so a missing check would still end quickly)."""
    return lambda tmp: ["generate", instruction, "--dataset", dataset, "--classes", classes, "--arch", arch,
                        "--out", out, "--samples", "1", *extra]


def write(tmp: Path, name: str, content: str | bytes) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def export(*lines: object, before: Callable[[Path], None] | None = None, extra: tuple = ()) -> Callable[[Path], list]:
    """`igpg export requests.jsonl --out exported` over these lines (dicts are dumped as JSON, str written as is)."""
    def setup(tmp: Path) -> list:
        text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
        write(tmp, "requests.jsonl", text)
        if before:
            before(tmp)
        return ["export", "requests.jsonl", "--out", "exported", *extra]
    return setup


def request(**changes) -> dict:
    """The good request with some keys changed (a value of ... removes the key)."""
    return {k: v for k, v in {**GOOD_REQUEST, **changes}.items() if v is not ...}


def tiny_config(tmp: Path, edit: Callable[[dict], None] | None = None, text: str | None = None) -> Path:
    """configs/zoo/tiny.yaml with an edit applied (or raw text instead), written to tmp/zoo.yaml."""
    if text is None:
        cfg = yaml.safe_load(TINY.read_text())
        edit(cfg)
        text = yaml.safe_dump(cfg)
    return write(tmp, "zoo.yaml", text)


def zoo_build(edit: Callable[[dict], None] | None = None, text: str | None = None,
              extra: tuple = ()) -> Callable[[Path], list]:
    return lambda tmp: ["zoo", "build", "--config", tiny_config(tmp, edit, text), "--out", "zoo", *extra]


def model_dir(tmp: Path, weights: bytes | None = None, config: str | None = None) -> Path:
    """A generator checkpoint dir: the released config.json and weights, with one of them replaced."""
    d = tmp / "model"
    d.mkdir()
    write(d, "config.json", config if config is not None else (DEFAULT_MODEL / "config.json").read_text())
    if weights is None:
        shutil.copy(DEFAULT_MODEL / "model.safetensors", d / "model.safetensors")
    else:
        write(d, "model.safetensors", weights)
    return d


def raw_safetensors(header: object, data: bytes = b"") -> bytes:
    """A safetensors file with exactly this header (no checks): the length prefix, the JSON, the data."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


SMALL = "mlp:8-4-2"


def weights_file(tmp: Path, name: str = "net.safetensors", arch: str | None = SMALL, state: dict | None = None,
                 damage: Callable[[bytes], bytes] | None = None) -> Path:
    """A network file as igpg writes it (optionally with other tensors, no igpg.arch, or damaged bytes)."""
    torch.manual_seed(0)
    state = ArchSpec.parse(SMALL).build().state_dict() if state is None else state
    path = tmp / name
    save_weights(path, state, {"igpg.arch": arch} if arch else {})
    if damage:
        path.write_bytes(damage(path.read_bytes()))
    return path


def small_state(**changes) -> dict:
    torch.manual_seed(0)
    state = dict(ArchSpec.parse(SMALL).build().state_dict())
    for key, value in changes.items():
        name = key.replace("__", ".")
        if value is None:
            del state[name]
        else:
            state[name] = value(state[name])
    return state


def nan_at_zero(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


def calls(fn: Callable, make: Callable[[Path], object], *args) -> Callable[[Path], Callable[[], object]]:
    """A setup that writes its input now (make(tmp)) and returns the call fn(input, *args) to run later."""
    def setup(tmp: Path) -> Callable[[], object]:
        made = make(tmp)
        return lambda: fn(made, *args)
    return setup


def first_request_error(result: tuple) -> None:
    """parse_requests reports bad lines instead of raising: raise the first one, as the CLI prints it."""
    _, errors = result
    if errors:
        raise IgpgError(str(errors[0]))


def write_yaml(tmp: Path, name: str, content: dict | str) -> Path:
    return write(tmp, name, content if isinstance(content, str) else yaml.safe_dump(content))


def set_in(path: str, value: object) -> Callable[[dict], None]:
    """An edit of a nested config key 'a.b.c' (value ... deletes it)."""
    def edit(cfg: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            cfg = cfg[p]
        if value is ...:
            del cfg[last]
        else:
            cfg[last] = value
    return edit


def symlinked_manifest(tmp: Path) -> None:
    (tmp / "exported").mkdir()
    write(tmp, "elsewhere.jsonl", "")
    (tmp / "exported" / "manifest.jsonl").symlink_to(tmp / "elsewhere.jsonl")


# ---- the CLI table ----------------------------------------------------------------------------------------------

CLI_CASES = [
    # instruction
    Case("generate-instruction-empty", generate(""), "instruction is empty"),
    # architecture strings
    Case("generate-arch-empty", generate(arch=""), "empty string"),
    Case("generate-arch-outputs-differ-from-labels", generate(arch="mlp:64-32-4"), "has 4 outputs but the task has 3"),
    # class lists
    Case("generate-classes-duplicate", generate(classes="3,3,8"), "appears in two labels"),
    Case("generate-classes-bad-json", generate(classes="[3, 5,"), "not valid JSON"),
    Case("generate-classes-json-nested-too-deep", generate(classes=DEEP), "not valid JSON"),
    Case("generate-classes-number-too-long", generate(classes=f"{HUGE},1"), "out of range"),
    # dataset and output path
    Case("generate-dataset-unknown", generate(dataset="digitz"), "unknown dataset 'digitz'"),
    Case("generate-out-bad-suffix", generate(out="net.pt"), "must end in .safetensors"),
    Case("generate-out-is-a-directory", lambda tmp: (tmp / "net.safetensors").mkdir() or generate()(tmp),
         "is a directory"),
    Case("generate-out-parent-missing", generate(out="missing/net.safetensors"), "does not exist"),
    # the generator checkpoint (--model)
    Case("generate-model-dir-missing", generate(extra=("--model", "nowhere")), "not found"),
    Case("generate-model-weights-zero-bytes", lambda tmp: generate(extra=("--model", model_dir(tmp, b"")))(tmp),
         "not a safetensors file"),
    Case("generate-model-weights-bad-header",
         lambda tmp: generate(extra=("--model", model_dir(tmp, raw_safetensors({"w": 5}))))(tmp),
         "no valid data_offsets"),
    # options the parser itself refuses
    Case("generate-samples-not-a-number", generate(extra=("--samples", "abc")), "Invalid value for '--samples'"),
    Case("generate-unknown-option", generate(extra=("--temprature", "1")), "No such option"),
    # export: the requests file, the output directory, and names that could escape it
    Case("export-requests-missing", lambda tmp: ["export", "nowhere.jsonl", "--out", "exported"], "not found"),
    Case("export-batch-size-zero", export(GOOD_REQUEST, extra=("--batch-size", "0")), "Invalid value for '--batch-size': Input should be greater than or equal to 1"),
    Case("export-out-is-a-file", lambda tmp: write(tmp, "exported", "x") and export(GOOD_REQUEST)(tmp), "is a file"),
    Case("export-manifest-is-a-symlink", export(GOOD_REQUEST, before=symlinked_manifest), "symbolic link"),
    Case("export-line-not-json", export("{name: n1}"), "not valid JSON"),
    Case("export-line-nested-too-deep", export(DEEP), "not valid JSON"),
    Case("export-line-integer-too-long", export(json.dumps(request())[:-1] + f', "x": {HUGE}}}'), "not valid JSON"),
    Case("export-line-duplicate-key", export(json.dumps(request())[:-1] + ', "name": "n2"}'), "given twice"),
    Case("export-name-with-slash", export(request(name="sub/n1")), "bad name"),
    Case("export-name-dot-dot", export(request(name="../n1")), "bad name"),
    Case("export-name-absolute-path", lambda tmp: export(request(name=str(tmp / "n1")))(tmp), "bad name"),
    # zoo build configs and zoo directories
    Case("zoo-config-missing", lambda tmp: ["zoo", "build", "--config", "nowhere.yaml", "--out", "zoo"], "not found"),
    Case("zoo-config-not-yaml", zoo_build(text="name: [tiny\n"), "not valid YAML"),
    Case("zoo-config-negative-epochs", zoo_build(set_in("train.max_epochs", -5)), "max_epochs must be at least 1, got -5"),
    Case("zoo-workers-zero", zoo_build(set_in("name", "tiny"), extra=("--workers", "0")), "Invalid value for '--workers': Input should be greater than or equal to 1"),
    Case("zoo-out-is-a-file", lambda tmp: write(tmp, "zoo", "x") and zoo_build(set_in("name", "tiny"))(tmp),
         "not a directory"),
    Case("zoo-verify-corrupt-catalogue", lambda tmp: write(tmp, "zoo/catalogue.sqlite", b"not sqlite " * 100)
         and ["zoo", "verify", "zoo"], "not a readable zoo catalogue"),
    # training configs (the zoo is checked after the config, so a bad config is named first)
    Case("train-generator-negative-steps", lambda tmp: ["train", "generator", "--zoo", "nozoo", "--tokenizer", "notok",
         "--config", write_yaml(tmp, "gen.yaml", {"steps": -5}), "--out", "gen"], "steps must be at least 1"),
    Case("train-generator-set-unknown-key", lambda tmp: ["train", "generator", "--zoo", "nozoo", "--tokenizer", "notok",
         "--config", ROOT / "configs" / "generator" / "tiny.yaml", "--out", "gen", "--set", "train.lrr=3e-4"],
         "--set train.lrr: unknown key 'train.lrr'; allowed: "),
    Case("zoo-build-set-unknown-key", zoo_build(set_in("name", "tiny"), extra=("--set", "train.epochs=3")),
         "--set train.epochs: unknown key 'train.epochs'"),
    Case("train-tokenizer-steps-wrong-type", lambda tmp: ["train", "tokenizer", "--zoo", "nozoo", "--config",
         write_yaml(tmp, "tok.yaml", {"train": {"steps": "many"}}), "--out", "tok"], "train.steps must be int"),
    Case("train-tokenizer-set-unknown-key", lambda tmp: ["train", "tokenizer", "--zoo", "nozoo", "--config",
         ROOT / "configs" / "tokenizer" / "tiny.yaml", "--out", "tok", "--set", "model.hiden=64"],
         "--set model.hiden: unknown key 'model.hiden'; allowed: "),
    Case("train-tokenizer-set-flat-key", lambda tmp: ["train", "tokenizer", "--zoo", "nozoo", "--config",
         ROOT / "configs" / "tokenizer" / "tiny.yaml", "--out", "tok", "--set", "lr=3e-3"],
         "--set lr: unknown key 'lr'; allowed: model, train"),
    Case("retrieve-zoo-missing", lambda tmp: ["retrieve", INSTRUCTION, "--dataset", "digits", "--classes", "3,5,8",
         "--arch", "mlp:64-32-3", "--zoo", "nowhere"], "is not a zoo"),
    Case("data-info-unknown-dataset", lambda tmp: ["data", "info", "cifar"], "unknown dataset 'cifar'"),
]


# ---- the API table ----------------------------------------------------------------------------------------------

API_CASES = [
    # architecture strings and specs
    *[Case(f"arch-{name}", lambda tmp, s=s: lambda: ArchSpec.parse(s), msg) for name, s, msg in [
        ("not-a-string", None, "must be a string"),
        ("family-only", "mlp", "missing sizes"),
        ("empty-size", "mlp:64--3", "empty size between dashes"),
        ("one-output", "mlp:64-32-1", "outputs must be 2..1000"),
        ("too-deep", "mlp:64-" + "8-" * 9 + "3", "1..8 hidden layers"),
        ("unknown-activation", "mlp:64-32-3:act=swish", "unknown activation"),
        ("kernel-on-mlp", "mlp:64-32-3:k=3", "cnn only"),
        ("even-kernel", "cnn:1x8x8-8-3:k=4", "odd 1..7"),
        ("non-ascii-digits", "mlp:\uff16\uff14-32-3", "ASCII"),
        ("size-too-large", "mlp:64-9999999-3", "too large"),
    ]],
    Case("arch-input-differs-from-data", lambda tmp: lambda: ArchSpec.parse("mlp:63-32-3").check_compatible(
        load_dataset("digits").input_shape, 3), "inputs of size 63"),
    Case("arch-spec-no-hidden-layers", lambda tmp: lambda: ArchSpec("mlp", (64,), (), 3), "1..8 hidden layers"),
    # class lists
    *[Case(f"classes-{name}", lambda tmp, c=c: lambda: Task.from_classes("digits", c), msg) for name, c, msg in [
        ("negative", "-1,5", "bad class"),
        ("out-of-range", "3,5,10", "out of range"),
        ("empty-group-in-json", "[[], [1, 2]]", "empty group"),
        ("whitespace-only", " \t ", "no classes given"),
        ("dangling-plus", "1+,2", "bad class"),
        ("single-label", "3", "at least 2 labels"),
        ("overlapping-groups", "1+3,3+5", "appears in two labels"),
        ("float-in-json", "[1.5, 2]", "not an integer"),
        ("bool", [True, 2], "not an integer"),
        ("group-repeats-a-class", [[1, 1], [2]], "repeats a class"),
        ("not-a-list", {1, 2}, "must be a list"),
    ]],
    Case("classes-dataset-not-a-string", lambda tmp: lambda: Task.from_classes(5, [1, 2]), "must be a string"),
    Case("dataset-torchvision-without-root", lambda tmp: lambda: load_dataset("torchvision:MNIST"),
         "needs a local data folder"),
    # instructions
    Case("instruction-whitespace", lambda tmp: lambda: check_instruction("\n \t"), "instruction is empty"),
    Case("instruction-not-a-string", lambda tmp: lambda: check_instruction(None), "instruction is empty"),
    # export requests
    Case("request-name-absolute", lambda tmp: lambda: ExportRequest.from_dict(request(name="/tmp/n1")), "bad name"),
    Case("request-classes-as-string", lambda tmp: lambda: ExportRequest.from_dict(request(classes="3,5,8")),
         "classes must be a list"),
    Case("request-missing-field", lambda tmp: lambda: ExportRequest.from_dict(request(arch=...)),
         "missing key(s) arch"),
    Case("request-seed-negative", lambda tmp: lambda: ExportRequest.from_dict(request(seed=-1)), "seed must be"),
    Case("requests-binary-file", calls(lambda path: first_request_error(parse_requests(path)), lambda tmp: write(
        tmp, "requests.jsonl", bytes(b for b in range(256) if b != 10))), "not valid JSON"),
    Case("request-seed-bool", lambda tmp: lambda: ExportRequest.from_dict(request(seed=True)), "seed must be"),
    Case("requests-duplicate-name-ignoring-case", lambda tmp: lambda: first_request_error(parse_requests(
        [json.dumps(request()), json.dumps(request(name="N1"))])), "duplicate name 'N1'"),
    Case("export-single-request-not-a-list", lambda tmp: lambda: export_networks(
        GOOD_REQUEST, tmp / "exported", producer=lambda batch: []), "got a single request"),
    Case("export-networks-batch-size-zero", lambda tmp: lambda: export_networks(
        [GOOD_REQUEST], tmp / "exported", producer=lambda batch: [], batch_size=0), "batch size"),
    Case("export-out-parent-is-a-file", lambda tmp: write(tmp, "file", "x") and (lambda: export_networks(
        [GOOD_REQUEST], tmp / "file" / "exported", producer=lambda batch: [])), "a parent is a file"),
    # safetensors files (igpg.load, read_header)
    Case("weights-zero-bytes", calls(load, lambda tmp: write(tmp, "net.safetensors", b"")), "not a safetensors file"),
    Case("weights-truncated", calls(load, lambda tmp: weights_file(tmp, damage=lambda b: b[:-4])),
         "truncated or padded"),
    Case("weights-padded", calls(load, lambda tmp: weights_file(tmp, damage=lambda b: b + b"\0" * 8)),
         "truncated or padded"),
    Case("weights-header-longer-than-file", calls(load, lambda tmp: weights_file(
        tmp, damage=lambda b: struct.pack("<Q", len(b)) + b[8:])), "corrupt safetensors header"),
    Case("weights-header-not-json", calls(load, lambda tmp: write(
        tmp, "net.safetensors", struct.pack("<Q", 4) + b"\xff\xfe{x")), "not JSON"),
    Case("weights-header-nested-too-deep", calls(read_header, lambda tmp: write(
        tmp, "net.safetensors", struct.pack("<Q", len(DEEP)) + DEEP.encode())), "not JSON"),
    Case("weights-header-a-list", calls(load, lambda tmp: write(tmp, "net.safetensors", raw_safetensors([1, 2]))),
         "corrupt safetensors header"),
    Case("weights-header-no-offsets", calls(load, lambda tmp: write(tmp, "net.safetensors", raw_safetensors(
        {"head.weight": {"dtype": "F32", "shape": [1]}}))), "no valid data_offsets"),
    Case("weights-metadata-not-a-mapping", calls(load, lambda tmp: write(tmp, "net.safetensors", raw_safetensors(
        {"__metadata__": ["igpg.arch", SMALL]}))), "__metadata__ must map strings"),
    Case("weights-unknown-dtype", calls(load, lambda tmp: write(tmp, "net.safetensors", raw_safetensors(
        {"__metadata__": {"igpg.arch": SMALL}, "head.bias": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}},
        b"\0" * 8))), "cannot read safetensors"),
    Case("weights-nan", calls(load, lambda tmp: weights_file(tmp, state=small_state(head__bias=nan_at_zero))),
         "NaN or infinite"),
    Case("weights-integer-dtype", calls(load, lambda tmp: weights_file(tmp, state=small_state(
        head__weight=lambda t: t.to(torch.int64)))), "dtype torch.int64"),
    Case("weights-wrong-shape", calls(load, lambda tmp: weights_file(tmp, state=small_state(
        head__weight=lambda t: t[:1]))), "head.weight is [1, 4], expected [2, 4]"),
    Case("weights-tensor-missing", calls(load, lambda tmp: weights_file(tmp, state=small_state(head__bias=None))),
         "missing head.bias"),
    Case("weights-no-arch-metadata", calls(load, lambda tmp: weights_file(tmp, arch=None)), "no igpg.arch"),
    Case("weights-bad-arch-metadata", calls(load, lambda tmp: weights_file(tmp, arch="mlp:8-4")),
         "bad architecture"),
    Case("weights-pickle-disguised", calls(load, lambda tmp: torch.save({"w": torch.zeros(2)}, tmp / "net.safetensors")
         or tmp / "net.safetensors"), "corrupt safetensors header"),
    Case("weights-path-is-a-directory", calls(load, lambda tmp: tmp), "is a directory"),
    # config loaders
    Case("zoo-config-seed-listed-twice", calls(load_zoo_config, lambda tmp: tiny_config(
        tmp, set_in("seeds", {"train": [0], "heldout": [0]}))), "a seed is listed twice"),
    Case("zoo-config-no-archs", calls(load_zoo_config, lambda tmp: tiny_config(tmp, set_in("archs", []))),
         "archs must have at least 1 item"),
    Case("zoo-config-output-not-star", calls(load_zoo_config, lambda tmp: tiny_config(
        tmp, set_in("archs", [{"arch": "mlp:*-16-4"}]))), "output size must be '*'"),
    Case("zoo-config-dataset-key-not-a-string", calls(load_zoo_config, lambda tmp: tiny_config(
        tmp, set_in("datasets", {1: {"tasks": 2}}))), "must be str, got 1"),
    Case("zoo-config-not-a-mapping", calls(load_zoo_config, lambda tmp: write(tmp, "zoo.yaml", "- tiny\n- digits\n")),
         "expected a mapping"),
    Case("zoo-config-unknown-key", calls(load_zoo_config, lambda tmp: tiny_config(tmp, set_in("epochs", 3))),
         "unknown key 'epochs'"),
    Case("zoo-config-init-a-list", calls(load_zoo_config, lambda tmp: tiny_config(tmp, set_in("init", ["generic"]))),
         "init must be one of 'independent', 'shared' or 'generic'"),
    Case("request-unknown-key-with-newline", lambda tmp: lambda: ExportRequest.from_dict({**GOOD_REQUEST, "a\nb": 1}),
         "unknown key(s) 'a\\nb'"),
    Case("zoo-config-empty-file", calls(load_zoo_config, lambda tmp: write(tmp, "zoo.yaml", "")),
         "expected a mapping"),
    Case("generator-config-negative-lr", calls(load_generator_config, lambda tmp: write_yaml(
        tmp, "gen.yaml", {"lr": -0.1})), "lr must be at least 0"),
    Case("generator-config-families-a-string", calls(load_generator_config, lambda tmp: write_yaml(
        tmp, "gen.yaml", {"families": "mlp"})), "families must be list"),
    Case("generator-config-unknown-key", calls(load_generator_config, lambda tmp: write_yaml(
        tmp, "gen.yaml", {"stepz": 5})), "unknown key 'stepz'"),
    Case("tokenizer-config-chunk-size-zero", calls(load_tokenizer_config, lambda tmp: write_yaml(
        tmp, "tok.yaml", {"model": {"chunk_size": 0}})), "model.chunk_size must be at least 1, got 0"),
    Case("checkpoint-config-nested-too-deep", calls(read_config, lambda tmp: model_dir(tmp, config=DEEP),
         "igpg-weight-generator"), "config.json is not valid JSON"),
    Case("checkpoint-config-wrong-kind", calls(read_config, lambda tmp: model_dir(
        tmp, config=json.dumps({"kind": "something-else", "config": {}})), "igpg-weight-generator"),
        "not a igpg-weight-generator checkpoint"),
    Case("zoo-dir-missing", lambda tmp: lambda: Catalogue(tmp / "nowhere"), "is not a zoo"),
]


# ---- the checks -------------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything under root: relative path -> (kind, mode, sha256 or link target)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode)
            else:
                out[rel] = ("file", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert "Traceback" not in err, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0][len("error: "):].strip(), err[-2000:]
    return lines[0]


def test_the_tables_are_big_enough():
    ids = [c.id for c in CLI_CASES + API_CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 50 and len(CLI_CASES) >= 30


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input_one_error_line_exit_2_nothing_written(case: Case, tmp_path: Path):
    args = case.setup(tmp_path)
    before = snapshot(tmp_path)
    proc = igpg_subprocess(*args, cwd=tmp_path, env_extra={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    _, err = proc.communicate(timeout=300)
    line = one_error_line(err)
    assert proc.returncode == 2, err
    assert case.message in line, line
    assert snapshot(tmp_path) == before, "the command wrote or changed files"


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_bad_input_raises_igpg_error_nothing_written(case: Case, tmp_path: Path):
    call = case.setup(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(IgpgError) as info:
        call()
    message = str(info.value)
    assert case.message in message and "\n" not in message, message
    assert snapshot(tmp_path) == before, "the call wrote or changed files"
