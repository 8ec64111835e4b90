"""Generator training with DistributedDataParallel: 2 processes under torchrun (gloo on CPU), tiny configs.

The run trains (its loss goes down), its checkpoint loads, rank 0 alone writes; a run whose torchrun is SIGKILLed
mid-way takes its ranks down with it, resumes from its saved step and ends with exactly the uninterrupted run's
weights. The tokenizer trains under torchrun too, and rank 0 extracts the codes.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.slow

STEPS = 80
_TINY = yaml.safe_load((ROOT / "configs" / "generator" / "tiny.yaml").read_text())
GEN = {**_TINY, "train": {**_TINY["train"], "steps": STEPS, "batch_size": 8, "lr": 0.003, "log_every": 5,
                          "checkpoint_every": 10}}


def torchrun(zoo: Path, tok: Path | None, cfg: Path, out: Path, log: Path) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node 2 -m igpg.cli train generator ...` (tokenizer when `tok` is None),
    in a process group of its own."""
    what = ["generator", "--tokenizer", str(tok)] if tok is not None else ["tokenizer"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "igpg.cli", "train", *what, "--zoo", str(zoo), "--config", str(cfg), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with open(log, "w") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert rc == 0, log.read_text()[-3000:]


def saved_step(out: Path) -> int:
    try:
        return json.loads((out / "training_state" / "state.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parent[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, frontier = [], [pid]
    while frontier:
        frontier = [c for c, p in parent.items() if p in frontier]
        out += frontier
    return out


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def ddp_setup(tiny_zoo, tiny_pipeline, tmp_path_factory):
    d, _ = tiny_pipeline
    root = tmp_path_factory.mktemp("ddp")
    cfg = root / "gen.yaml"
    cfg.write_text(yaml.safe_dump(GEN))
    return tiny_zoo, d / "tok", cfg, root


@pytest.fixture(scope="module")
def ddp_run(ddp_setup):
    """One uninterrupted 2-process run."""
    zoo, tok, cfg, root = ddp_setup
    out, log = root / "full", root / "full.log"
    t0 = time.perf_counter()
    finish(torchrun(zoo, tok, cfg, out, log), log)
    print(f"2-process run of {STEPS} steps: {time.perf_counter() - t0:.1f} s (torchrun start-up included)")
    return out


def test_ddp_run_trains_loads_and_rank0_alone_writes(ddp_run, ddp_setup):
    from igpg.generator import ParameterGenerator

    _, tok, _, root = ddp_setup
    lines = metrics(ddp_run)
    assert [r["step"] for r in lines] == list(range(5, STEPS + 1, 5))  # one writer: no line twice
    assert lines[-1]["code_loss"] < lines[0]["code_loss"] - 0.05, lines
    assert saved_step(ddp_run) == STEPS
    gen = ParameterGenerator.from_pretrained(ddp_run, tokenizer=tok)  # config + strict weights
    assert gen.cfg.train.steps == STEPS
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []  # no temporary directory left


def test_ddp_run_killed_midway_resumes_from_its_checkpoint(ddp_run, ddp_setup):
    zoo, tok, cfg, root = ddp_setup
    out, log = root / "killed", root / "killed.log"
    proc = torchrun(zoo, tok, cfg, out, log)
    deadline = time.monotonic() + 240
    while saved_step(out) < 20:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint of step 20 in time"
        time.sleep(0.005)
    ranks = descendants(proc.pid)
    assert len(ranks) >= 2, ranks
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while (alive := [p for p in ranks if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive, f"ranks {alive} outlived their torchrun"
    step = saved_step(out)
    assert 20 <= step < STEPS, f"killed at step {step}: too late to test a resume"
    before = (out / "metrics.jsonl").read_text().splitlines()
    kept = [line for line in before if json.loads(line)["step"] <= step]

    finish(torchrun(zoo, tok, cfg, out, root / "resumed.log"), root / "resumed.log")
    after = (out / "metrics.jsonl").read_text().splitlines()
    # resumed, not restarted: the lines up to the checkpoint are those written before the kill, kept verbatim
    assert after[: len(kept)] == kept
    assert [json.loads(line)["step"] for line in after] == list(range(5, STEPS + 1, 5))
    assert saved_step(out) == STEPS
    # per-step seeds and the saved batch RNG: the interrupted run ends exactly where the uninterrupted one did
    assert (out / "model.safetensors").read_bytes() == (ddp_run / "model.safetensors").read_bytes()


def test_ddp_tokenizer_trains_and_rank0_extracts_codes(tiny_zoo, tmp_path):
    from igpg.tokenizer.codes import load_codes
    from igpg.tokenizer.tokenizer import WeightTokenizer
    from igpg.zoo import Catalogue

    cfg = tmp_path / "tok.yaml"
    raw = yaml.safe_load((ROOT / "configs" / "tokenizer" / "tiny.yaml").read_text())
    raw["model"]["normalisation"] = "layer_std"
    cfg.write_text(yaml.safe_dump(raw))
    out, log = tmp_path / "tok", tmp_path / "tok.log"
    finish(torchrun(tiny_zoo, None, cfg, out, log), log)
    lines = metrics(out)
    assert [r["step"] for r in lines] == list(range(10, raw["train"]["steps"] + 1, 10))
    assert lines[-1]["recon"] < lines[0]["recon"], lines
    WeightTokenizer.load(out)
    assert set(load_codes(out / "codes")) == Catalogue(tiny_zoo).net_ids()
    assert log.read_text().count("tokenizer in") == 1  # one rank reports
