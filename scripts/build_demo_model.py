#!/usr/bin/env python
"""Rebuild the shipped offline model ``clip_tiny_shapes`` from scratch, evaluate it, and install it.

    python scripts/build_demo_model.py [--work_dir ./output/build_demo_model] [--epochs 10] [--no_install]

1. writes the shapes world (``ms_clip.demo.shapes_world``): image-caption pairs in the Flickr8k layout
   and a held-out CIFAR-100-format test set of the 12 shape classes;
2. trains ``clip_tiny_shapes`` from random init through ms_clip's own CLI
   (``run_mindformer.py --run_mode train`` with ``configs/clip/run_clip_tiny_shapes_pretrain_demo.yaml``);
3. measures zero-shot top-1/top-5 on the held-out set with ``run_mindformer.py --run_mode eval``
   (``configs/clip/run_clip_tiny_shapes_zero_shot_demo.yaml``) and refuses to install below ``--min_top1``;
4. copies the weights and their config to ``ms_clip/assets/clip_tiny_shapes.{ckpt,yaml}`` (what
   ``CLIPModel.from_pretrained("clip_tiny_shapes")`` loads) with a provenance record
   ``clip_tiny_shapes.json`` (settings, metrics, sha256, wall time).

Everything is seeded, but multi-threaded CPU float sums are not bit-reproducible, so a rebuild gives
a model of the same quality, not the same bytes. About 10-15 minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

NAME = "clip_tiny_shapes"
PRETRAIN_CONFIG = os.path.join("configs", "clip", "run_clip_tiny_shapes_pretrain_demo.yaml")
ZERO_SHOT_CONFIG = os.path.join("configs", "clip", "run_clip_tiny_shapes_zero_shot_demo.yaml")
ASSETS = os.path.join(ROOT, "ms_clip", "assets")

logger = logging.getLogger("build_demo_model")


def run_cli(args: Sequence[str], log_path: str) -> Dict[str, Any]:
    """``python run_mindformer.py ARGS`` from the repo root; its log goes to ``log_path``, and the JSON
    result it prints last is returned. A failure raises with the log's tail."""
    cmd = [sys.executable, os.path.join(ROOT, "run_mindformer.py"), *args]
    logger.info("running %s", " ".join(cmd))
    env = dict(os.environ, GLOG_v="3")
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    if proc.returncode != 0:
        with open(log_path, encoding="utf-8") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"run_mindformer.py exited with {proc.returncode} (log {log_path}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def zero_shot_eval(checkpoint: str, cifar_dir: str, output_dir: str) -> Dict[str, Any]:
    """Zero-shot top-1/top-5 of ``checkpoint`` on ``cifar_dir``, measured by the eval command."""
    os.makedirs(output_dir, exist_ok=True)
    return run_cli(["--config", ZERO_SHOT_CONFIG, "--run_mode", "eval", "--eval_dataset_dir", cifar_dir,
                    "--load_checkpoint", checkpoint, "--output_dir", output_dir,
                    "--options", "zero_shot.cache_class_embeddings=False"],
                   os.path.join(output_dir, "eval.log"))


