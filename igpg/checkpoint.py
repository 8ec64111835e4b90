"""Checkpoint directories (as lerobot does): never a pickle.

    DIR/config.json                       the model's config (igpg/config.py, as JSON) + what it is
    DIR/model.safetensors                 weights and buffers
    DIR/training_state/optimizer.safetensors + optimizer.json   Adam moments + param groups
    DIR/training_state/state.json         step, metrics so far; RNG states in rng.safetensors

A checkpoint is written into a temporary sibling directory and swapped in with one atomic exchange (Linux
renameat2; two renames elsewhere), so a run killed at any moment leaves either the previous checkpoint or the new
one at DIR, never a mix and never nothing. Other files in the directory (the metrics log, extracted codes) are
carried over by hard links. Siblings a killed writer left (".DIR.tmp-PID", ".DIR.old-PID") are removed when the
run resumes or saves again.
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from igpg.errors import IgpgError
from igpg.io import load_weights, read_header, save_weights

CONFIG = "config.json"
MODEL = "model.safetensors"
STATE = "training_state"


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, v in [*tensors.items(), *meta["scalars"].items()]:
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | Path, kind: str, config: Any, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, step: int = 0, extra: dict | None = None) -> None:
    """Write a checkpoint directory atomically (build beside it, then rename over)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / STATE).mkdir(parents=True)
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    (tmp / CONFIG).write_text(json.dumps({"kind": kind, "config": cfg}, indent=1))
    save_weights(tmp / MODEL, model.state_dict(), {"igpg.kind": kind})
    if optimizer is not None:
        tensors, meta = _flatten_optimizer(optimizer)
        save_weights(tmp / STATE / "optimizer.safetensors", tensors)
        (tmp / STATE / "optimizer.json").write_text(json.dumps(meta))
        save_weights(tmp / STATE / "rng.safetensors", {"torch": torch.get_rng_state()})
    (tmp / STATE / "state.json").write_text(json.dumps({"step": step, **(extra or {})}))
    if path.is_dir():  # carry the run's other files (metrics log, extracted codes) over by hard links
        for entry in path.iterdir():
            if entry.name not in (CONFIG, MODEL, STATE) and not _is_atomic_temp(entry.name):
                if entry.is_dir():
                    shutil.copytree(entry, tmp / entry.name, copy_function=os.link,
                                    ignore=lambda _, names: [n for n in names if _is_atomic_temp(n)])
                else:
                    os.link(entry, tmp / entry.name)
    if path.exists() and _exchange(tmp, path):  # DIR is never missing, not even for an instant
        shutil.rmtree(tmp, ignore_errors=True)  # now the previous checkpoint
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def save_model(path: str | Path, kind: str, config: Any, state: dict[str, torch.Tensor],
               metadata: dict | None = None) -> None:
    """Write a model directory for use, not for resuming: config.json + model.safetensors (each file atomically),
    no training state; other files already in `path` (a card, a tokenizer/ folder) are left as they are."""
    from igpg.io import atomic_write_text

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    save_weights(path / MODEL, state, {"igpg.kind": kind, **(metadata or {})})
    atomic_write_text(path / CONFIG, json.dumps({"kind": kind, "config": cfg}, indent=1))


