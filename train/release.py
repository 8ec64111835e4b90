"""Copy a trained tokenizer and generator into the repository as a release (weights + config, no training state;
the generator in float16).

    python train/release.py --tokenizer runs/tok-default --generator runs/gen-default --name default [--tokenizer-name rvq5]

Writes tokenizers/TOKENIZER_NAME/{config.json, model.safetensors} (the released tokenizers, with their cards) and
igpg/pretrained/NAME/ with `ParameterGenerator.save_pretrained`: config.json, model.safetensors, tokenizer/ (its
own copy, so the package loads it from an installed wheel) and generic/ (the generic networks a base_rows generator
starts from). The generator's config names the tokenizer TOKENIZER_NAME. Cards (CARD.md) are written by hand from
measured figures; the tokenizer's card is copied into the generator's tokenizer/.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from igpg.generator import ParameterGenerator
from igpg.generator.base_rows import GENERIC_DIR
from igpg.generator.model_dir import TOKENIZER_DIR

ROOT = Path(__file__).resolve().parents[1]
CARD = "CARD.md"


def release(tokenizer: Path, generator: Path, name: str, tokenizer_name: str, root: Path = ROOT) -> int:
    """Write the release under `root`; returns its size in bytes (the generator's directory and the tokenizer's)."""
    tok_out = root / "tokenizers" / tokenizer_name
    gen_out = root / "igpg" / "pretrained" / name
    tok_out.mkdir(parents=True, exist_ok=True)
    for file in ("config.json", "model.safetensors"):
        shutil.copy(tokenizer / file, tok_out / file)
    gen = ParameterGenerator.from_pretrained(generator, tokenizer=tokenizer, device="cpu")
    shutil.rmtree(gen_out / GENERIC_DIR, ignore_errors=True)  # whatever an earlier release left: written anew
    gen.save_pretrained(gen_out, dtype=torch.float16)  # half the size; loaded back into float32 parameters
    if (tok_out / CARD).is_file():
        shutil.copy(tok_out / CARD, gen_out / TOKENIZER_DIR / CARD)
    meta = json.loads((gen_out / "config.json").read_text())
    meta["config"]["codes"]["tokenizer"] = tokenizer_name  # the name it is released under
    (gen_out / "config.json").write_text(json.dumps(meta, indent=1))
    return sum(p.stat().st_size for d in (tok_out, gen_out) for p in d.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--generator", type=Path, required=True)
    ap.add_argument("--name", default="default")
    ap.add_argument("--tokenizer-name", default=None, help="release the tokenizer as tokenizers/NAME (default: --name)")
    args = ap.parse_args()
    tok_name = args.tokenizer_name or args.name
    size = release(args.tokenizer, args.generator, args.name, tok_name)
    print(f"released {args.name}: tokenizers/{tok_name}, igpg/pretrained/{args.name} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
