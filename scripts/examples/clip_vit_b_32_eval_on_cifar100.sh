#!/usr/bin/env bash
# Zero-shot CIFAR-100 evaluation of CLIP ViT-B/32 (top-1 / top-5, per-class accuracy in OUTPUT_DIR).
#   bash scripts/examples/clip_vit_b_32_eval_on_cifar100.sh [CIFAR_DIR] [OUTPUT_DIR] [extra run_mindformer.py flags]
# CIFAR_DIR is the extracted cifar-100-python folder (https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz).
# Weights: the registry name in the YAML (downloaded and converted once), or --load_checkpoint CKPT.
set -euo pipefail
cd "$(dirname "$0")/../.."
CIFAR_DIR=${1:-./cifar-100-python}
OUTPUT_DIR=${2:-./output/clip_vit_b_32_zero_shot_cifar100}
shift $(( $# < 2 ? $# : 2 ))
PYTHON=${PYTHON:-python}
"$PYTHON" run_mindformer.py \
    --config configs/clip/run_clip_vit_b_32_zero_shot_image_classification_cifar100.yaml \
    --run_mode eval \
    --eval_dataset_dir "$CIFAR_DIR" \
    --output_dir "$OUTPUT_DIR" \
    "$@"
