"""Labels read from the instruction (`igpg generate` without --classes): every template phrasing of real tasks reads
back to the task's labels in order; number words are classes, counts are not; unclear instructions are refused."""

import pytest
import torch

from igpg.data import Dataset, Split, Task, describe_labels, instructions, labels_from_instruction, load_dataset
from igpg.data.datasets import _FASHION_NAMES
from igpg.data.tasks import load_templates
from igpg.errors import IgpgError

ODD, EVEN = (1, 3, 5, 7, 9), (0, 2, 4, 6, 8)


def _fashion8() -> Dataset:
    """fashion8's names and description (its image files are a Debian package this machine may lack): the reader
    reads nothing else."""
    empty = Split(torch.zeros(0, 64), torch.zeros(0, dtype=torch.int64))
    return Dataset("fashion8", (1, 8, 8), 10, _FASHION_NAMES, "Fashion-MNIST clothing images at 8x8", empty, empty,
                   empty)


def _dataset(name: str) -> Dataset:
    if name == "fashion8":
        return _fashion8()
    if name.startswith("ucr_"):
        pytest.importorskip("aeon")
    return load_dataset(name)


def _named_cases() -> list[tuple[str, str]]:
    """(dataset, grouping) for every named grouping of templates.yaml, on one dataset of its family that loads here."""
    usable = ("digits", "mnist1d", "fashion8", "ucr_osuleaf", "ucr_pickupgesturewiimotez")
    out = []
    for family in load_templates()["named_groupings"].values():
        name = next((d for d in family["datasets"] if d in usable), None)
        out += [(name, g) for g in family["groupings"]] if name else []
    return out


TASKS = [
    ("digits", [3, 5, 8]),
    ("digits", [9, 0, 4, 1, 7, 2, 8, 3, 6, 5]),  # 10-way: "Build a 10-way classifier ..."
    ("mnist1d", [2, 7]),  # the description "MNIST-1D digit signals" holds a digit
    ("mnist", [[1, 3, 5], [0, 2, 4], [8]]),
    ("digits", [[0, 9], [6, 8]]),
    ("ucr_osuleaf", [5, 0, 3]),
    ("ucr_pickupgesturewiimotez", [[2, 3], 9]),
    ("fashion8", [0, 6, 9]),  # "T-shirt/top", "Shirt", "Ankle boot": the longer name wins
]


@pytest.mark.parametrize("dataset, classes", TASKS, ids=lambda x: str(x))
def test_every_template_phrasing_reads_back(dataset, classes):
    ds = _dataset(dataset)
    task = Task.from_classes(dataset, classes)
    phrasings = instructions(task, ds)
    assert any(p.heldout for p in phrasings)
    for p in phrasings:
        assert labels_from_instruction(p.text, ds) == task.labels, p.text


@pytest.mark.parametrize("dataset, grouping", _named_cases(), ids=lambda x: str(x))
def test_every_named_grouping_phrasing_reads_back(dataset, grouping):
    ds = _dataset(dataset)
    task = Task(dataset, next(g for f in load_templates()["named_groupings"].values() if dataset in f["datasets"]
                              for n, g in f["groupings"].items() if n == grouping)["labels"])
    phrasings = instructions(task, ds)
    assert any(p.template_id.startswith(grouping + ".") for p in phrasings)
    for p in phrasings:  # its own wordings ("Tell odd ... from even ones") and the generic grouped ones
        assert labels_from_instruction(p.text, ds) == task.labels, p.text


@pytest.mark.parametrize("text, labels", [
    ("is it a three or an eight?", [3, 8]),
    ("Recognise sevens, ones and fours", [7, 1, 4]),
    ("nine, zero, two and six", [9, 0, 2, 6]),
    ("Tell ONE from Seven", [1, 7]),
    ("Distinguish 3s from 8's", [3, 8]),
    ("Tell prime digits from the ones that are not prime", [(2, 3, 5, 7), (0, 1, 4, 6, 8, 9)]),  # "ones": pronoun
    ("less than five vs five or more", [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9)]),
])
def test_number_words_are_classes(text, labels):
    assert labels_from_instruction(text, "digits") == Task("digits", labels).labels


@pytest.mark.parametrize("text, labels", [
    ("Build a 3-way classifier for handwritten digits: 1, 4 and 7", [1, 4, 7]),
    ("a three-way classifier of 0, 1 and 2", [0, 1, 2]),
    ("Sort the digits into 2 groups: {1, 3} and {0, 2}", [(1, 3), (0, 2)]),
    ("Merge the classes into 2 outputs: 1+3 vs 0+2", [(1, 3), (0, 2)]),
    ("I want 2 outputs: 6 and 9", [6, 9]),
    ("one output per class, in this order: 3, 5 and 8", [3, 5, 8]),
    ("For digits, decide which of 3, 5 or 8 each one is", [3, 5, 8]),
    ("output 0 = 3, output 1 = 5", [3, 5]),
    ("Classify 8x8 images into 4 and 9 with 64 hidden units and 90% accuracy", [4, 9]),
    ("Classify digits into two groups: 0 and 1 versus 2 and 3", [(0, 1), (2, 3)]),
])
def test_counts_and_indices_are_not_classes(text, labels):
    assert labels_from_instruction(text, "digits") == Task("digits", labels).labels


@pytest.mark.parametrize("text, dataset, reason", [
    ("asdf qwerty zxcv", "digits", "names no class"),
    ("", "digits", "names no class"),
    ("Classify handwritten digits", "digits", "names no class"),
    ("Is it a 7?", "digits", "only one label"),
    ("Build a 3-way classifier", "digits", "names no class"),
    ("Classify 3, 5 and 3", "digits", "named twice"),
    ("odd or less than 5", "digits", "different groupings"),
    ("odd vs even vs prime vs not prime", "digits", "different groupings"),
    ("Tell odd digits from 4 and 6", "digits", "not odd"),
    ("not prime vs prime", "digits", "in that order"),
    ("digits 0-4 vs 5-9", "digits", "range"),
    ("Classify digits greater than 4", "digits", "threshold"),
    ("Classify 1, 2 and 3 but not 4", "digits", "follows 'not'"),
    ("Classify 3 and 5 or 8", "digits", "both 'and' and 'or'"),
    ("Classify 12 and 3", "mnist1d", "not a class of mnist1d"),
    ("Classify {3, 5 and 8", "digits", "without its"),
    ("Classify 1 and 2", "ucr_osuleaf", "have names"),
])
def test_unclear_instructions_are_refused(text, dataset, reason):
    with pytest.raises(IgpgError) as e:
        labels_from_instruction(text, _dataset(dataset))
    message = str(e.value)
    assert message.startswith("could not read the labels from the instruction") and reason in message, message
    assert "--classes 3,5,8" in message and "\n" not in message


def test_describe_labels_names_each_output():
    assert describe_labels(((3,), (1, 5)), "digits") == "output 0 = 3, output 1 = {1, 5}"
    fashion = "output 0 = Sandal (5), output 1 = {Sneaker, Ankle boot} (7+9)"  # names that are not ids carry them
    assert describe_labels(((5,), (7, 9)), _fashion8()) == fashion
