"""UCR univariate classification sets that ship inside the `aeon` wheel, on mnist1d's 1x40 input.

Read with aeon's own loader (`aeon.datasets.load_from_ts_file`) from the `.ts` files in aeon's package data, never
from the network. Preprocessing, per series: resampled to 40 points (`igpg.data.resample.resample_signal`: linear
interpolation at 40 evenly spaced points from its first sample to its last; series of unequal length, as in
PickupGestureWiimoteZ, each from its own length), then z-normalised (mean 0, std 1 per series). Class id i is the
i-th label that the file's `@classLabel` line declares; the UCR train / test split is kept (igpg's val split is a
stratified 20% of the UCR train split, drawn in `datasets.py`).

Class names: where the file's own description names the classes, in the order it names them; where it names them
without saying which label is which (ArrowHead, OSULeaf, ACSF1), that order is taken as the label order, as the
UCR archive pages list them. Checked against the data where the classes leave a trace: ItalyPowerDemand's class 1
has its evening peak two hours before class 2's (dark evenings: October to March); UnitTest (a subset of the UCR
Chinatown set, hourly pedestrian counts) has class 1 busy after midnight (weekend).

Processed arrays are cached as ``ucr-<Problem>-aeon<version>-v1.npz`` under `cache_dir()` (the first load of one
set imports aeon, ~2 s; later loads read ~0.01 s). aeon is the optional extra ``igpg[ucr]`` (it pulls in numba and
llvmlite, ~220 MB, and pins numpy below 2.4); without it these datasets say how to install it.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igpg.data.cache import cache_dir, read_npz, write_npz_atomically
from igpg.data.resample import resample_signal, znormalise
from igpg.errors import IgpgError

SIGNAL_LENGTH = 40  # mnist1d's length: every 1-D dataset shares one input layer
INSTALL_HINT = "pip install 'igpg[ucr]' (or pip install aeon)"
_KEYS = ("x", "y", "x_test", "y_test")


@dataclass(frozen=True)
class UcrEntry:
    problem: str  # aeon's folder and file stem, e.g. "GunPoint"
    description: str  # noun phrase for instructions ("Classify {description} into ...")
    class_names: tuple[str, ...]  # name of class id i, i.e. of the i-th label of the file's @classLabel line


UCR_DATASETS: dict[str, UcrEntry] = {
    "ucr_acsf1": UcrEntry(
        "ACSF1", "ACSF1 appliance power-consumption signatures",
        ("mobile phone", "coffee machine", "computer station", "fridge or freezer", "hi-fi system", "lamp",
         "laptop", "microwave oven", "printer", "television")),
    "ucr_arrowhead": UcrEntry("ArrowHead", "ArrowHead arrowhead outlines", ("Avonlea", "Clovis", "Mix")),
    "ucr_gunpoint": UcrEntry("GunPoint", "GunPoint hand-motion tracks", ("gun", "point")),
    "ucr_italypowerdemand": UcrEntry(
        "ItalyPowerDemand", "ItalyPowerDemand daily electricity-demand curves",
        ("October to March", "April to September")),
    "ucr_osuleaf": UcrEntry(
        "OSULeaf", "OSULeaf leaf outlines",
        ("Acer circinatum", "Acer glabrum", "Acer macrophyllum", "Acer negundo", "Quercus garryana",
         "Quercus kelloggii")),
    "ucr_pickupgesturewiimotez": UcrEntry(
        "PickupGestureWiimoteZ", "PickupGestureWiimoteZ Wiimote gesture accelerations",
        ("pick-up", "shake", "move right", "move left", "move up", "move down", "left circle", "right circle",
         "move toward the screen", "move away from the screen")),
    "ucr_unittest": UcrEntry(
        "UnitTest", "UnitTest (Chinatown) hourly pedestrian counts", ("weekend", "weekday")),
}


def _aeon_version(name: str) -> str:
    try:
        return importlib.metadata.version("aeon")
    except importlib.metadata.PackageNotFoundError:
        raise IgpgError(f"dataset {name} is read from the aeon package, which is not installed; {INSTALL_HINT}") from None


def cache_path(name: str) -> Path:
    return cache_dir() / f"ucr-{UCR_DATASETS[name].problem}-aeon{_aeon_version(name)}-v1.npz"


def to_signals(series, length: int = SIGNAL_LENGTH) -> np.ndarray:
    """aeon's univariate X ((N, 1, L) array, or a list of (1, L_i) arrays) -> (N, length) float32, z-normalised."""
    rows = []
    for s in series:
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 2 or s.shape[0] != 1:
            raise IgpgError(f"expected univariate series (1, L), got shape {s.shape}")
        if not np.isfinite(s).all():
            raise IgpgError("a series has missing or non-finite values")
        rows.append(resample_signal(s[0], length))
    return znormalise(np.stack(rows)).astype(np.float32)


def _problem_folder(name: str) -> Path:
    """The folder of aeon's package data that holds this set's .ts files."""
    try:
        import aeon.datasets
    except ImportError:
        raise IgpgError(f"dataset {name} is read from the aeon package, which is not installed; {INSTALL_HINT}") from None
    return Path(aeon.datasets.__file__).parent / "data" / UCR_DATASETS[name].problem


def _read_problem(name: str) -> dict[str, np.ndarray]:
    entry, folder = UCR_DATASETS[name], _problem_folder(name)
    from aeon.datasets import load_from_ts_file

    out: dict[str, np.ndarray] = {}
    order: list[str] | None = None
    for part, (xk, yk) in (("TRAIN", ("x", "y")), ("TEST", ("x_test", "y_test"))):
        path = folder / f"{entry.problem}_{part}.ts"
        if not path.is_file():
            raise IgpgError(f"dataset {name}: aeon {_aeon_version(name)} does not ship {path.name} (looked in {folder})")
        x, y, meta = load_from_ts_file(str(path), return_meta_data=True)
        declared = [str(v) for v in meta["class_values"]]
        order = order or declared
        index = {label: i for i, label in enumerate(order)}
        unknown = sorted({str(v) for v in y} - set(index))
        if declared != order or unknown or len(order) != len(entry.class_names):
            raise IgpgError(f"dataset {name}: {path.name} declares classes {declared} (labels seen: {unknown or 'ok'}); "
                            f"igpg expects {len(entry.class_names)} classes")
        out[xk] = to_signals(x)
        out[yk] = np.array([index[str(v)] for v in y], dtype=np.int64)
    return out


def _valid(arrays: dict[str, np.ndarray] | None, num_classes: int) -> bool:
    if arrays is None:
        return False
    return all(
        arrays[xk].ndim == 2 and arrays[xk].shape[1] == SIGNAL_LENGTH and arrays[yk].shape == (len(arrays[xk]),)
        and len(arrays[yk]) > 0 and 0 <= arrays[yk].min() and arrays[yk].max() < num_classes
        for xk, yk in (("x", "y"), ("x_test", "y_test"))
    )


def ucr_arrays(name: str) -> dict[str, np.ndarray]:
    """Processed arrays x, y (the UCR train split) and x_test, y_test: from the cache, else read and cached."""
    path = cache_path(name)
    num_classes = len(UCR_DATASETS[name].class_names)
    arrays = read_npz(path, _KEYS)
    if not _valid(arrays, num_classes):  # missing, corrupt or of another shape: rebuild
        arrays = _read_problem(name)
        write_npz_atomically(path, arrays, name)
    return arrays
