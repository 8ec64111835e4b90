"""Row-aligned chunking: bitwise round trip, every chunk inside one neuron, layout from the architecture alone."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igpg.arch import ACTIVATIONS, KERNELS, ArchSpec
from igpg.errors import IgpgError
from igpg.tokenizer import (
    NORMALISATIONS,
    NUM_POSITION_FEATURES,
    chunk_layout,
    chunk_network,
    count_chunks,
    layer_scales,
    unchunk,
)


@st.composite
def small_specs(draw) -> ArchSpec:
    """Tiny specs of all three kinds: mlp, 1D cnn, 2D cnn."""
    kind = draw(st.sampled_from(["mlp", "cnn1d", "cnn2d"]))
    size = st.integers(1, 7)
    n_in = {"mlp": 1, "cnn1d": 2, "cnn2d": 3}[kind]
    depth = draw(st.integers(1, 3))
    return ArchSpec(
        family="mlp" if kind == "mlp" else "cnn",
        input_shape=tuple(draw(st.lists(size, min_size=n_in, max_size=n_in))),
        hidden=tuple(draw(st.lists(size, min_size=depth, max_size=depth))),
        num_outputs=draw(st.integers(2, 6)),
        activation=draw(st.sampled_from(sorted(ACTIVATIONS))),
        kernel=draw(st.sampled_from(KERNELS)) if kind != "mlp" else 3,
    )


def random_state(spec: ArchSpec, seed: int, spread: float = 3.0) -> dict[str, torch.Tensor]:
    """PyTorch default init (seeded), each layer scaled by a random factor in 10**[-spread, spread]."""
    torch.manual_seed(seed)
    state = spec.build().state_dict()
    g = torch.Generator().manual_seed(seed)
    for layer in spec.schema():
        factor = 10 ** ((torch.rand((), generator=g).item() * 2 - 1) * spread)
        for t in layer.tensors:
            state[t.name] = state[t.name] * factor
    return state


def assert_round_trip(state, spec, c, normalisation):
    ch = chunk_network(state, spec, c, normalisation)
    out = unchunk(ch.values, spec, c, normalisation, ch.side)
    assert list(out) == list(spec.tensor_shapes())
    for name, t in state.items():
        if normalisation == "none":
            assert torch.equal(out[name], t), name
        else:  # the scale's float32 division / multiplication, not the chunking, rounds
            torch.testing.assert_close(out[name], t, rtol=1e-6, atol=0)
    return ch, out


@settings(max_examples=50, deadline=None)
@given(small_specs(), st.integers(1, 40), st.integers(0, 2**16))
def test_round_trip_and_padding(spec, c, seed):
    state = random_state(spec, seed)
    layout = chunk_layout(spec, c)
    assert len(layout) == count_chunks(spec, c)
    mask = layout.mask()
    plain = None
    for normalisation in NORMALISATIONS:
        ch, out = assert_round_trip(state, spec, c, normalisation)
        spec.build().load_state_dict(out, strict=True)
        assert ch.layout is layout  # the layout is the architecture's, not the weights'
        assert ch.values.shape == (len(layout), c) and ch.values.dtype == torch.float32
        assert torch.equal(ch.values[~mask], torch.zeros((~mask).sum().item()))
        if normalisation == "none":
            plain = ch.values
        else:  # chunking commutes with normalisation, bit for bit: normalised values = plain values / scale
            scale = layer_scales(spec, normalisation, ch.side)[layout.layer_index]
            assert torch.equal(ch.values, plain / scale[:, None])
    assert chunk_network(random_state(spec, seed + 1), spec, c).layout is layout


@settings(max_examples=50, deadline=None)
@given(small_specs(), st.integers(1, 40))
def test_every_chunk_belongs_to_one_row(spec, c):
    """Weights encode (layer, row, col); each chunk's values decode to its own layout entry."""
    state = {}
    for layer in spec.schema():
        code = (layer.index * 1_000_000 + torch.arange(layer.fan_out)[:, None] * 1000
                + torch.arange(layer.fan_in + 1)[None, :] + 1).float()  # exact in float32 (< 2**24)
        weight, bias = layer.tensors
        state[weight.name] = code[:, :-1].reshape(weight.shape)
        state[bias.name] = code[:, -1]
    ch = chunk_network(state, spec, c, "none")
    layout = ch.layout
    v = ch.values.long() - 1  # (N, C); padding decodes to -1
    mask = layout.mask()
    assert (v[~mask] == -1).all()
    col = layout.chunk_in_row[:, None] * c + torch.arange(c)
    expected = layout.layer_index[:, None] * 1_000_000 + layout.row[:, None] * 1000 + col
    assert torch.equal(v[mask], expected[mask])
    # the layout's other fields agree with the schema
    for layer in spec.schema():
        sel = layout.layer_index == layer.index
        p = math.ceil((layer.fan_in + 1) / c)
        assert sel.sum() == layer.fan_out * p
        assert torch.equal(layout.chunk_in_layer[sel], torch.arange(layer.fan_out * p))
        assert (layout.chunks_per_row[sel] == p).all() and (layout.fan_in[sel] == layer.fan_in).all()
        assert (layout.is_head[sel] == layer.is_head).all()
        assert torch.equal(layout.n_valid[sel].reshape(layer.fan_out, p).sum(1),
                           torch.full((layer.fan_out,), layer.fan_in + 1))
    feats = layout.position_features()
    assert feats.shape == (len(layout), NUM_POSITION_FEATURES) and torch.isfinite(feats).all()
    assert torch.equal(feats[:, :3].sum(1), torch.ones(len(layout)))


