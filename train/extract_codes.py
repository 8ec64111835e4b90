"""Extract a zoo's training networks' codes with a released tokenizer (what `igpg train generator` reads).

    python train/extract_codes.py --tokenizer tokenizers/rvq5 --zoo zoos/default --out runs/tok-rvq5

OUT receives a copy of the tokenizer (config.json, model.safetensors; unless OUT is the tokenizer) and OUT/codes; only the networks a generator
trains on are encoded (task, architecture and seed all "train", generic networks of training architectures, and
probe networks), which is what a generator reads.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from igpg.tokenizer.codes import extract_codes
from igpg.tokenizer.tokenizer import WeightTokenizer
from igpg.tokenizer.train import PROBES, TRAIN_SPLIT
from igpg.zoo.catalogue import Catalogue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--zoo", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if Path(args.tokenizer).resolve() != out.resolve():  # a released tokenizer, copied beside its codes
        for name in ("config.json", "model.safetensors"):
            shutil.copy(Path(args.tokenizer) / name, out / name)
    t0 = time.perf_counter()
    tok = WeightTokenizer.load(out)
    n = extract_codes(tok, Catalogue(args.zoo), out / "codes", out.name, where=f"({TRAIN_SPLIT}) OR ({PROBES})")
    print(f"codes of {n} networks in {out / 'codes'} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
