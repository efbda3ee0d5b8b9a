#!/usr/bin/env bash
# Multi-process / multi-node training: tools/dist_train.sh CONFIG GPUS [train.py args]
# Environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1),
# OMP_NUM_THREADS (on CPU: cores / GPUS when unset).
# On a machine without CUDA the processes train on CPU with the gloo backend.
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

# On CPU, the processes share the cores: unless OMP_NUM_THREADS is set, each gets
# cores / processes threads (torch.distributed.run would give each 1; more threads than cores
# make every parallel region wait for descheduled threads).
if [ -z "${OMP_NUM_THREADS:-}" ] && ! "$PYTHON" -c \
    "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    CORES=$(nproc)
    THREADS=$((CORES / GPUS))
    export OMP_NUM_THREADS=$((THREADS > 0 ? THREADS : 1))
    echo "dist_train.sh: CPU training, OMP_NUM_THREADS=$OMP_NUM_THREADS per process"
fi

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")/train.py" \
    $CONFIG \
    --launcher pytorch ${@:3}
