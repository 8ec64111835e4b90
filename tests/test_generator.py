"""Generator: KV-cache parity, exact code counts, training + resume, API and CLI errors."""

import dataclasses
import json
import random
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igpg.arch import ArchSpec
from igpg.data import Task, load_dataset
from igpg.evaluation.accuracy import accuracy
from igpg.errors import IgpgError
from igpg.generator import ParameterGenerator, SamplingConfig, WeightGenerator
from igpg.generator.conditions import sample_profile, support_set
from igpg.generator.rows import codes_to_rows, row_layout, rows_to_codes
from igpg.generator.sample import decode_logits_full, sample_codes
from igpg.generator.train import train_generator
from igpg.tokenizer import count_chunks
from igpg.transform import transform_state

from conftest import ROOT, TINY_GEN, tiny_gen_config


def tiny_model(changes: dict | None = None) -> WeightGenerator:
    torch.manual_seed(0)
    return WeightGenerator(tiny_gen_config(changes)).eval()


def conditions(task: Task, k: int = 3):
    x, _ = support_set(task, k, seed=0)
    prof = [sample_profile(x, (1, 8, 8)).view(task.num_labels, k, -1)]
    instr = torch.nn.functional.normalize(torch.randn(1, 384), dim=-1)
    return prof, instr


@pytest.mark.parametrize("kw", [{}, {"model.row_keys": 64}, {"model.row_keys": 64, "model.base_rows": True},
                                {"model.row_keys": 64, "model.base_rows": True, "model.compositional": True}],
                         ids=["chain", "keys", "keys+base", "compositional"])
@pytest.mark.parametrize("arch", ["mlp:64-16-3", "cnn:1x8x8-4-8-3", "mlp:64-8-8-8-3"])
def test_kv_cache_logits_equal_no_cache_and_full_forward(arch, kw):
    model = tiny_model(kw)
    if model.row_key_emb is not None:
        torch.nn.init.normal_(model.row_key_emb.weight)  # zero at init: make the keys count
    task = Task.from_classes("digits", [[3, 4], 5, 8])  # a grouped label
    prof, instr = conditions(task)
    sc = SamplingConfig(temperature=1.0)
    dec = sample_codes(model, [task], arch, prof, instr, sc, seed=1, return_logits=True)
    dec2 = sample_codes(model, [task], arch, prof, instr, dataclasses.replace(sc, use_cache=False), seed=1,
                        return_logits=True)
    codes, side, cached, codes2, side2, plain = dec.codes, dec.side, dec.logits, dec2.codes, dec2.side, dec2.logits
    full = decode_logits_full(model, [task], arch, prof, instr, codes)
    assert torch.equal(codes, codes2) and torch.equal(side, side2)
    for a, b, c in zip(cached, plain, full):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)


def test_rows_see_the_codes_of_earlier_rows():
    """A row's logits move when the codes of the rows before it change (the row chain); the first row's do not."""
    model = tiny_model()
    with torch.no_grad():  # make the code embeddings matter: the tiny model is untrained
        model.code_emb.normal_(0, 1.0)
    task = Task.from_classes("digits", [3, 5, 8])
    prof, instr = conditions(task)
    arch = "mlp:64-16-3"
    n = count_chunks(arch, 8)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randint(0, 64, (1, n, 2), generator=gen) for _ in range(2))
    with torch.no_grad():
        la = decode_logits_full(model, [task], arch, prof, instr, a)
        lb = decode_logits_full(model, [task], arch, prof, instr, b)
    torch.testing.assert_close(la[0], lb[0])  # the first row sees no codes either way
    moved = max(float((x - y).abs().max()) for x, y in zip(la[1:], lb[1:]))
    assert moved > 1e-3


