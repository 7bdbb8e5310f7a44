"""Is ms_clip input-bound? Share of wall time spent waiting for data, ViT-B/32 at 224 px.

Runs the two real loops on generated data in the real formats (nothing is mocked):
- zero-shot evaluation (``ms_clip.tasks.zero_shot.evaluate``) over a CIFAR-100-format test set,
  32x32 images upsampled with PIL bicubic to 224 in the mindspore.dataset workers;
- the training loop (``ms_clip.tasks.pretrain.train``) over a Flickr8k-layout folder of 224 px JPEGs,
  decode + RandomResizedCrop + tokenisation in the workers.

    python benchmarks/bench_input_pipeline.py [--steps 6] [--eval_images 256]

Prints the share of each loop's wall time spent inside the data iterator's ``next()`` (near 0 =
the model is the bottleneck) and writes benchmarks/results/input_pipeline.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


class _ShareCatcher(logging.Handler):
    """Picks the input-wait share out of the library's log record (it is logged, not returned)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.shares = []

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for input data" in record.msg and record.args:
            # args: (batches, wall seconds, percent waiting)
            self.shares.append((float(record.args[1]), float(record.args[2]) / 100.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="training steps (batch 32)")
    parser.add_argument("--eval_images", type=int, default=256)
    parser.add_argument("--json", default=os.path.join(HERE, "results", "input_pipeline.json"))
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from _bench_common import finish_host_record, host_record

    host = host_record(what="bench_input_pipeline.py")  # issue 16: every result carries the host

    import mindspore as ms

    from ms_clip import create_model
    from ms_clip.data.classification import write_cifar100
    from ms_clip.demo.synthetic import write_flickr8k
    from ms_clip.run_config import load_run_config
    from ms_clip.tasks import pretrain, zero_shot

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    logging.basicConfig(level=logging.WARNING)
    catcher = _ShareCatcher()
    logging.getLogger("ms_clip.features").addHandler(catcher)
    logging.getLogger("ms_clip.features").setLevel(logging.INFO)

    work = tempfile.mkdtemp(prefix="ms_clip_input_bench_")
    os.environ["MS_CLIP_HOME"] = os.path.join(work, "home")  # keep the class-embedding cache out of the user's
    model = create_model("clip_vit_b_32")

    # Zero-shot evaluation: random pixels are fine, the point is the time split, not the accuracy.
    rng = np.random.default_rng(0)
    n = args.eval_images
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    names = [f"class_{i}" for i in range(100)]
    write_cifar100(work, images, rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist(), names,
                   [f"super_{i}" for i in range(20)])
    eval_cfg = load_run_config(
        os.path.join(REPO, "configs/clip/run_clip_vit_b_32_zero_shot_image_classification_cifar100.yaml"),
        overrides={"eval_dataset.data_loader.dataset_dir": work, "output_dir": os.path.join(work, "zs")})
    model.set_train(False)
    zero_shot.evaluate(model, eval_cfg)
    # The first share comes from encoding the class prompts (no data pipeline), the last from the images.
    eval_wall, eval_share = catcher.shares[-1]

    flickr = write_flickr8k(os.path.join(work, "flickr"), n_images=max(40, 32 * args.steps * 10 // 7 + 8),
                            image_size=224)
    train_cfg = load_run_config(
        os.path.join(REPO, "configs/clip/run_clip_vit_b_32_pretrain_flickr8k.yaml"),
        overrides={"train_dataset.data_loader.dataset_dir": flickr, "output_dir": os.path.join(work, "train"),
                   "runner_config.max_steps": args.steps, "runner_config.epochs": 1,
                   "model.model_config.checkpoint_name_or_path": "", "load_checkpoint": ""})
    summary = pretrain.train(model, train_cfg)

    result = dict(zero_shot_eval=dict(images=n, wall_s=eval_wall, input_wait_share=eval_share),
                  training=dict(steps=summary.get("step"), samples_per_second=summary.get("samples_per_second"),
                                input_wait_share=summary.get("input_wait_share")),
                  cpu_count=os.cpu_count(), mindspore=ms.__version__, host=finish_host_record(host))
    print(f"zero-shot eval  ({n} CIFAR images -> 224 px, ViT-B/32): {100 * eval_share:5.1f}% of "
          f"{eval_wall:.1f} s waiting for data")
    print(f"training loop   ({summary.get('step')} steps x 32, ViT-B/32, 224 px): "
          f"{100 * (summary.get('input_wait_share') or 0):5.1f}% waiting for data, "
          f"{summary.get('samples_per_second') or 0:.1f} samples/s")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"JSON written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
