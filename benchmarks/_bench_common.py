"""Helpers every benchmark script shares: one timing rule, the host record, and measured subprocesses.

The host record (``host_record``) goes into every result file: ratios between ms_clip and PyTorch are a
property of the host as much as of the code (issue 16: the same commit measured 1.8x on one AMD EPYC and
1.09x on another), so each result carries the CPU model, the CPU flags that decide which GEMM kernels run,
the load average at start and end, both frameworks' versions, and the single-GEMM rate of one
1600x768x3072 fp32 GEMM in MindSpore (graph and PyNative), PyTorch and numpy, each in its own process.

    python benchmarks/_bench_common.py              # print this host's record (JSON)
    python benchmarks/_bench_common.py --no-gemm    # without the GEMM rates (seconds instead of a minute)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

# The GEMM the issue quotes: [1600, 768] x [768, 3072], the shape of ViT-B/32's MLP up-projection for a
# batch of 32 images (32 x 50 tokens).
GEMM_M, GEMM_K, GEMM_N = 1600, 768, 3072
GEMM_FLOP = 2.0 * GEMM_M * GEMM_K * GEMM_N
GEMM_KINDS = ("mindspore_graph", "mindspore_graph_matmul_transpose_b", "mindspore_pynative", "torch", "numpy")
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile", "amx_bf16",
                     "amx_int8")
LOAD_WARNING_THRESHOLD = 0.5


def timings(fn: Callable[[], object], reps: int, warmup: int = 1) -> List[float]:
    """Seconds of ``reps`` calls of ``fn`` after ``warmup`` untimed ones (the one timing loop of every benchmark)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def time_call(fn: Callable[[], object], reps: int) -> Tuple[float, float]:
    """(first call seconds, median of ``reps`` timed calls after one untimed warm-up call)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    return first, statistics.median(timings(fn, reps, warmup=1))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (ratios mean something only with the host recorded)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> Dict[str, bool]:
    """Which of ``FLAGS_OF_INTEREST`` the CPU reports (they decide the GEMM kernels oneDNN/OpenBLAS pick)."""
    flags: set = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {name: name in flags for name in FLAGS_OF_INTEREST}


def load_average() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def warn_if_loaded(load: float, what: str) -> bool:
    """Print a loud warning when the machine is not idle; returns whether it warned (recorded in results)."""
    if load <= LOAD_WARNING_THRESHOLD:
        return False
    bar = "!" * 78
    print(f"{bar}\n!! WARNING: 1-minute load average is {load:.2f} (> {LOAD_WARNING_THRESHOLD}) before {what}.\n"
          f"!! Other processes share the CPU: throughput, first-call times and ratios are NOT representative.\n"
          f"!! Re-run on an idle machine before quoting these figures.\n{bar}", file=sys.stderr, flush=True)
    return True


# ----------------------------------------------------------------------------- single-GEMM rates


def _gemm_seconds(kind: str, reps: int, threads: int) -> List[float]:
    """``reps`` timings (after two warm-up calls) of one fp32 GEMM of the issue's shape in ``kind``."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_M, GEMM_K), dtype=np.float32)
    b = rng.standard_normal((GEMM_K, GEMM_N), dtype=np.float32)
    if kind == "numpy":
        fn: Callable[[], object] = lambda: np.dot(a, b)  # noqa: E731
    elif kind == "torch":
        import torch

        torch.set_num_threads(threads)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)

        def fn():
            with torch.inference_mode():
                return torch.matmul(ta, tb)
    else:
        import mindspore as ms
        from mindspore import nn, ops

        if kind == "mindspore_pynative":
            # MindSpore's default mode: no set_context at all, as a user calling ops directly gets.
            ma, mb = ms.Tensor(a), ms.Tensor(b)
            fn = lambda: ops.matmul(ma, mb).asnumpy()  # noqa: E731
        else:
            ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
            transpose_b = kind == "mindspore_graph_matmul_transpose_b"

            class Gemm(nn.Cell):
                def __init__(self):
                    super().__init__()
                    # ms_clip's layers use MatMul(transpose_b=True) on the [out, in] weight (README: the
                    # fastest CPU GEMM on 2.7-2.10); ops.matmul is what the issue measured.
                    self.mm = ops.MatMul(transpose_b=True) if transpose_b else None

                def construct(self, x, y):
                    if self.mm is not None:
                        return self.mm(x, y)
                    return ops.matmul(x, y)

            net = Gemm()
            ma = ms.Tensor(a)
            mb = ms.Tensor(np.ascontiguousarray(b.T) if transpose_b else b)
            fn = lambda: net(ma, mb).asnumpy()  # noqa: E731
    return timings(fn, reps, warmup=2)


