#!/usr/bin/env bash
# Fine-tune pretrained CLIP ViT-B/32 on Flickr8k and evaluate image<->text retrieval before and after.
#   bash scripts/examples/clip_vit_b_32_finetune_on_flickr8k.sh [FLICKR8K_DIR] [OUTPUT_DIR] [extra run_mindformer.py flags]
# Starts from the registry's clip_vit_b_32 weights (downloaded and converted once), or from
# --load_checkpoint CKPT (e.g. a .ckpt written by convert/convert_weight.py). The fine-tuned model is
# OUTPUT_DIR/checkpoint/<prefix>_step*.ckpt and loads with CLIPModel.from_pretrained(path).
set -euo pipefail
cd "$(dirname "$0")/../.."
FLICKR8K_DIR=${1:-./checkpoint_download/Flickr8k}
OUTPUT_DIR=${2:-./output/clip_vit_b_32_finetune_flickr8k}
shift $(( $# < 2 ? $# : 2 ))
PYTHON=${PYTHON:-python}
"$PYTHON" run_mindformer.py \
    --config configs/clip/run_clip_vit_b_32_pretrain_flickr8k.yaml \
    --run_mode finetune \
    --train_dataset_dir "$FLICKR8K_DIR" \
    --eval_dataset_dir "$FLICKR8K_DIR" \
    --do_eval True \
    --output_dir "$OUTPUT_DIR" \
    "$@"
