"""Build a zoo: sample tasks x architectures x seeds from a config, train each network, catalogue it.

    plan_zoo(cfg)           -> ZooPlan: every task (with its split and phrasings), architecture and job
    build_zoo(cfg, out, ..) -> trains what the catalogue lacks, one transaction per network, over
                               backend "local" (a process pool on this machine) or "ray" (Ray tasks, on a local
                               cluster or the one at `address`)

Workers only train (`train_job`: a job in, weights and metrics out); the driver alone writes files and the
catalogue, whatever the backend. Re-running the same command trains only what is missing; a build killed at any
moment resumes cleanly (see `catalogue.py` for the invariant), and a second build on the same directory at the same
time is refused.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import islice
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

from igpg.arch import ArchSpec
from igpg.data import Task, assign_split, instructions, load_dataset, sample_tasks
from igpg.errors import IgpgError
from igpg.io import load_weights, save_weights
from igpg.zoo.catalogue import CHECKPOINTS, NETS, Catalogue, exclusive_lock
from igpg.zoo.config import ZooConfig
from igpg.zoo.train import Job, Result, exit_with_parent, stable_seed, train_job


@dataclass(frozen=True)
class PlannedTask:
    task: Task
    split: str  # "train" | "test"
    instructions: tuple[str, ...]  # phrasings a generator may train on
    heldout_instructions: tuple[str, ...]  # phrasings held out of training


@dataclass
class ZooPlan:
    tasks: dict[str, PlannedTask] = field(default_factory=dict)
    archs: dict[str, tuple[str, str]] = field(default_factory=dict)  # arch -> (template, split)
    generic_jobs: list[Job] = field(default_factory=list)
    task_jobs: list[Job] = field(default_factory=list)
    probe_jobs: list[Job] = field(default_factory=list)


def _net_id(*parts: object) -> str:
    return f"{stable_seed(*parts):016x}"[:16]


def plan_zoo(cfg: ZooConfig) -> ZooPlan:
    """Everything the config asks for, deterministic for its seed (the same plan in every process and run)."""
    plan = ZooPlan()
    train_key = json.dumps(cfg.train.to_dict(), sort_keys=True)
    lineage = ("lineage",) if cfg.lineage else ()  # a lineage zoo's networks start elsewhere: other ids

    def add_task(task: Task, split: str) -> None:
        ds = load_dataset(task.dataset)
        phr = instructions(task, ds)
        task = Task(task.dataset, task.labels, next(p.text for p in phr if not p.heldout))
        plan.tasks[task.task_id] = PlannedTask(
            task, split, tuple(p.text for p in phr if not p.heldout), tuple(p.text for p in phr if p.heldout)
        )

    def add_arch(entry, spec: ArchSpec) -> str:
        split = "test" if entry.heldout else "train"
        arch = str(spec)
        if arch in plan.archs and plan.archs[arch][1] != split:
            raise IgpgError(f"architecture {arch} is both held out and not (templates {plan.archs[arch][0]!r} "
                            f"and {entry.template!r})")
        plan.archs.setdefault(arch, (entry.template, split))
        return arch

    for entry in cfg.datasets:
        ds = load_dataset(entry.name)
        everything = Task.from_classes(ds.name, list(range(ds.num_classes)))  # the generic networks' task
        sampled = sample_tasks(ds, entry.tasks, stable_seed(cfg.seed, "tasks", ds.name), cfg.tasks.min_ways,
                               min(cfg.tasks.max_ways, ds.num_classes), cfg.tasks.grouped_fraction)
        ds_tasks: dict[str, Task] = {}
        for task in [*entry.include, *sampled]:
            ds_tasks.setdefault(task.task_id, task)
        generic_files: dict[str, str] = {}
        archs_here = [a for a in cfg.archs if a.datasets is None or ds.name in a.datasets]
        if cfg.init == "generic":
            add_task(everything, "train")
            roots: dict[str, Job] = {}  # lineage: family -> its root's generic job
            # roots first (the others start from them); a family without a root entry: its first training entry
            for a in sorted(archs_here, key=lambda a: (not a.root, a.heldout)):
                arch = add_arch(a, a.resolve(ds.name, ds.num_classes))
                family = ArchSpec.parse(arch).family
                if cfg.lineage and family in roots:
                    root = roots[family]
                    job = Job(_net_id("generic", arch, cfg.seed, train_key, "lineage", root.arch), "generic",
                              plan.tasks[everything.task_id].task, arch, cfg.seed, "train", "lineage", cfg.train,
                              generic_file=f"{NETS}/{root.net_id}.safetensors", parent_arch=root.arch)
                else:
                    job = Job(_net_id("generic", arch, cfg.seed, train_key), "generic",
                              plan.tasks[everything.task_id].task, arch, cfg.seed, "train", "independent", cfg.train)
                    roots[family] = job
                plan.generic_jobs.append(job)
                generic_files[a.template] = f"{NETS}/{job.net_id}.safetensors"
        for n_task, task in enumerate(ds_tasks.values()):
            split = "train" if task.task_id == everything.task_id else assign_split(
                task.task_id, cfg.seed, cfg.tasks.test_fraction)
            add_task(task, split)
            task = plan.tasks[task.task_id].task
            for a in archs_here:
                if a.max_tasks is not None and n_task >= a.max_tasks:
                    continue
                arch = add_arch(a, a.resolve(ds.name, task.num_labels))
                seeds = [(s, "train") for s in cfg.train_seeds]
                if split == "train" and not a.heldout:  # held-out seeds are of training tasks and architectures
                    seeds += [(s, "test") for s in cfg.heldout_seeds]
                for seed, seed_split in seeds:
                    plan.task_jobs.append(Job(
                        _net_id("task", task.task_id, arch, seed, cfg.init, train_key, *lineage), "task", task, arch, seed,
                        seed_split, cfg.init, cfg.train, cfg.keep_checkpoints, generic_files.get(a.template),
                    ))
                    # probes of the networks a generator trains on (training task, architecture and seed)
                    trains_on = split == "train" and not a.heldout and seed_split == "train"
                    if trains_on and (cfg.probes == "all" or (cfg.probes == "grouped" and task.kind == "grouped")):
                        plan.probe_jobs.append(Job(
                            _net_id("probe", task.task_id, arch, seed, train_key, *lineage), "probe", task, arch, seed,
                            seed_split, cfg.init, cfg.train, 0, generic_files.get(a.template),
                        ))
    return plan


def _check_writable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise IgpgError(f"output {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (PermissionError, FileExistsError, NotADirectoryError, OSError) as e:
        raise IgpgError(f"cannot create output directory {out}: {e.strerror or e}") from None
    if not out.is_dir():
        raise IgpgError(f"output {out} exists and is not a directory")
    if not os.access(out, os.W_OK | os.X_OK):
        raise IgpgError(f"cannot write to {out}: permission denied")


def _register(cat: Catalogue, cfg: ZooConfig, plan: ZooPlan) -> int:
    """Insert the plan's tasks and architectures (refusing a split that contradicts the catalogue); one build row."""
    with cat.transaction() as db:
        for tid, pt in plan.tasks.items():
            row = db.execute("SELECT split FROM tasks WHERE task_id=?", (tid,)).fetchone()
            if row is not None and row[0] != pt.split:
                raise IgpgError(f"task {tid} is '{row[0]}' in this zoo but '{pt.split}' in the config: "
                                "held-out splits must not change; use another --out")
            db.execute(
                "INSERT OR IGNORE INTO tasks VALUES (?,?,?,?,?,?,?,?)",
                (tid, pt.task.dataset, pt.task.classes_json(), pt.task.kind, pt.split, pt.task.instruction,
                 json.dumps(pt.instructions), json.dumps(pt.heldout_instructions)),
            )
        for arch, (template, split) in plan.archs.items():
            row = db.execute("SELECT split FROM archs WHERE arch=?", (arch,)).fetchone()
            if row is not None and row[0] != split:
                raise IgpgError(f"architecture {arch} is '{row[0]}' in this zoo but '{split}' in the config: "
                                "held-out splits must not change; use another --out")
            spec = ArchSpec.parse(arch)
            db.execute("INSERT OR IGNORE INTO archs VALUES (?,?,?,?,?)", (arch, spec.family, spec.depth, template, split))
        db.execute("INSERT OR IGNORE INTO meta VALUES ('name', ?)", (cfg.name,))
        db.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (_now(),))
        cur = db.execute("INSERT INTO builds (started_at, zoo_name, config) VALUES (?,?,?)",
                         (_now(), cfg.name, cfg.to_json()))
        return cur.lastrowid


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _store(cat: Catalogue, res: Result, build_id: int, zoo_name: str) -> None:
    """Files first (atomic), then the row and its checkpoints in one transaction."""
    job, m = res.job, res.metrics
    meta = {
        "igpg.arch": job.arch, "igpg.dataset": job.task.dataset, "igpg.classes": job.task.classes_json(),
        "igpg.instruction": job.task.instruction, "igpg.seed": str(job.seed), "igpg.generator": f"zoo:{zoo_name}",
        "igpg.role": job.role, "igpg.init": job.init,
    }
    rel = f"{NETS}/{job.net_id}.safetensors"
    digest = save_weights(cat.root / rel, res.state, meta)
    ckpts = []
    for epoch, state in res.checkpoints:
        crel = f"{CHECKPOINTS}/{job.net_id}-e{epoch}.safetensors"
        ckpts.append((job.net_id, epoch, crel, save_weights(cat.root / crel, state, {**meta, "igpg.epoch": str(epoch)})))
    n_params = sum(t.numel() for t in res.state.values())
    with cat.transaction() as db:
        db.execute(
            "INSERT INTO networks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (job.net_id, job.role, job.task.task_id, job.arch, job.seed, job.seed_split, job.init, rel, digest,
             n_params, m["epochs"], m["best_epoch"], m["train_acc"], m["val_acc"], m["test_acc"],
             m["train_seconds"], build_id, _now()),
        )
        db.executemany("INSERT INTO checkpoints VALUES (?,?,?,?)", ckpts)