def install(checkpoint: str, record: Dict[str, Any]) -> str:
    """Copy the weights and their config into ms_clip/assets; returns the installed .ckpt path."""
    from ms_clip.convert import sha256_file
    from ms_clip.registry import config_path_for_checkpoint, load_config

    config_path = config_path_for_checkpoint(checkpoint)
    if config_path is None:
        raise FileNotFoundError(f"no model config beside {checkpoint} (expected config.yaml written by training)")
    # The shipped weights must fit the registry's architecture, or from_pretrained(NAME) would not load them.
    if load_config(config_path).to_dict() != load_config(NAME).to_dict():  # both have no checkpoint_name_or_path
        raise ValueError(f"{config_path} differs from ms_clip/model_configs/{NAME}.yaml; the pretrain YAML's "
                         f"model_config and the registry architecture must be the same")
    os.makedirs(ASSETS, exist_ok=True)
    target = os.path.join(ASSETS, NAME + ".ckpt")
    shutil.copyfile(config_path, os.path.join(ASSETS, NAME + ".yaml"))
    shutil.copyfile(checkpoint, target)
    os.chmod(target, 0o644)  # training checkpoints are written read-only
    record["sha256"] = sha256_file(target)
    record["size_bytes"] = os.path.getsize(target)
    with open(os.path.join(ASSETS, NAME + ".json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", default=os.path.join(ROOT, "output", "build_demo_model"))
    parser.add_argument("--n_images", type=int, default=8000, help="image-caption pairs (90%% train)")
    parser.add_argument("--test_per_class", type=int, default=100, help="held-out test images per shape")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="the world's seed")
    parser.add_argument("--min_top1", type=float, default=0.8, help="refuse to install a weaker model")
    parser.add_argument("--no_install", action="store_true", help="build and evaluate only")
    parser.add_argument("--train_options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra run-config overrides for training (run_mindformer.py --options)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from ms_clip.demo.shapes_world import write_shapes_world

    start = time.time()
    work = os.path.abspath(args.work_dir)
    if os.path.exists(work):
        shutil.rmtree(work)  # a stale world or checkpoint would silently change what is measured
    world = write_shapes_world(os.path.join(work, "world"), n_images=args.n_images,
                               test_per_class=args.test_per_class, seed=args.seed)
    train_out = os.path.join(work, "pretrain")
    os.makedirs(train_out)
    summary = run_cli(["--config", PRETRAIN_CONFIG, "--run_mode", "train", "--train_dataset_dir", world["flickr8k"],
                       "--eval_dataset_dir", world["flickr8k"], "--output_dir", train_out,
                       "--epochs", str(args.epochs), "--do_eval", "False",
                       *(["--options", *args.train_options] if args.train_options else [])],
                      os.path.join(work, "pretrain.log"))
    train_seconds = time.time() - start
    metrics = zero_shot_eval(summary["checkpoint"], world["cifar100"], os.path.join(work, "zero_shot"))
    top1, top5 = metrics["top1"], metrics["top5"]
    logger.info("zero-shot on the held-out set (%d images, %d classes): top-1 %.2f%%, top-5 %.2f%% "
                "(chance %.2f%%); training %.0f s", metrics["num_samples"], metrics["num_classes"], 100 * top1,
                100 * top5, 100 / metrics["num_classes"], train_seconds)
    if top1 < args.min_top1:
        logger.error("top-1 %.4f is below --min_top1 %.2f: not installed (checkpoint %s)", top1, args.min_top1,
                     summary["checkpoint"])
        return 1
    if args.no_install:
        return 0
    record = {"name": NAME, "world": {"n_images": args.n_images, "test_per_class": args.test_per_class,
                                      "seed": args.seed},
              "training": {"config": PRETRAIN_CONFIG, "epochs": args.epochs, "options": args.train_options,
                           "steps": summary["step"], "final_loss": summary["loss"],
                           "samples_per_second": summary["samples_per_second"]},
              "zero_shot": {"config": ZERO_SHOT_CONFIG, **{k: metrics[k] for k in
                                                           ("top1", "top5", "num_samples",
                                                            "num_classes", "num_templates")}},
              "build_seconds": round(time.time() - start)}
    target = install(summary["checkpoint"], record)
    # Re-measure through the registry name, i.e. exactly what users and the demo load.
    installed = zero_shot_eval(NAME, world["cifar100"], os.path.join(work, "zero_shot_installed"))
    if abs(installed["top1"] - top1) > 1e-9:
        raise RuntimeError(f"installed {NAME} scores top-1 {installed['top1']}, the trained checkpoint {top1}")
    logger.info("installed %s (%.1f MB) in %.0f s", target, os.path.getsize(target) / 1e6, time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
