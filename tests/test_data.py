"""The dataset registry: offline loads, split properties, the mnist1d disk cache, torchvision from a local root."""

import random
import struct

import numpy as np
import pytest
import torch

from igpg.data import datasets as D
from igpg.errors import IgpgError

EXPECTED = {  # name: (input_shape, total samples, value range)
    "digits": ((1, 8, 8), 1797, (0.0, 1.0)),
    "mnist": ((1, 28, 28), 5000, (0.0, 1.0)),
    "mnist1d": ((1, 40), 5000, (-10.0, 10.0)),  # standardised: a few std either side
}


@pytest.fixture(scope="module", autouse=True)
def tmp_cache(tmp_path_factory):
    """A private IGPG_CACHE and a clean in-process cache for this module."""
    path = tmp_path_factory.mktemp("igpg_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_CACHE", str(path))
        D._load_cached.cache_clear()
        yield path
        D._load_cached.cache_clear()


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_loads_offline_with_documented_shapes(name):
    shape, total, (lo, hi) = EXPECTED[name]
    ds = D.load_dataset(name)
    assert ds.name == name and ds.input_shape == shape and ds.num_features == int(np.prod(shape))
    assert ds.num_classes == 10 and ds.class_names == tuple(str(i) for i in range(10))
    assert ds.description
    assert sum(len(ds.split(s)) for s in D.SPLIT_NAMES) == total
    for split_name in D.SPLIT_NAMES:
        split = ds.split(split_name)
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape == (len(split), ds.num_features) and split.y.shape == (len(split),)
        assert lo <= float(split.x.min()) and float(split.x.max()) <= hi
        assert set(split.y.tolist()) == set(range(10))  # every class in every split


@pytest.mark.parametrize("name", list(EXPECTED))
def test_splits_are_stratified(name):
    ds = D.load_dataset(name)
    overall = torch.cat([ds.train.y, ds.val.y, ds.test.y]).bincount(minlength=10).double()
    overall /= overall.sum()
    for split in (ds.train, ds.val, ds.test):
        share = split.y.bincount(minlength=10).double() / len(split)
        assert (share - overall).abs().max() < 0.02


def test_mnist_split_is_stratified_and_shuffled_despite_sorted_source():
    ds = D.load_dataset("mnist")
    assert ds.train.y.bincount().tolist() == [300] * 10
    assert ds.val.y.bincount().tolist() == [100] * 10 and ds.test.y.bincount().tolist() == [100] * 10
    assert len(set(ds.train.y[:50].tolist())) >= 8  # the first samples are not all zeros


