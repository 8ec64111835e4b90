#!/usr/bin/env bash
# The default pipeline scaled out: the zoo on a Ray cluster, tokenizer and generator data-parallel under torchrun.
# One machine (the defaults): a local Ray cluster, then 2 processes per training.
# Several nodes (zoos/ and runs/ on a shared file system, same paths everywhere): on the head node
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=head RAY_ADDRESS=auto train/scale-out.sh
# and, once its zoo build has finished (the head joins the torchrun rendezvous after it), on the other node
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=head train/scale-out.sh
# Every step resumes if interrupted: run it again. ZOO_CONFIG, TOK_CONFIG, GEN_CONFIG and OUT override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
NPROC=${NPROC:-2}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
ZOO_CONFIG=${ZOO_CONFIG:-configs/zoo/default.yaml}
TOK_CONFIG=${TOK_CONFIG:-configs/tokenizer/rvq6.yaml}
GEN_CONFIG=${GEN_CONFIG:-configs/generator/default.yaml}
OUT=${OUT:-.}
TORCHRUN=("$PY" -m torch.distributed.run --nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node "$NPROC"
          --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT")

if [ "$NODE_RANK" = 0 ]; then  # one driver builds the zoo; Ray spreads the training over the cluster
    "$PY" -m igpg.cli zoo build --config "$ZOO_CONFIG" --out "$OUT/zoos/scale" --backend ray \
        ${RAY_ADDRESS:+--address "$RAY_ADDRESS"}
fi
"${TORCHRUN[@]}" -m igpg.cli train tokenizer --zoo "$OUT/zoos/scale" --config "$TOK_CONFIG" --out "$OUT/runs/tok-scale"
"${TORCHRUN[@]}" -m igpg.cli train generator --zoo "$OUT/zoos/scale" --tokenizer "$OUT/runs/tok-scale" \
    --config "$GEN_CONFIG" --out "$OUT/runs/gen-scale"
