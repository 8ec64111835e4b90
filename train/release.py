"""Copy a trained tokenizer and generator into the repository as a release (weights + config, no training state;
the generator in float16).

    python train/release.py --tokenizer runs/tok-default --generator runs/gen-default --name default [--tokenizer-name rvq5]

Writes tokenizers/TOKENIZER_NAME/{config.json, model.safetensors} and igpg/pretrained/NAME/{config.json, model.safetensors}
(+ generic/, the generic networks a base_rows generator starts from); the generator's config is pointed at
tokenizers/NAME. Cards (CARD.md) are written by hand from measured figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from igpg.generator.base import GENERIC_DIR, GenericBank
from igpg.io import load_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--generator", type=Path, required=True)
    ap.add_argument("--name", default="default")
    ap.add_argument("--tokenizer-name", default=None, help="release the tokenizer as tokenizers/NAME (default: --name)")
    args = ap.parse_args()
    tok_name = args.tokenizer_name or args.name
    tok_out = ROOT / "tokenizers" / tok_name
    gen_out = ROOT / "igpg" / "pretrained" / args.name
    for src, dst, half in ((args.tokenizer, tok_out, False), (args.generator, gen_out, True)):
        dst.mkdir(parents=True, exist_ok=True)
        state, meta = load_weights(src / "model.safetensors")
        if half:  # the generator ships in float16 (half the size); it is loaded back into float32 parameters
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_weights(dst / "model.safetensors", state, meta)
        shutil.copy(src / "config.json", dst / "config.json")
    if (args.generator / GENERIC_DIR).is_dir():  # the bases of a base_rows generator (small: the generic networks)
        GenericBank.load(args.generator / GENERIC_DIR).save(gen_out / GENERIC_DIR)  # whole or not at all
    else:
        shutil.rmtree(gen_out / GENERIC_DIR, ignore_errors=True)
    meta = json.loads((gen_out / "config.json").read_text())
    meta["config"]["tokenizer"] = tok_name
    (gen_out / "config.json").write_text(json.dumps(meta, indent=1))
    size = sum(p.stat().st_size for d in (tok_out, gen_out) for p in d.rglob("*") if p.is_file())
    print(f"released {args.name}: {tok_out.relative_to(ROOT)}, {gen_out.relative_to(ROOT)} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