BACKENDS = ("local", "ray")


def _run_local(jobs: list[Job], workers: int, on_result: Callable[[Result], None]) -> None:
    if not jobs:
        return
    if workers <= 1:
        for job in jobs:
            on_result(train_job(job))
        return
    # spawn, not fork: the parent may hold threads (torch, sqlite) that fork would copy mid-state
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=exit_with_parent,
                             initargs=(os.getpid(),)) as pool:  # a killed build takes its workers with it
        pending = {pool.submit(train_job, j) for j in jobs[: workers * 2]}
        queue = iter(jobs[workers * 2 :])
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                on_result(fut.result())
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(train_job, nxt))


def require_ray():
    try:
        import ray
    except ImportError:
        raise IgpgError("--backend ray needs Ray, which is not installed: pip install 'igpg[ray]'") from None
    return ray


class _RayCluster:
    """Ray for one build: joins the cluster at `address` (or an already initialised Ray), else starts a local one
    with `num_cpus` CPUs; shuts down only what it started."""

    def __init__(self, address: str | None, num_cpus: int):
        self.ray = require_ray()
        self.started = False
        self.address, self.num_cpus = address, num_cpus

    def __enter__(self):
        ray = self.ray
        if not ray.is_initialized():
            kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            try:
                if self.address:
                    ray.init(address=self.address, **kw)
                else:
                    ray.init(num_cpus=self.num_cpus, **kw)
            except (ConnectionError, ValueError, RuntimeError) as e:
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
                raise IgpgError(f"cannot start or join {where}: {str(e).strip().splitlines()[0]}") from None
            self.started = True
        return ray

    def __exit__(self, *exc) -> None:
        if self.started:
            self.ray.shutdown()


