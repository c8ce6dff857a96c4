"""Fixtures shared by the PAGS/PEGS and baseline tests: a small synthetic data set and a tiny ResNet18."""
from __future__ import annotations

import pytest
import torch

import pags_core as pc


@pytest.fixture(scope="module")
def data():
    """128 training and 32 test images of the synthetic 8x8 set (a few seconds per training run on 2 cores)."""
    return pc.load_dataset("synthetic", n_train=128, n_test=32)


@pytest.fixture
def tiny_model():
    """Factory: ResNet18 at width 1/16 shaped for ``data``, initialised from ``seed``."""
    def make(data, seed=0):
        torch.manual_seed(seed)
        return pc.make_model("resnet18", num_classes=data.num_classes, in_channels=data.in_channels, width=1 / 16)
    return make
