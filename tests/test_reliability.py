"""Reliability of training runs (issue 12, items 4-9 and 12): no lost checkpoints, one run per output_dir,
resumable epoch ends, clean stops on SIGTERM/SIGINT, survival of SIGKILL and of a full disk, and errors that
name their culprit.

Training goes through ``run_mindformer.py`` (in-process ``main`` where a clean process is not needed, a
subprocess where signals are sent) with the tiny CLIP on a small synthetic Flickr8k (42 training images:
5 steps of 8 per epoch).
"""
import errno
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "run_mindformer.py")
CONFIG = os.path.join(ROOT, "configs", "clip", "run_clip_tiny_pretrain_flickr8k.yaml")
ZERO_SHOT_CONFIG = os.path.join(ROOT, "configs", "clip", "run_clip_tiny_shapes_zero_shot_demo.yaml")
STEPS_PER_EPOCH = 5  # 42 training images, batch 8
EPOCHS = 2


def _env(**extra):
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)
    env.pop("MS_CLIP_DEBUG", None)
    return env


def _train_args(flickr, out, *extra, epochs=EPOCHS, save_steps=1):
    """CLI arguments of a small training run (no evaluation, a log line and a checkpoint every step)."""
    return ["--config", CONFIG, "--run_mode", "train", "--train_dataset_dir", flickr, "--output_dir", str(out),
            "--epochs", str(epochs), "--batch_size", "8", "--do_eval", "False", *extra,
            "--options", "runner_config.log_interval=1", "train_dataset.num_parallel_workers=1",
            f"callbacks.1.save_checkpoint_steps={save_steps}", "callbacks.1.keep_checkpoint_max=1",
            "lr_schedule.warmup_steps=2"]


def _main(argv):
    """run_mindformer.main in this process (no interpreter start-up); returns its JSON result line's object."""
    sys.path.insert(0, ROOT)
    try:
        import run_mindformer
    finally:
        sys.path.remove(ROOT)
    return run_mindformer.main(argv)


def _metrics(path):
    from ms_clip.train.callbacks import read_metrics

    return [r for r in read_metrics(str(path)) if r.get("type") == "train"]


def _latest(out):
    with open(os.path.join(out, "checkpoint", "latest.json")) as f:
        return json.load(f)


def _temp_files(directory):
    from ms_clip.fileio import TMP_PREFIX

    return [os.path.join(d, n) for d, _, names in os.walk(directory) for n in names if n.startswith(TMP_PREFIX)]


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    from ms_clip.demo.synthetic import write_flickr8k

    return write_flickr8k(str(tmp_path_factory.mktemp("flickr")), n_images=60, seed=0, image_size=32)


@pytest.fixture(scope="module")
def one_epoch_run(flickr, tmp_path_factory):
    """One epoch whose last step writes the checkpoint (save_checkpoint_steps = steps per epoch)."""
    out = tmp_path_factory.mktemp("one_epoch")
    assert _main(_train_args(flickr, out, epochs=1, save_steps=STEPS_PER_EPOCH)) == 0
    return str(out)


# --------------------------------------------------------------------------- 4. keep_checkpoint_max=1


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def test_keep_one_checkpoint_survives_a_kill_while_pruning(tmp_path, monkeypatch):
    """The pointer must move to the new checkpoint before the old one is deleted."""
    from ms_clip import create_model
    from ms_clip.train.checkpoint import CheckpointManager
    from ms_clip.weights import read_checkpoint

    model = create_model("clip_tiny")
    manager = CheckpointManager(str(tmp_path), "clip", keep=1)
    moments = {"adam_m.logit_scale": np.zeros((), np.float32), "adam_v.logit_scale": np.zeros((), np.float32)}
    manager.save(model, moments, {"step": 1, "epoch": 0, "batch_in_epoch": 1}, {})
    real_remove = os.remove

    def remove_then_die(path, *args, **kwargs):
        real_remove(path, *args, **kwargs)
        if not os.path.basename(path).startswith(".tmp-"):  # a kept checkpoint file, not a temp file
            raise _Killed(path)

    monkeypatch.setattr(os, "remove", remove_then_die)
    monkeypatch.setattr(os, "unlink", remove_then_die)
    with pytest.raises(_Killed):
        manager.save(model, moments, {"step": 2, "epoch": 0, "batch_in_epoch": 2}, {})
    monkeypatch.undo()
    record = CheckpointManager(str(tmp_path), "clip", keep=1).load()
    assert record["state"]["step"] == 2
    assert read_checkpoint(record["weights_path"]) and read_checkpoint(record["optimizer_path"])
    # The next save finishes the interrupted pruning.
    manager.save(model, moments, {"step": 3, "epoch": 0, "batch_in_epoch": 3}, {})
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".ckpt")) == ["clip_step0000003.ckpt"]
    assert sorted(os.listdir(tmp_path / "train_state")) == ["clip_step0000003.ckpt", "clip_step0000003.json"]


