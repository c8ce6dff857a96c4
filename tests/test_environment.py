"""The environment the README creates: one place for pins, ranges in the package, pags_core importable in a kernel."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements-lock.txt line is not an exact pin: {line!r}"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_lock_pins_every_tool_the_book_needs():
    pins = _lock()
    for name in ["torch", "torchvision", "jupyter-book", "nbval", "papermill", "scipy", "matplotlib", "seaborn",
                 "pandas", "tqdm", "mlxtend", "scikit-learn", "jupyter", "pytest"]:
        assert name in pins, f"{name} is missing from requirements-lock.txt"
    assert pins["jupyter-book"].startswith("1."), "jupyter-book 2.x needs the network at build time"


def test_package_requires_ranges_not_pins():
    text = (ROOT / "pyproject.toml").read_text()
    assert "==" not in text, "pyproject.toml must hold ranges; exact pins live in requirements-lock.txt"


def test_environment_yml_mirrors_the_lock():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"-\s+-r requirements-lock.txt", text)
    assert re.search(r"-\s+-e \.", text)


def test_pags_core_imports_in_a_notebook_kernel(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import pags_core, sys\nprint(pags_core.__version__, sys.executable)")]
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    out = nb.cells[0].outputs[0]["text"]
    import pags_core

    assert out.split()[0] == pags_core.__version__
    assert Path(out.split()[1]).resolve().parent == Path(sys.executable).resolve().parent
