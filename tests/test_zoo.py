"""The zoo builder: plan, catalogue, split flags, resume, crash safety, locking, bad input."""

import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from conftest import ROOT, TINY, igpg_subprocess
from igpg.arch import ArchSpec
from igpg.data import Task
from igpg.errors import IgpgError
from igpg.zoo import Catalogue, build_zoo, load_zoo_config, plan_zoo
from igpg.zoo.train import initial_network

TINY_RAW = yaml.safe_load(TINY.read_text())


def write_config(tmp_path: Path, **changes) -> Path:
    raw = json.loads(json.dumps(TINY_RAW))
    for key, value in changes.items():
        *path, last = key.split("__")
        d = raw
        for p in path:
            d = d[p]
        if value is DELETE:
            del d[last]
        else:
            d[last] = value
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


DELETE = object()


def test_tiny_zoo_complete_and_verified(tiny_zoo):
    cfg = load_zoo_config(TINY)
    plan = plan_zoo(cfg)
    cat = Catalogue(tiny_zoo)
    rows = cat.rows()
    assert {r["net_id"] for r in rows} == {j.net_id for j in [*plan.generic_jobs, *plan.task_jobs]}
    assert cat.verify() == []
    # every file loads strictly into the architecture it is catalogued with, and is far above chance
    for r in rows:
        net = ArchSpec.parse(r["arch"]).build()
        net.load_state_dict(load_file(tiny_zoo / r["file"]), strict=True)
        assert r["test_acc"] > 1.5 / len(r["labels"]), r
    task_rows = [r for r in rows if r["role"] == "task"]
    assert {r["task_split"] for r in task_rows} == {"train", "test"}
    assert {r["arch_split"] for r in task_rows} == {"train", "test"}
    assert {r["seed_split"] for r in task_rows} == {"train", "test"}
    # held-out seeds exist only for training tasks on training architectures
    for r in task_rows:
        if r["seed_split"] == "test":
            assert r["task_split"] == "train" and r["arch_split"] == "train"
        assert r["instructions"] and r["heldout_instructions"]
        assert not set(r["instructions"]) & set(r["heldout_instructions"])
    assert all(r["arch_split"] == "test" for r in task_rows if "-24-" in r["arch"])


def test_rerun_trains_nothing(tiny_zoo):
    report = build_zoo(load_zoo_config(TINY), tiny_zoo)
    assert report.trained == 0 and report.skipped == report.planned


def test_generic_init_starts_from_generic_rows(tiny_zoo):
    plan = plan_zoo(load_zoo_config(TINY))
    job = next(j for j in plan.task_jobs if j.task.kind == "grouped")
    generic = load_file(tiny_zoo / job.generic_file)
    from dataclasses import replace

    net = initial_network(replace(job, generic_file=str(tiny_zoo / job.generic_file)))
    state = net.state_dict()
    assert (state["hidden.0.weight"] == generic["hidden.0.weight"]).all()
    for i, label in enumerate(job.task.labels):
        assert (state["head.weight"][i] - generic["head.weight"][list(label)].mean(0)).abs().max() < 1e-6


def test_two_workers_train_the_same_networks(tiny_zoo, tmp_path):
    """Seeds derive from each job, not from the process: a 2-worker build gives the same files."""
    build_zoo(load_zoo_config(TINY), tmp_path / "z2", workers=2)
    one = {r["net_id"]: r["sha256"] for r in Catalogue(tiny_zoo).rows()}
    two = {r["net_id"]: r["sha256"] for r in Catalogue(tmp_path / "z2").rows()}
    assert one == two


def test_sigkill_mid_build_then_resume_verifies_clean(tmp_path):
    out = tmp_path / "zoo"
    proc = igpg_subprocess("zoo", "build", "--config", TINY, "--out", out)
    db = out / "catalogue.sqlite"
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                n = sqlite3.connect(db).execute("SELECT count(*) FROM networks").fetchone()[0]
            except sqlite3.Error:
                n = 0
            if n >= 3:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed: make the tiny zoo bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    planned = len(plan_zoo(load_zoo_config(TINY)).task_jobs) + len(plan_zoo(load_zoo_config(TINY)).generic_jobs)
    assert 3 <= Catalogue(out).rows().__len__() < planned
    again = igpg_subprocess("zoo", "build", "--config", TINY, "--out", out)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    verify = igpg_subprocess("zoo", "verify", out)
    stdout, _ = verify.communicate(timeout=120)
    assert verify.returncode == 0 and f"{planned} networks checked, 0 problems" in stdout


