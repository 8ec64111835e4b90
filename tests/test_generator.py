"""Generator: KV-cache parity, exact code counts, training + resume, API and CLI errors."""

import dataclasses
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igpg.arch import ArchSpec
from igpg.data import Task
from igpg.errors import IgpgError
from igpg.generator import GeneratorConfig, ParameterGenerator, SamplingConfig, WeightGenerator
from igpg.generator.conditions import sample_profile, support_set
from igpg.generator.rows import codes_to_rows, row_layout, rows_to_codes
from igpg.generator.sample import decode_logits_full, sample_codes
from igpg.generator.train import train_generator
from igpg.tokenizer import count_chunks

from conftest import TINY_GEN


def tiny_model(**kw) -> WeightGenerator:
    torch.manual_seed(0)
    return WeightGenerator(GeneratorConfig(**{**TINY_GEN, **kw})).eval()


def conditions(task: Task, k: int = 3):
    x, _ = support_set(task, k, seed=0)
    prof = [sample_profile(x, (1, 8, 8)).view(task.num_labels, k, -1)]
    instr = torch.nn.functional.normalize(torch.randn(1, 384), dim=-1)
    return prof, instr


@pytest.mark.parametrize("arch", ["mlp:64-16-3", "cnn:1x8x8-4-8-3", "mlp:64-8-8-8-3"])
def test_kv_cache_logits_equal_no_cache_and_full_forward(arch):
    model = tiny_model()
    task = Task.from_classes("digits", [3, 5, 8])
    prof, instr = conditions(task)
    sc = SamplingConfig(temperature=1.0)
    codes, side, cached = sample_codes(model, [task], arch, prof, instr, sc, seed=1, return_logits=True)
    codes2, side2, plain = sample_codes(model, [task], arch, prof, instr, sc, seed=1, use_cache=False, return_logits=True)
    full = decode_logits_full(model, [task], arch, prof, instr, codes)
    assert torch.equal(codes, codes2) and torch.equal(side, side2)
    for a, b, c in zip(cached, plain, full):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)


def test_windowed_decoding_emits_every_code():
    model = tiny_model(max_seq_len=12)  # far shorter than the network: decoded in windows
    task = Task.from_classes("digits", [3, 5, 8])
    prof, instr = conditions(task)
    codes, _ = sample_codes(model, [task], "mlp:64-16-3", prof, instr, SamplingConfig(0.0))
    assert codes.shape == (1, count_chunks("mlp:64-16-3", 8), 2) and codes.min() >= 0


small = st.integers(1, 24)


@st.composite
def specs(draw):
    labels = draw(st.integers(2, 5))
    if draw(st.booleans()):
        return ArchSpec("mlp", (64,), tuple(draw(st.lists(small, min_size=1, max_size=3))), labels)
    return ArchSpec("cnn", (1, 8, 8), tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=2))), labels)


@settings(max_examples=12, deadline=None)
@given(specs())
def test_generated_code_count_is_exactly_what_the_architecture_needs(spec):
    model = tiny_model()
    task = Task.from_classes("digits", list(range(spec.num_outputs)))
    prof, instr = conditions(task)
    codes, side = sample_codes(model, [task], str(spec), prof, instr, SamplingConfig(1.0), seed=0)
    assert codes.shape == (1, count_chunks(spec, 8), 2)
    assert 0 <= codes.min() and codes.max() < 64
    assert side.shape == (1, spec.depth + 1)
    lay = row_layout(str(spec), 8, 2)
    assert torch.equal(rows_to_codes(codes_to_rows(codes[0], lay), lay), codes[0])


def test_generator_trains_and_resumes_exactly(tiny_zoo, tiny_pipeline, tmp_path):
    d, gcfg = tiny_pipeline
    logs = [json.loads(x) for x in (d / "gen" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == [2, 4, 6, 8]
    train_generator(tiny_zoo, d / "tok", gcfg, tmp_path / "g", stop_after=4)
    resumed = train_generator(tiny_zoo, d / "tok", gcfg, tmp_path / "g")
    whole = ParameterGenerator.from_pretrained(d / "gen", tokenizer=d / "tok").model
    for (name, a), b in zip(resumed.state_dict().items(), whole.state_dict().values()):
        assert torch.equal(a, b), name


def test_generate_api_returns_working_module(tiny_pipeline):
    d, _ = tiny_pipeline
    gen = ParameterGenerator.from_pretrained(d / "gen", tokenizer=d / "tok")
    net = gen.generate("Classify handwritten digits 3, 5 and 8", dataset="digits", classes=[3, 5, 8],
                       arch="mlp:64-16-3", samples=3, seed=0)
    assert net(torch.randn(2, 64)).shape == (2, 3)
    assert json.loads(net.igpg_metadata["igpg.classes"]) == [3, 5, 8] and net.igpg_metadata["igpg.samples"] == "3"
    nets = gen.generate_batch([{"instruction": "odd vs even", "dataset": "digits", "classes": [[1, 3, 5, 7, 9], [0, 2, 4, 6, 8]],
                                "arch": "mlp:64-16-2"}, {"instruction": "3 vs 5", "dataset": "digits", "classes": [3, 5],
                                                         "arch": "cnn:1x8x8-4-2", "seed": 2}])
    assert [n(torch.randn(1, 64)).shape[-1] for n in nets] == [2, 2]


@pytest.mark.parametrize("kwargs, message", [
    (dict(instruction="  "), "instruction is empty"),
    (dict(classes=[3, 12]), "out of range"),
    (dict(arch="mlp:64-16-4"), "labels"),
    (dict(arch="mlp:100-16-3"), "input"),
    (dict(k=10_000), "k=10000 samples per label"),
    (dict(samples=0), "samples must be"),
])
def test_generate_bad_input(tiny_pipeline, kwargs, message):
    d, _ = tiny_pipeline
    gen = ParameterGenerator.from_pretrained(d / "gen", tokenizer=d / "tok")
    args = dict(instruction="Classify 3, 5 and 8", dataset="digits", classes=[3, 5, 8], arch="mlp:64-16-3")
    with pytest.raises(IgpgError, match=message) as err:
        gen.generate(**{**args, **kwargs})
    assert "\n" not in str(err.value)


def test_unsupported_architecture_names_the_range(tiny_pipeline):
    d, _ = tiny_pipeline
    gen = ParameterGenerator.from_pretrained(d / "gen", tokenizer=d / "tok")
    gen.cfg = dataclasses.replace(gen.cfg, families=("mlp",))
    with pytest.raises(IgpgError, match="supports families mlp"):
        gen.generate("x", dataset="digits", classes=[3, 5], arch="cnn:1x8x8-4-2")
    gen.cfg = dataclasses.replace(gen.cfg, families=("mlp", "cnn"), max_chunks_per_row=4)
    with pytest.raises(IgpgError, match="fan-in up to 31"):
        gen.generate("x", dataset="digits", classes=[3, 5], arch="mlp:64-16-2")


def test_extending_steps_resumes_other_changes_refused(tiny_zoo, tiny_pipeline, tmp_path):
    import shutil

    d, gcfg = tiny_pipeline
    shutil.copytree(d / "gen", tmp_path / "g")
    train_generator(tiny_zoo, d / "tok", dataclasses.replace(gcfg, steps=10), tmp_path / "g")
    steps = [json.loads(x)["step"] for x in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10]
    with pytest.raises(IgpgError, match="another config"):
        train_generator(tiny_zoo, d / "tok", dataclasses.replace(gcfg, steps=12, lr=0.1), tmp_path / "g")
