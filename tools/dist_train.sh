#!/usr/bin/env bash
# Distributed training with torchrun and mmengine's `pytorch` launcher.
#   bash tools/dist_train.sh CONFIG NUM_PROCS [train.py options ...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT; PYTHON picks the interpreter.
# Without CUDA the gloo backend is used.
set -euo pipefail
CONFIG=${1:?usage: dist_train.sh CONFIG NUM_PROCS [options]}
PROCS=${2:?usage: dist_train.sh CONFIG NUM_PROCS [options]}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
here=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$here/..:${PYTHONPATH:-}" \
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" --master_port="$PORT" --nproc_per_node="$PROCS" \
  "$here/train.py" "$CONFIG" --launcher pytorch "${@:3}"
