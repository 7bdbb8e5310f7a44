#!/usr/bin/env bash
# Offline quickstart (`make demo`): ms_clip's whole job end to end, with no network and no downloads.
#   bash scripts/examples/demo.sh [WORK_DIR]        (default ./output/demo; or set DEMO_DIR)
#
# 1. writes the shapes world: image-caption pairs in the real Flickr8k layout, a held-out test set of
#    12 shape classes as real CIFAR-100 pickles, and a few sample images (ms_clip.demo.shapes_world);
# 2. a SHORT contrastive pretraining run of the demo architecture from scratch (run_mindformer.py
#    --run_mode train), with image<->text retrieval evaluated before and after;
# 3. zero-shot classification of the held-out set (--run_mode eval) by the shipped model clip_tiny_shapes
#    (weights inside the package) and by the checkpoint step 2 just trained;
# 4. zero-shot prediction on the sample images (--run_mode predict);
# 5. the Python pipeline API: pipeline("zero_shot_image_classification", model="clip_tiny_shapes", ...).
# Logs of every step are in WORK_DIR/logs. DEMO_EPOCHS / DEMO_IMAGES size the short run.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK_DIR=${1:-${DEMO_DIR:-./output/demo}}
EPOCHS=${DEMO_EPOCHS:-4}
N_IMAGES=${DEMO_IMAGES:-4000}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
export GLOG_v=3  # MindSpore's C++ warnings would drown the output
PRETRAIN_YAML=configs/clip/run_clip_tiny_shapes_pretrain_demo.yaml
ZERO_SHOT_YAML=configs/clip/run_clip_tiny_shapes_zero_shot_demo.yaml
WORLD=$WORK_DIR/world
LOGS=$WORK_DIR/logs
START=$(date +%s)

# A fresh run each time, but only the demo's own sub-folders are removed (WORK_DIR may hold other things).
for sub in world pretrain zero_shot zero_shot_short_run predict logs; do rm -rf "${WORK_DIR:?}/$sub"; done
mkdir -p "$LOGS"

