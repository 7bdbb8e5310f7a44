#!/usr/bin/env bash
# The distributed example at CLIP-tiny size on the CPU: 2 workers by default, minutes from scratch, e.g. on the
# synthetic Flickr8k that `python -c "from ms_clip.demo.synthetic import write_flickr8k; write_flickr8k('./synthetic')"`
# writes:
#   PYTHON=.venv/bin/python bash scripts/examples/clip_tiny_pretrain_on_flickr8k_distributed_cpu.sh \
#       ./synthetic/Flickr8k ./output/clip_tiny_distributed --epochs 5 --batch_size 16
# Same environment variables as clip_vit_b_32_pretrain_on_flickr8k_distributed.sh.
set -euo pipefail
HERE="$(dirname "$0")"
export CONFIG=${CONFIG:-configs/clip/run_clip_tiny_pretrain_flickr8k.yaml}
export WORKER_NUM=${WORKER_NUM:-2}
export CLUSTER_TIME_OUT=${CLUSTER_TIME_OUT:-120}
export MS_NODE_TIMEOUT=${MS_NODE_TIMEOUT:-30}
FLICKR8K_DIR=${1:-./checkpoint_download/Flickr8k}
OUTPUT_DIR=${2:-./output/clip_tiny_pretrain_flickr8k_distributed}
shift $(( $# < 2 ? $# : 2 ))
exec bash "$HERE/clip_vit_b_32_pretrain_on_flickr8k_distributed.sh" "$FLICKR8K_DIR" "$OUTPUT_DIR" \
    --device_target CPU "$@"
