"""ms_clip vs PyTorch (HF transformers CLIPModel), side by side, in one run on this machine.

Each figure is measured in its own subprocess (same thread count, float32, CPU) so that peak
memory is per figure and one framework's thread pools cannot slow the other:

    python benchmarks/bench_clip.py                 # all figures, table + benchmarks/results.json
    python benchmarks/bench_clip.py --only image_b32 --reps 3

Figures: image encoding (ViT-B/32 and ViT-B/16, batch 32), text encoding (batch 256 x 77
tokens), one training step (ViT-B/32, batch 32, forward + backward + AdamW), plus the first
call (compile / warm-up) time and the peak resident memory of each process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_common import cpu_model, time_call  # noqa: E402

FIGURES = {
    # name: (model, kind, batch)
    "image_b32": ("clip_vit_b_32", "image", 32),
    "image_b16": ("clip_vit_b_16", "image", 32),
    "text_b32": ("clip_vit_b_32", "text", 256),
    "train_b32": ("clip_vit_b_32", "train", 32),
}
FRAMEWORKS = ("ms_clip", "pytorch")


def _inputs(model_name: str, batch: int, kind: str):
    import numpy as np

    rng = np.random.RandomState(0)
    size = 224
    pixels = rng.randn(batch, 3, size, size).astype(np.float32)
    ids = rng.randint(1, 49406, size=(batch, 77)).astype(np.int32)
    ids[:, 0] = 49406
    eot = rng.randint(5, 77, size=batch)
    ids[np.arange(batch), eot] = 49407  # one EOT per row, padding after it stays random
    return pixels, ids



def _run_ms(model_name: str, kind: str, batch: int, reps: int):
    import mindspore as ms

    from ms_clip import create_model

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    model = create_model(model_name)
    pixels, ids = _inputs(model_name, batch, kind)
    px, tx = ms.Tensor(pixels), ms.Tensor(ids)
    if kind == "image":
        model.set_train(False)
        return time_call(lambda: model.get_image_features(px).asnumpy(), reps)
    if kind == "text":
        model.set_train(False)
        return time_call(lambda: model.get_text_features(tx).asnumpy(), reps)
    # The library's own optimizer step (ms_clip.train.loop.StepRunner): forward + backward + AdamW
    # + logit_scale clamp, the path `run_mindformer.py --run_mode train` takes. Clipping off, as in
    # the PyTorch reference.
    from ms_clip.train.loop import StepRunner
    from ms_clip.train.schedule import LRSchedule

    model.set_train(True)
    runner = StepRunner(model, {"weight_decay": 0.2, "beta1": 0.9, "beta2": 0.98, "eps": 1e-6},
                        LRSchedule(base_lr=1e-5, total_steps=1000, kind="constant"), clip_norm=None)
    return time_call(lambda: runner([(px, tx)], step=0), reps)


def _run_torch(model_name: str, kind: str, batch: int, reps: int, threads: int):
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.set_num_threads(threads)
    patch = 32 if model_name.endswith("b_32") else 16
    cfg = CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                         hidden_act="quick_gelu", max_position_embeddings=77),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=patch, hidden_act="quick_gelu"),
        projection_dim=512,
    )
    model = CLIPModel(cfg)
    pixels, ids = _inputs(model_name, batch, kind)
    px, tx = torch.from_numpy(pixels), torch.from_numpy(ids).long()
    if kind in ("image", "text"):
        model.eval()
        fn = model.get_image_features if kind == "image" else model.get_text_features

        def run():
            with torch.inference_mode():
                fn(px) if kind == "image" else fn(tx)

        return time_call(run, reps)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)

    def step():
        out = model(input_ids=tx, pixel_values=px, return_loss=True)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return time_call(step, reps)



def worker(framework: str, figure: str, reps: int, threads: int) -> dict:
    model_name, kind, batch = FIGURES[figure]
    if framework == "ms_clip":
        first, median = _run_ms(model_name, kind, batch, reps)
    else:
        first, median = _run_torch(model_name, kind, batch, reps, threads)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    unit = "texts/s" if kind == "text" else ("steps/s" if kind == "train" else "img/s")
    return dict(framework=framework, figure=figure, batch=batch, first_call_s=first, median_s=median,
                throughput=batch / median if kind != "train" else 1.0 / median, unit=unit, peak_rss_mb=peak_mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated subset of {list(FIGURES)}")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json"))
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "FIGURE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    # Same thread count for both frameworks' OpenMP/BLAS pools.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.worker:
        print("RESULT " + json.dumps(worker(*args.worker, reps=args.reps, threads=args.threads)), flush=True)
        return

    figures = [f for f in args.only.split(",") if f]
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    # The ratio is only meaningful on an otherwise idle machine: under load PyTorch slowed down
    # much more than MindSpore here (measured 19 -> 3 img/s vs 34 -> 9), which inflates the ratio.
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"warning: 1-min load average is {load_before:.2f} before starting; figures will be noisy",
              file=sys.stderr)
    results = []
    for figure in figures:
        for framework in FRAMEWORKS:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, figure, "--reps", str(args.reps),
                   "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "GLOG_v": "3"})
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.exit(f"{framework} {figure} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            results.append(json.loads(lines[-1][len("RESULT "):]))
            r = results[-1]
            print(f"  measured {framework:8s} {figure:10s} {r['throughput']:8.2f} {r['unit']}", file=sys.stderr)

    by = {(r["framework"], r["figure"]): r for r in results}
    header = f"{'figure':11s} {'batch':>5s} {'ms_clip':>14s} {'PyTorch':>14s} {'ratio':>6s} " \
             f"{'first call ms/pt (s)':>21s} {'peak RSS ms/pt (MB)':>20s}"
    rows = [header, "-" * len(header)]
    summary = []
    for figure in figures:
        m, p = by[("ms_clip", figure)], by[("pytorch", figure)]
        ratio = m["throughput"] / p["throughput"]
        rows.append(f"{figure:11s} {m['batch']:5d} {m['throughput']:8.2f} {m['unit']:>5s} {p['throughput']:8.2f} "
                    f"{p['unit']:>5s} {ratio:5.2f}x {m['first_call_s']:9.1f} / {p['first_call_s']:<9.1f} "
                    f"{m['peak_rss_mb']:8.0f} / {p['peak_rss_mb']:<8.0f}")
        summary.append(dict(figure=figure, ratio=ratio, ms_clip=m, pytorch=p))
    import mindspore
    import torch

    env = dict(python=platform.python_version(), mindspore=mindspore.__version__, torch=torch.__version__,
               threads=args.threads, cpu=cpu_model(), cores=os.cpu_count(), reps=args.reps,
               load_avg_before=round(load_before, 2), load_avg_after=round(os.getloadavg()[0], 2))
    print(f"ms_clip vs PyTorch (HF CLIPModel), float32, {env['cpu']}, {args.threads} threads, median of "
          f"{args.reps}; MindSpore {env['mindspore']}, torch {env['torch']}; load avg {env['load_avg_before']} -> "
          f"{env['load_avg_after']}")
    print("\n".join(rows))
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(dict(environment=env, results=summary), f, indent=2)
    print(f"JSON written to {args.json}")


if __name__ == "__main__":
    main()