# The default zoo's templates (configs/zoo/default.yaml) resolved for each dataset's input.
DIGITS, MNIST1D_MLP, MNIST1D_CNN, MNIST = "64", "40", "1x40", "1x28x28"
ZOO_ARCHS = [f"mlp:{d}-{h}" for d in (DIGITS, MNIST1D_MLP)
             for h in ("32", "48", "64", "32-32", "16-16-16", "16-16-16-16")]
ZOO_ARCHS += [f"cnn:{d}-8-16" for d in ("1x8x8", MNIST1D_CNN)]
ZOO_ARCHS += [f"cnn:{d}-8-16-32" for d in ("1x8x8", MNIST1D_CNN, MNIST)]


@pytest.mark.parametrize("base", ZOO_ARCHS)
def test_zoo_architectures_round_trip(base):
    for outputs in range(2, 11):
        spec = ArchSpec.parse(f"{base}-{outputs}")
        state = random_state(spec, outputs, spread=1.0)
        for c in (8, 61):
            for normalisation in NORMALISATIONS:
                assert_round_trip(state, spec, c, normalisation)


def test_layer_std_side_tokens_and_fanin_scale():
    spec = ArchSpec.parse("mlp:3-4-2")
    state = {name: torch.zeros(shape) for name, shape in spec.tensor_shapes().items()}
    state["hidden.0.weight"][:, 0] = torch.tensor([2.0, -2.0, 2.0, -2.0])  # 16 values, std exactly 1
    state["head.weight"] = torch.tensor([[1.0] * 4, [-1.0] * 4]) * 4  # head: 10 values, 8 of them +-4
    ch = chunk_network(state, spec, 3, "layer_std")
    std_head = torch.cat([state["head.weight"].flatten(), state["head.bias"]]).std(correction=0).item()
    assert ch.side.tolist() == [0, round(math.log2(std_head) * 8)]
    zeros = {name: torch.zeros(shape) for name, shape in spec.tensor_shapes().items()}
    assert chunk_network(zeros, spec, 3, "layer_std").side.tolist() == [-128, -128]  # std 0: the lowest step
    assert chunk_network(state, spec, 3, "fanin").side.numel() == 0
    assert torch.allclose(layer_scales(spec, "fanin"), torch.tensor([3 ** -0.5, 4 ** -0.5]))


