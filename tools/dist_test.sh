#!/usr/bin/env bash
# Distributed testing with torchrun and mmengine's `pytorch` launcher.
#   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options ...]
set -euo pipefail
CONFIG=${1:?usage: dist_test.sh CONFIG CHECKPOINT NUM_PROCS [options]}
CHECKPOINT=${2:?usage: dist_test.sh CONFIG CHECKPOINT NUM_PROCS [options]}
PROCS=${3:?usage: dist_test.sh CONFIG CHECKPOINT NUM_PROCS [options]}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
here=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$here/..:${PYTHONPATH:-}" \
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" --master_port="$PORT" --nproc_per_node="$PROCS" \
  "$here/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
