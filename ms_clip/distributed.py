"""Data-parallel training on MindSpore's own distributed engine (launched with ``msrun``).

* ``init_distributed(config)``: ``mindspore.communication.init()`` in ``DATA_PARALLEL`` mode with
  the gradient mean; returns (rank, world_size). The device comes from ``context.device_target``
  (mccl on CPU, hccl on Ascend, nccl on GPU, picked by MindSpore from the device).
* ``broadcast_parameters``: every rank takes rank 0's weights (the seed already makes them equal;
  the broadcast also covers weights loaded from files that differ between nodes).
* ``gather_rows``: all-gather NumPy rows of uneven length (sharded evaluation, bookkeeping).
* ``fingerprint`` / ``rank_fingerprints``: a cheap exact check that all ranks hold the same weights.
* ``diagnose(log_dir, msrun_output)``: after a failed ``msrun`` job, one message naming the rank
  that failed first, its exit code, its last error line and its log file
  (``python -m ms_clip.distributed diagnose LOG_DIR [MSRUN_OUTPUT]``).

msrun starts one scheduler and ``worker_num`` workers, all running the same script; the
scheduler's ``init()`` never returns (it exits when the job ends), so no training code runs in it.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["init_distributed", "current_rank", "is_scheduler", "broadcast_parameters", "gather_rows", "fingerprint",
           "rank_fingerprints", "diagnose", "RANK_MARKER"]

# Each worker prints this line to its log at start-up; ``diagnose`` maps msrun's process ids to ranks with it.
RANK_MARKER = "ms_clip distributed worker: rank {rank} of {world_size}, pid {pid}"
START_MARKER = "ms_clip distributed worker starting: pid {pid}"
_START_RE = re.compile(r"ms_clip distributed worker starting: pid (\d+)")
_RANK_MARKER_RE = re.compile(r"ms_clip distributed worker: rank (\d+) of (\d+), pid (\d+)")


_RANK: Optional[int] = None  # this process's rank once init_distributed has succeeded


def current_rank() -> Optional[int]:
    """This worker's rank after a successful ``init_distributed``, else None."""
    return _RANK


def is_scheduler() -> bool:
    """True in msrun's scheduler process (MS_ROLE=MS_SCHED), which coordinates and never trains."""
    return os.environ.get("MS_ROLE") == "MS_SCHED"


def init_distributed(config: Mapping[str, Any]) -> Tuple[int, int]:
    """(rank, world_size): (0, 1) unless ``use_parallel``; then MindSpore's communication is initialised
    (launch with msrun) in data-parallel mode with the gradient mean.

    The MindSpore context (device target) must be set before: ``init()`` picks the backend from it and
    fixes the device id (msrun's DEVICE_ID, the local rank) for the rest of the process.
    """
    if not config["use_parallel"]:
        return 0, 1
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    from ms_clip.run_config import RunConfigError

    if int(config["parallel"]["parallel_mode"]) != 0:
        raise RunConfigError(f"parallel.parallel_mode: CLIP trains data-parallel only; expected 0 (DATA_PARALLEL), "
                             f"got {config['parallel']['parallel_mode']!r}")
    split = {k: config["parallel_config"][k] for k in ("model_parallel", "pipeline_stage")
             if int(config["parallel_config"][k]) != 1}
    if split:
        raise RunConfigError(f"parallel_config: {split}: model and pipeline parallelism are not implemented for CLIP "
                             f"(a ViT-L/14 fits one device); set them to 1")
    if not os.environ.get("MS_WORKER_NUM") and not os.environ.get("RANK_TABLE_FILE"):
        raise RunConfigError("use_parallel is True but this process was not started by msrun (MS_WORKER_NUM is not "
                             "set); launch with: msrun --worker_num=N --local_worker_num=N --master_port=PORT "
                             "--join=True --log_dir=LOG_DIR run_mindformer.py ... --use_parallel True")
    if not is_scheduler():
        print(START_MARKER.format(pid=os.getpid()), file=sys.stderr, flush=True)
    try:
        init()
    except Exception as err:  # noqa: BLE001 - MindSpore raises RuntimeError with the cluster's own text
        role = "scheduler" if is_scheduler() else f"worker (RANK_ID {os.environ.get('RANK_ID', '?')})"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RuntimeError(
            f"distributed job failed in the {role} [scheduler {os.environ.get('MS_SCHED_HOST')}:"
            f"{os.environ.get('MS_SCHED_PORT')}, {os.environ.get('MS_WORKER_NUM')} workers expected, cluster "
            f"time-out {os.environ.get('MS_TOPO_TIMEOUT', '?')} s]: {first}") from None
    global _RANK
    rank, world_size = get_rank(), get_group_size()
    _RANK = rank
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL,
                                 gradients_mean=bool(config["parallel"]["gradients_mean"]))
    print(RANK_MARKER.format(rank=rank, world_size=world_size, pid=os.getpid()), file=sys.stderr, flush=True)
    if rank != 0:
        # Rank 0 speaks for the job; the others keep warnings and errors (still in their own log).
        logging.getLogger("ms_clip").setLevel(logging.WARNING)
    return rank, world_size


