"""ArchSpec: canonical string round trip, schema == state_dict, malformed strings rejected, dataset fit."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igpg.arch import ACTIVATIONS, KERNELS, MAX_DEPTH, ArchSpec
from igpg.errors import IgpgError


@st.composite
def specs(draw, max_size: int = 65536, max_outputs: int = 1000, max_depth: int | None = None) -> ArchSpec:
    """Random valid specs of both families (mlp, 1D cnn, 2D cnn); small max_size keeps build() fast."""
    family = draw(st.sampled_from(["mlp", "cnn"]))
    size = st.integers(1, max_size)
    if family == "mlp":
        input_shape = (draw(size),)
    else:
        input_shape = tuple(draw(st.lists(size, min_size=2, max_size=3)))
    depth = draw(st.integers(1, max_depth or MAX_DEPTH[family]))
    return ArchSpec(
        family=family,
        input_shape=input_shape,
        hidden=tuple(draw(st.lists(size, min_size=depth, max_size=depth))),
        num_outputs=draw(st.integers(2, max_outputs)),
        activation=draw(st.sampled_from(sorted(ACTIVATIONS))),
        kernel=draw(st.sampled_from(KERNELS)) if family == "cnn" else 3,
    )


small_specs = specs(max_size=9, max_outputs=6, max_depth=3)


@given(specs())
def test_string_round_trip(spec):
    text = str(spec)
    assert ArchSpec.parse(text) == spec
    assert str(ArchSpec.parse(text)) == text


@given(specs(), st.sampled_from(["", " ", "  \t"]), st.booleans())
def test_lenient_input_parses_to_canonical(spec, pad, upper):
    text = str(spec)
    family, _, rest = text.partition(":")
    loose = pad + (family.upper() if upper else family) + " : " + rest.replace("-", " - ").replace(":", " : ")
    loose = loose.replace("act", "ACT" if upper else "act") + pad
    assert str(ArchSpec.parse(loose)) == text


@pytest.mark.parametrize(
    "loose, canonical",
    [
        ("MLP:64-32-3", "mlp:64-32-3"),
        ("  mlp:64-32-3:act=relu ", "mlp:64-32-3"),
        ("cnn:1X8X8-8-16-10:K=3", "cnn:1x8x8-8-16-10"),
        ("cnn:1x28x28-8-16-10:k=5:act=GELU", "cnn:1x28x28-8-16-10:act=gelu:k=5"),
        ("Cnn : 1x40 - 8 - 10 : Act = silu", "cnn:1x40-8-10:act=silu"),
    ],
)
def test_examples_canonical(loose, canonical):
    assert str(ArchSpec.parse(loose)) == canonical


def test_examples_fields():
    spec = ArchSpec.parse("cnn:1x28x28-8-16-10:act=gelu:k=5")
    assert spec == ArchSpec("cnn", (1, 28, 28), (8, 16), 10, "gelu", 5)
    assert (spec.input_dim, spec.depth, spec.conv_dims) == (784, 2, 2)
    assert ArchSpec.parse("cnn:1x40-8-16-10").conv_dims == 1
    mlp = ArchSpec.parse("mlp:64-32-3")
    assert (mlp.input_dim, mlp.depth, mlp.conv_dims, mlp.n_params) == (64, 1, None, 64 * 32 + 32 + 32 * 3 + 3)
    assert ArchSpec("mlp", [64], [32], 3) == mlp  # lists are stored as tuples
    assert ArchSpec.parse(mlp) is mlp


@settings(max_examples=40, deadline=None)
@given(small_specs)
def test_schema_matches_built_network(spec):
    torch.manual_seed(0)
    net = spec.build()
    state = net.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == spec.tensor_shapes()
    assert list(state) == list(spec.tensor_shapes())
    schema = spec.schema()
    assert [t.name for layer in schema for t in layer.tensors] == list(state)
    assert [layer.index for layer in schema] == list(range(spec.depth + 1))
    assert schema[-1].is_head and schema[-1].name == "head" and schema[-1].kind == "linear"
    for layer in schema:
        weight = layer.tensors[0]
        assert weight.role == "weight" and layer.tensors[1].role == "bias"
        assert weight.shape[0] == layer.fan_out
        assert layer.fan_in * layer.fan_out == torch.Size(weight.shape).numel()
    assert spec.n_params == sum(p.numel() for p in net.parameters())
    assert net.spec is spec and "spec" not in state
    out = net(torch.randn(2, spec.input_dim))
    assert out.shape == (2, spec.num_outputs) and out.dtype == torch.float32


def test_conv_layers_are_what_the_schema_says():
    net = ArchSpec.parse("cnn:3x9x9-4-6-5:k=5").build()
    assert [type(m).__name__ for m in net.hidden] == ["Conv2d", "Conv2d"]
    assert net.hidden[0].stride == (2, 2) and net.hidden[0].padding == (2, 2)
    layer0 = ArchSpec.parse("cnn:3x9x9-4-6-5:k=5").schema()[0]
    assert (layer0.kind, layer0.fan_in, layer0.fan_out, layer0.kernel) == ("conv2d", 3 * 25, 4, 5)
    assert type(ArchSpec.parse("cnn:2x40-4-5").build().hidden[0]).__name__ == "Conv1d"


def test_load_is_strict_and_in_eval_mode():
    spec = ArchSpec.parse("cnn:1x8x8-4-8-3")
    state = spec.build().state_dict()
    net = spec.load(state)
    assert not net.training and all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    with pytest.raises(RuntimeError, match="Missing key"):
        spec.load({k: v for k, v in state.items() if k != "head.bias"})
    with pytest.raises(RuntimeError, match="size mismatch"):
        ArchSpec.parse("cnn:1x8x8-4-8-4").load(state)


def test_forward_rejects_wrong_input_size():
    with pytest.raises(IgpgError, match=r"\(B, 64\)"):
        ArchSpec.parse("mlp:64-32-3").build()(torch.randn(2, 63))


MALFORMED = [
    "",
    "   ",
    "mlp",
    "mlp:",
    "mlp:64",
    "mlp:64-3",  # no hidden layer
    "mlp:64--3",
    "mlp:64-32-",
    "mlp:-64-32-3",
    "mlp:64-0-3",
    "mlp:064-32-3",
    "mlp:64-3.5-3",
    "mlp:64-+3-3",
    "mlp:64-a-3",
    "rnn:64-32-3",
    ":64-32-3",
    "mlp:64-32-3:act=foo",
    "mlp:64-32-3:act=",
    "mlp:64-32-3:k=3",  # kernel is for cnn only
    "mlp:64-32-3:act=relu:act=tanh",
    "mlp:64-32-3:drop=0.1",
    "mlp:64-32-3:",
    "mlp:64-32-3:tanh",
    "mlp:64-32-1",  # one output
    "mlp:64-32-1001",
    "mlp:1x64-32-3",
    "mlp:64-" + "-".join(["8"] * 9) + "-3",  # nine hidden layers
    "cnn:1x8x8-" + "-".join(["8"] * 7) + "-3",  # seven conv layers
    "mlp:６４-32-3",  # full-width digits
    "mlp:64-99999999-3",
    "mlp:65537-32-3",
    "mlp:64-32-3" + "0" * 5000,
    "cnn:1x8x8x8-8-10",
    "cnn:64-8-10",  # cnn needs CxL or CxHxW
    "cnn:1x-8-10",
    "cnn:1x8x0-8-10",
    "cnn:1x8x8-8-10:k=4",  # even kernel
    "cnn:1x8x8-8-10:k=9",
    "cnn:1x8x8-8-10:k=3:k=5",
    "mlp:64-32-3\n:act=foo",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_rejected(text):
    with pytest.raises(IgpgError) as info:
        ArchSpec.parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert repr(text[:100])[:-1] in message or repr(text) in message
    assert "expected e.g. mlp:64-32-3" in message


@settings(max_examples=300)
@given(st.text(alphabet="mlpcnx0123456789-:=actk reluXM６.+", max_size=30) | st.text(max_size=30))
def test_any_string_parses_or_raises_igpg_error(text):
    try:
        spec = ArchSpec.parse(text)
    except IgpgError as exc:
        assert "\n" not in str(exc)
    else:
        assert ArchSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("value", [None, 64, b"mlp:64-32-3", ["mlp:64-32-3"]])
def test_parse_non_string(value):
    with pytest.raises(IgpgError, match="must be a string"):
        ArchSpec.parse(value)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(family="MLP", input_shape=(64,), hidden=(32,), num_outputs=3),
        dict(family="mlp", input_shape=(64,), hidden=(), num_outputs=3),
        dict(family="mlp", input_shape=(64,), hidden=(32,), num_outputs=3, kernel=5),
        dict(family="mlp", input_shape=(64,), hidden=(32.0,), num_outputs=3),
        dict(family="mlp", input_shape=(64,), hidden=(True,), num_outputs=3),
        dict(family="mlp", input_shape=64, hidden=(32,), num_outputs=3),
        dict(family="mlp", input_shape=(64,), hidden=(32,), num_outputs=3, activation=["relu"]),
        dict(family="cnn", input_shape=(64,), hidden=(8,), num_outputs=3),
        dict(family="cnn", input_shape=(1, 8, 8), hidden=(8,), num_outputs=3, kernel=2),
    ],
)
def test_constructor_validates(kwargs):
    with pytest.raises(IgpgError) as info:
        ArchSpec(**kwargs)
    assert "\n" not in str(info.value)


def test_with_methods_validate():
    spec = ArchSpec.parse("mlp:64-32-3")
    assert str(spec.with_outputs(10)) == "mlp:64-32-10"
    assert str(spec.with_hidden((16, 8))) == "mlp:64-16-8-3"
    assert str(spec.with_input_shape((1, 28, 28))) == "mlp:784-32-3"  # mlp flattens
    cnn = ArchSpec.parse("cnn:1x8x8-8-3:k=5")
    assert str(cnn.with_input_shape((1, 40))) == "cnn:1x40-8-3:k=5"
    with pytest.raises(IgpgError):
        spec.with_outputs(1)
    with pytest.raises(IgpgError):
        spec.with_hidden(())
    with pytest.raises(IgpgError):
        cnn.with_input_shape((64,))


def test_check_compatible():
    mlp = ArchSpec.parse("mlp:64-32-3")
    mlp.check_compatible((64,), 3)
    mlp.check_compatible((1, 8, 8), 3)
    with pytest.raises(IgpgError, match="mlp:784-32-3"):
        mlp.check_compatible((1, 28, 28), 3)
    with pytest.raises(IgpgError, match="2 labels.*mlp:64-32-2"):
        mlp.check_compatible((64,), 2)
    cnn = ArchSpec.parse("cnn:1x8x8-8-3")
    cnn.check_compatible((1, 8, 8), 3)
    with pytest.raises(IgpgError, match="shape"):
        cnn.check_compatible((64,), 3)
    with pytest.raises(IgpgError, match="cnn:1x28x28-8-3"):
        cnn.check_compatible((1, 28, 28), 3)
    with pytest.raises(IgpgError, match="outputs"):
        cnn.check_compatible((1, 8, 8), 10)
