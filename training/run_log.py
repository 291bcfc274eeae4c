"""What a run leaves to read: `log.csv` (one row per epoch), `curves.png`, optional TensorBoard.

The CSV and the plot are rewritten from the full history each epoch, so a resumed run's files are
the same as an uninterrupted run's.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Optional

from clap_core.errors import ConfigError

LOG_FILE = "log.csv"
PLOT_FILE = "curves.png"


class RunLog:
    def __init__(self, out: Path, tensorboard: bool = False) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.writer: Optional[Any] = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("train.tensorboard: the tensorboard package is not installed "
                                  "(pip install tensorboard, or set train.tensorboard=false)") from None
            self.writer = SummaryWriter(str(self.out / "tensorboard"))

    def write(self, history: list[dict[str, float]]) -> None:
        write_csv(self.out / LOG_FILE, history)
        plot_curves(self.out / PLOT_FILE, history)
        if self.writer is not None and history:
            row = history[-1]
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and not math.isnan(value):
                    self.writer.add_scalar(key, value, int(row["epoch"]))
            self.writer.flush()

    @staticmethod
    def summary(row: dict[str, float], improved: bool) -> str:
        start = row["epoch"] == 0
        parts = ["epoch 0 (start)" if start else f"epoch {row['epoch']}",
                 "" if start else f"train {row['train_loss']:.4f}", f"val {row['val_loss']:.4f}",
                 f"R@1 a→t {row['a2t_r1']:.2f} t→a {row['t2a_r1']:.2f}",
                 f"R@10 a→t {row['a2t_r10']:.2f} t→a {row['t2a_r10']:.2f}"]
        if "zeroshot_acc" in row:
            parts.append(f"zero-shot {row['zeroshot_acc']:.3f}")
        parts.append(f"lr {row['lr']:.2e}")
        return " | ".join(p for p in parts if p) + (" | best" if improved else "")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_csv(path: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    fields = list(history[0])
    for row in history[1:]:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)


def plot_curves(path: Path, history: list[dict[str, float]]) -> None:
    """Losses on the left, retrieval/zero-shot on the right (matplotlib, Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train_loss", "val_loss"):
        left.plot(epochs, [row[key] for row in history], marker="o", label=key)
    left.set_xlabel("epoch")
    left.set_ylabel("contrastive loss")
    left.legend()
    for key in ("a2t_r1", "t2a_r1", "a2t_r10", "t2a_r10", "zeroshot_acc"):
        if key in history[0]:
            right.plot(epochs, [row[key] for row in history], marker=".", label=key)
    right.set_xlabel("epoch")
    right.set_ylabel("recall / accuracy")
    right.set_ylim(0, 1.02)
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
