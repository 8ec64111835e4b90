"""Retrieval: architecture filter and fallback, label-aware ranking, incremental index, splits, locking, bad input."""

import fcntl
import os
import random
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import igpg.retrieval as retrieval
from igpg.arch import ArchSpec
from igpg.errors import IgpgError
from igpg.retrieval import EMBED_DIM, RetrievalIndex, query_vector, retrieve
from igpg.zoo import Catalogue


def copy_zoo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("retrieval", ".lock"))
    return dst


def task_rows(zoo: Path) -> list[dict]:
    cat = Catalogue(zoo)
    try:
        return cat.rows("n.role = 'task'")
    finally:
        cat.close()


@pytest.fixture(scope="module")
def zoo(tiny_zoo, tmp_path_factory) -> Path:
    """A private copy of the tiny zoo, indexed once (opening writes ZOO/retrieval/)."""
    return copy_zoo(tiny_zoo, tmp_path_factory.mktemp("retrieval") / "zoo")


@pytest.fixture(scope="module")
def index(zoo) -> RetrievalIndex:
    return RetrievalIndex.open(zoo)


@pytest.fixture(scope="module")
def rows(zoo) -> list[dict]:
    return task_rows(zoo)


def some_task(rows, kind="subset", ways=3) -> dict:
    return next(r for r in rows if r["kind"] == kind and len(r["labels"]) == ways and r["arch_split"] == "train")


def test_index_holds_every_task_network_and_persists(zoo, index, rows):
    assert sorted(index.net_ids) == sorted(r["net_id"] for r in rows)  # generic networks are not answers
    assert len(task_rows(zoo)) < len(Catalogue(zoo).rows())
    assert (zoo / "retrieval" / "index.faiss").is_file() and index.persisted
    again = RetrievalIndex.open(zoo)
    assert again.added == 0 and not again.rebuilt and again.net_ids == index.net_ids


def test_query_vector_is_unit_and_ranks_order_then_classes_then_wording():
    q = query_vector("digits", [3, 5, 8], "Classify digits 3, 5 and 8")
    assert q.shape == (EMBED_DIM,) and q.dtype == np.float32
    assert abs(float(np.linalg.norm(q)) - 1) < 1e-5
    same = q @ query_vector("digits", [3, 5, 8], "Recognise handwritten 3, 5 or 8 please")
    permuted = q @ query_vector("digits", [8, 3, 5], "Classify digits 3, 5 and 8")
    other = q @ query_vector("digits", [1, 2, 4], "Classify digits 3, 5 and 8")
    other_dataset = q @ query_vector("mnist1d", [3, 5, 8], "Classify digits 3, 5 and 8")
    assert same > permuted > other
    assert other_dataset < 1 - retrieval.PART_WEIGHTS["dataset"] + 1e-5  # only the dataset part is lost
    # a group spreads its weight: ((1, 3), 5) is closer to (1, 5) than to (7, 5)
    g = query_vector("digits", [[1, 3], 5], "x")
    assert g @ query_vector("digits", [1, 5], "x") > g @ query_vector("digits", [7, 5], "x")


def test_exact_arch_hits_have_the_query_arch(index, rows):
    rng = random.Random(0)
    archs = sorted({r["arch"] for r in rows})
    outputs = sorted({len(r["labels"]) for r in rows})
    answered = 0
    for _ in range(30):
        ways = rng.choice(outputs)
        classes = rng.sample(range(10), ways)
        spec = ArchSpec.parse(rng.choice(archs)).with_outputs(ways)
        if rng.random() < 0.3:
            spec = spec.with_hidden(tuple(rng.choice([8, 16, 20, 24, 32]) for _ in range(rng.randint(1, 3))))
        try:
            hits = index.search("digits", classes, str(spec), "Classify some digits", hits=rng.randint(1, 8),
                                splits=rng.choice(["all", "train"]))
        except IgpgError as e:
            assert "no compatible network" in str(e)
            continue
        answered += 1
        assert hits
        for h in hits:
            got = ArchSpec.parse(h.arch)
            assert (got.family, got.input_dim, got.num_outputs) == (spec.family, spec.input_dim, spec.num_outputs)
            assert h.exact_arch == (h.arch == str(spec)) == (h.arch_distance == 0)
        assert [h.arch_distance for h in hits] == sorted(h.arch_distance for h in hits)  # exact ones first
    assert answered >= 25


def test_exact_classes_come_first_and_another_order_says_labels_differ(index, rows):
    task = some_task(rows)
    arch = task["arch"]
    mine = [r["net_id"] for r in rows if r["task_id"] == task["task_id"] and r["arch"] == arch]
    hits = index.search("digits", task["labels"], arch, "Wording that matches nothing in particular", hits=len(mine) + 2)
    assert {h.net_id for h in hits[:len(mine)]} == set(mine)
    assert all(h.labels_match and h.exact_arch and h.labels == task["labels"] for h in hits[:len(mine)])
    assert not any(h.labels_match for h in hits[len(mine):])

    permuted = task["labels"][1:] + task["labels"][:1]
    hits = index.search("digits", permuted, arch, task["instruction"], hits=len(mine))
    assert {h.net_id for h in hits} == set(mine)  # the same classes in another order still outrank other tasks
    for h in hits:
        assert not h.labels_match
        assert f"labels differ: {task['labels']} vs query {permuted}" in h.describe()


