"""Determinism you can rely on: a run's torch thread count is part of its key (``ExecSpec.threads``) and
``execute_unit`` runs every unit with that count, so the same spec stores bit-identical results whatever
``OMP_NUM_THREADS`` the process started with; and every chapter that trains declares ``threads`` among its
papermill parameters."""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pags_core.experiments import CHAPTER_PARAMETERS, ExecSpec, run_key
from pags_core.store import canonical

import sweep_job

JOB = Path(sweep_job.__file__)
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def start(store: Path, omp: int, log: Path, threads: int = 1) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(omp), "MKL_NUM_THREADS": str(omp)}
    err = open(store.parent / f"{store.name}.stderr", "w")
    return subprocess.Popen([sys.executable, str(JOB), str(store), "--threads", str(threads), "--log", str(log)],
                            env=env, stdout=err, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, store: Path) -> None:
    assert proc.wait(timeout=300) == 0, (store.parent / f"{store.name}.stderr").read_text()[-3000:]


def log_threads(log: Path) -> tuple:
    """(threads the process started with, {threads seen inside the units})."""
    lines = log.read_text().splitlines()
    process = {int(re.search(r"threads=(\d+)", s)[1]) for s in lines if s.startswith("process ")}
    units = {int(re.search(r"threads=(\d+)", s)[1]) for s in lines if s.startswith("start ")}
    return process, units


def test_the_same_spec_stores_identical_results_under_one_and_two_omp_threads(tmp_path):
    one, two = tmp_path / "omp1", tmp_path / "omp2"
    procs = [(start(one, 1, tmp_path / "omp1.log"), one), (start(two, 2, tmp_path / "omp2.log"), two)]
    for proc, store in procs:
        finish(proc, store)
    a, b = sweep_job.stored_results(one), sweep_job.stored_results(two)
    assert sorted(a) == sorted(b) and any(k.endswith("weights.pt") for k in a) and any(k.endswith("mask.pt") for k in a)
    assert [k for k in a if a[k] != b[k]] == []  # every result, mask, weight and population: bit-identical
    assert log_threads(tmp_path / "omp1.log") == ({1}, {1})
    assert log_threads(tmp_path / "omp2.log") == ({2}, {1})  # started with 2, every unit ran with its spec's 1


def test_the_thread_count_is_part_of_every_run_key(tmp_path):
    one, _ = sweep_job.sweep(str(tmp_path / "a"), threads=1)
    two, _ = sweep_job.sweep(str(tmp_path / "b"), threads=2)
    k1, k2 = {u.key for u in one.plan.units()}, {u.key for u in two.plan.units()}
    assert len(k1) == len(k2) == len(one.plan) and k1.isdisjoint(k2)
    # and the thread count is all that differs between the two plans
    assert [canonical(u).replace('"threads":2', '"threads":1') for u in two.plan.units()] == \
        [canonical(u) for u in one.plan.units()]
    assert run_key(one.rows[0].train) != run_key(dataclasses.replace(one.rows[0].train, exec=ExecSpec("cpu", 2)))


# ---- every chapter that trains declares threads in its parameters cell --------------------------------------------
_BY_FILE = {"custom_architecture": "custom", "itop_correlation": "itop", "pags": "pags", "pegs": "pegs",
            "weighted_metrics": "weighted_metrics"}


def _notebook(path: Path) -> tuple:
    """(its chapter or None, the names its parameters cell assigns, whether it calls configure())."""
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    called = re.search(r"configure\(\s*[\"'](\w+)[\"']", code)
    chapter = called[1] if called else _BY_FILE.get(path.stem)
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    names = set()
    for c in params:
        for node in ast.walk(ast.parse("".join(c["source"]))):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return chapter, names, called is not None


def _training_notebooks():
    out = []
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        chapter, _, _ = _notebook(nb)
        if chapter is None or "threads" not in CHAPTER_PARAMETERS.get(chapter, ()):
            continue  # a chapter that trains nothing
        out.append(pytest.param(nb, id=nb.stem))
    return out


@pytest.mark.parametrize("notebook", _training_notebooks())
def test_every_training_chapter_declares_threads_in_its_parameters_cell(notebook):
    chapter, names, _ = _notebook(notebook)
    assert "threads" in names, f"{notebook.name} (chapter {chapter!r}) trains but its parameters cell lacks threads"
    missing = [p for p in CHAPTER_PARAMETERS[chapter] if p not in names]
    assert not missing, f"{notebook.name}: its parameters cell lacks {missing}"
