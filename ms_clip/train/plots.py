"""Loss and recall curves as PNG files (matplotlib's Agg backend: no display needed)."""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Sequence

from ms_clip.train.callbacks import read_metrics

logger = logging.getLogger(__name__)

__all__ = ["plot_training_curves"]


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
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("contrastive loss")
        ax.set_title("training loss")
        ax.grid(alpha=0.3)
        path = os.path.join(out_dir, "loss.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    if evals:
        keys = [k for k in evals[-1] if k.endswith(("R@1", "R@5", "R@10")) or k == "mean_recall"]
        fig, ax = plt.subplots(figsize=(7, 4))
        for key in keys:
            ax.plot([r["step"] for r in evals], [100 * r[key] for r in evals], marker="o", label=key,
                    lw=2 if key == "mean_recall" else 1)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("recall (%)")
        ax.set_title("retrieval recall on the evaluation split")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        path = os.path.join(out_dir, "recall.png")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    for path in written:
        logger.info("wrote %s", path)
    return written
