#!/usr/bin/env bash
# Distributed testing with torchrun and mmengine's `pytorch` launcher.
#   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options ...]
# Ports and nodes as for tools/dist_train.sh (one machine: a free port is picked by torchrun).
set -euo pipefail
CONFIG=${1:?usage: dist_test.sh CONFIG CHECKPOINT NUM_PROCS [options]}
CHECKPOINT=${2:?usage: dist_test.sh CONFIG CHECKPOINT NUM_PROCS [options]}
PROCS=${3:?usage: dist_test.sh CONFIG CHECKPOINT NUM_PROCS [options]}
NNODES=${NNODES:-1}
here=$(cd "$(dirname "$0")" && pwd)
if [ "$NNODES" = 1 ] && [ -z "${PORT:-}" ]; then
  # see tools/dist_train.sh: torchrun binds the port itself, nothing can take it in between
  rendezvous=(--standalone)
else
  rendezvous=(--nnodes="$NNODES" --node_rank="${NODE_RANK:-0}"
              --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}")
fi
PYTHONPATH="$here/..:${PYTHONPATH:-}" \
exec "${PYTHON:-python}" -m torch.distributed.run "${rendezvous[@]}" --nproc_per_node="$PROCS" \
  "$here/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
