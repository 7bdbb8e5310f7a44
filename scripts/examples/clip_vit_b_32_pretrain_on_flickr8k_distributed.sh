#!/usr/bin/env bash
# Data-parallel contrastive training of CLIP ViT-B/32 on Flickr8k, launched with msrun (MindSpore's launcher):
# one scheduler + WORKER_NUM workers, each running run_mindformer.py --use_parallel True. The loss sees the
# global batch (features all-gathered with gradients), so N workers x batch B train like one device with N*B.
#   bash scripts/examples/clip_vit_b_32_pretrain_on_flickr8k_distributed.sh [FLICKR8K_DIR] [OUTPUT_DIR] [extra flags]
# Extra flags go to run_mindformer.py, e.g. --epochs 10 --batch_size 64 (per worker) --device_target Ascend.
#
# Environment (defaults in brackets):
#   WORKER_NUM [8]  LOCAL_WORKER_NUM [WORKER_NUM]  MASTER_ADDR [127.0.0.1]  MASTER_PORT [8118]  NODE_RANK [-1]
#   LOG_DIR [OUTPUT_DIR/msrun_log]: scheduler.log and worker_<rank>.log
#   CONFIG [configs/clip/run_clip_vit_b_32_pretrain_flickr8k.yaml]
#   CLUSTER_TIME_OUT [300]: seconds to wait for every worker to join; a rank that never connects ends the job
#   MS_NODE_TIMEOUT [60]: seconds without a heartbeat before the scheduler declares a worker dead
#   PYTHON [python]: msrun starts every worker with the first `python` on PATH, so this script puts
#     PYTHON's directory first on PATH (e.g. PYTHON=/path/to/venv/bin/python).
# Multi-node: run this on every node with the same WORKER_NUM/MASTER_ADDR/MASTER_PORT, LOCAL_WORKER_NUM = the
# node's workers and NODE_RANK = the node's index. On failure, a summary names the rank that failed first.
set -euo pipefail
cd "$(dirname "$0")/../.."
FLICKR8K_DIR=${1:-./checkpoint_download/Flickr8k}
OUTPUT_DIR=${2:-./output/clip_vit_b_32_pretrain_flickr8k_distributed}
shift $(( $# < 2 ? $# : 2 ))
PYTHON=${PYTHON:-python}
PYTHON_BIN=$(dirname "$(command -v "$PYTHON")")
export PATH="$PYTHON_BIN:$PATH"
WORKER_NUM=${WORKER_NUM:-8}
LOG_DIR=${LOG_DIR:-$OUTPUT_DIR/msrun_log}
export MS_NODE_TIMEOUT=${MS_NODE_TIMEOUT:-60}
mkdir -p "$LOG_DIR"
status=0
msrun --worker_num="$WORKER_NUM" --local_worker_num="${LOCAL_WORKER_NUM:-$WORKER_NUM}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-8118}" --node_rank="${NODE_RANK:--1}" \
    --log_dir="$LOG_DIR" --join=True --cluster_time_out="${CLUSTER_TIME_OUT:-300}" \
    run_mindformer.py \
    --config "${CONFIG:-configs/clip/run_clip_vit_b_32_pretrain_flickr8k.yaml}" \
    --run_mode train \
    --use_parallel True \
    --train_dataset_dir "$FLICKR8K_DIR" \
    --eval_dataset_dir "$FLICKR8K_DIR" \
    --do_eval True \
    --output_dir "$OUTPUT_DIR" \
    "$@" 2>&1 | tee "$LOG_DIR/msrun.out" || status=$?
if [ "$status" -ne 0 ]; then
    python -m ms_clip.distributed diagnose "$LOG_DIR" "$LOG_DIR/msrun.out" || true
    exit "$status"
fi
