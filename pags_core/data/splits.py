"""In-memory tensor splits, batch iterables and on-device augmentation."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..device import resolve_device

__all__ = ["Split", "DataSplits", "Batches", "augment_batch"]


@dataclass
class Split:
    """One split: ``X`` (N, C, H, W) float images (already normalised) and ``y`` (N,) int64 labels."""

    X: torch.Tensor
    y: torch.Tensor

    def __post_init__(self):
        if self.X.shape[0] != self.y.shape[0]:
            raise ValueError(f"X has {self.X.shape[0]} rows but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device) -> "Split":
        return Split(self.X.to(device), self.y.to(device))


@torch.no_grad()
def augment_batch(x: torch.Tensor, *, pad: int = 4, flip: bool = True, pad_value: Optional[Sequence[float]] = None,
                  pad_mode: str = "constant", generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random crop after padding by ``pad`` (the crop keeps the input size) and random horizontal flip, batched on
    ``x``'s device.  ``pad_mode="reflect"`` reflects; ``"constant"`` fills channel c with ``pad_value[c]`` (the
    normalised value of a black pixel, matching torchvision's ``RandomCrop(padding=4)`` before ``Normalize``).
    Random offsets are drawn from ``generator`` (CPU) so results do not depend on the device."""
    n, c, h, w = x.shape
    if pad > 0:
        if pad_mode == "reflect":
            xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        else:
            xp = F.pad(x, (pad, pad, pad, pad), mode="constant", value=0.0)
            if pad_value is not None:
                fill = torch.as_tensor(pad_value, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
                border = torch.ones(1, 1, h + 2 * pad, w + 2 * pad, dtype=torch.bool, device=x.device)
                border[..., pad:pad + h, pad:pad + w] = False
                xp = torch.where(border, fill, xp)
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # n,1,h,1
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # n,1,1,w
        bidx = torch.arange(n, device=x.device)[:, None, None, None]
        cidx = torch.arange(c, device=x.device)[None, :, None, None]
        x = xp[bidx, cidx, rows, cols]
    if flip:
        f = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x


class Batches:
    """A re-iterable sequence of mini-batches over a :class:`Split`.

    Every ``iter()`` is one epoch; with ``shuffle`` each epoch draws a fresh permutation from the iterable's own
    seeded generator, so the whole sequence of epochs is repeatable from ``seed``.
    """

    def __init__(self, split: Split, batch_size: int, *, shuffle: bool = False, seed: int = 0, augment: bool = False,
                 device=None, drop_last: bool = False, pad_value=None, pad_mode: str = "constant"):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.split, self.batch_size, self.shuffle = split, batch_size, shuffle
        self.augment, self.drop_last = augment, drop_last
        self.device = resolve_device(device) if device is not None else split.X.device
        self.generator = torch.Generator().manual_seed(int(seed))
        self.pad_value, self.pad_mode = pad_value, pad_mode

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        X, y = self.split.X, self.split.y
        for i in range(len(self)):
            if order is None:
                xb, yb = X[i * self.batch_size:(i + 1) * self.batch_size], y[i * self.batch_size:(i + 1) * self.batch_size]
            else:
                idx = order[i * self.batch_size:(i + 1) * self.batch_size].to(X.device)
                xb, yb = X[idx], y[idx]
            xb = xb.to(self.device, non_blocking=True)
            yb = yb.to(self.device, non_blocking=True)
            if self.augment:
                xb = augment_batch(xb, pad_value=self.pad_value, pad_mode=self.pad_mode, generator=self.generator)
            yield xb, yb


@dataclass
class DataSplits:
    """A loaded data set: ``train``/``val``/``test`` :class:`Split` s plus what a model needs to know.

    ``augment`` is the data set's default training augmentation (pad-4 random crop + flip for CIFAR, none for
    MNIST/digits/synthetic); ``mean``/``std`` are the per-channel normalisation constants applied to ``X``.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    in_channels: int
    image_size: int
    mean: Tuple[float, ...] = ()
    std: Tuple[float, ...] = ()
    augment: bool = False
    pad_mode: str = "constant"
    info: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.train.X.device

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    @property
    def pad_value(self):
        """Normalised value of a black pixel per channel: what constant padding fills in (torchvision pads before
        normalising)."""
        if self.mean and self.std:
            return [-m / s for m, s in zip(self.mean, self.std)]
        return None

    def to(self, device) -> "DataSplits":
        dev = resolve_device(device)
        return DataSplits(self.name, self.train.to(dev), self.val.to(dev), self.test.to(dev), self.num_classes,
                          self.in_channels, self.image_size, self.mean, self.std, self.augment, self.pad_mode, self.info)

    def train_batches(self, batch_size: int, *, seed: int = 0, augment: Optional[bool] = None, device=None,
                      drop_last: bool = False) -> Batches:
        """Shuffled training mini-batches (one epoch per ``iter``), augmented on the device when ``augment``
        (default: the data set's own default)."""
        return Batches(self.train, batch_size, shuffle=True, seed=seed,
                       augment=self.augment if augment is None else bool(augment), device=device,
                       drop_last=drop_last, pad_value=self.pad_value, pad_mode=self.pad_mode)

    def val_batches(self, batch_size: int, *, device=None) -> Batches:
        return Batches(self.val, batch_size, device=device)

    def test_batches(self, batch_size: int, *, device=None) -> Batches:
        return Batches(self.test, batch_size, device=device)

    def sample_batches(self, n: int, batch_size: int, seed: int = 0, *, augment: Optional[bool] = None,
                       device=None) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """``n`` shuffled (and, by default for CIFAR, augmented) training mini-batches for generator scoring.
        Different seeds give different batches; ``n * batch_size`` may exceed the split (it wraps over epochs)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        it = self.train_batches(batch_size, seed=seed, augment=augment, device=device, drop_last=True)
        if len(it) == 0:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(self.train)} training images")
        out: List[Tuple[torch.Tensor, torch.Tensor]] = []
        while len(out) < n:
            for b in it:
                out.append(b)
                if len(out) == n:
                    break
        return out

    def __repr__(self) -> str:
        return (f"DataSplits({self.name!r}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)}, "
                f"{self.in_channels}x{self.image_size}x{self.image_size}, {self.num_classes} classes, "
                f"augment={self.augment}, device={self.device})")
