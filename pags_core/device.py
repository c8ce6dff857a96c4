"""Device selection: every function takes a ``device``; nothing in pags_core calls ``.cuda()``."""
from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` -> CUDA if available, else CPU; anything else is passed to :class:`torch.device`.

    A string torch does not know as a device (``"gpu"``, ``"tpu"``) or CUDA asked for where there is none is a
    ``ValueError`` naming it."""
    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; valid choices: 'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps' "
                         "(any torch device)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev
