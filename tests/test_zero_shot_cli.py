"""End to end: Trainer(task="zero_shot_image_classification") and run_mindformer.py --run_mode eval|predict.

A tiny model is saved with ``save_pretrained`` and loaded by the CLI through ``--load_checkpoint``;
the CLI's metrics must equal ``ms_clip.tasks.zero_shot.evaluate`` run in-process on the same
weights and data. These tests wait for the Trainer and CLI (skipped until those files exist).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import mindspore as ms

from ms_clip.data.classification import write_cifar100
from ms_clip import create_model
from ms_clip.run_config import load_run_config
from ms_clip.tasks import zero_shot as task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "run_mindformer.py")
YAML = os.path.join(ROOT, "configs", "clip", "run_clip_tiny_zero_shot_image_classification_cifar100.yaml")
CLASSES = ["apple", "aquarium_fish", "bicycle", "rocket", "sunflower"]

needs_cli = pytest.mark.skipif(not os.path.isfile(CLI), reason="run_mindformer.py has not landed yet")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    base = tmp_path_factory.mktemp("zs_cli")
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (21, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, len(CLASSES), 21)
    write_cifar100(base, images, labels, labels % 2, CLASSES, ["a", "b"], "test")
    ms.set_seed(5)
    model = create_model("clip_tiny")
    model.save_pretrained(str(base / "tiny"))
    for i in range(2):
        Image.fromarray(images[i]).save(base / f"img{i}.png")
    return base, model, images


def _run(*args):
    proc = subprocess.run([sys.executable, CLI, "--config", YAML, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _in_process_metrics(setup, out):
    base, model, _ = setup
    cfg = load_run_config(YAML, overrides={"output_dir": str(out),
                                           "eval_dataset.data_loader.dataset_dir": str(base / "cifar-100-python")})
    return task.evaluate(model, cfg)


@needs_cli
def test_cli_eval_matches_in_process_evaluate(setup, tmp_path):
    base = setup[0]
    log = _run("--run_mode", "eval", "--eval_dataset_dir", str(base / "cifar-100-python"),
               "--load_checkpoint", str(base / "tiny" / "model.ckpt"), "--output_dir", str(tmp_path / "cli"))
    assert "Top1 Accuracy = " in log
    metrics = json.loads((tmp_path / "cli" / "zero_shot_metrics.json").read_text())
    expected = _in_process_metrics(setup, tmp_path / "direct")
    assert (metrics["top1"], metrics["top5"], metrics["num_samples"]) == (expected["top1"], expected["top5"], 21)
    assert (tmp_path / "cli" / "zero_shot_per_class_accuracy.csv").is_file()


@needs_cli
def test_cli_predict_files_and_folders(setup, tmp_path):
    base = setup[0]
    _run("--run_mode", "predict", "--eval_dataset_dir", str(base / "cifar-100-python"),
         "--load_checkpoint", str(base / "tiny" / "model.ckpt"), "--output_dir", str(tmp_path),
         "--predict_data", str(base / "img0.png"), str(base / "img1.png"), str(base))
    lines = [json.loads(x) for x in (tmp_path / "results.txt").read_text().splitlines()]
    assert len(lines) == 4  # two files, then the folder's two images
    names = {c.replace("_", " ") for c in CLASSES}
    for line in lines:
        preds = line["predictions"]
        assert len(preds) == 3 and {p["label"] for p in preds} <= names  # top_k: 3 from the yaml
        assert [p["score"] for p in preds] == sorted((p["score"] for p in preds), reverse=True)
    assert lines[0]["predictions"] == lines[2]["predictions"]  # img0.png given directly and via the folder


@needs_cli
def test_cli_eval_missing_dataset_names_the_file(setup, tmp_path):
    base = setup[0]
    proc = subprocess.run([sys.executable, CLI, "--config", YAML, "--run_mode", "eval",
                           "--eval_dataset_dir", str(tmp_path / "nothing_here" / "cifar-100-python"),
                           "--load_checkpoint", str(base / "tiny" / "model.ckpt"), "--output_dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "nothing_here" in proc.stderr + proc.stdout


@pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "ms_clip", "trainer.py")), reason="Trainer has not landed yet")
def test_trainer_evaluate_and_predict(setup, tmp_path):
    import yaml

    from ms_clip import Trainer

    base, model, images = setup
    with open(YAML) as f:
        config = yaml.safe_load(f)
    config["output_dir"] = str(tmp_path)
    with open(tmp_path / "run.yaml", "w") as f:
        yaml.safe_dump(config, f)
    trainer = Trainer(args=str(tmp_path / "run.yaml"), task="zero_shot_image_classification", model=model,
                      eval_dataset=str(base / "cifar-100-python"))
    result = trainer.evaluate()
    expected = _in_process_metrics(setup, tmp_path / "direct")
    assert result["Top1 Accuracy"] == expected["top1"] and result["top5"] == expected["top5"]
    preds = trainer.predict(input_data=Image.fromarray(images[0]), top_k=2)
    assert len(preds) == 1 and len(preds[0]) == 2
