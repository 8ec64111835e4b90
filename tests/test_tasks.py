"""Tasks: parsing and validation, stable ids, relabelling, the seeded sampler, split assignment, templates."""

import json
import os
import re
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from igpg.data import Dataset, Split, Task, assign_split, default_instruction, instructions, load_dataset
from igpg.data import named_groupings, sample_tasks
from igpg.data.tasks import label_texts, load_templates
from igpg.errors import IgpgError

ODD_EVEN = ((1, 3, 5, 7, 9), (0, 2, 4, 6, 8))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _fake_dataset(name: str, num_classes: int = 10, class_names=None) -> Dataset:
    """A dataset with the metadata of `name` and no real samples: enough to render instructions."""
    empty = Split(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    names = class_names or tuple(f"class{i}" for i in range(num_classes))
    return Dataset(name, (1, 2, 2), num_classes, names, f"{name} things", empty, empty, empty)


# --- from_classes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "classes, labels",
    [
        ([3, 5, 8], ((3,), (5,), (8,))),
        ("3,5,8", ((3,), (5,), (8,))),
        (" 3, 5 ,8 ", ((3,), (5,), (8,))),
        ([[3], [5], [8]], ((3,), (5,), (8,))),
        ([[9, 7, 5, 3, 1], [0, 2, 4, 6, 8]], ODD_EVEN),
        ("1+3+5+7+9,0+2+4+6+8", ODD_EVEN),
        ("[[1,3,5,7,9],[0,2,4,6,8]]", ODD_EVEN),
        ([[0, 1], 2], ((0, 1), (2,))),
        ((np.int64(4), np.int32(2)), ((4,), (2,))),
    ],
)
def test_from_classes_accepts_every_documented_form(classes, labels):
    task = Task.from_classes("digits", classes)
    assert task.labels == labels and task.dataset == "digits" and task.instruction == ""


@pytest.mark.parametrize(
    "classes, fragment",
    [
        ([3, 10], "10"),
        ([-1, 3], "-1"),
        ([3, 3], "3"),
        ([[1, 2], [2, 3]], "2"),
        ([[1, 1], [2]], "[1, 1]"),
        ([3], "[3]"),
        ([], "[]"),
        ([[], [1]], "[[], [1]]"),
        ([True, 2], "True"),
        ([3.0, 5], "3.0"),
        ("3,,5", "''"),
        ("a,b", "'a'"),
        ("3,-1", "'-1'"),
        ("", "no classes"),
        ("[1,", "JSON"),
        ([[[1]], [2]], "[1]"),
        (3, "3"),
    ],
)
def test_from_classes_rejects_bad_input_in_one_line(classes, fragment):
    with pytest.raises(IgpgError) as e:
        Task.from_classes("digits", classes)
    message = str(e.value)
    assert "\n" not in message and fragment in message


def test_from_classes_validates_the_dataset():
    with pytest.raises(IgpgError, match="unknown dataset"):
        Task.from_classes("digts", [1, 2])
    assert Task.from_classes("torchvision:CIFAR100", [99, 0]).labels == ((99,), (0,))
    with pytest.raises(IgpgError, match="0..9"):
        Task.from_classes("torchvision:CIFAR10", [10, 0])


def test_from_classes_takes_a_dataset_object(digits):
    assert Task.from_classes(digits, "3,5") == Task.from_classes("digits", [3, 5])


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(10)), st.lists(st.integers(0, 3), min_size=10, max_size=10), st.integers(2, 10))
def test_classes_json_round_trips(order, group_of, used):
    groups: dict[int, list[int]] = {}
    for cls, g in zip(order[:used], group_of[:used]):
        groups.setdefault(g, []).append(cls)
    classes = [g[0] if len(g) == 1 and i % 2 else g for i, g in enumerate(groups.values())]
    if len(classes) < 2:
        return
    task = Task.from_classes("digits", classes)
    again = Task.from_classes("digits", json.loads(task.classes_json()))
    assert again == task and again.task_id == task.task_id


