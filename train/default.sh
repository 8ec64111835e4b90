#!/usr/bin/env bash
# Rebuild the released default model end to end on CPU (2 cores): zoo -> tokenizer (rvq5) -> codes -> generator
# -> release. Measured here: zoo 432 s (+ 101 s for its probe networks, which the generator trains on in place of
# the grouped-task networks), tokenizer + codes 19 + 11 min (tokenizers/rvq5/CARD.md), generator 36 min
# (3000 steps, base rows + row chain + probe targets + head_loss_weight; igpg/pretrained/default/CARD.md). The generator's checkpoint keeps the zoo's
# generic networks (generic/), which the release ships: they are the generator's base rows.
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
.venv/bin/python train/release.py --tokenizer runs/tok-rvq5 --generator runs/gen-default --name default \
    --tokenizer-name rvq5