def measure_gemm_rates(reps: int = 7, threads: Optional[int] = None,
                       kinds: Sequence[str] = GEMM_KINDS) -> Dict[str, Optional[float]]:
    """GFLOP/s (median of ``reps``) of the 1600x768x3072 fp32 GEMM per kind, each kind in its own process
    (so one library's thread pool cannot slow another's); None for a kind that failed (its error printed)."""
    threads = threads or os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GLOG_v": "3"}
    rates: Dict[str, Optional[float]] = {}
    for kind in kinds:
        cmd = [sys.executable, os.path.abspath(__file__), "--gemm-worker", kind, "--reps", str(reps),
               "--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("GEMM ")]
        if proc.returncode != 0 or not lines:
            print(f"GEMM rate for {kind} failed (exit {proc.returncode}): {proc.stderr[-1500:]}", file=sys.stderr)
            rates[kind] = None
            continue
        rates[kind] = round(GEMM_FLOP / float(lines[-1].split()[1]) / 1e9, 1)
    return rates


def host_record(threads: Optional[int] = None, gemm: bool = True, gemm_reps: int = 7,
                what: str = "benchmarking") -> dict:
    """The record every result file carries; call ``finish_host_record`` on it when the benchmark ends.

    Measures the GEMM rates first (a minute on an idle 2-core host) unless ``gemm`` is False."""
    import importlib.metadata as md

    def version(pkg: str) -> Optional[str]:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    threads = threads or os.cpu_count() or 1
    load_start = load_average()
    record = dict(cpu=cpu_model(), cpu_flags=cpu_flags(), cores=os.cpu_count(), threads=threads,
                  python=platform.python_version(), mindspore=version("mindspore"), torch=version("torch"),
                  open_clip=version("open_clip_torch"), numpy=version("numpy"),
                  load_avg_start=load_start, load_warning=warn_if_loaded(load_start, what),
                  gemm_shape=[GEMM_M, GEMM_K, GEMM_N])
    if gemm:
        rates = measure_gemm_rates(gemm_reps, threads)
        record["gemm_gflops"] = rates
        measured = [r for r in rates.values() if r]
        record["best_gemm_gflops"] = max(measured) if measured else None
        record["best_gemm_kind"] = max((r, k) for k, r in rates.items() if r)[1] if measured else None
    return record


def finish_host_record(record: dict) -> dict:
    """Adds the load average at the end (a busy end means the later figures ran under load too)."""
    record["load_avg_end"] = load_average()
    if record["load_avg_end"] > LOAD_WARNING_THRESHOLD:
        record["load_warning"] = True
    return record


def describe_host(record: Mapping) -> str:
    """One line for a printed table's header."""
    flags = ",".join(k for k, v in record.get("cpu_flags", {}).items() if v) or "-"
    gemm = record.get("gemm_gflops") or {}
    gemm_text = ", ".join(f"{k} {v}" for k, v in gemm.items() if v) or "not measured"
    end = record.get("load_avg_end")
    return (f"{record['cpu']} ({record['cores']} cores, {record['threads']} threads; {flags}); MindSpore "
            f"{record['mindspore']}, torch {record['torch']}; load avg {record['load_avg_start']} -> "
            f"{end if end is not None else '?'}; GEMM {GEMM_M}x{GEMM_K}x{GEMM_N} GFLOP/s: {gemm_text}")


# ----------------------------------------------------------------------------- measured subprocesses


def run_measured(cmd: Sequence[str], env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
                 timeout: Optional[float] = None) -> Tuple[int, str, str, float, float]:
    """Run ``cmd``; (exit code, stdout, stderr, wall seconds, peak RSS MB of that process and its children).

    The peak comes from ``wait4`` on that one child, taken by a small launcher process (this file with
    ``--measure``, stdlib only): Linux counts a forked child's pre-exec memory (a copy of its parent's) in the
    child's ``ru_maxrss``, so a benchmark parent that has imported torch or MindSpore would otherwise lend its
    own size to every child it measures. ``getrusage(RUSAGE_CHILDREN)`` is not used either: it is one maximum
    over all children so far."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as report:
        launcher = [sys.executable, "-S", os.path.abspath(__file__), "--measure", report.name,
                    "--timeout", str(timeout or 0), "--", *cmd]
        proc = subprocess.run(launcher, stdout=out, stderr=err, env=dict(env) if env is not None else None, cwd=cwd)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        try:
            result = json.load(report)
        except ValueError:
            return proc.returncode or 1, stdout, stderr + "\nlauncher wrote no report", 0.0, 0.0
        return result["returncode"], stdout, stderr, result["wall_s"], result["peak_rss_mb"]


def _measure(report: str, timeout: float, cmd: Sequence[str]) -> int:
    """The launcher: run ``cmd`` (inheriting stdout/stderr), reap it with wait4, write its figures to ``report``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd))
    deadline = t0 + timeout if timeout > 0 else None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
    with open(report, "w", encoding="utf-8") as f:
        json.dump(dict(returncode=proc.returncode, wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024), f)
    return proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM rates")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--gemm-worker", choices=GEMM_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--measure", metavar="REPORT", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        sys.exit(_measure(args.measure, args.timeout, command))
    if args.gemm_worker:
        times = _gemm_seconds(args.gemm_worker, args.reps, args.threads)
        print(f"GEMM {statistics.median(times)!r}", flush=True)
        return
    record = finish_host_record(host_record(args.threads, gemm=not args.no_gemm, gemm_reps=args.reps))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
