"""The on-disk cache of derived data (datasets that take seconds to build): `$IGPG_CACHE`, else `~/.cache/igpg`.

Files are NPZ, written atomically (a reader sees the old file or the whole new one) and read without unpickling;
a missing, corrupt or incomplete file reads as None, and the caller rebuilds it.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """Where igpg keeps derived data: `$IGPG_CACHE`, else `~/.cache/igpg`."""
    return Path(os.environ.get("IGPG_CACHE") or Path.home() / ".cache" / "igpg")


def read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays `keys` of an NPZ file, or None when it is missing, corrupt or lacks one of them."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def write_npz_atomically(path: Path, arrays: dict[str, np.ndarray], what: str) -> None:
    """Write `arrays` to `path` atomically; on an unwritable cache, warn and go on (the data is already built)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)  # readers see the old file or the whole new one, never half of one
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:  # a read-only home is no reason to fail
        warnings.warn(f"igpg: could not cache {what} at {path}: {e}", stacklevel=3)