def test_second_build_on_same_dir_is_refused(tmp_path):
    out = tmp_path / "zoo"
    slow = write_config(tmp_path, datasets={"digits": {"tasks": 40}}, train__max_epochs=40, train__patience=40)
    first = igpg_subprocess("zoo", "build", "--config", slow, "--out", out)
    deadline = time.time() + 60
    while not (out / ".lock").exists() or not (out / "catalogue.sqlite").exists():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.05)
    second = igpg_subprocess("zoo", "build", "--config", TINY, "--out", out)
    _, err = second.communicate(timeout=120)
    first_running = first.poll() is None
    first.kill()
    first.wait()
    assert first_running, "the first build ended before the second started: make the tiny zoo bigger"
    assert second.returncode == 2
    assert "another zoo build is running" in err and len(err.strip().splitlines()) == 1


def test_verify_reports_tampering(tiny_zoo, tmp_path, cli):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_zoo, copy)
    files = sorted((copy / "nets").iterdir())
    files[0].write_bytes(files[0].read_bytes()[:-4])  # truncated
    files[1].unlink()  # missing
    (copy / "nets" / "stray.safetensors").write_bytes(b"x")  # orphan
    res = cli("zoo", "verify", copy)
    assert res.code == 1
    assert "does not match its sha256" in res.out and "is missing" in res.out and "without a catalogue row" in res.out


def test_info_prints_per_dataset_accuracy(tiny_zoo, cli):
    res = cli("zoo", "info", tiny_zoo)
    assert res.code == 0 and "digits" in res.out and "by split" in res.out


BAD_CONFIGS = {
    "unknown dataset": dict(datasets={"digts": {"tasks": 2}}),
    "class out of range": dict(datasets__digits__include=[[3, 5, 10]]),
    "duplicate labels": dict(datasets__digits__include=[[3, 3, 5]]),
    "overlapping labels": dict(datasets__digits__include=[[[1, 2], [2, 3]]]),
    "arch input does not fit": dict(archs=[{"arch": "mlp:100-16-*"}]),
    "cnn on flat input shape": dict(archs=[{"arch": "cnn:1x28x28-8-*"}]),
    "malformed arch": dict(archs=[{"arch": "mlp:*--16-*"}]),
    "unknown family": dict(archs=[{"arch": "rnn:*-16-*"}]),
    "output not a star": dict(archs=[{"arch": "mlp:*-16-3"}]),
    "missing key": dict(seeds=DELETE),
    "unknown top key": dict(epochs=3),
    "unknown train key": dict(train__epochs=3),
    "bad type": dict(train__lr="fast"),
    "negative seed": dict(seeds={"train": [-1]}),
    "seed in both": dict(seeds={"train": [0], "heldout": [0]}),
    "unknown init": dict(init="pretrained"),
    "unknown probes": dict(probes="some"),
    "probes without a generic network": dict(init="independent", probes="grouped"),
    "min > max ways": dict(tasks__min_ways=5, tasks__max_ways=3),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_one_line_exit_2_nothing_written(case, tmp_path, cli):
    cfg = write_config(tmp_path, **BAD_CONFIGS[case])
    out = tmp_path / "out"
    res = cli("zoo", "build", "--config", cfg, "--out", out)
    assert res.code == 2, res.err
    assert res.err.startswith("error: ") and len(res.err.strip().splitlines()) == 1, res.err
    assert not out.exists()


def test_missing_config_and_bad_yaml(tmp_path, cli):
    res = cli("zoo", "build", "--config", tmp_path / "nope.yaml", "--out", tmp_path / "o")
    assert res.code == 2 and "not found" in res.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    res = cli("zoo", "build", "--config", bad, "--out", tmp_path / "o")
    assert res.code == 2 and "not valid YAML" in res.err and not (tmp_path / "o").exists()


def test_unwritable_output_directory(tmp_path, cli):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    # root ignores file permissions; /sys refuses new entries even to root
    target = ro / "zoo" if not os.access(ro, os.W_OK) else Path("/sys/igpg-test-zoo")
    try:
        res = cli("zoo", "build", "--config", TINY, "--out", target)
        assert res.code == 2 and "error: cannot" in res.err and len(res.err.strip().splitlines()) == 1
        assert not target.exists()
    finally:
        ro.chmod(0o700)


def test_output_path_is_a_file(tmp_path, cli):
    f = tmp_path / "file"
    f.write_text("x")
    res = cli("zoo", "build", "--config", TINY, "--out", f / "zoo")
    assert res.code == 2 and res.err.startswith("error: cannot create output directory")
    res = cli("zoo", "build", "--config", TINY, "--out", f)
    assert res.code == 2 and "not a directory" in res.err


def test_not_a_zoo(tmp_path, cli):
    res = cli("zoo", "info", tmp_path)
    assert res.code == 2 and "is not a zoo" in res.err


def test_split_change_refused(tiny_zoo, tmp_path, cli):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_zoo, copy)
    cfg = write_config(tmp_path, archs=[{"arch": "mlp:*-16-*", "heldout": True}, {"arch": "mlp:*-24-*"}])
    res = cli("zoo", "build", "--config", cfg, "--out", copy)
    assert res.code == 2 and "held-out splits must not change" in res.err
    assert Catalogue(copy).verify() == []