def _run_ray(ray, jobs: list[Job], in_flight: int, on_result: Callable[[Result], None]) -> None:
    """Ray tasks train; results come back to the driver in completion order. At most `in_flight` tasks are
    submitted at once, so a big zoo never sits in the object store. A task network's generic weights are put in
    the object store once and handed to its tasks (a worker on another node cannot read the driver's file)."""
    if not jobs:
        return
    remote = ray.remote(num_cpus=1, max_retries=2)(train_job)
    generic: dict[str, object] = {}

    def submit(job: Job):
        state = None
        if job.generic_file is not None:
            if job.generic_file not in generic:
                generic[job.generic_file] = ray.put(load_weights(job.generic_file)[0])
            state = generic[job.generic_file]
        return remote.remote(job, state)

    queue = iter(jobs)
    pending = [submit(j) for j in islice(queue, in_flight)]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            try:
                res = ray.get(ref)
            except ray.exceptions.RayError as e:
                raise IgpgError(f"a Ray worker failed: {str(e).strip().splitlines()[0]}") from None
            on_result(res)
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(submit(nxt))


@contextmanager
def _backend(backend: str, address: str | None, workers: int) -> Iterator[Callable]:
    """`run(jobs, on_result)` for the chosen backend, valid inside the block (a Ray cluster lives as long)."""
    if backend == "local":
        yield lambda jobs, on_result: _run_local(jobs, workers, on_result)
        return
    with _RayCluster(address, max(2, workers)) as ray:
        in_flight = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
        yield lambda jobs, on_result: _run_ray(ray, jobs, in_flight, on_result)