def _is_atomic_temp(name: str) -> bool:
    """A temporary file of `igpg.io.atomic_path` (".NAME.<random>.tmp"), left by a process killed mid-write."""
    return name.startswith(".") and name.endswith(".tmp")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE); False where the OS or file system cannot."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove_stale_siblings(path: Path) -> None:
    """Remove ".DIR.tmp-PID" / ".DIR.old-PID" left by writers that died (a SIGKILL mid-save), and, inside DIR,
    atomic-write temporaries (a killed metrics rewrite). Ours count as stale too: we are not mid-save."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:tmp|old)-(\d+)")
    try:
        stale = [p for p in path.parent.iterdir() if (m := pattern.fullmatch(p.name))
                 and (int(m.group(1)) == os.getpid() or not _alive(int(m.group(1))))]
        stale += [p for p in path.iterdir() if _is_atomic_temp(p.name)] if path.is_dir() else []
    except OSError:
        return
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_config(path: str | Path, kind: str) -> dict:
    """The config dict of a checkpoint of `kind`; a missing or foreign directory is an `IgpgError`."""
    path = Path(path)
    if not path.is_dir():
        raise IgpgError(f"checkpoint {path} not found (expected a directory with {CONFIG} and {MODEL})")
    for name in (CONFIG, MODEL):
        if not (path / name).is_file():
            raise IgpgError(f"checkpoint {path} is incomplete: {name} is missing")
    try:
        meta = json.loads((path / CONFIG).read_text())
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep, an integer too long
        raise IgpgError(f"checkpoint {path}: {CONFIG} is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind or not isinstance(meta.get("config"), dict):
        raise IgpgError(f"checkpoint {path} is not a {kind} checkpoint")
    return meta["config"]


MAX_MODEL_NUMEL = 500_000_000  # values in a checkpoint's model (the released generator has 7.1M)


def check_model_size(path: str | Path, build: Callable[[], nn.Module]) -> None:
    """Build the model a config describes on the meta device (nothing allocated) and refuse it, before it is built
    for real, when it is absurdly large or holds another number of values than `path/model.safetensors`."""
    with torch.device("meta"):
        want = sum(t.numel() for t in build().state_dict().values())
    if want > MAX_MODEL_NUMEL:
        raise IgpgError(f"checkpoint {path}: {CONFIG} describes a model of {want:,} values, above igpg's limit of "
                        f"{MAX_MODEL_NUMEL:,}; the config is corrupt")
    header = read_header(Path(path) / MODEL)
    have = sum(math.prod(v.get("shape", ())) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict))
    if have != want:
        raise IgpgError(f"checkpoint {path}: {CONFIG} describes a model of {want:,} values but {MODEL} holds "
                        f"{have:,}")


def load_model_state(path: str | Path, model: nn.Module) -> None:
    """Load `model.safetensors` strictly; any mismatch is an `IgpgError`, not a traceback.

    A tensor must be of the model's kind (float where the model has float: int32 weights are not cast silently)
    and finite in the model's dtype (a float64 1e300 would become inf)."""
    state, _ = load_weights(Path(path) / MODEL)
    own = model.state_dict()
    for name, t in state.items():
        if name not in own:
            continue  # load_state_dict names it below
        if t.is_floating_point() != own[name].is_floating_point():
            raise IgpgError(f"checkpoint {path}: tensor {name!r} has dtype {t.dtype}, the model's is {own[name].dtype}")
        if t.is_floating_point() and not torch.isfinite(t.to(own[name].dtype)).all():
            raise IgpgError(f"checkpoint {path}: tensor {name!r} is not finite as {own[name].dtype}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise IgpgError(f"checkpoint {path}: weights do not fit the model ({str(e).splitlines()[0]})") from None


def load_training_state(path: str | Path, optimizer: torch.optim.Optimizer, writer: bool = True) -> dict:
    """Restore optimizer and RNG; return state.json (with "step"). No training state -> step 0.

    The writer (the only process that writes the checkpoint: rank 0 under torchrun) also removes what a killed save
    left; the other ranks must not, or they could delete a temporary the writer is filling at that moment."""
    if writer:
        _remove_stale_siblings(Path(path))  # resuming: what a killed save left beside the checkpoint goes now
    d = Path(path) / STATE
    if not (d / "state.json").is_file():
        return {"step": 0}
    state = json.loads((d / "state.json").read_text())
    if (d / "optimizer.safetensors").is_file():
        tensors, _ = load_weights(d / "optimizer.safetensors")
        meta = json.loads((d / "optimizer.json").read_text())
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta))
        rng, _ = load_weights(d / "rng.safetensors")
        torch.set_rng_state(rng["torch"])
    return state


def truncate_metrics(path: str | Path, step: int) -> None:
    """Drop metrics-log lines written after the checkpoint a run resumes from (they will be written again)."""
    from igpg.io import atomic_write_text

    path = Path(path)
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    atomic_write_text(path, "".join(line + "\n" for line in keep))