def test_task_ids_match_catalogue(tiny_zoo):
    for r in Catalogue(tiny_zoo).rows():
        assert Task.from_classes(r["dataset"], r["labels"]).task_id == r["task_id"]


def test_probe_networks_keep_the_generic_hidden_layers(tiny_zoo, tmp_path):
    """`probes: grouped` added to a built zoo trains only the probes: one per grouped-task network a generator trains
    on, the same task, architecture, seed and split, its hidden layers exactly the generic network's, its output layer trained."""
    import shutil

    import torch

    from igpg.evaluation.heldout import CATEGORIES
    from igpg.tokenizer.train import TRAIN_SPLIT

    copy = tmp_path / "copy"
    shutil.copytree(tiny_zoo, copy)
    before = Catalogue(copy).net_ids()
    report = build_zoo(load_zoo_config(write_config(tmp_path, probes="grouped")), copy)
    cat = Catalogue(copy)
    assert cat.verify() == []
    probes = cat.rows("n.role='probe'")
    tasks = {(r["task_id"], r["arch"], r["seed"]): r for r in cat.rows("n.role='task'")}
    # one probe per grouped-task network a generator trains on (task, architecture and seed all "train")
    grouped = [k for k, r in tasks.items() if r["kind"] == "grouped" and
               (r["task_split"], r["arch_split"], r["seed_split"]) == ("train", "train", "train")]
    assert len(grouped) < len([r for r in tasks.values() if r["kind"] == "grouped"])
    assert grouped and report.trained == len(probes) == len(grouped) and cat.net_ids() - before == {
        p["net_id"] for p in probes}
    generic = {(r["dataset"], r["arch"]): r["net_id"] for r in cat.rows("n.role='generic'")}
    for p in probes:
        twin = tasks[(p["task_id"], p["arch"], p["seed"])]
        assert p["kind"] == "grouped" and p["seed_split"] == twin["seed_split"]
        probe, task = cat.load(p["net_id"]).state_dict(), cat.load(twin["net_id"]).state_dict()
        gen = cat.load(generic[(p["dataset"], str(ArchSpec.parse(p["arch"]).with_outputs(10)))]).state_dict()
        for k, v in probe.items():
            if not k.startswith("head."):
                assert torch.equal(v, gen[k]), k
                assert not torch.equal(v, task[k]) or twin["best_epoch"] == 0, k  # the task network fine-tuned it
        start = torch.stack([gen["head.weight"][label if isinstance(label, list) else [label]].mean(0)
                             for label in p["labels"]])
        assert p["best_epoch"] > 0 and not torch.allclose(probe["head.weight"], start)
    # probes are never queries of the evaluation nor training networks of the tokenizer
    for where in [*CATEGORIES.values(), TRAIN_SPLIT]:
        assert all(r["role"] != "probe" for r in cat.rows(where))
    assert build_zoo(load_zoo_config(write_config(tmp_path, probes="grouped")), copy).trained == 0


