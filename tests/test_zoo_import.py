"""`igpg zoo import`: a folder + tasks file and the Model Zoos layout, written here, catalogued and checked; bad
files refused with one line; a tokenizer and a generator train on an imported zoo."""

import csv
import json
import math
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from igpg.arch import ArchSpec
from igpg.zoo import Catalogue

TASKS = [  # (file, classes, arch, seed, role, saved as)
    ("a.safetensors", [3, 5, 8], "mlp:64-16-3", 0, "task", "igpg"),
    ("b.safetensors", [3, 5, 8], "mlp:64-16-3", 1, "task", "igpg"),
    ("c.pt", [0, 1], "mlp:64-16-2", 0, "task", "sequential"),
    ("d.pt", [[1, 3, 5, 7, 9], [0, 2, 4, 6, 8]], "mlp:64-16-2", 0, "task", "sequential"),
    ("e.safetensors", [2, 7, 4], "mlp:64-24-3", 0, "task", "igpg"),
    ("f.safetensors", [9, 0, 6, 1], "mlp:64-16-4", 1, "task", "igpg"),
    ("g.safetensors", list(range(10)), "mlp:64-16-10", 0, "generic", "igpg"),
]


def _state(arch: str, seed: int, names: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = ArchSpec.parse(arch).build().state_dict()
    if names == "sequential":  # what nn.Sequential(Linear, ReLU, Linear) would save: 0.weight, 0.bias, 2.weight, ...
        state = {f"{2 * (i // 2)}.{k.rsplit('.', 1)[1]}": v for i, (k, v) in enumerate(state.items())}
    return {k: v.clone() for k, v in state.items()}


def write_folder_zoo(root: Path, fmt: str = "jsonl") -> dict[str, dict[str, torch.Tensor]]:
    """Weight files + a tasks file, as a user would bring them; returns the states written, by file."""
    root.mkdir(parents=True, exist_ok=True)
    states, rows = {}, []
    for i, (file, classes, arch, seed, role, names) in enumerate(TASKS):
        state = _state(arch, 100 + i, names)
        if file.endswith(".pt"):
            torch.save(state, root / file)
        else:
            save_file(state, root / file)
        states[file] = state
        rows.append({"file": file, "dataset": "digits", "classes": classes, "arch": arch, "accuracy": 0.9 - i / 100,
                     "seed": seed, "role": role, **({"instruction": "Tell 3, 5 and 8 apart"} if i == 0 else {})})
    if fmt == "jsonl":
        (root / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        head = ["file", "dataset", "classes", "arch", "accuracy", "seed", "role", "instruction"]
        with open(root / "tasks.csv", "w", newline="") as f:  # classes as JSON, quoted by the csv module
            w = csv.DictWriter(f, head)
            w.writeheader()
            w.writerows({**r, "classes": json.dumps(r["classes"])} for r in rows)
    return states


def write_model_zoos(root: Path, n: int = 3, kind: str = "MLP") -> dict[str, dict[str, torch.Tensor]]:
    """The Model Zoos layout: zoo/experiment/NN_tune_trainable_<i>/{params.json, result.json, checkpoint_*/checkpoints};
    the state dicts named as their MLP's module_list (Linear, Tanh, Linear)."""
    newest = {}
    for i in range(n):
        folder = root / "tune_zoo_digits" / f"NN_tune_trainable_{i:05d}_seed={i}"
        folder.mkdir(parents=True)
        params = {"model::type": kind, "model::i_dim": 64, "model::h_dim": [16], "model::o_dim": 10,
                  "model::nlin": "tanh", "model::dropout": 0.0, "model::use_bias": True, "seed": i,
                  "optim::lr": 0.0003}
        (folder / "params.json").write_text(json.dumps(params))
        lines = [{"training_iteration": e, "test_acc": 50.0 + 10 * e + i, "train_acc": 55.0 + 10 * e} for e in (1, 2)]
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
        for epoch in (1, 2):
            torch.manual_seed(1000 * i + epoch)
            state = {"module_list.0.weight": torch.randn(16, 64) * 0.1, "module_list.0.bias": torch.randn(16) * 0.1,
                     "module_list.2.weight": torch.randn(10, 16) * 0.1, "module_list.2.bias": torch.randn(10) * 0.1}
            (folder / f"checkpoint_{epoch:06d}").mkdir()
            torch.save(state, folder / f"checkpoint_{epoch:06d}" / "checkpoints")
            torch.save({"state": {}}, folder / f"checkpoint_{epoch:06d}" / "optimizer")
        newest[folder.name] = state
    return newest


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A folder zoo, imported once for the tests that read it."""
    from igpg.zoo.importer import import_zoo

    d = tmp_path_factory.mktemp("byo")
    states = write_folder_zoo(d / "src")
    report = import_zoo(d / "src", d / "zoo", test_fraction=0.3, heldout_archs=["mlp:64-24-3"], heldout_seeds=[1])
    return d, states, report


def test_folder_import_catalogues_every_network_with_split_flags(imported, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    d, states, report = imported
    assert (report.layout, report.found, report.imported, report.skipped) == ("tasks file", 7, 7, 0)
    cat = Catalogue(d / "zoo")
    rows = {round(r["test_acc"], 6): r for r in cat.rows()}  # the accuracies written are distinct
    assert cat.verify() == []
    for i, (file, classes, arch, seed, role, _) in enumerate(TASKS):
        r = rows[round(0.9 - i / 100, 6)]
        assert (r["arch"], r["labels"], r["seed"], r["role"], r["init"]) == (arch, classes, seed, role, "imported")
        net = cat.load(r["net_id"])  # strict load under igpg's names, whatever the file called its tensors
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), states[file].values()))
        assert r["arch_split"] == ("test" if arch == "mlp:64-24-3" else "train")
        assert r["seed_split"] == ("test" if seed == 1 else "train")
    assert {r["task_split"] for r in rows.values() if r["role"] == "task"} == {"train", "test"}  # 30% held out
    first = next(r for r in rows.values() if r["labels"] == [3, 5, 8])
    assert first["instructions"][0] == "Tell 3, 5 and 8 apart" and len(first["instructions"]) > 1
    assert first["heldout_instructions"]  # igpg's held-out phrasings, for the held-out-phrasing evaluation
    cat.close()
    res = cli("zoo", "info", d / "zoo")
    assert res.code == 0 and "7 networks" in res.out
    rows = [line for line in res.out.splitlines() if line.startswith("│")]
    assert "train / train / train" in res.out and all(r.split("│")[1].strip() for r in rows)  # no row wraps in 80 columns


def test_reimport_adds_nothing_and_csv_gives_the_same_zoo(imported, tmp_path, cli):
    d, _, _ = imported
    res = cli("zoo", "import", d / "src", "--out", d / "zoo", "--test-fraction", "0.3", "--heldout-arch",
              "mlp:64-24-3", "--heldout-seed", "1")
    assert res.code == 0, res.err
    assert "imported 0 networks" in res.out and "7 already there" in res.out
    write_folder_zoo(tmp_path / "csv", fmt="csv")
    res = cli("zoo", "import", tmp_path / "csv", "--out", tmp_path / "zoo", "--test-fraction", "0.3",
              "--heldout-arch", "mlp:64-24-3", "--heldout-seed", "1")
    assert res.code == 0, res.err
    a, b = Catalogue(d / "zoo"), Catalogue(tmp_path / "zoo")
    key = lambda r: (r["net_id"], r["task_split"], r["arch_split"], r["seed_split"], r["labels"])  # noqa: E731
    assert sorted(map(key, a.rows())) == sorted(map(key, b.rows()))  # the same networks, split the same way
    for r in b.rows():
        assert all(torch.equal(x, y) for x, y in zip(a.load(r["net_id"]).state_dict().values(),
                                                     b.load(r["net_id"]).state_dict().values()))


def test_model_zoos_layout_imports_the_newest_checkpoint(tmp_path, cli):
    newest = write_model_zoos(tmp_path / "mz")
    res = cli("zoo", "import", tmp_path / "mz", "--out", tmp_path / "zoo", "--dataset", "digits")
    assert res.code == 0, res.err
    assert "imported 3 networks" in res.out and "model zoos layout" in res.out
    cat = Catalogue(tmp_path / "zoo")
    rows = cat.rows()
    assert len(rows) == 3 and cat.verify() == []
    for r in rows:
        i = r["seed"]
        assert r["arch"] == "mlp:64-16-10:act=tanh" and r["labels"] == list(range(10)) and r["epochs"] == 2
        assert r["test_acc"] == pytest.approx((70.0 + i) / 100) and r["train_acc"] == pytest.approx(0.75)
        src = newest[f"NN_tune_trainable_{i:05d}_seed={i}"]
        got = cat.load(r["net_id"]).state_dict()
        assert torch.equal(got["hidden.0.weight"], src["module_list.0.weight"])
        assert torch.equal(got["head.bias"], src["module_list.2.bias"])


def _pickle_bomb(path: Path, marker: Path) -> None:
    import pickle

    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps({"hidden.0.weight": Bomb()}))


def _break(case: str, src: Path) -> list[str]:
    """Damage a freshly written folder zoo in one way; returns extra CLI arguments."""
    rows = [json.loads(x) for x in (src / "tasks.jsonl").read_text().splitlines()]
    state = _state("mlp:64-16-3", 0, "igpg")
    if case == "nan":
        state["head.weight"][0, 0] = float("nan")
        save_file(state, src / "a.safetensors")
    elif case == "int tensor":
        state["head.bias"] = torch.zeros(3, dtype=torch.int64)
        save_file(state, src / "a.safetensors")
    elif case == "wrong shapes":
        save_file(_state("mlp:64-32-3", 0, "igpg"), src / "a.safetensors")
    elif case == "pickle":
        _pickle_bomb(src / "c.pt", src / "PWNED")
    elif case == "truncated":
        (src / "e.safetensors").write_bytes((src / "e.safetensors").read_bytes()[:100])
    elif case == "unknown dataset":
        rows[1]["dataset"] = "cifar"
    elif case == "class out of range":
        rows[1]["classes"] = [3, 5, 11]
    elif case == "labels vs outputs":
        rows[1]["classes"] = [3, 5]
    elif case == "accuracy":
        rows[2]["accuracy"] = 1.5
    elif case == "missing column":
        del rows[3]["arch"]
    elif case == "missing file":
        rows[3]["file"] = "nope.safetensors"
    elif case == "bad generic":
        rows[6]["classes"] = [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]
        rows[6]["arch"] = "mlp:64-16-10"
    (src / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return []


BAD = {  # case -> what the one line must say
    "nan": "NaN", "int tensor": "expected floating-point", "wrong shapes": "do not match architecture",
    "pickle": "weights-only", "truncated": "safetensors", "unknown dataset": "unknown dataset",
    "class out of range": "out of range", "labels vs outputs": "outputs but the task has 2 labels",
    "accuracy": "accuracy must be in [0, 1]", "missing column": "missing arch", "missing file": "not found",
    "bad generic": "generic network has every class",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_rows_and_files_one_line_exit_2_nothing_written(case, tmp_path, cli):
    write_folder_zoo(tmp_path / "src")
    _break(case, tmp_path / "src")
    res = cli("zoo", "import", tmp_path / "src", "--out", tmp_path / "zoo")
    assert res.code == 2, (res.out, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and BAD[case] in lines[0], lines
    assert "Traceback" not in res.err and not (tmp_path / "zoo").exists()
    assert not (tmp_path / "src" / "PWNED").exists()  # the pickle never ran


def test_model_zoos_refusals(tmp_path, cli):
    write_model_zoos(tmp_path / "cnn", n=1, kind="CNN")
    res = cli("zoo", "import", tmp_path / "cnn", "--out", tmp_path / "zoo", "--dataset", "digits")
    assert res.code == 2 and "model::type 'CNN' has no igpg architecture" in res.err
    write_model_zoos(tmp_path / "mlp", n=1)
    res = cli("zoo", "import", tmp_path / "mlp", "--out", tmp_path / "zoo")
    assert res.code == 2 and "names no dataset; pass --dataset" in res.err
    res = cli("zoo", "import", tmp_path / "mlp", "--out", tmp_path / "zoo", "--dataset", "digits", "--classes", "3,5")
    assert res.code == 2 and "10 outputs but the task has 2 labels" in res.err
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("zoo", "import", empty, "--out", tmp_path / "zoo")
    assert res.code == 2 and "no tasks file" in res.err
    assert not (tmp_path / "zoo").exists()


def test_tokenizer_and_generator_train_on_an_imported_zoo(imported, tmp_path):
    """The imported zoo is a zoo like any other: a tiny tokenizer trains on its training split (the held-out
    architecture and seeds stay out), codes are extracted for every network, and a generator trains on them."""
    from conftest import TINY_TOK, tiny_gen_config
    from igpg.generator.train import train_generator
    from igpg.tokenizer.codes import extract_codes
    from igpg.tokenizer.tokenizer import load_tokenizer_config
    from igpg.tokenizer.train import training_rows, train_tokenizer

    d, _, _ = imported
    cat = Catalogue(d / "zoo")
    train = training_rows(cat)
    assert train and all(r["arch"] != "mlp:64-24-3" and r["seed"] != 1 for r in train)
    cfg = load_tokenizer_config(TINY_TOK).override({"train.steps": 10, "model.normalisation": "layer_std"})
    tok = train_tokenizer(d / "zoo", cfg, tmp_path / "tok")
    assert extract_codes(tok, cat, tmp_path / "tok" / "codes") == 7
    gcfg = tiny_gen_config(codes=False)
    train_generator(d / "zoo", tmp_path / "tok", gcfg.override({"train.steps": 2}), tmp_path / "gen")
    metrics = [json.loads(x) for x in (tmp_path / "gen" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(math.isfinite(m["code_loss"]) for m in metrics)  # it trained, on finite losses
