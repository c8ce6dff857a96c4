"""Data sets kept on disk (CIFAR-10/100 through torchvision): where they live, and opening them with errors that say
what to do when the folder is missing, incomplete or corrupted, or a download finds no network."""
from __future__ import annotations

import http.client
import os
import pickle
import socket
import urllib.error
from pathlib import Path

__all__ = ["CIFAR_FOLDERS", "default_data_root", "data_root", "open_cifar"]

#: data set -> the folder torchvision's archive extracts to, under the data root
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
#: what a download attempt without a working network raises from inside torchvision (URLError wraps the socket errors)
NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror, socket.herror,
                  http.client.HTTPException)


def default_data_root() -> Path:
    """``$PAGS_DATA`` if set, else ``~/.cache/pags_core/data``."""
    env = os.environ.get("PAGS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pags_core" / "data"


def data_root(root) -> Path:
    """``root`` as a path (``~`` expanded), or :func:`default_data_root` when it is None."""
    if root is None:
        return default_data_root()
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or os.PathLike) or None, got {type(root).__name__}: {root!r}")
    return Path(root).expanduser()


def open_cifar(name: str, root=None, download: bool = False):
    """torchvision's training and test sets of ``name`` (``"cifar10"`` or ``"cifar100"``) from
    ``root/<folder>`` (folders in :data:`CIFAR_FOLDERS`); with ``download`` torchvision first fetches the archive
    when the folder is missing or fails its checksums.

    Raises ``FileNotFoundError`` (no folder and ``download=False``: pass ``download=True`` or point ``root`` at one),
    ``RuntimeError`` (the folder is incomplete or corrupted: delete it) and ``ConnectionError`` (the download failed:
    no network? place the extracted folder under ``root``), each naming the folder.
    """
    root = data_root(root)
    folder = root / CIFAR_FOLDERS[name]
    if not download and not folder.is_dir():
        raise FileNotFoundError(
            f"{name} was not found under {folder}: pass download=True to fetch it with torchvision (about 170 MB), "
            f"or point root= (or $PAGS_DATA) at a folder that already holds {folder.name}/.")
    try:
        from torchvision import datasets
    except ImportError as e:  # pragma: no cover - the vision extra is in the lock file
        raise ImportError(f"{name} needs torchvision: pip install 'pags_core[vision]'") from e
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=False)
    except NETWORK_ERRORS as e:
        partial = f" ({folder} is there but incomplete or corrupted: delete it first)" if folder.is_dir() else ""
        raise ConnectionError(
            f"{name}: download failed ({type(e).__name__}: {e}): no network? On a machine with network run "
            f"pags_core.stage_dataset({name!r}, download=True) (or fetch and extract {cls.url}), then place the "
            f"extracted folder {folder.name}/ under {root}{partial} and load with download=False.") from e
    except (RuntimeError, pickle.UnpicklingError, EOFError) as e:
        raise RuntimeError(
            f"{name} under {folder} is incomplete or corrupted ({type(e).__name__}: {e}): delete the folder and pass "
            f"download=True, or replace it with an intact extracted {folder.name}/.") from e
    return train, test
