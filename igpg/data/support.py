"""A user's own labelled samples (a *support set*) for a dataset igpg has not registered: CSV or NPZ, checked.

    support = load_support("my_samples.csv")                       # labels in sorted order
    support = load_support("my.npz", input_shape=(1, 8, 8), labels=["cat", "dog"])  # these, in this order
    support.x  # (N, D) float32, flattened;  support.y  # (N,) int64: index into support.labels

Formats (nothing is ever unpickled):

- CSV (``.csv``, UTF-8): one sample per row, a label column and one column per feature (flattened row-major,
  channels first, like every igpg dataset). With a header row (detected when a cell after the first is not a number)
  the label column is the one named ``label`` or ``y`` (any case); without one it is the first column. Every other
  cell must be a number. Blank lines are skipped.
- NPZ (``.npz``): arrays ``x`` (N, ...) numeric and ``y`` (N,) integer or text labels, read with
  ``np.load(allow_pickle=False)`` (object arrays are refused). ``x`` of more than 2 dimensions gives the input shape
  (``(N, 1, 8, 8)`` -> 1x8x8); a flat ``x`` (N, D) gives ``(D,)`` unless `input_shape` says otherwise.

Labels: integer labels (all of them whole numbers) are ordered numerically and named by their value ("3"); text
labels are ordered as sorted strings. `labels=` picks and orders them instead (output i = labels[i]); samples of
other labels are then dropped. Checked, each failure one line of `IgpgError`: the file's size and kind, at least
2 labels with at least 1 sample each, every feature finite, the same number of features in every sample, the
input shape, and the limits below (a support set is a handful of samples per label, not a training set).
"""

from __future__ import annotations

import csv
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from igpg.data.datasets import Split
from igpg.errors import IgpgError

MAX_BYTES = 64 * 2**20  # file size: a support set is small; a bigger file is a mistake, not a support set
MAX_SAMPLES = 10_000  # rows
MAX_FEATURES = 65_536  # per sample (a 256x256 grey image)
MAX_LABELS = 1_000
MAX_LABEL_CHARS = 100
LABEL_COLUMNS = ("label", "y")  # header names of the label column, compared case-insensitively
_INT = re.compile(r"[+-]?\d{1,18}")


@dataclass(frozen=True)
class Support:
    x: torch.Tensor  # (N, D) float32, flattened samples
    y: torch.Tensor  # (N,) int64, index into `labels`
    labels: tuple[str, ...]  # label i's name, in output order
    input_shape: tuple[int, ...]  # one sample's shape, e.g. (1, 8, 8); prod == D

    @property
    def split(self) -> Split:
        return Split(self.x, self.y)

    def counts(self) -> dict[str, int]:
        """Samples per label (k), in label order."""
        return dict(zip(self.labels, self.y.bincount(minlength=len(self.labels)).tolist()))


