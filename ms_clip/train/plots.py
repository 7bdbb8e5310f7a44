"""Loss and recall curves as PNG files (matplotlib's Agg backend: no display needed)."""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Tuple

from ms_clip.train.callbacks import read_metrics

logger = logging.getLogger(__name__)

__all__ = ["plot_training_curves"]


def _line_plot(plt, series: Dict[str, Tuple[List[float], List[float]]], ylabel: str, title: str, path: str,
               highlight: str = "") -> str:
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o" if len(xs) < 50 else None, label=label, lw=2 if label == highlight else 1)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_training_curves(metrics_path: str, out_dir: str) -> List[str]:
    """Write ``loss.png`` (per-step loss) and, if evaluations ran, ``recall.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r.get("type") == "train"]
    evals = [r for r in records if r.get("type") == "eval"]
    os.makedirs(out_dir, exist_ok=True)
    written = []
    if train:
        series = {"loss": ([r["step"] for r in train], [r["loss"] for r in train])}
        written.append(_line_plot(plt, series, "contrastive loss", "training loss", os.path.join(out_dir, "loss.png")))
    if evals:
        keys = [k for k in evals[-1] if k.endswith(("R@1", "R@5", "R@10")) or k == "mean_recall"]
        series = {k: ([r["step"] for r in evals], [100 * r[k] for r in evals]) for k in keys}
        written.append(_line_plot(plt, series, "recall (%)", "retrieval recall on the evaluation split",
                                  os.path.join(out_dir, "recall.png"), highlight="mean_recall"))
    for path in written:
        logger.info("wrote %s", path)
    return written