def test_row_keys_address_shared_hidden_rows_and_classes():
    """Hidden rows: one key per (architecture without its output count, layer, neuron); output rows: the key of
    their label's class (a group: all its classes), wherever the label sits."""
    from igpg.generator.data import KEY_HASHES, row_keys

    cfg = tiny_gen_config({"model.row_keys": 4096})
    a = row_keys([Task.from_classes("digits", [3, 5, 8])], ["mlp:64-16-3"], cfg, 19)[0]
    b = row_keys([Task.from_classes("digits", [8, 1, 3, 0])], ["mlp:64-16-4"], cfg, 20)[0]
    g = row_keys([Task.from_classes("digits", [[3, 5], 8])], ["mlp:64-16-2"], cfg, 18)[0]
    other = row_keys([Task.from_classes("digits", [3, 5, 8])], ["mlp:64-32-3"], cfg, 35)[0]
    assert torch.equal(a[:16], b[:16]) and torch.equal(a[:16], g[:16, :KEY_HASHES])  # same hidden layer, any outputs
    assert (g[:16, KEY_HASHES:] == -1).all() and (g[17, KEY_HASHES:] == -1).all()  # one key: the rest is padding
    assert len({tuple(r.tolist()) for r in a[:16]}) == 16  # every neuron its own key
    assert not torch.equal(a[:16], other[:16])  # another architecture, other keys
    assert torch.equal(a[16], b[18]) and torch.equal(a[18], b[16])  # class 3 and class 8 keep their keys
    assert torch.equal(g[16, : 2 * KEY_HASHES], torch.cat([a[16, :KEY_HASHES], a[17, :KEY_HASHES]]))  # group {3, 5}
    assert (a >= 0).all() and (a < 4096).all()


def test_compositional_keys_are_shared_across_widths_and_depths_and_features_see_the_architecture():
    """Compositional row keys name (family, input, layer, neuron) and (family, dataset, class): every width and depth
    shares them; the activation, relative index and distance to the output reach the row positions."""
    from igpg.generator.data import KEY_HASHES, row_batch, row_keys

    cfg = tiny_gen_config({"model.row_keys": 4096, "model.compositional": True})
    task = [Task.from_classes("digits", [3, 5, 8])]
    a = row_keys(task, ["mlp:64-16-3"], cfg, 19)[0]
    b = row_keys(task, ["mlp:64-32-32-3"], cfg, 67)[0]
    assert torch.equal(a[:16], b[:16])  # neuron j of layer 0, whatever the width or depth
    assert torch.equal(a[16:19], b[64:67])  # the classes' keys, whatever the architecture
    assert not torch.equal(b[32:48], b[:16])  # layer 1 has keys of its own
    plain = row_keys(task, ["mlp:64-32-32-3"], tiny_gen_config({"model.row_keys": 4096}), 67)[0]
    assert not torch.equal(plain[:16, :KEY_HASHES], b[:16, :KEY_HASHES])  # the per-architecture keys differ
    rows, _, _ = row_batch(["mlp:64-8-8-3:act=tanh"], cfg, task)
    assert rows["activation"][0].unique().tolist() == [1]  # tanh
    assert rows["layers_to_out"][0].tolist() == [2] * 8 + [1] * 8 + [0] * 3
    model = tiny_model({"model.row_keys": 64, "model.compositional": True})
    torch.nn.init.normal_(model.comp_feat.weight)
    relu, tanh = (model.row_position(row_batch([a], model.cfg, task)[0]) for a in ("mlp:64-8-3", "mlp:64-8-3:act=tanh"))
    assert float((relu - tanh).abs().max()) > 1e-3


def test_sibling_bases_are_other_architectures_carried_over_and_drawn_in_training(tiny_zoo, tiny_pipeline):
    from igpg.generator.base_rows import GenericBank
    from igpg.generator.data import ExampleSampler
    from igpg.generator.train import load_examples
    from igpg.tokenizer.tokenizer import WeightTokenizer

    d, gcfg = tiny_pipeline
    torch.manual_seed(0)
    state16 = ArchSpec.parse("mlp:64-16-10").build().state_dict()
    bank = GenericBank({"mlp:64-16-10@digits": state16, "mlp:64-12-10@digits": transform_state(
        state16, ArchSpec.parse("mlp:64-16-10"), ArchSpec.parse("mlp:64-12-10"))})
    sib = bank.siblings("mlp:64-16-3", "digits")
    assert [k for k, _ in sib] == ["mlp:64-12-10@digits"] and sib[0][1].steps == ("widen layer 0 12->16",)
    tok = WeightTokenizer.load(d / "tok")
    cfg = tiny_gen_config({"model.base_rows": True, "train.sibling_bases": 1.0})
    examples = load_examples(tiny_zoo, d / "tok" / "codes", cfg, tokenizer=tok, bank=bank)
    task_ex = [e for e in examples if e.arch == "mlp:64-16-3" and len(e.siblings) == 1]
    assert task_ex and all(not e.siblings for e in examples if e.task.num_labels == 10)  # generic networks: none
    sampler = ExampleSampler(examples, cfg)
    batch = sampler.collate(task_ex[:2], random.Random(0), dropout=True)
    sib_rows = task_ex[0].siblings[0][0]
    assert torch.equal(batch["base"][0, : sib_rows.shape[0], : sib_rows.shape[1]], sib_rows)  # drawn with p = 1
    plain = sampler.collate(task_ex[:2], random.Random(0), dropout=False)  # sampling never draws them
    assert torch.equal(plain["base"][0, : task_ex[0].base[0].shape[0], : task_ex[0].base[0].shape[1]], task_ex[0].base[0])