def load_support(path: str | Path, input_shape: Sequence[int] | None = None,
                 labels: Sequence[int | str] | None = None) -> Support:
    """Read and check a support set (CSV or NPZ); see the module docstring for the formats and checks."""
    path = Path(path)
    where = f"support file {path}"
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise IgpgError(f"{where}: expected a .csv or .npz file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise IgpgError(f"{where}: cannot read it ({e.strerror or e})") from None
    if not path.is_file():
        raise IgpgError(f"{where}: not a file")
    if size > MAX_BYTES:
        raise IgpgError(f"{where} is {size / 2**20:.1f} MiB; a support set may be at most {MAX_BYTES // 2**20} MiB")
    if suffix == ".csv":
        x, raw_labels, shape, lines = _read_csv(path, where)
    else:
        (x, raw_labels, shape), lines = _read_npz(path, where), None
    return _checked(x, raw_labels, shape, input_shape, labels, where, lines)


# --- readers: x (N, D) float64, labels as text (N,), one sample's natural shape (CSV: and each sample's line) ----


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, where: str) -> tuple[np.ndarray, list[str], tuple[int, ...], list[int]]:
    """Rows are parsed as they are read (numbers, not strings, are kept), so memory stays a few times the file."""
    features: list[np.ndarray] = []
    labels: list[str] = []
    lines: list[int] = []
    label_col, width, first_line = 0, 0, 0
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                line = reader.line_num  # the record's last physical line
                if not any(c.strip() for c in row):
                    continue  # blank line
                if not width:  # the first row: a header, or the first sample
                    first_line, width = line, len(row)
                    if width < 2:
                        raise IgpgError(f"{where}: line {line} has {width} column; expected a label and at least "
                                        "1 feature")
                    if width - 1 > MAX_FEATURES:
                        raise IgpgError(f"{where} has {width - 1} features per sample; at most {MAX_FEATURES}")
                    if any(not _is_number(c) for c in row[1:]) or row[0].strip().lower() == "label":
                        hits = [i for i, c in enumerate(row) if c.strip().lower() in LABEL_COLUMNS]
                        if len(hits) != 1:
                            raise IgpgError(f"{where}: line {line} is read as a header (not all numbers after its "
                                            "first cell), so it must name exactly one label column 'label' or 'y'; "
                                            f"it has {_short(row)}")
                        label_col = hits[0]
                        continue
                if len(row) != width:
                    raise IgpgError(f"{where}: line {line} has {len(row)} columns, line {first_line} has {width}")
                if len(labels) == MAX_SAMPLES:
                    raise IgpgError(f"{where} has more than {MAX_SAMPLES} samples; a support set may have at most "
                                    f"{MAX_SAMPLES}")
                cells = row[:label_col] + row[label_col + 1:]
                try:
                    features.append(np.array([float(c) for c in cells]))
                except ValueError:
                    bad = next(c for c in cells if not _is_number(c))
                    raise IgpgError(f"{where}: line {line} has a feature {_short(bad)} that is not a number") from None
                labels.append(row[label_col].strip())
                lines.append(line)
    except UnicodeDecodeError:
        raise IgpgError(f"{where}: not UTF-8 text") from None
    except csv.Error as e:
        raise IgpgError(f"{where}: not a readable CSV ({e})") from None
    if not width:
        raise IgpgError(f"{where} is empty; expected a label column and feature columns")
    if not labels:
        raise IgpgError(f"{where} has a header and no samples")
    return np.stack(features), labels, (width - 1,), lines


