"""The model zoo's speed: RN50 and ViT-H/14 image encoding, ms_clip vs open_clip (PyTorch), same run, same batch;
the ResNet's convolutions as MindSpore Conv2d vs ms_clip's GEMM formulation; and this host's GEMM rates
(a ratio means something only beside them: benchmarks/README.md).

Each figure runs in its own subprocess (float32, CPU, 2 threads for both frameworks):

    python benchmarks/bench_zoo.py                       # everything; table + benchmarks/results/bench_zoo.json
    python benchmarks/bench_zoo.py --only rn50 --reps 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_common import cpu_model, finish_host_record, host_record, time_call  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# figure -> (ms_clip registry name, open_clip architecture, batch)
FIGURES = {"rn50": ("clip_rn50", "RN50-quickgelu", 16), "vit_h_14": ("clip_vit_h_14", "ViT-H-14", 4)}
# conv layers of RN50 at 224 px, batch 8: (name, in, out, kernel, stride, input side)
CONVS = [("stem conv1 3x3/2", 3, 32, 3, 2, 224), ("layer1 conv2 3x3", 64, 64, 3, 1, 56),
         ("layer1 conv1 1x1", 256, 64, 1, 1, 56), ("layer3 conv2 3x3", 256, 256, 3, 1, 14)]



def _pixels(batch: int, size: int):
    import numpy as np

    return np.random.RandomState(0).randn(batch, 3, size, size).astype(np.float32)


def run_ms(figure: str, reps: int) -> dict:
    import mindspore as ms
    from mindspore import Tensor, nn

    import ms_clip

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    name, _, batch = FIGURES[figure]
    model = ms_clip.create_model(name)
    model.set_train(False)

    class Encode(nn.Cell):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def construct(self, x):
            return self.m.get_image_features(x)

    net = Encode(model)
    x = Tensor(_pixels(batch, model.config.image_size))
    first, median = time_call(lambda: net(x).asnumpy(), reps)
    return {"first_s": first, "median_s": median, "per_s": batch / median}


def run_torch(figure: str, reps: int, threads: int) -> dict:
    import torch
    import open_clip

    torch.set_num_threads(threads)
    _, arch, batch = FIGURES[figure]
    model = open_clip.create_model(arch, pretrained=None).eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    x = torch.from_numpy(_pixels(batch, size))

    def step():
        with torch.no_grad():
            model.encode_image(x)

    first, median = time_call(step, reps)
    return {"first_s": first, "median_s": median, "per_s": batch / median}


def run_gemm(reps: int, threads: int) -> dict:
    """GFLOP/s of the 1600x768 @ 768x3072 fp32 GEMM: MindSpore MatMul(transpose_b) and torch.matmul."""
    import numpy as np
    import mindspore as ms
    import torch
    from mindspore import Tensor, ops

    torch.set_num_threads(threads)
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    a = np.random.rand(1600, 768).astype(np.float32)
    b = np.random.rand(3072, 768).astype(np.float32)
    flops = 2 * 1600 * 768 * 3072
    mm = ops.MatMul(transpose_b=True)
    ta, tb = Tensor(a), Tensor(b)
    _, ms_t = time_call(lambda: mm(ta, tb).asnumpy(), reps * 4)
    pa, pb = torch.from_numpy(a), torch.from_numpy(b)
    _, pt_t = time_call(lambda: torch.matmul(pa, pb.T), reps * 4)
    return {"ms_gflops": flops / ms_t / 1e9, "torch_gflops": flops / pt_t / 1e9}


def _im2col_gemm(cin: int, cout: int, k: int, s: int):
    """The rejected alternative: the convolution as im2col (k*k strided windows of an NHWC map, concatenated) +
    the 2-D MatMul(transpose_b) GEMM that layers.Linear uses (a 1x1 convolution is just the GEMM)."""
    import mindspore as ms
    from mindspore import Parameter, Tensor, nn, ops
    import numpy as np

    class Im2colConv(nn.Cell):
        def __init__(self):
            super().__init__()
            self.weight = Parameter(Tensor(np.zeros((cout, cin, k, k), np.float32)), name="weight")
            self.matmul = ops.MatMul(transpose_b=True)

        def construct(self, x):
            n, h, w, c = x.shape
            pad = k // 2
            ho, wo = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
            if k == 1:
                cols = x[:, ::s, ::s, :].reshape(n * ho * wo, c) if s > 1 else x.reshape(n * ho * wo, c)
                weight = self.weight.reshape(cout, -1)
            else:
                x = ops.pad(x, (0, 0, pad, pad, pad, pad))
                windows = []
                for dy in range(k):
                    for dx in range(k):
                        windows.append(x[:, dy:dy + s * (ho - 1) + 1:s, dx:dx + s * (wo - 1) + 1:s, :])
                cols = ops.concat(windows, axis=-1).reshape(n * ho * wo, k * k * c)
                weight = self.weight.transpose(0, 2, 3, 1).reshape(cout, -1)
            return self.matmul(cols, weight).reshape(n, ho, wo, cout)

    return Im2colConv()


def run_convs(reps: int) -> dict:
    """Each RN50 convolution (batch 8): ms_clip's Conv2d (MindSpore Conv2D, NCHW, what the tower uses) vs the
    im2col + GEMM formulation on NHWC (the ViT patch embedding's approach)."""
    import numpy as np
    import mindspore as ms
    from mindspore import Tensor

    from ms_clip.models.resnet import Conv2d

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    out = {}
    for label, cin, cout, k, s, side in CONVS:
        x = np.random.RandomState(0).randn(8, cin, side, side).astype(np.float32)
        ours = Conv2d(cin, cout, k, s, 1.0)
        gemm = _im2col_gemm(cin, cout, k, s)
        gemm.weight.set_data(ours.weight.data)
        xt, xh = Tensor(x), Tensor(x.transpose(0, 2, 3, 1).copy())
        ref = ours(xt).asnumpy()
        got = gemm(xh).asnumpy().transpose(0, 3, 1, 2)
        _, t_conv = time_call(lambda: ours(xt).asnumpy(), reps)
        _, t_gemm = time_call(lambda: gemm(xh).asnumpy(), reps)
        out[label] = {"conv2d_ms": t_conv * 1e3, "gemm_ms": t_gemm * 1e3, "speedup": t_gemm / t_conv,
                      "max_abs_diff": float(np.abs(ref - got).max())}
    return out



def worker(job: str, reps: int, threads: int) -> dict:
    kind, _, figure = job.partition(":")
    if kind == "ms":
        result = run_ms(figure, reps)
    elif kind == "torch":
        result = run_torch(figure, reps, threads)
    elif kind == "gemm":
        result = run_gemm(reps, threads)
    else:
        result = run_convs(reps)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(FIGURES) + ["gemm", "convs"], action="append")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
        print(json.dumps(worker(args.worker, args.reps, args.threads)))
        return
    selected = args.only or ["gemm", "convs"] + list(FIGURES)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "GLOG_v": "3"}
    # The host record (issue 16): CPU flags, versions, load at start/end, the GEMM rates of every framework.
    results = {"host": host_record(args.threads, what="bench_zoo.py"), "cpu": cpu_model(),
               "load_before": os.getloadavg()}
    jobs = []
    for item in selected:
        jobs += [f"ms:{item}", f"torch:{item}"] if item in FIGURES else [item]
    for job in jobs:
        proc = subprocess.run([sys.executable, __file__, "--worker", job, "--reps", str(args.reps),
                               "--threads", str(args.threads)], capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"{job} failed:\n{proc.stderr[-3000:]}")
        results[job] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(job, results[job], flush=True)
    results["load_after"] = os.getloadavg()
    finish_host_record(results["host"])
    print(f"\nCPU {results['cpu']}; load average {results['load_before'][0]:.2f} -> {results['load_after'][0]:.2f}")
    if "gemm" in results:
        g = results["gemm"]
        print(f"host GEMM 1600x768x3072 fp32: MindSpore {g['ms_gflops']:.0f} GFLOP/s, PyTorch {g['torch_gflops']:.0f}")
    if "convs" in results:
        print("| RN50 convolution (batch 8) | Conv2D ms | im2col+GEMM ms | Conv2D faster by | max abs diff |\n"
              "|---|---|---|---|---|")
        for label, r in results["convs"].items():
            if not isinstance(r, dict):
                continue
            print(f"| {label} | {r['conv2d_ms']:.1f} | {r['gemm_ms']:.1f} | {r['speedup']:.1f}x | {r['max_abs_diff']:.1e} |")
    print("| figure | batch | ms_clip img/s | PyTorch img/s | ratio | first call ms/pt (s) | peak RSS ms/pt (MB) |")
    print("|---|---|---|---|---|---|---|")
    for figure in FIGURES:
        if f"ms:{figure}" in results:
            a, b = results[f"ms:{figure}"], results[f"torch:{figure}"]
            print(f"| {figure} | {FIGURES[figure][2]} | {a['per_s']:.2f} | {b['per_s']:.2f} | **{a['per_s'] / b['per_s']:.2f}x** "
                  f"| {a['first_s']:.1f} / {b['first_s']:.1f} | {a['peak_rss_mb']:.0f} / {b['peak_rss_mb']:.0f} |")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "bench_zoo.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