@pytest.mark.parametrize("kw, message", [({"train.sibling_bases": 2.0}, "sibling_bases must be between 0 and 1"),
                                         ({"train.instr_dropout": 1.5}, "instr_dropout must be between 0 and 1"),
                                         ({"train.base_dropout": -0.1}, "base_dropout must be between 0 and 1")])
def test_generator_config_refuses_bad_values(kw, message):
    with pytest.raises(IgpgError, match=message):
        tiny_gen_config(kw)


def test_fields_are_read_by_section_and_a_recipe_has_no_code_format():
    cfg = tiny_gen_config(codes=False)
    assert (cfg.model.dim, cfg.train.steps, cfg.codes) == (32, 8, None)
    assert not hasattr(cfg, "dim")  # no flat reads: each field is read through its section
    with pytest.raises(IgpgError, match="unknown key 'steps'; allowed: codes, model, train"):
        cfg.replace(steps=2)  # nor flat writes: override({"train.steps": 2})
    with pytest.raises(IgpgError, match=r"^generator config: no code format \('codes'\); it is read from the tokenizer"):
        WeightGenerator(cfg)


# the options removed on 2026-12-02 (eval/results/generator-ablation.md), at the values every config.json released
# before then holds them
OLD_NEUTRAL = {"row_code_noise": 0.0, "row_context": "previous", "group_keys": False, "task_keys": False,
               "drift_keys": 0, "drift_dim": 48, "head_features": False, "feature_pool": 32, "train_seeds": [],
               "grouped_weight": 1.0, "extra": {}}


def test_released_config_loads_and_an_older_one_with_removed_options_off_too():
    from igpg.checkpoint import read_config
    from igpg.generator.api import DEFAULT_MODEL
    from igpg.generator.model_dir import KIND, config_from_dict

    raw = read_config(DEFAULT_MODEL, KIND)
    released = config_from_dict(raw)
    assert released.model.base_rows and released.model.row_keys == 8192 and released.model.compositional
    assert set(raw) == {"model", "train", "codes"}  # the release is written in sections, without them
    flat = {key: value for section in raw.values() for key, value in section.items()}  # as released before 2026-12
    assert config_from_dict({**flat, **OLD_NEUTRAL}) == released
    # the defaults are the released model and recipe; its code format came from its tokenizer
    from igpg.generator import GeneratorConfig, ModelConfig, TrainConfig

    assert released.model == ModelConfig() and released.train == TrainConfig()
    assert (released.codes.vocab, released.codes.codes_per_chunk, released.codes.tokenizer) == (1024, 6, "rvq6")
    # written anew in sections, it reads back the same; the recipe default.yaml is the release minus the tokenizer
    assert set(released.to_dict()) == {"model", "train", "codes"} and config_from_dict(released.to_dict()) == released
    from igpg.generator.model_dir import load_generator_config

    recipe = load_generator_config(ROOT / "configs" / "generator" / "default.yaml")
    assert recipe == GeneratorConfig() == released.model_copy(update={"codes": None})


