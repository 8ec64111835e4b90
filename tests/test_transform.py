"""Architecture transforms (igpg/transform.py): exact where they claim to be, planned by cost, refused where none
exists; and lineage zoos, whose generic networks grow from one root."""

import pytest
import torch

from igpg.arch import ArchSpec
from igpg.errors import IgpgError
from igpg.transform import plan_cost, resample, transform_state


def _random_net(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    spec = ArchSpec.parse(arch)
    net = spec.build()
    for p in net.parameters():
        p.data.normal_(0, 0.3)
    return spec, net


EXACT = [  # (source, target, dataset input shape or None); each step function-preserving
    ("mlp:64-32-10", "mlp:64-48-10", None),
    ("mlp:64-32-10", "mlp:64-128-10", None),
    ("mlp:64-32-10", "mlp:64-32-32-32-10", None),
    ("mlp:64-16-16-10", "mlp:64-40-24-16-10", None),
    ("mlp:40-32-10:act=tanh", "mlp:40-32-32-10:act=tanh", None),
    ("mlp:40-32-10:act=gelu", "mlp:40-32-32-10:act=gelu", None),
    ("mlp:40-32-10:act=silu", "mlp:40-48-32-10:act=silu", None),
    ("cnn:1x8x8-8-16-10", "cnn:1x8x8-12-24-10", None),
    ("cnn:1x8x8-8-16-10", "cnn:1x8x8-8-16-10:k=5", None),
    ("cnn:1x40-8-16-10", "cnn:1x40-8-32-10:k=7", None),
    ("cnn:1x8x8-8-16-10", "mlp:64-128-64-10", (1, 8, 8)),  # a CNN as a dense MLP
    ("cnn:2x12-4-6-3", "mlp:24-24-18-3", (2, 12)),
]


@pytest.mark.parametrize("src,dst,shape", EXACT)
def test_exact_transforms_compute_the_same_function(src, dst, shape):
    s, net = _random_net(src)
    d = ArchSpec.parse(dst)
    plan = plan_cost(s, d, shape, shape)
    assert plan is not None and plan.exact, plan
    out = d.load(transform_state(net.state_dict(), s, d, shape, shape))
    x = torch.rand(64, d.input_dim)
    scale = net(x).abs().max().item()
    assert (net(x) - out(x)).abs().max().item() <= 5e-3 * max(1.0, scale)


def test_identity_layers_are_exact_for_relu_and_split_copies_share_outgoing_weights():
    s, net = _random_net("mlp:8-3-2")
    state = transform_state(net.state_dict(), s, ArchSpec.parse("mlp:8-5-3-2"))
    w0, w1 = state["hidden.0.weight"], state["hidden.1.weight"]  # hidden.1: the inserted identity layer
    assert torch.equal(w0[3], w0[0]) and torch.equal(w0[4], w0[1]) and torch.equal(w0[:3], net.hidden[0].weight)
    assert torch.equal(w1[:, 0], w1[:, 3]) and torch.equal(w1[:, 0] + w1[:, 3], torch.eye(3)[:, 0])
    assert torch.equal(w1[:, 2], torch.eye(3)[:, 2]) and torch.equal(state["head.weight"], net.head.weight)


def test_split_noise_breaks_symmetry_and_only_touches_copies():
    s, net = _random_net("mlp:8-4-2")
    d = ArchSpec.parse("mlp:8-6-2")
    exact = transform_state(net.state_dict(), s, d)
    noisy = transform_state(net.state_dict(), s, d, noise=0.05, seed=1)
    assert torch.equal(exact["hidden.0.weight"][:4], noisy["hidden.0.weight"][:4])
    assert not torch.equal(exact["hidden.0.weight"][4:], noisy["hidden.0.weight"][4:])
    again = transform_state(net.state_dict(), s, d, noise=0.05, seed=1)
    assert torch.equal(noisy["hidden.0.weight"], again["hidden.0.weight"])  # seeded


def test_lossy_steps_are_planned_as_lossy_and_cost_more():
    s = ArchSpec.parse("mlp:64-32-10")
    wide, narrow = plan_cost(s, ArchSpec.parse("mlp:64-48-10")), plan_cost(s, ArchSpec.parse("mlp:64-8-10"))
    act = plan_cost(s, ArchSpec.parse("mlp:64-32-10:act=tanh"))
    assert wide.exact and not narrow.exact and not act.exact
    assert wide.cost < act.cost < narrow.cost
    assert plan_cost(ArchSpec.parse("mlp:64-32-32-10"), ArchSpec.parse("mlp:64-32-10")).steps == ("merge 2->1",)
    assert plan_cost(ArchSpec.parse("mlp:64-32-10"), ArchSpec.parse("cnn:1x8x8-8-10"), (1, 8, 8), (1, 8, 8)) is None
    assert plan_cost(ArchSpec.parse("cnn:1x8x8-8-16-32-10"), ArchSpec.parse("cnn:1x8x8-8-16-10")) is None
    with pytest.raises(IgpgError, match="no transform"):
        transform_state({}, ArchSpec.parse("mlp:64-32-10"), ArchSpec.parse("cnn:1x8x8-8-10"))


def test_narrowing_keeps_the_most_important_neurons_in_order():
    s, net = _random_net("mlp:6-4-2")
    state = net.state_dict()
    state["hidden.0.weight"][2] *= 10  # neuron 2 dominates
    out = transform_state(state, s, ArchSpec.parse("mlp:6-1-2"))
    assert torch.equal(out["hidden.0.weight"][0], state["hidden.0.weight"][2])
    assert torch.equal(out["head.weight"][:, 0], state["head.weight"][:, 2])


def test_resample_is_linear_and_area_averages_images():
    x = torch.rand(3, 16)
    y = resample(x, (1, 4, 4), (1, 2, 2))
    assert torch.allclose(y[:, 0], x.view(3, 4, 4)[:, :2, :2].reshape(3, -1).mean(1))
    a, b = torch.rand(2, 40), torch.rand(2, 40)
    assert torch.allclose(resample(a + 2 * b, (40,), (64,)), resample(a, (40,), (64,)) + 2 * resample(b, (40,), (64,)),
                          atol=1e-6)


def test_lineage_zoo_grows_generic_networks_from_one_root_per_family(tmp_path):
    from igpg.transform import transform_state as carry
    from igpg.zoo import parse_zoo_config
    from igpg.zoo.builder import plan_zoo
    from igpg.zoo.train import LINEAGE_NOISE, initial_network, stable_seed

    raw = {"name": "lin", "lineage": True, "datasets": {"digits": {"tasks": 2}},
           "archs": [{"arch": "mlp:*-16-*"}, {"arch": "mlp:*-8-8-*", "root": True}, {"arch": "mlp:*-24-*", "heldout": True},
                     {"arch": "cnn:*-4-8-*"}, {"arch": "cnn:*-6-8-*"}],
           "seeds": {"train": [0]}}
    plan = plan_zoo(parse_zoo_config(raw))
    generic = {j.arch: j for j in plan.generic_jobs}
    assert generic["mlp:64-8-8-10"].init == "independent" and generic["cnn:1x8x8-4-8-10"].init == "independent"
    assert {a: j.parent_arch for a, j in generic.items() if j.init == "lineage"} == {
        "mlp:64-16-10": "mlp:64-8-8-10", "mlp:64-24-10": "mlp:64-8-8-10", "cnn:1x8x8-6-8-10": "cnn:1x8x8-4-8-10"}
    # the lineage start is the root carried over (with the split noise), so the same in every process
    job = generic["mlp:64-24-10"]
    root_state = ArchSpec.parse(job.parent_arch).build().state_dict()
    start = initial_network(job, root_state).state_dict()
    expect = carry(root_state, ArchSpec.parse(job.parent_arch), ArchSpec.parse(job.arch), (1, 8, 8), (1, 8, 8),
                   noise=LINEAGE_NOISE, seed=stable_seed("lineage", job.arch, job.seed))
    assert all(torch.equal(start[k], expect[k]) for k in expect)
    # task networks of a lineage zoo get other ids than those of a zoo without lineage
    plain = plan_zoo(parse_zoo_config({**raw, "lineage": False, "archs": [
        {k: v for k, v in a.items() if k != "root"} for a in raw["archs"]]}))
    assert not {j.net_id for j in plan.task_jobs} & {j.net_id for j in plain.task_jobs}


def test_lineage_zoo_builds_roots_before_the_networks_grown_from_them(tmp_path):
    from igpg.zoo import Catalogue, build_zoo, parse_zoo_config

    raw = {"name": "lin", "lineage": True, "datasets": {"digits": {"tasks": 1}},
           "archs": [{"arch": "mlp:*-12-*", "heldout": True}, {"arch": "mlp:*-8-*", "root": True}],
           "seeds": {"train": [0]}, "train": {"max_epochs": 2, "patience": 1, "lr": 0.01, "batch_size": 64}}
    phases = []
    build_zoo(parse_zoo_config(raw), tmp_path / "z", progress=lambda p, d, t: phases.append((p, t)) if d == 0 else None)
    assert phases[:2] == [("generic networks", 1), ("lineage generic networks", 1)]
    generic = {r["arch"]: r for r in Catalogue(tmp_path / "z").rows("n.role='generic'")}
    assert generic["mlp:64-8-10"]["init"] == "independent" and generic["mlp:64-12-10"]["init"] == "lineage"


@pytest.mark.parametrize("change,match", [
    ({"archs": [{"arch": "mlp:*-16-*", "root": True}]}, "'root' entries need lineage"),
    ({"lineage": True, "init": "independent"}, "need init: generic"),
    ({"lineage": True, "archs": [{"arch": "mlp:*-16-*", "root": True}, {"arch": "mlp:*-8-*", "root": True}]},
     "one root at most"),
    ({"lineage": True, "archs": [{"arch": "mlp:*-16-*", "root": True, "heldout": True}]}, "cannot be held out"),
    ({"lineage": "yes"}, "lineage must be bool, got 'yes'"),
])
def test_lineage_config_errors(change, match):
    from igpg.zoo import parse_zoo_config

    raw = {"name": "lin", "datasets": {"digits": {"tasks": 2}}, "archs": [{"arch": "mlp:*-16-*"}], "seeds": {"train": [0]},
           **change}
    with pytest.raises(IgpgError, match=match):
        parse_zoo_config(raw)


def test_arch_kind_sorts_heldout_architectures_against_the_trained_ones():
    from igpg.coverage import arch_kind

    trained = {("mlp:64-16-10", "digits"), ("mlp:64-64-10", "digits"), ("mlp:64-32-32-10", "digits"),
               ("cnn:1x8x8-8-16-10", "digits"), ("mlp:40-32-10", "mnist1d")}
    kinds = {a: arch_kind(a, d, trained) for a, d in [
        ("mlp:64-48-3", "digits"), ("mlp:64-24-24-5", "digits"), ("mlp:64-8-3", "digits"), ("mlp:64-128-3", "digits"),
        ("mlp:64-16-16-16-3", "digits"), ("mlp:64-32-3:act=tanh", "digits"), ("cnn:1x8x8-8-16-3:k=5", "digits"),
        ("cnn:1x8x8-12-16-3", "digits"), ("mlp:784-32-3", "mnist"), ("mlp:64-64-3", "digits"), ("mlp:40-8-3", "iris")]}
    assert kinds == {"mlp:64-48-3": "inside", "mlp:64-24-24-5": "inside", "mlp:64-8-3": "narrower",
                     "mlp:64-128-3": "wider", "mlp:64-16-16-16-3": "deeper", "mlp:64-32-3:act=tanh": "activation",
                     "cnn:1x8x8-8-16-3:k=5": "kernel", "cnn:1x8x8-12-16-3": "inside", "mlp:784-32-3": "dataset",
                     "mlp:64-64-3": "trained", "mlp:40-8-3": "dataset"}


def test_calibration_refits_only_what_a_lossy_step_changed_towards_the_source():
    s, net = _random_net("mlp:16-12-12-3")
    state, x = net.state_dict(), torch.rand(60, 16)
    narrow = ArchSpec.parse("mlp:16-12-4-3")  # the second layer narrowed: only the head's input changed
    plain = transform_state(state, s, narrow)
    cal = transform_state(state, s, narrow, calibrate=x)
    for k in ("hidden.0.weight", "hidden.0.bias", "hidden.1.weight", "hidden.1.bias"):
        assert torch.equal(plain[k], cal[k]), k
    err = lambda st: float((narrow.load(st)(x) - net(x)).pow(2).mean())  # noqa: E731
    assert err(cal) < 0.5 * err(plain)
    first = transform_state(state, s, ArchSpec.parse("mlp:16-4-12-3"), calibrate=x)  # layer 1 reads the narrowed one
    assert not torch.equal(first["hidden.1.weight"], transform_state(state, s, ArchSpec.parse("mlp:16-4-12-3"))["hidden.1.weight"])
    wide = ArchSpec.parse("mlp:16-20-12-3")  # exact: nothing to calibrate
    assert all(torch.equal(a, b) for a, b in zip(transform_state(state, s, wide, calibrate=x).values(),
                                                 transform_state(state, s, wide).values()))
