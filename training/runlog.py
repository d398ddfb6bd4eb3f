"""What a training run writes as it goes: metrics.csv (always), TensorBoard event files (when
the package is installed), and checkpoints that a kill cannot leave half-written."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch


class RunLog:
    """metrics.csv always; TensorBoard event files when the package is installed."""

    def __init__(self, run: Path, history: list[dict]):
        self.path = run / "metrics.csv"
        self.history = history
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "tb"))
        except ImportError:  # tensorboard not installed: the CSV is the record
            self.tb = None

    def add(self, row: dict) -> None:
        self.history.append(row)
        keys = list(dict.fromkeys(k for h in self.history for k in h))
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(self.history)
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, float | int):
                    self.tb.add_scalar(k if k in ("loss", "lr", "seconds") else f"val/{k}", v, row["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint whole
