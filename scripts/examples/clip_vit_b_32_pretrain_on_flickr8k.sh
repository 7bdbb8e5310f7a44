#!/usr/bin/env bash
# Contrastive training of CLIP ViT-B/32 on Flickr8k from scratch, with retrieval evaluation on the test split.
#   bash scripts/examples/clip_vit_b_32_pretrain_on_flickr8k.sh [FLICKR8K_DIR] [OUTPUT_DIR] [extra run_mindformer.py flags]
# FLICKR8K_DIR holds Flickr8k_Dataset/Flickr8k_Dataset/*.jpg and Flickr8k_text/ (Flickr8k.token.txt,
# Flickr_8k.{train,dev,test}Images.txt). Extra flags, e.g.: --epochs 10 --batch_size 64 --device_target Ascend
# Interrupted? Run again with --resume_training True: weights, optimizer, schedule and data position continue.
set -euo pipefail
cd "$(dirname "$0")/../.."
FLICKR8K_DIR=${1:-./checkpoint_download/Flickr8k}
OUTPUT_DIR=${2:-./output/clip_vit_b_32_pretrain_flickr8k}
shift $(( $# < 2 ? $# : 2 ))
PYTHON=${PYTHON:-python}
"$PYTHON" run_mindformer.py \
    --config configs/clip/run_clip_vit_b_32_pretrain_flickr8k.yaml \
    --run_mode train \
    --train_dataset_dir "$FLICKR8K_DIR" \
    --eval_dataset_dir "$FLICKR8K_DIR" \
    --do_eval True \
    --output_dir "$OUTPUT_DIR" \
    "$@"
