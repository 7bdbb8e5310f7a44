"""ms_clip vs PyTorch (HF transformers CLIPModel), side by side, in one run on this machine.

Each figure is measured in its own subprocess (same thread count, CPU) so that peak memory is per figure
and one framework's thread pools cannot slow the other:

    python benchmarks/bench_clip.py                 # all figures: table + benchmarks/results/bench_clip.json
    python benchmarks/bench_clip.py --only image_b32 --reps 3
    python benchmarks/bench_clip.py --sweep image   # batch sweep: results/sweep_image.{json,png}
    python benchmarks/bench_clip.py --sweep train --batches 8,16,32,64
    python benchmarks/bench_clip.py --quick         # clip_tiny, 1 rep: checks the script end to end in ~a minute

Figures (float32 unless named _fp16; ms_clip in GRAPH_MODE unless named _pynative):
  image_b32 / image_b16   image encoding, batch 32 (ViT-B/32, ViT-B/16)
  text_b32                text encoding, batch 256 x 77 tokens
  train_b32               one training step, ViT-B/32 batch 32 (forward + backward + AdamW; ms_clip's StepRunner)
  image_b32_pynative      ``model.get_image_features(x)`` in MindSpore's default PyNative mode (no set_context)
  text_b32_pynative       ``model.get_text_features(ids)`` likewise
  image_b32_fp16          ``create_model(..., compute_dtype="float16")`` image encoding: peak memory vs fp32
  text_b32_fp16           likewise for text encoding
A figure whose PyTorch side is the same computation (pynative, fp16 variants) reuses the PyTorch
measurement of its float32 figure in the same run (PyTorch is eager and fp32 in all of them).

For every figure the table gives: throughput, ratio, the first call (compile / warm-up), the first call of a
second launch of the same configuration (fresh process, MindSpore's compile cache enabled through
MS_COMPILER_CACHE_ENABLE=1 / MS_COMPILER_CACHE_PATH, both launches sharing one fresh cache folder), peak RSS,
and efficiency: achieved GFLOP/s end to end (FLOPs counted analytically, see ``model_flops``) as a fraction
of the host's best single-GEMM rate (``_bench_common.host_record``, measured in the same run).

The sweep records throughput and peak RSS per batch size for both frameworks; there is no search for the
largest batch that fits in 24 GB: instead peak RSS is fitted linearly in the batch size (least squares over
the measured batches) and the largest batch within 24 GiB is *extrapolated* from that fit (recorded as such).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_common import (describe_host, finish_host_record, host_record, run_measured,  # noqa: E402
                           time_call)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")

# name: (model, kind, batch, ms_clip mode, compute dtype)
FIGURES = {
    "image_b32": ("clip_vit_b_32", "image", 32, "graph", "float32"),
    "image_b16": ("clip_vit_b_16", "image", 32, "graph", "float32"),
    "text_b32": ("clip_vit_b_32", "text", 256, "graph", "float32"),
    "train_b32": ("clip_vit_b_32", "train", 32, "graph", "float32"),
    "image_b32_pynative": ("clip_vit_b_32", "image", 32, "pynative", "float32"),
    "text_b32_pynative": ("clip_vit_b_32", "text", 256, "pynative", "float32"),
    "image_b32_fp16": ("clip_vit_b_32", "image", 32, "graph", "float16"),
    "text_b32_fp16": ("clip_vit_b_32", "text", 256, "graph", "float16"),
}
FRAMEWORKS = ("ms_clip", "pytorch")
SWEEP_FIGURE = {"image": "image_b32", "text": "text_b32", "train": "train_b32"}
SWEEP_BATCHES = {"image": "8,16,32,64,128", "text": "32,64,128,256,512", "train": "8,16,32,64"}
QUICK_MODEL = "clip_tiny"
QUICK_BATCH = {"image": 8, "text": 16, "train": 8}
MEMORY_LIMIT_MB = 24 * 1024


def model_dims(model_name: str) -> dict:
    """The architecture from ms_clip's registry YAML, read without importing ms_clip (so the PyTorch worker
    does not load MindSpore and its peak RSS stays PyTorch's own)."""
    import yaml

    with open(os.path.join(REPO, "ms_clip", "model_configs", f"{model_name}.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def _encoder_flops(width: int, inter: int, layers: int, tokens: int) -> float:
    """Forward FLOPs (2 per multiply-add) of a pre-LN transformer's layers on one sequence: per layer the
    fused QKV (3 W^2), output projection (W^2) and MLP (2 W I) GEMMs on every token, plus QK^T and attention x V
    (2 L^2 W). LayerNorm, softmax, activation and residual adds are O(L W) and left out (< 1 %)."""
    per_layer = 2 * tokens * (3 * width * width + width * width + 2 * width * inter) + 2 * 2 * tokens * tokens * width
    return float(layers * per_layer)


def model_flops(model_name: str, kind: str) -> float:
    """Analytic FLOPs per sample: image or text forward, or a train step (forward of both towers x 3).

    Image: patch embedding as a GEMM (patches x 3 p^2 x W) + the encoder on (S/p)^2 + 1 tokens + the projection.
    Text: the encoder on the full 77-token context (the causal mask does not skip work) + the projection of the
    EOT token. Train: backward ~= 2x forward (weight and input gradients of every GEMM), so 3x the forward of
    both towers; the loss (B x B logits) and AdamW are negligible at these sizes. ViT-B/32: 8.82 GFLOP per
    image, 5.96 GFLOP per text, 44.3 GFLOP per training sample."""
    cfg = model_dims(model_name)
    v, t, proj = cfg["vision_config"], cfg["text_config"], cfg["projection_dim"]
    patches = (v["image_size"] // v["patch_size"]) ** 2
    image = (2.0 * patches * 3 * v["patch_size"] ** 2 * v["hidden_size"]
             + _encoder_flops(v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"], patches + 1)
             + 2.0 * v["hidden_size"] * proj)
    text = (_encoder_flops(t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"],
                           t["max_position_embeddings"]) + 2.0 * t["hidden_size"] * proj)
    return {"image": image, "text": text, "train": 3.0 * (image + text)}[kind]


def _inputs(model_name: str, batch: int):
    import numpy as np

    cfg = model_dims(model_name)
    rng = np.random.RandomState(0)
    size = cfg["vision_config"]["image_size"]
    ctx = cfg["text_config"]["max_position_embeddings"]
    pixels = rng.randn(batch, 3, size, size).astype(np.float32)
    ids = rng.randint(1, 49406, size=(batch, ctx)).astype(np.int32)
    ids[:, 0] = 49406
    eot = rng.randint(5, ctx, size=batch)
    ids[np.arange(batch), eot] = 49407  # one EOT per row, padding after it stays random
    return pixels, ids


def _run_ms(model_name: str, kind: str, batch: int, reps: int, mode: str, dtype: str):
    import mindspore as ms

    from ms_clip import create_model

    if mode == "graph":
        ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    # mode "pynative": no set_context at all -- MindSpore's default, what a user calling the model directly gets.
    model = create_model(model_name, compute_dtype=dtype) if dtype != "float32" else create_model(model_name)
    pixels, ids = _inputs(model_name, batch)
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
    dims = model_dims(model_name)
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act")
    cfg = CLIPConfig(
        text_config={**{k: dims["text_config"][k] for k in keys},
                     "max_position_embeddings": dims["text_config"]["max_position_embeddings"]},
        vision_config={**{k: dims["vision_config"][k] for k in keys},
                       "image_size": dims["vision_config"]["image_size"],
                       "patch_size": dims["vision_config"]["patch_size"]},
        projection_dim=dims["projection_dim"],
    )
    model = CLIPModel(cfg)
    pixels, ids = _inputs(model_name, batch)
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


def worker(framework: str, figure: str, reps: int, threads: int, model_name: str, batch: int) -> dict:
    _, kind, _, mode, dtype = FIGURES[figure]
    if framework == "ms_clip":
        first, median = _run_ms(model_name, kind, batch, reps, mode, dtype)
    else:
        first, median = _run_torch(model_name, kind, batch, reps, threads)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    unit = "texts/s" if kind == "text" else ("steps/s" if kind == "train" else "img/s")
    return dict(framework=framework, figure=figure, model=model_name, batch=batch, mode=mode,
                dtype=dtype if framework == "ms_clip" else "float32", first_call_s=first, median_s=median,
                throughput=batch / median if kind != "train" else 1.0 / median, unit=unit, peak_rss_mb=peak_mb,
                gflops=model_flops(model_name, kind) * batch / median / 1e9)


class FigureFailed(RuntimeError):
    """A worker process failed; the figure is recorded as failed and the run goes on."""


class Runner:
    """Launches workers (each its own process) with the parent's settings."""

    def __init__(self, args: argparse.Namespace, best_gemm: float | None):
        self.args = args
        self.best_gemm = best_gemm

    def launch(self, framework: str, figure: str, batch: int, reps: int, cache_dir: str | None = None) -> dict:
        a = self.args
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", framework, figure, "--reps", str(reps),
               "--threads", str(a.threads), "--batch", str(batch)]
        if a.quick:
            cmd.append("--quick")
        env = {**os.environ, "GLOG_v": "3", "OMP_NUM_THREADS": str(a.threads)}
        if cache_dir:
            env.update(MS_COMPILER_CACHE_ENABLE="1", MS_COMPILER_CACHE_PATH=cache_dir)
        else:
            env.pop("MS_COMPILER_CACHE_ENABLE", None)
        rc, out, err, wall, _ = run_measured(cmd, env=env, timeout=a.timeout)
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        if rc != 0 or not lines:
            raise FigureFailed(f"{framework} {figure} batch {batch} failed (exit {rc}{', killed: out of memory?' if rc == -9 else ''}):"
                               f"\n{err[-3000:]}")
        result = json.loads(lines[-1][len("RESULT "):])
        result["process_wall_s"] = wall
        result["gemm_efficiency"] = result["gflops"] / self.best_gemm if self.best_gemm else None
        return result


def _fmt_eff(r: dict) -> str:
    return f"{100 * r['gemm_efficiency']:.0f}%" if r.get("gemm_efficiency") is not None else "-"


def run_figures(args: argparse.Namespace, runner: Runner, figures: list) -> list:
    torch_results: dict = {}
    summary = []
    for figure in figures:
        model, kind, batch, mode, dtype = FIGURES[figure]
        model, batch = (QUICK_MODEL, QUICK_BATCH[kind]) if args.quick else (model, batch)
        cache_dir = tempfile.mkdtemp(prefix="ms_clip_compile_cache_") if args.launches > 1 else None
        try:
            m = runner.launch("ms_clip", figure, batch, args.reps, cache_dir)
            # Later launches of the same configuration: a fresh process reading the compile cache launch 1 wrote.
            m["later_launches"] = [runner.launch("ms_clip", figure, batch, 1, cache_dir)
                                   for _ in range(args.launches - 1)]
        except FigureFailed as err:
            print(f"  FAILED   {figure}: {str(err).splitlines()[0]}", file=sys.stderr)
            summary.append(dict(figure=figure, batch=batch, failed=str(err)[-3000:]))
            continue
        finally:
            if cache_dir:
                shutil.rmtree(cache_dir, ignore_errors=True)
        torch_key = (model, kind, batch)
        if torch_key not in torch_results:
            torch_results[torch_key] = runner.launch("pytorch", figure, batch, args.reps)
        p = torch_results[torch_key]
        print(f"  measured {figure:19s} ms_clip {m['throughput']:8.2f} / PyTorch {p['throughput']:8.2f} {m['unit']}",
              file=sys.stderr)
        summary.append(dict(figure=figure, ratio=m["throughput"] / p["throughput"], ms_clip=m, pytorch=p,
                            flops_per_sample=model_flops(model, kind)))
    # The variants against their float32 graph-mode figure of the same run (the targets: PyNative as
    # fast as graph mode; fp16 no more memory than fp32).
    by_name = {s["figure"]: s for s in summary if "failed" not in s}
    for s in by_name.values():
        for suffix in ("_pynative", "_fp16"):
            base = by_name.get(s["figure"][:-len(suffix)]) if s["figure"].endswith(suffix) else None
            if base:
                s["vs_" + base["figure"]] = dict(
                    throughput_ratio=s["ms_clip"]["throughput"] / base["ms_clip"]["throughput"],
                    peak_rss_ratio=s["ms_clip"]["peak_rss_mb"] / base["ms_clip"]["peak_rss_mb"],
                    first_call_ratio=s["ms_clip"]["first_call_s"] / base["ms_clip"]["first_call_s"])
    return summary


def print_table(summary: list) -> None:
    header = (f"{'figure':19s} {'batch':>5s} {'ms_clip':>15s} {'PyTorch':>15s} {'ratio':>6s} "
              f"{'1st call ms/pt (s)':>19s} {'launch 2 ms (s)':>15s} {'peak RSS ms/pt (MB)':>20s} "
              f"{'GEMM eff ms/pt':>14s}")
    rows = [header, "-" * len(header)]
    for s in summary:
        if "failed" in s:
            rows.append(f"{s['figure']:19s} {s['batch']:5d} FAILED: {s['failed'].splitlines()[0]}")
            continue
        m, p = s["ms_clip"], s["pytorch"]
        later = m["later_launches"][-1]["first_call_s"] if m["later_launches"] else float("nan")
        rows.append(f"{s['figure']:19s} {m['batch']:5d} {m['throughput']:8.2f} {m['unit']:>6s} "
                    f"{p['throughput']:8.2f} {p['unit']:>6s} {s['ratio']:5.2f}x {m['first_call_s']:8.1f} / "
                    f"{p['first_call_s']:<8.1f} {later:15.1f} {m['peak_rss_mb']:9.0f} / {p['peak_rss_mb']:<8.0f} "
                    f"{_fmt_eff(m):>6s} / {_fmt_eff(p):<6s}")
    print("\n".join(rows))
    for s in summary:
        for key, v in s.items():
            if key.startswith("vs_"):
                print(f"{s['figure']} vs {key[3:]} (ms_clip): throughput {v['throughput_ratio']:.2f}x, peak RSS "
                      f"{v['peak_rss_ratio']:.2f}x, first call {v['first_call_ratio']:.2f}x")


def fit_memory(points: list) -> dict:
    """Least-squares line peak_rss_mb = base + per_sample * batch and the batch it reaches 24 GiB at
    (an extrapolation from the measured batches, not a measurement)."""
    import numpy as np

    b = np.array([x["batch"] for x in points], dtype=float)
    mem = np.array([x["peak_rss_mb"] for x in points], dtype=float)
    if len(points) < 2:
        return dict(base_mb=None, per_sample_mb=None, extrapolated_max_batch_24gb=None)
    per_sample, base = np.polyfit(b, mem, 1)
    limit = int((MEMORY_LIMIT_MB - base) // per_sample) if per_sample > 0 else None
    return dict(base_mb=round(float(base), 1), per_sample_mb=round(float(per_sample), 2),
                extrapolated_max_batch_24gb=limit,
                note="linear fit of peak RSS over the measured batches, extrapolated to 24 GiB (not measured)")


def run_sweep(args: argparse.Namespace, runner: Runner) -> dict:
    figure = SWEEP_FIGURE[args.sweep]
    model, kind = FIGURES[figure][:2]
    model = QUICK_MODEL if args.quick else model
    batches = [int(x) for x in (args.batches or SWEEP_BATCHES[args.sweep]).split(",") if x]
    points = {fw: [] for fw in FRAMEWORKS}
    for batch in batches:
        for fw in FRAMEWORKS:
            try:
                r = runner.launch(fw, figure, batch, args.reps)
            except FigureFailed as err:  # e.g. out of memory at this batch: the sweep ends there for this framework
                print(f"  FAILED   {fw:8s} {kind} batch {batch:4d}: {str(err).splitlines()[0]}", file=sys.stderr)
                continue
            points[fw].append(r)
            print(f"  measured {fw:8s} {kind} batch {batch:4d}: {r['throughput']:8.2f} {r['unit']}, peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB", file=sys.stderr)
    return dict(kind=kind, model=model, batches=batches, points=points,
                memory_fit={fw: fit_memory(points[fw]) for fw in FRAMEWORKS})


def plot_sweep(sweep: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = {"ms_clip": "ms_clip (MindSpore)", "pytorch": "PyTorch (HF CLIPModel)"}
    for fw, style in zip(FRAMEWORKS, ("o-", "s--")):
        pts = sweep["points"][fw]
        ax_t.plot([p["batch"] for p in pts], [p["throughput"] for p in pts], style, label=labels[fw])
        ax_m.plot([p["batch"] for p in pts], [p["peak_rss_mb"] / 1024 for p in pts], style, label=labels[fw])
    unit = sweep["points"]["ms_clip"][0]["unit"]
    if sweep["kind"] == "train":
        unit = "samples/s"
        ax_t.clear()
        for fw, style in zip(FRAMEWORKS, ("o-", "s--")):
            pts = sweep["points"][fw]
            ax_t.plot([p["batch"] for p in pts], [p["throughput"] * p["batch"] for p in pts], style, label=labels[fw])
    for ax in (ax_t, ax_m):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sweep["batches"], [str(b) for b in sweep["batches"]])
        ax.set_xlabel("batch size")
        ax.grid(alpha=0.3)
        ax.legend()
    ax_t.set_ylabel(unit)
    ax_t.set_title(f"{sweep['model']} {sweep['kind']}: throughput")
    ax_m.set_ylabel("peak RSS (GiB)")
    ax_m.set_title(f"{sweep['model']} {sweep['kind']}: peak resident memory")
    host = sweep.get("host", {})
    fig.suptitle(f"{host.get('cpu', '')}, {host.get('threads', '')} threads, load {host.get('load_avg_start')} -> "
                 f"{host.get('load_avg_end')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help=f"comma-separated subset of {list(FIGURES)} (default: all)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--launches", type=int, default=2,
                        help="ms_clip launches per figure sharing one compile cache (1: no cache, as before)")
    parser.add_argument("--sweep", choices=sorted(SWEEP_FIGURE), help="batch-size sweep instead of the figures")
    parser.add_argument("--batches", help="sweep batch sizes, comma-separated (default per kind, see the source)")
    parser.add_argument("--quick", action="store_true", help="clip_tiny, small batches, 1 rep: checks the script")
    parser.add_argument("--no-gemm", action="store_true", help="skip the host GEMM rates (no efficiency column)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker process")
    parser.add_argument("--json", default=None, help="default results/bench_clip.json or results/sweep_<kind>.json")
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "FIGURE"), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    # Same thread count for both frameworks' OpenMP/BLAS pools.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.worker:
        framework, figure = args.worker
        model, kind, batch = FIGURES[figure][:3]
        model = QUICK_MODEL if args.quick else model
        result = worker(framework, figure, args.reps, args.threads, model, args.batch or batch)
        print("RESULT " + json.dumps(result), flush=True)
        return
    if args.quick:
        args.reps = min(args.reps, 1)

    figures = [f for f in (args.only or ",".join(FIGURES)).split(",") if f]
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    # Under load PyTorch slowed down much more than MindSpore here (measured 19 -> 3 img/s vs 34 -> 9), which
    # inflates the ratio: host_record warns loudly and records the load at start and end.
    host = host_record(args.threads, gemm=not args.no_gemm, gemm_reps=1 if args.quick else 7,
                       what="bench_clip.py")
    runner = Runner(args, host.get("best_gemm_gflops"))
    os.makedirs(RESULTS, exist_ok=True)
    if args.sweep:
        sweep = run_sweep(args, runner)
        sweep["host"] = finish_host_record(host)
        sweep["reps"] = args.reps
        path = args.json or os.path.join(RESULTS, f"sweep_{args.sweep}{'_quick' if args.quick else ''}.json")
        png = os.path.splitext(path)[0] + ".png"
        plot_sweep(sweep, png)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(sweep, f, indent=2)
        print(describe_host(sweep["host"]))
        for fw in FRAMEWORKS:
            pts = ", ".join(f"{p['batch']}: {p['throughput']:.2f} {p['unit']} / {p['peak_rss_mb']:.0f} MB"
                            for p in sweep["points"][fw])
            fit = sweep["memory_fit"][fw]
            print(f"{fw:8s} {pts}; extrapolated largest batch in 24 GiB: {fit['extrapolated_max_batch_24gb']} "
                  f"({fit['base_mb']} MB + {fit['per_sample_mb']} MB/sample)")
        print(f"JSON written to {path}, plot to {png}")
        return

    summary = run_figures(args, runner, figures)
    host = finish_host_record(host)
    print(f"ms_clip vs PyTorch (HF CLIPModel), median of {args.reps}; {describe_host(host)}")
    print_table(summary)
    path = args.json or os.path.join(RESULTS, f"bench_clip{'_quick' if args.quick else ''}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(host=host, reps=args.reps, launches=args.launches, quick=args.quick, results=summary), f,
                  indent=2)
    print(f"JSON written to {path}")


if __name__ == "__main__":
    main()
