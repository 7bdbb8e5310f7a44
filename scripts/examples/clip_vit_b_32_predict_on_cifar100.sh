#!/usr/bin/env bash
# Zero-shot prediction with CLIP ViT-B/32 against the CIFAR-100 class names (top 3 per image).
#   bash scripts/examples/clip_vit_b_32_predict_on_cifar100.sh CIFAR_DIR IMAGE_OR_DIR_OR_URL [MORE ...]
# The class names are read from CIFAR_DIR/meta; results go to ./output/.../results.txt (one JSON per line).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -lt 2 ]; then
    echo "usage: $0 CIFAR_DIR IMAGE_OR_DIR_OR_URL [MORE ...]" >&2
    exit 2
fi
CIFAR_DIR=$1
shift
PYTHON=${PYTHON:-python}
"$PYTHON" run_mindformer.py \
    --config configs/clip/run_clip_vit_b_32_zero_shot_image_classification_cifar100.yaml \
    --run_mode predict \
    --eval_dataset_dir "$CIFAR_DIR" \
    --output_dir "${OUTPUT_DIR:-./output/clip_vit_b_32_zero_shot_cifar100}" \
    --predict_data "$@"
