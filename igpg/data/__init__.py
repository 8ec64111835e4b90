"""Data: the offline dataset registry, tasks (dataset + ordered output labels + instruction), support files."""

from igpg.data.datasets import DATASETS, Dataset, Split, list_datasets, load_dataset, num_classes_of, using_data_root
from igpg.data.read_labels import describe_labels, labels_from_instruction
from igpg.data.support import Support, load_support
from igpg.data.tasks import (
    Label,
    Phrasing,
    Task,
    assign_split,
    default_instruction,
    instructions,
    named_groupings,
    sample_tasks,
)

__all__ = [
    "DATASETS",
    "Dataset",
    "Label",
    "Phrasing",
    "Split",
    "Support",
    "Task",
    "assign_split",
    "default_instruction",
    "describe_labels",
    "instructions",
    "labels_from_instruction",
    "list_datasets",
    "load_dataset",
    "load_support",
    "named_groupings",
    "num_classes_of",
    "sample_tasks",
    "using_data_root",
]