@pytest.mark.parametrize("section, value, message", [
    ("train", {"max_epochs": 0}, "train.max_epochs must be at least 1, got 0"),
    ("train", {"lr": "fast"}, "train.lr must be float, got 'fast'"),
    ("tasks", {"grouped_fraction": 1.5}, "tasks.grouped_fraction must be at most 1.0, got 1.5"),
    ("tasks", {"ways": 3}, "unknown key 'tasks.ways'; allowed: grouped_fraction, max_ways, min_ways, test_fraction"),
])
def test_zoo_sections_are_validated_on_the_shared_config_layer(section, value, message):
    """The zoo's train: and tasks: sections are igpg.config models: one-line errors naming the file and the key."""
    import yaml

    from igpg.config import Config
    from igpg.zoo.config import parse_zoo_config

    raw = yaml.safe_load((ROOT / "configs" / "zoo" / "tiny.yaml").read_text())
    cfg = parse_zoo_config(raw, "tiny.yaml")
    assert isinstance(cfg.train, Config) and isinstance(cfg.tasks, Config)
    with pytest.raises(IgpgError, match=re.escape(message)):
        parse_zoo_config({**raw, section: {**raw.get(section, {}), **value}}, "tiny.yaml")


@pytest.mark.parametrize("patch, message", [
    ({"lineage": "yes"}, "zoo config 'tiny.yaml': lineage must be bool, got 'yes'"),
    ({"seeds": {"train": []}}, "seeds.train must have at least 1 item"),
    ({"seeds": {"train": [0], "heldout": [-1]}}, "seeds.heldout.0 must be at least 0, got -1"),
    ({"archs": [{"arch": "mlp:*-16-*", "hold": True}]}, "unknown key 'archs.0.hold'; allowed: arch, datasets, heldout"),
    ({"archs": [{"arch": "mlp:*-16-*", "max_tasks": 0}]}, "archs.0.max_tasks must be at least 1, got 0"),
    ({"archs": [{"arch": "mlp:*-16-4"}]}, "archs.0: bad architecture template"),
    ({"datasets": {"digits": {"tasks": 2, "inclde": []}}}, "unknown key 'datasets.digits.inclde'; allowed: include, tasks"),
    ({"datasets": {"digits": {"tasks": 2, "include": [[3, 5, 10]]}}}, "datasets.digits: class 10 is out of range"),
    ({"probes": "some"}, "probes must be one of 'none', 'grouped' or 'all', got 'some'"),
    ({"keep_checkpoints": 1000}, "keep_checkpoints must be at most 100, got 1000"),
])
def test_zoo_top_level_is_validated_on_the_shared_config_layer(patch, message):
    """Every key of a zoo file, not only its flat sections, is read by the config layer (`ZooFile`) or, where a
    check spans keys, by `parse_zoo_config`: one line naming the file and the dotted key."""
    from igpg.zoo.config import parse_zoo_config

    with pytest.raises(IgpgError, match=re.escape(message)):
        parse_zoo_config({**TINY_RAW, **patch}, "tiny.yaml")


def test_zoo_set_reaches_every_key():
    """`--set` reaches the top level, the sections and a dataset's own keys; a path that is not there is refused."""
    cfg = load_zoo_config(TINY, ["seed=3", "train.lr=0.1", "datasets.digits.tasks=3", "seeds.train=[0, 5]"])
    assert (cfg.seed, cfg.train.lr, cfg.datasets[0].tasks, cfg.train_seeds) == (3, 0.1, 3, (0, 5))
    with pytest.raises(IgpgError, match=re.escape("unknown key 'datasets.fashion'; allowed: digits")):
        load_zoo_config(TINY, ["datasets.fashion.tasks=3"])
    with pytest.raises(IgpgError, match=re.escape("unknown key 'seeds.test'; allowed: heldout, train")):
        load_zoo_config(TINY, ["seeds.test=[4]"])
