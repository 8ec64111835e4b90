"""--device auto|cpu|cuda|mps (device= in the API): resolution, generation and single-process training on each
device this machine has (CPU here; CUDA and MPS run where present and skip otherwise)."""


import pytest
import torch

from igpg.device import available, resolve_device
from igpg.errors import IgpgError
from igpg.generator import ParameterGenerator
from igpg.generator.train import train_generator

DEVICES = [pytest.param(kind, marks=pytest.mark.skipif(not available(kind), reason=f"no {kind} device here"))
           for kind in ("cpu", "cuda", "mps")]


def test_auto_picks_the_best_device_present():
    expected = "cuda" if torch.cuda.is_available() else "mps" if available("mps") else "cpu"
    assert resolve_device("auto").type == expected == resolve_device(None).type
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name, message", [("gpu", "unknown device"), ("cuda:x", "unknown device"),
                                           ("", "unknown device")])
def test_bad_device_names_are_refused(name, message):
    with pytest.raises(IgpgError, match=message):
        resolve_device(name)


@pytest.mark.parametrize("kind", [k for k in ("cuda", "mps") if not available(k)] or ["none-absent"])
def test_an_absent_device_is_a_one_line_error(kind, tiny_pipeline, tmp_path, cli):
    if kind == "none-absent":
        pytest.skip("every device kind is present here")
    d, _ = tiny_pipeline
    res = cli("generate", "Classify 3, 5 and 8", "--dataset", "digits", "--classes", "3,5,8", "--arch", "mlp:64-16-3",
              "--model", d / "gen", "--device", kind, "--out", tmp_path / "n.safetensors")
    assert res.code == 2 and "not available on this machine" in res.err and len(res.err.strip().splitlines()) == 1
    assert not (tmp_path / "n.safetensors").exists()


@pytest.mark.parametrize("kind", DEVICES)
def test_generate_on_device_matches_the_cpu_greedy_decode(kind, tiny_pipeline):
    d, _ = tiny_pipeline
    task = dict(instruction="Classify 3, 5 and 8", dataset="digits", classes=[3, 5, 8], arch="mlp:64-16-3")
    gen = ParameterGenerator.from_pretrained(d / "gen", device=kind)
    assert gen.device.type == kind and next(gen.model.parameters()).device.type == kind
    net = gen.generate(**task, samples=2)
    assert all(p.device.type == "cpu" for p in net.parameters())  # networks come back on the CPU, ready to save
    ref = ParameterGenerator.from_pretrained(d / "gen", device="cpu").generate(**task, samples=1)
    greedy = gen.generate(**task, samples=1)
    same = [torch.allclose(a, b, atol=1e-4) for a, b in zip(greedy.state_dict().values(), ref.state_dict().values())]
    assert sum(same) >= len(same) - 1  # greedy codes agree (a near-tie may flip on another device's arithmetic)


@pytest.mark.parametrize("kind", DEVICES)
def test_single_process_training_runs_on_the_device_given(kind, tiny_pipeline, tiny_zoo, tmp_path):
    d, gcfg = tiny_pipeline
    cfg = gcfg.override({"train.steps": 2, "train.log_every": 1, "train.checkpoint_every": 2})
    model = train_generator(tiny_zoo, d / "tok", cfg, tmp_path / "g", device=kind)
    assert {p.device.type for p in model.parameters()} == {kind}
    assert ParameterGenerator.from_pretrained(tmp_path / "g", device="cpu").cfg.train.steps == 2  # saved, loadable anywhere
