"""Persistence of finished runs, keyed by their canonical configuration.

A sweep asks the store for each configuration; a finished run is read back, a missing one is computed and written
atomically the moment it ends.  Killing a sweep therefore loses at most the run in flight, and rerunning the same
notebook or script resumes where it stopped and produces the same table.

The key of a run is the SHA-256 of its canonical JSON form (sorted keys, dataclasses flattened), so the folder name
*is* the hyperparameters: two configurations that differ in any field never share a result.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["RunStore", "CorruptRunError", "LeaseHeld", "canonical", "config_key", "default_store_root", "tensor_digest",
           "atomic_write", "atomic_torch_save", "read_checkpoint"]


def _plain(obj: Any) -> Any:
    if hasattr(obj, "__canonical__") and not isinstance(obj, type):  # e.g. a unit: its kind and its fields
        return _plain(obj.__canonical__())
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


def tensor_digest(tensors: Mapping[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of a mapping name → tensor: names, dtypes, shapes and values, in key order.
    Identifies the weights and mask a checkpoint belongs to."""
    import torch

    h = hashlib.sha256()
    for k, v in tensors.items():
        t = torch.as_tensor(v).detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


#: result fields that measure wall-clock time (as do fields ending in ``_s`` or ``_seconds``): they differ between any
#: two runs of the same spec
TIMING_FIELDS = ("seconds", "elapsed")
#: files of a run folder that are not results: its log and a live lease
NOT_RESULTS = ("log.txt", "lease.json")


def untimed(obj: Any) -> Any:
    """A result (JSON value) without its wall-clock fields, at any depth (a training history holds one per epoch)."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items()
                if not (k in TIMING_FIELDS or k.endswith("_s") or k.endswith("_seconds"))}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


def _comparable_tensors(obj: Any) -> Any:
    """A torch file's content as plain comparable values (tensors as dtype, shape and bytes)."""
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        return (str(t.dtype), tuple(t.shape), t.reshape(-1).view(torch.uint8).numpy().tobytes())
    if isinstance(obj, dict):
        return {k: _comparable_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_comparable_tensors(v) for v in obj]
    return obj


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


