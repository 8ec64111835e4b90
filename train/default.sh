#!/usr/bin/env bash
# Rebuild the released default model end to end on CPU (2 cores): zoo -> tokenizer -> codes -> generator -> release.
# Measured here: zoo 547 s, tokenizer ~10 min (3000 steps), generator ~50 min (5000 steps): see the cards.
# Every step resumes if interrupted: run the script again.
set -euo pipefail
cd "$(dirname "$0")/.."
IGPG=${IGPG:-.venv/bin/igpg}
$IGPG zoo build --config configs/zoo/default.yaml --out zoos/default --workers 2
$IGPG train tokenizer --zoo zoos/default --config configs/tokenizer/default.yaml --out runs/tok-default
$IGPG train generator --zoo zoos/default --tokenizer runs/tok-default --config configs/generator/default.yaml \
    --out runs/gen-default
# stage 2: the same run extended to 5000 steps (the released model); ~25 min here for each stage
$IGPG train generator --zoo zoos/default --tokenizer runs/tok-default --config configs/generator/default-5000.yaml \
    --out runs/gen-default
.venv/bin/python train/release.py --tokenizer runs/tok-default --generator runs/gen-default --name default
