"""Batch export: request validation per line, strict-loading files, manifest, resume, lock, batching, load()."""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from igpg.arch import ArchSpec
from igpg.data import Task, load_dataset
from igpg.errors import IgpgError
from igpg.evaluation.accuracy import evaluate
from igpg.export import ExportRequest, export_networks, load, parse_requests, read_manifest, read_metadata
from igpg.io import save_weights, sha256_file
from igpg.zoo.catalogue import exclusive_lock


class RandomInitProducer:
    """A real baseline: `spec.build()` under `torch.manual_seed(seed)` (what generate gives with a random-init
    model). Records every batch it is given."""

    def __init__(self, refuse: str | None = None):
        self.batches: list[list[str]] = []
        self.refuse = refuse  # a request name this producer rejects as bad input, failing any batch holding it

    def __call__(self, batch):
        self.batches.append([r.name for r in batch])
        if any(r.name == self.refuse for r in batch):
            raise IgpgError(f"cannot produce {self.refuse}")
        out = []
        for r in batch:
            torch.manual_seed(r.seed)
            out.append((r.spec.build(), {"igpg.generator": "random-init", "igpg.source": "random-init"}))
        return out


def prototype_producer(batch):
    """Deterministic, trains nothing: mlp:D-D-K with an identity hidden layer and a nearest-class-mean head
    (logit_i = mu_i . x - |mu_i|^2 / 2), the means taken over the task's train split."""
    out = []
    for r in batch:
        data = r.task.relabel(load_dataset(r.dataset).train)
        mu = torch.stack([data.x[data.y == i].mean(0) for i in range(r.task.num_labels)])  # (K, D)
        net = r.spec.build()
        with torch.no_grad():
            net.hidden[0].weight.copy_(torch.eye(r.spec.input_dim))
            net.hidden[0].bias.zero_()
            net.head.weight.copy_(mu)
            net.head.bias.copy_(-0.5 * (mu * mu).sum(1))
        out.append((net, {"igpg.generator": "prototype"}))
    return out


def line(name, classes=(3, 5, 8), arch="mlp:64-16-3", seed=0, **extra):
    req = {"name": name, "instruction": f"Classify digits {classes}", "dataset": "digits",
           "classes": list(classes), "arch": arch, "seed": seed, **extra}
    return json.dumps(req)


