#!/usr/bin/env bash
# Rebuild the released default model end to end on CPU (2 cores): zoo -> tokenizer (rvq5) -> codes -> generator
# -> release. Measured here: zoo 432 s, tokenizer + codes 19 + 11 min (tokenizers/rvq5/CARD.md), generator
# 14 min (3000 steps) + 14 min (extended to 6000) on an otherwise idle machine (igpg/pretrained/default/CARD.md).
# Every step resumes if interrupted: run the script again.
# (tokenizers/default, the 4-level tokenizer of the trade-off table, is rebuilt with
#  `igpg train tokenizer --zoo zoos/default --config configs/tokenizer/default.yaml --out runs/tok-default`.)
set -euo pipefail
cd "$(dirname "$0")/.."
IGPG=${IGPG:-.venv/bin/igpg}
$IGPG zoo build --config configs/zoo/default.yaml --out zoos/default --workers 2
$IGPG train tokenizer --zoo zoos/default --config configs/tokenizer/rvq5.yaml --out runs/tok-rvq5
$IGPG train generator --zoo zoos/default --tokenizer runs/tok-rvq5 --config configs/generator/default.yaml \
    --out runs/gen-default
# stage 2: the same run extended to 6000 steps (the released model)
$IGPG train generator --zoo zoos/default --tokenizer runs/tok-rvq5 --config configs/generator/default-6000.yaml \
    --out runs/gen-default
.venv/bin/python train/release.py --tokenizer runs/tok-rvq5 --generator runs/gen-default --name default \
    --tokenizer-name rvq5
