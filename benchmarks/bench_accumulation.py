"""Exact large-batch accumulation (GradCache, ``runner_config.gradient_accumulation_steps``): memory and time.

Each configuration BxN (micro-batch B, N micro-batches per optimizer step: one contrastive batch of B*N) runs in
its own subprocess: one untimed step (graph compilation) then ``--steps`` timed optimizer steps of ms_clip's
``StepRunner`` (the path ``run_mindformer.py --run_mode train`` takes) on random inputs. Reported per
configuration: peak RSS of the process (``wait4``, see ``_bench_common.run_measured``), first step (compile) and
median step seconds, samples/s.

The accumulated path keeps one micro-batch's activations at a time; what grows with B*N is the loss pass
(``FeatureLossGrad``): two [B*N, D] feature matrices and, larger, the [B*N, B*N] logits, their softmax and their
gradients. ``--loss-batches`` measures that pass alone (peak RSS of a process running only ``FeatureLossGrad`` at
each contrastive batch, minus the same process at the smallest batch), fits ``a * n^2 + b * n`` and reports the
largest contrastive batch whose loss pass, added to the measured micro-batch step's peak (an upper bound: the
two are never resident together), fits in ``--memory-limit-gb``.

    python benchmarks/bench_accumulation.py                          # ViT-B/32: 32x1 and 8x4, loss pass sizes
    python benchmarks/bench_accumulation.py --configs 8x4,8x1 --loss-batches ""
    python benchmarks/bench_accumulation.py --quick                  # clip_tiny, seconds: checks the script

Results: benchmarks/results/bench_accumulation.json (``--out``), with the host record of ``_bench_common``.
A configuration whose process is killed (out of memory) is recorded as such. Before each configuration the
script prints the host's MemAvailable; ``--skip-above-available`` skips configurations whose expected peak
(``--expect-gb BxN=GB,...``) exceeds it, so a shared machine is not pushed into its OOM killer.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_common import describe_host, finish_host_record, host_record, run_measured  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
EOT = 49407


def parse_configs(text: str) -> List[Tuple[int, int]]:
    """"32x1,8x4" -> [(32, 1), (8, 4)]."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            micro, accum = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--configs: expected BxN items like 32x1,8x4, got {item!r}") from None
        if micro < 1 or accum < 1:
            raise SystemExit(f"--configs: B and N must be >= 1, got {item!r}")
        out.append((micro, accum))
    return out


def mem_available_gb() -> Optional[float]:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return None


# ----------------------------------------------------------------------------- children


def _inputs(model, n: int, seed: int):
    import numpy as np

    size = model.config.vision_config.image_size
    length = model.context_length
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    text = rng.integers(1, 5000, (n, length)).astype(np.int32)
    text[:, 12] = EOT
    text[:, 13:] = 0
    return image, text


