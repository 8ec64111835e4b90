"""Training reports loss and rate on its progress bar, and logs its metrics to TensorBoard (when installed) beside
metrics.jsonl; a resumed run continues both."""

import io
import json
import re

import pytest
from rich.console import Console

from igpg.cli import _Bars
from igpg.generator.train import train_generator
from igpg.metrics import TENSORBOARD_DIR


def _scalars(run_dir, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / TENSORBOARD_DIR))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_generator_training_bar_shows_loss_and_rate(tiny_pipeline, tiny_zoo, tmp_path):
    d, gcfg = tiny_pipeline
    buf = io.StringIO()
    with _Bars(Console(file=buf, force_terminal=True, width=200)) as bars:
        train_generator(tiny_zoo, d / "tok", gcfg.override({"train.steps": 4}), tmp_path / "g", progress=bars)
    last = [line for line in re.split(r"[\r\n]", buf.getvalue()) if "generator steps" in line][-1]  # final frame
    loss = json.loads((tmp_path / "g" / "metrics.jsonl").read_text().splitlines()[-1])["code_loss"]
    assert "generator steps" in last and "4/4" in last and f"loss {loss:.4g}" in last and "/s" in last, last


def test_tensorboard_events_beside_metrics_jsonl_and_resume(tiny_pipeline, tiny_zoo, tmp_path):
    pytest.importorskip("tensorboard")
    d, gcfg = tiny_pipeline
    cfg = gcfg.override({"train.steps": 8, "train.log_every": 2, "train.checkpoint_every": 4})
    out = tmp_path / "g"
    train_generator(tiny_zoo, d / "tok", cfg, out, stop_after=6)  # stopped: checkpoint and metrics up to 6
    train_generator(tiny_zoo, d / "tok", cfg, out)  # resumes from 6: the events continue, none twice
    jsonl = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    events = _scalars(out, "code_loss")
    assert [s for s, _ in events] == [r["step"] for r in jsonl] == [2, 4, 6, 8]
    assert [v for _, v in events] == pytest.approx([r["code_loss"] for r in jsonl], rel=1e-6)
    assert [s for s, _ in _scalars(out, "lr")] == [2, 4, 6, 8]