def test_dtypes_non_contiguous_and_gradients():
    spec = ArchSpec.parse("cnn:2x5x5-3-2:k=3")
    state = random_state(spec, 0)
    half = {k: v.half() for k, v in state.items()}
    out = unchunk(chunk_network(half, spec, 5, "none").values, spec, 5, "none")
    assert all(torch.equal(out[k], half[k].float()) for k in state)  # float16 -> float32 is exact
    odd = dict(state, **{"head.weight": state["head.weight"].t().contiguous().t()})  # non-contiguous input
    assert not odd["head.weight"].is_contiguous()
    assert_round_trip(odd, spec, 5, "none")
    values = chunk_network(state, spec, 5).values.clone().requires_grad_(True)
    out = unchunk(values, spec, 5)
    assert all(t.is_contiguous() and t.data_ptr() != values.data_ptr() for t in out.values())
    sum(t.sum() for t in out.values()).backward()
    assert torch.equal(values.grad != 0, chunk_layout(spec, 5).mask())  # padding gets no gradient


def _bad(spec, state):
    c = 4
    n = count_chunks(spec, c)
    return {
        "missing key": (lambda: chunk_network({k: v for k, v in state.items() if k != "head.bias"}, spec, c),
                        "missing head.bias"),
        "extra key": (lambda: chunk_network({**state, "head.scale": torch.ones(3)}, spec, c),
                      "unexpected head.scale"),
        "wrong shape": (lambda: chunk_network({**state, "hidden.0.weight": torch.zeros(5, 7)}, spec, c),
                        "hidden.0.weight"),
        "nan": (lambda: chunk_network({**state, "head.bias": torch.tensor([0.0, float("nan"), 1.0])}, spec, c),
                "head.bias contains NaN"),
        "inf": (lambda: chunk_network({**state, "hidden.0.bias": state["hidden.0.bias"] + float("inf")}, spec, c),
                "hidden.0.bias contains NaN or infinite"),
        "int dtype": (lambda: chunk_network({**state, "head.bias": torch.zeros(3, dtype=torch.int64)}, spec, c),
                      "float tensor"),
        "chunk_size 0": (lambda: chunk_network(state, spec, 0), "1..4096"),
        "chunk_size 4097": (lambda: count_chunks(spec, 4097), "1..4096"),
        "unknown normalisation": (lambda: chunk_network(state, spec, c, "l2"), "none | fanin | layer_std"),
        "values wrong shape": (lambda: unchunk(torch.zeros(n + 1, c), spec, c), f"({n}, {c})"),
        "values wrong width": (lambda: unchunk(torch.zeros(n, c + 1), spec, c), f"({n}, {c})"),
        "layer_std without side": (lambda: unchunk(torch.zeros(n, c), spec, c, "layer_std"), "side"),
        "side wrong length": (lambda: unchunk(torch.zeros(n, c), spec, c, "layer_std", torch.zeros(5).long()),
                              "(2,)"),
        "side out of range": (lambda: unchunk(torch.zeros(n, c), spec, c, "layer_std", torch.tensor([0, 300])),
                              "-128..127"),
        "side with fanin": (lambda: unchunk(torch.zeros(n, c), spec, c, "fanin", torch.tensor([0, 1])),
                            "layer_std only"),
    }


BAD_CASES = list(_bad(ArchSpec.parse("mlp:6-5-3"), random_state(ArchSpec.parse("mlp:6-5-3"), 0)))


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_raises_one_line(case):
    spec = ArchSpec.parse("mlp:6-5-3")
    call, fragment = _bad(spec, random_state(spec, 0))[case]
    with pytest.raises(IgpgError) as info:
        call()
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_million_parameter_network():
    spec = ArchSpec.parse("mlp:1000-1000-10")
    assert spec.n_params > 1_000_000
    state = random_state(spec, 0)
    assert_round_trip(state, spec, 64, "none")
    assert_round_trip(state, spec, 64, "layer_std")
