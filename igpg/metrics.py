"""A training run's metrics: OUT/metrics.jsonl (the record, one JSON object per logged step), and the same scalars
as TensorBoard event files in OUT/tensorboard/ when the optional `tensorboard` package is installed
(`pip install 'igpg[tensorboard]'`; then `tensorboard --logdir OUT`).

    log = MetricsLog(out, step)        # step: the step the run resumes from (0 for a fresh one)
    log.write({"step": 10, "code_loss": 2.31, "lr": 3e-4, "seconds": 4.2})
    log.close()
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

METRICS = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class MetricsLog:
    def __init__(self, out: str | Path, step: int = 0):
        self.path = Path(out) / METRICS
        self.writer = None
        if tensorboard_available():
            from torch.utils.tensorboard import SummaryWriter

            # events after the step the run starts from (written before a kill) are dropped, as metrics.jsonl's are
            self.writer = SummaryWriter(str(Path(out) / TENSORBOARD_DIR), purge_step=step + 1)

    def write(self, rec: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.writer is not None:
            for key, value in rec.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, rec["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
