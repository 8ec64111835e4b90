"""Fuzzing the parsers: for any text, bytes or JSON-like value, each either returns a valid object or raises
`IgpgError` (one line), never another exception.

Parsers: architecture strings, class lists (CLI strings and JSON-like values), instructions, export request lines
and dicts, zoo / generator / tokenizer configs (YAML text and mappings), checkpoint config.json, the safetensors
header reader and `igpg.load`. Inputs mix random data with near-misses of valid inputs (a valid value with one
part changed), which reach deeper into each parser than noise does.
"""

from __future__ import annotations

import json
import string
import struct
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TINY
from igpg import ArchSpec, ExportRequest, IgpgError, Task, load, parse_requests
from igpg.checkpoint import read_config
from igpg.config import read_yaml
from igpg.generator.model_dir import config_from_dict as generator_config
from igpg.io import read_header, save_weights
from igpg.text import check_instruction
from igpg.tokenizer.model import TokenizerConfig
from igpg.zoo.config import parse_zoo_config

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# JSON-like values: what json.loads / yaml.safe_load can hand a parser
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                         | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=20)


def one_line_or_valid(call, *args):
    """Run a parser; IgpgError (with a one-line message) is fine, anything else fails the test."""
    try:
        return call(*args)
    except IgpgError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None


# ---- architecture strings ---------------------------------------------------------------------------------------

arch_alphabet = "mlpcnMLPCN:-x=0123456789 actkreluganhsi\t\uff16\u0663+"
arch_like = st.builds(
    lambda fam, dims, opts: f"{fam}:{'-'.join(dims)}{''.join(':' + o for o in opts)}",
    st.sampled_from(["mlp", "cnn", "MLP", " mlp ", "rnn", ""]),
    st.lists(st.sampled_from(["64", "1x8x8", "1x40", "0", "32", "3", "", "+4", "65537", "x", "7"]), max_size=10),
    st.lists(st.sampled_from(["act=relu", "act=tanh", "act=swish", "k=3", "k=4", "k=", "k=3=3", "", "act"]),
             max_size=3),
)


@FUZZ
@given(text=st.text(alphabet=arch_alphabet, max_size=40) | st.text(max_size=40) | arch_like)
def test_arch_parser(text):
    spec = one_line_or_valid(ArchSpec.parse, text)
    if spec is not None:  # a valid spec prints to its canonical string and parses back to itself
        assert ArchSpec.parse(str(spec)) == spec
        assert spec.n_params > 0


# ---- class lists ------------------------------------------------------------------------------------------------

classes_text = st.text(alphabet="0123456789,+[] -\t.e", max_size=30) | st.text(max_size=30)


@FUZZ
@given(classes=classes_text | json_like)
def test_classes_parser(classes):
    task = one_line_or_valid(Task.from_classes, "digits", classes)
    if task is not None:
        assert task.num_labels >= 2 and Task.from_classes("digits", task.classes_json()) == task


@FUZZ
@given(dataset=st.sampled_from(["digits", "mnist", "nope", "", "torchvision:MNIST"]) | st.text(max_size=15) | json_like,
       classes=st.lists(st.integers(-3, 12) | st.lists(st.integers(-3, 12), max_size=3), max_size=5))
def test_task_from_any_dataset_name_and_class_list(dataset, classes):
    one_line_or_valid(Task.from_classes, dataset, classes)