def atomic_write(path: Path, data: "str | bytes") -> None:
    """Write text or bytes to a temporary file beside ``path``, flush it to disk, then rename: a reader sees the old
    file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
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


def read_checkpoint(path: Path, fmt: str, what: str, *, weights_only: bool = True) -> dict | None:
    """The checkpoint of format ``fmt`` at ``path`` (a dict with ``"format": fmt``), or ``None`` when there is none.

    A file that cannot be read (truncated, garbage) is deleted with a ``RuntimeWarning`` naming it, and ``None`` is
    returned: the run starts from the beginning.  A folder at ``path``, or a readable file of another kind, is a
    ``ValueError`` naming it (``what`` says whose checkpoint it should have been)."""
    import warnings

    import torch

    path = Path(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"the {what} checkpoint {path} is a folder, not a file: pass a file path such as "
                         f"{path / 'checkpoint.pt'}")
    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # noqa: BLE001 - a truncated or garbled file: the run starts again from the beginning
        first = (str(e).strip().splitlines() or [""])[0][:200]
        warnings.warn(f"the {what} checkpoint {path} is unreadable ({type(e).__name__}: {first}); it is deleted and "
                      "the run starts from the beginning", RuntimeWarning, stacklevel=3)
        path.unlink()
        return None
    if not isinstance(ck, dict) or ck.get("format") != fmt:
        found = ck.get("format") if isinstance(ck, dict) else type(ck).__name__
        raise ValueError(f"{path} is not a {what} checkpoint (format {found!r}, expected {fmt!r}); delete it or pass "
                         "another checkpoint path")
    return ck


class CorruptRunError(RuntimeError):
    """A stored artefact could not be read.  The run has been set aside (its ``result.json`` renamed), so running the
    same sweep again recomputes it; ``path`` is the unreadable file."""

    def __init__(self, path: Path, cause: BaseException | str):
        self.path, self.cause = Path(path), cause
        super().__init__(f"the stored file {self.path} is unreadable ({cause}); the run was set aside and is "
                         "recomputed when the sweep runs again")

    def __reduce__(self):  # crosses process boundaries (pool workers, Slurm jobs) intact
        return (type(self), (self.path, str(self.cause)))


class LeaseHeld(RuntimeError):
    """Another live worker holds the lease of a run (it is computing it now)."""

    def __init__(self, path: Path, holder: dict):
        self.path, self.holder = Path(path), holder
        super().__init__(f"{self.path.parent} is being computed by {holder.get('host')}:{holder.get('pid')}"
                         + (f" (Slurm job {holder['job']})" if holder.get("job") else ""))

    def __reduce__(self):
        return (type(self), (self.path, self.holder))


#: seconds after which a lease whose holder stopped refreshing it is considered abandoned
LEASE_STALE_S = 120.0
_LEASE_BEAT_S = 20.0


def _lease_owner() -> dict:
    import socket

    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if job else os.environ.get("SLURM_JOB_ID")
    return {"host": socket.gethostname(), "pid": os.getpid(), "job": job}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return True


class RunStore:
    """A folder of finished runs: ``<root>/<namespace>/<key>/{config.json,result.json}`` plus optional artefacts.
    ``root`` (``~`` expanded; default :func:`default_store_root`) is created when the first run is stored; a root
    that is, or lies under, a file is a ``NotADirectoryError`` naming it.

    - ``result.json`` is written last and atomically: its presence marks a run as finished.  A ``result.json`` that
      cannot be parsed, or lacks a key its reader requires, is set aside with a warning (renamed
      ``result.json.corrupt``) and the run counts as not finished, so it is recomputed.
    - :meth:`lease` marks a run as being computed, so two workers never compute the same run: the lease file names
      its holder (host, pid, Slurm job) and is refreshed while the holder lives; an abandoned lease goes stale after
      :data:`LEASE_STALE_S` seconds, and a requeued Slurm job takes over its own.

    >>> store = RunStore("/tmp/example-store")            # doctest: +SKIP
    >>> res = store.get_or_run("train", cfg, lambda: {"test_acc": 0.9})   # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike | None = None):
        if root is not None and not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"a run store root is a folder path (str or os.PathLike) or None, got "
                            f"{type(root).__name__}: {root!r}")
        self.root = Path(root).expanduser() if root is not None else default_store_root()
        for p in (self.root, *self.root.parents):  # the folder, or the nearest part of its path that exists
            if p.exists():
                if not p.is_dir():
                    raise NotADirectoryError(f"the run store root {self.root} cannot be a folder: {p} is a file; pass "
                                             "a folder path (it is created) or set $PAGS_STORE")
                break

    def path(self, namespace: str, config: Any) -> Path:
        """The folder of one run (it may not exist yet)."""
        return self.root / namespace / config_key(config)

    def _read(self, folder: Path, required: tuple = ()) -> dict | None:
        p = folder / "result.json"
        if not p.is_file():
            return None
        try:
            res = json.loads(p.read_text())
            if not isinstance(res, dict):
                raise ValueError(f"expected a JSON object, got {type(res).__name__}")
            missing = [k for k in required if k not in res]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
        except (ValueError, OSError) as e:
            self.set_aside(folder, f"{p} is unreadable ({e})")
            return None
        return res

    def set_aside(self, folder: Path, reason: str) -> None:
        """Mark a finished run as not finished (its ``result.json`` renamed ``result.json.corrupt``), with a warning
        naming ``reason``; the run is recomputed the next time it is asked for."""
        import warnings

        p = Path(folder) / "result.json"
        if p.exists():
            os.replace(p, p.with_name("result.json.corrupt"))
        warnings.warn(f"{reason}; the run is set aside and will be recomputed", RuntimeWarning, stacklevel=3)

    def has(self, namespace: str, config: Any, required: tuple = ()) -> bool:
        return self._read(self.path(namespace, config), required) is not None

    def load(self, namespace: str, config: Any, required: tuple = ()) -> dict:
        res = self._read(self.path(namespace, config), required)
        if res is None:
            raise KeyError(f"no finished {namespace} run for configuration {canonical(config)}")
        return res

    def save(self, namespace: str, config: Any, result: Mapping[str, Any]) -> Path:
        folder = self.path(namespace, config)
        atomic_write(folder / "config.json", json.dumps(_plain(config), indent=1, sort_keys=True))
        # result.json is written last: its presence marks the run as finished.
        atomic_write(folder / "result.json", json.dumps(_plain(result), indent=1, sort_keys=True))
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

    def read_artefact(self, namespace: str, config: Any, name: str, reader: Callable[[Path], Any]) -> Any:
        """``reader(path)`` of a finished run's artefact; an unreadable or missing file sets the run aside and raises
        :class:`CorruptRunError` naming it (a rerun recomputes the run)."""
        path = self.path(namespace, config) / name
        try:
            if not path.is_file():
                raise FileNotFoundError("missing")
            return reader(path)
        except Exception as e:  # noqa: BLE001 - any unreadable artefact is handled the same way
            self.set_aside(path.parent, f"{path} is unreadable ({type(e).__name__}: {e})")
            raise CorruptRunError(path, f"{type(e).__name__}: {e}") from e

    def runs(self, namespace: str) -> list[tuple[dict, dict]]:
        """All finished runs of a namespace as (config, result) pairs."""
        out = []
        base = self.root / namespace
        if not base.is_dir():
            return out
        for d in sorted(base.iterdir()):
            res = self._read(d)
            if res is not None and (d / "config.json").is_file():
                out.append((json.loads((d / "config.json").read_text()), res))
        return out

    def contents(self) -> dict:
        """Every file of the store by relative path, for exact comparison of two stores: JSON files
        :func:`untimed`, torch files (``.pt``, ``.mask``) as dtypes, shapes and bytes, other files as text; logs,
        leases and leftovers of interrupted atomic writes (``.tmp-*``) left out."""
        import torch

        out = {}
        for p in sorted(self.root.rglob("*")):
            if not p.is_file() or p.name in NOT_RESULTS or p.name.startswith(".tmp-"):
                continue
            rel = str(p.relative_to(self.root))
            if p.suffix == ".json":
                out[rel] = untimed(json.loads(p.read_text()))
            elif p.suffix in (".pt", ".mask"):
                out[rel] = _comparable_tensors(torch.load(p, map_location="cpu", weights_only=True))
            else:
                out[rel] = p.read_text()
        return out

    # ---- leases -------------------------------------------------------------------------------------------------
    def lease_holder(self, namespace: str, config: Any) -> dict | None:
        """The live holder of a run's lease (``None`` when there is none, or it is stale or held by this process's
        own Slurm job)."""
        p = self.path(namespace, config) / "lease.json"
        try:
            holder = json.loads(p.read_text())
            age = time.time() - p.stat().st_mtime
        except (OSError, ValueError):
            return None
        me = _lease_owner()
        if holder.get("job") and holder.get("job") == me["job"]:
            return None  # a requeued Slurm job takes its own lease back
        if holder.get("host") == me["host"] and holder.get("pid") is not None and not _pid_alive(holder["pid"]):
            return None
        if age > LEASE_STALE_S:
            return None
        return holder

    @contextlib.contextmanager
    def lease(self, namespace: str, config: Any):
        """Hold the lease of a run while computing it (raises :class:`LeaseHeld` when a live worker holds it)."""
        folder = self.path(namespace, config)
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / "lease.json"
        holder = self.lease_holder(namespace, config)
        if holder is not None and holder != _lease_owner():
            raise LeaseHeld(p, holder)
        me = _lease_owner()
        atomic_write(p, json.dumps(me))
        time.sleep(0.05)
        try:  # two workers that broke a stale lease at once: the last writer wins, the other backs off
            if json.loads(p.read_text()) != me:
                raise LeaseHeld(p, json.loads(p.read_text()))
        except (OSError, ValueError):
            pass
        stop = threading.Event()

        def beat():
            while not stop.wait(_LEASE_BEAT_S):
                with contextlib.suppress(OSError):
                    os.utime(p)

        t = threading.Thread(target=beat, daemon=True)
        t.start()
        try:
            yield p
        finally:
            stop.set()
            t.join()
            with contextlib.suppress(OSError):
                if json.loads(p.read_text()) == me:
                    p.unlink()
