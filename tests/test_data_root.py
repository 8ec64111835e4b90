"""--data-root wherever a dataset is named (a torchvision-style folder the test writes), export --samples, and the
progress display of generate."""

import io
import json

import pytest
import torch
from rich.console import Console
from safetensors import safe_open
from safetensors.torch import load_file

from igpg.arch import ArchSpec
from igpg.errors import IgpgError
from igpg.evaluation.accuracy import evaluate
from igpg.generator import ParameterGenerator
from igpg.generator.rows import row_layout
from test_data import _fake_mnist_root

MNIST = dict(instruction="Classify handwritten digits 3, 5 and 8", dataset="torchvision:MNIST", classes=[3, 5, 8],
             arch="mlp:784-8-3")
TASK = ["Classify handwritten digits 3, 5 and 8", "--dataset", "torchvision:MNIST", "--classes", "3,5,8"]


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _fake_mnist_root(root, "MNIST", per_class_train=10, per_class_test=3)
    return root


@pytest.fixture(scope="module")
def gen(tiny_pipeline):
    d, _ = tiny_pipeline
    return ParameterGenerator.from_pretrained(d / "gen", device="cpu")


def test_api_generate_and_evaluate_read_the_data_root(gen, mnist_root):
    with pytest.raises(IgpgError, match="needs a local data folder"):
        gen.generate(**MNIST)
    net = gen.generate(**MNIST, data_root=mnist_root)
    assert net.igpg_metadata["igpg.dataset"] == "torchvision:MNIST"
    assert 0.0 <= evaluate(net, "torchvision:MNIST", [3, 5, 8], data_root=mnist_root) <= 1.0
    with pytest.raises(IgpgError, match="needs a local data folder"):  # the root was for that call only
        gen.check_request(MNIST["instruction"], MNIST["dataset"], MNIST["classes"], MNIST["arch"])


def test_cli_generate_and_retrieve_with_data_root(tiny_pipeline, tiny_zoo, mnist_root, tmp_path, cli):
    d, _ = tiny_pipeline
    out = tmp_path / "net.safetensors"
    res = cli("generate", *TASK, "--arch", "mlp:784-8-3", "--model", d / "gen", "--samples", "2", "--out", out,
              "--data-root", mnist_root)
    assert res.code == 0, res.err
    assert "test accuracy" in res.out and res.err == ""  # no bar frames when stderr is not a terminal
    ArchSpec.parse("mlp:784-8-3").build().load_state_dict(load_file(out), strict=True)
    res = cli("generate", *TASK, "--arch", "mlp:784-8-3", "--model", d / "gen", "--out", tmp_path / "other.safetensors")
    assert res.code == 2 and "--data-root" in res.err
    res = cli("retrieve", *TASK, "--arch", "mlp:784-8-3", "--zoo", tiny_zoo, "--data-root", mnist_root)
    # the root reached retrieval, which read the input shape from it: the tiny zoo has no 784-input network
    assert res.code == 2 and "no mlp network of that input" in res.err, res.err


def test_export_with_data_root_and_samples(tiny_pipeline, mnist_root, tmp_path, cli):
    d, _ = tiny_pipeline
    req = tmp_path / "requests.jsonl"
    lines = [{"name": "m", "instruction": MNIST["instruction"], "dataset": "torchvision:MNIST", "classes": [3, 5, 8],
              "arch": "mlp:784-8-3"},
             {"name": "d", "instruction": "Classify 3, 5 and 8", "dataset": "digits", "classes": [3, 5, 8],
              "arch": "mlp:64-16-3", "seed": 2}]
    req.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = cli("export", req, "--out", tmp_path / "out", "--model", d / "gen", "--samples", "3",
              "--data-root", mnist_root)
    assert res.code == 0, res.err
    for name in ("m", "d"):
        assert safe_open(tmp_path / "out" / f"{name}.safetensors", "pt").metadata()["igpg.samples"] == "3"
    res = cli("export", req, "--out", tmp_path / "out2", "--model", d / "gen", "--samples", "0")
    assert res.code == 2 and "--samples" in res.err


def test_generate_batch_picks_as_generate_does(gen):
    """Best-of-K in a batch (export) is the same selection as one request at a time (generate)."""
    reqs = [dict(instruction="Classify 3, 5 and 8", dataset="digits", classes=[3, 5, 8], arch="mlp:64-16-3", seed=4)]
    (batched,) = gen.generate_batch(reqs, samples=3)
    alone = gen.generate(**{k: v for k, v in reqs[0].items()}, samples=3)
    greedy = gen.generate(**reqs[0], samples=1)
    assert all(torch.equal(a, b) for a, b in zip(batched.state_dict().values(), alone.state_dict().values()))
    assert batched.igpg_support_acc == alone.igpg_support_acc >= greedy.igpg_support_acc


def test_generate_reports_candidates_and_rows(gen):
    seen = []
    gen.generate("Classify 3, 5 and 8", dataset="digits", classes=[3, 5, 8], arch="mlp:64-16-3", samples=3,
                 progress=lambda phase, done, total: seen.append((phase, done, total)))
    rows = len(row_layout("mlp:64-16-3", gen.cfg.codes.chunk_size, gen.cfg.codes.codes_per_chunk))
    assert [s for s in seen if s[0] == "candidates"] == [("candidates", 0, 3), ("candidates", 1, 3),
                                                          ("candidates", 3, 3)]
    row_updates = [s for s in seen if s[0] == "rows"]
    assert row_updates.count(("rows", rows, rows)) == 2  # two decoding passes: the greedy one, then K-1 sampled
    assert len(row_updates) == 2 * rows


def test_bars_render_on_a_terminal_and_stay_quiet_elsewhere():
    from igpg.cli import _Bars

    for terminal in (True, False):
        buf = io.StringIO()
        with _Bars(Console(file=buf, force_terminal=terminal, width=160)) as bars:
            for i in range(1, 4):
                bars("candidates", i, 3)
                bars("generator steps", i, 3, loss=2.5 / i)
        text = buf.getvalue()
        if terminal:
            assert "candidates" in text and "3/3" in text and "loss 0.8333" in text and "/s" in text
        else:
            assert text == ""


def test_released_generator_reaches_the_data_root_and_borrows_mnists_layers(mnist_root, tmp_path, cli):
    # the coverage note read the dataset without the root: the released model refused every torchvision request
    out = tmp_path / "net.safetensors"
    res = cli("generate", *TASK, "--arch", "mlp:784-32-3", "--out", out, "--data-root", mnist_root)
    assert res.code == 0, res.err
    assert "borrows the hidden layers of mlp:784-32-10@mnist (same input)" in " ".join(res.err.split())
    assert safe_open(out, "pt").metadata()["igpg.dataset"] == "torchvision:MNIST"