# --------------------------------------------------------------------------- collectives (host side)

_CELLS: Dict[str, Any] = {}


def _cell(kind: str):
    """One compiled collective Cell per kind for the process (they hold no state)."""
    if kind not in _CELLS:
        from mindspore import nn, ops

        class _Collective(nn.Cell):
            def __init__(self, op):
                super().__init__()
                self.op = op

            def construct(self, x):
                return self.op(x)

        op = {"all_gather": ops.AllGather(), "broadcast": ops.Broadcast(0)}[kind]
        _CELLS[kind] = _Collective(op)
    return _CELLS[kind]


def _as_int32_words(array: np.ndarray) -> np.ndarray:
    """[n, ...] -> [n, k] int32 carrying the exact bytes (CPU AllGather takes only float16/float32/int32)."""
    if array.dtype.itemsize % 4:
        array = array.astype(np.int32)
    width = int(np.prod(array.shape[1:], dtype=np.int64))
    return np.ascontiguousarray(array).reshape(len(array), width).view(np.int32)


def gather_rows(array: np.ndarray, world_size: int) -> np.ndarray:
    """Concatenate every rank's ``array`` (same dtype and trailing shape, any number of rows) in rank order.

    AllGather needs equal shapes, so rows are padded to the longest rank's count and cut back after;
    values travel as their raw bytes, so float64 and int64 arrive exactly.
    """
    array = np.ascontiguousarray(array)
    if world_size == 1:
        return array
    from mindspore import Tensor

    gather = _cell("all_gather")
    counts = gather(Tensor(np.array([len(array)], np.int32))).asnumpy()
    longest = int(counts.max())
    words = _as_int32_words(array)
    padded = np.zeros((longest, words.shape[1]), np.int32)
    padded[:len(words)] = words
    gathered = gather(Tensor(padded)).asnumpy().reshape(world_size, longest, words.shape[1])
    rows = np.concatenate([gathered[r, :int(counts[r])] for r in range(world_size)])
    wire = array.dtype if array.dtype.itemsize % 4 == 0 else np.dtype(np.int32)
    return rows.view(wire).astype(array.dtype).reshape((-1,) + array.shape[1:])


def broadcast_parameters(params: Sequence[Any], world_size: int) -> None:
    """Overwrite every rank's ``params`` with rank 0's values."""
    if world_size == 1:
        return
    from mindspore import Tensor

    params = list(params)
    for param in params:
        value = _cell("broadcast")((Tensor(param.asnumpy()),))[0]
        param.set_data(value)
    logger.info("broadcast %d parameters from rank 0", len(params))


def fingerprint(params: Sequence[Any]) -> float:
    """A number that changes with (practically) any weight change: a fixed mix of each parameter's
    float64 sum and sum of squares, computed on the host, so equal weights give bitwise equal values."""
    total = 0.0
    for i, param in enumerate(params):
        value = np.asarray(param.asnumpy(), np.float64)
        total += float(value.sum()) * (1.0 + 1.0 / (i + 1)) + float(np.square(value).sum()) * (2.0 + 1.0 / (i + 2))
    return total