VALID = {  # name -> line number in MIXED
    "n1": 2, "odd_even": 3, "conv-1.b": 4, "n4": 6,
}
MIXED = [
    "# requests for the export test",  # 1
    line("n1"),  # 2
    line("odd_even", classes=[[1, 3, 5, 7, 9], [0, 2, 4, 6, 8]], arch="mlp:64-8-2", seed=3),  # 3
    line("conv-1.b", classes=[0, 1, 2], arch="cnn:1x8x8-4-3"),  # 4
    "",  # 5
    line("n4", classes=[8, 5, 3], seed=1),  # 6
    '{"name": "broken", "arch": ',  # 7 bad JSON
    json.dumps({"name": "nokey", "instruction": "x", "dataset": "digits", "classes": [1, 2]}),  # 8 missing arch
    line("unknown", colour="red"),  # 9 unknown key
    line("badarch", arch="mlp:64-x-3"),  # 10
    line("misfit", arch="mlp:40-16-3"),  # 11 input size 40 is not digits' 64
    line("range", classes=[3, 12]),  # 12 class 12 out of range
    line("../x"),  # 13
    line("/abs"),  # 14
    line("a/b"),  # 15
    line(""),  # 16
    line(".hidden"),  # 17
    line("n1", seed=9),  # 18 duplicate of line 2
    line("negseed", seed=-1),  # 19
    '{"name": "twice", "name": "again"}',  # 20 duplicate key
]
INVALID = {7: None, 8: "nokey", 9: "unknown", 10: "badarch", 11: "misfit", 12: "range", 13: "../x", 14: "/abs",
           15: "a/b", 16: "", 17: ".hidden", 18: "n1", 19: "negseed", 20: None}


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every path under root except `skip` and its subtree, with size and mtime."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        if Path(dirpath) == skip:
            dirs[:] = []
            continue
        for f in files + dirs:
            if Path(dirpath, f) == skip:
                continue
            st = os.lstat(Path(dirpath) / f)
            out[str(Path(dirpath, f).relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    requests = root / "requests.jsonl"
    requests.write_text("\n".join(MIXED) + "\n")
    out = root / "out" / "nested"  # created, parents too
    before = snapshot(root, out.parent)
    producer = RandomInitProducer()
    report = export_networks(requests, out, producer, batch_size=2, generator_name="fallback")
    return root, requests, out, report, producer, before


def test_mixed_file_exports_valid_lines_and_reports_each_invalid_one(mixed):
    root, _, out, report, producer, before = mixed
    assert sorted(report.exported) == sorted(VALID) and report.skipped == [] and report.redone == []
    assert {e.line: e.name for e in report.failed} == INVALID
    assert not report.ok
    assert all("\n" not in e.message and e.message for e in report.failed)
    msgs = {e.line: e.message for e in report.failed}
    assert "JSON" in msgs[7] and "missing key(s) arch" in msgs[8] and "unknown key(s) colour" in msgs[9]
    assert "bad architecture" in msgs[10] and "size 64" in msgs[11] and "out of range" in msgs[12]
    assert all("bad name" in msgs[n] for n in (13, 14, 15, 16, 17))
    assert "duplicate name 'n1'" in msgs[18] and "line 2" in msgs[18] and "seed" in msgs[19]
    assert "given twice" in msgs[20]
    # nothing outside OUT changed; OUT holds exactly the networks, the manifest and the lock
    assert snapshot(root, out.parent) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["nested"]
    assert sorted(p.name for p in out.iterdir()) == sorted([".lock", "manifest.jsonl"] + [f"{n}.safetensors" for n in VALID])


def test_exported_files_load_strictly_with_their_metadata(mixed):
    _, requests, out, report, _, _ = mixed
    reqs, errors = parse_requests(requests)
    assert [r.name for r in reqs] == list(VALID) and [r.line for r in reqs] == list(VALID.values())
    assert len(errors) == len(INVALID)
    for r in reqs:
        f = out / f"{r.name}.safetensors"
        spec = ArchSpec.parse(r.arch)
        spec.build().load_state_dict(load_file(f), strict=True)
        net = load(f)
        torch.manual_seed(r.seed)  # the file holds exactly what the producer made
        want = spec.build().state_dict()
        assert all(torch.equal(net.state_dict()[k], want[k]) for k in want)
        meta = net.igpg_metadata
        assert meta == read_metadata(f)
        assert meta["igpg.arch"] == str(spec) and meta["igpg.dataset"] == "digits"
        assert meta["igpg.instruction"] == r.instruction and meta["igpg.seed"] == str(r.seed)
        assert meta["igpg.generator"] == "random-init" and meta["igpg.source"] == "random-init"
        assert Task.from_classes("digits", json.loads(meta["igpg.classes"])) == Task.from_classes("digits", r.classes)
    assert json.loads(read_metadata(out / "odd_even.safetensors")["igpg.classes"]) == [[1, 3, 5, 7, 9], [0, 2, 4, 6, 8]]


def test_manifest_lists_exactly_the_exported_files(mixed):
    _, _, out, report, _, _ = mixed
    entries = read_manifest(out)
    assert [e["name"] for e in entries] == sorted(report.exported)
    for e in entries:
        f = out / e["file"]
        assert e["file"] == f"{e['name']}.safetensors" and e["sha256"] == sha256_file(f)
        assert e["arch"] == read_metadata(f)["igpg.arch"] and 0 <= e["support_acc"] <= 1 and 0 <= e["test_acc"] <= 1


def test_batches_hold_one_arch_and_at_most_batch_size(mixed):
    _, _, _, report, producer, _ = mixed
    reqs, _ = parse_requests(mixed[1])
    arch = {r.name: str(r.spec) for r in reqs}
    assert all(1 <= len(b) <= 2 and len({arch[n] for n in b}) == 1 for b in producer.batches)
    assert sorted(n for b in producer.batches for n in b) == sorted(VALID)
    assert producer.batches[0] == ["n1", "n4"]  # grouped by arch, in file order


def test_batches_chunk_large_groups_and_report_progress(tmp_path):
    reqs = [json.loads(line(f"r{i}", arch=["mlp:64-4-3", "mlp:64-6-3"][i % 2], seed=i)) for i in range(7)]
    producer, seen = RandomInitProducer(), []
    report = export_networks(reqs, tmp_path, producer, batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert report.ok and len(report.exported) == 7
    assert producer.batches == [["r0", "r2", "r4"], ["r6"], ["r1", "r3", "r5"]]
    assert seen == [(3, 7), (4, 7), (7, 7)]


def test_support_and_test_accuracy_are_measured_on_the_task(tmp_path):
    reqs = [{"name": "proto", "instruction": "Tell 3, 5 and 8 apart", "dataset": "digits", "classes": [3, 5, 8],
             "arch": "mlp:64-64-3"}]
    report = export_networks(reqs, tmp_path, prototype_producer)
    (entry,) = read_manifest(tmp_path)
    net = load(tmp_path / "proto.safetensors")
    assert entry["support_acc"] == round(evaluate(net, "digits", [3, 5, 8], split="train"), 6) > 0.8
    assert entry["test_acc"] == round(evaluate(net, "digits", [3, 5, 8], split="test"), 6) > 0.8
    assert entry["generator"] == "prototype" and report.ok


def three(tmp_path, producer=None):
    reqs = [json.loads(line(n, seed=i)) for i, n in enumerate(["a", "b", "c"])]
    return reqs, export_networks(reqs, tmp_path, producer or RandomInitProducer(), batch_size=2)


def test_resume_skips_complete_files_and_redoes_damaged_ones(tmp_path):
    reqs, first = three(tmp_path)
    shas = {e["name"]: e["sha256"] for e in read_manifest(tmp_path)}
    again = RandomInitProducer()
    report = export_networks(reqs, tmp_path, again)
    assert report.skipped == ["a", "b", "c"] and report.exported == [] and again.batches == [] and report.ok
    a = tmp_path / "a.safetensors"
    a.write_bytes(a.read_bytes()[:-7])  # truncated
    (tmp_path / "c.safetensors").unlink()
    report = export_networks(reqs, tmp_path, again)
    assert sorted(report.redone) == ["a", "c"] == sorted(report.exported) and report.skipped == ["b"]
    assert again.batches == [["a", "c"]]
    assert {e["name"]: e["sha256"] for e in read_manifest(tmp_path)} == shas  # deterministic bytes
    reqs[1]["seed"] = 7  # a changed request under the same name is redone too
    assert export_networks(reqs, tmp_path, again).redone == ["b"]


def test_failed_redo_unlists_the_damaged_file(tmp_path):
    reqs, _ = three(tmp_path)
    (tmp_path / "b.safetensors").write_bytes(b"garbage")
    report = export_networks(reqs, tmp_path, RandomInitProducer(refuse="b"))
    assert [e.name for e in report.failed] == ["b"] and report.redone == [] and not report.ok
    assert [e["name"] for e in read_manifest(tmp_path)] == ["a", "c"]


def test_stray_temporaries_go_and_foreign_files_stay(tmp_path):
    (tmp_path / ".a.safetensors.igpg-x1y2z3w4.tmp").write_bytes(b"half")  # left by a killed export
    (tmp_path / ".manifest.jsonl.igpg-k3k3k3k3.tmp").write_text("{")
    (tmp_path / ".notes.safetensors.backup.tmp").write_text("a user's, named almost like ours")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "zzz.safetensors").write_bytes(b"not a request")
    (tmp_path / "a.safetensors").write_bytes(b"named like a request, not in the manifest")
    reqs, report = three(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".lock", ".notes.safetensors.backup.tmp", "a.safetensors", "b.safetensors", "c.safetensors",
                     "manifest.jsonl", "notes.txt", "zzz.safetensors"]
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "zzz.safetensors").read_bytes() == b"not a request"
    # the user's a.safetensors is not overwritten: its request fails, the others are exported
    assert (tmp_path / "a.safetensors").read_bytes() == b"named like a request, not in the manifest"
    assert [e.name for e in report.failed] == ["a"] and "--force" in report.failed[0].message
    assert report.exported == ["b", "c"] and [e["name"] for e in read_manifest(tmp_path)] == ["b", "c"]
    report = export_networks(reqs, tmp_path, RandomInitProducer(), force=True)  # asked for: replaced
    assert report.exported == ["a"] and report.ok
    load(tmp_path / "a.safetensors")


def test_producer_refusal_fails_one_request_not_its_batch(tmp_path):
    producer = RandomInitProducer(refuse="b")
    _, report = three(tmp_path, producer)
    assert report.exported == ["a", "c"] and [(e.line, e.name) for e in report.failed] == [(2, "b")]
    assert "cannot produce b" in report.failed[0].message
    assert producer.batches == [["a", "b"], ["a"], ["b"], ["c"]]  # the refused batch, then one at a time


def test_non_finite_or_mismatched_networks_are_refused(tmp_path):
    def bad(batch):
        nan = batch[0].spec.build()
        with torch.no_grad():
            nan.head.bias[0] = float("nan")
        return [(nan, {}), (ArchSpec.parse("mlp:64-5-3").build(), {}), (batch[2].spec.build(), {"igpg.seed": "99"})]

    report = export_networks([json.loads(line(n)) for n in "xyz"], tmp_path, bad, batch_size=3)
    msgs = {e.name: e.message for e in report.failed}
    assert "NaN" in msgs["x"] and "does not match" in msgs["y"] and "igpg.seed" in msgs["z"]
    assert not any((tmp_path / f"{n}.safetensors").exists() for n in "xyz")


def test_second_export_on_the_same_dir_is_refused(tmp_path):
    producer = RandomInitProducer()
    with exclusive_lock(tmp_path, "export"):
        with pytest.raises(IgpgError, match="another export is running"):
            export_networks([json.loads(line("a"))], tmp_path, producer)
    assert producer.batches == [] and not (tmp_path / "a.safetensors").exists()


def test_unusable_out_dirs_are_refused(tmp_path):
    reqs = [json.loads(line("a"))]
    (tmp_path / "file").write_text("x")
    with pytest.raises(IgpgError, match="is a file"):
        export_networks(reqs, tmp_path / "file", RandomInitProducer())
    with pytest.raises(IgpgError, match="parent is a file"):
        export_networks(reqs, tmp_path / "file" / "sub", RandomInitProducer())
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        with pytest.raises(IgpgError, match="cannot write"):
            export_networks(reqs, locked, RandomInitProducer())


def test_request_objects_validate_themselves():
    r = ExportRequest("n", "  Classify   3 and 5 ", "digits", [3, 5], "MLP:64-8-2")
    assert r.instruction == "Classify 3 and 5" and str(r.spec) == "mlp:64-8-2" and r.task.num_labels == 2
    assert ExportRequest.from_dict(r.as_dict()) == ExportRequest("n", r.instruction, "digits", [3, 5], "mlp:64-8-2")
    for bad in (dict(seed=True), dict(seed="1"), dict(classes="3,5"), dict(name="a" * 129), dict(name="a..b")):
        with pytest.raises(IgpgError):
            ExportRequest.from_dict({**r.as_dict(), **bad})


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("load")
    export_networks([json.loads(line("good"))], d, RandomInitProducer())
    return d / "good.safetensors"


@pytest.mark.parametrize("damage", ["truncated", "empty", "no_arch", "mismatch", "bad_arch"])
def test_load_refuses_damaged_files_in_one_line(good_file, tmp_path, damage):
    f = tmp_path / "bad.safetensors"
    state, meta = load_file(good_file), read_metadata(good_file)
    if damage == "truncated":
        f.write_bytes(good_file.read_bytes()[:-16])
    elif damage == "empty":
        f.write_bytes(b"")
    elif damage == "no_arch":
        save_weights(f, state, {k: v for k, v in meta.items() if k != "igpg.arch"})
    elif damage == "mismatch":
        save_weights(f, state, {**meta, "igpg.arch": "mlp:64-8-3"})
    else:
        save_weights(f, state, {**meta, "igpg.arch": "mlp:64"})
    with pytest.raises(IgpgError) as e:
        load(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)
    if damage == "mismatch":
        assert "hidden.0.weight is [16, 64], expected [8, 64]" in str(e.value)


def test_a_request_without_classes_reads_them_from_the_instruction(tmp_path):
    reqs = [{"name": "three_eight", "instruction": "Is it a three or an eight?", "dataset": "digits",
             "arch": "mlp:64-64-2"},
            {"name": "nonsense", "instruction": "asdf qwerty zxcv", "dataset": "digits", "arch": "mlp:64-64-2"},
            {"name": "given", "instruction": "Is it a three or an eight?", "dataset": "digits", "classes": [8, 3],
             "arch": "mlp:64-64-2"}]
    report = export_networks(reqs, tmp_path, prototype_producer)
    assert [e.name for e in report.failed] == ["nonsense"]  # refused alone, the others exported
    assert 'give them as "classes"' in report.failed[0].message and "--classes" not in report.failed[0].message
    entries = {e["name"]: e for e in read_manifest(tmp_path)}
    assert entries["three_eight"]["classes"] == [3, 8] and entries["given"]["classes"] == [8, 3]
    assert read_metadata(tmp_path / "three_eight.safetensors")["igpg.labels_from"] == "instruction"
    assert "igpg.labels_from" not in read_metadata(tmp_path / "given.safetensors")
    assert entries["three_eight"]["test_acc"] > 0.9  # measured on the labels read