@FUZZ
@given(text=st.text(max_size=50) | st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2028", max_size=10) | json_like)
def test_instruction_check(text):
    out = one_line_or_valid(check_instruction, text)
    if out is not None:
        assert out.strip() and out == " ".join(out.split())


# ---- export requests --------------------------------------------------------------------------------------------

GOOD = {"name": "n1", "instruction": "Classify digits 3, 5 and 8", "dataset": "digits", "classes": [3, 5, 8],
        "arch": "mlp:64-32-3", "seed": 0}
near_miss_request = st.builds(
    lambda changes, drop: {k: v for k, v in {**GOOD, **changes}.items() if k not in drop},
    st.dictionaries(st.sampled_from([*GOOD, "extra"]), json_like | st.sampled_from(["../x", "/abs", "a/b", "N1"]),
                    max_size=2),
    st.sets(st.sampled_from(list(GOOD)), max_size=1),
)


@FUZZ
@given(lines=st.lists(st.text(max_size=60) | near_miss_request.map(json.dumps) | st.binary(max_size=40), max_size=4))
def test_request_lines_are_parsed_or_reported(lines):
    valid, errors = parse_requests(lines)  # never raises: a bad line is reported with its number
    assert len(valid) + len(errors) <= len(lines)
    assert all(e.message and "\n" not in e.message for e in errors)
    assert len({r.name.lower() for r in valid}) == len(valid)
    for r in valid:  # a valid request survives its own canonical form
        assert ExportRequest.from_dict(r.as_dict()).as_dict() == r.as_dict()


@FUZZ
@given(obj=near_miss_request | json_like)
def test_request_objects(obj):
    one_line_or_valid(ExportRequest.from_dict, obj)


# ---- configs ----------------------------------------------------------------------------------------------------

TINY_CONFIG = yaml.safe_load(TINY.read_text())


def mutate(cfg: object, path: list, value: object) -> object:
    """cfg with the value at `path` (indices into nested dicts and lists, taken modulo their size) replaced."""
    if not path or not isinstance(cfg, (dict, list)) or not cfg:
        return value
    if isinstance(cfg, dict):
        key = sorted(cfg, key=str)[path[0] % len(cfg)]
        return {**cfg, key: mutate(cfg[key], path[1:], value)}
    i = path[0] % len(cfg)
    return [*cfg[:i], mutate(cfg[i], path[1:], value), *cfg[i + 1:]]


near_miss_zoo = st.builds(mutate, st.just(TINY_CONFIG), st.lists(st.integers(0, 20), min_size=1, max_size=4),
                          json_like | st.sampled_from([-1, 0, 10**9, "mlp:*-16-4", "mnist", [[3, 5, 10]]]))


@FUZZ
@given(raw=near_miss_zoo | json_like)
def test_zoo_config_mappings(raw):
    one_line_or_valid(parse_zoo_config, raw)


@FUZZ
@given(parse=st.sampled_from([generator_config, TokenizerConfig.parse]),
       raw=st.dictionaries(st.sampled_from(["steps", "lr", "batch_size", "dim", "families", "quantizer",
                                            "chunk_size", "class_embedding", "extra", "fsq_levels", "unknown"]),
                           json_like, max_size=3) | json_like)
def test_training_config_mappings(parse, raw):
    cfg = one_line_or_valid(parse, raw)
    if cfg is not None:
        train = cfg.train if parse is generator_config else cfg  # the generator's schedule is its train section
        assert train.steps >= 1 and train.batch_size >= 1


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


yaml_text = st.text(alphabet=string.printable, max_size=80) | st.binary(max_size=60) | near_miss_zoo.map(
    lambda c: yaml.safe_dump(c, allow_unicode=True))


@FUZZ
@given(content=yaml_text)
def test_yaml_config_files(scratch, content):
    path = scratch / "config.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    raw = one_line_or_valid(read_yaml, path, "zoo")
    one_line_or_valid(parse_zoo_config, raw)
    one_line_or_valid(TokenizerConfig.parse, raw)


@FUZZ
@given(content=st.binary(max_size=60) | json_like.map(json.dumps) | st.builds(
    lambda kind, config: json.dumps({"kind": kind, "config": config}),
    st.sampled_from(["igpg-weight-generator", "other"]), json_like))
def test_checkpoint_config_json(scratch, content):
    d = scratch / "ckpt"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    (d / "model.safetensors").write_bytes(b"")
    raw = one_line_or_valid(read_config, d, "igpg-weight-generator")
    if raw is not None:
        one_line_or_valid(generator_config, raw)


# ---- safetensors headers and files ------------------------------------------------------------------------------


def _valid_file_bytes(scratch: Path) -> bytes:
    torch.manual_seed(0)
    path = scratch / "valid.safetensors"
    save_weights(path, ArchSpec.parse("mlp:4-3-2").build().state_dict(), {"igpg.arch": "mlp:4-3-2"})
    return path.read_bytes()


header_values = st.dictionaries(
    st.sampled_from(["__metadata__", "hidden.0.weight", "hidden.0.bias", "head.weight", "head.bias", "x"]),
    st.fixed_dictionaries({}, optional={"dtype": st.sampled_from(["F32", "F16", "I64", "BOOL", "X9"]) | json_like,
                                        "shape": st.lists(st.integers(-1, 5), max_size=3) | json_like,
                                        "data_offsets": st.lists(st.integers(-2, 80), max_size=3) | json_like})
    | st.dictionaries(st.text(max_size=8), st.text(max_size=8) | json_like, max_size=3) | json_like,
    max_size=5)


@FUZZ
@given(data=st.data())
def test_safetensors_reader_and_load(scratch, data):
    valid = _valid_file_bytes(scratch)
    kind = data.draw(st.sampled_from(["bytes", "header", "mutated", "cut"]))
    if kind == "bytes":
        content = data.draw(st.binary(max_size=120))
    elif kind == "header":
        text = json.dumps(data.draw(header_values)).encode()
        content = struct.pack("<Q", len(text)) + text + data.draw(st.binary(max_size=80))
    elif kind == "mutated":  # a valid file with a few bytes overwritten
        content = bytearray(valid)
        for pos, byte in data.draw(st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)),
                                            min_size=1, max_size=4)):
            content[pos] = byte
        content = bytes(content)
    else:
        content = valid[: data.draw(st.integers(0, len(valid)))]
    path = scratch / "fuzz.safetensors"
    path.write_bytes(content)
    header = one_line_or_valid(read_header, path)
    if header is not None:
        assert isinstance(header, dict)
    net = one_line_or_valid(load, path)
    if net is not None:  # only a complete, finite, matching file loads
        assert all(torch.isfinite(p).all() for p in net.state_dict().values())
        assert ArchSpec.parse(net.igpg_metadata["igpg.arch"]) == net.spec