@dataclass
class BuildReport:
    planned: int
    trained: int
    skipped: int
    removed_orphans: int
    seconds: float


def build_zoo(cfg: ZooConfig, out: str | Path, workers: int = 1,
              progress: Callable[[str, int, int], None] | None = None, backend: str = "local",
              address: str | None = None) -> BuildReport:
    """Train every network of the plan that `out` lacks. `progress(phase, done, total)` is called as jobs finish.

    backend "local": `workers` processes on this machine. backend "ray": Ray tasks on the cluster at `address`
    (e.g. "ray://head:10001" or "auto"), on the already initialised Ray of this process, or on a local cluster
    started for the build with max(2, workers) CPUs; one CPU per task, at most 2 tasks per cluster CPU in flight.
    """
    start = time.perf_counter()
    out = Path(out)
    if workers < 1:
        raise IgpgError(f"--workers must be at least 1, got {workers}")
    if backend not in BACKENDS:
        raise IgpgError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise IgpgError("--address applies to --backend ray only")
    if backend == "ray":
        require_ray()  # a missing Ray is reported before anything is written
    plan = plan_zoo(cfg)  # all validation happens before anything is written
    _check_writable(out)
    with exclusive_lock(out), _backend(backend, address, workers) as run:
        (out / NETS).mkdir(exist_ok=True)
        (out / CHECKPOINTS).mkdir(exist_ok=True)
        cat = Catalogue(out, create=True)
        try:
            removed = cat.recover()
            build_id = _register(cat, cfg, plan)
            have = cat.net_ids()
            trained = 0
            phases = [("generic networks", [j for j in plan.generic_jobs if j.init != "lineage"]),
                      ("lineage generic networks", [j for j in plan.generic_jobs if j.init == "lineage"]),
                      ("task networks", plan.task_jobs)]
            if plan.probe_jobs:
                phases.append(("probe networks", plan.probe_jobs))
            for phase, jobs in phases:
                todo = [j if j.generic_file is None else replace(j, generic_file=str(out / j.generic_file))
                        for j in jobs if j.net_id not in have]
                done = 0
                if progress:
                    progress(phase, 0, len(todo))

                def on_result(res: Result, phase=phase, total=len(todo)) -> None:
                    nonlocal done, trained
                    _store(cat, res, build_id, cfg.name)
                    done += 1
                    trained += 1
                    if progress:
                        progress(phase, done, total)

                run(todo, on_result)
            total = len(plan.generic_jobs) + len(plan.task_jobs) + len(plan.probe_jobs)
            return BuildReport(total, trained, total - trained, removed, time.perf_counter() - start)
        finally:
            cat.close()