def test_a_variant_is_an_override_of_the_recipe():
    from igpg.generator.model_dir import load_generator_config

    recipe = ROOT / "configs" / "generator" / "default.yaml"
    cfg = load_generator_config(recipe, ["train.lr=3e-4", "model.dim=256", "train.exclude_datasets=[mnist]"])
    assert (cfg.train.lr, cfg.model.dim, cfg.train.exclude_datasets) == (3e-4, 256, ("mnist",))
    back = {"train.lr": 8e-4, "model.dim": 192, "train.exclude_datasets": ()}
    assert cfg.override(back) == load_generator_config(recipe)
    for bad, message in [("train.lrr=1", "unknown key 'train.lrr'; allowed: "), ("trian.lr=1", "unknown key 'trian'"),
                         ("model.dim=big", "model.dim must be int, got 'big'"), ("lr", "expected KEY=VALUE"),
                         ("codes.vocab=8", "'codes' is read from the tokenizer")]:
        with pytest.raises(IgpgError, match=re.escape(message)):
            load_generator_config(recipe, [bad])


@pytest.mark.parametrize("key, value", [("head_features", True), ("row_context", "none"), ("row_code_noise", 0.5),
                                        ("train_seeds", [0]), ("group_keys", 1), ("extra", {"x": 1})])
def test_a_removed_option_set_on_is_refused_in_one_line(key, value):
    from igpg.generator.model_dir import config_from_dict

    with pytest.raises(IgpgError, match=f"^generator config: option '{key}' was removed; an old config may hold it "
                                        r"only at its neutral value .+, got .+$"):
        flat = {k: v for section in TINY_GEN.values() for k, v in section.items()}  # as config.json was before 2026-12
        config_from_dict({**flat, **OLD_NEUTRAL, key: value})


def test_windowed_decoding_emits_every_code():
    model = tiny_model({"model.max_seq_len": 12})  # far shorter than the network: decoded in windows
    task = Task.from_classes("digits", [3, 5, 8])
    prof, instr = conditions(task)
    codes = sample_codes(model, [task], "mlp:64-16-3", prof, instr, SamplingConfig(temperature=0.0)).codes
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
    dec = sample_codes(model, [task], str(spec), prof, instr, SamplingConfig(temperature=1.0), seed=0)
    codes, side = dec.codes, dec.side
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
    gen.cfg = gen.cfg.override({"model.families": ("mlp",)})
    with pytest.raises(IgpgError, match="supports families mlp"):
        gen.generate("x", dataset="digits", classes=[3, 5], arch="cnn:1x8x8-4-2")
    gen.cfg = gen.cfg.override({"model.families": ("mlp", "cnn"), "model.max_chunks_per_row": 4})
    with pytest.raises(IgpgError, match="fan-in up to 31"):
        gen.generate("x", dataset="digits", classes=[3, 5], arch="mlp:64-16-2")


def test_extending_steps_resumes_other_changes_refused(tiny_zoo, tiny_pipeline, tmp_path):
    import shutil

    d, gcfg = tiny_pipeline
    shutil.copytree(d / "gen", tmp_path / "g")
    train_generator(tiny_zoo, d / "tok", gcfg.override({"train.steps": 10}), tmp_path / "g")
    steps = [json.loads(x)["step"] for x in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10]
    with pytest.raises(IgpgError, match="another config"):
        train_generator(tiny_zoo, d / "tok", gcfg.override({"train.steps": 12, "train.lr": 0.1}), tmp_path / "g")


# ---- base rows (generator/base_rows.py) ---------------------------------------------------------------------------

def fake_base(arch: str, seed: int = 0):
    """Random base row codes and side tokens shaped for `arch` (what `encode_base` returns)."""
    lay = row_layout(arch, 8, 2)
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, 64, (len(lay), lay.max_chunks, 2), generator=gen)
    rows[(lay.chunk_index < 0)] = -1
    return rows, torch.randint(-5, 5, (int(lay.layer_index.max()) + 1,), generator=gen), lay.row.clone()


