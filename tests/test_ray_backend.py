"""Zoo builds on Ray: the same networks, catalogue and split flags as the local backend; resume, lock, and a clear
error when Ray is not installed. One local Ray cluster (2 CPUs) serves the whole module (Ray starts slowly)."""

import os
import signal
import sqlite3
import sys
import time

import pytest

from conftest import TINY, igpg_subprocess
from igpg.errors import IgpgError
from igpg.zoo import Catalogue, build_zoo, load_zoo_config
from igpg.zoo.catalogue import exclusive_lock

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_zoo(ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("rayzoo") / "tiny"
    report = build_zoo(load_zoo_config(TINY), out, backend="ray")
    assert report.trained == report.planned == 26
    assert ray_cluster.is_initialized(), "the build shut down a Ray it did not start"
    return out


def catalogue(path) -> dict:
    """(task, architecture, seed) -> split flags and file digest, for every network."""
    cat = Catalogue(path)
    try:
        return {(r["task_id"], r["arch"], r["seed"]): (r["role"], r["task_split"], r["arch_split"], r["seed_split"],
                                                      r["sha256"]) for r in cat.rows()}
    finally:
        cat.close()


def test_ray_build_matches_local_build(tiny_zoo, ray_zoo):
    local, ray = catalogue(tiny_zoo), catalogue(ray_zoo)
    assert set(ray) == set(local)
    assert {k: v[:4] for k, v in ray.items()} == {k: v[:4] for k, v in local.items()}  # split flags and roles
    # every network trains from its own job's seeds, so the weights are the same file byte for byte
    assert {k: v[4] for k, v in ray.items()} == {k: v[4] for k, v in local.items()}
    assert Catalogue(ray_zoo).verify() == []


def test_ray_build_resumes_after_a_crash(ray_zoo, tmp_path):
    import shutil

    out = tmp_path / "zoo"
    shutil.copytree(ray_zoo, out)
    # what a build killed mid-way leaves: rows missing for some networks, one of them with its file on disk
    db = sqlite3.connect(out / "catalogue.sqlite")
    gone = [r[0] for r in db.execute("SELECT net_id FROM networks WHERE role='task' ORDER BY net_id LIMIT 5")]
    db.executemany("DELETE FROM networks WHERE net_id=?", [(g,) for g in gone])
    db.commit()
    db.close()
    for g in gone[1:]:
        (out / "nets" / f"{g}.safetensors").unlink()
    report = build_zoo(load_zoo_config(TINY), out, backend="ray")
    assert (report.trained, report.skipped, report.removed_orphans) == (5, 21, 1)
    assert catalogue(out) == catalogue(ray_zoo)
    assert Catalogue(out).verify() == []


def test_ray_build_sigkilled_midway_resumes(ray_zoo, tmp_path):
    """The real thing: `igpg zoo build --backend ray` (its own local cluster) SIGKILLed after a few networks, then run
    again: the catalogue ends complete, verified and equal to an uninterrupted build."""
    pytest.importorskip("ray")
    out = tmp_path / "zoo"
    proc = igpg_subprocess("zoo", "build", "--config", TINY, "--out", out, "--backend", "ray",
                           env_extra={"OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 600  # a hang guard, not a timing: a local Ray cluster starts slowly on a busy machine
    while not (out / "nets").is_dir() or len(list((out / "nets").iterdir())) < 4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no network written in time"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    cat = Catalogue(out)
    stored = len(cat.net_ids())
    cat.close()
    assert stored < 26, "the build finished before the kill"
    report = build_zoo(load_zoo_config(TINY), out, backend="ray")
    assert report.trained == 26 - stored and report.skipped == stored
    assert catalogue(out) == catalogue(ray_zoo)
    assert Catalogue(out).verify() == []


def test_ray_build_refused_while_another_build_holds_the_zoo(ray_zoo):
    with exclusive_lock(ray_zoo):
        with pytest.raises(IgpgError, match="another zoo build is running"):
            build_zoo(load_zoo_config(TINY), ray_zoo, backend="ray")


def test_backend_ray_without_ray_installed(cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    r = cli("zoo", "build", "--config", TINY, "--out", tmp_path / "z", "--backend", "ray")
    assert r.code == 2
    assert r.err.strip().count("\n") == 0 and r.err.startswith("error: ")
    assert "pip install 'igpg[ray]'" in r.err
    assert not (tmp_path / "z").exists()
    with pytest.raises(IgpgError, match="pip install"):
        build_zoo(load_zoo_config(TINY), tmp_path / "z", backend="ray")
    assert not (tmp_path / "z").exists()


def test_unknown_backend_and_stray_address(cli, tmp_path):
    r = cli("zoo", "build", "--config", TINY, "--out", tmp_path / "z", "--backend", "slurm")
    assert r.code == 2 and "unknown --backend 'slurm'" in r.err
    with pytest.raises(IgpgError, match="--address applies to --backend ray only"):
        build_zoo(load_zoo_config(TINY), tmp_path / "z", address="auto")
    assert not (tmp_path / "z").exists()
