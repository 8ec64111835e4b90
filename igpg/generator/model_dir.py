"""A generator directory, what `igpg train generator` and `save_pretrained` write and `from_pretrained` reads:

    DIR/config.json, DIR/model.safetensors   the decoder (config.json: a `GeneratorConfig`, of kind KIND)
    DIR/tokenizer/                           the weight tokenizer it was trained with (TOKENIZER_DIR)
    DIR/generic/                             the generic networks its requests start from (base_rows.GENERIC_DIR)
    DIR/CARD.md                              what it is and how it measures (released models)

`config_from_dict` validates a config read from a checkpoint's config.json or a YAML recipe (unknown keys and sizes
above the fields' bounds are refused before anything is allocated). A config.json written before 2026-12 (the
released one among them) is flat, one mapping of every key: each key is read into the section that owns it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from igpg.config import apply_overrides, read_yaml, sections_of_flat
from igpg.errors import IgpgError
from igpg.generator.config import SECTIONS, GeneratorConfig

KIND = "igpg-weight-generator"
TOKENIZER_DIR = "tokenizer"  # a generator directory's own copy of the tokenizer it was trained with

# ablation options removed from the generator (2026-12-02; their figures: eval/results/generator-ablation.md), with
# the value at which they were off: a config.json written before still loads if it holds them at that value
REMOVED = {"row_code_noise": 0.0, "row_context": "previous", "group_keys": False, "task_keys": False,
           "drift_keys": 0, "drift_dim": 48, "head_features": False, "feature_pool": 32, "train_seeds": (),
           "grouped_weight": 1.0, "extra": {}}

def config_from_dict(raw: Any, where: str | Path | None = None) -> GeneratorConfig:
    """A `GeneratorConfig` from its sections ({"model": ..., "train": ..., "codes": ...}) or an older flat mapping."""
    return GeneratorConfig.parse(_as_sections(raw, where), where)


def _as_sections(raw: Any, where: str | Path | None) -> Any:
    """A flat mapping (a config written before 2026-12) as sections; anything else as it is."""
    return sections_of_flat(raw, SECTIONS, REMOVED, "generator", where)


def load_generator_config(path: str | Path, overrides: list[str] | None = None) -> GeneratorConfig:
    """A recipe (configs/generator/*.yaml: `model:` and `train:` sections) with `--set` overrides, validated. The
    code format is not a recipe's to set: it is read from the tokenizer when training starts."""
    raw = apply_overrides(_as_sections(read_yaml(path, "generator"), path), overrides, GeneratorConfig)
    if isinstance(raw, dict) and "codes" in raw:
        raise IgpgError(f"generator config {str(path)!r}: 'codes' is read from the tokenizer, not set in a recipe")
    return GeneratorConfig.parse(raw, path)