# --------------------------------------------------------------------------- 5. one run per output_dir

_HOLDER = """
import sys, time
from ms_clip.train.run_lock import lock_output_dir
with lock_output_dir(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold_lock(directory):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(directory)], stdout=subprocess.PIPE, text=True,
                              env=_env(), cwd=ROOT)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_run_on_a_busy_output_dir_fails_at_once_naming_the_holder(flickr, tmp_path):
    from ms_clip.errors import MsClipError

    holder = _hold_lock(tmp_path)
    try:
        start = time.time()
        with pytest.raises(MsClipError, match=rf"in use by another run \(PID {holder.pid} on ") as err:
            _main(_train_args(flickr, tmp_path))
        assert "\n" not in str(err.value) and time.time() - start < 10  # before any compilation
        assert not os.path.exists(tmp_path / "metrics.jsonl") and not os.path.exists(tmp_path / "checkpoint")
        with pytest.raises(MsClipError, match=rf"PID {holder.pid}"):  # evaluation writes there too
            _main(["--config", ZERO_SHOT_CONFIG, "--run_mode", "eval", "--output_dir", str(tmp_path)])
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    from ms_clip.train.run_lock import LOCK_NAME, lock_output_dir

    holder = _hold_lock(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert os.path.exists(tmp_path / LOCK_NAME)  # the killed run could not clean up
    with caplog.at_level("INFO", logger="ms_clip"):
        with lock_output_dir(str(tmp_path)):
            info = open(tmp_path / LOCK_NAME).read()
            assert str(os.getpid()) in info
            with lock_output_dir(str(tmp_path)):  # re-entrant in one process (CLI, then train())
                pass
    assert f"PID {holder.pid}" in caplog.text and "stale" in caplog.text
    assert not os.path.exists(tmp_path / LOCK_NAME)


# --------------------------------------------------------------------------- 6. epoch boundaries


def test_checkpoint_from_an_epochs_last_step_resumes_and_extends_the_run(one_epoch_run, flickr, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(one_epoch_run, out)
    latest = _latest(out)["state"]
    assert latest["step"] == STEPS_PER_EPOCH
    assert _main(_train_args(flickr, out, "--resume_training", "True", epochs=2, save_steps=STEPS_PER_EPOCH)) == 0
    state = _latest(out)["state"]
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2 * STEPS_PER_EPOCH, 2, 0)
    assert [r["step"] for r in _metrics(os.path.join(out, "metrics.jsonl"))] == list(range(1, 2 * STEPS_PER_EPOCH + 1))


# --------------------------------------------------------------------------- 7. --resume_training PATH


def test_cli_resume_training_accepts_a_checkpoint_path(one_epoch_run, flickr, tmp_path):
    path = os.path.join(one_epoch_run, "checkpoint", _latest(one_epoch_run)["weights"])
    assert _main(_train_args(flickr, tmp_path, "--resume_training", path, epochs=2, save_steps=STEPS_PER_EPOCH)) == 0
    assert _latest(tmp_path)["state"]["step"] == 2 * STEPS_PER_EPOCH
    assert os.path.isfile(path)  # new checkpoints go to this run's output_dir, the source is left alone
    from ms_clip.train.checkpoint import resolve_resume
    from ms_clip.weights import WeightsError

    with pytest.raises(WeightsError, match="checkpoint not found: /nowhere.ckpt"):
        resolve_resume("/nowhere.ckpt", str(tmp_path))


# --------------------------------------------------------------------------- 8. temp files, full disk


def test_leftover_temp_files_are_removed_when_a_run_starts(one_epoch_run, flickr, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(one_epoch_run, out)
    leftovers = [os.path.join(out, "checkpoint", ".tmp-abc123.ckpt"), os.path.join(out, "checkpoint", ".tmp-x.tmp"),
                 os.path.join(out, "checkpoint", "train_state", ".tmp-def456.json")]
    for path in leftovers:
        with open(path, "wb") as f:
            f.write(b"\0" * 4096)
    handlers = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)]
    # Same number of epochs: nothing left to train, but the start-up cleans the checkpoint directory.
    assert _main(_train_args(flickr, out, "--resume_training", "True", epochs=1)) == 0
    assert _temp_files(out) == []
    # The training loop's stop handlers are gone again.
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)] == handlers


def test_disk_full_during_a_save_names_the_directory_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import mindspore as ms

    from ms_clip import create_model
    from ms_clip.errors import MsClipError
    from ms_clip.train.checkpoint import CheckpointManager

    model = create_model("clip_tiny")
    manager = CheckpointManager(str(tmp_path / "checkpoint"), "clip", keep=2)
    moments = {"adam_m.logit_scale": np.zeros((), np.float32), "adam_v.logit_scale": np.zeros((), np.float32)}
    manager.save(model, moments, {"step": 1, "epoch": 0, "batch_in_epoch": 1}, {})

    def full_disk(save_obj, ckpt_file_name, *args, **kwargs):
        # What MindSpore does: write <name>.tmp, and the disk fills up in the middle.
        with open(os.path.splitext(ckpt_file_name)[0] + ".tmp", "wb") as f:
            f.write(b"\0" * 100_000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ms, "save_checkpoint", full_disk)
    with pytest.raises(MsClipError) as err:
        manager.save(model, moments, {"step": 2, "epoch": 0, "batch_in_epoch": 2}, {})
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "checkpoint") in message
    assert "no space left" in message.lower() and "MB" in message
    assert _temp_files(str(tmp_path)) == []
    assert CheckpointManager(str(tmp_path / "checkpoint")).load()["state"]["step"] == 1  # still resumable


# --------------------------------------------------------------------------- 12. errors naming the culprit


def test_non_utf8_caption_files_are_named(tmp_path):
    from ms_clip.data.captions import DataError, read_flickr8k, read_json_captions
    from ms_clip.demo.synthetic import write_flickr8k

    root = write_flickr8k(str(tmp_path / "f"), n_images=6, seed=0, image_size=16)
    token = os.path.join(root, "Flickr8k_text", "Flickr8k.token.txt")
    with open(token, "ab") as f:
        f.write("x.jpg#0\tun caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"{token}: not UTF-8 text .*byte \d+"):
        read_flickr8k(root)
    json_dir = tmp_path / "json"
    json_dir.mkdir()
    (json_dir / "en_train.json").write_bytes('[{"image": "a.jpg", "caption": ["caf\u00e9"]}]'.encode("latin-1"))
    with pytest.raises(DataError, match=rf"{json_dir / 'en_train.json'}: not UTF-8 text"):
        read_json_captions(str(json_dir))


def test_empty_latest_json_is_named(tmp_path):
    from ms_clip.errors import MsClipError
    from ms_clip.train.checkpoint import CheckpointManager

    (tmp_path / "latest.json").write_text("")
    with pytest.raises(MsClipError, match=rf"{tmp_path / 'latest.json'}: .*not valid JSON"):
        CheckpointManager(str(tmp_path)).load()


def test_bad_image_with_on_bad_image_fail_surfaces_our_one_line_error(tmp_path):
    from ms_clip.data.captions import DataError, read_flickr8k
    from ms_clip.data.pipeline import ImageTransform, build_caption_dataset, build_image_dataset
    from ms_clip.demo.synthetic import write_flickr8k

    root = write_flickr8k(str(tmp_path / "f"), n_images=10, seed=0, image_size=16)
    records = read_flickr8k(root, "all")
    bad = records.image_paths[3]
    with open(bad, "wb") as f:
        f.write(b"not an image")
    dataset, _ = build_caption_dataset(records, 4, ImageTransform(16), shuffle=False, on_bad_image="fail",
                                       num_parallel_workers=1)
    with pytest.raises(DataError) as err:
        for _ in dataset.create_tuple_iterator(num_epochs=1):
            pass
    assert "\n" not in str(err.value) and bad in str(err.value) and "on_bad_image: skip" in str(err.value)
    dataset, _ = build_image_dataset(records, 4, ImageTransform(16), on_bad_image="fail", num_parallel_workers=1)
    with pytest.raises(DataError, match=bad):
        for _ in dataset.create_dict_iterator(num_epochs=1):
            pass


# --------------------------------------------------------------------------- 9. SIGTERM / SIGINT


@pytest.fixture(scope="module")
def reference(flickr, tmp_path_factory):
    """An uninterrupted run: the loss curve every interrupted run must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    proc = subprocess.run([sys.executable, CLI, *_train_args(flickr, out)], capture_output=True, text=True,
                          timeout=300, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    curve = {r["step"]: r for r in _metrics(out / "metrics.jsonl")}
    assert sorted(curve) == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    return curve


def _same_curve(out, reference):
    ours = {r["step"]: r for r in _metrics(os.path.join(out, "metrics.jsonl"))}
    assert sorted(ours) == sorted(reference)
    for step, record in reference.items():
        assert ours[step]["lr"] == pytest.approx(record["lr"], rel=1e-12), step
        assert ours[step]["loss"] == pytest.approx(record["loss"], rel=1e-5, abs=1e-6), step


def _wait_for_step(proc, metrics_path, above, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return None
        try:
            steps = [r["step"] for r in _metrics(metrics_path)]
        except OSError:
            steps = []
        if steps and max(steps) > above:
            return max(steps)
        time.sleep(0.05)
    raise AssertionError(f"no step above {above} within {timeout} s")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_at_a_step_boundary_with_a_checkpoint_and_the_resume_command(
        signum, code, flickr, reference, tmp_path):
    out = tmp_path / "run"
    # Slow saves: the signal lands inside the save that follows the logged step, not inside a compiled graph
    # run, where MindSpore's own SIGINT handler turns SIGINT into SIGTERM (see loop._StopSignals.reassert).
    env = _env(MS_CLIP_TEST_SAVE_DELAY="0.3")
    with open(tmp_path / "stderr.txt", "w") as log:  # a file, not a pipe nobody reads while it runs
        proc = subprocess.Popen([sys.executable, CLI, *_train_args(flickr, out)], stdout=subprocess.DEVNULL,
                                stderr=log, env=env, cwd=ROOT)
    try:
        assert _wait_for_step(proc, out / "metrics.jsonl", 1) is not None, "the run ended before the signal"
        proc.send_signal(signum)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr
    last = max(r["step"] for r in _metrics(out / "metrics.jsonl"))
    assert 2 <= last < EPOCHS * STEPS_PER_EPOCH
    assert _latest(out)["state"]["step"] == last  # the step it stopped after was saved
    assert f"training stopped by {signal.Signals(signum).name} after step {last}; checkpoint " in stderr
    command = [line for line in stderr.splitlines() if "--resume_training True" in line]
    assert command, stderr[-3000:]
    argv = shlex.split(command[-1].split("resume with: ", 1)[1])
    assert argv[argv.index("--resume_training") + 1] == "True" and argv.count("--resume_training") == 1
    if signum == signal.SIGTERM:  # resuming with the printed command continues the very same curve
        resumed = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "resumed from" in resumed.stderr
        _same_curve(out, reference)


# --------------------------------------------------------------------------- 8. the SIGKILL loop


def test_sigkill_at_random_moments_then_resume_gives_the_same_curve(flickr, reference, tmp_path):
    """Kill -9 at random moments (saves are slowed down by a test-only delay, so most kills land inside a
    save), resume after each kill; the final curve equals the uninterrupted run's, and no temp file is left."""
    from ms_clip.train.checkpoint import CheckpointManager
    from ms_clip.weights import read_checkpoint

    out = tmp_path / "run"
    rng = random.Random(12)
    env = _env(MS_CLIP_TEST_SAVE_DELAY="0.05")
    kills = inside_writes = 0
    for attempt in range(6):
        resumable = os.path.isfile(out / "checkpoint" / "latest.json")
        resume = ["--resume_training", "True"] if resumable else []
        # Steps the killed run logged after its last checkpoint are still in metrics.jsonl until the new run
        # starts: wait for a step beyond them.
        seen = max([r["step"] for r in _metrics(out / "metrics.jsonl")], default=0)
        with open(tmp_path / "stderr.txt", "w") as log:
            proc = subprocess.Popen([sys.executable, CLI, *_train_args(flickr, out, *resume)],
                                    stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=ROOT)
        try:
            if kills < 3 and _wait_for_step(proc, out / "metrics.jsonl", seen) is not None:
                time.sleep(rng.uniform(0.0, 1.0))
                proc.send_signal(signal.SIGKILL)
                kills += proc.wait(timeout=60) == -signal.SIGKILL
                inside_writes += bool(_temp_files(str(out)))  # evidence that the kill landed inside a write
                # Whatever the moment, "latest" is a complete, loadable checkpoint (or there is none yet).
                if os.path.isfile(out / "checkpoint" / "latest.json"):
                    record = CheckpointManager(str(out / "checkpoint")).load()
                    assert read_checkpoint(record["weights_path"]) and read_checkpoint(record["optimizer_path"])
                continue
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
        break
    assert kills == 3
    print(f"{kills} kills, {inside_writes} of them left a temporary file (killed inside a write)")
    _same_curve(out, reference)
    assert _temp_files(str(out)) == []
