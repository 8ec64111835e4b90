"""Two writers on one zoo, two writers on one export directory: real `igpg` processes.

The overlap is made certain, not left to timing: once the first process holds the directory's lock (`.lock` names
its pid) and has committed some work, it is stopped (SIGSTOP) and stays stopped while the second process runs to
its end. The second must be refused in one line with exit code 2 and change nothing; then the first continues.
Afterwards every entry is listed exactly once, every file matches its entry (`igpg zoo verify`, the manifest's
sha256, strict loading), and a re-run of the second adds what it asked for without redoing or losing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import TINY
from igpg import load
from igpg.io import sha256_file
from igpg.zoo import load_zoo_config
from igpg.zoo.builder import plan_zoo

IGPG = Path(sys.executable).parent / "igpg"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start(logs: Path, name: str, *args) -> subprocess.Popen:
    """`igpg ARGS` as a real process; its output goes to files (a full pipe would block a stopped test)."""
    out = open(logs / f"{name}.out", "w")
    err = open(logs / f"{name}.err", "w")
    return subprocess.Popen([str(IGPG), *map(str, args)], stdout=out, stderr=err, text=True, env=ENV)


def finish(proc: subprocess.Popen, logs: Path, name: str, timeout: float = 300) -> tuple[int, str, str]:
    code = proc.wait(timeout=timeout)
    return code, (logs / f"{name}.out").read_text(), (logs / f"{name}.err").read_text()


def lock_holder(d: Path) -> int | None:
    try:
        return int((d / ".lock").read_text().strip())
    except (OSError, ValueError):
        return None


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the first process ended (code {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


class Stopped:
    """SIGSTOP a process for the duration of a with-block; SIGCONT it on the way out, whatever happened."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def __enter__(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(self.proc.pid, signal.SIGCONT)