def _npz_header(zf: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of array `key` from its .npy header, before numpy allocates anything for it."""
    with zf.open(f"{key}.npy") as fp:
        version = np.lib.format.read_magic(fp)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read(fp)
    return shape, dtype


def _read_npz(path: Path, where: str) -> tuple[np.ndarray, list[str], tuple[int, ...]]:
    try:
        with zipfile.ZipFile(path) as zf:
            present = [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
            headers = {k: _npz_header(zf, k) for k in ("x", "y") if k in present}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise IgpgError(f"{where}: not a readable NPZ archive ({_short(str(e))})") from None
    missing = [k for k in ("x", "y") if k not in headers]
    if missing:
        raise IgpgError(f"{where} lacks array {' and '.join(missing)}; it has {', '.join(present) or 'none'} "
                        "(expected x (N, ...) and y (N,), saved with np.savez)")
    (x_shape, x_dtype), (y_shape, _) = headers["x"], headers["y"]
    if len(x_shape) < 2 or x_shape[0] == 0:
        raise IgpgError(f"{where}: x has shape {x_shape}; expected (N, features) or (N, ...) with N >= 1")
    if x_shape[0] > MAX_SAMPLES:
        raise IgpgError(f"{where} has {x_shape[0]} samples; a support set may have at most {MAX_SAMPLES}")
    if math.prod(x_shape[1:]) > MAX_FEATURES:
        raise IgpgError(f"{where} has {math.prod(x_shape[1:])} features per sample; at most {MAX_FEATURES}")
    if x_dtype.kind not in "biuf":
        raise IgpgError(f"{where}: x has dtype {x_dtype}; expected numbers")
    if y_shape != (x_shape[0],):
        raise IgpgError(f"{where}: y has shape {y_shape}; expected ({x_shape[0]},), one label per sample of x")
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except ValueError as e:  # object arrays need pickle, which is refused
        raise IgpgError(f"{where}: cannot read it without unpickling ({_short(str(e))}); save plain arrays "
                        "with np.savez(path, x=..., y=...)") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise IgpgError(f"{where}: not a readable NPZ archive ({_short(str(e))})") from None
    if y.dtype.kind in "iu":
        labels = [str(int(v)) for v in y]
    elif y.dtype.kind == "U":
        labels = [str(v).strip() for v in y]
    elif y.dtype.kind == "S":
        try:
            labels = [v.decode("utf-8").strip() for v in y]
        except UnicodeDecodeError:
            raise IgpgError(f"{where}: y holds bytes that are not UTF-8 text") from None
    else:
        raise IgpgError(f"{where}: y has dtype {y.dtype}; expected integer or text labels")
    shape = tuple(int(s) for s in x.shape[1:])
    return x.reshape(len(x), -1).astype(np.float64), labels, shape


# --- checks shared by both formats -----------------------------------------------------------------------------


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _label_order(found: set[str]) -> list[str]:
    if all(_INT.fullmatch(v) for v in found):
        return sorted(found, key=int)
    return sorted(found)


def _canonical(label: str) -> str:
    return str(int(label)) if _INT.fullmatch(label) else label  # "03" and "3" are the same integer label


def _checked(x: np.ndarray, raw_labels: list[str], shape: tuple[int, ...], input_shape, wanted, where: str,
             lines: list[int] | None) -> Support:
    def at(i: int) -> str:  # where sample i (0-based) is: its CSV line, else its 1-based number
        return f"line {lines[i]}" if lines is not None else f"sample {i + 1}"

    for i, label in enumerate(raw_labels):
        if not label:
            raise IgpgError(f"{where}: {at(i)} has an empty label")
        if len(label) > MAX_LABEL_CHARS:
            raise IgpgError(f"{where}: {at(i)} has a label of {len(label)} characters; at most {MAX_LABEL_CHARS}")
    names = [_canonical(v) for v in raw_labels]
    if wanted is None:
        order = _label_order(set(names))
    else:
        if isinstance(wanted, (str, bytes)) or not isinstance(wanted, Sequence):
            raise IgpgError(f"labels must be a list like [3, 5, 8] or ['cat', 'dog'], got {_short(wanted)}")
        order = [_canonical(str(v).strip()) for v in wanted]
        if len(set(order)) != len(order):
            raise IgpgError(f"labels {_short(list(wanted))} repeat a label; each may appear once")
        counts = {n: 0 for n in order}
        for n in names:
            if n in counts:
                counts[n] += 1
        empty = [n for n, k in counts.items() if k == 0]
        if empty:
            raise IgpgError(f"{where} has no sample of label {', '.join(map(repr, empty))}; every label needs at "
                            f"least 1 (labels in the file: {', '.join(map(repr, _label_order(set(names))[:20]))})")
    if len(order) < 2:
        raise IgpgError(f"{where}: a classifier needs at least 2 labels, found {', '.join(map(repr, order)) or 'none'}")
    if len(order) > MAX_LABELS:
        raise IgpgError(f"{where} has {len(order)} labels; at most {MAX_LABELS}")
    index = {n: i for i, n in enumerate(order)}
    keep = np.array([n in index for n in names])
    x = x[keep]
    y = np.array([index[n] for n in names if n in index], dtype=np.int64)

    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused just below
        x32 = x.astype(np.float32)
    bad = ~np.isfinite(x32).all(axis=1)
    if bad.any():
        raise IgpgError(f"{where}: {at(int(np.flatnonzero(keep)[bad.argmax()]))} has a value that is NaN, "
                        "infinite or beyond float32; every feature must be a finite number")
    return Support(torch.from_numpy(np.ascontiguousarray(x32)), torch.from_numpy(y), tuple(order),
                   _input_shape(shape, x.shape[1], input_shape, where))


def _input_shape(shape: tuple[int, ...], features: int, input_shape, where: str) -> tuple[int, ...]:
    if input_shape is None:
        return shape
    try:
        want = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise IgpgError(f"input_shape must be a tuple of sizes like (1, 8, 8), got {_short(input_shape)}") from None
    if not want or any(s < 1 for s in want):
        raise IgpgError(f"input_shape must be positive sizes like (1, 8, 8), got {_short(input_shape)}")
    shown = "x".join(map(str, want))
    if math.prod(want) != features:
        raise IgpgError(f"{where}: samples have {features} features; the input {shown} needs {math.prod(want)}")
    if len(shape) > 1 and shape != want and (1, *shape) != want:
        raise IgpgError(f"{where}: samples have shape {'x'.join(map(str, shape))}; the input is {shown}")
    return want
