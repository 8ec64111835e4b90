#!/usr/bin/env bash
# Rebuild the released default model end to end on CPU (2 cores): zoo -> tokenizer -> codes -> generator -> release.
# Measured here (shared machine): zoo 320-547 s, tokenizer ~15 min (1500 steps), generator ~60 min (5000 steps):
# see the cards (tokenizers/default/CARD.md, igpg/pretrained/default/CARD.md).
# Every step resumes if interrupted: run the script again.
set -euo pipefail
cd "$(dirname "$0")/.."
IGPG=${IGPG:-.venv/bin/igpg}
$IGPG zoo build --config configs/zoo/default.yaml --out zoos/default --workers 2
$IGPG train tokenizer --zoo zoos/default --config configs/tokenizer/default.yaml --out runs/tok-default
$IGPG train generator --zoo zoos/default --tokenizer runs/tok-default --config configs/generator/default.yaml \
    --out runs/gen-default
.venv/bin/python train/release.py --tokenizer runs/tok-default --generator runs/gen-default --name default
