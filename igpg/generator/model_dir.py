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

from igpg.config import apply_overrides, read_yaml
from igpg.errors import IgpgError
from igpg.generator.config import SECTIONS, GeneratorConfig

KIND = "igpg-weight-generator"
TOKENIZER_DIR = "tokenizer"  # a generator directory's own copy of the tokenizer it was trained with

# ablation options removed from the generator (2026-12-02; their figures: eval/results/generator-ablation.md), with
# the value at which they were off: a config.json written before still loads if it holds them at that value
REMOVED = {"row_code_noise": 0.0, "row_context": "previous", "group_keys": False, "task_keys": False,
           "drift_keys": 0, "drift_dim": 48, "head_features": False, "feature_pool": 32, "train_seeds": (),
           "grouped_weight": 1.0, "extra": {}}

# the section of each key of a flat config.json (written before 2026-12): a field name belongs to one section
FLAT_OWNER = {name: section for section, cls in SECTIONS.items() for name in cls.model_fields}
assert len(FLAT_OWNER) == sum(len(c.model_fields) for c in SECTIONS.values()), "a field name in two sections"


def config_from_dict(raw: Any, where: str | Path | None = None) -> GeneratorConfig:
    """A `GeneratorConfig` from its sections ({"model": ..., "train": ..., "codes": ...}) or an older flat mapping."""
    return GeneratorConfig.parse(_as_sections(raw, where), where)


def _as_sections(raw: Any, where: str | Path | None) -> Any:
    """A flat mapping (a config written before 2026-12) as sections; anything else as it is."""
    if isinstance(raw, dict) and raw and not set(raw) & set(SECTIONS):
        return _sections_of_flat(raw, where)
    return raw


def _sections_of_flat(raw: dict, where: str | Path | None) -> dict:
    """A flat config (written before 2026-12) as sections; its removed options only at their neutral value."""
    head = "generator config" + (f" {str(where)!r}" if where is not None else "")
    out: dict[str, dict] = {}
    for key in sorted(raw, key=str):
        if key in REMOVED:
            value, neutral = raw[key], REMOVED[key]
            same = (tuple(value) if isinstance(value, list) else value) == neutral
            if not same or isinstance(value, bool) != isinstance(neutral, bool):
                raise IgpgError(f"{head}: option {key!r} was removed; an old config may hold it only at its "
                                f"neutral value {neutral!r}, got {repr(value)[:40]}")
            continue
        section = FLAT_OWNER.get(key) if isinstance(key, str) else None
        if section is None:
            allowed = sorted(FLAT_OWNER)
            raise IgpgError(f"{head}: unknown key {str(key)!r}; allowed: {', '.join(allowed)}")
        out.setdefault(section, {})[key] = raw[key]
    return out


def load_generator_config(path: str | Path, overrides: list[str] | None = None) -> GeneratorConfig:
    """A recipe (configs/generator/*.yaml: `model:` and `train:` sections) with `--set` overrides, validated. The
    code format is not a recipe's to set: it is read from the tokenizer when training starts."""
    raw = apply_overrides(_as_sections(read_yaml(path, "generator"), path), overrides, GeneratorConfig)
    if isinstance(raw, dict) and "codes" in raw:
        raise IgpgError(f"generator config {str(path)!r}: 'codes' is read from the tokenizer, not set in a recipe")
    return GeneratorConfig.parse(raw, path)