@pytest.mark.parametrize("name", ["digits", "mnist"])
def test_60_20_20_splits_are_disjoint_and_cover_everything(name):
    from sklearn.datasets import load_digits

    y = load_digits().target if name == "digits" else np.repeat(np.arange(10), 500)
    index = np.arange(len(y), dtype=np.float64)[:, None]  # features = sample index: tracks where each one went
    train, val, test = D._split_60_20_20(index, y)
    ids = [set(s.x[:, 0].long().tolist()) for s in (train, val, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set().union(*ids) == set(range(len(y)))
    sizes = [len(s) for s in (train, val, test)]
    assert all(abs(n - f * len(y)) <= 2 for n, f in zip(sizes, (0.6, 0.2, 0.2)))


def test_mnist1d_val_is_disjoint_from_train():
    raw = D._mnist1d_arrays()
    train, val = D._stratified_split(raw["y"], 0.2, D.SPLIT_SEED)
    assert not set(train) & set(val) and len(train) + len(val) == len(raw["y"]) == 4000


@pytest.mark.parametrize("name", list(EXPECTED))
def test_loads_are_deterministic(name):
    first = D.load_dataset(name)
    D._load_cached.cache_clear()
    second = D.load_dataset(name)
    assert first is not second
    for split_name in D.SPLIT_NAMES:
        assert torch.equal(first.split(split_name).x, second.split(split_name).x)
        assert torch.equal(first.split(split_name).y, second.split(split_name).y)


def test_load_is_cached_in_process():
    assert D.load_dataset("digits") is D.load_dataset("digits", data_root="/ignored/for/builtins")


def test_mnist1d_is_standardised_by_its_train_split():
    ds = D.load_dataset("mnist1d")
    assert abs(float(ds.train.x.mean())) < 1e-4 and abs(float(ds.train.x.std()) - 1.0) < 1e-3


def test_mnist1d_cache_file_is_written_and_a_corrupt_one_is_rebuilt(tmp_cache, monkeypatch):
    real = D._mnist1d_arrays()
    path = D._mnist1d_cache_path()
    assert path.parent == tmp_cache and path.is_file() and "mnist1d-" in path.name
    calls = []
    monkeypatch.setattr(D, "_build_mnist1d", lambda: calls.append(1) or real)
    path.write_bytes(b"not a zip file")
    rebuilt = D._mnist1d_arrays()
    assert calls == [1] and all(np.array_equal(rebuilt[k], real[k]) for k in real)
    assert D._read_mnist1d_cache(path) is not None  # rewritten whole
    assert D._mnist1d_arrays() and calls == [1]  # warm: read, not rebuilt
    assert not list(tmp_cache.glob("*.tmp"))  # no temp file left behind


def test_mnist1d_build_leaves_global_rngs_alone():
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    D._build_mnist1d()  # reseeds the globals inside mnist1d
    assert (random.random(), np.random.rand()) == expected


# --- errors ----------------------------------------------------------------------------------------------------


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(IgpgError) as e:
        D.load_dataset("digts")
    message = _one_line_error(e)
    assert "'digts'" in message and "digits" in message and "torchvision:<Name>" in message


def test_bad_split_name():
    with pytest.raises(IgpgError) as e:
        D.load_dataset("digits").split("validation")
    assert "train, val, test" in _one_line_error(e)


def test_torchvision_without_root_says_pass_data_root():
    with pytest.raises(IgpgError) as e:
        D.load_dataset("torchvision:MNIST")
    assert "--data-root" in _one_line_error(e)


def test_torchvision_missing_files_names_dataset_and_folder(tmp_path):
    with pytest.raises(IgpgError) as e:
        D.load_dataset("torchvision:MNIST", data_root=str(tmp_path))
    message = _one_line_error(e)
    assert "torchvision:MNIST" in message and str(tmp_path) in message and "never downloads" in message
    with pytest.raises(IgpgError) as e:
        D.load_dataset("torchvision:CIFAR10", data_root=str(tmp_path / "nowhere"))
    assert "not a folder" in _one_line_error(e)


def test_torchvision_unknown_name_lists_supported():
    with pytest.raises(IgpgError) as e:
        D.load_dataset("torchvision:ImageNet", data_root="/tmp")
    message = _one_line_error(e)
    assert "ImageNet" in message and "FashionMNIST" in message and "CIFAR10" in message


def test_list_datasets_and_num_classes_agree():
    names = D.list_datasets()
    assert names[:3] == ["digits", "mnist", "mnist1d"] and "torchvision:CIFAR10" in names
    assert all(D.num_classes_of(n) >= 2 for n in names)
    with pytest.raises(IgpgError):
        D.num_classes_of("torchvision:Nope")


# --- a tiny fake torchvision MNIST folder (raw idx files, the format torchvision reads) -------------------------


def _write_idx(path, array: np.ndarray) -> None:
    magic = 0x0800 + array.ndim  # 0x08 = unsigned byte
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        f.write(array.astype(np.uint8).tobytes())


def _fake_mnist_root(root, folder: str, per_class_train=6, per_class_test=2):
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    out = {}
    for prefix, per_class in (("train", per_class_train), ("t10k", per_class_test)):
        labels = np.tile(np.arange(10), per_class)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        out[prefix] = (images, labels)
    return out


def test_torchvision_mnist_loads_from_a_local_folder(tmp_path):
    arrays = _fake_mnist_root(tmp_path, "MNIST")
    ds = D.load_dataset("torchvision:MNIST", data_root=str(tmp_path))
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10 and ds.num_features == 784
    assert ds.class_names == tuple(str(i) for i in range(10))
    assert len(ds.train) == 48 and len(ds.val) == 12 and len(ds.test) == 20
    assert min(ds.val.y.bincount(minlength=10).tolist()) >= 1  # stratified 80/20: every class in val
    images, labels = arrays["t10k"]
    assert torch.allclose(ds.test.x, torch.from_numpy(images.reshape(20, -1) / 255.0).float())
    assert torch.equal(ds.test.y, torch.from_numpy(labels).long())
    assert 0.0 <= float(ds.train.x.min()) and float(ds.train.x.max()) <= 1.0 and ds.train.x.dtype == torch.float32


def test_torchvision_class_names_come_from_the_dataset(tmp_path):
    _fake_mnist_root(tmp_path, "FashionMNIST")
    ds = D.load_dataset("torchvision:FashionMNIST", data_root=str(tmp_path))
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_colour_images_become_channels_first():
    hwc = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)  # CIFAR's (N, H, W, C) layout
    x, shape = D._images_to_flat(hwc)
    assert shape == (3, 4, 5) and x.dtype == np.float32 and x.shape == (2, 60)
    assert np.allclose(x.reshape(2, 3, 4, 5), hwc.transpose(0, 3, 1, 2) / 255.0)


def test_cli_data_info_reads_a_local_torchvision_root(tmp_path, cli):
    _fake_mnist_root(tmp_path, "MNIST")
    res = cli("data", "info", "torchvision:MNIST", "--data-root", tmp_path)
    assert res.code == 0, res.err
    assert "input 1x28x28, 10 classes" in res.out
    res = cli("data", "info", "torchvision:MNIST", "--data-root", tmp_path / "empty")
    assert res.code == 2 and res.err.startswith("error: ") and len(res.err.strip().splitlines()) == 1