def rank_fingerprints(params: Sequence[Any], world_size: int) -> List[float]:
    """Every rank's ``fingerprint(params)``, in rank order (identical when all ranks agree)."""
    return [float(v) for v in gather_rows(np.array([fingerprint(params)], np.float64), world_size)]


# --------------------------------------------------------------------------- post-mortem of an msrun job

_EXPECTED_RE = re.compile(r"(\d+) workers expected")
_EXIT_RE = re.compile(r"Worker process (\d+) exit with exception\. Error code: (-?\d+)")
_ERROR_LINE_RE = re.compile(r"^(error: |\w*Error: |\[ERROR\] |ERROR )")


def _last_error(path: str) -> Optional[str]:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            lines = [line.rstrip() for line in f]
    except OSError:
        return None
    for line in reversed(lines):
        if _ERROR_LINE_RE.match(line) and "Heartbeat" not in line:
            return line[:400]
    return None


def _worker_logs(log_dir: str) -> List[Dict[str, Any]]:
    """Per worker log: its path, pid (start-up line), rank and world size (once joined), ranks expected."""
    workers = []
    for path in sorted(glob.glob(os.path.join(log_dir, "worker_*.log"))):
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            text = f.read()
        started, joined = _START_RE.search(text), _RANK_MARKER_RE.search(text)
        counts = [int(n) for n in _EXPECTED_RE.findall(text)] + ([int(joined.group(2))] if joined else [])
        workers.append({"log": path, "pid": int(started.group(1)) if started else None,
                        "rank": int(joined.group(1)) if joined else None, "expected": max(counts, default=0)})
    return workers


def _describe(worker: Dict[str, Any]) -> str:
    if worker["rank"] is not None:
        return f"rank {worker['rank']}"
    return f"the worker of {os.path.basename(worker['log'])} (not yet joined)"


def diagnose(log_dir: str, msrun_output: Optional[str] = None) -> str:
    """A few lines on why an msrun job in ``log_dir`` failed: ranks that never started, the worker that
    failed first (msrun's "Worker process PID exit with exception", mapped to its log and rank by the
    worker's start-up lines) with its exit code and last error line, and where the logs are."""
    workers = _worker_logs(log_dir)
    expected = max([w["expected"] for w in workers] or [0])
    exits: List[Tuple[int, int]] = []
    if msrun_output and os.path.isfile(msrun_output):
        with open(msrun_output, "r", encoding="utf-8", errors="replace") as f:
            exits = [(int(p), int(c)) for p, c in _EXIT_RE.findall(f.read())]
    lines = [f"distributed job failed; logs in {os.path.abspath(log_dir)}"]
    # With all workers on this node, worker_<i>.log is rank i's log (msrun's naming).
    logged = {int(re.sub(r"\D", "", os.path.basename(w["log"]))) for w in workers}
    missing = [r for r in range(expected) if r not in logged]
    if missing:
        lines.append(f"rank(s) {missing} of {expected} have no log here: never started on this node, or on "
                     f"another node that did not connect")
    by_pid = {w["pid"]: w for w in workers if w["pid"] is not None}
    reported = []
    for pid, code in exits[:1]:
        worker = by_pid.get(pid)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        lines.append(f"{_describe(worker) if worker else f'worker pid {pid}'} {how} first; msrun then stopped "
                     f"the other workers")
        if worker:
            reported.append(worker)
    reported += [w for w in workers if w["rank"] is None and w not in reported]
    if not reported:
        reported = [w for w in workers if _last_error(w["log"])]
    for worker in reported:
        error = _last_error(worker["log"])
        lines.append(f"{_describe(worker)} log: {worker['log']}" + (f"; last error: {error}" if error else ""))
    return "\n".join(lines)


def _main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or argv[0] != "diagnose":
        print("usage: python -m ms_clip.distributed diagnose LOG_DIR [MSRUN_OUTPUT]", file=sys.stderr)
        return 2
    print(diagnose(argv[1], argv[2] if len(argv) > 2 else None), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
