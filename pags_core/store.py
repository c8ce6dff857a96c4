"""Persistence of finished runs, keyed by their canonical configuration.

A sweep asks the store for each configuration; a finished run is read back, a missing one is computed and written
atomically the moment it ends.  Killing a sweep therefore loses at most the run in flight, and rerunning the same
notebook or script resumes where it stopped and produces the same table.

The key of a run is the SHA-256 of its canonical JSON form (sorted keys, dataclasses flattened), so the folder name
*is* the hyperparameters: two configurations that differ in any field never share a result.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["RunStore", "canonical", "config_key", "default_store_root"]


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _plain(obj.item())
    raise TypeError(f"cannot put a {type(obj).__name__} into a run configuration: {obj!r}")


def canonical(config: Any) -> str:
    """The canonical JSON text of a configuration (dataclass or mapping)."""
    return json.dumps(_plain(config), sort_keys=True, separators=(",", ":"))


def config_key(config: Any) -> str:
    """A short stable key: the first 16 hex digits of the SHA-256 of :func:`canonical`."""
    return hashlib.sha256(canonical(config).encode()).hexdigest()[:16]


def default_store_root() -> Path:
    """``$PAGS_STORE`` if set; else ``.pags_store/`` at the root of the enclosing pags checkout; else ``./.pags_store``."""
    env = os.environ.get("PAGS_STORE")
    if env:
        return Path(env).expanduser()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").is_file() and (d / "pags_core").is_dir():
            return d / ".pags_store"
    return here / ".pags_store"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash while writing leaves the previous
    file intact (checkpoints of PAGS populations and of training runs)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class RunStore:
    """A folder of finished runs: ``<root>/<namespace>/<key>/{config.json,result.json}`` plus optional artefacts.

    >>> store = RunStore("/tmp/example-store")            # doctest: +SKIP
    >>> res = store.get_or_run("train", cfg, lambda: {"test_acc": 0.9})   # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_store_root()

    def path(self, namespace: str, config: Any) -> Path:
        """The folder of one run (it may not exist yet)."""
        return self.root / namespace / config_key(config)

    def has(self, namespace: str, config: Any) -> bool:
        return (self.path(namespace, config) / "result.json").is_file()

    def load(self, namespace: str, config: Any) -> dict:
        p = self.path(namespace, config) / "result.json"
        if not p.is_file():
            raise KeyError(f"no finished {namespace} run for configuration {canonical(config)}")
        return json.loads(p.read_text())

    def save(self, namespace: str, config: Any, result: Mapping[str, Any]) -> Path:
        folder = self.path(namespace, config)
        _atomic_write(folder / "config.json", json.dumps(_plain(config), indent=1, sort_keys=True))
        # result.json is written last: its presence marks the run as finished.
        _atomic_write(folder / "result.json", json.dumps(_plain(result), indent=1, sort_keys=True))
        return folder

    def get_or_run(self, namespace: str, config: Any, fn: Callable[[], Mapping[str, Any]]) -> dict:
        """Return the stored result of ``config``, or run ``fn()``, store its result at once and return it."""
        if self.has(namespace, config):
            return self.load(namespace, config)
        result = dict(fn())
        self.save(namespace, config, result)
        return json.loads(json.dumps(_plain(result)))

    def artefact(self, namespace: str, config: Any, name: str) -> Path:
        """A path inside the run's folder for large artefacts (masks, weights); the folder is created."""
        folder = self.path(namespace, config)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def runs(self, namespace: str) -> list[tuple[dict, dict]]:
        """All finished runs of a namespace as (config, result) pairs."""
        out = []
        base = self.root / namespace
        if not base.is_dir():
            return out
        for d in sorted(base.iterdir()):
            if (d / "result.json").is_file():
                out.append((json.loads((d / "config.json").read_text()), json.loads((d / "result.json").read_text())))
        return out
