"""Safe file I/O: atomic writes, and safetensors reads that check the file before trusting it.

Nothing here unpickles: weights are safetensors, configs and metadata JSON/YAML.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from igpg.errors import IgpgError

_UMASK = os.umask(0)
os.umask(_UMASK)
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit; a larger header is refused before it is read


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`, else removed."""
    path = Path(path)
    # ".NAME.igpg-<8 random>.tmp": the marker lets cleaners remove only what an igpg writer left (stray_temps)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.igpg-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; a result file gets the usual mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temp_pattern(names: str) -> re.Pattern:
    """What `atomic_path` leaves when its process dies mid-write, for targets whose names match the regex `names`:
    ".NAME.igpg-<8 random>.tmp". Cleaners remove only these: a user's ".notes.backup.tmp" is never touched."""
    return re.compile(rf"\.(?:{names})\.igpg-[a-z0-9_]{{8}}\.tmp")


def remove_stale_temps(path: str | Path) -> None:
    """Remove what a killed `atomic_path(path)` left beside `path`; call it only while holding `locked_dir`."""
    path = Path(path)
    pattern = temp_pattern(re.escape(path.name))
    for p in path.parent.iterdir():
        if pattern.fullmatch(p.name) and (p.is_symlink() or p.is_file()):
            p.unlink(missing_ok=True)


@contextmanager
def locked_dir(directory: str | Path) -> Iterator[None]:
    """An exclusive flock on the directory itself (no lock file left behind): writers of one directory take turns.
    The kernel releases it when the holder dies."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_writable(directory: str | Path, need: int = 0) -> None:
    """IgpgError unless a file can be created in `directory` (tried for real: root ignores modes, and a read-only
    mount shows only then) and `need` bytes are free there."""
    directory = Path(directory)
    try:
        # named as atomic_path names its temporaries (temp_pattern("igpg-probe")): a killed run's probe is cleaned
        fd, probe = tempfile.mkstemp(prefix=".igpg-probe.igpg-", suffix=".tmp", dir=directory)
        os.close(fd)
        os.unlink(probe)
        free = shutil.disk_usage(directory).free
    except OSError as e:
        raise IgpgError(f"cannot write to {directory}: {e.strerror or e}") from None
    if free < need:
        raise IgpgError(f"not enough free space in {directory}: {need:,} bytes needed, {free:,} free")


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Write tensors as safetensors atomically; returns the file's sha256.

    Tensors are made contiguous and un-shared first (safetensors refuses tied or strided views).
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(_serialise(state, metadata or {}))
        digest = sha256_file(tmp)
    return digest


_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
           torch.bool: "BOOL"}


def _serialise(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes with a canonical header (sorted keys), so the same weights give the same sha256.

    (The `safetensors` writer orders metadata by a randomised hash map: equal weights, different files.)
    Tensors are copied contiguous, so tied and non-contiguous tensors are written as plain values.
    """
    header: dict = {"__metadata__": {k: str(v) for k, v in sorted(metadata.items())}} if metadata else {}
    blobs, offset = [], 0
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        if t.dtype not in _DTYPES:
            raise IgpgError(f"tensor {name!r} has dtype {t.dtype}, which igpg does not write")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_header(path: str | Path) -> dict:
    """The safetensors JSON header, after checking sizes: a truncated or absurd file is an `IgpgError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise IgpgError(f"{path}: not a safetensors file ({size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise IgpgError(f"{path}: corrupt safetensors header (claims {n} bytes; file has {size})")
            raw = f.read(n)
    except FileNotFoundError:
        raise IgpgError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise IgpgError(f"{path}: is a directory, expected a .safetensors file") from None
    except OSError as e:
        raise IgpgError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep, an integer too long to read
        raise IgpgError(f"{path}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise IgpgError(f"{path}: corrupt safetensors header")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise IgpgError(f"{path}: corrupt safetensors header (__metadata__ must map strings to strings)")
    end = 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        offsets = v.get("data_offsets") if isinstance(v, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and o >= 0 for o in offsets)
                and offsets[0] <= offsets[1]):
            raise IgpgError(f"{path}: corrupt safetensors header (tensor {k[:60]!r} has no valid data_offsets)")
        end = max(end, offsets[1])
    if 8 + n + end != size:
        raise IgpgError(f"{path}: truncated or padded safetensors file ({size} bytes, header says {8 + n + end})")
    return header


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and `__metadata__` of a safetensors file; corrupt, truncated or non-finite weights are refused."""
    header = read_header(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise IgpgError(f"{path}: cannot read safetensors: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise IgpgError(f"{path}: tensor {name!r} has NaN or infinite values")
    return tensors, dict(header.get("__metadata__") or {})
