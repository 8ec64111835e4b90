#!/usr/bin/env bash
# Rebuild the released default model end to end on CPU (2 cores): zoo -> tokenizer (rvq6) -> codes -> generator
# -> release. Times measured here are in igpg/pretrained/default/CARD.md and tokenizers/rvq6/CARD.md. The
# generator's checkpoint keeps the zoo's generic networks of its training architectures (generic/), which the
# release ships: they are the bases every request starts from (its own architecture's, or the nearest one's
# carried over: igpg/transform.py).
# Every step resumes if interrupted: run the script again.
set -euo pipefail
cd "$(dirname "$0")/.."
IGPG=${IGPG:-.venv/bin/igpg}
PY=${PY:-.venv/bin/python}
$IGPG zoo build --config configs/zoo/default.yaml --out zoos/default --workers 2
$IGPG train tokenizer --zoo zoos/default --config configs/tokenizer/rvq6.yaml --out runs/tok-rvq6 --no-codes
# the codes of the networks the generator trains on (what `igpg train generator` reads)
[ -f runs/tok-rvq6/codes/index.json ] || $PY train/extract_codes.py --tokenizer runs/tok-rvq6 --zoo zoos/default \
    --out runs/tok-rvq6
$IGPG train generator --zoo zoos/default --tokenizer runs/tok-rvq6 --config configs/generator/default.yaml \
    --out runs/gen-default
$PY train/release.py --tokenizer runs/tok-rvq6 --generator runs/gen-default --name default --tokenizer-name rvq6
