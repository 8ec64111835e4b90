#!/usr/bin/env bash
# Rebuild the released default model end to end on CPU (2 cores): zoo -> codes (with the released tokenizer rvq5)
# -> generator -> release. Times measured here are in igpg/pretrained/default/CARD.md. The generator's checkpoint
# keeps the zoo's generic networks of its training architectures (generic/), which the release ships: they are the
# bases every request starts from (its own architecture's, or the nearest one's carried over: igpg/transform.py).
# Every step resumes if interrupted: run the script again.
# The tokenizer is the released tokenizers/rvq5 (its own recipe: train/rvq5.sh, on the previous default zoo's
# training split, which holds no held-out task, architecture or seed of this one).
set -euo pipefail
cd "$(dirname "$0")/.."
IGPG=${IGPG:-.venv/bin/igpg}
PY=${PY:-.venv/bin/python}
$IGPG zoo build --config configs/zoo/default.yaml --out zoos/default --workers 2
[ -f runs/tok-rvq5/codes/index.json ] || $PY train/extract_codes.py --tokenizer tokenizers/rvq5 --zoo zoos/default \
    --out runs/tok-rvq5
$IGPG train generator --zoo zoos/default --tokenizer runs/tok-rvq5 --config configs/generator/default.yaml \
    --out runs/gen-default
$PY train/release.py --tokenizer runs/tok-rvq5 --generator runs/gen-default --name default --tokenizer-name rvq5