def test_kind_num_labels_and_classes_json():
    subset, grouped = Task.from_classes("digits", [3, 5, 8]), Task.from_classes("digits", list(ODD_EVEN))
    assert (subset.kind, subset.num_labels, subset.classes_json()) == ("subset", 3, "[3,5,8]")
    assert (grouped.kind, grouped.num_labels) == ("grouped", 2)
    assert grouped.classes_json() == "[[1,3,5,7,9],[0,2,4,6,8]]"
    assert Task.from_classes("digits", [[0, 1], 2]).classes_json() == "[[0,1],2]"
    assert Task.from_classes("digits", [[0], [1]]).kind == "subset"


# --- task_id ---------------------------------------------------------------------------------------------------


def test_task_id_format():
    assert re.fullmatch(r"digits-3\.5\.8-[0-9a-f]{8}", Task.from_classes("digits", [3, 5, 8]).task_id)
    assert re.fullmatch(r"digits-13579\.02468-[0-9a-f]{8}", Task.from_classes("digits", list(ODD_EVEN)).task_id)
    cifar = Task.from_classes("torchvision:CIFAR100", [[1, 12], [11, 2]]).task_id
    assert re.fullmatch(r"torchvision_CIFAR100-1\+12\.2\+11-[0-9a-f]{8}", cifar)
    long_id = Task.from_classes("torchvision:CIFAR100", list(range(100))).task_id
    assert len(long_id) < 80


def test_task_id_depends_on_dataset_and_labels_only():
    a = Task.from_classes("digits", [3, 5, 8], instruction="one wording")
    assert a.task_id == Task.from_classes("digits", [3, 5, 8], instruction="another").task_id
    assert a.task_id != Task.from_classes("digits", [5, 3, 8]).task_id
    assert a.task_id != Task.from_classes("mnist", [3, 5, 8]).task_id
    assert Task.from_classes("digits", "1+3,0+2").task_id != Task.from_classes("digits", "0+2,1+3").task_id


