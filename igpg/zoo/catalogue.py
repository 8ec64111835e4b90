"""The zoo on disk: `DIR/catalogue.sqlite` (metadata) beside `DIR/nets/*.safetensors` (weights).

Invariant: a network's row is committed only after its file (and its checkpoints' files) are complete on disk
(written to a temporary name, fsynced, renamed), in one transaction per network. A build killed between the rename
and the commit leaves a file without a row: `recover()` removes such orphans (and stray temporary files) before the
next build writes anything, and `verify()` reports them as problems until then.

Split flags (what a generator may train on and what is held out of it, for real):
- tasks.split: "train" | "test" (held-out tasks: label sets, orders and groupings never seen in training);
- archs.split: "train" | "test" (held-out architectures);
- networks.seed_split: "train" | "test" (held-out seeds of training tasks).
Generic networks (role "generic") are trained on all classes and are a resource of the zoo, not tasks.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from torch import nn

from igpg.arch import ArchSpec
from igpg.errors import IgpgError
from igpg.io import load_weights, read_header, sha256_file

CATALOGUE = "catalogue.sqlite"
NETS = "nets"
CHECKPOINTS = "checkpoints"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS builds (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL,
    zoo_name TEXT NOT NULL, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, dataset TEXT NOT NULL, labels TEXT NOT NULL, kind TEXT NOT NULL,
    split TEXT NOT NULL, instruction TEXT NOT NULL,
    instructions TEXT NOT NULL,           -- JSON list of training phrasings
    heldout_instructions TEXT NOT NULL    -- JSON list of phrasings held out of training
);
CREATE TABLE IF NOT EXISTS archs (arch TEXT PRIMARY KEY, family TEXT NOT NULL, depth INTEGER NOT NULL,
    template TEXT NOT NULL, split TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS networks (
    net_id TEXT PRIMARY KEY, role TEXT NOT NULL, task_id TEXT NOT NULL REFERENCES tasks(task_id),
    arch TEXT NOT NULL REFERENCES archs(arch), seed INTEGER NOT NULL, seed_split TEXT NOT NULL,
    init TEXT NOT NULL, file TEXT NOT NULL, sha256 TEXT NOT NULL, n_params INTEGER NOT NULL,
    epochs INTEGER NOT NULL, best_epoch INTEGER NOT NULL, train_acc REAL NOT NULL, val_acc REAL NOT NULL,
    test_acc REAL NOT NULL, train_seconds REAL NOT NULL, build_id INTEGER NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (net_id TEXT NOT NULL REFERENCES networks(net_id), epoch INTEGER NOT NULL,
    file TEXT NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (net_id, epoch));
"""


class Catalogue:
    """Read access to a zoo directory (and the transactional writes the builder uses)."""

    def __init__(self, root: str | Path, create: bool = False):
        self.root = Path(root)
        path = self.root / CATALOGUE
        if not create and not path.is_file():
            raise IgpgError(f"{self.root} is not a zoo: {CATALOGUE} not found (build one with `igpg zoo build`)")
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            if create:
                self.db.executescript(_SCHEMA)
            self.db.execute("SELECT count(*) FROM networks").fetchone()
        except sqlite3.DatabaseError as e:
            raise IgpgError(f"{path}: not a readable zoo catalogue ({e})") from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---- reading -------------------------------------------------------------------------------------------
    def rows(self, sql_where: str = "1", params: tuple = ()) -> list[dict]:
        """Networks joined with their task and architecture, as dicts (labels and instructions decoded)."""
        q = f"""SELECT n.*, t.dataset, t.labels, t.kind, t.split AS task_split, t.instruction, t.instructions,
                       t.heldout_instructions, a.family, a.depth, a.split AS arch_split
                FROM networks n JOIN tasks t USING (task_id) JOIN archs a USING (arch)
                WHERE {sql_where} ORDER BY n.net_id"""
        out = []
        for r in self.db.execute(q, params):
            d = dict(r)
            for k in ("labels", "instructions", "heldout_instructions"):
                d[k] = json.loads(d[k])
            out.append(d)
        return out

    def net_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT net_id FROM networks")}

    def load(self, net_id: str) -> nn.Module:
        """The network `net_id` as a module, loaded strictly."""
        row = self.db.execute("SELECT arch, file FROM networks WHERE net_id=?", (net_id,)).fetchone()
        if row is None:
            raise IgpgError(f"no network {net_id!r} in zoo {self.root}")
        return ArchSpec.parse(row["arch"]).load(load_weights(self.root / row["file"])[0])

    # ---- consistency ---------------------------------------------------------------------------------------
    def verify(self) -> list[str]:
        """Every problem found: missing, altered or mis-shaped files, orphan or temporary files."""
        problems = []
        listed = set()
        files = [(r["net_id"], r["file"], r["sha256"], r["arch"]) for r in self.db.execute("SELECT * FROM networks")]
        files += [
            (r["net_id"], r["file"], r["sha256"], a["arch"])
            for r in self.db.execute("SELECT * FROM checkpoints")
            for a in self.db.execute("SELECT arch FROM networks WHERE net_id=?", (r["net_id"],))
        ]
        for net_id, rel, digest, arch in files:
            listed.add(rel)
            path = self.root / rel
            if not path.is_file():
                problems.append(f"{net_id}: file {rel} is missing")
                continue
            if sha256_file(path) != digest:
                problems.append(f"{net_id}: file {rel} does not match its sha256")
                continue
            try:
                header = read_header(path)
            except IgpgError as e:
                problems.append(f"{net_id}: {e}")
                continue
            shapes = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
            if shapes != ArchSpec.parse(arch).tensor_shapes():
                problems.append(f"{net_id}: tensors of {rel} do not match architecture {arch}")
        for sub in (NETS, CHECKPOINTS):
            d = self.root / sub
            if d.is_dir():
                for p in sorted(d.iterdir()):
                    rel = f"{sub}/{p.name}"
                    if rel not in listed:
                        problems.append(f"{rel}: file without a catalogue row")
        missing_tasks = self.db.execute(
            "SELECT count(*) FROM networks WHERE task_id NOT IN (SELECT task_id FROM tasks)").fetchone()[0]
        if missing_tasks:
            problems.append(f"{missing_tasks} networks refer to tasks missing from the catalogue")
        return problems

    def recover(self) -> int:
        """Remove files that have no committed row (a build killed mid-write); returns how many."""
        listed = {r[0] for r in self.db.execute("SELECT file FROM networks UNION SELECT file FROM checkpoints")}
        removed = 0
        for sub in (NETS, CHECKPOINTS):
            d = self.root / sub
            if d.is_dir():
                for p in d.iterdir():
                    if f"{sub}/{p.name}" not in listed:
                        p.unlink()
                        removed += 1
        return removed


@contextmanager
def exclusive_lock(root: Path, what: str = "zoo build") -> Iterator[None]:
    """Hold `root/.lock` for the duration; a second writer is refused at once with a clear message.

    flock is released by the kernel when the process dies, so a SIGKILLed build never leaves a stale lock.
    """
    path = root / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # permissions, a read-only mount, a full disk
        raise IgpgError(f"cannot write to {root}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise IgpgError(f"another {what} is running on {root} (pid {holder}); wait for it or use another --out") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as e:  # a full disk: the lock is held, only the holder's pid is not recorded
            raise IgpgError(f"cannot write {path}: {e.strerror or e}") from None
        yield
    finally:
        os.close(fd)
