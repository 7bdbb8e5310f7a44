"""Exact large-batch contrastive accumulation (issue #16, item 1).

``gradient_accumulation_steps: N`` with micro-batches of B samples trains on ONE contrastive batch of N * B
(GradCache in ``ms_clip.train.loop``). The proof: from the same initial weights and the same samples in the same
order, ``STEPS`` optimizer steps with (B=8, N=4) and with (B=32, N=1) give the same weights, in one process (graph
and PyNative mode) and on 2 ``msrun`` workers (2 x B=4 x N=4, features gathered across the workers) against one
process (B=32, N=1). The old scheme, where each micro-batch is its own contrastive batch, is reproduced by hand
and shown to differ (so the comparison can fail).

Weights are compared per tensor by ``max_relative(a, b) = max|a - b| / max(max|b|, 1e-30)`` (the worst element's
error relative to the tensor's largest entry). AdamW runs with the training defaults (betas 0.9/0.98, weight decay
0.1, gradient clipping at norm 1.0) except ``eps = 1e-3``: with CLIP's eps = 1e-6, Adam divides every gradient
element by its own magnitude, so elements whose gradient is ~1e-4 of their tensor's largest turn float32 rounding
(~1e-7 relative, the summation order of a 32-row vs four 8-row matrix products) into ~1e-5 weight differences --
two big-batch runs whose only difference is the order of the samples inside the batch (mathematically the same
step) already differ by 2.2e-5 after 3 steps at lr 1e-3 (measured 2026-12-01). With eps = 1e-3 that noise floor is
2.2e-6 and the comparison measures the gradients, which agree to ~1e-6 (``test_gradients_of_one_step_...``).
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICRO, ACCUM, BIG, STEPS = 8, 4, 32, 3
WORKERS, WORKER_MICRO = 2, 4  # 2 workers x 4 samples x 4 micro-batches = 32
LR = 1e-3
OPTIMIZER = {"weight_decay": 0.1, "eps": 1e-3}
TOLERANCE = 1e-5
EOT = 49407


def max_relative(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b| / max(max|b|, 1e-30): the per-tensor relative error used throughout this file."""
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))


def _step_samples(step: int):
    """The BIG samples of optimizer step ``step`` (images [BIG, 3, 32, 32], token ids [BIG, 77], EOT then zeros)."""
    rng = np.random.default_rng(1000 + step)
    image = rng.standard_normal((BIG, 3, 32, 32)).astype(np.float32)
    text = rng.integers(1, 5000, (BIG, 77)).astype(np.int32)
    for row, length in enumerate(rng.integers(3, 20, BIG)):
        text[row, length] = EOT
        text[row, length + 1:] = 0
    return image, text