@pytest.mark.parametrize("arch", ["mlp:64-16-3", "cnn:1x8x8-4-8-3"])
def test_kv_cache_parity_with_base_rows(arch):
    model = tiny_model({"model.row_keys": 64, "model.base_rows": True})
    with torch.no_grad():
        model.base_code_emb.normal_(0, 1.0)
    task = Task.from_classes("digits", [3, 5, 8])
    prof, instr = conditions(task)
    sc = SamplingConfig(temperature=1.0)
    bases = [fake_base(arch)]
    dec = sample_codes(model, [task], arch, prof, instr, sc, seed=1, return_logits=True, bases=bases)
    dec2 = sample_codes(model, [task], arch, prof, instr, dataclasses.replace(sc, use_cache=False), seed=1,
                        return_logits=True, bases=bases)
    codes, cached, codes2, plain = dec.codes, dec.logits, dec2.codes, dec2.logits
    full = decode_logits_full(model, [task], arch, prof, instr, codes, bases=bases)
    assert torch.equal(codes, codes2)
    for a, b, c in zip(cached, plain, full):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)


def test_every_row_sees_its_own_base_row():
    """Changing the base codes of one row moves that row's logits (and, through attention, others'); with no base
    at all the logits differ from those with one."""
    model = tiny_model({"model.base_rows": True})
    with torch.no_grad():
        model.base_code_emb.normal_(0, 1.0)
    task = Task.from_classes("digits", [3, 5, 8])
    prof, instr = conditions(task)
    arch = "mlp:64-16-3"
    codes = torch.zeros(1, count_chunks(arch, 8), 2, dtype=torch.int64)
    a = fake_base(arch, 0)
    b = (a[0].clone(), a[1], a[2])
    b[0][17] = (b[0][17] + 1).where(b[0][17] >= 0, b[0][17]) % 64  # change the base of the second output row
    with torch.no_grad():
        la, lb, ln = (decode_logits_full(model, [task], arch, prof, instr, codes, bases=[x]) for x in (a, b, None))
    assert float((la[17] - lb[17]).abs().max()) > 1e-3
    assert float((la[0] - ln[0]).abs().max()) > 1e-3


def test_base_state_is_the_generic_rows_of_the_labels():
    from igpg.generator.base_rows import GenericBank, base_state

    spec = ArchSpec.parse("mlp:64-16-10")
    torch.manual_seed(0)
    generic = spec.build().state_dict()
    base = base_state(generic, [3, [1, 2, 7]])
    assert torch.equal(base["hidden.0.weight"], generic["hidden.0.weight"])
    torch.testing.assert_close(base["head.weight"][1], generic["head.weight"][[1, 2, 7]].mean(0))
    torch.testing.assert_close(base["head.bias"][1], generic["head.bias"][[1, 2, 7]].mean() + torch.tensor(3.0).log())
    bank = GenericBank({"mlp:64-16-10@digits": generic})
    assert bank.base("mlp:64-16-2", "digits", [3, 5]) is not None
    # other hidden layers: the generic network carried over (transform.py), here widened exactly
    wide = bank.base("mlp:64-24-2", "digits", [3, 5])
    x = torch.rand(5, 64)
    exact = ArchSpec.parse("mlp:64-16-2").load(bank.base("mlp:64-16-2", "digits", [3, 5]))
    torch.testing.assert_close(ArchSpec.parse("mlp:64-24-2").load(wide)(x), exact(x))
    key, plan = bank.source("mlp:64-24-2", "digits")
    assert key == "mlp:64-16-10@digits" and plan.exact and plan.steps == ("widen layer 0 16->24",)
    assert bank.base("cnn:1x8x8-4-2", "digits", [3, 5]) is None  # no generic network of the family
    assert bank.base("mlp:64-16-2", "mnist1d", [3, 5]) is None  # other dataset (other input too)


