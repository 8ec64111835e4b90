"""A generator directory, what `igpg train generator` and `save_pretrained` write and `from_pretrained` reads:

    DIR/config.json, DIR/model.safetensors   the decoder (config.json: a `GeneratorConfig`, of kind KIND)
    DIR/tokenizer/                           the weight tokenizer it was trained with (TOKENIZER_DIR)
    DIR/generic/                             the generic networks its requests start from (base_rows.GENERIC_DIR)
    DIR/CARD.md                              what it is and how it measures (released models)

`config_from_dict` validates a config read from a checkpoint's config.json or a YAML file (unknown keys and sizes
above LIMITS are refused before anything is allocated).
"""

from __future__ import annotations

from pathlib import Path

from igpg.checkpoint import dataclass_from_dict, read_yaml
from igpg.generator.model import GeneratorConfig

KIND = "igpg-weight-generator"
TOKENIZER_DIR = "tokenizer"  # a generator directory's own copy of the tokenizer it was trained with

# upper bounds of the sizes in a generator config (read from a checkpoint's config.json or a YAML file): far above
# any model igpg trains, far below what would allocate gigabytes before the weights are even read
LIMITS = {"dim": 4096, "depth": 64, "heads": 64, "slot_dim": 4096, "max_row_index": 2**20, "max_layers": 1024,
          "max_chunks_per_row": 2**16, "max_seq_len": 2**16, "class_slots": 2**20, "row_keys": 2**20,
          "vocab": 2**16, "codes_per_chunk": 64, "chunk_size": 4096, "k_support": 1000}

# ablation options removed from the generator (2026-12-02; their figures: eval/results/generator-ablation.md), with
# the value at which they were off: a config.json written before still loads if it holds them at that value
REMOVED = {"row_code_noise": 0.0, "row_context": "previous", "group_keys": False, "task_keys": False,
           "drift_keys": 0, "drift_dim": 48, "head_features": False, "feature_pool": 32, "train_seeds": (),
           "grouped_weight": 1.0, "extra": {}}


def config_from_dict(raw: dict) -> GeneratorConfig:
    return dataclass_from_dict(GeneratorConfig, raw, "generator", LIMITS, REMOVED)


def load_generator_config(path: str | Path) -> GeneratorConfig:
    return config_from_dict(read_yaml(path, "generator"))