def child_step(model_name: str, micro: int, accum: int, steps: int) -> dict:
    import mindspore as ms
    from mindspore import Tensor

    from ms_clip import create_model
    from ms_clip.train.loop import StepRunner
    from ms_clip.train.schedule import LRSchedule

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    ms.set_seed(0)  # the same initial weights in every configuration: equal losses check the accumulation
    model = create_model(model_name)
    model.set_train(True)
    runner = StepRunner(model, {"weight_decay": 0.2, "beta1": 0.9, "beta2": 0.98, "eps": 1e-6},
                        LRSchedule(1e-5, 1000, 0, "constant"), accumulation=accum, clip_norm=1.0)
    image, text = _inputs(model, micro * accum, 0)
    batches = [(Tensor(image[i * micro:(i + 1) * micro]), Tensor(text[i * micro:(i + 1) * micro]))
               for i in range(accum)]
    times, losses = [], []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        result = runner(batches, step)
        times.append(time.perf_counter() - t0)
        assert result.applied, result
        losses.append(result.loss)
    median = statistics.median(times[1:]) if steps else float("nan")
    return dict(model=model_name, micro_batch=micro, accumulation=accum, contrastive_batch=micro * accum,
                first_step_s=round(times[0], 2), median_step_s=round(median, 2),
                samples_per_s=round(micro * accum / median, 2) if steps else None, steps=steps,
                losses=losses, peak_rss_mb_self=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def child_loss(n: int, dim: int) -> dict:
    """The loss pass alone: FeatureLossGrad on [n, dim] L2-normalised features."""
    import mindspore as ms
    import numpy as np
    from mindspore import Tensor

    from ms_clip.loss import ClipLoss
    from ms_clip.train.loop import FeatureLossGrad

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((n, dim)).astype(np.float32) for _ in range(2)]
    feats = [Tensor(f / np.linalg.norm(f, axis=1, keepdims=True)) for f in feats]
    cell = FeatureLossGrad(ClipLoss())
    t0 = time.perf_counter()
    loss, grads = cell(feats[0], feats[1], Tensor(100.0, ms.float32), Tensor(1.0, ms.float32))
    grads[0].asnumpy()
    return dict(contrastive_batch=n, dim=dim, loss=float(loss.asnumpy()), seconds=round(time.perf_counter() - t0, 2),
                peak_rss_mb_self=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


# ----------------------------------------------------------------------------- parent


def _run_child(args: List[str], timeout: float) -> Tuple[Optional[dict], float, str]:
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code, out, err, wall, peak = run_measured([sys.executable, os.path.abspath(__file__), *args], env=env, cwd=REPO,
                                              timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        why = "killed (signal 9: out of memory?)" if code == -9 else f"exit code {code}"
        return None, peak, f"{why}: {err.strip().splitlines()[-1] if err.strip() else ''}"
    result = json.loads(lines[-1])
    result["peak_rss_mb"] = round(peak)
    result["process_wall_s"] = round(wall, 1)
    return result, peak, ""


def _fit_quadratic(points: List[Tuple[int, float]]) -> Optional[Tuple[float, float]]:
    """Least-squares (a, b) of extra_mb = a * n^2 + b * n over the measured loss passes."""
    import numpy as np

    if len(points) < 2:
        return None
    n = np.array([p[0] for p in points], np.float64)
    y = np.array([p[1] for p in points], np.float64)
    (a, b), *_ = np.linalg.lstsq(np.stack([n * n, n], 1), y, rcond=None)
    return float(a), float(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="clip_vit_b_32", help="registry name (default clip_vit_b_32)")
    parser.add_argument("--configs", default="32x1,8x4", help="BxN list: micro-batch x accumulation (default 32x1,8x4)")
    parser.add_argument("--steps", type=int, default=2, help="timed optimizer steps after the compile step (default 2)")
    parser.add_argument("--loss-batches", default="1024,4096,8192",
                        help="contrastive batches for the loss-pass memory fit ('' to skip; default 1024,4096,8192)")
    parser.add_argument("--memory-limit-gb", type=float, default=24.0, help="for the largest-batch estimate (24)")
    parser.add_argument("--skip-above-available", action="store_true",
                        help="skip a configuration whose --expect-gb exceeds the host's MemAvailable")
    parser.add_argument("--expect-gb", default="", help="expected peaks, e.g. 32x1=16,8x4=6 (with --skip-above-available)")
    parser.add_argument("--gemm", action="store_true", help="also measure the host's GEMM rates (a minute)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per configuration")
    parser.add_argument("--quick", action="store_true", help="clip_tiny, 8x1 and 2x4, small loss passes")
    parser.add_argument("--out", default=None, help="result JSON (default benchmarks/results/bench_accumulation.json)")
    parser.add_argument("--child-step", nargs=4, metavar=("MODEL", "B", "N", "STEPS"), help=argparse.SUPPRESS)
    parser.add_argument("--child-loss", nargs=2, metavar=("N", "DIM"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_step:
        model, micro, accum, steps = args.child_step
        print(json.dumps(child_step(model, int(micro), int(accum), int(steps))), flush=True)
        return
    if args.child_loss:
        print(json.dumps(child_loss(int(args.child_loss[0]), int(args.child_loss[1]))), flush=True)
        return

    if args.quick:
        args.model, args.configs, args.loss_batches = "clip_tiny", "8x1,2x4", "256,1024"
    configs = parse_configs(args.configs)
    expect = {}
    for item in filter(None, args.expect_gb.split(",")):
        key, value = item.split("=")
        expect[parse_configs(key)[0]] = float(value)
    loss_batches = [int(v) for v in args.loss_batches.split(",") if v.strip()]
    host = host_record(gemm=args.gemm, what="the accumulation benchmark")
    from ms_clip.loader import load_config

    dim = load_config(args.model).projection_dim
    runs, skipped = [], []
    for micro, accum in configs:
        available = mem_available_gb()
        print(f"{micro}x{accum}: MemAvailable {available:.1f} GB" if available is not None else f"{micro}x{accum}",
              flush=True)
        need = expect.get((micro, accum))
        if args.skip_above_available and need is not None and available is not None and need > available:
            skipped.append(dict(micro_batch=micro, accumulation=accum, reason=f"expected {need} GB > MemAvailable "
                                                                              f"{available:.1f} GB"))
            print(f"  skipped: {skipped[-1]['reason']}", flush=True)
            continue
        result, peak, error = _run_child(["--child-step", args.model, str(micro), str(accum), str(args.steps)],
                                         args.timeout)
        if result is None:
            skipped.append(dict(micro_batch=micro, accumulation=accum, reason=error, peak_rss_mb=round(peak)))
            print(f"  failed: {error}", flush=True)
            continue
        result["mem_available_gb_before"] = round(available, 1) if available is not None else None
        runs.append(result)
        print(f"  peak RSS {result['peak_rss_mb']} MB, first step {result['first_step_s']} s, step "
              f"{result['median_step_s']} s, {result['samples_per_s']} samples/s, losses "
              f"{[round(v, 6) for v in result['losses']]}",
              flush=True)
    loss_points = []
    for n in loss_batches:
        result, _, error = _run_child(["--child-loss", str(n), str(dim)], args.timeout)
        if result is None:
            print(f"loss pass {n}: {error}", flush=True)
            continue
        loss_points.append(result)
        print(f"loss pass, contrastive batch {n}: peak RSS {result['peak_rss_mb']} MB, {result['seconds']} s",
              flush=True)
    estimate = None
    if len(loss_points) >= 2:
        base = min(p["peak_rss_mb"] for p in loss_points)
        smallest = min(p["contrastive_batch"] for p in loss_points)
        fit = _fit_quadratic([(p["contrastive_batch"] - smallest, p["peak_rss_mb"] - base) for p in loss_points])
        accumulated = [r for r in runs if r["accumulation"] > 1] or runs
        step_peak = min(r["peak_rss_mb"] for r in accumulated) if accumulated else None
        if fit is not None and fit[0] > 0:
            a, b = fit
            estimate = dict(memory_limit_gb=args.memory_limit_gb, micro_step_peak_mb=step_peak,
                            loss_pass_bytes_per_n2=round(a * 2 ** 20, 1), loss_pass_mb_per_n=b,
                            note="loss-pass growth fitted as a*n^2 + b*n over the measured contrastive batches")
            print(f"the loss pass takes {a * 2 ** 20:.1f} bytes per n^2 (n = contrastive batch; float32 n x n "
                  f"buffers are 4 bytes per n^2)", flush=True)
            if step_peak is not None:
                budget = args.memory_limit_gb * 1024 - step_peak
                # a n^2 + b n = budget, n counted from the smallest measured batch; an upper bound on memory
                # (the step's activations and the loss pass are never resident together), so a lower bound on n.
                n = (-b + (b * b + 4 * a * budget) ** 0.5) / (2 * a) + smallest if budget > 0 else 0
                estimate["largest_contrastive_batch"] = int(n)
                print(f"largest contrastive batch within {args.memory_limit_gb:g} GB (extrapolated): {int(n)}",
                      flush=True)
    host = finish_host_record(host)
    record = dict(host=host, model=args.model, steps=args.steps, runs=runs, skipped=skipped, loss_pass=loss_points,
                  largest_batch_estimate=estimate)
    out = args.out or os.path.join(RESULTS, "bench_accumulation_quick.json" if args.quick else "bench_accumulation.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    print(describe_host(host))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
