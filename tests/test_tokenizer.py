"""Weight tokenizer: VQ-VAE properties, training and resume, codes on disk, fidelity, bad input."""

import json
import shutil

import pytest
import torch

from conftest import ROOT
from igpg.arch import ArchSpec
from igpg.errors import IgpgError
from igpg.tokenizer import (
    TokenizerConfig,
    TokenizerModelConfig,
    WeightTokenizer,
    WeightVQVAE,
    chunk_layout,
    chunk_network,
)
from igpg.tokenizer.codes import extract_codes, load_codes
from igpg.tokenizer.tokenizer import load_tokenizer_config
from igpg.tokenizer.train import train_tokenizer, training_rows
from igpg.zoo import Catalogue

TINY_TOK = ROOT / "configs" / "tokenizer" / "tiny.yaml"


@pytest.mark.parametrize("quantizer", ["vq", "rvq", "fsq"])
def test_decode_from_indices_equals_forward_in_eval_mode(quantizer):
    torch.manual_seed(0)
    cfg = TokenizerConfig(model=TokenizerModelConfig(chunk_size=8, quantizer=quantizer, codebook_size=32,
                                                     num_quantizers=3, latent_dim=8, hidden=16, fsq_levels=(5, 5, 4),
                                                     num_position_features=12))
    model = WeightVQVAE(cfg)
    spec = ArchSpec.parse("mlp:64-16-3")
    ch = chunk_network(spec.build().state_dict(), spec, 8)
    pos = ch.layout.position_features()
    model.train()
    model(ch.values, pos, ch.layout.mask().float())  # one training pass: k-means init, EMA updates
    model.eval()
    with torch.no_grad():
        recon, idx, _ = model(ch.values, pos, ch.layout.mask().float())
        again = model.decode_indices(idx, pos)
    assert idx.shape == (len(ch.layout), cfg.model.codes_per_chunk)
    torch.testing.assert_close(again, recon, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tiny"
    return train_tokenizer(tiny_zoo, load_tokenizer_config(TINY_TOK), out), out


def test_training_writes_checkpoint_and_metrics(tiny_tokenizer):
    tok, out = tiny_tokenizer
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [10, 20, 30, 40]
    assert lines[-1]["recon"] < lines[0]["recon"]  # it learned something
    loaded = WeightTokenizer.load(out)
    for a, b in zip(loaded.model.state_dict().values(), tok.model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_continues_exactly(tiny_zoo, tiny_tokenizer, tmp_path):
    """Stop after 20 steps, resume to 40: the same weights as the uninterrupted run."""
    tok, _ = tiny_tokenizer
    cfg = load_tokenizer_config(TINY_TOK)
    out = tmp_path / "resumed"
    train_tokenizer(tiny_zoo, cfg, out, stop_after=20)
    assert json.loads((out / "training_state" / "state.json").read_text())["step"] == 20
    resumed = train_tokenizer(tiny_zoo, cfg, out)
    for (name, a), b in zip(resumed.model.state_dict().items(), tok.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [10, 20, 30, 40]


def test_resume_with_other_config_refused(tiny_zoo, tiny_tokenizer):
    _, out = tiny_tokenizer
    cfg = load_tokenizer_config(TINY_TOK).override({"train.lr": 0.5})
    with pytest.raises(IgpgError, match="another config"):
        train_tokenizer(tiny_zoo, cfg, out)


def test_trains_only_on_training_split(tiny_zoo):
    rows = training_rows(Catalogue(tiny_zoo))
    assert rows and all(r["task_split"] == r["arch_split"] == r["seed_split"] == "train" for r in rows)
    assert len(rows) < len(Catalogue(tiny_zoo).rows())


def test_encode_decode_shapes_and_codes_on_disk(tiny_zoo, tiny_tokenizer, tmp_path):
    tok, _ = tiny_tokenizer
    cat = Catalogue(tiny_zoo)
    n = extract_codes(tok, cat, tmp_path / "codes")
    codes = load_codes(tmp_path / "codes")
    assert n == len(codes) == len(cat.rows())
    for r in cat.rows():
        c = codes[r["net_id"]]
        assert c.indices.shape == (len(chunk_layout(r["arch"], 8)), 2)
        assert tok.codes_per_network(r["arch"]) == c.indices.numel()
        state = tok.decode(c)
        ArchSpec.parse(r["arch"]).build().load_state_dict(state, strict=True)


def test_bad_input(tiny_tokenizer, tmp_path):
    tok, out = tiny_tokenizer
    spec = ArchSpec.parse("mlp:64-16-3")
    state = spec.build().state_dict()
    bad = dict(state, **{"hidden.0.weight": torch.full((16, 64), float("nan"))})
    with pytest.raises(IgpgError, match="NaN"):
        tok.encode(bad, spec)
    with pytest.raises(IgpgError):
        tok.encode(state, "mlp:64-32-3")  # shapes don't match the schema
    cnn_only = WeightTokenizer(tok.cfg.override({"model.families": ("cnn",)}))
    with pytest.raises(IgpgError, match="supports architecture families cnn"):
        cnn_only.encode(state, spec)
    # incomplete or corrupt checkpoint directories
    for breakage in ("no_model", "bad_json", "truncated", "wrong_kind", "missing"):
        d = tmp_path / breakage
        if breakage != "missing":
            shutil.copytree(out, d)
        if breakage == "no_model":
            (d / "model.safetensors").unlink()
        elif breakage == "bad_json":
            (d / "config.json").write_text("{not json")
        elif breakage == "truncated":
            data = (d / "model.safetensors").read_bytes()
            (d / "model.safetensors").write_bytes(data[: len(data) // 2])
        elif breakage == "wrong_kind":
            meta = json.loads((d / "config.json").read_text())
            (d / "config.json").write_text(json.dumps({**meta, "kind": "something-else"}))
        with pytest.raises(IgpgError) as err:
            WeightTokenizer.load(d)
        assert "\n" not in str(err.value)


def test_cli_train_and_eval_tokenizer(tiny_zoo, tmp_path, cli):
    res = cli("train", "tokenizer", "--zoo", tiny_zoo, "--config", TINY_TOK, "--out", tmp_path / "tok")
    assert res.code == 0, res.err
    assert (tmp_path / "tok" / "codes" / "index.json").is_file()
    res = cli("eval", "tokenizer", "--zoo", tiny_zoo, "-t", tmp_path / "tok", "--results", tmp_path / "res")
    assert res.code == 0, res.err
    report = json.loads((tmp_path / "res" / "tokenizer.json").read_text())
    cats = report["tokenizers"][0]["results"]
    # held-out architectures are reported by kind (the tiny zoo holds out a wider MLP)
    assert set(cats) == {"held-out tasks", "held-out architectures: wider", "held-out seeds"}
    for r in cats.values():
        assert r["networks"] > 0 and 0 <= r["ratio_min"] <= r["ratio_mean"] and r["bits_per_param_mean"] > 0
    res = cli("eval", "tokenizer", "--zoo", tiny_zoo, "-t", tmp_path / "nowhere")
    assert res.code == 2 and "not found" in res.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  chunk_size: 8\n  quantiser: rvq\n")
    res = cli("train", "tokenizer", "--zoo", tiny_zoo, "--config", bad, "--out", tmp_path / "t2")
    assert res.code == 2 and "unknown key 'model.quantiser'" in res.err and not (tmp_path / "t2").exists()


def test_config_sections_and_flat_configs_of_before(tmp_path):
    """A tokenizer released before the sections (tokenizers/rvq5) has a flat config.json (every key at the top,
    `extra: {}` among them): each key is read into the section that owns it; `extra` only at its neutral value; an
    unknown key refused; new ones (the default generator's tokenizers/rvq6) are sectioned."""
    from igpg.checkpoint import read_config
    from igpg.tokenizer.tokenizer import KIND, config_from_dict

    released = ROOT / "tokenizers" / "rvq5"
    raw = read_config(released, KIND)
    assert "extra" in raw and "model" not in raw  # the file as released, flat
    cfg = config_from_dict(raw)
    assert (cfg.model.num_quantizers, cfg.model.normalisation, cfg.model.vocab_size, cfg.model.codes_per_chunk) == \
        (5, "layer_std", 1024, 5)
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr) == (1500, 4096, 1e-3)
    assert WeightTokenizer.load(released).cfg == cfg
    for name in ("default", "rvq5", "rvq6"):
        assert WeightTokenizer.load(ROOT / "tokenizers" / name).cfg.model.chunk_size == 8
    shipped = ROOT / "igpg" / "pretrained" / "default" / "tokenizer"
    assert set(read_config(shipped, KIND)) == {"model", "train"}
    assert WeightTokenizer.load(shipped).cfg == WeightTokenizer.load(ROOT / "tokenizers" / "rvq6").cfg
    assert WeightTokenizer.load(shipped).cfg.model.num_quantizers == 6
    # removed and unknown keys: one line each
    for bad, msg in [({**raw, "extra": {"a": 1}}, "option 'extra' was removed; an old config may hold it only at "
                      "its neutral value {}, got {'a': 1}"),
                     ({**raw, "extra": []}, "option 'extra' was removed"),
                     ({**raw, "bogus": 1}, "unknown key 'bogus'; allowed: batch_size, "),
                     ({"model": {"chunk_size": 8}, "lr": 0.1}, "unknown key 'lr'; allowed: model, train"),
                     ({"model": {"lr": 0.1}}, "unknown key 'model.lr'; allowed: chunk_size, "),
                     ({"model": {"extra": {}}}, "unknown key 'model.extra'")]:
        with pytest.raises(IgpgError) as err:
            config_from_dict(bad, "config.json")
        assert msg in str(err.value) and "\n" not in str(err.value), str(err.value)
        assert str(err.value).startswith("tokenizer config 'config.json': ")
    # a tokenizer saved now writes the sections, and reads back equal
    WeightTokenizer(cfg).save(tmp_path / "tok")
    saved = read_config(tmp_path / "tok", KIND)
    assert set(saved) == {"model", "train"} and saved["train"]["steps"] == 1500
    assert config_from_dict(saved) == cfg and not hasattr(cfg, "extra")


def test_recipes_are_sectioned_and_set_reaches_each_section(tiny_zoo, tmp_path, cli):
    import yaml

    for recipe in (ROOT / "configs" / "tokenizer").glob("*.yaml"):
        assert set(yaml.safe_load(recipe.read_text())) == {"model", "train"}, recipe
    cfg = load_tokenizer_config(TINY_TOK, ["train.lr=3e-3", "model.hidden=128", "train.steps=5"])
    assert (cfg.train.lr, cfg.model.hidden, cfg.train.steps, cfg.model.codebook_size) == (3e-3, 128, 5, 64)
    flat = tmp_path / "flat.yaml"  # a recipe written before the sections still loads, and takes dotted overrides
    flat.write_text("chunk_size: 8\ncodebook_size: 64\nnum_quantizers: 2\nlatent_dim: 8\nhidden: 32\nsteps: 40\n"
                    "batch_size: 256\nlr: 0.003\nlog_every: 10\ncheckpoint_every: 20\n")
    assert load_tokenizer_config(flat, ["train.steps=5"]).train.steps == 5
    res = cli("train", "tokenizer", "--zoo", tiny_zoo, "--config", TINY_TOK, "--out", tmp_path / "tok", "--no-codes",
              "--set", "train.steps=4", "--set", "train.log_every=2", "--set", "model.hidden=16")
    assert res.code == 0, res.err
    saved = json.loads((tmp_path / "tok" / "config.json").read_text())["config"]
    assert (saved["train"]["steps"], saved["model"]["hidden"], saved["train"]["lr"]) == (4, 16, 0.003)
    for bad in ("train.lrr=1", "lr=3e-3", "model.hidden.x=1"):
        res = cli("train", "tokenizer", "--zoo", tiny_zoo, "--config", TINY_TOK, "--out", tmp_path / "t3",
                  "--set", bad)
        assert res.code == 2 and len(res.err.strip().splitlines()) == 1 and not (tmp_path / "t3").exists(), res.err