def _micro_batches(step: int, micro: int, world_size: int = 1, rank: int = 0):
    """This rank's micro-batches of a step: global micro-batch j holds samples [j*micro*W, (j+1)*micro*W), split
    in contiguous per-rank pieces (how ms_clip.data.pipeline shards a batch)."""
    from mindspore import Tensor

    image, text = _step_samples(step)
    per_global = micro * world_size
    out = []
    for j in range(BIG // per_global):
        start = j * per_global + rank * micro
        out.append((Tensor(image[start:start + micro]), Tensor(text[start:start + micro])))
    return out


def _model(initial=None):
    import mindspore as ms
    from mindspore import Tensor

    from ms_clip import create_model

    ms.set_seed(0)
    model = create_model("clip_tiny")
    if initial is not None:
        for p in model.get_parameters():
            p.set_data(Tensor(initial[p.name]))
    return model


def _weights(model):
    return {p.name: p.asnumpy().copy() for p in model.get_parameters()}


def _runner(model, accumulation, world_size=1, rank=0, **kwargs):
    from ms_clip.train.loop import StepRunner
    from ms_clip.train.schedule import LRSchedule

    return StepRunner(model, OPTIMIZER, LRSchedule(LR, 100, 0, "constant"), accumulation=accumulation,
                      world_size=world_size, rank=rank, **kwargs)


def _train(micro, accumulation, initial, world_size=1, rank=0, **kwargs):
    """(final weights, per-step losses) of STEPS optimizer steps from ``initial``."""
    model = _model(initial)
    runner = _runner(model, accumulation, world_size, rank, **kwargs)
    losses = []
    for step in range(STEPS):
        result = runner(_micro_batches(step, micro, world_size, rank), step)
        assert result.applied
        losses.append(result.loss)
    return _weights(model), losses


def _worst(a, b):
    errors = {name: max_relative(a[name], b[name]) for name in b}
    name = max(errors, key=errors.get)
    return errors[name], name


@pytest.fixture(scope="module")
def big_batch():
    """(initial weights, weights after STEPS steps of B=32, N=1, losses) in graph mode."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    initial = _weights(_model())
    final, losses = _train(BIG, 1, initial)
    return initial, final, losses


def test_accumulated_steps_equal_one_big_batch_graph_mode(big_batch):
    from ms_clip.train.loop import LossScaler

    initial, expected, expected_losses = big_batch
    # A fixed loss scale (a power of two: exact in float32) also checks that the scale is divided out once.
    final, losses = _train(MICRO, ACCUM, initial, scaler=LossScaler("fixed", scale=1024.0))
    worst, name = _worst(final, expected)
    loss_error = max(abs(a - b) / b for a, b in zip(losses, expected_losses))
    print(f"\nB=8 x N=4 vs B=32 x N=1, {STEPS} steps: weights max_relative {worst:.2e} ({name}); "
          f"loss {loss_error:.1e}")
    assert worst <= TOLERANCE, (name, worst)
    assert loss_error <= 1e-6, (losses, expected_losses)
    # The runs trained: every tensor moved far beyond the tolerance.
    moved = min(max_relative(expected[n], initial[n]) for n in expected)
    assert moved > 100 * TOLERANCE, moved


def test_accumulated_steps_equal_one_big_batch_pynative_mode(big_batch):
    import mindspore as ms

    initial, expected, expected_losses = big_batch
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    try:
        final, losses = _train(MICRO, ACCUM, initial)
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)
    worst, name = _worst(final, expected)
    print(f"\nPyNative B=8 x N=4 vs graph B=32 x N=1: weights max_relative {worst:.2e} ({name})")
    assert worst <= TOLERANCE, (name, worst)
    assert max(abs(a - b) / b for a, b in zip(losses, expected_losses)) <= 1e-6


def _per_micro_batch_step(runner, micro_batches, step):
    """The scheme ms_clip had before: each micro-batch its own contrastive loss, gradients averaged."""
    import mindspore as ms
    from mindspore import Tensor

    total, losses = None, []
    for image, text in micro_batches:
        loss, grads = runner.forward_backward(image, text, Tensor(1.0, ms.float32))
        losses.append(float(loss.asnumpy()))
        grads = ms.mutable(grads)
        total = grads if total is None else ms.mutable(runner.add_grads(total, grads))
    n = len(micro_batches)
    norm = float(runner.grad_norm(total).asnumpy()) / n
    bc1, bc2 = runner.optimizer.bias_corrections(step)
    runner.apply_update(total, Tensor(LR, ms.float32), Tensor(bc1, ms.float32), Tensor(bc2, ms.float32),
                        Tensor(min(1.0, 1.0 / (norm + 1e-6)) / n, ms.float32))
    return float(np.mean(losses))


def test_per_micro_batch_contrastive_loss_is_not_the_big_batch(big_batch):
    initial, expected, expected_losses = big_batch
    model = _model(initial)
    runner = _runner(model, ACCUM)
    losses = [_per_micro_batch_step(runner, _micro_batches(step, MICRO), step) for step in range(STEPS)]
    worst, name = _worst(_weights(model), expected)
    print(f"\nold per-micro-batch scheme vs B=32: weights max_relative {worst:.2e} ({name}); first loss "
          f"{losses[0]:.3f} vs {expected_losses[0]:.3f}")
    # 8 candidates per row instead of 32: a far smaller loss (~ln 8 vs ~ln 32 at initialisation) and other weights.
    assert expected_losses[0] - losses[0] > 0.5
    assert worst > 1000 * TOLERANCE


def test_gradients_of_one_step_equal_the_big_batch_gradients(big_batch):
    """The feature-gradient pass itself, before any optimizer: loss and every gradient tensor."""
    import mindspore as ms
    from mindspore import Tensor

    initial, _, _ = big_batch
    runner = _runner(_model(initial), ACCUM)
    sens = Tensor(1.0, ms.float32)
    (image, text), = _micro_batches(0, BIG)
    loss, expected = runner.forward_backward(image, text, sens)
    accumulated_loss, accumulated = runner._grad_cache(_micro_batches(0, MICRO), sens)
    assert float(accumulated_loss.asnumpy()) == pytest.approx(float(loss.asnumpy()), rel=1e-6)
    errors = {p.name: max_relative(a.asnumpy(), b.asnumpy()) for p, a, b in zip(runner.params, accumulated, expected)}
    name = max(errors, key=errors.get)
    print(f"\none step's gradients: max_relative {errors[name]:.2e} ({name}) over {len(errors)} tensors")
    assert errors[name] <= 1e-5, (name, errors[name])
    assert "logit_scale" in errors  # the temperature's gradient comes through the feature pass too


def test_accumulation_keeps_locking_clamping_and_float16_loss_scaling():
    import math

    import mindspore as ms
    from mindspore import Tensor

    from ms_clip import create_model
    from ms_clip.train.loop import LossScaler, NonFiniteLossError

    ms.set_seed(0)
    model = create_model("clip_tiny", compute_dtype="float16")
    runner = _runner(model, 2, lock_image=True, scaler=LossScaler("dynamic", scale=1024.0, factor=2.0, window=1000))
    model.logit_scale.set_data(Tensor(5.0, ms.float32))  # above ln(100)
    before = _weights(model)
    micro = _micro_batches(0, 16)
    for _ in range(12):  # dynamic loss scaling finds a scale float16 can hold (skipped steps leave the weights)
        result = runner(micro, 0)
        if result.applied:
            break
    assert result.applied and math.isfinite(result.loss)
    after = _weights(model)
    assert all(np.array_equal(before[n], after[n]) for n in before if n.startswith("visual."))
    assert not np.array_equal(before["text_projection"], after["text_projection"])
    assert after["logit_scale"] <= math.log(100) + 1e-6
    # A loss scale that overflows float16 skips the step (and halves the scale) without touching the weights...
    runner.scaler = LossScaler("dynamic", scale=2.0 ** 100, factor=2.0, window=1000)
    result = runner(micro, 1)
    assert not result.applied and runner.scaler.scale == 2.0 ** 99
    assert all(np.array_equal(after[n], v) for n, v in _weights(model).items())
    # ...and a NaN input in the second micro-batch stops the run without an update.
    runner.scaler = LossScaler()
    image, text = micro[1]
    bad = image.asnumpy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(NonFiniteLossError, match="non-finite loss at optimizer step 2"):
        runner([micro[0], (Tensor(bad), text)], 2)
    assert all(np.array_equal(after[n], v) for n, v in _weights(model).items())


def test_active_dropout_is_named_in_a_warning(caplog):
    """Only dropout layers that act (p > 0, training mode) make the re-run inexact; they are named at the first step."""
    import logging

    from ms_clip import create_model
    from ms_clip.loader import load_config
    from ms_clip.train.loop import active_dropout

    model = create_model("dual_encoder_tiny", text_config={  # its RoBERTa tower with roberta-base's dropout
        **load_config("dual_encoder_tiny").text_config.to_dict(), "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1})
    assert active_dropout(model) == []  # MindSpore cells start in inference mode: dropout is the identity
    model.set_train(True)
    names = active_dropout(model)
    assert names and all(n.startswith("text_model.") for n in names), names
    runner = _runner(model, ACCUM)
    with caplog.at_level(logging.WARNING, logger="ms_clip.train.loop"):
        runner._warn_dropout(ACCUM)
        runner._warn_dropout(ACCUM)
    warnings = [r.getMessage() for r in caplog.records if "dropout" in r.getMessage()]
    assert len(warnings) == 1 and f"{len(names)} active dropout layers ({names[0]}" in warnings[0]
    assert "instead of equalling it" in warnings[0]


# --------------------------------------------------------------------------- 2 msrun workers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_msrun_workers_accumulating_equal_one_big_batch(big_batch, tmp_path):
    """2 workers x B=4 x N=4 (a contrastive batch of 32, features gathered over the workers) == 1 x B=32 x N=1."""
    initial, expected, expected_losses = big_batch
    init_path = str(tmp_path / "initial.npz")
    np.savez(init_path, **initial)
    log_dir = str(tmp_path / "msrun_log")
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""), MS_NODE_TIMEOUT="30")
    msrun = os.path.join(os.path.dirname(sys.executable), "msrun")
    proc = subprocess.run([msrun, f"--worker_num={WORKERS}", f"--local_worker_num={WORKERS}",
                           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", f"--log_dir={log_dir}",
                           "--join=True", "--cluster_time_out=120", os.path.abspath(__file__), "worker", init_path,
                           str(tmp_path)], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    logs = "".join(open(os.path.join(log_dir, f)).read()[-2000:] for f in sorted(os.listdir(log_dir))
                   if f.startswith("worker_")) if os.path.isdir(log_dir) else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + logs
    ranks = [np.load(str(tmp_path / f"rank{r}.npz")) for r in range(WORKERS)]
    for r in range(1, WORKERS):  # data parallel: every rank holds the same weights
        assert all(np.array_equal(ranks[0][n], ranks[r][n]) for n in expected)
    with open(tmp_path / "losses.json") as f:
        losses = json.load(f)
    worst, name = _worst({n: ranks[0][n] for n in expected}, expected)
    loss_error = max(abs(a - b) / b for a, b in zip(losses, expected_losses))
    print(f"\n2 msrun workers x B=4 x N=4 vs 1 x B=32 x N=1: weights max_relative {worst:.2e} ({name}); "
          f"loss {loss_error:.1e}")
    assert worst <= TOLERANCE, (name, worst)
    assert loss_error <= 1e-5, (losses, expected_losses)


def _worker(init_path: str, out_dir: str) -> None:
    """One msrun worker of the test above (run as ``python tests/test_accumulation.py worker INIT OUT``)."""
    import mindspore as ms

    from ms_clip.distributed import init_distributed

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    rank, world_size = init_distributed({"use_parallel": True, "parallel": {"parallel_mode": 0, "gradients_mean": True},
                                         "parallel_config": {"model_parallel": 1, "pipeline_stage": 1}})
    initial = dict(np.load(init_path))
    final, losses = _train(WORKER_MICRO, ACCUM, initial, world_size, rank)
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **final)
    if rank == 0:
        with open(os.path.join(out_dir, "losses.json"), "w") as f:
            json.dump(losses, f)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "worker":
        _worker(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: python tests/test_accumulation.py worker INITIAL_NPZ OUT_DIR (run by msrun)")
