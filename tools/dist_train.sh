#!/usr/bin/env bash
# Distributed training with torchrun and mmengine's `pytorch` launcher.
#   bash tools/dist_train.sh CONFIG NUM_PROCS [train.py options ...]
# One machine: torchrun picks a free port itself (--standalone), so several runs can share a
# machine; set PORT to use a fixed one. Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT
# (default 29500). PYTHON picks the interpreter. Without CUDA the gloo backend is used.
set -euo pipefail
CONFIG=${1:?usage: dist_train.sh CONFIG NUM_PROCS [options]}
PROCS=${2:?usage: dist_train.sh CONFIG NUM_PROCS [options]}
NNODES=${NNODES:-1}
here=$(cd "$(dirname "$0")" && pwd)
if [ "$NNODES" = 1 ] && [ -z "${PORT:-}" ]; then
  # torchrun binds the rendezvous port (OS-assigned) and keeps it: no port is chosen, released
  # and bound again later, which another process could take in between.
  rendezvous=(--standalone)
else
  rendezvous=(--nnodes="$NNODES" --node_rank="${NODE_RANK:-0}"
              --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}")
fi
PYTHONPATH="$here/..:${PYTHONPATH:-}" \
exec "${PYTHON:-python}" -m torch.distributed.run "${rendezvous[@]}" --nproc_per_node="$PROCS" \
  "$here/train.py" "$CONFIG" --launcher pytorch "${@:3}"