def test_group_rows_fit_the_generic_networks_group_log_probability():
    """A group's output row is fitted on unlabelled inputs to the log-sum-exp of its classes' logits: on real
    digits it beats the mean row (bias + log of the group size), single classes keep their exact rows, and
    without inputs the mean row stays."""
    from igpg.generator.base_rows import base_state, group_inputs

    ds = load_dataset("digits")
    spec = ArchSpec.parse("mlp:64-32-10")
    torch.manual_seed(0)
    net = spec.build()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(300):  # a generic network of all ten classes
        i = torch.randint(len(ds.train.y), (64,))
        loss = torch.nn.functional.cross_entropy(net(ds.train.x[i]), ds.train.y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    generic = {k: v.detach().clone() for k, v in net.state_dict().items()}
    labels = [6, 3, [4, 5, 7, 9]]
    test = Task.from_classes("digits", labels).relabel(ds.test)
    small = ArchSpec.parse("mlp:64-32-3")
    mean_rows = base_state(generic, labels)
    fitted = base_state(generic, labels, spec, group_inputs("digits"))
    assert torch.equal(fitted["head.weight"][:2], generic["head.weight"][[6, 3]])
    assert torch.equal(fitted["head.bias"][:2], generic["head.bias"][[6, 3]])
    assert torch.equal(fitted["hidden.0.weight"], generic["hidden.0.weight"])
    acc = {name: accuracy(small.load(st), test.x, test.y) for name, st in (("mean", mean_rows), ("fit", fitted))}
    assert acc["fit"] > acc["mean"] + 0.05, acc
    with torch.no_grad():  # what the fitted row approximates: the generic network's maximum over the group
        z = net(test.x)
        group_max = torch.stack([z[:, 6], z[:, 3], z[:, [4, 5, 7, 9]].max(1).values], 1)
    assert acc["fit"] >= float((group_max.argmax(1) == test.y).float().mean()) - 0.05, acc


def test_base_bank_holds_training_architectures_only(tiny_zoo, tmp_path):
    """Held-out architectures stay held out: their generic networks never become bases; the bank round-trips."""
    from igpg.generator.base_rows import GenericBank
    from igpg.zoo import Catalogue

    bank = GenericBank.from_zoo(tiny_zoo)
    zoo = Catalogue(tiny_zoo)
    generic = {f"{r['arch']}@{r['dataset']}": r["arch_split"] for r in zoo.rows("n.role='generic'")}
    zoo.close()
    assert "test" in generic.values()  # the tiny zoo has a held-out architecture with a generic network
    assert set(bank.states) == {k for k, split in generic.items() if split == "train"}
    bank.save(tmp_path / "generic")
    back = GenericBank.load(tmp_path / "generic")
    assert set(back.states) == set(bank.states)
    for k in bank.states:
        for name, t in bank.states[k].items():
            assert torch.equal(t, back.states[k][name])


def test_base_rows_generator_trains_ships_its_bases_and_generates(tiny_zoo, tiny_pipeline, tmp_path):
    d, gcfg = tiny_pipeline
    cfg = gcfg.override({"model.row_keys": 64, "model.base_rows": True, "train.steps": 4})
    train_generator(tiny_zoo, d / "tok", cfg, tmp_path / "g")
    gen = ParameterGenerator.from_pretrained(tmp_path / "g", tokenizer=d / "tok")
    assert len(gen.bank) == 1
    task = Task.from_classes("digits", [3, 5, 8])
    assert gen.base_of(task, "mlp:64-16-3") is not None and gen.base_of(task, "mlp:64-24-3") is not None
    assert gen.base_of(task, "cnn:1x8x8-4-3") is None  # no generic network of the family to carry over
    for arch in ("mlp:64-16-3", "mlp:64-24-3", "cnn:1x8x8-4-3"):  # its own base, one carried over, none
        net = gen.generate("Classify 3, 5 and 8", dataset="digits", classes=[3, 5, 8], arch=arch)
        assert net(torch.randn(2, 64)).shape == (2, 3)
        assert net.igpg_base == (arch != "cnn:1x8x8-4-3")


def test_the_base_competes_with_the_decoded_networks_on_the_support_samples(tiny_zoo, tiny_pipeline, tmp_path):
    """A base_rows generator returns its base (float weights) when the barely trained decoder does no better on the
    support samples, and says so; without the base candidate it returns the decoded network; either way the
    returned network's state_dict is exactly its architecture's."""
    d, gcfg = tiny_pipeline
    train_generator(tiny_zoo, d / "tok", gcfg.override({"model.base_rows": True, "train.steps": 2}), tmp_path / "g")
    gen = ParameterGenerator.from_pretrained(tmp_path / "g", tokenizer=d / "tok")
    ask = dict(instruction="Classify 3, 5 and 8", dataset="digits", classes=[3, 5, 8], arch="mlp:64-24-3", seed=1)
    net = gen.generate(**ask)
    decoded = gen.generate(**ask, base_candidate=False)
    assert net.igpg_support_acc >= decoded.igpg_support_acc
    assert decoded.igpg_metadata["igpg.source"] == "generated"
    assert net.igpg_metadata["igpg.source"] == "base:mlp:64-16-10 carried over (widen layer 0 16->24)"
    base = gen.bank.base("mlp:64-24-3", "digits", [3, 5, 8])
    assert all(torch.equal(v, base[k]) for k, v in net.state_dict().items())  # an exact widening: no calibration
    assert list(net.state_dict()) == list(ArchSpec.parse("mlp:64-24-3").tensor_shapes())
    assert torch.equal(net.igpg_decoded(torch.ones(1, 64)), decoded(torch.ones(1, 64)))


def test_info_lists_what_a_generator_trained_on_and_generate_warns_before_decoding(tiny_zoo, tiny_pipeline, tmp_path,
                                                                                    cli):
    d, gcfg = tiny_pipeline
    cfg = gcfg.override({"model.base_rows": True, "train.steps": 2})
    train_generator(tiny_zoo, d / "tok", cfg, tmp_path / "g")  # copies the tokenizer into g/tokenizer
    res = cli("info", "--model", tmp_path / "g")
    assert res.code == 0 and "digits mlp: widths 16, depths 1, activation relu; 1 architectures (mlp:64-16)" in res.out
    assert "your own samples with generate --support FILE" in " ".join(res.out.split())
    ask = lambda arch: cli("generate", "Classify 3, 5 and 8", "--dataset", "digits", "--classes", "3,5,8",  # noqa: E731
                           "--arch", arch, "--model", tmp_path / "g", "--samples", "1", "--out", tmp_path / "n.safetensors",
                           "--overwrite")
    assert "warning" not in ask("mlp:64-16-3").err  # a trained architecture
    res = ask("mlp:64-24-3")
    assert res.code == 0 and "warning: mlp:64-24-3 on digits is not an architecture this generator trained on (wider " \
        "than any it trained on); it starts from mlp:64-16-10 carried over (widen layer 0 16->24: exact)" in res.err
    res = ask("mlp:64-8-8-3")
    assert "(deeper than any it trained on)" in res.err and "lossy, calibrated on the support samples" in res.err
    res = ask("cnn:1x8x8-4-3")
    assert "a family it never trained on this dataset" in res.err and "expect near-chance accuracy" in res.err
    res = ask("mlp:64-8-4")  # bad input: refused before any note
    assert res.code == 2 and "warning" not in res.err


def test_probe_targets_train_on_the_probe_twins(tiny_zoo, tiny_pipeline, tmp_path):
    import shutil

    import yaml

    from conftest import TINY
    from igpg.generator.train import load_examples, select_probes
    from igpg.tokenizer.codes import extract_codes
    from igpg.tokenizer.tokenizer import WeightTokenizer
    from igpg.zoo import Catalogue, build_zoo, parse_zoo_config

    rows = [{"net_id": n, "role": role, "task_id": t, "arch": "a", "seed": 0} for n, role, t in
            (("a", "task", "t1"), ("b", "task", "t2"), ("c", "generic", "t1"))]
    probes = [{"net_id": "p", "role": "probe", "task_id": "t2", "arch": "a", "seed": 0},
              {"net_id": "q", "role": "probe", "task_id": "t1", "arch": "a", "seed": 1}]  # another seed: not a twin
    assert [r["net_id"] for r in select_probes(rows, probes, "z")] == ["a", "p", "c"]
    d, _ = tiny_pipeline
    gcfg = ParameterGenerator.from_pretrained(d / "gen").cfg.override({"train.probe_targets": True})
    with pytest.raises(IgpgError, match="has no probe networks of training tasks; build it with `probes: grouped`"):
        load_examples(tiny_zoo, d / "tok" / "codes", gcfg)
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    build_zoo(parse_zoo_config({**yaml.safe_load(TINY.read_text()), "probes": "grouped"}), zoo)
    extract_codes(WeightTokenizer.load(d / "tok"), Catalogue(zoo), tmp_path / "codes")
    plain = load_examples(zoo, tmp_path / "codes", gcfg.override({"train.probe_targets": False}))
    probed = load_examples(zoo, tmp_path / "codes", gcfg)
    cat = Catalogue(zoo)
    role = {r["net_id"]: r["role"] for r in cat.rows()}
    assert [role[e.net_id] for e in plain].count("probe") == 0  # without the option, probes are not trained on
    assert len(plain) == len(probed) and [role[e.net_id] for e in probed].count("probe") == \
        len(cat.rows("n.role='probe' AND n.seed_split='train' AND t.split='train' AND a.split='train'")) > 0
    for a, b in zip(plain, probed):
        assert a.arch == b.arch and a.task == b.task
        assert (a.net_id == b.net_id) == (a.task.kind != "grouped")


def test_head_loss_weight_keeps_every_output_chunk_and_weights_it(tiny_zoo, tiny_pipeline):
    import random

    from igpg.generator.data import ExampleSampler
    from igpg.generator.model import WeightGenerator
    from igpg.generator.train import load_examples

    d, _ = tiny_pipeline
    cfg = ParameterGenerator.from_pretrained(d / "gen").cfg
    examples = load_examples(tiny_zoo, d / "tok" / "codes", cfg)
    batch = ExampleSampler(examples, cfg).batch(random.Random(0), 4)
    heads = int((batch["rows"]["is_head"] & (batch["codes"][..., 0] >= 0).any(-1)).sum())  # output rows present
    head_chunks = int(((batch["codes"][..., 0] >= 0) & batch["rows"]["is_head"][..., None]).sum())
    assert 0 < heads <= head_chunks
    torch.manual_seed(0)
    plain = WeightGenerator(cfg).eval()

    def model(changes):
        m = WeightGenerator(cfg.override(changes))
        m.load_state_dict(plain.state_dict())
        return m.eval()

    with torch.no_grad():
        base = plain(batch)["code_loss"]
        # equal weights: the same mean over every chunk; a huge weight: the mean over the output rows' chunks alone
        torch.testing.assert_close(model({"train.head_loss_weight": 1.0 + 1e-6})(batch)["code_loss"], base)
        head_only = model({"train.head_loss_weight": 1e9})(batch)["code_loss"]
        assert not torch.isclose(head_only, base)
        # no room for hidden chunks: the heads still in
        train = model({"train.head_loss_weight": 4.0, "train.loss_chunks": 1}).train()
        assert train(batch)["codes"] == head_chunks * cfg.codes.codes_per_chunk
    with pytest.raises(IgpgError, match="head_loss_weight must be more than 0"):
        cfg.override({"train.head_loss_weight": 0.0})


def test_row_bags_sum_only_the_chunks_that_exist():
    """The embedding-bag row summary equals the dense formula (mean over present chunks of summed level embeddings
    plus the chunk position), whatever the padding; a row with no chunk gets the projection of zero."""
    model = tiny_model({"model.base_rows": True})
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 64, (3, 5, 7, 2), generator=gen)
    lens = torch.tensor([[7, 1, 3, 0, 2], [5, 5, 5, 5, 5], [1, 0, 0, 7, 6]])
    codes[torch.arange(7)[None, None] >= lens[..., None]] = -1
    for table, proj, out in ((model.code_emb, model.bag_proj, model.bag(codes)),
                             (model.base_code_emb, model.base_bag_proj,
                              model._bag(model.base_code_emb, codes, model.base_bag_proj))):
        q = torch.arange(2)
        vec = table[q, codes.clamp(min=0)] * (codes >= 0)[..., None]  # (B, R, J, Q, E)
        present = (codes[..., 0] >= 0).float()
        per_chunk = (vec.sum(-2) + model.chunk_emb(torch.arange(7))) * present[..., None]
        dense = proj(per_chunk.sum(-2) / present.sum(-1, keepdim=True).clamp(min=1))
        torch.testing.assert_close(out, dense, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[0, 3], proj.bias)  # an empty row


def test_describe_is_json_of_both_configs():
    """describe() reports the generator's and its tokenizer's configs as plain JSON (both are pydantic models)."""
    import json

    from igpg.generator.api import ParameterGenerator

    d = json.loads(json.dumps(ParameterGenerator.from_pretrained(device="cpu").describe()))
    assert d["config"]["model"]["base_rows"] is True and d["config"]["codes"]["chunk_size"] == d["tokenizer"]["model"]["chunk_size"]