def test_fallback_to_nearest_shape_of_the_same_family(index, rows):
    task = some_task(rows)
    query = ArchSpec.parse(task["arch"]).with_hidden((20,))  # the tiny zoo has widths 16 and 24
    hits = index.search("digits", task["labels"], str(query), task["instruction"], hits=50)
    assert hits and not any(h.exact_arch for h in hits)
    for h in hits:
        spec = ArchSpec.parse(h.arch)
        assert (spec.family, spec.input_dim, spec.num_outputs) == ("mlp", 64, query.num_outputs)
        assert "arch not exact" in h.describe()
    assert hits[0].arch == str(query.with_hidden((24,)))  # |log2(24/20)| < |log2(16/20)|
    assert [h.arch_distance for h in hits] == sorted(h.arch_distance for h in hits)
    assert hits[0].labels_match
    with pytest.raises(IgpgError, match="no compatible network .* searched"):
        index.search("digits", task["labels"], "cnn:1x8x8-8-3", "x")  # no cnn in the tiny zoo


def test_splits_train_and_min_accuracy(index, rows):
    by_id = {r["net_id"]: r for r in rows}
    for task in {r["task_id"]: r for r in rows}.values():
        for splits in ("train", "all"):
            try:
                hits = index.search("digits", task["labels"], task["arch"], task["instruction"], hits=100, splits=splits)
            except IgpgError:
                assert splits == "train"
                continue
            heldout = [h for h in hits if h.heldout]
            if splits == "train":
                assert not heldout
                assert all((by_id[h.net_id]["task_split"], by_id[h.net_id]["arch_split"], by_id[h.net_id]["seed_split"])
                           == ("train",) * 3 for h in hits)
    assert any(h.heldout for h in index.search("digits", task["labels"], task["arch"], "x", hits=100))
    task = some_task(rows)
    accs = sorted(r["test_acc"] for r in rows if len(r["labels"]) == 3 and r["arch"] == task["arch"])
    floor = accs[len(accs) // 2]
    hits = index.search("digits", task["labels"], task["arch"], "x", hits=100, min_accuracy=floor)
    assert hits and all(h.test_acc >= floor for h in hits)
    assert len(hits) < len(index.search("digits", task["labels"], task["arch"], "x", hits=100))


def test_backends_agree_and_numpy_serves_without_faiss(zoo, index, rows, monkeypatch):
    numpy_index = RetrievalIndex.open(zoo, backend="numpy")
    assert numpy_index.backend == "numpy"
    rng = random.Random(1)
    for _ in range(10):
        task = rng.choice(rows)
        arch = rng.choice([task["arch"], str(ArchSpec.parse(task["arch"]).with_hidden((20, 20)))])
        args = ("digits", task["labels"], arch, rng.choice([task["instruction"], "digits please"]))
        a, b = index.search(*args, hits=7), numpy_index.search(*args, hits=7)
        assert [h.net_id for h in a] == [h.net_id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
    monkeypatch.setattr(retrieval, "_import_faiss", lambda: None)
    plain = RetrievalIndex.open(zoo)  # faiss missing: rebuilt in memory, nothing written
    assert plain.backend == "numpy" and not plain.persisted
    task = some_task(rows)
    args = ("digits", task["labels"], task["arch"], task["instruction"])
    assert [h.net_id for h in plain.search(*args)] == [h.net_id for h in index.search(*args)]


def test_incremental_update_embeds_only_new_networks(tiny_zoo, tmp_path, index, monkeypatch):
    zoo = copy_zoo(tiny_zoo, tmp_path / "zoo")
    db = sqlite3.connect(zoo / "catalogue.sqlite")
    db.row_factory = sqlite3.Row
    removed = [dict(r) for r in db.execute("SELECT * FROM networks WHERE role='task' ORDER BY sha256 LIMIT 7")]
    db.executemany("DELETE FROM networks WHERE net_id=?", [(r["net_id"],) for r in removed])
    db.commit()
    for r in removed:
        (zoo / r["file"]).rename(tmp_path / Path(r["file"]).name)
    first = RetrievalIndex.open(zoo)
    assert first.rebuilt and len(first) == len(index) - 7

    for r in removed:  # the zoo grows back
        (tmp_path / Path(r["file"]).name).rename(zoo / r["file"])
    cols = list(removed[0])
    db.executemany(f"INSERT INTO networks ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                   [tuple(r[c] for c in cols) for r in removed])
    db.commit()
    db.close()
    embedded = []
    real = retrieval.entry_vectors
    monkeypatch.setattr(retrieval, "entry_vectors", lambda rs: embedded.extend(r["net_id"] for r in rs) or real(rs))
    grown = RetrievalIndex.open(zoo)
    assert sorted(embedded) == sorted(r["net_id"] for r in removed)
    assert grown.added == 7 and not grown.rebuilt and grown.persisted
    assert grown.net_ids == first.net_ids + sorted(r["net_id"] for r in removed)
    assert RetrievalIndex.open(zoo).added == 0  # the update was stored
    for task in {r["task_id"]: r for r in task_rows(zoo)}.values():  # same answers as the index built at once
        args = ("digits", task["labels"], task["arch"], task["instruction"])
        a, b = grown.search(*args, hits=6), index.search(*args, hits=6)
        assert [h.net_id for h in a] == [h.net_id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


def test_rebuild_when_networks_vanish_recipe_changes_or_file_is_corrupt(tiny_zoo, tmp_path, monkeypatch):
    zoo = copy_zoo(tiny_zoo, tmp_path / "zoo")
    full = RetrievalIndex.open(zoo)
    with sqlite3.connect(zoo / "catalogue.sqlite") as db:
        db.execute("DELETE FROM networks WHERE net_id=?", (full.net_ids[3],))
    smaller = RetrievalIndex.open(zoo)
    assert smaller.rebuilt and len(smaller) == len(full) - 1 and full.net_ids[3] not in smaller.net_ids
    monkeypatch.setattr(retrieval, "RECIPE", retrieval.RECIPE + " changed")
    assert RetrievalIndex.open(zoo).rebuilt
    assert not RetrievalIndex.open(zoo).rebuilt
    (zoo / "retrieval" / "index.faiss").write_bytes(b"not an index")
    repaired = RetrievalIndex.open(zoo)
    assert repaired.rebuilt and repaired.persisted and len(repaired) == len(smaller)


def test_unwritable_zoo_keeps_the_index_in_memory(tiny_zoo, tmp_path):
    zoo = copy_zoo(tiny_zoo, tmp_path / "zoo")
    (zoo / "retrieval").write_text("in the way")  # the index directory cannot be created (root ignores chmod)
    idx = RetrievalIndex.open(zoo)
    assert not idx.persisted and len(idx) == len(task_rows(zoo))
    task = task_rows(zoo)[0]
    assert idx.search("digits", task["labels"], task["arch"], task["instruction"])


def test_second_writer_waits_for_the_lock(tiny_zoo, tmp_path):
    zoo = copy_zoo(tiny_zoo, tmp_path / "zoo")
    (zoo / "retrieval").mkdir()
    fd = os.open(zoo / "retrieval" / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    result = {}
    thread = threading.Thread(target=lambda: result.update(index=RetrievalIndex.open(zoo)))
    try:
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive() and not (zoo / "retrieval" / "ids.json").exists()
    finally:
        os.close(fd)
    thread.join(timeout=120)
    assert result["index"].persisted and (zoo / "retrieval" / "ids.json").is_file()


def test_hit_loads_its_network_and_retrieve_convenience(zoo, rows):
    task = some_task(rows)
    hits = retrieve(zoo, task["instruction"], "digits", ",".join(map(str, task["labels"])), task["arch"], hits=2)
    assert len(hits) == 2 and hits[0].labels_match and Path(hits[0].file).is_absolute()
    net = hits[0].load()
    assert sum(p.numel() for p in net.parameters()) == ArchSpec.parse(task["arch"]).n_params
    assert "\n" not in hits[0].describe() and hits[0].net_id in hits[0].describe()
    assert retrieve(zoo, "", "digits", task["labels"], task["arch"], hits=1)  # empty instruction: default wording


@pytest.mark.parametrize("change, match", [
    ({"dataset": "nope"}, "unknown dataset"),
    ({"classes": [3, 3]}, "appears in two labels"),
    ({"classes": [12, 3]}, "out of range"),
    ({"classes": "a,b"}, "bad class"),
    ({"arch": "mlp:40-16-3"}, "takes inputs of size 40"),
    ({"arch": "mlp:64-16-4"}, "has 4 outputs but the task has 3"),
    ({"arch": "rnn:64-3"}, "unknown family"),
    ({"hits": 0}, "hits .* must be an integer >= 1"),
    ({"hits": 2.5}, "hits .* must be an integer >= 1"),
    ({"splits": "test"}, "unknown splits"),
    ({"min_accuracy": 1.5}, "min_accuracy must be"),
    ({"instruction": "   "}, None),  # falls back to the default wording, no error
])
def test_bad_queries_raise_one_line_errors(index, change, match):
    query = {"dataset": "digits", "classes": [3, 5, 8], "arch": "mlp:64-16-3", "instruction": "digits", "hits": 3,
             "splits": "all", "min_accuracy": None, **change}
    if match is None:
        assert index.search(**query)
        return
    with pytest.raises(IgpgError, match=match) as err:
        index.search(**query)
    assert "\n" not in str(err.value)


def test_bad_zoo_or_backend(tmp_path, zoo):
    for bad, match in [(tmp_path / "missing", "not a zoo"), (tmp_path, "not a zoo")]:
        with pytest.raises(IgpgError, match=match):
            RetrievalIndex.open(bad)
    with pytest.raises(IgpgError, match="unknown retrieval backend"):
        RetrievalIndex.open(zoo, backend="gpu")
