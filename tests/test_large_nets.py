"""Large networks: any state dict (torchvision's ResNet-18, 11.7M parameters) chunked in bounded blocks and back
bitwise; through a tokenizer with a finite reconstruction error; windowed tokenizer passes equal one pass; the
sampler keeps only its window of rows."""


import pytest
import torch
import torchvision

import igpg.tokenizer.tokenizer as tokenizer_module
from igpg.data import Task
from igpg.errors import IgpgError
from igpg.generator import SamplingConfig
from igpg.generator.sample import _Stepper, sample_codes
from igpg.tokenizer.any_state_chunking import (
    chunk_state,
    iter_blocks,
    plan_blocks,
    reconstruction_error,
    side_tokens,
    state_schema,
    unchunk_state,
)
from igpg.tokenizer.tokenizer import WeightTokenizer, load_tokenizer_config

from conftest import TINY_TOK


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # BatchNorm statistics and affine weights that are not the constant init
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(123)
    return net.state_dict()


def test_resnet18_state_dict_round_trips_bitwise_through_streamed_blocks(resnet18):
    schema = state_schema(resnet18)
    assert schema.num_params == sum(v.numel() for v in resnet18.values() if v.is_floating_point())
    assert set(schema.passthrough) == {k for k in resnet18 if k.endswith("num_batches_tracked")}
    # streamed: blocks of at most 1000 chunks (or one row, when a row alone is longer), whole rows each
    max_chunks = 1000
    blocks = list(iter_blocks(resnet18, schema, 8, "none", max_chunks=max_chunks))
    for b in blocks:
        e = schema.entries[b.entry]
        assert len(b.values) <= max(max_chunks, e.chunks_per_row(8)) and len(b.values) == len(b.layout)
        assert (b.values[~b.layout.mask()] == 0).all()
    assert sum(len(b.values) for b in blocks) == schema.num_chunks(8)
    passthrough = {k: resnet18[k] for k in schema.passthrough}
    back = unchunk_state((b.values for b in blocks), schema, 8, "none", None, passthrough, max_chunks=max_chunks)
    assert list(back) == list(resnet18)  # names, in order
    for k, v in resnet18.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v), k
    net = torchvision.models.resnet18(weights=None)
    net.load_state_dict(back, strict=True)
    # all at once gives the same chunks as the blocks
    _, values, _, _ = chunk_state(resnet18, 8, "none")
    assert torch.equal(values, torch.cat([b.values for b in blocks]))


@pytest.mark.parametrize("normalisation", ["fanin", "layer_std"])
def test_normalised_round_trip_within_float32_rounding(resnet18, normalisation):
    schema, values, side, passthrough = chunk_state(resnet18, 8, normalisation)
    back = unchunk_state(values, schema, 8, normalisation, side if side.numel() else None, passthrough)
    assert reconstruction_error(resnet18, back)["relative_l2"] < 1e-6
    if normalisation == "layer_std":  # values O(1) whatever the tensor's scale, constant tensors included
        assert values.abs().max() < 64 and (side == side_tokens(resnet18, schema)).all()


def test_half_precision_tensors_round_trip_with_their_dtype():
    state = {"w": torch.randn(5, 3, 2).half(), "b": torch.randn(5).bfloat16(), "s": torch.tensor(2.5),
             "steps": torch.tensor(7), "d": torch.randn(3, dtype=torch.float64)}
    schema, values, _, passthrough = chunk_state(state, 4, "none")
    assert schema.passthrough == ("steps", "d")
    back = unchunk_state(values, schema, 4, "none", None, passthrough)
    assert all(back[k].dtype == v.dtype and torch.equal(back[k], v) for k, v in state.items())
    with pytest.raises(IgpgError, match="NaN or infinite"):
        state_schema({"w": torch.tensor([1.0, float("nan")])})


def test_resnet18_through_an_untrained_tokenizer(resnet18):
    torch.manual_seed(0)
    cfg = load_tokenizer_config(TINY_TOK).override({"model.normalisation": "layer_std"})
    tok = WeightTokenizer(cfg)
    codes = tok.encode_state(resnet18)
    schema = state_schema(resnet18)
    assert codes.indices.shape == (schema.num_chunks(8), cfg.model.codes_per_chunk)
    back = tok.decode_state(codes)
    assert list(back) == list(resnet18)
    torchvision.models.resnet18(weights=None).load_state_dict(back, strict=True)
    err = reconstruction_error(resnet18, back)
    print(f"untrained tiny tokenizer on resnet18: {err}")
    assert 0 < err["relative_l2"] < float("inf") and err["max_abs"] < float("inf")
    assert all(torch.equal(back[k], resnet18[k]) for k in schema.passthrough)


def test_windowed_tokenizer_passes_equal_one_pass(monkeypatch):
    torch.manual_seed(0)
    tok = WeightTokenizer(load_tokenizer_config(TINY_TOK).override({"model.normalisation": "layer_std"}))
    arch = "mlp:64-96-96-10"  # 96 * 9 + 96 * 13 + 10 * 13 = 2242 chunks
    torch.manual_seed(1)
    from igpg.arch import ArchSpec

    state = ArchSpec.parse(arch).build().state_dict()
    monkeypatch.setattr(tokenizer_module, "WINDOW", 10**9)
    one = tok.encode(state, arch)
    one_state = tok.decode(one)
    monkeypatch.setattr(tokenizer_module, "WINDOW", 300)  # 8 windows
    windowed = tok.encode(state, arch)
    assert torch.equal(one.indices, windowed.indices)
    assert all(torch.equal(one_state[k], v) for k, v in tok.decode(windowed).items())


def test_sampler_keeps_only_its_window_of_rows(monkeypatch):
    from test_generator import conditions, tiny_model

    model = tiny_model({"model.max_seq_len": 12})
    task = Task.from_classes("digits", [3, 5, 8])
    prof, instr = conditions(task)
    held = []
    step = _Stepper.step

    def spy(self, row_input):
        out = step(self, row_input)
        held.append(len(self.rows))
        return out

    monkeypatch.setattr(_Stepper, "step", spy)
    codes = sample_codes(model, [task], "mlp:64-32-3", prof, instr, SamplingConfig(temperature=0.0)).codes
    assert len(held) == 32 + 3 and max(held) <= 12
    assert codes.min() >= 0


def test_plan_blocks_cover_every_row_once(resnet18):
    schema = state_schema(resnet18)
    plan = plan_blocks(schema, 8, 777)
    for i, e in enumerate(schema.entries):
        spans = [(r0, r1) for j, r0, r1 in plan if j == i]
        assert spans[0][0] == 0 and spans[-1][1] == e.rows
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