def test_task_id_and_sampler_are_stable_across_processes(digits):
    script = (
        "from igpg.data import Task, load_dataset, sample_tasks\n"
        "print(Task.from_classes('digits', [3, 5, 8]).task_id)\n"
        "print(Task.from_classes('digits', '1+3+5+7+9,0+2+4+6+8').task_id)\n"
        "print(','.join(t.task_id for t in sample_tasks(load_dataset('digits'), 30, 7)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.split()
    assert lines[0] == Task.from_classes("digits", [3, 5, 8]).task_id
    assert lines[1] == Task.from_classes("digits", list(ODD_EVEN)).task_id
    assert lines[2] == ",".join(t.task_id for t in sample_tasks(digits, 30, 7))


# --- relabel ---------------------------------------------------------------------------------------------------


def test_relabel_subset_keeps_only_task_classes(digits):
    split = digits.test
    task = Task.from_classes("digits", [8, 3, 5])
    out = task.relabel(split)
    counts = split.y.bincount(minlength=10)
    assert out.y.bincount().tolist() == [int(counts[8]), int(counts[3]), int(counts[5])]
    assert out.x.shape == (len(out), digits.num_features)
    keep = torch.isin(split.y, torch.tensor([3, 5, 8]))
    mapping = {8: 0, 3: 1, 5: 2}
    assert torch.equal(out.x, split.x[keep])  # same samples, same order
    assert out.y.tolist() == [mapping[c] for c in split.y[keep].tolist()]


def test_relabel_grouped_counts(digits):
    split = digits.train
    counts = split.y.bincount(minlength=10)
    out = Task.from_classes("digits", list(ODD_EVEN)).relabel(split)
    assert len(out) == len(split)
    assert out.y.bincount().tolist() == [int(counts[list(ODD_EVEN[0])].sum()), int(counts[list(ODD_EVEN[1])].sum())]
    mixed = Task.from_classes("digits", [[0, 1], 2]).relabel(split)
    assert mixed.y.bincount().tolist() == [int(counts[0] + counts[1]), int(counts[2])]
    assert set(mixed.y.tolist()) == {0, 1}


# --- sampler ---------------------------------------------------------------------------------------------------


def test_sampler_is_deterministic_and_distinct(digits):
    a, b = sample_tasks(digits, 200, 3), sample_tasks(digits, 200, 3)
    assert [t.task_id for t in a] == [t.task_id for t in b]
    assert len({t.task_id for t in a}) == 200
    assert [t.task_id for t in sample_tasks(digits, 200, 4)] != [t.task_id for t in a]


def test_sampler_ways_fraction_and_order(digits):
    tasks = sample_tasks(digits, 300, 0, min_ways=3, max_ways=6, grouped_fraction=0.25)
    grouped = [t for t in tasks if t.kind == "grouped"]
    subset = [t for t in tasks if t.kind == "subset"]
    assert len(grouped) == 75
    assert all(3 <= t.num_labels <= 6 for t in subset) and {t.num_labels for t in subset} == {3, 4, 5, 6}
    assert all(t.num_labels == 3 for t in grouped)  # random groupings have 2-3 groups, clipped to min_ways=3
    assert sum(t.labels != tuple(sorted(t.labels)) for t in subset) > 0.5 * len(subset)  # class order varies
    grouped_2way = [t for t in sample_tasks(digits, 200, 0, grouped_fraction=1.0)]
    named = set(named_groupings(digits).values())
    assert any(t.labels in named for t in grouped_2way) and any(t.labels not in named for t in grouped_2way)
    assert sum(t.num_labels == 2 for t in grouped_2way) > 20 and all(t.num_labels <= 3 for t in grouped_2way)


def test_sampler_can_exhaust_a_small_space_and_refuses_more(digits):
    tasks = sample_tasks(digits, 90, 0, min_ways=2, max_ways=2, grouped_fraction=0.0)  # 10 * 9 ordered pairs
    assert len({t.labels for t in tasks}) == 90
    with pytest.raises(IgpgError, match="only 90 exist"):
        sample_tasks(digits, 91, 0, min_ways=2, max_ways=2, grouped_fraction=0.0)
    with pytest.raises(IgpgError, match="grouped"):
        sample_tasks(digits, 10, 0, min_ways=4, max_ways=6, grouped_fraction=0.5)
    with pytest.raises(IgpgError, match="max_ways"):
        sample_tasks(digits, 10, 0, min_ways=2, max_ways=11)


# --- assign_split ----------------------------------------------------------------------------------------------


def test_assign_split_is_stable_and_near_the_fraction():
    ids = [f"digits-{i}-x" for i in range(1000)]
    splits = [assign_split(i, 0, 0.2) for i in ids]
    assert splits == [assign_split(i, 0, 0.2) for i in reversed(ids)][::-1]
    assert set(splits) == {"train", "test"} and abs(splits.count("test") / 1000 - 0.2) < 0.04
    three = [assign_split(i, 1, 0.2, val_fraction=0.1) for i in ids]
    assert abs(three.count("test") / 1000 - 0.2) < 0.04 and abs(three.count("val") / 1000 - 0.1) < 0.03
    assert three != [assign_split(i, 2, 0.2, val_fraction=0.1) for i in ids]  # the seed matters
    with pytest.raises(IgpgError):
        assign_split("x", 0, 0.8, val_fraction=0.3)


# --- templates -------------------------------------------------------------------------------------------------


def test_templates_are_package_data():
    assert resources.files("igpg.data").joinpath("templates.yaml").is_file()
    templates = load_templates()
    assert len(templates["subset"]) >= 6
    assert any(p.get("heldout") for p in templates["subset"]) and any(p.get("heldout") for p in templates["grouped"])
    ids = [p["id"] for p in templates["subset"] + templates["grouped"]]
    for family in templates["named_groupings"].values():
        for grouping in family["groupings"].values():
            ids += [p["id"] for p in grouping["phrasings"]]
            assert any(p.get("heldout") for p in grouping["phrasings"])
            assert not all(p.get("heldout") for p in grouping["phrasings"])
    assert len(ids) == len(set(ids))


def _in_order(text: str, parts: list[str]) -> bool:
    at = 0
    for part in parts:
        at = text.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


def _assert_labels_named_in_order(phrasing, task, dataset):
    texts = label_texts(task, dataset)
    renderings = [", ".join(texts[:-1]) + f" {w} " + texts[-1] for w in ("and", "or")] + [" vs ".join(texts)]
    assert any(r in phrasing.text for r in renderings), phrasing


def test_every_phrasing_renders_for_random_tasks(digits):
    for task in sample_tasks(digits, 150, 11, grouped_fraction=0.3):
        phrasings = instructions(task, digits)
        if task.kind == "subset":
            assert not any("{" in p.text for p in phrasings)  # braces only ever mark groups
        assert any(p.heldout for p in phrasings) and any(not p.heldout for p in phrasings)
        generic = [p for p in phrasings if p.template_id.startswith(task.kind + ".")]
        assert len(generic) == len(load_templates()[task.kind])
        for phrasing in generic:
            _assert_labels_named_in_order(phrasing, task, digits)
        assert default_instruction(task, digits) == next(p.text for p in phrasings if not p.heldout)


def test_named_groupings_name_their_labels_in_order():
    templates = load_templates()
    for family in templates["named_groupings"].values():
        for dataset_name in family["datasets"]:
            dataset = _fake_dataset(dataset_name)
            for gname, grouping in family["groupings"].items():
                task = Task.from_classes(dataset_name, grouping["labels"])  # valid for every listed dataset
                assert named_groupings(dataset_name)[gname] == task.labels
                phrasings = instructions(task, dataset)
                named = [p for p in phrasings if p.template_id.startswith(gname + ".")]
                assert len(named) == len(grouping["phrasings"]) and phrasings[: len(named)] == named
                for phrasing in named:
                    assert _in_order(phrasing.text, grouping["names"]), phrasing
                    assert dataset.description in phrasing.text
                assert default_instruction(task, dataset) == named[0].text


def test_named_groupings_per_dataset():
    assert named_groupings("digits")["odd_even"] == ODD_EVEN
    assert named_groupings("mnist1d")["even_odd"] == ODD_EVEN[::-1]
    assert "low_high" in named_groupings("mnist") and "vehicle_animal" in named_groupings("torchvision:CIFAR10")
    assert named_groupings("torchvision:CIFAR100") == {}


def test_default_instruction_examples(digits):
    assert default_instruction(Task.from_classes("digits", [3, 5, 8]), digits) == (
        "Classify handwritten digits into 3, 5 and 8"
    )
    assert default_instruction(Task.from_classes("digits", list(ODD_EVEN)), digits) == (
        "Tell odd handwritten digits from even ones"
    )
    assert default_instruction(Task.from_classes("digits", [[0, 1], 2]), digits) == (
        "Classify handwritten digits into groups: {0, 1} vs 2"
    )


def test_instructions_use_the_dataset_class_names():
    fashion = _fake_dataset("torchvision:FashionMNIST", class_names=("T-shirt/top", "Trouser") + ("x",) * 8)
    text = default_instruction(Task.from_classes(fashion, [1, 0]), fashion)
    assert text.endswith("Trouser and T-shirt/top")


def test_instructions_refuse_a_mismatched_dataset(digits):
    with pytest.raises(IgpgError, match="mnist"):
        instructions(Task.from_classes("mnist", [1, 2]), digits)