def kill_if_running(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


# ---- zoo --------------------------------------------------------------------------------------------------------


def networks_in(zoo: Path) -> int:
    try:
        with sqlite3.connect(f"file:{zoo / 'catalogue.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM networks").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_second_zoo_build_is_refused_and_the_zoo_ends_whole(tmp_path):
    cfg = yaml.safe_load(TINY.read_text())  # the tiny zoo, a little longer, so the first build is caught mid-way
    cfg["datasets"]["digits"]["tasks"] = 12
    config = tmp_path / "zoo.yaml"
    config.write_text(yaml.safe_dump(cfg))
    plan = plan_zoo(load_zoo_config(config))
    planned = len(plan.generic_jobs) + len(plan.task_jobs)
    zoo = tmp_path / "zoo"

    first = start(tmp_path, "first", "zoo", "build", "--config", config, "--out", zoo)
    try:
        wait_for(lambda: lock_holder(zoo) == first.pid and networks_in(zoo) >= 1, first,
                 "it held the lock and committed a network")
        with Stopped(first):
            done_when_stopped = networks_in(zoo)
            before = snapshot(zoo)
            second = start(tmp_path, "second", "zoo", "build", "--config", config, "--out", zoo)
            code, _, err = finish(second, tmp_path, "second")
            after = snapshot(zoo)
        assert code == 2, err
        line = one_error_line(err)
        assert "another zoo build is running" in line and f"pid {first.pid}" in line
        assert after == before, "the refused build changed the zoo"
        assert done_when_stopped < planned, "the first build was not caught mid-way"
        code, out, err = finish(first, tmp_path, "first")
        assert code == 0, err
        assert f"{planned} networks planned, {planned} trained now, 0 already there" in out
    finally:
        kill_if_running(first)

    with sqlite3.connect(zoo / "catalogue.sqlite") as db:
        ids = [r[0] for r in db.execute("SELECT net_id FROM networks")]
        builds = db.execute("SELECT count(*) FROM builds").fetchone()[0]
    assert len(ids) == len(set(ids)) == planned and builds == 1  # the refused build registered nothing
    assert sorted(p.name for p in (zoo / "nets").iterdir()) == sorted(f"{i}.safetensors" for i in ids)

    verify = start(tmp_path, "verify", "zoo", "verify", zoo)
    code, out, err = finish(verify, tmp_path, "verify")
    assert code == 0 and f"{planned} networks checked, 0 problems" in out, out + err

    nets = snapshot(zoo / "nets")
    again = start(tmp_path, "again", "zoo", "build", "--config", config, "--out", zoo)
    code, out, err = finish(again, tmp_path, "again")
    assert code == 0 and f"0 trained now, {planned} already there" in out, out + err
    assert snapshot(zoo / "nets") == nets


# ---- export -----------------------------------------------------------------------------------------------------

TASKS = [([3, 5, 8], "Classify handwritten digits 3, 5 and 8"), ([0, 1], "Tell digit 0 from digit 1"),
         ([[1, 3, 5, 7, 9], [0, 2, 4, 6, 8]], "Odd digits vs even digits"), ([2, 7, 9, 4], "Classify 2, 7, 9 and 4")]


def requests(prefix: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        classes, instruction = TASKS[i % len(TASKS)]
        out.append({"name": f"{prefix}{i}", "instruction": instruction, "dataset": "digits", "classes": classes,
                    "arch": f"mlp:64-{(16, 32)[i % 2]}-{len(classes)}", "seed": i})
    return out


def manifest_entries(d: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in (d / "manifest.jsonl").read_text().splitlines()]
    except (OSError, ValueError):
        return []


def test_second_export_is_refused_and_the_manifest_lists_each_network_once(tmp_path):
    first_reqs, second_reqs = requests("a", 20), requests("b", 6)
    for name, reqs in (("first", first_reqs), ("second", second_reqs)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reqs))
    out = tmp_path / "exported"

    first = start(tmp_path, "first", "export", tmp_path / "first.jsonl", "--out", out, "--batch-size", "4")
    try:
        wait_for(lambda: lock_holder(out) == first.pid and len(manifest_entries(out)) >= 1, first,
                 "it held the lock and listed a network")
        with Stopped(first):
            listed_when_stopped = len(manifest_entries(out))
            before = snapshot(out)
            second = start(tmp_path, "second", "export", tmp_path / "second.jsonl", "--out", out)
            code, _, err = finish(second, tmp_path, "second")
            after = snapshot(out)
        assert code == 2, err
        line = one_error_line(err)
        assert "another export is running" in line and f"pid {first.pid}" in line
        assert after == before, "the refused export changed the directory"
        assert listed_when_stopped < len(first_reqs), "the first export was not caught mid-way"
        code, stdout, err = finish(first, tmp_path, "first")
        assert code == 0, err
        assert f"exported {len(first_reqs)}, skipped 0, failed 0" in stdout
    finally:
        kill_if_running(first)

    again = start(tmp_path, "again", "export", tmp_path / "second.jsonl", "--out", out)
    code, stdout, err = finish(again, tmp_path, "again")
    assert code == 0 and f"exported {len(second_reqs)}, skipped 0, failed 0" in stdout, stdout + err

    entries = manifest_entries(out)
    names = [e["name"] for e in entries]
    assert sorted(names) == sorted(r["name"] for r in first_reqs + second_reqs)  # each exactly once, none lost
    by_name = {r["name"]: r for r in first_reqs + second_reqs}
    for e in entries:
        path = out / e["file"]
        assert e["file"] == f"{e['name']}.safetensors" and sha256_file(path) == e["sha256"]
        net = load(path)  # strict: the tensors are the architecture's, finite, complete
        assert net.igpg_metadata["igpg.name"] == e["name"] and e["seed"] == by_name[e["name"]]["seed"]
        assert net.igpg_metadata["igpg.arch"] == by_name[e["name"]]["arch"]
    assert sorted(p.name for p in out.iterdir()) == sorted([".lock", "manifest.jsonl", *(f"{n}.safetensors" for n in names)])

    files = {k: v for k, v in snapshot(out).items() if k != ".lock"}  # .lock names the last writer's pid
    rerun = start(tmp_path, "rerun", "export", tmp_path / "first.jsonl", "--out", out, "--batch-size", "4")
    code, stdout, err = finish(rerun, tmp_path, "rerun")
    assert code == 0 and f"exported 0, skipped {len(first_reqs)}, failed 0" in stdout, stdout + err
    assert {k: v for k, v in snapshot(out).items() if k != ".lock"} == files