step() { printf '\n=== [%ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }

# run_mindformer.py NAME ARGS...: its log goes to LOGS/NAME.log (progress lines are echoed), its JSON result
# to LOGS/NAME.json.
cli() {
    local name=$1
    shift
    if ! "$PYTHON" run_mindformer.py "$@" 2> >(tee "$LOGS/$name.log" \
            | grep --line-buffered -E "samples/s|mean recall|Top1 Accuracy|error" >&2) > "$LOGS/$name.json"; then
        echo "demo: step '$name' failed; see $LOGS/$name.log" >&2
        exit 1
    fi
}

# show FILE EXPR: print a Python expression over the JSON result `r` of a step.
show() {
    "$PYTHON" -c "import json, sys; r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print($2)" "$1"
}

step "1/5 writing the shapes world to $WORLD"
"$PYTHON" - "$WORLD" "$N_IMAGES" <<'EOF'
import sys
from ms_clip.demo.shapes_world import WORLD_SHAPES, write_shapes_world
paths = write_shapes_world(sys.argv[1], n_images=int(sys.argv[2]), test_per_class=25, n_samples=6)
print(f"  Flickr8k layout:      {paths['flickr8k']}  ({sys.argv[2]} images x 5 captions)")
print(f"  CIFAR-100 test set:   {paths['cifar100']}  (25 held-out images x {len(WORLD_SHAPES)} classes)")
print(f"  sample images:        {paths['samples']}")
print(f"  classes: {', '.join(WORLD_SHAPES)}")
EOF

step "2/5 short pretraining from scratch: run_mindformer.py --run_mode train ($EPOCHS epochs)"
cli pretrain --config "$PRETRAIN_YAML" --run_mode train \
    --train_dataset_dir "$WORLD/Flickr8k" --eval_dataset_dir "$WORLD/Flickr8k" \
    --output_dir "$WORK_DIR/pretrain" --epochs "$EPOCHS" --do_eval True \
    --options "eval_epoch_interval=$EPOCHS"
"$PYTHON" - "$WORK_DIR/pretrain/metrics.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
train = [r for r in rows if r["type"] == "train"]
evals = [r for r in rows if r["type"] == "eval"]
print(f"  {train[-1]['step']} steps, loss {train[0]['loss']:.3f} -> {train[-1]['loss']:.3f}")
for when, r in (("before training", evals[0]), ("after training ", evals[-1])):
    print(f"  test-split retrieval {when}: mean recall {100 * r['mean_recall']:.1f}% "
          f"(image->text R@5 {100 * r['image_to_text_R@5']:.1f}%, text->image R@5 {100 * r['text_to_image_R@5']:.1f}%)")
EOF
PRETRAINED_CKPT=$(show "$LOGS/pretrain.json" "r['checkpoint']")

step "3/5 zero-shot evaluation on the held-out CIFAR-100-format set: run_mindformer.py --run_mode eval"
cli zero_shot_shipped --config "$ZERO_SHOT_YAML" --run_mode eval \
    --eval_dataset_dir "$WORLD/cifar-100-python" --output_dir "$WORK_DIR/zero_shot"
cli zero_shot_short_run --config "$ZERO_SHOT_YAML" --run_mode eval \
    --eval_dataset_dir "$WORLD/cifar-100-python" --output_dir "$WORK_DIR/zero_shot_short_run" \
    --load_checkpoint "$PRETRAINED_CKPT"
show "$LOGS/zero_shot_shipped.json" "f\"  shipped clip_tiny_shapes:        top-1 {100 * r['top1']:.1f}%  top-5 {100 * r['top5']:.1f}%  ({r['num_samples']} images, {r['num_classes']} classes, chance {100 / r['num_classes']:.1f}%)\""
show "$LOGS/zero_shot_short_run.json" "f\"  this demo's $EPOCHS-epoch checkpoint:  top-1 {100 * r['top1']:.1f}%  top-5 {100 * r['top5']:.1f}%  (the shipped model trained longer on more images: scripts/build_demo_model.py)\""

step "4/5 zero-shot prediction on the sample images: run_mindformer.py --run_mode predict"
cli predict --config "$ZERO_SHOT_YAML" --run_mode predict \
    --eval_dataset_dir "$WORLD/cifar-100-python" --output_dir "$WORK_DIR/predict" \
    --predict_data "$WORLD/samples"
"$PYTHON" - "$LOGS/predict.json" "$WORLD/samples" <<'EOF'
import json, os, sys
results = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for name, top in zip(sorted(os.listdir(sys.argv[2])), results):
    print(f"  {name:28s} " + ", ".join(f"{p['label']} {p['score']:.2f}" for p in top))
EOF

step "5/5 the pipeline API"
"$PYTHON" - "$WORLD/samples" <<'EOF'
import glob, os, sys
from ms_clip import pipeline
from ms_clip.demo.shapes_world import WORLD_SHAPES

classifier = pipeline("zero_shot_image_classification", model="clip_tiny_shapes",
                      candidate_labels=list(WORLD_SHAPES))
paths = sorted(glob.glob(os.path.join(sys.argv[1], "*.png")))
print('  classifier = pipeline("zero_shot_image_classification", model="clip_tiny_shapes", candidate_labels=[...])')
for path, top in zip(paths, classifier(paths, top_k=2)):
    print(f"  classifier({os.path.basename(path)!r:30s}) -> " + ", ".join(f"{p['label']} {p['score']:.2f}" for p in top))
# Any labels work, not just the test set's classes:
custom = classifier(paths[0], candidate_labels=["heart", "star", "circle"], hypothesis_template="a photo of a {}.")
print(f"  classifier({os.path.basename(paths[0])!r}, candidate_labels=['heart', 'star', 'circle']) -> {custom[0]}")
EOF

step "done in $(( $(date +%s) - START )) s. Where things went:"
cat <<EOF
  pretraining run:   $WORK_DIR/pretrain  (checkpoint/: weights + config.yaml, plots/loss.png, plots/recall.png,
                     metrics.jsonl, log/train_rank0.log); checkpoint $PRETRAINED_CKPT
  zero-shot eval:    $WORK_DIR/zero_shot  (zero_shot_metrics.json, zero_shot_per_class_accuracy.csv)
  predictions:       $WORK_DIR/predict/results.txt
  logs of each step: $LOGS
Next: README.md, section "From the demo to real use" (real weights, Flickr8k / CIFAR-100, fine-tuning,
distributed runs).
EOF
