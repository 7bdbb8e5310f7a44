"""End to end through ``run_mindformer.py`` in subprocesses, on a generated learnable image-caption task in
the real Flickr8k layout:

* the tiny CLIP trained FROM SCRATCH lifts test-split retrieval mean recall far above chance;
* its checkpoint loads with ``CLIPModel.from_pretrained`` and ``--run_mode eval`` reproduces the recall;
* a run killed with SIGKILL mid-training and resumed continues the identical loss curve and schedule;
* user errors end with one ``error:`` line and exit code 1.

One training run (module fixture) serves every assertion about it.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "run_mindformer.py")
CONFIG = os.path.join(ROOT, "configs", "clip", "run_clip_tiny_pretrain_flickr8k.yaml")
EPOCHS = 12
N_IMAGES = 600  # 420 train (13 steps of 32 per epoch) / 60 dev / 120 test


def _env():
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MS_CLIP_DEBUG", None)
    return env


def _cli(*args):
    return [sys.executable, CLI, "--config", CONFIG, *args]


def _run(args, timeout=600):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT)


def _metrics(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    from ms_clip.demo.synthetic import write_flickr8k

    return write_flickr8k(str(tmp_path_factory.mktemp("synthetic")), n_images=N_IMAGES, seed=0, image_size=48)


@pytest.fixture(scope="module")
def trained(flickr, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run"))
    proc = _run(_cli("--run_mode", "train", "--train_dataset_dir", flickr, "--eval_dataset_dir", flickr,
                     "--output_dir", out, "--epochs", str(EPOCHS), "--do_eval", "True",
                     "--options", "eval_epoch_interval=6"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_training_from_scratch_lifts_recall_far_above_chance(trained):
    from ms_clip.eval.retrieval import chance_recall

    out, summary, _ = trained
    evals = [r for r in _metrics(os.path.join(out, "metrics.jsonl")) if r["type"] == "eval"]
    before, after = evals[0], evals[-1]
    assert before["step"] == 0 and after["step"] == summary["step"] == EPOCHS * (420 // 32)
    chance = chance_recall(after["num_images"], 5)["mean_recall"]
    message = (f"test-split mean recall: chance {100 * chance:.1f}%, before training {100 * before['mean_recall']:.1f}%, "
               f"after {summary['step']} steps {100 * after['mean_recall']:.1f}% (t->i R@1 "
               f"{100 * after['text_to_image_R@1']:.1f}%, i->t R@5 {100 * after['image_to_text_R@5']:.1f}%)")
    print(message)
    assert before["mean_recall"] < 3 * chance, message
    assert after["mean_recall"] > 6 * chance and after["mean_recall"] > 0.25, message
    assert summary["samples_per_second"] > 0
    losses = [r["loss"] for r in _metrics(os.path.join(out, "metrics.jsonl")) if r["type"] == "train"]
    assert sum(losses[-13:]) / 13 < 0.6 * sum(losses[:13]) / 13


def test_run_outputs_checkpoints_logs_and_plots(trained):
    from ms_clip import CLIPModel

    out, summary, _ = trained
    ckpt_dir = os.path.join(out, "checkpoint")
    latest = json.load(open(os.path.join(ckpt_dir, "latest.json")))
    assert latest["state"]["step"] == summary["step"] and latest["state"]["epoch"] == EPOCHS
    kept = sorted(f for f in os.listdir(ckpt_dir) if f.endswith(".ckpt"))
    assert len(kept) == 3 and kept[-1] == latest["weights"]  # keep_checkpoint_max: 3
    assert not [f for f in os.listdir(ckpt_dir) if f.startswith(".tmp")]
    model = CLIPModel.from_pretrained(os.path.join(ckpt_dir, latest["weights"]))  # config.yaml beside it
    assert model.config.vision_config.image_size == 32
    for name in ("plots/loss.png", "plots/recall.png", "log/train_rank0.log", "train_summary.json"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    log = open(os.path.join(out, "log", "train_rank0.log")).read()
    assert "samples/s" in log and "mean recall" in log


def test_eval_mode_reproduces_the_recall_from_the_checkpoint(trained, flickr, tmp_path):
    out, summary, _ = trained
    proc = _run(_cli("--run_mode", "eval", "--eval_dataset_dir", flickr, "--output_dir", str(tmp_path),
                     "--load_checkpoint", summary["checkpoint"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    final = [r for r in _metrics(os.path.join(out, "metrics.jsonl")) if r["type"] == "eval"][-1]
    for key in ("image_to_text_R@1", "text_to_image_R@5", "mean_recall"):
        assert metrics[key] == pytest.approx(final[key], abs=1e-9)
    assert json.load(open(tmp_path / "retrieval_results.json"))["mean_recall"] == metrics["mean_recall"]
    assert "mean_recall = " in proc.stderr


def test_sigkill_then_resume_continues_the_same_curve(trained, flickr, tmp_path):
    """Kill -9 after step 25 (checkpoints every 10 steps), resume, stop at step 40: every step's loss and lr
    equals the uninterrupted run's (which never wrote a checkpoint at those steps)."""
    reference_out, _, _ = trained
    common = ["--train_dataset_dir", flickr, "--output_dir", str(tmp_path), "--epochs", str(EPOCHS),
              "--do_eval", "False", "--options", "callbacks.1.save_checkpoint_steps=10", "runner_config.max_steps=40"]
    metrics_path = tmp_path / "metrics.jsonl"
    proc = subprocess.Popen(_cli("--run_mode", "train", *common), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if metrics_path.exists() and any(r["step"] >= 25 for r in _metrics(metrics_path)[-3:]):
                break
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    latest = json.load(open(tmp_path / "checkpoint" / "latest.json"))
    assert latest["state"]["step"] == 20 and latest["state"]["batch_in_epoch"] == 7  # mid-epoch 2
    killed_at = max(r["step"] for r in _metrics(metrics_path))
    assert killed_at >= 25

    resumed = _run(_cli("--run_mode", "train", *common, "--resume_training", "True"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "step 20, epoch 2, batch 7" in resumed.stderr
    ours = {r["step"]: r for r in _metrics(metrics_path) if r["type"] == "train"}
    reference = {r["step"]: r for r in _metrics(os.path.join(reference_out, "metrics.jsonl")) if r["type"] == "train"}
    assert sorted(ours) == list(range(1, 41))  # steps 21..killed_at re-run once, not duplicated
    for step in range(1, 41):
        assert ours[step]["lr"] == pytest.approx(reference[step]["lr"], rel=1e-12), step
        assert ours[step]["loss"] == pytest.approx(reference[step]["loss"], rel=1e-5, abs=1e-6), step


def test_cli_user_errors_exit_1_with_one_line(flickr, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(CONFIG).read().replace("  epochs: 20", "  epoch: 20"))
    proc = _run([sys.executable, CLI, "--config", str(bad), "--run_mode", "train", "--train_dataset_dir", flickr])
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "unknown key 'runner_config.epoch'. Did you mean 'epochs'?" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _run(_cli("--run_mode", "train", "--train_dataset_dir", str(tmp_path / "missing"),
                     "--output_dir", str(tmp_path / "o")))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"dataset_dir not found: {tmp_path / 'missing'}" in proc.stderr
